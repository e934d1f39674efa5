"""The journalists' portal in a real browser (Debian's chromium, driven by Playwright, against waitress on loopback),
on a phone's 390 px: a vetted journalist follows the link in their own embargoed email, presses the one button,
agrees to the terms, reads the statement under embargo, downloads the photo's original, and opens the list of
releases and their settings; the press office then revokes them and the page they had open shows nothing.

On every page: axe-core, run as in tests/test_pages_in_browser.py, finds nothing at all (not only nothing serious or
critical), nothing runs off the screen, every image has its alt text, and every request the page makes goes to the
office's own server. A screenshot of each page is kept in test-artifacts/screenshots/ (portal-NAME-390.png).
"""

import email
import io
import re
from email.policy import default
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from PIL import Image

from tests import mediafiles
from tests.conftest import CHROMIUM
from tests.test_pages_in_browser import STICKING_OUT
from tests.test_portal import office  # noqa: F401  (the fixture: an office with the portal and two embargoed copies)
from tests.webapp import SID

pytest.importorskip("playwright.sync_api", reason="Playwright is not installed (run make install)")
axe_playwright = pytest.importorskip("axe_playwright_python.sync_playwright",
                                     reason="axe-playwright-python is not installed (run make install)")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed "
                                                          "(apt-get install chromium; .ci/run installs it)")

ARTEFACTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "screenshots"
WIDTH, HEIGHT = 390, 844
ANA = "ana@paper.example.com"
TITLE = "Riverland: Flood maps must be published"
SENTENCE = "a fictional river authority must publish its flood maps"
ZONES = ("00:01 UTC Tuesday 2 March 2027", "00:01 GMT Tuesday 2 March 2027", "19:01 EST Monday 1 March 2027")
COOKIE = "distributor_portal"

WITHOUT_ALT = """() => [...document.images]
  .filter(image => !(image.getAttribute("alt") || "").trim())
  .map(image => image.outerHTML.slice(0, 120))"""


def emailed_link(outbox: Path, address: str) -> str:
    """The link in the plain text of the email that reached this journalist, as the file transport wrote it."""
    found = []
    for path in outbox.rglob("*.eml"):
        message = email.message_from_bytes(path.read_bytes(), policy=default)
        if message["To"].addresses[0].addr_spec == address:
            found += re.findall(r"Read it online and download the media: (\S+)", message.get_body(("plain",)).get_content())
    assert len(set(found)) == 1, found
    return found[0]


def on_loopback(link: str, base: str) -> str:
    """The emailed link (on the office's base_url) on the loopback server: the same path, the server's scheme and host."""
    emailed, served = urlsplit(link), urlsplit(base)
    assert emailed.netloc == "press.example.org" and emailed.path.startswith(served.path + "/j/"), link
    return emailed._replace(scheme=served.scheme, netloc=served.netloc).geturl()


class Pages:
    """Every request the tab makes, and the checks of each page it shows: fit, axe-core, alt text, hosts."""

    def __init__(self, page, origin: str):
        self.page = page
        self.origin = origin
        self.requests: list[str] = []
        self.seen: list[str] = []  # every request of the walk
        self.problems: list[str] = []
        self.axe = axe_playwright.Axe()
        page.on("request", lambda request: self.requests.append(request.url))

    def take_requests(self) -> list[str]:
        taken, self.requests = self.requests, []
        self.seen += taken
        return taken

    def check(self, name: str) -> None:
        page = self.page
        page.wait_for_load_state("load")
        page.wait_for_function("() => [...document.images].every(image => image.complete)")
        fit = page.evaluate(STICKING_OUT)
        if fit["scrollWidth"] > WIDTH:
            self.problems.append(f"{name} is {fit['scrollWidth']} px wide: {', '.join(fit['found'])}")
        for violation in self.axe.run(page).response["violations"]:
            targets = [" ".join(node["target"]) for node in violation["nodes"]]
            self.problems.append(f"{name}: axe-core {violation['id']} ({violation['impact']}) {violation['help']}: "
                                 f"{targets[:6]}")
        for image in page.evaluate(WITHOUT_ALT):
            self.problems.append(f"{name}: an image without alt text: {image}")
        self.hosts(name)
        ARTEFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTEFACTS / f"portal-{name}-{WIDTH}.png"), full_page=True)

    def hosts(self, name: str) -> None:
        """Every request since the last look went to the office's own server."""
        for url in self.take_requests():
            parts = urlsplit(url)
            if f"{parts.scheme}://{parts.netloc}" != self.origin:
                self.problems.append(f"{name} loads from another host: {url}")

    def portal_cookies(self) -> list[dict]:
        return [cookie for cookie in self.page.context.cookies() if cookie["name"] == COOKIE]


