"""The web app's schedule form offers the recipient lists as checkboxes; a list that is not there is a 400 in the
form's words; the statement page's 'who has not got it' covers the chosen lists."""

import html
import json
import re

from tests.webapp import EMBARGO, SID, START, login, post

EUROPE = "email,name,outlet,embargo_ok\nAna@paper.example.com,Ana Lima,Daily Paper,yes\neve@euro.example.eu,Eve,Euro,no\n"


def with_europe(system, tmp_path) -> None:
    path = tmp_path / "europe.csv"
    path.write_text(EUROPE, encoding="utf-8")
    assert system.cli("recipients", "import", path, "--list", "europe").code == 0
    assert system.at("approve", SID, "--by", "maya").code == 0


def test_the_schedule_form_offers_each_list_and_schedules_the_ones_ticked(web, tmp_path):
    system, clock, app = web()
    with_europe(system, tmp_path)
    editor = login(app)
    page = editor.get(f"/statements/{SID}").get_data(as_text=True)
    boxes = re.findall(r'<input type="checkbox" name="lists" value="([^"]+)"( checked)?>', page)
    assert boxes == [("embargo", " checked"), ("europe", "")]  # the default list is ticked
    reply = post(editor, f"/statements/{SID}/schedule", embargo=EMBARGO.isoformat(),
                 send_embargoed_at=START.isoformat(), channels="email", lists=["embargo", "europe"])
    assert reply.status_code == 302
    assert 'Lists: embargo <span class="muted">(the office\'s list)</span>' in page  # not chosen yet
    assert '<p id="lists">Lists: embargo, europe</p>' in editor.get(f"/statements/{SID}").get_data(as_text=True)
    shown = json.loads(system.cli("show", SID, "--format", "json").out)
    assert shown["status"] == "scheduled" and shown["lists"] == ["embargo", "europe"]
    page = editor.get(f"/statements/{SID}").get_data(as_text=True)
    assert "eve@euro.example.eu" in page  # not vetted on either list: left out until the lift, with why
    assert "not vetted for embargoes: gets the released version at the lift" in html.unescape(page)


def test_a_list_that_is_not_there_is_a_400_in_the_forms_words(web, tmp_path):
    system, clock, app = web()
    with_europe(system, tmp_path)
    editor = login(app)
    reply = post(editor, f"/statements/{SID}/schedule", embargo=EMBARGO.isoformat(), channels="email",
                 lists=["europe", "asia"])
    assert reply.status_code == 400
    text = html.unescape(reply.get_data(as_text=True))
    assert "Lists: no list named 'asia' (see the Lists page)" in text
    assert "distributor " not in text and "--" not in text
    assert json.loads(system.cli("show", SID, "--format", "json").out)["status"] == "approved"


def test_who_has_not_got_it_is_one_line_a_person_across_the_chosen_lists(web, tmp_path):
    from distributor.web import queries

    system, clock, app = web()
    with_europe(system, tmp_path)
    assert system.at("schedule", SID, "--embargo", EMBARGO.isoformat(), "--send-embargoed-at", START.isoformat(),
                     "--channels", "email", "--lists", "embargo,europe").code == 0
    with system.engine.connect() as conn:  # nothing planned yet: everyone, once, with the lists they are on
        before = {r["email"].lower(): r for r in queries.left_out(conn, SID, ("embargo", "europe"), "scheduled",
                                                                  chosen=("embargo", "europe"))}
    assert sorted(before) == ["ana@paper.example.com", "bob@wire.example.net", "eve@euro.example.eu",
                              "tv@tv.example.org"]
    assert sorted(before["ana@paper.example.com"]["list"].split(", ")) == ["embargo", "europe"]
    system.dispatcher.advance()
    for name in system.channels:
        system.dispatcher.deliver(name)
    with system.engine.connect() as conn:  # ana got hers as the embargo list writes her, not as europe does
        after = [(r["email"], r["reason"]) for r in queries.left_out(conn, SID, ("embargo", "europe"), "scheduled",
                                                                     chosen=("embargo", "europe"))]
    assert after == []  # tv and eve are planned for the released version at the lift
    with system.engine.connect() as conn:  # vetting on a release list is not vetting
        rows = queries.left_out(conn, "no-such-statement", ("embargo", "europe"), "approved", chosen=("europe",))
    assert {r["email"].lower(): r["vetted"] for r in rows}["bob@wire.example.net"] is False
