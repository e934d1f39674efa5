"""The newsroom's photos and documents: copied from the media store (their metadata stripped) beside the page at the
lift and not a moment before, each file whole or not at all; shown on the page (srcset, alt, caption, credit,
licence, downloads with their sizes, Open Graph); served at /news/ under the same guard as the page; changed by a
correction and removed by a retraction."""

import json
import re
import threading
from datetime import timedelta
from html.parser import HTMLParser
from pathlib import Path

import pytest

from distributor import media
from distributor.clock import FixedClock
from distributor.statements.model import Statement
from distributor.web import create_app
from tests import mediafiles
from tests.channels.conftest import SID, fixed_now

SECRET = "a-test-secret-of-more-than-32-characters!"
URL = "https://press.example.org/news/"
CONFIG = (f'\n[channels.newsroom]\ndirectory = "out/news"\nurl = "{URL}"\n'
          '\n[web]\nsecret_env = "TEST_WEB_SECRET"\n')
PHOTO = {"alt": "Sandbags stacked against the red door of a flooded house",
         "caption": "Eastbrook, 3 December 2026", "credit": "Photo: A. Reporter / TRO", "licence": "CC BY 4.0"}
REPORT_TITLE = "Flood maps: the full report"
REPORT_LICENCE = "CC BY-NC 4.0"


class Tags(HTMLParser):
    """Every start tag of a page, with its attributes."""

    def __init__(self, html: str):
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, {key: value or "" for key, value in attrs}))

    def all(self, tag: str) -> list[dict[str, str]]:
        return [attrs for name, attrs in self.tags if name == tag]

    def meta(self, key: str) -> str | None:
        for attrs in self.all("meta"):
            if attrs.get("property") == key or attrs.get("name") == key:
                return attrs["content"]
        return None


class Office:
    def __init__(self, system, clock, embargo, app, tmp_path: Path):
        self.system, self.clock, self.embargo, self.app, self.tmp_path = system, clock, embargo, app, tmp_path
        self.client = app.test_client()

    @property
    def site(self) -> Path:
        return self.system.config_path.parent / "out" / "news"

    def tick(self) -> None:
        self.system.dispatcher.advance()
        for name in self.system.channels:
            self.system.dispatcher.deliver(name)
        self.app.extensions["newsroom"].forget()

    def lift(self) -> None:
        self.clock.set(self.embargo + timedelta(milliseconds=1))
        self.tick()

    def statement(self) -> Statement:
        from distributor import workflow
        with self.system.engine.connect() as conn:
            row = workflow.get(conn, SID)
            return workflow.content(conn, SID, row["revision"])

    def items(self) -> dict[str, media.Media]:
        return {item.name: item for item in self.statement().media}

    def page(self) -> str:
        return (self.site / SID / "index.html").read_text(encoding="utf-8")

    def add(self, data: bytes, name: str, *options: str) -> str:
        path = self.tmp_path / name
        path.write_bytes(data)
        result = self.system.at("media", "add", SID, path, *options, "--by", "Sam")
        assert result.code == 0, result.err
        return result.out.strip()

    def url(self, item: media.Media, rendition: str = media.ORIGINAL) -> str:
        """The path serve answers at, as the page's links resolve."""
        return f"/news/{SID}/{media.public_path(SID, item, rendition)}"

    def files(self) -> list[Path]:
        folder = self.site / SID / "media"
        return sorted(path for path in folder.rglob("*")) if folder.exists() else []


