"""The newsroom: a page per released statement, written at the lift and not a moment before, served at /news/ from
the database's record of the release; corrected with a change note, replaced by a notice at a retraction."""

import json
import re
import threading
from datetime import timedelta
from pathlib import Path

import pytest

from distributor.clock import FixedClock
from distributor.web import create_app
from tests.channels.conftest import SID, file_wire, fixed_now, mastodon
from tests.conftest import System

SECRET = "a-test-secret-of-more-than-32-characters!"
URL = "https://press.example.org/news/"
NEWSROOM = f'\n[channels.newsroom]\ndirectory = "out/news"\nurl = "{URL}"\n'
WEB = '\n[web]\nsecret_env = "TEST_WEB_SECRET"\n'


def without_public_url(path: Path) -> Path:
    """The config with no office.public_url: links go to the newsroom."""
    path.write_text(re.sub(r"(?m)^public_url = .*\n", "", path.read_text(encoding="utf-8")), encoding="utf-8")
    return path


@pytest.fixture
def office(write_config, run, scheduled, monkeypatch, tmp_path):
    """An office with a newsroom, a file wire and a Mastodon account; the statement scheduled ten minutes ahead."""
    monkeypatch.setenv("TEST_WEB_SECRET", SECRET)
    systems = []

    def make(database_clock=None, extra: str = ""):
        clock = fixed_now()
        path = without_public_url(write_config(extra=NEWSROOM + file_wire() + mastodon("", transport="file") + WEB
                                               + extra))
        system = System(path, clock, run, database_clock)
        systems.append(system)
        csv = tmp_path / "r.csv"
        csv.write_text("email,name,embargo_ok\nana@paper.example.com,Ana,yes\ntv@tv.example.org,Tess,no\n")
        assert system.cli("recipients", "import", csv, "--list", "embargo").code == 0
        embargo = scheduled(system, channels="email,wire,mastodon")
        app = create_app(system.config, system.engine, clock)
        app.config["TESTING"] = True
        app.extensions["newsroom"].database_clock = database_clock  # as the workers': the test's stand-in
        return system, clock, embargo, app
    yield make
    for system in systems:
        system.close()


def site(system) -> Path:
    return system.config_path.parent / "out" / "news"


def tick(system) -> None:
    system.dispatcher.advance()
    for name in system.channels:
        system.dispatcher.deliver(name)


def lifted(system, clock, embargo) -> None:
    clock.set(embargo + timedelta(milliseconds=1))
    tick(system)


def test_nothing_exists_before_the_lift_and_the_page_answers_as_an_unknown_id(office):
    system, clock, embargo, app = office()
    tick(system)  # the embargoed email goes; nothing public does
    assert not site(system).exists()
    client = app.test_client()
    unknown, early = client.get("/news/no-such-statement/"), client.get(f"/news/{SID}/")
    assert early.status_code == unknown.status_code == 404
    assert early.get_data() == unknown.get_data() and early.headers == unknown.headers
    assert early.headers["Cache-Control"] == "no-store"  # a cache keeps no 404 past the lift
    assert client.get(f"/news/{SID}").headers["Location"] == f"/news/{SID}/"  # for any id alike
    assert client.get("/news/no-such-statement").headers["Location"] == "/news/no-such-statement/"


def test_a_page_planted_early_is_still_not_served_before_the_lift(office):
    """The answer comes from the record of the release, never from whether a file is there."""
    system, clock, embargo, app = office()
    page = site(system) / SID / "index.html"
    page.parent.mkdir(parents=True)
    page.write_text("<p>leaked</p>", encoding="utf-8")
    client = app.test_client()
    assert client.get(f"/news/{SID}/").status_code == 404
    clock.set(embargo + timedelta(seconds=1))
    assert client.get(f"/news/{SID}/").status_code == 404  # past the embargo, but not released yet
    tick(system)
    app.extensions["newsroom"].forget()
    reply = client.get(f"/news/{SID}/")
    assert reply.status_code == 200 and "leaked" not in reply.get_data(as_text=True)


