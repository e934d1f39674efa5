"""The journalists' portal over real HTTP (waitress on loopback): a link per journalist, redeemed by a POST, never a
GET; the statements each may see; revocation; every view on record."""

import re
import threading
from datetime import timedelta

import pytest
import requests
from sqlalchemy import select

from distributor import portal
from distributor.portal import Event
from distributor.store import reading
from distributor.store.schema import deliveries, portal_events
from tests import mediafiles
from tests.webapp import EMBARGO, ROOT, SECRET, SID

PORTAL = ('\n[portal]\nterms = "Respect the embargo.\\n\\nDo not share this link."\n'
          'self_service_lists = ["health"]\n')


@pytest.fixture
def office(web, tmp_path):
    """The statement scheduled under embargo with a photo; the embargoed copies sent to ana and bob (vetted); the
    app served by waitress. Returns (system, clock, base URL, {address: link token})."""
    from waitress import create_server

    system, clock, app = web(base_url="http://press.example.org/distributor", extra=PORTAL)  # plain http: the test speaks it
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(mediafiles.jpeg())
    assert system.at("media", "add", SID, photo, "--alt", "Volunteers", "--by", "sam").code == 0
    assert system.at("approve", SID, "--by", "maya").code == 0
    assert system.at("schedule", SID, "--embargo", EMBARGO.isoformat(), "--channels", "email").code == 0
    system.dispatcher.advance()
    system.dispatcher.deliver("email")
    with reading(system.engine) as conn:
        sent = dict(conn.execute(select(deliveries.c.target, deliveries.c.id).where(
            deliveries.c.status == "sent", deliveries.c.channel == "email")).all())
    assert set(sent) == {"ana@paper.example.com", "bob@wire.example.net"}
    app.extensions["portal_database_clock"] = clock  # stands in for PostgreSQL's clock, as the tests' systems do
    system.app = app
    server = create_server(app, host="127.0.0.1", port=0, url_prefix=ROOT, threads=4)
    stopping = threading.Event()

    def run():
        try:
            server.run()
        except OSError:  # its sockets closed under the loop at the end of the test
            if not stopping.is_set():
                raise
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    yield system, clock, f"http://127.0.0.1:{server.effective_port}{ROOT}", \
        {address: portal.link_token(SECRET, delivery_id) for address, delivery_id in sent.items()}
    stopping.set()
    server.close()
    thread.join(timeout=5)
    app.extensions["portal_recorder"].close()


def lift(system, clock, at) -> None:
    """The clock at ``at`` and every channel's due deliveries made, as a worker would."""
    clock.set(at)
    system.dispatcher.advance()
    for name in system.channels:
        system.dispatcher.deliver(name)


