"""The newsroom in a real browser (Debian's chromium, driven by Playwright, against waitress on loopback), after a
lift: a statement's page (the Markdown example, with its table, list, quote, image and code), the index and a
retraction's notice, each at a desktop's 1280 px and a phone's 390 px. Nothing runs off the phone's screen (outside a
box that scrolls on its own), axe-core finds nothing serious or critical, the keyboard's focus shows a clear
outline, the page asks for nothing from another host and its own security policy refuses nothing; a screenshot of
each whole page is kept in test-artifacts/screenshots/ (newsroom-NAME-WIDTH.png). The Markdown example carries the
demo's photo and PDF and a second photo: every image has alt text, the browser picks the rendition that fits the
screen from srcset, and every request the page makes is to the newsroom itself.
"""

import re
import threading
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from distributor.clock import FixedClock
from tests import mediafiles
from tests.conftest import CHROMIUM, System, free_port, utc

pytest.importorskip("playwright.sync_api", reason="Playwright is not installed (run make install)")
axe_playwright = pytest.importorskip("axe_playwright_python.sync_playwright",
                                     reason="axe-playwright-python is not installed (run make install)")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed "
                                                          "(apt-get install chromium; .ci/run installs it)")

ARTEFACTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "screenshots"
SECRET = "a-test-secret-of-more-than-32-characters!"
WIDTHS = (1280, 390)
HEIGHT = 900
SERIOUS = ("serious", "critical")

START = utc(2026, 12, 15, 8, 0)
LIFT = utc(2026, 12, 15, 9, 0)  # the Markdown example's own embargo; the others are lifted with it

RELEASED = "tro-01-001-2026"
RETRACTED = "tro-01-002-2026"
MARKDOWN = "nhrn-12-005-2026"  # a table, a list, a quote, an image (a link in the page, never loaded), code
EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "statements"
EXAMPLE = EXAMPLES / f"{MARKDOWN}.md"
PHOTO_ALT = "A drawing of four houses on a green hillside above a pipeline trench, a rain cloud coming in"
CHART_ALT = "A blue square standing for a chart of the days in detention"


@pytest.fixture
def db_url(tmp_path) -> str:
    """SQLite only: the pages look the same on either database."""
    return f"sqlite:///{tmp_path / 'distributor.db'}"


def tick(system) -> None:
    system.dispatcher.advance()
    for name in system.channels:
        system.dispatcher.deliver(name)


@pytest.fixture
def served(write_config, run, statement_file, monkeypatch):
    """Three statements lifted into the newsroom, one of them then retracted; the site served by waitress as
    `distributor serve` serves it, at the address its pages link to."""
    from waitress import create_server

    from distributor.web import create_app

    monkeypatch.setenv("TEST_WEB_SECRET", SECRET)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    clock = FixedClock(START)
    path = write_config(extra=f'\n[channels.newsroom]\ndirectory = "out/news"\nurl = "{base}/news/"\n'
                              '\n[channels.feed]\n\n[web]\nsecret_env = "TEST_WEB_SECRET"\n')
    path.write_text(re.sub(r"(?m)^public_url = .*\n", "", path.read_text(encoding="utf-8")),  # links: the newsroom
                    encoding="utf-8")
    system = System(path, clock, run)
    try:
        files = {RELEASED: statement_file(name="released.txt"),
                 RETRACTED: statement_file(name="retracted.txt", reference="Index: TRO 01/002/2026",
                                           title="Calderia: Release the detained journalists before the trial"),
                 MARKDOWN: EXAMPLE}
        for sid, source in files.items():
            assert system.at("import", source, "--by", "sam").code == 0, source
            if sid == MARKDOWN:  # the demo's photo and briefing, and a second photo
                chart = path.parent / "chart.png"
                chart.write_bytes(mediafiles.png(600, 600))
                for media_file, options in ((EXAMPLES / "pipeline-route.jpg", ["--alt", PHOTO_ALT, "--caption",
                                                                               "The pipeline route", "--credit",
                                                                               "Drawing: NHRN"]),
                                            (EXAMPLES / "pipeline-briefing.pdf", ["--title", "The briefing"]),
                                            (chart, ["--alt", CHART_ALT])):
                    result = system.at("media", "add", sid, media_file, *options, "--by", "sam")
                    assert result.code == 0, result.err
            assert system.at("approve", sid, "--by", "maya").code == 0
            result = system.at("schedule", sid, "--embargo", LIFT.isoformat(), "--channels", "feed")
            assert result.code == 0, result.err
        tick(system)
        assert not (path.parent / "out" / "news").exists()  # nothing public before the lift
        clock.set(LIFT + timedelta(milliseconds=1))
        tick(system)
        clock.set(LIFT + timedelta(hours=2))
        result = system.at("retract", RETRACTED, "--by", "maya", "--reason", "the trial date was wrong",
                           "--note", "The release gave the wrong date for the trial; a new release follows.")
        assert result.code == 0, result.err
        tick(system)
        server = create_server(create_app(system.config, system.engine, clock), host="127.0.0.1", port=port)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        try:
            yield base
        finally:
            server.close()
            thread.join(timeout=5)
    finally:
        system.close()


# What sticks out of the page's width, outside a box that scrolls on its own: named for the failure message.
STICKING_OUT = """() => {
  const width = document.documentElement.clientWidth;
  const scrolls = (element) => {
    for (let box = element.parentElement; box && box !== document.body; box = box.parentElement) {
      const overflow = getComputedStyle(box).overflowX;
      if ((overflow === "auto" || overflow === "scroll") && box.getBoundingClientRect().right <= width + 0.5) {
        return true;
      }
    }
    return false;
  };
  const found = [];
  for (const element of document.querySelectorAll("body *")) {
    const right = element.getBoundingClientRect().right;
    if (right > width + 0.5 && !scrolls(element)) {
      const classes = typeof element.className === "string" && element.className
        ? "." + element.className.trim().split(/\\s+/).join(".") : "";
      found.push(`${element.tagName.toLowerCase()}${classes} (to ${Math.round(right)} px)`);
    }
  }
  return {scrollWidth: document.documentElement.scrollWidth, found: found.slice(0, 8)};
}"""