def test_a_journalist_follows_their_emailed_link_on_a_phone(office, browser, tmp_path):  # noqa: F811
    system, _, base, links = office
    served = urlsplit(base)
    origin = f"{served.scheme}://{served.netloc}"
    link = on_loopback(emailed_link(system.config_path.parent / "outbox", ANA), base)
    assert link == f"{base}/j/{links[ANA]}"

    context = browser.new_context(viewport={"width": WIDTH, "height": HEIGHT}, accept_downloads=True)
    try:
        page = context.new_page()
        pages = Pages(page, origin)

        # the link: one button, and no session for a GET (a mail scanner uses nothing up)
        assert page.goto(link).status == 200
        pages.check("link")
        assert pages.portal_cookies() == []
        assert page.locator("button").count() == 1
        page.get_by_role("button", name="Open my releases").click()

        # the first redemption: the session starts, and the terms ask for "I agree"
        page.wait_for_url(re.compile(r"/portal/terms"))
        pages.check("terms")
        [cookie] = pages.portal_cookies()
        assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"
        assert page.get_by_text("Respect the embargo.").is_visible()
        page.get_by_label("I agree").check()
        page.get_by_role("button", name="Continue").click()

        # the statement under embargo: the banner in every zone, the text, the photo
        page.wait_for_url(f"{base}/portal/{SID}/")
        pages.check("statement")
        banner = page.get_by_role("note")
        assert banner.is_visible() and "EMBARGOED" in banner.inner_text()
        for line in ZONES:
            assert banner.get_by_text(line).is_visible(), line
        assert page.get_by_role("heading", level=1, name=TITLE).is_visible()
        assert page.get_by_text(SENTENCE).is_visible()
        thumb = page.get_by_role("img", name="Volunteers")
        assert thumb.is_visible() and thumb.evaluate("image => image.naturalWidth") > 0
        assert any(url.startswith(f"{base}/portal/{SID}/media/photo.jpg/thumb") for url in pages.seen)

        # the photo's original: a JPEG stripped of what the camera and the newsroom wrote into it
        assert mediafiles.leaks(mediafiles.jpeg()) != []  # what was uploaded carries it
        with page.expect_download() as downloading:
            page.get_by_role("link", name="Download original").click()
        download = downloading.value
        assert download.url == f"{base}/portal/{SID}/media/photo.jpg/original"
        assert download.suggested_filename == "photo.jpg" and download.failure() is None
        saved = tmp_path / "downloaded" / download.suggested_filename
        download.save_as(saved)
        data = saved.read_bytes()
        assert data.startswith(b"\xff\xd8\xff") and Image.open(io.BytesIO(data)).format == "JPEG"
        assert mediafiles.leaks(data) == []
        assert page.url == f"{base}/portal/{SID}/"  # the download leaves the page where it was
        pages.hosts("statement-download")

        # the list of releases, then the settings
        page.get_by_role("link", name="All your releases").click()
        page.wait_for_url(f"{base}/portal/")
        pages.check("releases")
        row = page.get_by_role("row").filter(has_text=TITLE)
        assert row.get_by_role("link", name=TITLE).is_visible() and row.get_by_text("Under embargo").is_visible()
        page.get_by_role("link", name="Your settings").click()
        page.wait_for_url(f"{base}/portal/settings")
        pages.check("settings")
        assert page.get_by_role("heading", level=1, name="Your settings").is_visible()
        assert page.get_by_label("Your language").is_visible()

        # the press office revokes her: the statement's page, reloaded, opens nothing
        page.goto(f"{base}/portal/")
        page.get_by_role("link", name=TITLE).click()
        page.wait_for_url(f"{base}/portal/{SID}/")
        pages.check("statement-again")
        assert page.get_by_text(SENTENCE).is_visible()
        revoked = system.at("recipients", "revoke", ANA, "--by", "Kim Ahn")
        assert revoked.code == 0, revoked.err
        assert page.reload().status == 403
        pages.check("revoked")
        assert page.get_by_role("heading", level=1, name="This link opens nothing now").is_visible()
        shown = page.content()
        assert "Riverland" not in shown and "flood maps" not in shown and "EMBARGOED" not in shown
        assert page.get_by_role("img").count() == 0
        assert pages.portal_cookies() == []  # the session's cookie is gone with it
    finally:
        context.close()

    assert not pages.problems, "\n".join(pages.problems)
