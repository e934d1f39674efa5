"""The web app speaks its own words: no page, message or error names a command (``distributor …``) or an option
(``--…``); the timeline and the audit trail are sentences, never raw JSON."""

import html
import re

from distributor.words import event, for_the_web
from tests.test_web_actions import hand_out, released
from tests.webapp import EMBARGO, SID, local, login, post

CLI_WORDS = re.compile(r"distributor |(?<![\w-])--[a-z]")


def visible_text(page: str) -> str:
    """What a reader sees: the page without its style sheet and tags."""
    page = re.sub(r"<style>.*?</style>", "", page, flags=re.S)
    return html.unescape(re.sub(r"<[^>]+>", " ", page))


def assert_web_words(reply, where: str) -> str:
    text = visible_text(reply.get_data(as_text=True))
    found = CLI_WORDS.search(text)
    assert found is None, f"{where}: {text[max(0, found.start() - 80):found.end() + 80]!r}"
    return text


def test_no_page_message_or_error_speaks_the_command_line(web):
    system, clock, app = web()
    client = login(app)
    seen = []

    def visit(path: str) -> str:
        reply = client.get(path)
        seen.append(path)
        return assert_web_words(reply, path)

    def act(path: str, **data) -> str:
        reply = post(client, path, **data)
        if reply.status_code == 302:
            return visit(local(reply))
        return assert_web_words(reply, path)

    for path in ("/", f"/statements/{SID}", "/audit", "/status", "/recipients/ana@paper.example.com",
                 "/statements/no-such-statement", "/nowhere", "/audit?action=approved&actor=maya&from=2027-03-01"):
        visit(path)
    # refusals, each the workflow's own message with the command line's hints in it
    assert "approve" in act(f"/statements/{SID}/schedule").lower()  # not approved yet
    act(f"/statements/{SID}/reschedule", embargo="2027-03-05T10:00", embargo_zone="UTC", reason="x")
    act(f"/statements/{SID}/correct", reason="x")
    act(f"/statements/{SID}/retract", reason="x")
    act(f"/statements/{SID}/approve")
    act(f"/statements/{SID}/approve")  # twice
    act(f"/statements/{SID}/schedule", embargo="not a time")
    act(f"/statements/{SID}/schedule", embargo="2020-01-01T00:00", embargo_zone="UTC")
    text = act(f"/statements/{SID}/schedule", embargo="2027-03-02T00:01", embargo_zone="UTC",
               override_embargo="1", reason="test")  # the confirmation page
    assert "What will happen" in text
    assert system.at("schedule", SID, "--embargo", EMBARGO.isoformat(), "--override-embargo",
                     "--reason", "test").code == 0
    hand_out(system)
    act(f"/statements/{SID}/reschedule", embargo="2020-01-01T00:00", embargo_zone="UTC", reason="x")
    act(f"/statements/{SID}/withdraw", reason="x")  # the confirmation page
    visit(f"/statements/{SID}")
    released(system, clock)
    client = login(app)
    act(f"/statements/{SID}/withdraw", reason="x")
    act(f"/statements/{SID}/correct", reason="x")
    manager = login(app, "kim")
    reply = post(manager, f"/statements/{SID}/approve")
    assert reply.status_code == 403
    assert_web_words(reply, "403")
    assert_web_words(client.post(f"/statements/{SID}/approve"), "400 without the form's token")
    for path in ("/", f"/statements/{SID}", "/audit", "/status"):
        visit(path)
    assert len(seen) > 15


def test_the_timeline_and_the_audit_trail_are_sentences(web):
    system, clock, app = web()
    client = login(app)
    post(client, f"/statements/{SID}/approve")
    timeline = visible_text(client.get(f"/statements/{SID}").get_data(as_text=True)).split("Timeline", 1)[1]
    assert "sam imported revision 1 from statement.txt" in timeline and "maya approved revision 1" in timeline
    assert '{"' not in timeline and "hash" in timeline  # the details are a click away, never JSON
    trail = visible_text(client.get("/audit?actor=maya").get_data(as_text=True))
    assert "maya approved revision 1" in trail and "sam imported" not in trail
    assert "1 entry" in trail


def test_an_event_and_a_message_in_words():
    assert event("approved", "maya", {"hash": "b612"}, 2) == "maya approved revision 2"
    assert event("withdrawn", "maya", {"reason": "legal advice", "cancelled": 1, "notified": 2}, 1) == (
        "maya withdrew it: legal advice; 1 unsent copy stopped, 2 holders told")
    assert event("something_new", "kim", None, None) == "kim: something new"
    assert for_the_web("approve it first ('distributor approve x --by NAME')") == "approve it first (the Approve button)"
    assert for_the_web("--embargo: expected a time") == "the Embargo field: expected a time"
