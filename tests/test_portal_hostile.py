"""Hostile tries at the journalists' portal and the media, over real HTTP (waitress on loopback): another
journalist's statement, guessed and mangled addresses, links that should open nothing, sessions that should have
ended, forged requests, injected markup and headers, and the newsroom's media before the lift and after a
retraction. Each test asserts the safe answer."""

import argparse
import http.client
import re
import sys
import threading
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
import requests
from sqlalchemy import select

from distributor import media, portal, workflow
from distributor.store import reading
from distributor.store.schema import deliveries, portal_events, portal_sessions
from tests import mediafiles
from tests.webapp import EMBARGO, PASSWORD, ROOT, SECRET, SID

PORTAL = ('\n[portal]\nterms = "Respect the embargo.\\n\\nDo not share this link."\n'
          'self_service_lists = ["health"]\n')
NEWSROOM = '\n[channels.newsroom]\ndirectory = "out/news"\n'
OTHERS = """email,name,outlet,embargo_ok
carol@radio.example.org,Carol Diaz,Radio,yes
dave@weekly.example.com,Dave Eze,Weekly,yes
"""
DAVE_UNVETTED = "email,name,outlet,embargo_ok\ndave@weekly.example.com,Dave Eze,Weekly,no\n"
ALT = "Volunteers fill sandbags"
OTHER_ID = "tro-01-002-2026"


# -- the set-up ----------------------------------------------------------------------------------------------------

def serve(app):
    """The app on loopback, with the options 'distributor serve' gives waitress; the test's clock stands in for
    PostgreSQL's, as the tests' systems do."""
    from waitress import create_server

    from distributor.cli.web import serve_options

    clock = app.extensions["distributor"].clock
    app.extensions["portal_database_clock"] = clock
    if "newsroom" in app.extensions:
        app.extensions["newsroom"].database_clock = clock
    config = app.extensions["distributor"].config
    options = serve_options(argparse.Namespace(host="127.0.0.1", port=0, threads=4), config)
    server = create_server(app, **options)
    server.stopping = threading.Event()

    def run():
        try:
            server.run()
        except OSError:  # its sockets closed under the loop at the end of the test
            if not server.stopping.is_set():
                raise
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return server, thread


@pytest.fixture
def desk(web, tmp_path):
    """SID scheduled under embargo for email and the newsroom, with a photo; its embargoed copies sent to ana and
    bob (vetted on 'embargo'). carol is vetted on 'other' only; dave is vetted on 'other' and on 'embargo' unvetted.
    The app served by waitress."""
    system, clock, app = web(base_url="http://press.example.org/distributor", extra=PORTAL + NEWSROOM)
    for name, text, list_name in (("others.csv", OTHERS, "other"), ("dave.csv", DAVE_UNVETTED, "embargo")):
        (tmp_path / name).write_text(text, encoding="utf-8")
        assert system.cli("recipients", "import", tmp_path / name, "--list", list_name).code == 0
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(mediafiles.jpeg())
    assert system.at("media", "add", SID, photo, "--alt", ALT, "--by", "sam").code == 0
    assert system.at("approve", SID, "--by", "maya").code == 0
    assert system.at("schedule", SID, "--embargo", EMBARGO.isoformat(), "--channels", "email,newsroom").code == 0
    system.dispatcher.advance()
    system.dispatcher.deliver("email")
    server, thread = serve(app)
    port = server.effective_port
    there = SimpleNamespace(system=system, clock=clock, app=app, tmp_path=tmp_path, port=port,
                            base=f"http://127.0.0.1:{port}{ROOT}", site=system.config_path.parent / "out" / "news")
    there.links = {address: portal.link_token(SECRET, delivery_id) for address, delivery_id in sent(system).items()}
    assert set(there.links) == {"ana@paper.example.com", "bob@wire.example.net"}
    yield there
    server.stopping.set()
    server.close()
    thread.join(timeout=5)
    app.extensions["portal_recorder"].close()


def sent(system, statement_id: str = SID) -> dict[str, int]:
    with reading(system.engine) as conn:
        return dict(conn.execute(select(deliveries.c.target, deliveries.c.id).where(
            deliveries.c.status == "sent", deliveries.c.channel == "email",
            deliveries.c.statement_id == statement_id).order_by(deliveries.c.id)).all())


def delivery_ids(system, **where) -> list[int]:
    with reading(system.engine) as conn:
        query = select(deliveries.c.id)
        for column, value in where.items():
            query = query.where(deliveries.c[column] == value)
        return list(conn.execute(query.order_by(deliveries.c.id)).scalars())


def tick(there) -> None:
    there.system.dispatcher.advance()
    for name in there.system.channels:
        there.system.dispatcher.deliver(name)
    there.app.extensions["newsroom"].forget()


