"""The email as a reader sees it: its HTML part rendered in headless Chromium (Debian's `chromium`).

Fails when a table, list, quote, code or link of a Markdown statement loses its content or its inline styling, or
when the email would load anything from the network. The screenshots are kept in test-artifacts/screenshots/.
"""

from dataclasses import replace
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


# -- a phone's width: nothing scrolls sideways --------------------------------------------------------------------

PHONE = 390
LONG_URL = "https://nhrn.example.org/reports/2026/valdoria/" + "evictions-along-the-rio-claro-pipeline-" * 4 + "full.pdf"
WIDE = f"""---
title: "Valdoria: Evictions-along-the-Río-Claro-water-pipeline-must-stop-before-the-winter-rains-now"
date: 2026-11-27
reference: "Index: NHRN/12/004/2026/Valdoria/Río-Claro-pipeline-evictions"
serial: News Service No. 118
embargo: 2026-12-15T00:01:00Z
contacts: |
  Press office, +44 20 7946 0000, press-office-out-of-hours-duty-officer@northfield-human-rights-network.example.org
---
The full report is at {LONG_URL} and [also here]({LONG_URL}).

<{LONG_URL}>

`{"x" * 120}`

| Period | Where she was held | Visits allowed |
|---|---|---|
| Days 1–90 | {"Pretrial-detention-centre-" * 4} | none |
| Source | {LONG_URL} | {"x" * 60} |

| Period | What happened | Visits |
|---|---|---|
| Days 1–90 | {"She was held in a crowded cell with twenty other people and saw no lawyer for weeks. " * 3} | none |

```
{"code-line-" * 20}
```

> {"A-quotation-without-any-space-in-it-" * 4}

- {"an-item-without-any-space-" * 5}
"""


def overflow(browser, html: str, name: str) -> tuple[int, list[str]]:
    """The document's scroll width at a 390 px viewport, and what sticks out to the right."""
    page = browser.new_page(viewport={"width": PHONE, "height": 844})
    page.route("**/*", lambda route: route.abort())
    page.set_content(html, wait_until="load")
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTEFACTS / f"{name}-390.png"), full_page=True)
    width = page.evaluate("document.documentElement.scrollWidth")
    # a one-word heading of a table of the statement keeps its word whole: the table is not squeezed to fit
    broken = page.evaluate("""() => [...document.querySelectorAll('th')].filter(th => {
        const range = document.createRange(); range.selectNodeContents(th);
        return !th.textContent.trim().includes(' ') && range.getClientRects().length > 1;
    }).map(th => th.textContent)""")
    # what sticks out, but for what scrolls inside a box of its own (a statement's wide table)
    wide = page.evaluate("""w => [...document.body.querySelectorAll('*')]
        .filter(e => {
            for (let a = e.parentElement; a; a = a.parentElement)
                if (getComputedStyle(a).overflowX !== 'visible') return false;
            return e.getBoundingClientRect().right > w + 0.5
                   && ![...e.children].some(c => c.getBoundingClientRect().right > w + 0.5);
        })
        .map(e => `${e.tagName} right=${Math.round(e.getBoundingClientRect().right)}`
                  + ` ${(e.textContent || '').trim().slice(0, 50)}`)""", PHONE)
    page.close()
    return width, wide + [f"broken heading: {text}" for text in broken]


def notice_job(job, kind):
    from distributor.channels.base import Notice
    previous = {"previous": "2026-12-14T00:01:00+00:00"} if kind.value == "embargo-change" else {}
    return replace(job, kind=kind, notice=Notice(1, kind, "A revised statement with a long link " + LONG_URL
                                                 + " will follow.", previous, job.embargo))


@pytest.mark.parametrize("statement", ["wide.md", "nhrn-12-004-2026.txt", "nhrn-12-005-2026.md"])
def test_no_email_scrolls_sideways_on_a_phone(make_system, browser, tmp_path, statement):
    """At 390 px, the copy (embargoed, released, and as a withdrawn statement's preview shows it) and every notice
    fit the width: long URLs, words, code, contacts and zone names wrap; a statement's wide table scrolls in its
    own box, its words whole. Before, the embargoed copy scrolled sideways."""
    from distributor import workflow
    from distributor.channels.base import RELEASED
    from distributor.outcomes import Kind
    from distributor.statements.model import StatementStatus

    system = make_system(office_extra='unsubscribe_mailto = "press-office-unsubscribe-requests-and-queries'
                                      '@northfield-human-rights-network.example.org"')
    path = tmp_path / statement
    path.write_text(WIDE if statement == "wide.md" else (EXAMPLES / statement).read_text(encoding="utf-8"),
                    encoding="utf-8")
    result = system.cli("import", path)
    assert result.code == 0, result.err
    sid = result.out.split()[0]
    with system.engine.connect() as conn:
        job = system.dispatcher.job(conn, sid, workflow.get(conn, sid)["revision"])
    job = replace(job, embargo=job.statement.embargo)  # the zones' table is shown
    email = system.channels["email"]
    copies = {"embargoed": email.render(job, EMBARGOED).html, "released": email.render(job, RELEASED).html,
              "withdrawn": email.render(job, EMBARGOED, stopped=StatementStatus.WITHDRAWN).html}
    for kind in (Kind.WITHDRAWAL, Kind.EMBARGO_CHANGE, Kind.RETRACTION):
        copies[kind.value] = email.render(notice_job(job, kind), EMBARGOED).html
    seen = {variant: overflow(browser, html, f"{path.stem}-{variant}") for variant, html in copies.items()}
    assert {variant: found for variant, found in seen.items() if found[0] > PHONE or found[1]} == {}