FOCUSED = """() => {
  const element = document.activeElement, style = getComputedStyle(element);
  return {element: element.outerHTML.slice(0, 80), style: style.outlineStyle, width: parseFloat(style.outlineWidth)};
}"""


def test_the_newsroom_fits_a_phone_passes_axe_and_loads_nothing_from_elsewhere(served, browser):
    base = served
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    axe = axe_playwright.Axe()
    context = browser.new_context(viewport={"width": WIDTHS[0], "height": HEIGHT})
    requested: list[str] = []
    console: list[tuple[str, str]] = []  # (text, url) of each error
    context.on("request", lambda request: requested.append(request.url))
    too_wide: list[str] = []
    violations: list[str] = []
    try:
        page = context.new_page()
        page.on("console", lambda message: console.append((message.text, message.location.get("url", "")))
                if message.type == "error" else None)
        for name, path, status, words in (
                ("statement", f"/news/{MARKDOWN}/", 200, "released after 412 days"),
                ("index", "/news/", 200, "Flood maps must be published"),
                ("retracted", f"/news/{RETRACTED}/", 410, "This release was retracted")):
            for width in WIDTHS:
                page.set_viewport_size({"width": width, "height": HEIGHT})
                reply = page.goto(base + path)
                assert reply is not None and reply.status == status, (path, reply and reply.status)
                assert words in page.inner_text("main")
                fit = page.evaluate(STICKING_OUT)
                if fit["scrollWidth"] > width:
                    too_wide.append(f"{name} at {width} px is {fit['scrollWidth']} px wide: {', '.join(fit['found'])}")
                found = axe.run(page).response
                assert found["passes"], "axe-core checked nothing"
                for violation in found["violations"]:
                    if violation["impact"] in SERIOUS:
                        targets = [" ".join(node["target"]) for node in violation["nodes"]]
                        violations.append(f"{name} at {width} px: {violation['id']} ({violation['impact']}) "
                                          f"{violation['help']}: {targets[:6]}")
                page.keyboard.press("Tab")  # the first link: the site's name
                seen = page.evaluate(FOCUSED)
                if seen["style"] == "none" or seen["width"] < 2:
                    violations.append(f"{name} at {width} px: no clear focus outline on {seen['element']}")
                page.screenshot(path=str(ARTEFACTS / f"newsroom-{name}-{width}.png"), full_page=True)
        index = page.goto(f"{base}/news/")
        assert index is not None and "Release the detained journalists" not in index.text()  # retracted: off it
    finally:
        context.close()
    assert not too_wide and not violations, (
        "wider than the screen:\n" + "\n".join(too_wide or ["none"])
        + "\naxe-core's serious and critical findings, and focus:\n" + "\n".join(violations or ["none"]))
    # the browser's own request for /favicon.ico is not a page's request: it shows only in the console, as a 404
    expected = {f"{base}/favicon.ico": 404, f"{base}/news/{RETRACTED}/": 410}
    unexpected = [text for text, url in console if not (url in expected and f"status of {expected[url]} " in text)]
    assert not unexpected, f"errors in the console (a refused or missing resource): {unexpected}"
    origin = urlsplit(base)[:2]
    elsewhere = [url for url in requested + [url for _, url in console if url] if urlsplit(url)[:2] != origin]
    assert requested and not elsewhere, f"asked for from another host: {elsewhere}"


IMAGES = """() => [...document.images].map((image) => ({
  alt: image.getAttribute("alt"), src: image.currentSrc, loaded: image.complete && image.naturalWidth > 0}))"""


def test_every_image_has_alt_text_fits_the_screen_and_loads_from_the_newsroom(served, browser):
    base = served
    for width, rendition in ((1280, "medium-"), (390, "thumb-")):  # a 42em column; a phone's 358 px
        # without the page's security policy, as a static host serves it: every request the page would make is made
        context = browser.new_context(viewport={"width": width, "height": HEIGHT}, bypass_csp=True)
        requested: list[str] = []
        failed: list[str] = []
        context.on("request", lambda request, requested=requested: requested.append(request.url))
        context.on("requestfailed", lambda request, failed=failed: failed.append(request.url))
        try:
            page = context.new_page()
            reply = page.goto(f"{base}/news/{MARKDOWN}/")
            assert reply is not None and reply.status == 200
            page.evaluate("window.scrollTo(0, document.body.scrollHeight)")  # the later photo loads lazily
            page.wait_for_function("[...document.images].every((image) => image.complete)")
            images = page.evaluate(IMAGES)
            downloads = page.eval_on_selector_all("a[download]", "links => links.map((link) => link.href)")
        finally:
            context.close()
        assert [image["alt"] for image in images] == [PHOTO_ALT, CHART_ALT], images
        assert all(image["loaded"] for image in images), images
        assert rendition in images[0]["src"], (width, images[0]["src"])  # srcset and sizes at work
        assert len(downloads) == 3 and all(link.startswith(f"{base}/news/{MARKDOWN}/media/") for link in downloads)
        origin = urlsplit(base)[:2]
        elsewhere = [url for url in requested if urlsplit(url)[:2] != origin]
        assert not failed and not elsewhere, f"failed: {failed}; asked for from another host: {elsewhere}"
        assert sum("/media/" in url for url in requested) == 2, requested  # one rendition of each photo
