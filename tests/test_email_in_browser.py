"""The email as a reader sees it: its HTML part rendered in headless Chromium (Debian's `chromium`).

Fails when a table, list, quote, code or link of a Markdown statement loses its content or its inline styling, or
when the email would load anything from the network. The screenshots are kept in test-artifacts/screenshots/.
"""

from pathlib import Path

import pytest

from distributor.channels.base import EMBARGOED
from tests.conftest import CHROMIUM

pytest.importorskip("playwright.sync_api", reason="Playwright is not installed (run make install)")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed "
                                                          "(apt-get install chromium; .ci/run installs it)")
ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples" / "statements"
ARTEFACTS = ROOT / "test-artifacts" / "screenshots"


def rendered_html(system, path: Path) -> str:
    result = system.cli("import", path)
    assert result.code == 0, result.err
    sid = result.out.split()[0]
    with system.engine.connect() as conn:
        from distributor import workflow
        row = workflow.get(conn, sid)
        job = system.dispatcher.job(conn, sid, row["revision"])
    return system.channels["email"].render(job, EMBARGOED).html


def show(browser, html: str, name: str):
    page = browser.new_page(viewport={"width": 800, "height": 900})
    requested: list[str] = []
    page.route("**/*", lambda route: (requested.append(route.request.url), route.abort()))
    page.set_content(html, wait_until="load")
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTEFACTS / f"{name}.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 1000
    return page, requested


def style(page, selector: str, prop: str) -> str:
    return page.eval_on_selector(selector, f"e => getComputedStyle(e).getPropertyValue('{prop}')")


def test_a_markdown_statement_keeps_its_tables_lists_quotes_code_and_links_styled(make_system, browser):
    system = make_system()
    html = rendered_html(system, EXAMPLES / "nhrn-12-005-2026.md")
    page, requested = show(browser, html, "markdown-statement")
    assert requested == []  # nothing is loaded from anywhere: no remote image, font or style
    assert page.locator("img").count() == 0
    data = "table:has(> thead)"  # the statement's own table, not the email's layout
    assert page.locator("th").all_inner_texts() == ["Period", "Where she was held", "Visits allowed"]
    assert page.locator(f"{data} td").first.inner_text() == "Days 1–90"
    assert style(page, data, "border-collapse") == "collapse"
    assert style(page, f"{data} td", "border-top-width") == "1px" and style(page, "th", "border-left-style") == "solid"
    assert style(page, f"{data} td", "padding-left") == "10px"
    assert page.locator("li").count() == 5
    assert style(page, "ul", "padding-left") == "24px" and style(page, "ol", "padding-left") == "24px"
    assert style(page, "li", "margin-bottom") == "6px"
    assert style(page, "blockquote", "border-left-width") == "4px"
    assert "monospace" in style(page, "code", "font-family")
    link = page.locator("a", has_text="full report on her detention")
    assert link.get_attribute("href") == "https://nhrn.example.org/reports/12-005"
    assert link.evaluate("e => getComputedStyle(e).color") == "rgb(11, 87, 208)"
    chart = page.locator("a", has_text="[image: Chart: days in detention by month]")
    assert chart.get_attribute("href") == "https://nhrn.example.org/charts/12-005.png"
    assert 'alert("raw HTML' in page.inner_text("body") and page.locator("script").count() == 0
    page.close()


def test_the_demo_statement_shows_its_embargo_and_body(make_system, browser):
    system = make_system()
    html = rendered_html(system, EXAMPLES / "nhrn-12-004-2026.txt")
    page, requested = show(browser, html, "demo-statement")
    assert requested == []
    text = page.inner_text("body")
    assert "EMBARGOED" in text.upper()
    assert page.locator("p").count() >= 3
    assert all(style(page, f"p >> nth={i}", "margin-bottom") != "" for i in range(3))
    page.close()