def csrf_of(page: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def redeem(base: str, token: str, agree: bool = True) -> requests.Session:
    browser = requests.Session()
    page = browser.get(f"{base}/j/{token}")
    assert page.status_code in (200, 429)
    if page.status_code != 200:
        browser.last = page
        return browser
    reply = browser.post(f"{base}/j/{token}", data={"csrf_token": csrf_of(page.text)})
    if agree and "/portal/terms" in reply.url:
        reply = browser.post(reply.url, data={"csrf_token": csrf_of(reply.text), "agree": "yes"})
    browser.last = reply
    return browser


def raw(there, method: str, path: str, cookies: dict | None = None, headers: dict | None = None,
        body: bytes | None = None) -> tuple[int, dict, bytes]:
    """A request sent as written: no client tidies its path (dot segments, encoded slashes) first."""
    connection = http.client.HTTPConnection("127.0.0.1", there.port, timeout=30)
    try:
        sent_headers = dict(headers or {})
        if cookies:
            sent_headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
        connection.putrequest(method, path, skip_accept_encoding=True)
        for key, value in sent_headers.items():
            connection.putheader(key, value)
        if body is not None:
            connection.putheader("Content-Length", str(len(body)))
        connection.endheaders(body)
        reply = connection.getresponse()
        return reply.status, {k.lower(): v for k, v in reply.getheaders()}, reply.read()
    finally:
        connection.close()


def events(system, kind: str) -> list:
    with reading(system.engine) as conn:
        return conn.execute(select(portal_events).where(portal_events.c.kind == kind)).mappings().all()


def staff(there, name: str = "maya") -> requests.Session:
    browser = requests.Session()
    page = browser.get(f"{there.base}/login")
    reply = browser.post(f"{there.base}/login", data={"username": name, "password": PASSWORD,
                                                      "csrf_token": csrf_of(page.text)})
    assert reply.status_code == 200 and "distributor_session" in browser.cookies
    return browser


def newsroom_url(there, item, rendition: str = media.ORIGINAL, statement_id: str = SID) -> str:
    return f"{there.base}/news/{statement_id}/{media.public_path(statement_id, item, rendition)}"


def items_of(system, statement_id: str = SID, revision: int | None = None):
    with reading(system.engine) as conn:
        row = workflow.get(conn, statement_id)
        return {i.name: i for i in workflow.content(conn, statement_id, revision or row["revision"]).media}


# -- the link ------------------------------------------------------------------------------------------------------

def test_neither_get_nor_head_of_a_link_sets_the_portal_cookie_or_opens_anything(desk):
    token = desk.links["ana@paper.example.com"]
    for method in ("GET", "HEAD"):
        status, headers, body = raw(desk, method, f"{ROOT}/j/{token}")
        assert status == 200
        assert "distributor_portal" not in headers.get("set-cookie", "")
        assert b"Riverland" not in body
    browser = requests.Session()
    browser.get(f"{desk.base}/j/{token}")
    assert browser.get(f"{desk.base}/portal/").status_code == 403
    assert browser.get(f"{desk.base}/portal/{SID}/").status_code == 403
    assert browser.get(f"{desk.base}/portal/{SID}/media/photo.jpg/original").status_code == 403
    assert events(desk.system, "redeemed") == []


def test_a_redemption_without_the_forms_csrf_token_is_refused(desk):
    token = desk.links["ana@paper.example.com"]
    bare = requests.post(f"{desk.base}/j/{token}", allow_redirects=False)
    assert bare.status_code == 400 and "distributor_portal" not in bare.headers.get("Set-Cookie", "")
    browser = requests.Session()
    browser.get(f"{desk.base}/j/{token}")
    wrong = browser.post(f"{desk.base}/j/{token}", data={"csrf_token": "forged"}, allow_redirects=False)
    assert wrong.status_code == 400 and "distributor_portal" not in browser.cookies
    other = requests.Session()  # a token from another browser's page: a cross-site form can not carry one
    foreign = csrf_of(other.get(f"{desk.base}/j/{token}").text)
    assert browser.post(f"{desk.base}/j/{token}", data={"csrf_token": foreign},
                        allow_redirects=False).status_code == 400
    assert events(desk.system, "redeemed") == []


def test_forged_and_mangled_tokens_open_nothing(desk):
    token = desk.links["ana@paper.example.com"]
    ana = sent(desk.system)["ana@paper.example.com"]
    tries = [
        portal.link_token("another-secret-of-more-than-32-characters", ana),  # the right id, a guessed key
        token[:-1] + ("A" if token[-1] != "A" else "B"),                       # one character off
        token.upper() if token.upper() != token else token.lower(),             # case
        token + "=",                                                            # padding
        token[:-2] + "..",                                                      # characters base64 would skip
        token.replace(token[0], "+", 1),                                        # the other alphabet
    ]
    for forged in tries:
        browser = redeem(desk.base, forged)
        assert browser.last.status_code in (403, 404), forged
        assert "distributor_portal" not in browser.cookies and "Riverland" not in browser.last.text


def test_a_token_of_delivery_zero_an_unknown_delivery_or_a_non_email_delivery_opens_nothing(desk):
    desk.clock.set(EMBARGO + timedelta(seconds=1))
    tick(desk)  # the newsroom's delivery is made at the lift
    [newsroom] = delivery_ids(desk.system, channel="newsroom")
    for delivery_id in (0, 10_000_000, newsroom):
        browser = redeem(desk.base, portal.link_token(SECRET, delivery_id))
        assert browser.last.status_code == 403, delivery_id
        assert "distributor_portal" not in browser.cookies
    test_copy = portal.link_token("a test copy opens nothing", 0)  # what a test email carries
    assert redeem(desk.base, test_copy).last.status_code == 403


def test_an_unvetted_members_released_copy_link_opens_nothing(desk):
    for target in ("tv@tv.example.org", "dave@weekly.example.com"):
        [row] = delivery_ids(desk.system, target=target, statement_id=SID, channel="email")
        browser = redeem(desk.base, portal.link_token(SECRET, row))
        if target == "tv@tv.example.org":  # vetted nowhere: no session at all
            assert browser.last.status_code == 403
        # dave is vetted on another list, not on this statement's: whatever the link gives, not this text
        assert browser.get(f"{desk.base}/portal/{SID}/").status_code in (403, 404)
        assert "Riverland" not in browser.get(f"{desk.base}/portal/").text
        assert browser.get(f"{desk.base}/portal/{SID}/media/photo.jpg/original").status_code in (403, 404)


def test_the_rate_limit_counts_redemptions_and_ignores_forwarded_addresses(desk):
    browser = requests.Session()
    page = browser.get(f"{desk.base}/j/{desk.links['bob@wire.example.net']}")  # a good link's page: no failure
    token = csrf_of(page.text)
    for n in range(20):  # valid-looking tokens, each from "another" client as a header claims
        forged = f"{n:02d}" + "B" * (portal.TOKEN_LENGTH - 2)
        reply = browser.post(f"{desk.base}/j/{forged}", data={"csrf_token": token},
                             headers={"X-Forwarded-For": f"203.0.113.{n}", "X-Real-IP": f"198.51.100.{n}"})
        assert reply.status_code == 403
    real = desk.links["ana@paper.example.com"]
    assert requests.get(f"{desk.base}/j/{real}", headers={"X-Forwarded-For": "192.0.2.1"}).status_code == 429
    assert browser.post(f"{desk.base}/j/{real}", data={"csrf_token": token}).status_code == 429
    assert "distributor_portal" not in browser.cookies


# -- another journalist's, another statement's ---------------------------------------------------------------------

def test_guessed_and_mangled_addresses_give_nothing(desk):
    browser = redeem(desk.base, desk.links["ana@paper.example.com"])
    cookie = {"distributor_portal": browser.cookies["distributor_portal"]}
    assert browser.get(f"{desk.base}/portal/{SID}/media/photo.jpg/original").status_code == 200
    photo = f"{ROOT}/portal/{SID}/media/photo.jpg"
    for path in (
        f"{ROOT}/portal/{SID.upper()}/",
        f"{ROOT}/portal/{SID}./",
        f"{ROOT}/portal/{SID}%2e/",
        f"{ROOT}/portal/{SID}%00/",
        f"{photo}/ORIGINAL", f"{photo}/original.", f"{photo}/original/", f"{photo}/..",
        f"{photo}/%2e%2e", f"{photo}/about.json", f"{photo}/about",
        f"{ROOT}/portal/{SID}/media/PHOTO.JPG/original",
        f"{ROOT}/portal/{SID}/media/photo.jpg./original",
        f"{ROOT}/portal/{SID}/media/photo.jpg%00/original",
        f"{ROOT}/portal/{SID}/media/..%2F..%2Fphoto.jpg/original",
        f"{ROOT}/portal/{SID}/media/%2e%2e/original",
        f"{ROOT}/portal/{SID}/media/photo.jpg%2Foriginal/original",
        f"{ROOT}/portal/{SID}/media/../../{SID}/media/photo.jpg/original",
        f"{ROOT}/portal/%2e%2e/{SID}/media/photo.jpg/original",
        f"{ROOT}/portal/{OTHER_ID}/media/photo.jpg/original",
        f"{ROOT}/portal/{SID}/media/photo.jpg/thumb/../original",
    ):
        status, headers, body = raw(desk, "GET", path, cookie)
        assert status in (301, 302, 308, 400, 403, 404), (path, status)
        assert b"\xff\xd8\xff" not in body[:4] and b"Riverland" not in body, path


def test_another_journalists_statement_and_its_media_stay_closed(desk, statement_file):
    system = desk.system
    other = statement_file(name="other.txt", reference="Index: TRO 01/002/2026", title="A statement for Other only")
    assert system.at("import", other, "--by", "sam").code == 0
    secret_photo = desk.tmp_path / "secret.jpg"
    secret_photo.write_bytes(mediafiles.jpeg(colour=(10, 200, 10)))
    assert system.at("media", "add", OTHER_ID, secret_photo, "--alt", "The other photo", "--by", "sam").code == 0
    assert system.at("approve", OTHER_ID, "--by", "maya").code == 0
    assert system.at("schedule", OTHER_ID, "--embargo", EMBARGO.isoformat(), "--lists", "other",
                     "--channels", "email").code == 0
    system.dispatcher.advance()
    system.dispatcher.deliver("email")
    assert set(sent(system, OTHER_ID)) == {"carol@radio.example.org", "dave@weekly.example.com"}
    carol = redeem(desk.base, portal.link_token(SECRET, sent(system, OTHER_ID)["carol@radio.example.org"]))
    assert carol.get(f"{desk.base}/portal/{OTHER_ID}/media/secret.jpg/original").status_code == 200
    ana = redeem(desk.base, desk.links["ana@paper.example.com"])
    assert "A statement for Other only" not in ana.get(f"{desk.base}/portal/").text
    assert ana.get(f"{desk.base}/portal/{OTHER_ID}/").status_code == 404
    for rendition in ("original", "large", "medium", "thumb"):
        assert ana.get(f"{desk.base}/portal/{OTHER_ID}/media/secret.jpg/{rendition}").status_code == 404
    # carol's session is hers: her cookie beside ana's changes nothing, and ana's cookie never opens carol's
    assert carol.get(f"{desk.base}/portal/{SID}/").status_code == 404
    mixed = requests.get(f"{desk.base}/portal/{OTHER_ID}/", cookies={
        "distributor_portal": ana.cookies["distributor_portal"]})
    assert mixed.status_code == 404


def test_a_statement_scheduled_without_email_is_not_opened_to_the_lists(desk, statement_file):
    """The portal opens an embargoed statement to those the email's rules send it to: with no email chosen for it,
    nobody is sent a copy, and the portal shows it to nobody before the lift."""
    system = desk.system
    other = statement_file(name="other.txt", reference="Index: TRO 01/002/2026", title="Only for the newsroom")
    assert system.at("import", other, "--by", "sam").code == 0
    assert system.at("approve", OTHER_ID, "--by", "maya").code == 0
    assert system.at("schedule", OTHER_ID, "--embargo", EMBARGO.isoformat(), "--channels", "newsroom").code == 0
    system.dispatcher.advance()
    system.dispatcher.deliver("email")
    assert sent(system, OTHER_ID) == {}  # no journalist was sent it
    ana = redeem(desk.base, desk.links["ana@paper.example.com"])
    assert "Only for the newsroom" not in ana.get(f"{desk.base}/portal/").text
    assert ana.get(f"{desk.base}/portal/{OTHER_ID}/").status_code == 404


def test_a_withdrawn_statement_scheduled_again_for_another_list_stays_closed_to_its_old_holders(desk, statement_file):
    """ana held the first copy; after a withdrawal the statement is sent again, to another list only. ana is not
    sent the new text, and the portal does not show it to her either."""
    system, clock = desk.system, desk.clock
    ana = redeem(desk.base, desk.links["ana@paper.example.com"])
    assert ana.get(f"{desk.base}/portal/{SID}/").status_code == 200
    assert system.at("withdraw", SID, "--by", "maya", "--reason", "legal", "--note", "A new text follows.").code == 0
    system.dispatcher.advance()
    system.dispatcher.deliver("email")
    clock.advance(60)
    changed = statement_file(body_extra="A PARAGRAPH ONLY THE OTHER LIST MAY READ.")
    assert system.at("import", changed, "--by", "sam").code == 0
    assert system.at("approve", SID, "--by", "maya").code == 0
    assert system.at("schedule", SID, "--embargo", EMBARGO.isoformat(), "--lists", "other",
                     "--channels", "email").code == 0
    system.dispatcher.advance()
    system.dispatcher.deliver("email")
    with reading(system.engine) as conn:
        second = {r.target for r in conn.execute(select(deliveries.c.target).where(
            deliveries.c.statement_id == SID, deliveries.c.channel == "email", deliveries.c.status == "sent",
            deliveries.c.generation == 2, deliveries.c.kind == "statement"))}
    assert "ana@paper.example.com" not in second and "carol@radio.example.org" in second
    page = ana.get(f"{desk.base}/portal/{SID}/")
    assert "A PARAGRAPH ONLY THE OTHER LIST MAY READ." not in page.text
    [notice] = delivery_ids(system, target="ana@paper.example.com", kind="withdrawal")
    again = redeem(desk.base, portal.link_token(SECRET, notice))  # the withdrawal notice's own link
    assert "A PARAGRAPH ONLY THE OTHER LIST MAY READ." not in again.get(f"{desk.base}/portal/{SID}/").text


def test_an_unapproved_correction_and_its_new_photo_stay_with_the_staff(desk, statement_file):
    system, clock = desk.system, desk.clock
    clock.set(EMBARGO + timedelta(seconds=1))
    tick(desk)
    newer = desk.tmp_path / "newer.jpg"
    newer.write_bytes(mediafiles.jpeg(colour=(0, 0, 200)))
    assert system.at("media", "add", SID, newer, "--alt", "A new photo", "--by", "sam").code == 0
    changed = statement_file(body_extra="A DRAFT CORRECTION NOBODY APPROVED.")
    assert system.at("import", changed, "--by", "sam").code == 0  # a .txt keeps the media of the revision before
    ana = redeem(desk.base, desk.links["ana@paper.example.com"])
    page = ana.get(f"{desk.base}/portal/{SID}/")
    assert page.status_code == 200 and "A DRAFT CORRECTION NOBODY APPROVED." not in page.text
    assert "newer.jpg" not in page.text
    assert ana.get(f"{desk.base}/portal/{SID}/media/newer.jpg/original").status_code == 404
    item = items_of(system)["newer.jpg"]
    assert requests.get(newsroom_url(desk, item)).status_code == 404
    assert not (desk.site / SID / media.public_path(SID, item)).exists()
    anonymous = requests.get(f"{desk.base}/statements/{SID}/media/newer.jpg/original", allow_redirects=False)
    assert anonymous.status_code == 302 and "/login" in anonymous.headers["Location"]


# -- withdrawn, retracted ------------------------------------------------------------------------------------------

def test_a_withdrawn_statements_media_and_text_answer_nothing(desk):
    ana = redeem(desk.base, desk.links["ana@paper.example.com"])
    assert desk.system.at("withdraw", SID, "--by", "maya", "--reason", "legal", "--note", "Gone.").code == 0
    for rendition in ("original", "large", "medium", "thumb"):
        reply = ana.get(f"{desk.base}/portal/{SID}/media/photo.jpg/{rendition}")
        assert reply.status_code == 404 and not reply.content.startswith(b"\xff\xd8")
    page = ana.get(f"{desk.base}/portal/{SID}/")
    assert "Riverland" not in page.text and ALT not in page.text and "photo.jpg" not in page.text


def test_a_retraction_closes_the_portal_and_the_newsroom_to_its_media(desk):
    system, clock = desk.system, desk.clock
    item = items_of(system)["photo.jpg"]
    clock.set(EMBARGO + timedelta(seconds=1))
    tick(desk)
    assert requests.get(newsroom_url(desk, item)).status_code == 200
    ana = redeem(desk.base, desk.links["ana@paper.example.com"])
    assert ana.get(f"{desk.base}/portal/{SID}/media/photo.jpg/original").status_code == 200
    assert system.at("retract", SID, "--by", "maya", "--reason", "wrong").code == 0
    desk.app.extensions["newsroom"].forget()
    for rendition in (media.ORIGINAL, *media.RENDITIONS):  # before the newsroom's delivery: the record says retracted
        assert requests.get(newsroom_url(desk, item, rendition)).status_code == 404
    tick(desk)
    assert not (desk.site / SID / "media").exists()
    for rendition in (media.ORIGINAL, *media.RENDITIONS):
        assert requests.get(newsroom_url(desk, item, rendition)).status_code == 404
        assert ana.get(f"{desk.base}/portal/{SID}/media/photo.jpg/{rendition}").status_code == 404
    assert ana.get(f"{desk.base}/portal/{SID}/").status_code == 404
    assert "Riverland" not in ana.get(f"{desk.base}/portal/").text


# -- the newsroom before the lift ----------------------------------------------------------------------------------

def test_the_newsroom_has_no_media_of_an_embargoed_statement_and_serves_none(desk):
    item = items_of(desk.system)["photo.jpg"]
    tick(desk)  # every channel delivered what is due before the lift
    assert not (desk.site / SID).exists()
    unknown = requests.get(f"{desk.base}/news/tro-99-999-2026/")
    for rendition in (media.ORIGINAL, *media.RENDITIONS):
        for method in ("GET", "HEAD"):
            reply = requests.request(method, newsroom_url(desk, item, rendition))
            assert reply.status_code == 404
            if method == "GET":
                assert reply.content == unknown.content
    # even a file put there by hand (a restore, another tool) is not served before the lift
    target = desk.site / SID / media.public_path(SID, item)
    target.parent.mkdir(parents=True)
    target.write_bytes(media.store_of(desk.system.config).read(item))
    desk.app.extensions["newsroom"].forget()
    assert requests.get(newsroom_url(desk, item)).status_code == 404
    status, _, body = raw(desk, "GET", f"{ROOT}/news/{SID}/media/{target.parent.name}/photo.jpg")
    assert status == 404 and body == unknown.content
    for path in (f"{ROOT}/news/{SID}/media/{target.parent.name}/", f"{ROOT}/news/{SID}/media/",
                 f"{ROOT}/news/{SID}/media/{target.parent.name}/..%2F..%2Findex.html",
                 f"{ROOT}/news/{SID}/media/{target.parent.name.upper()}/photo.jpg",
                 f"{ROOT}/news/{SID}/media/{target.parent.name}/photo.jpg.",
                 f"{ROOT}/news/{SID.upper()}/media/{target.parent.name}/photo.jpg",
                 f"{ROOT}/news/x/../{SID}/media/{target.parent.name}/photo.jpg",
                 f"{ROOT}/news/{SID}%2Fmedia%2F{target.parent.name}%2Fphoto.jpg"):
        status, _, body = raw(desk, "GET", path)
        assert status in (301, 404, 405) and not body.startswith(b"\xff\xd8"), path


def test_the_newsroom_serves_only_its_four_types_after_the_lift(desk):
    desk.clock.set(EMBARGO + timedelta(seconds=1))
    tick(desk)
    item = items_of(desk.system)["photo.jpg"]
    reply = requests.get(newsroom_url(desk, item))
    assert reply.status_code == 200 and reply.headers["Content-Type"] == "image/jpeg"
    assert reply.headers["X-Content-Type-Options"] == "nosniff" and mediafiles.leaks(reply.content) == []
    planted = desk.site / SID / media.public_path(SID, item).replace("photo.jpg", "page.jpg")
    planted.write_bytes(b"<html><script>alert(1)</script></html>")
    desk.app.extensions["newsroom"].forget()
    status, _, body = raw(desk, "GET", f"{ROOT}/news/{SID}/{media.public_path(SID, item).replace('photo', 'page')}")
    assert status == 404 and b"<script>" not in body
    assert requests.post(newsroom_url(desk, item)).status_code == 405


# -- sessions that should have ended ------------------------------------------------------------------------------

def test_a_session_ends_when_its_journalist_is_taken_off_every_list(desk):
    ana = redeem(desk.base, desk.links["ana@paper.example.com"])
    assert ana.get(f"{desk.base}/portal/{SID}/").status_code == 200
    without = desk.tmp_path / "without-ana.csv"
    without.write_text("email,name,outlet,embargo_ok\nbob@wire.example.net,Bob Ng,Wire Service,yes\n")
    assert desk.system.cli("recipients", "import", without, "--list", "embargo", "--replace").code == 0
    for path in ("/portal/", f"/portal/{SID}/", f"/portal/{SID}/media/photo.jpg/original", "/portal/settings"):
        reply = ana.get(f"{desk.base}{path}")
        assert reply.status_code == 403 and "Riverland" not in reply.text, path
    assert redeem(desk.base, desk.links["ana@paper.example.com"]).last.status_code == 403


def test_a_session_ends_when_de_vetted_on_the_only_list_it_was_vetted_on_and_after_session_hours(desk):
    bob = redeem(desk.base, desk.links["bob@wire.example.net"])
    ana = redeem(desk.base, desk.links["ana@paper.example.com"])
    devetted = desk.tmp_path / "devetted.csv"
    devetted.write_text("email,name,outlet,embargo_ok\nbob@wire.example.net,Bob Ng,Wire Service,no\n")
    assert desk.system.cli("recipients", "import", devetted, "--list", "embargo").code == 0
    assert bob.get(f"{desk.base}/portal/{SID}/media/photo.jpg/original").status_code == 403
    assert redeem(desk.base, desk.links["bob@wire.example.net"]).last.status_code == 403
    desk.clock.advance(24 * 3600)
    assert ana.get(f"{desk.base}/portal/{SID}/media/photo.jpg/thumb").status_code == 403


def test_a_logged_out_or_revoked_cookie_replayed_opens_nothing(desk):
    ana = redeem(desk.base, desk.links["ana@paper.example.com"])
    cookie = ana.cookies["distributor_portal"]
    page = ana.get(f"{desk.base}/portal/")
    assert ana.post(f"{desk.base}/portal/logout", data={"csrf_token": csrf_of(page.text)}).status_code == 403
    replay = requests.get(f"{desk.base}/portal/{SID}/", cookies={"distributor_portal": cookie})
    assert replay.status_code == 403 and "Riverland" not in replay.text
    bob = redeem(desk.base, desk.links["bob@wire.example.net"])
    cookie = bob.cookies["distributor_portal"]
    assert desk.system.at("recipients", "revoke", "bob@wire.example.net", "--by", "kim").code == 0
    desk.clock.advance(60)
    assert requests.get(f"{desk.base}/portal/{SID}/", cookies={"distributor_portal": cookie}).status_code == 403
    assert redeem(desk.base, desk.links["bob@wire.example.net"]).last.status_code == 403  # the old link too


def test_a_session_cookie_is_not_its_hash_and_a_long_or_odd_cookie_opens_nothing(desk):
    ana = redeem(desk.base, desk.links["ana@paper.example.com"])
    with reading(desk.system.engine) as conn:
        [stored] = conn.execute(select(portal_sessions.c.id)).scalars().all()
    assert stored != ana.cookies["distributor_portal"]
    for value in (stored, "", "x" * 5000, ana.cookies["distributor_portal"] + "x", "%00"):
        assert requests.get(f"{desk.base}/portal/", cookies={"distributor_portal": value}).status_code == 403


# -- staff and journalists apart -----------------------------------------------------------------------------------

def test_a_portal_cookie_is_no_staff_session_and_a_staff_session_no_portal_one(desk):
    ana = redeem(desk.base, desk.links["ana@paper.example.com"])
    for path in ("/", f"/statements/{SID}", f"/statements/{SID}/media/photo.jpg/thumb",
                 f"/statements/{SID}/media/photo.jpg/original", f"/statements/{SID}/email.html",
                 f"/statements/{SID}/views.csv", "/recipients/ana@paper.example.com", "/audit"):
        reply = ana.get(f"{desk.base}{path}", allow_redirects=False)
        assert reply.status_code == 302 and "/login" in reply.headers["Location"], path
    page = ana.get(f"{desk.base}/portal/")
    act = ana.post(f"{desk.base}/statements/{SID}/withdraw", data={"csrf_token": csrf_of(page.text),
                                                                   "reason": "x"}, allow_redirects=False)
    assert act.status_code == 302 and "/login" in act.headers["Location"]
    with reading(desk.system.engine) as conn:
        assert workflow.get(conn, SID)["status"] == "scheduled"
    maya = staff(desk)
    for path in ("/portal/", f"/portal/{SID}/", f"/portal/{SID}/media/photo.jpg/original", "/portal/settings"):
        assert maya.get(f"{desk.base}{path}").status_code == 403, path


def test_the_staffs_thumbnails_need_a_login(desk):
    for rendition in ("thumb", "original", "large"):
        reply = requests.get(f"{desk.base}/statements/{SID}/media/photo.jpg/{rendition}", allow_redirects=False)
        assert reply.status_code == 302 and not reply.content.startswith(b"\xff\xd8")
    maya = staff(desk)
    thumb = maya.get(f"{desk.base}/statements/{SID}/media/photo.jpg/thumb")
    assert thumb.status_code == 200 and thumb.headers["Cache-Control"] == "no-store"
    assert mediafiles.leaks(thumb.content) == []
    assert maya.get(f"{desk.base}/statements/{SID}/media/photo.jpg/large").status_code == 404


# -- forged requests and redirects ---------------------------------------------------------------------------------

def test_the_portals_forms_need_their_csrf_token(desk):
    ana = redeem(desk.base, desk.links["ana@paper.example.com"], agree=False)
    assert ana.post(f"{desk.base}/portal/terms", data={"agree": "yes"}).status_code == 400
    assert events(desk.system, "agreed") == []
    ana = redeem(desk.base, desk.links["ana@paper.example.com"])
    for data in ({"change": "unsubscribe"}, {"change": "language", "language": "fr"},
                 {"change": "join", "list": "health"}):
        assert ana.post(f"{desk.base}/portal/settings", data=data).status_code == 400
        assert ana.post(f"{desk.base}/portal/settings", data={**data, "csrf_token": "x"}).status_code == 400
    assert ana.post(f"{desk.base}/portal/logout").status_code == 400
    assert ana.get(f"{desk.base}/portal/{SID}/").status_code == 200  # still subscribed, still in
    listed = desk.system.cli("recipients", "list", "--list", "health", "--format", "json").out
    assert "ana@paper.example.com" not in listed


@pytest.mark.parametrize("target", ["//evil.example.org/", "https://evil.example.org/", "/\\evil.example.org",
                                    "%2F%2Fevil.example.org", "tro-01-001-2026/../../../x", "\r\nSet-Cookie: x=1",
                                    "javascript:alert(1)"])
def test_the_terms_never_redirect_off_the_portal(desk, target):
    ana = redeem(desk.base, desk.links["ana@paper.example.com"], agree=False)
    page = ana.get(f"{desk.base}/portal/terms", params={"next": target})
    reply = ana.post(f"{desk.base}/portal/terms", params={"next": target},
                     data={"csrf_token": csrf_of(page.text), "agree": "yes"}, allow_redirects=False)
    assert reply.status_code == 302
    location = reply.headers["Location"]
    assert location.startswith(f"{ROOT}/portal/") or location.startswith(f"http://127.0.0.1:{desk.port}{ROOT}/portal/")
    assert "evil" not in location and "\n" not in location and "x=1" not in reply.headers.get("Set-Cookie", "")


# -- injected markup and headers -----------------------------------------------------------------------------------

MARKDOWN = """---
reference: "Index: TRO 01/003/2026"
title: "<script>alert('title')</script> Eastbrook"
language: "en\\" onmouseover=\\"alert(1)"
media:
  - file: field-visit.jpg
    alt: "\\"><script>alert('alt')</script>"
    caption: "<img src=x onerror=alert('caption')>"
    credit: "</p><iframe src=//evil.example.org>"
    licence: "<a href=javascript:alert(1)>CC</a>"
---
Residents said <script>alert('body')</script> and <img src=x onerror=alert(2)>.

[a link](javascript:alert('link')) and [another](data:text/html,<script>alert(3)</script>)
"""
INJECTED = ("<script>alert(", "<img src=x", "<iframe", "onmouseover=\"alert", "href=\"javascript:",
            "<a href=javascript:", "href=\"data:", "<img src=x onerror=alert")


def import_markdown(maya, base: str, text: str, files: dict[str, bytes]) -> requests.Response:
    page = maya.get(f"{base}/")
    return maya.post(f"{base}/import", data={"csrf_token": csrf_of(page.text)}, files=[
        ("file", ("statement.md", text.encode(), "text/markdown")),
        *[("media", (name, data, "application/octet-stream")) for name, data in files.items()]])


def test_markup_in_a_statement_its_media_and_the_settings_is_shown_as_text(desk):
    system = desk.system
    maya = staff(desk)
    reply = import_markdown(maya, desk.base, MARKDOWN, {"field-visit.jpg": mediafiles.jpeg()})
    assert reply.status_code == 200 and "tro-01-003-2026" in reply.url, reply.text[:2000]
    sid = "tro-01-003-2026"
    assert system.at("approve", sid, "--by", "maya").code == 0
    assert system.at("schedule", sid, "--embargo", EMBARGO.isoformat(), "--channels", "email").code == 0
    system.dispatcher.advance()
    system.dispatcher.deliver("email")
    ana = redeem(desk.base, portal.link_token(SECRET, sent(system, sid)["ana@paper.example.com"]))
    for path in ("/portal/", f"/portal/{sid}/"):
        page = ana.get(f"{desk.base}{path}")
        assert page.status_code == 200 and "Eastbrook" in page.text
        for bad in INJECTED:
            assert bad not in page.text, (path, bad)
        assert "script-src" not in page.headers["Content-Security-Policy"]
        assert "default-src 'none'" in page.headers["Content-Security-Policy"]
    for field, value in (("language", "<script>alert(1)</script>"), ("language", "en\" onfocus=\"alert(1)"),
                         ("list", "<script>alert(1)</script>")):
        page = ana.get(f"{desk.base}/portal/settings")
        change = "language" if field == "language" else "join"
        reply = ana.post(f"{desk.base}/portal/settings", data={"csrf_token": csrf_of(page.text), "change": change,
                                                                field: value})
        assert reply.status_code == 400
        assert "<script>" not in reply.text and "onfocus=\"alert" not in reply.text


def test_an_uploaded_files_name_never_breaks_the_download_header(desk):
    maya = staff(desk)
    page = maya.get(f"{desk.base}/statements/{SID}")
    evil = 'x"; filename*=UTF-8\'\'evil.html; a=".jpg'
    reply = maya.post(f"{desk.base}/statements/{SID}/media", data={"csrf_token": csrf_of(page.text), "alt": ALT},
                      files={"file": (evil, mediafiles.jpeg(colour=(1, 2, 3)), "image/jpeg")})
    assert reply.status_code == 200
    names = set(items_of(desk.system))
    assert len(names) == 2
    for name in names:
        assert re.fullmatch(r"[a-z0-9][a-z0-9-]*\.(jpg|png|webp|pdf)", name), name
    assert desk.system.at("approve", SID, "--by", "maya").code == 0
    assert desk.system.at("schedule", SID, "--embargo", EMBARGO.isoformat(), "--channels", "email").code == 0
    ana = redeem(desk.base, desk.links["ana@paper.example.com"])
    [new] = names - {"photo.jpg"}
    for rendition in ("original", "thumb"):
        download = ana.get(f"{desk.base}/portal/{SID}/media/{new}/{rendition}")
        assert download.status_code == 200
        disposition = download.headers["Content-Disposition"]
        assert disposition.count('"') == 2 and "evil.html" not in disposition and "*=" not in disposition
        assert download.headers["Content-Type"] == "image/jpeg" and mediafiles.leaks(download.content) == []
    thumb = maya.get(f"{desk.base}/statements/{SID}/media/{new}/thumb")
    assert thumb.headers["Content-Disposition"].count('"') == 2 and "evil.html" not in thumb.headers[
        "Content-Disposition"]


# -- uploads -------------------------------------------------------------------------------------------------------

class Writes:
    """Every file this process opens for writing while armed, by its path: Python's own audit events, no stand-in
    for any part of the app."""

    installed = None

    def __init__(self):
        self.armed = False
        self.paths: list[str] = []

    @classmethod
    def watch(cls) -> "Writes":
        if cls.installed is None:
            cls.installed = cls()
            sys.addaudithook(cls.installed.hook)
        cls.installed.paths = []
        return cls.installed

    def hook(self, event, args):
        if not self.armed or event != "open":
            return
        path, mode, flags = args
        writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
            mode is None and isinstance(flags, int) and flags & 3)
        if writing and path is not None:
            self.paths.append(str(path))