@pytest.fixture
def office(write_config, run, statement_file, monkeypatch, tmp_path):
    """A statement with a photo (EXIF with GPS, XMP, IPTC) and a PDF (an author), approved and scheduled ten minutes
    ahead for the newsroom; its config without office.public_url, so links go to the newsroom."""
    from tests.conftest import System

    monkeypatch.setenv("TEST_WEB_SECRET", SECRET)
    systems = []

    def make(database_clock=None, more: tuple = ()) -> Office:
        clock = fixed_now()
        path = write_config(extra=CONFIG)
        path.write_text(re.sub(r"(?m)^public_url = .*\n", "", path.read_text(encoding="utf-8")), encoding="utf-8")
        system = System(path, clock, run, database_clock)
        systems.append(system)
        app = create_app(system.config, system.engine, clock)
        app.config["TESTING"] = True
        app.extensions["newsroom"].database_clock = database_clock
        embargo = clock.now() + timedelta(minutes=10)
        there = Office(system, clock, embargo, app, tmp_path)
        assert system.at("import", statement_file(), "--by", "Sam").code == 0
        there.add(mediafiles.jpeg(1600, 1000), "Field Visit.JPG", *[f"--{k}={v}" for k, v in PHOTO.items()])
        there.add(mediafiles.pdf(2), "report.pdf", "--title", REPORT_TITLE, "--licence", REPORT_LICENCE)
        for data, name, *options in more:
            there.add(data, name, *options)
        assert system.at("approve", SID, "--by", "Maya").code == 0
        result = system.at("schedule", SID, "--embargo", embargo.isoformat(), "--channels", "email")
        assert result.code == 0, result.err
        return there
    yield make
    for system in systems:
        system.close()


# -- before the lift -------------------------------------------------------------------------------------------

def test_before_the_lift_nothing_of_the_media_is_in_the_folder_or_served(office):
    there = office()
    there.clock.set(there.embargo - timedelta(seconds=1))
    there.tick()  # the embargoed email goes; nothing public does
    assert not there.site.exists()
    unknown = there.client.get("/news/no-such-statement/")
    photo, report = there.items()["field-visit.jpg"], there.items()["report.pdf"]
    guessed = f"/news/{SID}/media/{'0' * 24}/field-visit.jpg"
    for path in (there.url(photo), there.url(photo, "large"), there.url(report), guessed,
                 f"/news/no-such-statement/media/{'0' * 24}/x.jpg"):
        reply = there.client.get(path)
        assert reply.status_code == 404, path
        assert reply.get_data() == unknown.get_data() and reply.headers == unknown.headers, path


def test_a_media_file_planted_early_is_not_served_before_the_lift(office):
    """Whether a file may be served comes from the record of the release, never from whether the file is there."""
    there = office()
    photo = there.items()["field-visit.jpg"]
    planted = there.site / SID / media.public_path(SID, photo)
    planted.parent.mkdir(parents=True)
    planted.write_bytes(mediafiles.jpeg(40, 40))
    assert there.client.get(there.url(photo)).status_code == 404
    there.clock.set(there.embargo + timedelta(seconds=1))
    assert there.client.get(there.url(photo)).status_code == 404  # past the embargo, but not released yet
    there.tick()
    reply = there.client.get(there.url(photo))
    assert reply.status_code == 200 and reply.get_data() == media.store_of(there.system.config).read(photo)


def test_a_worker_clock_running_ahead_of_the_databases_copies_nothing_early(office):
    database = FixedClock(fixed_now().now())
    there = office(database_clock=database)
    there.clock.set(there.embargo + timedelta(seconds=5))
    database.set(there.embargo - timedelta(seconds=5))
    there.tick()
    assert not there.site.exists()


# -- at the lift -----------------------------------------------------------------------------------------------

def test_at_the_lift_every_file_is_copied_from_the_store_stripped_of_its_metadata(office):
    there = office()
    there.lift()
    store = media.store_of(there.system.config)
    expected = {}
    for item in there.statement().media:
        for rendition in store.renditions(item):
            expected[there.site / SID / media.public_path(SID, item, rendition.name)] = rendition.path.read_bytes()
    assert len(expected) == 5  # the photo's original, large, medium and thumb; the report
    assert there.files() == sorted({*expected, *(path.parent for path in expected)})
    for path, data in expected.items():
        copied = path.read_bytes()
        assert copied == data, path
        assert mediafiles.leaks(copied) == [], path
        assert path.stat().st_mode & 0o044 == 0o044, path  # readable by a web server running as another user
    assert not list(there.site.rglob(".*"))  # no temporary file left behind


