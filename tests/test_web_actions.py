"""The statement page offers only the actions that fit the moment, and the ones with consequences say what will happen
before they act: on a POST with ``confirm=1`` and the summary's fingerprint only, on the state it described."""

import html
import json
import re
from datetime import timedelta

import pytest
from sqlalchemy import update

from distributor.store.schema import deliveries
from tests.channels.conftest import file_wire
from tests.webapp import EMBARGO, SID, START, local, login, post

ACTIONS = {  # the form's action path → the name of the action it offers
    "/approve": "approve", "/schedule": "schedule", "/reschedule": "reschedule", "/correct": "correct",
    "/withdraw": "withdraw", "/retract": "retract", "/retry": "retry", "/send-test": "test", "/import": "upload"}


def forms(client, statement_id: str = SID) -> set[str]:
    page = client.get(f"/statements/{statement_id}").get_data(as_text=True)
    found = set()
    for action in re.findall(r'<form[^>]*method="post"[^>]*action="([^"]+)"', page):
        for ending, name in ACTIONS.items():
            if action.endswith(ending):
                found.add(name)
    return found


def hand_out(system) -> None:
    """Plan and send what is due now (the worker's job)."""
    system.dispatcher.advance()
    for name in system.channels:
        system.dispatcher.deliver(name)


def scheduled_and_held(system, clock, channels: str = "email") -> None:
    """Approved, scheduled for EMBARGO, and the two vetted journalists hold the embargoed copy."""
    assert system.at("approve", SID, "--by", "maya").code == 0
    result = system.at("schedule", SID, "--embargo", EMBARGO.isoformat(), "--channels", channels,
                       "--override-embargo", "--reason", "test")
    assert result.code == 0, result.err
    hand_out(system)


def released(system, clock) -> None:
    clock.advance((EMBARGO - START).total_seconds() + 1)
    hand_out(system)
    assert json.loads(system.at("show", SID, "--format", "json").out)["status"] == "released"


def summary_of(reply) -> list[str]:
    page = html.unescape(reply.get_data(as_text=True))
    return re.findall(r"<li>(.*?)</li>", page.split('id="consequences"', 1)[1].split("</ul>", 1)[0], re.S)


def fingerprint_of(reply) -> str:
    return re.search(r'name="fingerprint" value="([^"]+)"', reply.get_data(as_text=True)).group(1)


def status_of(system) -> str:
    return json.loads(system.at("show", SID, "--format", "json").out)["status"]


def test_each_state_offers_its_own_actions_and_a_manager_none(web, statement_file):
    system, clock, app = web(extra=file_wire())
    editor, manager = login(app, "maya"), login(app, "kim")
    assert forms(editor) == {"approve", "upload", "test", "withdraw"}  # draft
    assert system.at("approve", SID, "--by", "maya").code == 0
    assert forms(editor) == {"schedule", "upload", "test", "withdraw"}  # approved
    result = system.at("schedule", SID, "--embargo", EMBARGO.isoformat(), "--channels", "email,wire",
                       "--override-embargo", "--reason", "test")
    assert result.code == 0, result.err
    hand_out(system)
    assert forms(editor) == {"reschedule", "upload", "withdraw", "test"}  # scheduled, nothing failed
    with system.engine.begin() as conn:
        conn.execute(update(deliveries).where(deliveries.c.target == "bob@wire.example.net").values(status="failed"))
    assert forms(editor) == {"reschedule", "upload", "withdraw", "test", "retry"}
    with system.engine.begin() as conn:
        conn.execute(update(deliveries).where(deliveries.c.target == "bob@wire.example.net").values(status="sent"))
    released(system, clock)
    editor, manager = login(app, "maya"), login(app, "kim")  # a new day, a new login
    assert forms(editor) == {"upload", "retract"}  # released, no newer revision
    newer = statement_file(name="v2.txt", body_extra="A corrected figure.")
    assert system.at("import", newer, "--revision-of", SID, "--by", "sam").code == 0
    assert forms(editor) == {"approve", "upload", "retract"}  # a newer revision, not approved
    assert system.at("approve", SID, "--by", "maya").code == 0
    assert forms(editor) == {"correct", "upload", "retract"}
    assert forms(manager) == set()
    assert system.at("retract", SID, "--by", "maya", "--reason", "wrong").code == 0
    assert forms(editor) == set()  # retracted: nothing left to do


def test_a_withdrawn_statement_offers_approval_and_upload(web):
    system, clock, app = web()
    assert system.at("withdraw", SID, "--by", "maya", "--reason", "held back").code == 0
    assert forms(login(app)) == {"approve", "upload"}


