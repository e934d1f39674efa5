"""A statement's photos and documents in the Atom feed: an enclosure each, and the photos shown in the entry's HTML,
all from the newsroom; parsed with feedparser and the standard library's parsers."""

from datetime import timedelta
from html.parser import HTMLParser
from pathlib import Path
from xml.etree import ElementTree as ET

import feedparser

from distributor import media
from distributor.clock import FixedClock, utcnow
from distributor.outcomes import Claimed, Result
from tests import mediafiles
from tests.channels.conftest import SID, feed
from tests.channels.test_wire_media import NEWSROOM, NEWSROOM_URL, PHOTO, REPORT, add, revision, statement, tick

ATOM = "{http://www.w3.org/2005/Atom}"


class Page(HTMLParser):
    """The entry's HTML: its images, figure captions and links."""

    def __init__(self, html: str):
        super().__init__()
        self.images: list[dict] = []
        self.captions: list[str] = []
        self.links: list[tuple[dict, str]] = []
        self._in: str | None = None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.images.append(dict(attrs))
        elif tag == "figcaption":
            self._in = "caption"
            self.captions.append("")
        elif tag == "a":
            self._in = "link"
            self.links.append((dict(attrs), ""))

    def handle_endtag(self, tag):
        if tag in ("figcaption", "a"):
            self._in = None

    def handle_data(self, data):
        if self._in == "caption":
            self.captions[-1] += data
        elif self._in == "link":
            attrs, text = self.links[-1]
            self.links[-1] = (attrs, text + data)


def office(make_system, statement_file, tmp_path, newsroom: bool = True, channels: str = "feed,newsroom"):
    """A statement with a photo (alt, caption, credit, licence), a photo with its alt text alone and a PDF, approved
    and scheduled ten minutes ahead: (system, clock, embargo)."""
    clock = FixedClock(utcnow())
    system = make_system(clock=clock, extra=feed() + (NEWSROOM if newsroom else ""))
    assert system.at("import", statement_file()).code == 0
    add(system, tmp_path / "Field Visit.jpg", mediafiles.jpeg(1600, 1200), **PHOTO)
    add(system, tmp_path / "square.png", mediafiles.png(640, 480), alt="A blue square")
    add(system, tmp_path / "report.pdf", mediafiles.pdf(), **REPORT)
    assert system.at("approve", SID, "--by", "Maya").code == 0
    embargo = clock.now() + timedelta(minutes=10)
    result = system.at("schedule", SID, "--embargo", embargo.isoformat(), "--channels", channels)
    assert result.code == 0, result.err
    return system, clock, embargo


def feed_path(system) -> Path:
    return system.config_path.parent / "out" / "feed.atom"


def only_entry(system):
    parsed = feedparser.parse(feed_path(system).read_bytes())
    assert not parsed.bozo, parsed.get("bozo_exception")
    [entry] = parsed.entries
    return entry


def html(system) -> str:
    """The entry's HTML as published (feedparser would sanitise it)."""
    [entry] = ET.parse(feed_path(system)).getroot().findall(f"{ATOM}entry")
    return entry.find(f"{ATOM}content").text


def enclosures(system) -> list[dict]:
    [entry] = ET.parse(feed_path(system)).getroot().findall(f"{ATOM}entry")
    return [link.attrib for link in entry.findall(f"{ATOM}link") if link.get("rel") == "enclosure"]


def test_each_item_is_an_enclosure_of_its_original_in_the_newsroom(make_system, statement_file, tmp_path):
    system, clock, embargo = office(make_system, statement_file, tmp_path)
    clock.set(embargo)
    tick(system)
    store = media.store_of(system.config)
    items = statement(system).media
    links = enclosures(system)
    assert len(links) == len(items) == 3
    for link, item in zip(links, items, strict=True):
        original = store.rendition(item, media.ORIGINAL)
        assert link["href"] == media.public_url(system.config, SID, item, media.ORIGINAL)
        assert link["href"].startswith(f"{NEWSROOM_URL}{SID}/media/") and link["href"].endswith("/" + item.name)
        assert link["type"] == item.content_type == original.content_type
        assert int(link["length"]) == original.size == original.path.stat().st_size
    # as a feed reader sees them
    entry = only_entry(system)
    assert [(e.href, e.type, e.length) for e in entry.enclosures] == [
        (link["href"], link["type"], link["length"]) for link in links]
    assert [t for t in (e.type for e in entry.enclosures)] == ["image/jpeg", "image/png", "application/pdf"]


def test_the_entry_shows_each_photo_with_its_alt_text_caption_and_credit(make_system, statement_file, tmp_path):
    system, clock, embargo = office(make_system, statement_file, tmp_path)
    clock.set(embargo)
    tick(system)
    store = media.store_of(system.config)
    photo, square, report = statement(system).media
    page = Page(html(system))
    assert len(page.images) == 2  # the photos; the document is linked, never shown
    for image, item in zip(page.images, (photo, square), strict=True):
        medium = store.rendition(item, "medium")
        assert image["src"] == media.public_url(system.config, SID, item, "medium")
        assert image["src"].startswith(f"{NEWSROOM_URL}{SID}/media/")
        assert image["alt"] == item.alt
        assert (int(image["width"]), int(image["height"])) == (medium.width, medium.height)
    assert (int(page.images[0]["width"]), int(page.images[0]["height"])) == (1024, 768)
    # the photo with a caption, a credit and a licence says each; the one with its alt text alone has no caption
    assert page.captions == [f"{PHOTO['caption']} · {PHOTO['credit']} · {PHOTO['licence']}"]
    [(attrs, text)] = page.links
    assert attrs["href"] == media.public_url(system.config, SID, report, media.ORIGINAL)
    assert attrs["type"] == "application/pdf" and text == REPORT["title"]
    content = html(system)
    assert (f'{REPORT["title"]}</a> (PDF, {media.megabytes(report.size)}): {REPORT["caption"]} · {REPORT["credit"]} · '
            f'{REPORT["licence"]}</li>') in content
    assert "Åsgård" in content  # the body is still there


