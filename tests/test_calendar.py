"""The embargo calendar: the page of the coming weeks by day in the office's zone, behind a login, and each user's
private iCalendar feed, which says when an embargo lifts and never what the statement says."""

import hashlib
import html
import json
import re
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from icalendar import Calendar
from sqlalchemy import select

from distributor.store.schema import audit, users
from tests.conftest import utc
from tests.webapp import EMBARGO, ROOT, SID, START, csrf, local, login, post

TITLE = "Riverland: Flood maps must be published"  # the fixture's statement
BODY = "a fictional river authority must publish its flood maps"
REFERENCE = "Index: TRO 01/001/2026"
BASE = "https://press.example.org/distributor"
UNKNOWN = "/no-such-page"


def path_of(url: str) -> str:
    """The feed's path as the test client asks for it (it adds the app's root itself)."""
    assert url.startswith(BASE + "/calendar/") and url.endswith(".ics"), url
    return urlsplit(url).path.removeprefix(ROOT)


def new_address(client) -> str:
    reply = post(client, "/calendar/address")
    assert reply.status_code == 200, reply.status_code
    return html.unescape(re.search(r'<input readonly size="90" value="([^"]+)"', reply.get_data(as_text=True)).group(1))


def feed(app, url: str):
    """The feed as a calendar application fetches it: no cookie, no login."""
    reply = app.test_client().get(path_of(url))
    assert reply.status_code == 200, reply.status_code
    assert reply.headers["Content-Type"].startswith("text/calendar")
    assert reply.headers["Cache-Control"] == "no-store"
    return reply


def events(app, url: str) -> dict:
    """UID → event."""
    return {str(e["UID"]): e for e in Calendar.from_ical(feed(app, url).data).walk("VEVENT")}


def scheduled(system, statement_id: str = SID, embargo=EMBARGO) -> None:
    assert system.at("approve", statement_id, "--by", "maya").code == 0
    result = system.at("schedule", statement_id, "--embargo", embargo.isoformat(), "--channels", "email")
    assert result.code == 0, result.err


def imported(system, statement_file, name: str, title: str, reference: str, embargo: str = "") -> str:
    result = system.at("import", statement_file(name=name, title=title, reference=reference, embargo=embargo),
                       "--by", "sam")
    assert result.code == 0, result.err
    return result.out.split()[0].rstrip(":")


def test_the_feed_says_when_and_links_to_the_statement_but_never_what_it_says(web):
    system, clock, app = web()
    scheduled(system)
    url = new_address(login(app))
    reply = feed(app, url)
    [event] = Calendar.from_ical(reply.data).walk("VEVENT")
    assert str(event["UID"]) == f"{SID}@press.example.org"
    assert event.decoded("DTSTART") == EMBARGO
    assert str(event["SUMMARY"]) == REFERENCE
    assert str(event["URL"]) == f"{BASE}/statements/{SID}"
    assert str(event["STATUS"]) == "CONFIRMED"
    assert "DESCRIPTION" not in event and "LOCATION" not in event

    unfolded = reply.data.decode().replace("\r\n ", "")  # a long line is folded; a title must not hide in two
    for text in (TITLE, "Flood maps", BODY, "Åsgård", "nobody listened", "+44 20 7946 0000"):
        assert text not in unfolded
    # The link needs a login: without one it leads to the login page, never to the statement.
    anonymous = app.test_client().get(f"/statements/{SID}")
    assert anonymous.status_code == 302 and local(anonymous).startswith("/login")
    assert TITLE not in anonymous.get_data(as_text=True)


def test_a_statement_without_a_reference_is_called_embargo(web, tmp_path):
    system, clock, app = web()
    path = tmp_path / "quiet.md"
    path.write_text('---\ntitle: "Wetlands: the quiet report"\ndate: 2027-03-01\nembargo: 2027-03-03T10:00:00+00:00\n'
                    '---\nThe wetlands report is out.\n', encoding="utf-8")
    result = system.at("import", path, "--by", "sam")
    assert result.code == 0, result.err
    quiet = result.out.split()[0].rstrip(":")
    scheduled(system, quiet, utc(2027, 3, 3, 10, 0))
    url = new_address(login(app))
    assert str(events(app, url)[f"{quiet}@press.example.org"]["SUMMARY"]) == "Embargo"
    assert "Wetlands" not in feed(app, url).data.decode().replace("\r\n ", "")