@pytest.fixture
def writes():
    found = Writes.watch()
    found.armed = True
    yield found
    found.armed = False


def written_outside(writes, system) -> list[str]:
    """The files written outside the media store: the upload as it came, with its metadata, would be one."""
    store = str(Path(system.config.paths.media).resolve())
    database = str(Path(system.config_path).parent.resolve())
    return [p for p in writes.paths if not (p.startswith(store) or (p.startswith(database) and p.endswith(
        (".db", ".db-journal", ".db-wal", ".sqlite", "-journal", "-wal", "-shm"))))]


def test_a_photo_added_on_the_statement_page_reaches_the_disk_only_as_its_stripped_copies(desk, writes):
    maya = staff(desk)
    page = maya.get(f"{desk.base}/statements/{SID}")
    photo = mediafiles.noise_jpeg(400_000)
    reply = maya.post(f"{desk.base}/statements/{SID}/media", data={"csrf_token": csrf_of(page.text), "alt": ALT},
                      files={"file": ("noise.jpg", photo, "image/jpeg")})
    assert reply.status_code == 200 and "noise.jpg" in items_of(desk.system)
    assert written_outside(writes, desk.system) == []


def test_the_media_uploaded_with_a_markdown_statement_reach_the_disk_only_as_their_stripped_copies(desk, writes):
    maya = staff(desk)
    text = MARKDOWN.replace('language: "en\\" onmouseover=\\"alert(1)"\n', "")
    reply = import_markdown(maya, desk.base, text, {"field-visit.jpg": mediafiles.jpeg()})
    assert reply.status_code == 200 and "tro-01-003-2026" in reply.url
    assert [p for p in written_outside(writes, desk.system) if p.endswith("field-visit.jpg")] == []


