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