def test_moving_the_embargo_moves_the_event_and_raises_its_sequence(web):
    system, clock, app = web()
    scheduled(system)
    url = new_address(login(app))
    before = events(app, url)[f"{SID}@press.example.org"]
    later = EMBARGO + timedelta(days=1, hours=9)
    result = system.at("reschedule", SID, "--embargo", later.isoformat(), "--by", "maya", "--reason", "minister delayed")
    assert result.code == 0, result.err
    after = events(app, url)[f"{SID}@press.example.org"]
    assert after.decoded("DTSTART") == later
    assert int(after["SEQUENCE"]) > int(before["SEQUENCE"])
    assert str(after["STATUS"]) == "CONFIRMED"
    assert len(events(app, url)) == 1  # the same event, moved: not a second one


def test_a_withdrawal_cancels_the_event_which_stays_for_six_weeks(web):
    system, clock, app = web()
    scheduled(system)
    url = new_address(login(app))
    before = events(app, url)[f"{SID}@press.example.org"]
    result = system.at("withdraw", SID, "--by", "maya", "--reason", "legal advice")
    assert result.code == 0, result.err
    after = events(app, url)[f"{SID}@press.example.org"]
    assert str(after["STATUS"]) == "CANCELLED"
    assert int(after["SEQUENCE"]) > int(before["SEQUENCE"])
    assert after.decoded("DTSTART") == EMBARGO
    assert SID not in login(app).get("/calendar").get_data(as_text=True).split("Your calendar feed")[0]

    clock.advance(timedelta(weeks=6, days=1).total_seconds())
    assert events(app, url) == {}


def test_a_draft_with_its_own_embargo_is_tentative_until_scheduled(web, statement_file):
    system, clock, app = web()
    own = imported(system, statement_file, "own.txt", "Drought: the second report", "Index: TRO 01/002/2026",
                   "EMBARGOED FOR: 00:01 GMT Thursday 4 March 2027")
    url = new_address(login(app))
    draft = events(app, url)[f"{own}@press.example.org"]
    assert str(draft["STATUS"]) == "TENTATIVE" and draft.decoded("DTSTART") == utc(2027, 3, 4, 0, 1)
    page = login(app).get("/calendar").get_data(as_text=True)
    assert "Thursday 4 March 2027" in page and "not yet scheduled" in page

    scheduled(system, own, utc(2027, 3, 4, 0, 1))
    now = events(app, url)[f"{own}@press.example.org"]
    assert str(now["STATUS"]) == "CONFIRMED" and int(now["SEQUENCE"]) > int(draft["SEQUENCE"])
    assert f"{SID}@press.example.org" not in events(app, url)  # a draft without an embargo has no event


def test_a_released_statement_stays_as_a_past_event_for_six_weeks(web):
    system, clock, app = web()
    scheduled(system)
    url = new_address(login(app))
    clock.advance((EMBARGO - START).total_seconds() + 1)
    system.dispatcher.advance()
    assert json.loads(system.at("show", SID, "--format", "json").out)["status"] == "released"
    event = events(app, url)[f"{SID}@press.example.org"]
    assert str(event["STATUS"]) == "CONFIRMED" and event.decoded("DTSTART") == EMBARGO
    assert "No embargoes in the next 6 weeks." in login(app).get("/calendar").get_data(as_text=True)
    clock.advance(timedelta(weeks=6, days=1).total_seconds())
    assert events(app, url) == {}