def test_a_large_photo_is_not_spooled_to_disk_by_the_server(desk, writes):
    import os

    maya = staff(desk)
    page = maya.get(f"{desk.base}/statements/{SID}")
    photo = mediafiles.noise_jpeg(2_000_000)  # a phone's photo: a few megabytes
    reply = maya.post(f"{desk.base}/statements/{SID}/media", data={"csrf_token": csrf_of(page.text), "alt": ALT},
                      files={"file": ("big.jpg", photo, "image/jpeg")})
    assert reply.status_code == 200 and "big.jpg" in items_of(desk.system)
    temporary = [p for p in writes.paths if not os.path.splitext(p)[1]]  # an unnamed temporary file: its folder
    assert written_outside(writes, desk.system) == [], temporary


def test_the_upload_limit_holds_with_a_lying_or_missing_length(desk):
    maya = staff(desk)
    page = maya.get(f"{desk.base}/statements/{SID}")
    limit = desk.system.config.media.max_bytes + 64 * 1024
    too_big = maya.post(f"{desk.base}/statements/{SID}/media", data={"csrf_token": csrf_of(page.text), "alt": ALT},
                        files={"file": ("huge.jpg", b"\xff\xd8\xff" + b"0" * limit, "image/jpeg")})
    assert too_big.status_code == 413

    def chunks():
        boundary = b"--x\r\n"
        yield boundary + b'Content-Disposition: form-data; name="csrf_token"\r\n\r\n' + csrf_of(page.text).encode()
        yield b"\r\n" + boundary + b'Content-Disposition: form-data; name="alt"\r\n\r\n' + ALT.encode()
        yield b"\r\n" + boundary + b'Content-Disposition: form-data; name="file"; filename="huge.jpg"\r\n\r\n'
        for _ in range(limit // (1 << 20) + 2):
            yield b"0" * (1 << 20)
        yield b"\r\n--x--\r\n"
    chunked = maya.post(f"{desk.base}/statements/{SID}/media", data=chunks(),
                        headers={"Content-Type": "multipart/form-data; boundary=x"})
    assert chunked.status_code in (400, 413)
    assert set(items_of(desk.system)) == {"photo.jpg"}


def test_a_markdown_import_never_reads_a_file_outside_its_own_uploads(desk):
    maya = staff(desk)
    store = media.store_of(desk.system.config)
    kept = store.rendition(items_of(desk.system)["photo.jpg"]).path
    outside = desk.tmp_path / "outside.jpg"
    outside.write_bytes(mediafiles.jpeg(colour=(9, 9, 9)))
    for listed in (str(outside), "../outside.jpg", str(kept), "../../" * 8 + str(kept).lstrip("/"), "..",
                   "~/outside.jpg", "/dev/zero", "/proc/self/environ"):
        text = (f'---\nreference: "Index: TRO 01/004/2026"\ntitle: Outside\nmedia:\n  - file: "{listed}"\n'
                f"    alt: x\n---\nText.\n")
        reply = import_markdown(maya, desk.base, text, {})
        assert reply.status_code == 400, listed
        assert "/tmp" not in reply.text and str(desk.tmp_path) not in reply.text, listed
        assert desk.system.at("show", "tro-01-004-2026").code == 2


def test_a_markdown_import_listing_its_own_folder_names_no_server_path(desk):
    maya = staff(desk)
    text = ('---\nreference: "Index: TRO 01/004/2026"\ntitle: Outside\nmedia:\n  - file: "."\n'
            "    alt: x\n---\nText.\n")
    reply = import_markdown(maya, desk.base, text, {})
    assert desk.system.at("show", "tro-01-004-2026").code == 2
    assert "/tmp" not in reply.text and "is a folder" not in reply.text