def test_a_worker_clock_running_ahead_of_the_databases_publishes_nothing_early(office):
    database = FixedClock(fixed_now().now())
    system, clock, embargo, app = office(database_clock=database)
    clock.set(embargo + timedelta(seconds=5))  # this worker thinks the embargo has passed; the database does not
    database.set(embargo - timedelta(seconds=5))
    tick(system)
    assert not site(system).exists()
    assert app.test_client().get(f"/news/{SID}/").status_code == 404


def test_at_the_lift_the_page_index_sitemap_and_robots_are_written_and_served(office):
    system, clock, embargo, app = office()
    lifted(system, clock, embargo)
    page = (site(system) / SID / "index.html").read_text(encoding="utf-8")
    assert "Riverland: Flood maps must be published" in page and "must publish its flood maps" in page
    assert "Index: TRO 01/001/2026" in page and "+44 20 7946 0000" in page  # reference and contacts
    index = (site(system) / "index.html").read_text(encoding="utf-8")
    assert f'href="{URL}{SID}/"' in index
    assert f"<loc>{URL}{SID}/</loc>" in (site(system) / "sitemap.xml").read_text(encoding="utf-8")
    assert f"Sitemap: {URL}sitemap.xml" in (site(system) / "robots.txt").read_text(encoding="utf-8")
    client = app.test_client()
    reply = client.get(f"/news/{SID}/")
    assert reply.status_code == 200 and reply.get_data(as_text=True) == page
    assert reply.headers["Cache-Control"] == "public, max-age=300"
    assert reply.headers["X-Content-Type-Options"] == "nosniff"
    assert client.get("/news/").get_data(as_text=True) == index
    assert client.get("/news/sitemap.xml").headers["Content-Type"] == "application/xml"
    assert client.post(f"/news/{SID}/").status_code == 405
    assert client.get("/news/../config/").status_code == 404
    row = [r for r in json.loads(system.cli("log", SID, "--format", "json").out) if r["channel"] == "newsroom"]
    assert [(r["target"], r["status"], r["remote_id"]) for r in row] == [(URL, "sent", f"{URL}{SID}/")]


def test_the_page_carries_canonical_open_graph_twitter_and_json_ld(office):
    system, clock, embargo, app = office()
    lifted(system, clock, embargo)
    page = (site(system) / SID / "index.html").read_text(encoding="utf-8")
    assert f'<link rel="canonical" href="{URL}{SID}/">' in page
    assert '<meta property="og:title" content="Riverland: Flood maps must be published">' in page
    assert f'<meta property="og:url" content="{URL}{SID}/">' in page
    assert '<meta name="twitter:card" content="summary">' in page
    assert re.search(r'<meta property="og:description" content="The Test Rights Office said today', page)
    data = json.loads(re.search(r'<script type="application/ld\+json">(.*?)</script>', page, re.S).group(1))
    assert data["@type"] == "NewsArticle" and data["headline"] == "Riverland: Flood maps must be published"
    assert data["datePublished"] == data["dateModified"] and data["publisher"]["name"]
    assert "<script>" not in page and "http://" not in page.replace(URL, "")  # nothing to run, nothing from elsewhere


def test_a_correction_adds_a_change_note_and_the_date_modified(office, statement_file):
    system, clock, embargo, app = office()
    lifted(system, clock, embargo)
    newer = statement_file(name="v2.txt", body_extra="A corrected figure.")
    assert system.cli("import", newer, "--revision-of", SID, "--note", "The figure was 3,200.").code == 0
    assert system.cli("approve", SID, "--by", "Maya").code == 0
    clock.advance(3600)
    assert system.at("correct", SID, "--by", "Maya", "--reason", "figure").code == 0
    tick(system)
    page = (site(system) / SID / "index.html").read_text(encoding="utf-8")
    assert "A corrected figure." in page and "Changes to this release" in page
    assert "corrected. The figure was 3,200." in page
    data = json.loads(re.search(r'<script type="application/ld\+json">(.*?)</script>', page, re.S).group(1))
    assert data["dateModified"] > data["datePublished"]


