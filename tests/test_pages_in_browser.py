"""Every page of the web app in a real browser (Debian's chromium, driven by Playwright, against waitress on loopback),
at a desktop's 1280 px and a phone's 390 px: nothing runs off the phone's screen (a wide table scrolls in its own
box), axe-core finds nothing serious or critical, the keyboard's focus shows a clear outline, and a screenshot of
each whole page is kept in test-artifacts/screenshots/ (pages-NAME-WIDTH.png; the top of three of them, docs-NAME.png,
is what docs/web-*.png show).

The pages: logging in, the statement list, a statement as a draft with two revisions, approved, scheduled, being sent
(copies sent, failed, retrying and still due), in Markdown and withdrawn, the confirmation of the withdrawal, the audit
trail, the alerts, a recipient, the lists and a list, the calendar (with a new feed address), the 404 and the 403, and
the unsubscribe page before and after. The office's clock is fixed, so the pages say the same times on every run.
"""

import threading
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from distributor import unsubscribe, users
from distributor.clock import FixedClock
from distributor.store.schema import deliveries
from tests.channels.conftest import mastodon
from tests.conftest import CHROMIUM, free_port, utc

pytest.importorskip("playwright.sync_api", reason="Playwright is not installed (run make install)")
axe_playwright = pytest.importorskip("axe_playwright_python.sync_playwright",
                                     reason="axe-playwright-python is not installed (run make install)")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed "
                                                          "(apt-get install chromium; .ci/run installs it)")

ARTEFACTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "screenshots"
SECRET = "a-test-secret-of-more-than-32-characters!"
PASSWORD = "correct horse battery"
WIDTHS = (1280, 390)
HEIGHT = 900
SERIOUS = ("serious", "critical")
# The top of three pages at 1280 px, for docs/ (copied by hand when the pages change): docs-NAME.png
DOCS = {"statements": 900, "statement-sending": 1040, "confirm-withdraw": 440}

START = utc(2027, 3, 1, 9, 0)
LIFT = utc(2027, 3, 1, 10, 0)  # the embargo of the statement that is being sent
LATER = utc(2027, 3, 4, 0, 1)  # the embargo of the one that is withdrawn

SENDING = "tro-01-001-2026"
HELD = "tro-01-002-2026"
DRAFT = "tro-01-003-2026"
APPROVED = "tro-01-004-2026"
MARKDOWN = "nhrn-12-005-2026"  # the example in Markdown: a table, a list, a quote, an image, code
EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "statements" / f"{MARKDOWN}.md"

PEOPLE = """email,name,outlet,embargo_ok,language,tags
ana@paper.example.com,Ana Lima,Daily Paper,yes,en,national
bob@wire.example.net,Bob Ng,Wire Service,yes,en,wire
gone@tv.example.org,Gus Oné,TV Nine,yes,,broadcast
slow@radio.example.org,Sam Low,Radio of the Four Counties,yes,en,broadcast;regional
cy@weekly.example.com,Cy Doe,The Weekly Review,no,en,magazine
dee@agency.example.net,Dee Park,Photo Agency,no,fr,photo
eve@freelance.example.org,Eve Stone,,no,de,freelance
fay@night.example.com,Fay Hart,Night Desk,no,en,
"""


@pytest.fixture
def db_url(tmp_path) -> str:
    """SQLite only: the pages look the same on either database, and one run keeps this test quick."""
    return f"sqlite:///{tmp_path / 'distributor.db'}"


def hand_out(system) -> None:
    system.dispatcher.advance()
    system.dispatcher.deliver("email")