def test_the_page_needs_a_login_and_groups_by_day_in_the_office_zone(web, statement_file):
    system, clock, app = web()
    anonymous = app.test_client()
    reply = anonymous.get("/calendar")
    assert reply.status_code == 302 and local(reply).startswith("/login")
    reply = anonymous.post("/calendar/address", data={"csrf_token": csrf(anonymous)})
    assert reply.status_code == 302 and local(reply).startswith("/login")

    scheduled(system)  # 00:01 UTC Tuesday 2 March 2027 = 00:01 GMT, the same day in London
    late = imported(system, statement_file, "late.txt", "Wetlands: the late report", "Index: TRO 01/003/2026")
    scheduled(system, late, utc(2027, 4, 1, 23, 30))  # Thursday 1 April in UTC, Friday 2 April in London (BST)
    far = imported(system, statement_file, "far.txt", "Glaciers: the far report", "Index: TRO 01/004/2026")
    scheduled(system, far, START + timedelta(weeks=6, days=1))

    page = login(app, "kim").get("/calendar").get_data(as_text=True)
    assert "The embargoes of the next 6 weeks, by day in Europe/London." in page
    days = re.findall(r"<h2>([^<]+)</h2>", page)
    assert days[:2] == ["Tuesday 2 March 2027", "Friday 2 April 2027"]
    friday = page.split("<h2>Friday 2 April 2027</h2>", 1)[1].split("</table>", 1)[0]
    assert "00:30 BST" in friday and "23:30 UTC 1 April 2027" in friday
    assert late in friday and "Wetlands: the late report" in friday  # the page, behind its login, has the title
    tuesday = page.split("<h2>Tuesday 2 March 2027</h2>", 1)[1].split("</table>", 1)[0]
    assert "00:01 GMT" in tuesday and SID in tuesday and TITLE in tuesday
    assert far not in page and "Thursday 1 April 2027" not in days
    assert "distributor " not in page and "--" not in page

    assert far in " ".join(events(app, new_address(login(app))))  # the feed looks further ahead


def test_a_new_address_is_shown_once_and_replaces_the_one_before(web):
    system, clock, app = web()
    maya = login(app)
    page = maya.get("/calendar").get_data(as_text=True)
    assert "You have no feed address yet." in page and "Make my feed address" in page
    assert maya.post("/calendar/address").status_code == 400  # no CSRF token

    first = new_address(maya)
    token = first.rsplit("/", 1)[1].removesuffix(".ics")
    with system.engine.connect() as conn:
        stored = conn.execute(select(users.c.calendar_token).where(users.c.name == "maya")).scalar_one()
        trail = " ".join(str(d) for d in conn.execute(select(audit.c.detail)).scalars())
    assert stored == hashlib.sha256(token.encode()).hexdigest() != token  # only its hash is kept
    assert token not in trail and "calendar address" in trail
    page = maya.get("/calendar").get_data(as_text=True)
    assert token not in page and "You have a private feed address." in page

    second = new_address(maya)
    assert second != first
    assert app.test_client().get(path_of(first)).status_code == 404
    feed(app, second)
    feed(app, new_address(login(app, "kim")))  # a manager has a feed of their own
    feed(app, second)


def test_calendar_reset_revokes_the_address_and_prints_a_new_one_once(web):
    system, clock, app = web()
    scheduled(system)
    old = new_address(login(app))
    result = system.at("users", "calendar-reset", "maya")
    assert result.code == 0, result.err
    [new] = re.findall(r"https://\S+\.ics", result.out)
    assert app.test_client().get(path_of(old)).status_code == 404
    assert str(events(app, new)[f"{SID}@press.example.org"]["SUMMARY"]) == REFERENCE
    assert "no longer works" in result.out

    assert system.at("users", "calendar-reset", "kim").code == 0  # one who had none gets one
    missing = system.at("users", "calendar-reset", "nobody")
    assert missing.code != 0 and "no user 'nobody'" in missing.err

    assert system.at("users", "remove", "maya").code == 0  # a removed user's feed goes with them
    assert app.test_client().get(path_of(new)).status_code == 404


@pytest.mark.parametrize("token", ["A" * 43, "short", "%00", "x" * 300, "..", "a%2Fb"])
def test_an_unknown_token_is_answered_as_any_unknown_path(web, token):
    system, clock, app = web()
    new_address(login(app))
    client = app.test_client()
    nothing = client.get(UNKNOWN)
    reply = client.get(f"/calendar/{token}.ics")
    assert reply.status_code == nothing.status_code == 404
    assert reply.data == nothing.data
    assert dict(reply.headers) == dict(nothing.headers)