def csrf_of(page: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def redeem(base: str, token: str, agree: bool = True) -> requests.Session:
    """A journalist's browser: open the link, press the button, agree to the terms."""
    browser = requests.Session()
    page = browser.get(f"{base}/j/{token}")
    assert page.status_code == 200
    reply = browser.post(f"{base}/j/{token}", data={"csrf_token": csrf_of(page.text)})
    if agree and "/portal/terms" in reply.url:
        reply = browser.post(reply.url, data={"csrf_token": csrf_of(reply.text), "agree": "yes"})
    browser.last = reply
    return browser


def events(system, kind: str) -> list:
    with reading(system.engine) as conn:
        return conn.execute(select(portal_events).where(portal_events.c.kind == kind)).mappings().all()


def test_the_get_of_a_link_grants_nothing_and_is_recorded_as_checked(office):
    system, _, base, links = office
    scanner = requests.Session()
    page = scanner.get(f"{base}/j/{links['ana@paper.example.com']}")
    assert page.status_code == 200 and "Open my releases" in page.text
    assert "distributor_portal" not in scanner.cookies
    assert scanner.get(f"{base}/portal/").status_code == 403
    assert len(events(system, "link-checked")) == 1 and events(system, "view") == []


def test_an_unknown_token_and_a_revoked_one_answer_the_same_page(office):
    system, _, base, links = office
    assert system.at("recipients", "revoke", "bob@wire.example.net", "--by", "kim").code == 0
    forged = links["ana@paper.example.com"][:-4] + "AAAA"
    revoked, unknown = (requests.get(f"{base}/j/{t}") for t in (links["bob@wire.example.net"], forged))
    assert revoked.status_code == unknown.status_code == 200
    assert re.sub(r'value="[^"]+"', "", revoked.text) == re.sub(r'value="[^"]+"', "", unknown.text)
    for token in (links["bob@wire.example.net"], forged):
        browser = redeem(base, token)
        assert browser.last.status_code == 403 and "opens nothing now" in browser.last.text
        assert "Riverland" not in browser.last.text and "distributor_portal" not in browser.cookies


def test_the_first_redemption_asks_for_the_terms_and_records_the_agreement(office):
    system, _, base, links = office
    browser = redeem(base, links["ana@paper.example.com"], agree=False)
    assert "Respect the embargo." in browser.last.text and "I agree" in browser.last.text
    assert browser.get(f"{base}/portal/{SID}/").url.endswith("/portal/terms")  # nothing before agreeing
    refused = browser.post(browser.last.url, data={"csrf_token": csrf_of(browser.last.text)})
    assert refused.status_code == 400
    agreed = browser.post(browser.last.url, data={"csrf_token": csrf_of(browser.last.text), "agree": "yes"},
                          headers={"User-Agent": "Reporter's browser"})
    assert agreed.status_code == 200 and "Riverland" in agreed.text and "EMBARGOED" in agreed.text
    [agreement] = events(system, "agreed")
    assert agreement["user_agent"] == "Reporter's browser" and agreement["address"] == "127.0.0.1"
    assert agreement["email_key"] == "ana@paper.example.com"
    again = redeem(base, links["ana@paper.example.com"], agree=False)  # a later session: agreed already
    assert "Riverland" in again.last.text


def test_the_session_cookie_is_httponly_lax_and_no_staff_session(office):
    _, _, base, links = office
    browser = requests.Session()
    token = links["ana@paper.example.com"]
    page = browser.get(f"{base}/j/{token}")
    reply = browser.post(f"{base}/j/{token}", data={"csrf_token": csrf_of(page.text)}, allow_redirects=False)
    cookie = reply.headers["Set-Cookie"]
    assert cookie.startswith("distributor_portal=") and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    staff = browser.get(f"{base}/", allow_redirects=False)
    assert staff.status_code == 302 and "/login" in staff.headers["Location"]


def test_a_journalist_sees_their_embargoed_statement_and_its_media(office):
    system, _, base, links = office
    browser = redeem(base, links["ana@paper.example.com"])
    listing = browser.get(f"{base}/portal/")
    assert "Riverland" in listing.text and "Under embargo" in listing.text
    page = browser.get(f"{base}/portal/{SID}/")
    assert "EMBARGOED" in page.text and "UTC" in page.text and "Volunteers" in page.text
    link = re.search(r'href="([^"]*/media/photo\.jpg/original)"', page.text).group(1)
    photo = browser.get(f"http://127.0.0.1:{base.split(':')[2].split('/')[0]}{link}")
    assert photo.status_code == 200 and photo.headers["Content-Type"] == "image/jpeg"
    assert mediafiles.leaks(photo.content) == []


def test_another_statement_and_a_guessed_media_url_give_404(office):
    _, _, base, links = office
    browser = redeem(base, links["ana@paper.example.com"])
    assert browser.get(f"{base}/portal/tro-99-999-2026/").status_code == 404
    assert browser.get(f"{base}/portal/{SID}/media/other.jpg/original").status_code == 404
    assert browser.get(f"{base}/portal/{SID}/media/photo.jpg/huge").status_code == 404


def test_a_revoked_journalists_open_session_gets_nothing_on_its_next_request(office):
    system, _, base, links = office
    browser = redeem(base, links["bob@wire.example.net"])
    assert browser.get(f"{base}/portal/{SID}/").status_code == 200
    assert system.at("recipients", "revoke", "bob@wire.example.net", "--by", "kim").code == 0
    after = browser.get(f"{base}/portal/{SID}/")
    assert after.status_code == 403 and "Riverland" not in after.text


def test_unsubscribing_or_de_vetting_ends_access_at_once(office, tmp_path):
    system, _, base, links = office
    ana, bob = redeem(base, links["ana@paper.example.com"]), redeem(base, links["bob@wire.example.net"])
    assert system.cli("recipients", "unsubscribe", "ana@paper.example.com").code == 0
    assert ana.get(f"{base}/portal/").status_code == 403
    csv_path = tmp_path / "devetted.csv"
    csv_path.write_text("email,name,outlet,embargo_ok\nbob@wire.example.net,Bob Ng,Wire Service,no\n")
    assert system.cli("recipients", "import", csv_path, "--list", "embargo").code == 0
    assert bob.get(f"{base}/portal/").status_code == 403


def test_a_statement_withdrawn_while_open_shows_only_the_withdrawal(office):
    system, _, base, links = office
    browser = redeem(base, links["ana@paper.example.com"])
    assert "Riverland" in browser.get(f"{base}/portal/{SID}/").text
    assert system.at("withdraw", SID, "--by", "maya", "--reason", "legal", "--note", "A new text follows.").code == 0
    page = browser.get(f"{base}/portal/{SID}/")
    assert "Withdrawn" in page.text and "A new text follows." in page.text and "Riverland" not in page.text
    assert "Riverland" not in browser.get(f"{base}/portal/").text
    assert browser.get(f"{base}/portal/{SID}/media/photo.jpg/original").status_code == 404


def test_an_unvetted_member_gets_no_link_that_works(office):
    system, _, base, _ = office
    with reading(system.engine) as conn:  # tv@ is on the list, not vetted: their copy is the released version's
        tv = conn.execute(select(deliveries.c.id).where(deliveries.c.target == "tv@tv.example.org")).scalar()
    assert tv is not None
    assert redeem(base, portal.link_token(SECRET, tv)).last.status_code == 403


def test_a_link_expires_link_days_after_the_embargo(office):
    system, clock, base, links = office
    clock.set(EMBARGO + timedelta(days=30, seconds=1))
    assert redeem(base, links["ana@paper.example.com"]).last.status_code == 403
    clock.set(EMBARGO + timedelta(days=29))
    assert redeem(base, links["ana@paper.example.com"]).last.status_code == 200


def test_failed_token_attempts_are_limited_per_address(office):
    system, _, base, links = office
    for _ in range(20):
        assert requests.get(f"{base}/j/{'x' * 32}").status_code == 200
    assert requests.get(f"{base}/j/{links['ana@paper.example.com']}").status_code == 429


def test_views_and_downloads_are_recorded_in_batches_and_read_as_opened_by(office):
    system, _, base, links = office
    browser = redeem(base, links["ana@paper.example.com"])
    for _ in range(3):
        assert browser.get(f"{base}/portal/{SID}/").status_code == 200
    page = browser.get(f"{base}/portal/{SID}/")
    link = re.search(r'href="([^"]*/media/photo\.jpg/original)"', page.text).group(1)
    assert browser.get(f"http://127.0.0.1:{base.split(':')[2].split('/')[0]}{link}").status_code == 200
    from tests.conftest import wait_for

    assert wait_for(lambda: len(events(system, "view")) == 5 and len(events(system, "download")) == 1)  # 1 at agreeing
    result = system.cli("log", SID, "--views", "--format", "csv")
    assert result.code == 0
    header, row = result.out.strip().splitlines()
    assert header == "journalist,first_view,last_view,views,downloads"
    assert row.startswith("ana@paper.example.com,") and row.endswith(",5,1")


def test_log_views_needs_a_statement():
    from distributor.cli import build_parser

    args = build_parser().parse_args(["log", "--views"])
    assert args.views is True


def test_each_embargoed_copy_carries_its_journalists_own_link(office):
    import email
    from email.policy import default

    system, _, base, links = office
    found = {}
    for path in (system.config_path.parent / "outbox").rglob("*.eml"):
        message = email.message_from_bytes(path.read_bytes(), policy=default)
        text = message.get_body(("plain",)).get_content()
        html = message.get_body(("html",)).get_content()
        [link] = set(re.findall(r"Read it online and download the media: (\S+)", text))
        assert f'href="{link}"' in html and portal.PLACEHOLDER not in text + html
        found[message["To"].addresses[0].addr_spec] = link
    assert found == {address: f"http://press.example.org/distributor/j/{token}" for address, token in links.items()}


def test_the_released_version_carries_no_link(office):
    system, clock, _, _ = office
    clock.set(EMBARGO + timedelta(seconds=1))
    system.dispatcher.advance()
    system.dispatcher.deliver("email")
    released = [p for p in (system.config_path.parent / "outbox").rglob("*.eml") if "tv@tv.example.org" in p.read_text()]
    assert released and all("/j/" not in p.read_text() for p in released)


def settings_post(browser, base, **data):
    page = browser.get(f"{base}/portal/settings")
    return browser.post(f"{base}/portal/settings", data={**data, "csrf_token": csrf_of(page.text)})


def test_a_language_the_journalist_chose_wins_over_a_later_import(office, tmp_path):
    system, _, base, links = office
    browser = redeem(base, links["ana@paper.example.com"])
    bad = settings_post(browser, base, change="language", language="not a language!")
    assert bad.status_code == 400 and "language: expected a language tag" in bad.text
    assert settings_post(browser, base, change="language", language="pt-br").status_code == 200
    csv_path = tmp_path / "again.csv"
    csv_path.write_text("email,name,outlet,embargo_ok,language\nana@paper.example.com,Ana Lima,Daily Paper,yes,de\n")
    assert system.cli("recipients", "import", csv_path, "--list", "embargo").code == 0
    listed = system.cli("recipients", "list", "--list", "embargo", "--format", "json")
    [ana] = [r for r in __import__("json").loads(listed.out) if r["email"] == "ana@paper.example.com"]
    assert ana["language"] == "pt-BR"
    assert "language_chosen" in system.cli("audit", "--format", "json").out


def test_a_self_joined_member_is_never_vetted_and_a_replace_import_leaves_them(office, tmp_path):
    system, _, base, links = office
    browser = redeem(base, links["bob@wire.example.net"])
    assert "not a list you can join" in settings_post(browser, base, change="join", list="embargo").text
    assert "on the list health now" in settings_post(browser, base, change="join", list="health").text
    listed = __import__("json").loads(system.cli("recipients", "list", "--list", "health", "--format", "json").out)
    assert [(r["email"], r["embargo_ok"]) for r in listed] == [("bob@wire.example.net", False)]
    csv_path = tmp_path / "health.csv"
    csv_path.write_text("email,name,outlet,embargo_ok\ncara@radio.example.org,Cara,Radio,yes\n")
    assert system.cli("recipients", "import", csv_path, "--list", "health", "--replace").code == 0
    listed = __import__("json").loads(system.cli("recipients", "list", "--list", "health", "--format", "json").out)
    assert sorted(r["email"] for r in listed) == ["bob@wire.example.net", "cara@radio.example.org"]
    assert "off the list health now" in settings_post(browser, base, change="leave", list="health").text
    actions = system.cli("audit", "--format", "json").out
    assert "list_joined" in actions and "list_left" in actions


def test_unsubscribing_in_the_portal_stops_mail_and_access(office):
    system, _, base, links = office
    browser = redeem(base, links["ana@paper.example.com"])
    done = settings_post(browser, base, change="unsubscribe")
    assert done.status_code == 200 and "Unsubscribed" in done.text
    assert browser.get(f"{base}/portal/").status_code == 403
    assert system.cli("recipients", "unsubscribe", "--undo", "ana@paper.example.com", "--by", "kim").code == 2


def test_the_press_office_sees_who_opened_it_and_each_journalists_record(office):
    from tests.webapp import login

    system, _, base, links = office
    browser = redeem(base, links["ana@paper.example.com"], agree=True)
    assert browser.get(f"{base}/portal/{SID}/").status_code == 200
    from tests.conftest import wait_for

    assert wait_for(lambda: len(events(system, "view")) == 2)
    staff = login(office_app(system))
    page = staff.get(f"/statements/{SID}").get_data(as_text=True)
    assert "ana@paper.example.com" in page.split(">Opened by</h2>")[1].split("</table>")[0]
    csv_text = staff.get(f"/statements/{SID}/views.csv").get_data(as_text=True)
    assert csv_text.splitlines()[0] == "journalist,first_view,last_view,views,downloads"
    assert csv_text.splitlines()[1].endswith(",2,0")
    record = staff.get("/recipients/ana@paper.example.com").get_data(as_text=True)
    assert re.search(r"<title>ana@paper\.example\.com · [^<]*</title>", record)  # the record in the page, not its title
    assert record.count('<h2 id="portal">') == 1
    for kind in ("redeemed", "agreed", "view"):
        assert f"<td>{kind}</td>" in record


def test_an_editor_revokes_from_the_recipients_page_and_a_manager_cannot(office):
    from tests.webapp import login, post

    system, _, base, links = office
    browser = redeem(base, links["bob@wire.example.net"])
    app = office_app(system)
    assert post(login(app, "kim"), "/lists/revoke", email="bob@wire.example.net").status_code == 403
    assert browser.get(f"{base}/portal/").status_code == 200
    reply = post(login(app, "maya"), "/lists/revoke", email="bob@wire.example.net")
    assert reply.status_code == 302
    assert browser.get(f"{base}/portal/").status_code == 403
    assert "portal_revoked" in system.cli("audit", "--format", "json").out


def office_app(system):
    from distributor.web import create_app

    app = create_app(system.config, system.engine, system.clock)
    app.config["TESTING"] = True
    return app


def test_links_in_emails_after_a_revocation_work_again(office):
    system, clock, base, links = office
    assert system.at("recipients", "revoke", "bob@wire.example.net", "--by", "kim").code == 0
    assert redeem(base, links["bob@wire.example.net"]).last.status_code == 403
    clock.advance(60)
    moved = (EMBARGO + timedelta(hours=2)).isoformat()
    assert system.at("reschedule", SID, "--embargo", moved, "--by", "maya", "--reason", "later").code == 0
    system.dispatcher.advance()
    system.dispatcher.deliver("email")
    with reading(system.engine) as conn:
        notice = conn.execute(select(deliveries.c.id).where(
            deliveries.c.target == "bob@wire.example.net", deliveries.c.kind == "embargo-change")).scalar()
    browser = redeem(base, portal.link_token(SECRET, notice))
    assert browser.last.status_code == 200
    page = browser.get(f"{base}/portal/{SID}/").text
    assert "The embargo moved" in page and "02:01" in page  # the new time, in UTC among the zones


def test_an_embargoed_statement_shows_only_once_the_copy_is_due(office, statement_file):
    system, clock, base, links = office
    other = statement_file(name="other.txt", reference="Index: TRO 01/002/2026", title="A later statement")
    assert system.at("import", other, "--by", "sam").code == 0
    assert system.at("approve", "tro-01-002-2026", "--by", "maya").code == 0
    later = (clock.now() + timedelta(hours=2)).isoformat()
    assert system.at("schedule", "tro-01-002-2026", "--embargo", EMBARGO.isoformat(), "--send-embargoed-at", later,
                     "--channels", "email").code == 0
    browser = redeem(base, links["ana@paper.example.com"])
    assert "A later statement" not in browser.get(f"{base}/portal/").text
    assert browser.get(f"{base}/portal/tro-01-002-2026/").status_code == 404
    clock.advance(7201)
    assert "A later statement" in browser.get(f"{base}/portal/").text
    assert browser.get(f"{base}/portal/tro-01-002-2026/").status_code == 200


def test_old_views_are_forgotten_after_keep_days(office):
    system, clock, base, links = office
    redeem(base, links["ana@paper.example.com"])
    with system.engine.begin() as conn:
        assert portal.prune(conn, clock.now() + timedelta(days=364), system.config.portal) == 0
        assert portal.prune(conn, clock.now() + timedelta(days=366), system.config.portal) >= 2
    assert events(system, "redeemed") == []


@pytest.mark.subprocess
def test_a_stopped_server_writes_the_views_it_still_held(office):
    """'distributor serve' stopped by SIGTERM (a service manager's stop) writes the last second's views first."""
    from tests.conftest import free_port
    from tests.webapp import serving

    system, _, _, links = office
    port = free_port()
    with serving(system.config_path, port, probe=f"{ROOT}/login"):
        browser = redeem(f"http://127.0.0.1:{port}{ROOT}", links["ana@paper.example.com"])  # the last page: a view
        assert browser.last.status_code == 200 and "Riverland" in browser.last.text
    assert len(events(system, "view")) == 1


def test_a_session_lasts_session_hours(office):
    system, clock, base, links = office
    browser = redeem(base, links["ana@paper.example.com"])
    clock.advance(24 * 3600 - 1)
    assert browser.get(f"{base}/portal/").status_code == 200
    clock.advance(2)
    assert browser.get(f"{base}/portal/").status_code == 403


def test_after_a_correction_the_page_shows_the_current_revision_and_its_note(office, statement_file):
    system, clock, base, links = office
    lift(system, clock, EMBARGO + timedelta(seconds=1))
    changed = statement_file(body_extra="A paragraph added by the correction.")
    assert system.at("import", changed, "--note", "A paragraph was added.", "--by", "sam").code == 0
    assert system.at("approve", SID, "--by", "maya").code == 0
    assert system.at("correct", SID, "--by", "maya", "--reason", "added").code == 0
    browser = redeem(base, links["ana@paper.example.com"])
    page = browser.get(f"{base}/portal/{SID}/").text
    assert "A paragraph added by the correction." in page and "Corrected on" in page and "A paragraph was added." in page
    assert "EMBARGOED" not in page


def test_a_database_clock_behind_keeps_the_statement_under_embargo(office):
    """On PostgreSQL the embargo is past only when both clocks say so: the portal judges by the earlier."""
    from distributor.clock import FixedClock

    system, clock, base, links = office
    browser = redeem(base, links["ana@paper.example.com"])
    lift(system, clock, EMBARGO + timedelta(minutes=5))
    assert "Released" in browser.get(f"{base}/portal/").text
    system.app.extensions["portal_database_clock"] = FixedClock(EMBARGO - timedelta(seconds=1))
    listing = browser.get(f"{base}/portal/").text
    assert "Under embargo" in listing and "Released" not in listing


def test_a_draft_correction_never_shows_whatever_the_clocks_say(office, statement_file):
    from distributor.clock import FixedClock

    system, clock, base, links = office
    lift(system, clock, EMBARGO + timedelta(seconds=1))
    draft = statement_file(body_extra="A draft paragraph nobody approved.")
    assert system.at("import", draft, "--by", "sam").code == 0
    browser = redeem(base, links["ana@paper.example.com"])
    for database in (clock, FixedClock(EMBARGO - timedelta(seconds=1))):  # the lift seen, and not yet seen
        system.app.extensions["portal_database_clock"] = database
        page = browser.get(f"{base}/portal/{SID}/").text
        assert "Riverland" in page and "A draft paragraph nobody approved." not in page


def test_the_recorder_keeps_a_batch_the_database_refused_and_writes_it_next_time(tmp_path):
    from distributor.store import connect, init_schema
    from tests.webapp import START

    engine = connect(f"sqlite:///{tmp_path / 'record.db'}")
    recorder = portal.Recorder(engine, interval=3600)  # no timed flush during the test
    recorder.add(Event.VIEW, START, "127.0.0.1", "a browser", email_key="ana@paper.example.com", statement_id=SID)
    from sqlalchemy.exc import OperationalError

    with pytest.raises(OperationalError):
        recorder.flush()  # no table yet: the database refuses the batch
    init_schema(engine)
    assert recorder.flush() == 1
    recorder.close()
    with reading(engine) as conn:
        assert conn.execute(select(portal_events.c.kind, portal_events.c.statement_id)).all() == [("view", SID)]


def test_the_recorder_forgets_events_older_than_keep_days(tmp_path):
    from distributor.clock import FixedClock
    from distributor.config import Portal
    from distributor.store import connect, init_schema
    from tests.conftest import wait_for
    from tests.webapp import START

    engine = connect(f"sqlite:///{tmp_path / 'record.db'}")
    init_schema(engine)
    with engine.begin() as conn:
        for days in (3, 1):
            portal.record(conn, Event.VIEW, START - timedelta(days=days), "127.0.0.1", "a browser")
    recorder = portal.Recorder(engine, interval=0.01, portal_settings=Portal(terms="t", keep_days=2),
                               clock=FixedClock(START))

    def kept():
        with reading(engine) as conn:
            return conn.execute(select(portal_events.c.at)).scalars().all()
    assert wait_for(lambda: kept() == [START - timedelta(days=1)])
    recorder.close()