def test_every_file_the_newsroom_writes_is_readable_by_a_web_server(office):
    there = office()
    there.lift()
    written = [path for path in there.site.rglob("*") if path.is_file()]
    assert any(path.name == "index.html" for path in written) and any(path.name == "sitemap.xml" for path in written)
    for path in written:
        assert path.stat().st_mode & 0o044 == 0o044, path  # readable by a web server running as another user


def test_a_file_is_copied_whole_or_not_at_all(office):
    """Readers never find half a file while it is copied (a large photo takes a while)."""
    there = office()
    there.lift()
    newsroom = there.system.channels["newsroom"]
    photo = there.items()["field-visit.jpg"]
    target = there.site / SID / media.public_path(SID, photo)
    whole = target.read_bytes()
    stop, torn = threading.Event(), []

    def read() -> None:
        while not stop.is_set():
            try:
                data = target.read_bytes()
            except FileNotFoundError:
                continue
            if data != whole:
                torn.append(len(data))

    readers = [threading.Thread(target=read) for _ in range(2)]
    for reader in readers:
        reader.start()
    try:
        for _ in range(40):
            target.unlink()
            newsroom.publish(SID)
    finally:
        stop.set()
        for reader in readers:
            reader.join()
    assert torn == []


def test_the_page_shows_each_photo_with_its_renditions_alt_caption_credit_and_licence(office):
    there = office()
    there.lift()
    photo = there.items()["field-visit.jpg"]
    tags = Tags(there.page())
    images = tags.all("img")
    assert len(images) == 1
    image = images[0]
    key = media.public_key(SID, photo)
    assert image["src"] == f"media/{key}/medium-field-visit.jpg"
    assert image["srcset"] == (f"media/{key}/thumb-field-visit.jpg 400w, media/{key}/medium-field-visit.jpg 1024w, "
                               f"media/{key}/large-field-visit.jpg 1600w")  # large is the original's 1600 px
    assert image["sizes"] and image["width"] == "1024" and image["height"] == "640"
    assert image["alt"] == PHOTO["alt"]
    caption = re.search(r"<figcaption>(.*?)</figcaption>", there.page(), re.S).group(1)
    for key in ("caption", "credit", "licence"):
        assert PHOTO[key] in caption, key


def test_the_page_links_the_originals_and_documents_with_their_type_and_size(office):
    there = office()
    there.lift()
    photo, report = there.items()["field-visit.jpg"], there.items()["report.pdf"]
    page = there.page()
    links = {attrs["href"]: attrs for attrs in Tags(page).all("a")}
    for item, kind in ((photo, "JPEG image"), (report, "PDF document")):
        href = media.public_path(SID, item)
        assert href in links and links[href]["download"] == item.name
        entry = re.search(rf'<a href="{re.escape(href)}"[^>]*>([^<]*)</a> <span class="meta">\(([^)]*)\)', page)
        assert entry, item.name
        assert f"{kind}, {media.megabytes(item.size)}" in entry.group(2)
    assert re.search(rf'>{REPORT_TITLE}</a> <span class="meta">[^<]*</span><br><span class="meta">Licence: '
                     rf'{REPORT_LICENCE}</span>', page)
    assert "1600 × 1000 px" in page


def test_the_lead_photo_is_the_open_graph_image(office):
    there = office(more=[(mediafiles.png(300, 200), "chart.png", "--alt", "A chart of the flooded streets")])
    there.lift()
    photo = there.items()["field-visit.jpg"]
    tags = Tags(there.page())
    og = tags.meta("og:image")
    assert og == f"{URL}{SID}/{media.public_path(SID, photo, 'large')}"  # the first photo, not the later chart
    assert (tags.meta("og:image:width"), tags.meta("og:image:height")) == ("1600", "1000")
    assert tags.meta("og:image:alt") == PHOTO["alt"]
    assert tags.meta("twitter:card") == "summary_large_image"
    assert [image["alt"] for image in tags.all("img")] == [PHOTO["alt"], "A chart of the flooded streets"]
    assert there.client.get(og.removeprefix("https://press.example.org")).status_code == 200


