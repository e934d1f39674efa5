"""What the web app and ``status`` say is true: counts in their own columns, the embargo a draft will have, who has
not got a statement and why (once each), which instant is due, and what an action did, in counts."""

import html
import json
import re
from datetime import timedelta

from sqlalchemy import update

from distributor.store.schema import deliveries
from tests.webapp import SID, START, confirmed, local, login, post


def section(page: str, title: str) -> str:
    """The part of a page under one heading, up to the next."""
    return page.split(f"<h2>{title}</h2>", 1)[1].split("<h2>", 1)[0]


def schedule(system, embargo: str, send_at: str | None = None, channels: str = "email") -> None:
    assert system.at("approve", SID, "--by", "maya").code == 0
    extra = ["--send-embargoed-at", send_at] if send_at else []
    result = system.at("schedule", SID, "--embargo", embargo, "--channels", channels, "--override-embargo", *extra)
    assert result.code == 0, result.err
    system.dispatcher.advance()  # the copies due by now are planned


def test_the_list_shows_waiting_and_retrying_in_their_own_columns(web):
    system, clock, app = web()
    schedule(system, "2027-03-02 00:01 UTC")
    with system.engine.begin() as conn:  # one of the three email copies met a temporary fault
        conn.execute(update(deliveries).where(deliveries.c.target == "bob@wire.example.net").values(
            status="retrying"))
    page = login(app).get("/").get_data(as_text=True)
    assert "sent / pending / sending / retrying / failed / cancelled" in page
    assert "email: 0 / 2 / 0 / 1 / 0 / 0" in page


def test_a_drafts_page_shows_its_own_embargo_as_not_yet_scheduled(web, statement_file):
    system, clock, app = web()
    path = statement_file(name="embargoed.txt", embargo="EMBARGOED FOR: 00:01 GMT Thursday 11 March 2027",
                          title="Another statement", reference="Index: TRO 01/002/2026")
    assert system.at("import", path, "--by", "sam").code == 0
    client = login(app)
    page = client.get("/statements/tro-01-002-2026").get_data(as_text=True)
    assert "Embargo: -" not in page
    assert "00:01 UTC Thursday 11 March 2027" in page and "not yet scheduled" in page
    listing = client.get("/").get_data(as_text=True)
    assert "00:01 UTC Thursday 11 March 2027" in listing and "not yet scheduled" in listing
    assert system.at("approve", "tro-01-002-2026", "--by", "maya").code == 0
    assert system.at("schedule", "tro-01-002-2026").code == 0
    page = client.get("/statements/tro-01-002-2026").get_data(as_text=True)
    assert "00:01 UTC Thursday 11 March 2027" in page and "not yet scheduled" not in page


def test_who_has_not_got_a_draft_says_what_will_happen(web):
    system, clock, app = web()
    missing = html.unescape(section(login(app).get(f"/statements/{SID}").get_data(as_text=True),
                                    "Who has not got it"))
    assert "joined the list after the copies were planned" not in missing
    assert missing.count("to get the embargoed copy once the statement is scheduled") == 2  # ana and bob
    assert "not vetted for embargoes: to get the released version at the lift, once scheduled" in missing


def test_who_has_not_got_a_withdrawn_statement_lists_each_person_once_with_why(web):
    system, clock, app = web()
    schedule(system, "2027-03-02 00:01 UTC")
    assert system.at("withdraw", SID, "--by", "maya", "--reason", "legal advice").code == 0
    missing = html.unescape(section(login(app).get(f"/statements/{SID}").get_data(as_text=True),
                                    "Who has not got it"))
    for address in ("ana@paper.example.com", "bob@wire.example.net", "tv@tv.example.org"):
        assert len(re.findall(rf"<td>{re.escape(address)}</td>", missing)) == 1, address
    assert missing.count("withdrawn: legal advice") == 3


def test_status_names_the_instant_that_is_due(web):
    system, clock, app = web()
    embargo = START + timedelta(days=15)
    send_at = START + timedelta(hours=2)
    schedule(system, embargo.isoformat(), send_at.isoformat())
    found = json.loads(system.at("status", "--format", "json").out)
    [row] = found["scheduled"]
    assert [d["what"] for d in row["due"]] == ["embargoed copies go out"]
    text = system.at("status").out
    assert f"{SID}: embargoed copies go out" in text and "embargo lifts" not in text
    clock.advance(3 * 3600)  # the copies' time has passed; the lift is still two weeks away
    found = json.loads(system.at("status", "--format", "json").out)
    assert found["scheduled"] == []
    assert not any("due within the hour" in reason for reason in found["reasons"])
    clock.advance(15 * 86400 - 4 * 3600)
    [row] = json.loads(system.at("status", "--format", "json").out)["scheduled"]
    assert [d["what"] for d in row["due"]] == ["embargo lifts"]
    page = login(app).get("/status").get_data(as_text=True)
    assert "embargo lifts" in section(page, "Scheduled in the next 24 hours")


def test_actions_say_what_they_did_in_counts(web):
    system, clock, app = web()
    client = login(app)
    reply = post(client, f"/statements/{SID}/retry")
    assert "nothing to retry: no failed deliveries" in client.get(local(reply)).get_data(as_text=True)
    reply = confirmed(client, f"/statements/{SID}/withdraw", reason="never approved")
    page = html.unescape(client.get(local(reply)).get_data(as_text=True))
    assert "withdrawn; 0 unsent copies cancelled; nobody holds the embargoed copy, so nobody is told" in page
    assert "the holders are told" not in page
    result = system.at("retry", SID, "--by", "maya")
    assert result.out.strip() == f"{SID}: nothing to retry: no failed deliveries"