@pytest.fixture
def served(make_system, smtp_sink, statement_file, tmp_path, monkeypatch):
    """An office whose statements are in every state: being sent (copies sent, failed, retrying and still due), held
    under embargo, approved, and a draft with two revisions; with an editor (maya) and a manager (kim)."""
    from waitress import create_server

    from distributor.web import create_app

    monkeypatch.setenv("TEST_WEB_SECRET", SECRET)
    monkeypatch.setenv("TEST_MASTODON_TOKEN", "a-token-for-the-test")
    port = free_port()
    clock = FixedClock(START)
    system = make_system(clock=clock, transport="smtp", smtp_port=smtp_sink.port,
                         office_extra=f'base_url = "http://127.0.0.1:{port}"',
                         extra='\n[web]\nsecret_env = "TEST_WEB_SECRET"\n'
                               + mastodon("https://social.example.org", name="mastodon", transport="file"))
    smtp_sink.handler.rcpt_replies["gone@tv.example.org"] = "550 5.1.1 no such mailbox"
    smtp_sink.handler.rcpt_replies["slow@radio.example.org"] = "451 4.3.2 try again later"
    people = tmp_path / "people.csv"
    people.write_text(PEOPLE, encoding="utf-8")
    assert system.cli("recipients", "import", people, "--list", "embargo").code == 0

    files = {
        SENDING: statement_file(name="sending.txt"),
        HELD: statement_file(name="held.txt", title="Calderia: Release the detained journalists before the trial",
                             reference="Index: TRO 01/002/2026"),
        DRAFT: statement_file(name="draft.txt", title="Ostmark: New surveillance law threatens sources",
                              reference="Index: TRO 01/003/2026",
                              embargo="EMBARGOED FOR: 00:01 GMT Thursday 11 March 2027"),
        APPROVED: statement_file(name="approved.txt", title="Annual report on the right to protest",
                                 reference="Index: TRO 01/004/2026"),
    }
    for path in [*files.values(), EXAMPLE]:
        assert system.at("import", path, "--by", "sam").code == 0, path
    newer = statement_file(name="draft-2.txt", title="Ostmark: New surveillance law threatens sources",
                           reference="Index: TRO 01/003/2026", embargo="EMBARGOED FOR: 00:01 GMT Thursday 11 March 2027",
                           body_extra="The law was passed on 3 March without a public consultation.")
    newer.write_text(newer.read_text(encoding="utf-8").replace("flood maps.", "flood risk maps."), encoding="utf-8")
    assert system.at("import", newer, "--revision-of", DRAFT, "--by", "sam", "--note", "the date of the vote").code == 0
    for sid in (SENDING, HELD, APPROVED):
        assert system.at("approve", sid, "--by", "maya").code == 0
    for sid, embargo in ((SENDING, LIFT), (HELD, LATER)):
        result = system.at("schedule", sid, "--embargo", embargo.isoformat(), "--channels", "email",
                           "--override-embargo", "--reason", "agreed with the researchers")
        assert result.code == 0, result.err
    hand_out(system)  # the vetted journalists' embargoed copies: two sent, one refused, one to retry
    with system.engine.begin() as conn:  # the held statement's copy is retried later: its page stays still
        conn.execute(update(deliveries).where(deliveries.c.statement_id == HELD, deliveries.c.status == "retrying")
                     .values(next_attempt_at=START + timedelta(hours=2)))

    clock.set(LIFT + timedelta(seconds=2))
    system.dispatcher.advance()  # the lift: the others' copies are planned, two of them due in a few seconds
    with system.engine.begin() as conn:
        conn.execute(update(deliveries).where(deliveries.c.statement_id == SENDING, deliveries.c.target.in_(
            ("eve@freelance.example.org", "fay@night.example.com"))).values(next_attempt_at=LIFT + timedelta(seconds=20)))
    system.dispatcher.deliver("email")
    clock.set(LIFT + timedelta(seconds=12))

    with system.engine.begin() as conn:
        users.add(conn, "maya", users.Role.EDITOR, PASSWORD, START)
        users.add(conn, "kim", users.Role.MANAGER, PASSWORD, START)
    server = create_server(create_app(system.config, system.engine, clock), host="127.0.0.1", port=port)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    yield system, f"http://127.0.0.1:{port}"
    server.close()
    thread.join(timeout=5)