def test_a_retraction_leaves_a_notice_without_the_text_and_serve_answers_410(office):
    system, clock, embargo, app = office()
    lifted(system, clock, embargo)
    client = app.test_client()
    assert client.get(f"/news/{SID}/").status_code == 200
    assert system.at("retract", SID, "--by", "Maya", "--reason", "wrong", "--note", "Withdrawn in full.").code == 0
    tick(system)
    page = (site(system) / SID / "index.html").read_text(encoding="utf-8")
    assert "This release was retracted" in page and "Withdrawn in full." in page
    assert "Flood maps" not in page and "flood maps" not in page and "nobody listened" not in page
    app.extensions["newsroom"].forget()
    reply = client.get(f"/news/{SID}/")
    assert reply.status_code == 410 and reply.get_data(as_text=True) == page
    assert SID not in (site(system) / "index.html").read_text(encoding="utf-8")
    assert SID not in (site(system) / "sitemap.xml").read_text(encoding="utf-8")


def test_a_withdrawn_statement_never_has_a_page(office):
    system, clock, embargo, app = office()
    assert system.at("withdraw", SID, "--by", "Maya", "--reason", "held back").code == 0
    lifted(system, clock, embargo)
    assert not (site(system) / SID).exists()
    assert app.test_client().get(f"/news/{SID}/").status_code == 404


def test_every_link_in_a_released_email_post_and_wire_item_is_the_page(office):
    system, clock, embargo, app = office()
    lifted(system, clock, embargo)
    out = system.config_path.parent / "out"
    link = f"{URL}{SID}/"
    mail = system.config_path.parent / "outbox"
    released_email = next(p for p in mail.rglob("*.eml") if "tv@tv.example.org" in p.name).read_text(encoding="utf-8")
    post = next(out.rglob(f"{SID}*masto*.json")).read_text(encoding="utf-8")
    wire = next((out / "wire").rglob("*.json")).read_text(encoding="utf-8")
    for name, text in (("email", released_email), ("post", post), ("wire", wire)):
        found = set(re.findall(r"https://press\.example\.org/news/[^\s\"'<>\\]*", text))
        assert found == {link}, (name, found)
    assert app.test_client().get(link.removeprefix("https://press.example.org")).status_code == 200


def test_the_page_stays_whole_while_it_is_rewritten(office):
    system, clock, embargo, app = office()
    lifted(system, clock, embargo)
    newsroom = system.channels["newsroom"]
    page = site(system) / SID / "index.html"
    whole = page.read_text(encoding="utf-8")
    stop, torn = threading.Event(), []

    def read() -> None:
        while not stop.is_set():
            text = page.read_text(encoding="utf-8")
            if text != whole:
                torn.append(len(text))

    readers = [threading.Thread(target=read) for _ in range(2)]
    for reader in readers:
        reader.start()
    for _ in range(60):
        newsroom.publish(SID)
    stop.set()
    for reader in readers:
        reader.join()
    assert torn == []


def test_the_site_and_its_feed_by_default(make_system, run, write_config):
    path = without_public_url(write_config(extra=NEWSROOM + '\n[channels.feed]\n'))
    from distributor.channels import load_config
    config = load_config(path)
    assert config.channels["feed"].path == config.channels["newsroom"].directory / "feed.atom"
    assert config.channels["feed"].link == f"{URL}feed.atom"
    assert config.office.public_link(SID) == f"{URL}{SID}/"
    bare = write_config(extra='\n[channels.newsroom]\n', name="bare.toml")
    result = run(bare, "list")
    assert result.code == 2 and "channels.newsroom.url" in result.err and len(result.err.strip().splitlines()) == 1