def test_everything_on_the_page_loads_from_the_newsroom(office):
    """The photos and downloads are links relative to the page: they load from wherever the page is served."""
    there = office()
    there.lift()
    tags = Tags(there.page())
    loaded = [attrs["src"] for attrs in tags.all("img")]
    loaded += [part.split()[0] for attrs in tags.all("img") for part in attrs["srcset"].split(",")]
    loaded += [attrs["href"] for attrs in tags.all("a") if "download" in attrs]
    assert len(loaded) == 1 + 3 + 2
    for url in loaded:  # each resolves, from the page's own folder, to a file the lift wrote
        assert url.startswith("media/") and "//" not in url, url
        assert (there.site / SID / url).is_file(), url
    for attrs in tags.all("link") + tags.all("script") + tags.all("img"):
        for name in ("src", "href", "srcset"):
            assert attrs.get(name, URL).startswith((URL, "media/")), attrs


# -- served ----------------------------------------------------------------------------------------------------

def test_serve_sends_each_file_with_its_type_nosniff_and_nothing_else(office):
    there = office()
    there.lift()
    photo, report = there.items()["field-visit.jpg"], there.items()["report.pdf"]
    store = media.store_of(there.system.config)
    for item, rendition, kind in ((photo, "original", "image/jpeg"), (photo, "thumb", "image/jpeg"),
                                  (report, "original", "application/pdf")):
        reply = there.client.get(there.url(item, rendition))
        assert reply.status_code == 200, (item.name, rendition)
        assert reply.headers["Content-Type"] == kind
        assert reply.headers["X-Content-Type-Options"] == "nosniff"
        assert reply.headers["Cache-Control"] == "public, max-age=300"
        assert reply.get_data() == store.read(item, rendition)
        assert int(reply.headers["Content-Length"]) == len(reply.get_data())
        head = there.client.head(there.url(item, rendition))
        assert head.status_code == 200 and head.get_data() == b"" and head.headers["Content-Type"] == kind
    unknown = there.client.get("/news/no-such-statement/")
    key = media.public_key(SID, photo)
    for path in (f"/news/{SID}/media/{'0' * 24}/field-visit.jpg",  # a guessed key
                 f"/news/{SID}/media/{key}/other.jpg",  # a guessed name
                 f"/news/{SID}/media/{key}/",
                 f"/news/{SID}/media/{key}/../../index.html",
                 f"/news/{SID}/media/{key}/.field-visit.jpg.abc.tmp"):  # a file being copied is never served
        reply = there.client.get(path)
        assert reply.status_code == 404 and reply.get_data() == unknown.get_data(), path


def test_serve_sends_only_what_the_content_shows_to_be_a_photo_or_a_pdf(office):
    there = office()
    there.lift()
    key = media.public_key(SID, there.items()["field-visit.jpg"])
    planted = there.site / SID / "media" / key / "page.jpg"
    planted.write_bytes(b"<html><script>alert(1)</script></html>")
    assert there.client.get(f"/news/{SID}/media/{key}/page.jpg").status_code == 404
    png = there.site / SID / "media" / key / "chart.jpg"  # the name says JPEG; the content is a PNG
    png.write_bytes(mediafiles.png(10, 10))
    assert there.client.get(f"/news/{SID}/media/{key}/chart.jpg").headers["Content-Type"] == "image/png"


# -- after the release ------------------------------------------------------------------------------------------