# What sticks out of the page's width, outside a box that scrolls on its own: named for the failure message.
STICKING_OUT = """() => {
  const width = document.documentElement.clientWidth;
  const found = [];
  for (const element of document.querySelectorAll("body *")) {
    if (element.parentElement.closest(".scroll")) continue;
    const right = element.getBoundingClientRect().right;
    if (right > width + 0.5) {
      const classes = typeof element.className === "string" && element.className
        ? "." + element.className.trim().split(/\\s+/).join(".") : "";
      const id = element.id ? "#" + element.id : "";
      found.push(`${element.tagName.toLowerCase()}${id}${classes} (to ${Math.round(right)} px)`);
    }
  }
  return {scrollWidth: document.documentElement.scrollWidth, found: found.slice(0, 8)};
}"""


# The statement page reloads itself every 5 s while copies go out, as the view asks; a template cannot offer another
# way (the pages' policy runs no script). axe-core counts any refresh sooner than 20 hours as critical (WCAG 2.2.1,
# timing adjustable): it is let through on a page that tells its reader it refreshes, and on no other.
REFRESH = "meta-refresh"


class Pages:
    """Checks each page at each width: its fit, axe-core's findings and a screenshot."""

    def __init__(self, axe):
        self.axe = axe
        self.too_wide: list[str] = []
        self.violations: list[str] = []
        self.let_through: list[str] = []  # see REFRESH

    def focus(self, page) -> None:
        """The element focused from the keyboard shows a clear outline."""
        seen = page.evaluate("""() => {
          const element = document.activeElement, style = getComputedStyle(element);
          return {element: element.outerHTML.slice(0, 80), style: style.outlineStyle, width: parseFloat(style.outlineWidth)};
        }""")
        if seen["style"] == "none" or seen["width"] < 2:
            self.violations.append(f"no clear focus outline on {seen['element']}: {seen['style']} {seen['width']} px")

    def check(self, page, name: str, path: str | None = None) -> None:
        """The page the tab shows; with a path, loaded anew at each width (a page that refreshes itself is checked
        well within its 5 s)."""
        for width in WIDTHS:
            page.set_viewport_size({"width": width, "height": HEIGHT})
            if path:
                page.goto(path)
            if page.locator("iframe").count():
                page.frame_locator("iframe").first.locator("body").wait_for()
            fit = page.evaluate(STICKING_OUT)
            if fit["scrollWidth"] > width:
                self.too_wide.append(f"{name} at {width} px is {fit['scrollWidth']} px wide: {', '.join(fit['found'])}")
            refreshing = page.locator("#live").count() > 0
            for violation in self.axe.run(page).response["violations"]:
                if violation["impact"] not in SERIOUS:
                    continue
                targets = [" ".join(node["target"]) for node in violation["nodes"]]
                said = f"{name} at {width} px: {violation['id']} ({violation['impact']}) {violation['help']}: {targets[:6]}"
                (self.let_through if violation["id"] == REFRESH and refreshing else self.violations).append(said)
            # the whole page in a viewport as tall as it is: a full-page capture leaves the email preview's sandboxed
            # frame blank
            tall = page.evaluate("document.documentElement.scrollHeight")
            page.set_viewport_size({"width": width, "height": max(HEIGHT, tall)})
            page.screenshot(path=str(ARTEFACTS / f"pages-{name}-{width}.png"))
            if width == WIDTHS[0] and name in DOCS:
                page.screenshot(path=str(ARTEFACTS / f"docs-{name}.png"),
                                clip={"x": 0, "y": 0, "width": width, "height": DOCS[name]})


def log_in(context, base: str, name: str):
    page = context.new_page()
    page.goto(f"{base}/login")
    page.fill("input[name=username]", name)
    page.fill("input[name=password]", PASSWORD)
    page.click("button:has-text('Log in')")
    page.wait_for_url(f"{base}/")
    return page