def test_withdrawing_says_what_will_happen_and_acts_only_when_confirmed(web):
    system, clock, app = web(extra=file_wire())
    scheduled_and_held(system, clock, "email,wire")
    client = login(app)
    reply = post(client, f"/statements/{SID}/withdraw", reason="legal advice", note="Do not publish.")
    assert reply.status_code == 200 and status_of(system) == "scheduled"  # only the summary
    said = summary_of(reply)
    shown = html.unescape(reply.get_data(as_text=True))
    assert "<dd>legal advice</dd>" in shown and "<dd>Do not publish.</dd>" in shown  # what was typed, repeated
    assert said[0] == ("2 journalists holding a copy will be told, with the subject "
                       "\u201cWITHDRAWN: Riverland: Flood maps must be published\u201d.")
    assert "1 copy not yet sent will never be sent." in said  # tv's released copy
    assert "wire: was never public; nothing will be posted." in said
    trail = [e["action"] for e in json.loads(system.at("audit", SID, "--format", "json").out)]
    assert "withdrawn" not in trail and "notified" not in trail  # the summary left no trace
    reply = post(client, f"/statements/{SID}/withdraw", reason="legal advice", note="Do not publish.",
                 confirm="1", fingerprint=fingerprint_of(reply))
    assert reply.status_code == 302 and status_of(system) == "withdrawn"
    assert "2 journalists holding the embargoed copy will be told" in html.unescape(
        client.get(local(reply)).get_data(as_text=True))


def test_a_confirmation_made_stale_by_a_change_is_refused_with_409(web):
    system, clock, app = web()
    scheduled_and_held(system, clock)
    client = login(app)
    summary = post(client, f"/statements/{SID}/withdraw", reason="legal advice")
    stale = fingerprint_of(summary)
    moved = EMBARGO + timedelta(days=1)
    assert system.at("reschedule", SID, "--embargo", moved.isoformat(), "--by", "kim", "--reason", "later").code == 0
    reply = post(client, f"/statements/{SID}/withdraw", reason="legal advice", confirm="1", fingerprint=stale)
    assert reply.status_code == 409 and "changed since the summary" in reply.get_data(as_text=True)
    assert status_of(system) == "scheduled"
    reply = post(client, f"/statements/{SID}/withdraw", reason="legal advice", confirm="1")  # none at all
    assert reply.status_code == 409 and status_of(system) == "scheduled"


def test_moving_the_embargo_shows_the_new_one_in_every_zone(web):
    system, clock, app = web()
    scheduled_and_held(system, clock)
    client = login(app)
    reply = post(client, f"/statements/{SID}/reschedule", embargo="2027-03-03T09:30:15", embargo_zone="Europe/London",
                 reason="the minister is late")
    said = summary_of(reply)
    assert said[0].startswith("2 journalists holding a copy will be told, with the subject")
    assert ("The embargo will be 09:30:15 UTC Wednesday 3 March 2027 = 09:30:15 GMT Wednesday 3 March 2027 = "
            "04:30:15 EST Wednesday 3 March 2027.") in said
    reply = post(client, f"/statements/{SID}/reschedule", embargo="2027-03-03T09:30:15", embargo_zone="Europe/London",
                 reason="the minister is late", confirm="1", fingerprint=fingerprint_of(reply))
    assert reply.status_code == 302
    shown = json.loads(system.at("show", SID, "--format", "json").out)
    assert shown["embargo"].startswith("2027-03-03T09:30:15")


def test_an_override_shows_the_files_embargo_beside_the_new_one(web, statement_file):
    system, clock, app = web()
    path = statement_file(name="embargoed.txt", embargo="EMBARGOED FOR: 00:01 GMT Thursday 11 March 2027",
                          title="Another statement", reference="Index: TRO 01/002/2026")
    assert system.at("import", path, "--by", "sam").code == 0
    assert system.at("approve", "tro-01-002-2026", "--by", "maya").code == 0
    client = login(app)
    reply = post(client, "/statements/tro-01-002-2026/schedule", embargo="2027-03-04T00:01", embargo_zone="UTC",
                 override_embargo="1", reason="brought forward")
    page = html.unescape(reply.get_data(as_text=True))
    assert reply.status_code == 200 and "The file's embargo" in page and "The new embargo" in page
    assert "00:01 UTC Thursday 11 March 2027" in page and "00:01 UTC Thursday 4 March 2027" in page
    assert json.loads(system.at("show", "tro-01-002-2026", "--format", "json").out)["status"] == "approved"
    # without the override no confirmation is needed: the statement's own embargo is what it says
    reply = post(client, "/statements/tro-01-002-2026/schedule")
    assert reply.status_code == 302
    assert json.loads(system.at("show", "tro-01-002-2026", "--format", "json").out)["status"] == "scheduled"


def test_retracting_says_which_channels_take_it_down(web):
    system, clock, app = web(extra=file_wire())
    scheduled_and_held(system, clock, "email,wire")
    released(system, clock)
    client = login(app)
    said = summary_of(post(client, f"/statements/{SID}/retract", reason="wrong figures"))
    assert said[0].startswith("3 journalists holding a copy will be told, with the subject")
    assert "wire: taken down at filewire." in said


@pytest.mark.parametrize("action", ["withdraw", "retract", "correct"])
def test_a_refusal_shows_no_summary_but_the_reason(web, action):
    system, clock, app = web()
    client = login(app)
    if action == "withdraw":
        assert system.at("withdraw", SID, "--by", "maya", "--reason", "x").code == 0
        assert system.at("approve", SID, "--by", "maya").code == 0
        assert system.at("schedule", SID, "--embargo", EMBARGO.isoformat(), "--override-embargo",
                         "--reason", "x").code == 0
        released(system, clock)
        client = login(app)
    reply = post(client, f"/statements/{SID}/{action}", reason="because")
    assert reply.status_code == 302
    page = html.unescape(client.get(local(reply)).get_data(as_text=True))
    assert 'class="flash error"' in page