def test_a_correction_that_changes_the_media_changes_the_page_and_its_files(office):
    there = office()
    there.lift()
    photo, report = there.items()["field-visit.jpg"], there.items()["report.pdf"]
    old_folder = there.site / SID / "media" / media.public_key(SID, photo)
    assert old_folder.is_dir()
    assert there.system.at("media", "remove", SID, "field-visit.jpg", "--by", "Sam").code == 0
    there.add(mediafiles.webp(900, 600), "levee.webp", "--alt", "A breached levee seen from the river",
              "--credit", "Photo: B. Writer")
    assert there.system.at("approve", SID, "--by", "Maya").code == 0
    there.clock.advance(3600)
    assert there.system.at("correct", SID, "--by", "Maya", "--reason", "the right photo").code == 0
    there.tick()
    levee = there.items()["levee.webp"]
    page = there.page()
    assert "A breached levee seen from the river" in page and PHOTO["alt"] not in page
    assert media.public_path(SID, photo) not in page and media.public_path(SID, report) in page
    assert not old_folder.exists()
    store = media.store_of(there.system.config)
    for rendition in store.renditions(levee):
        copied = there.site / SID / media.public_path(SID, levee, rendition.name)
        assert copied.read_bytes() == rendition.path.read_bytes()
    assert (there.site / SID / media.public_path(SID, report)).is_file()  # kept
    assert there.client.get(there.url(photo)).status_code == 404
    reply = there.client.get(there.url(levee, "medium"))
    assert reply.status_code == 200 and reply.headers["Content-Type"] == "image/webp"
    assert Tags(page).meta("og:image") == f"{URL}{SID}/{media.public_path(SID, levee, 'large')}"


def test_a_photo_renamed_by_a_correction_keeps_only_its_new_files(office):
    """The same file under another name: the same folder, the old name's files gone."""
    there = office()
    there.lift()
    photo = there.items()["field-visit.jpg"]
    assert there.system.at("media", "remove", SID, "field-visit.jpg", "--by", "Sam").code == 0
    renamed = there.add(mediafiles.jpeg(1600, 1000), "eastbrook.jpg", "--alt", PHOTO["alt"])
    assert renamed == "eastbrook.jpg" and there.items()[renamed].sha256 == photo.sha256
    assert there.system.at("approve", SID, "--by", "Maya").code == 0
    there.clock.advance(3600)
    assert there.system.at("correct", SID, "--by", "Maya", "--reason", "a better name").code == 0
    there.tick()
    folder = there.site / SID / "media" / media.public_key(SID, photo)
    assert sorted(path.name for path in folder.iterdir()) == [
        "eastbrook.jpg", "large-eastbrook.jpg", "medium-eastbrook.jpg", "thumb-eastbrook.jpg"]
    assert there.client.get(there.url(photo)).status_code == 404


def test_a_correction_that_drops_every_item_leaves_no_media_folder(office):
    there = office()
    there.lift()
    for name in ("field-visit.jpg", "report.pdf"):
        assert there.system.at("media", "remove", SID, name, "--by", "Sam").code == 0
    assert there.system.at("approve", SID, "--by", "Maya").code == 0
    there.clock.advance(3600)
    assert there.system.at("correct", SID, "--by", "Maya", "--reason", "no media").code == 0
    there.tick()
    assert not (there.site / SID / "media").exists()
    tags = Tags(there.page())
    assert not tags.all("img") and tags.meta("og:image") is None and tags.meta("twitter:card") == "summary"


def test_a_retraction_removes_the_media_folder_and_the_notice_shows_none(office):
    there = office()
    there.lift()
    photo = there.items()["field-visit.jpg"]
    assert there.client.get(there.url(photo)).status_code == 200
    assert there.system.at("retract", SID, "--by", "Maya", "--reason", "wrong").code == 0
    there.tick()
    assert not (there.site / SID / "media").exists()
    assert [path.name for path in (there.site / SID).iterdir()] == ["index.html"]
    notice = there.page()
    assert "This release was retracted" in notice
    assert "media/" not in notice and "<img" not in notice and PHOTO["alt"] not in notice
    assert there.client.get(there.url(photo)).status_code == 404


def test_a_file_missing_from_the_store_is_retried_and_named(office):
    there = office()
    photo = there.items()["field-visit.jpg"]
    store = media.store_of(there.system.config)
    (store.folder(photo.sha256) / "about.json").unlink()
    there.lift()
    assert not (there.site / SID).exists()  # no page without its photo
    rows = [r for r in json.loads(there.system.cli("log", SID, "--format", "json").out)
            if r["channel"] == "newsroom"]
    assert rows and rows[0]["status"] == "retrying", rows
    assert "field-visit.jpg" in (rows[0].get("detail") or rows[0].get("last_error") or str(rows[0]))