def test_every_page_fits_a_phone_passes_axe_and_is_kept_as_a_screenshot(served, browser):
    system, base = served
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    pages = Pages(axe_playwright.Axe())
    editor = browser.new_context(viewport={"width": WIDTHS[0], "height": HEIGHT})
    try:
        pages.check(editor.new_page(), "login", f"{base}/login")
        page = log_in(editor, base, "maya")
        page.goto(f"{base}/lists/embargo")
        for _ in range(12):  # the menu, the log-out button, the search, the table's links and buttons
            page.keyboard.press("Tab")
            pages.focus(page)
        for name, path in (
                ("statements", "/"),
                ("statement-draft", f"/statements/{DRAFT}"),
                ("statement-approved", f"/statements/{APPROVED}"),
                ("statement-scheduled", f"/statements/{HELD}"),
                ("statement-sending", f"/statements/{SENDING}"),
                ("statement-markdown", f"/statements/{MARKDOWN}"),
                ("audit", "/audit"),
                ("status", "/status"),
                ("recipient", "/recipients/gone@tv.example.org"),
                ("lists", "/lists"),
                ("list", "/lists/embargo"),
                ("calendar", "/calendar"),
                ("404", "/no-such-page")):
            pages.check(page, name, base + path)
        assert "refreshes itself" in page.goto(f"{base}/statements/{SENDING}").text()  # it is being sent

        page.goto(f"{base}/calendar")
        page.click("button:has-text('Make my feed address')")
        page.wait_for_selector("input[aria-label='Feed address']")
        pages.check(page, "calendar-new-address")

        page.goto(f"{base}/statements/{HELD}")
        withdraw = page.locator("form[action$='/withdraw']")
        withdraw.locator("input[name=reason]").fill("the trial was postponed")
        withdraw.locator("input[name=note]").fill("Please destroy the embargoed copy.")
        withdraw.locator("button").click()
        page.wait_for_selector("#consequences")
        pages.check(page, "confirm-withdraw")
        page.click("button:has-text('Yes, withdraw it')")
        page.wait_for_url(f"{base}/statements/{HELD}")
        assert "withdrawn" in page.inner_text(".flash.ok")
        pages.check(page, "statement-withdrawn", f"{base}/statements/{HELD}")  # loaded anew: it refreshes itself
    finally:
        editor.close()

    manager = browser.new_context(viewport={"width": WIDTHS[0], "height": HEIGHT})
    try:
        page = log_in(manager, base, "kim")
        page.goto(f"{base}/statements/{APPROVED}")
        with page.expect_navigation():  # a manager's POST (no form offers one): refused
            page.evaluate("""(action) => {
              const form = document.createElement("form");
              form.method = "post";
              form.action = action;
              form.append(document.querySelector("input[name=csrf_token]").cloneNode());
              document.body.append(form);
              form.submit();
            }""", f"{base}/statements/{APPROVED}/schedule")
        assert "Only an editor may do that." in page.inner_text("main")
        pages.check(page, "403")
    finally:
        manager.close()

    visitor = browser.new_context(viewport={"width": WIDTHS[0], "height": HEIGHT})
    try:
        page = visitor.new_page()
        pages.check(page, "unsubscribe", f"{base}/u/{unsubscribe.token(SECRET, 'cy@weekly.example.com')}")
        page.click("button:has-text('Unsubscribe')")
        page.wait_for_selector("h1:has-text('Unsubscribed')")
        pages.check(page, "unsubscribed")
    finally:
        visitor.close()

    print("let through:", *pages.let_through, sep="\n")
    assert not pages.too_wide and not pages.violations, (
        "wider than the screen:\n" + "\n".join(pages.too_wide or ["none"])
        + "\naxe-core's serious and critical findings:\n" + "\n".join(pages.violations or ["none"]))