def test_the_feed_links_files_that_are_in_the_newsroom_after_the_lift(make_system, statement_file, tmp_path):
    system, clock, embargo = office(make_system, statement_file, tmp_path)
    clock.set(embargo)
    tick(system)
    site = system.config.channels["newsroom"].directory
    store = media.store_of(system.config)
    photo, square, report = statement(system).media
    page = Page(html(system))
    served = [(link["href"], item, media.ORIGINAL) for link, item in zip(enclosures(system), (photo, square, report),
                                                                         strict=True)]
    served += [(image["src"], item, "medium") for image, item in zip(page.images, (photo, square), strict=True)]
    for href, item, rendition in served:
        path = site / href.removeprefix(NEWSROOM_URL)
        assert path.is_file(), href
        assert path.read_bytes() == store.read(item, rendition)


def test_a_correction_that_changes_the_media_changes_the_entry(make_system, statement_file, tmp_path):
    system, clock, embargo = office(make_system, statement_file, tmp_path)
    clock.set(embargo)
    tick(system)
    before, updated = enclosures(system), only_entry(system).updated
    clock.advance(3600)
    assert system.at("media", "remove", SID, "report.pdf", "--by", "Sam").code == 0
    assert system.at("media", "remove", SID, "square.png", "--by", "Sam").code == 0
    add(system, tmp_path / "second.webp", mediafiles.webp(), alt="Sandbags stacked at a door", credit="Photo: TRO")
    assert system.at("approve", SID, "--by", "Maya").code == 0
    result = system.at("correct", SID, "--by", "Maya", "--reason", "the report was the draft")
    assert result.code == 0, result.err
    tick(system)
    after = enclosures(system)
    assert [link["type"] for link in after] == ["image/jpeg", "image/webp"]
    assert after[0] == before[0]  # the photo kept is linked as before
    assert after[1]["href"].endswith("/second.webp") and after[1]["href"] not in {link["href"] for link in before}
    entry = only_entry(system)
    assert entry.updated > updated
    page = Page(html(system))
    assert [image["alt"] for image in page.images] == [PHOTO["alt"], "Sandbags stacked at a door"]
    assert page.links == [] and "report.pdf" not in feed_path(system).read_text(encoding="utf-8")


def test_without_a_newsroom_the_entry_neither_links_nor_shows_the_media(make_system, statement_file, tmp_path):
    system, clock, embargo = office(make_system, statement_file, tmp_path, newsroom=False, channels="feed")
    clock.set(embargo)
    tick(system)
    assert len(statement(system).media) == 3
    assert enclosures(system) == []
    page = Page(html(system))
    assert page.images == [] and page.captions == [] and page.links == []


def test_a_refused_attempt_before_the_lift_writes_nothing(make_system, statement_file, tmp_path):
    system, clock, embargo = office(make_system, statement_file, tmp_path)
    clock.set(embargo - timedelta(seconds=1))
    channel = system.channels["feed"]
    with system.engine.connect() as conn:
        job = system.dispatcher.job(conn, SID, revision(system))
    preview = channel.preview(job, channel.variant(job, clock.now()))
    assert preview.count('rel="enclosure"') == 3  # what would leak, were it written
    outcomes = []
    channel.send(job, None, [Claimed(1, SID, job.revision, "feed", str(feed_path(system)), 0, embargo)],
                 outcomes.append)
    assert [(o.result, o.detail) for o in outcomes] == [(Result.REFUSED, "refused: embargo")]
    assert not feed_path(system).exists()
    tick(system)  # the scheduler a second early: nothing either
    assert not feed_path(system).exists()
    assert not (system.config.channels["newsroom"].directory / SID).exists()
    clock.set(embargo)
    tick(system)
    assert len(enclosures(system)) == 3


def test_the_alt_text_and_caption_are_escaped(make_system, statement_file, tmp_path):
    clock = FixedClock(utcnow())
    system = make_system(clock=clock, extra=feed() + NEWSROOM)
    assert system.at("import", statement_file()).code == 0
    add(system, tmp_path / "x.png", mediafiles.png(), alt='<script>alert("alt")</script> & "quotes"',
        caption="<b>bold</b> & more")
    assert system.at("approve", SID, "--by", "Maya").code == 0
    embargo = clock.now() + timedelta(minutes=10)
    assert system.at("schedule", SID, "--embargo", embargo.isoformat(), "--channels", "feed").code == 0
    clock.set(embargo)
    tick(system)
    page = Page(html(system))
    assert page.images[0]["alt"] == '<script>alert("alt")</script> & "quotes"'
    assert page.captions == ["<b>bold</b> & more"]
    assert "<script>" not in html(system) and "<b>" not in html(system)
