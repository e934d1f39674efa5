"""The web app in a real browser: Debian's chromium, driven by Playwright, against waitress on loopback.

An editor logs in, previews a statement, approves and schedules it; the embargoed copies reach the loopback SMTP
server; the editor opens the statement page, filters the failures and downloads the CSV. The statement page's
screenshot is kept in test-artifacts/screenshots/.
"""

import csv
import io
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from distributor import users
from tests.conftest import CHROMIUM, free_port, wait_for

pytest.importorskip("playwright.sync_api", reason="Playwright is not installed (run make install)")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed "
                                                          "(apt-get install chromium; .ci/run installs it)")
ARTEFACTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "screenshots"
SID = "tro-01-001-2026"
SECRET = "a-test-secret-of-more-than-32-characters!"
PASSWORD = "correct horse battery"


@pytest.fixture
def served(make_system, smtp_sink, statement_file, tmp_path, monkeypatch):
    from waitress import create_server

    from distributor.web import create_app

    monkeypatch.setenv("TEST_WEB_SECRET", SECRET)
    port = free_port()
    system = make_system(transport="smtp", smtp_port=smtp_sink.port,
                         office_extra=f'base_url = "http://127.0.0.1:{port}"',
                         extra='\n[web]\nsecret_env = "TEST_WEB_SECRET"\n')
    smtp_sink.handler.rcpt_replies["gone@tv.example.org"] = "550 5.1.1 no such mailbox"
    csv_path = tmp_path / "list.csv"
    csv_path.write_text("email,name,outlet,embargo_ok\nana@paper.example.com,Ana,Daily Paper,yes\n"
                        "bob@wire.example.net,Bob,Wire Service,yes\ngone@tv.example.org,Gone,TV,yes\n",
                        encoding="utf-8")
    assert system.cli("recipients", "import", csv_path, "--list", "embargo").code == 0
    assert system.cli("import", statement_file()).code == 0
    with system.engine.begin() as conn:
        users.add(conn, "maya", users.Role.EDITOR, PASSWORD, datetime.now(UTC))
    server = create_server(create_app(system.config, system.engine, system.clock), host="127.0.0.1", port=port)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    yield system, f"http://127.0.0.1:{port}"
    server.close()
    thread.join(timeout=5)


def test_an_editor_releases_a_statement_from_the_browser(served, browser, smtp_sink, tmp_path):
    system, base = served
    page = browser.new_page(viewport={"width": 1200, "height": 900}, accept_downloads=True)
    page.goto(f"{base}/statements/{SID}")
    assert page.url.startswith(f"{base}/login")  # every page needs a login
    page.fill("input[name=username]", "maya")
    page.fill("input[name=password]", PASSWORD)
    page.click("button:has-text('Log in')")
    page.wait_for_url(f"{base}/statements/{SID}")

    # the preview: the email's HTML in a sandboxed frame, with its embargo banner
    frame = page.frame_locator("iframe[sandbox]")
    assert "Flood maps must be published" in frame.locator("body").inner_text()

    page.click("button:has-text('Approve')")
    assert "approved" in page.locator(".flash.ok").inner_text()
    embargo = (datetime.now(UTC) + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%S")
    page.fill("form[action$='/schedule'] input[name=embargo]", embargo)
    page.select_option("form[action$='/schedule'] select[name=embargo_zone]", "UTC")
    page.fill("form[action$='/schedule'] input[name=channels]", "email")
    page.click("button:has-text('Schedule')")
    assert "scheduled" in page.locator(".flash.ok").inner_text()

    # the worker (distributor run) sends the embargoed copies
    system.dispatcher.advance()
    system.dispatcher.deliver("email")
    assert wait_for(lambda: len(smtp_sink.messages) == 2)
    assert sorted(m.rcpt_tos[0] for m in smtp_sink.messages) == ["ana@paper.example.com", "bob@wire.example.net"]

    page.goto(f"{base}/statements/{SID}")
    page.select_option("form#recipients select[name=status]", "failed")
    page.click("form#recipients button")
    page.wait_for_url("**status=failed**")
    rows = page.locator("form#recipients + table tr").all_inner_texts()
    assert len(rows) == 2 and "gone@tv.example.org" in rows[1] and "550 5.1.1" in rows[1]
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    page.goto(f"{base}/statements/{SID}")
    page.frame_locator("iframe[sandbox]").locator("text=EMBARGOED").first.wait_for()
    page.screenshot(path=str(ARTEFACTS / "statement-page.png"), full_page=True)

    with page.expect_download() as download:
        page.click("text=Download the delivery table (CSV)")
    saved = tmp_path / "deliveries.csv"
    download.value.save_as(saved)
    rows = list(csv.DictReader(io.StringIO(saved.read_text(encoding="utf-8"))))
    assert sorted((r["target"], r["status"]) for r in rows) == [
        ("ana@paper.example.com", "sent"), ("bob@wire.example.net", "sent"), ("gone@tv.example.org", "failed")]


def test_a_page_on_another_port_cannot_frame_the_statement_page(served, browser):
    """A decoy on the same host (same site, so the session cookie goes along) frames the statement page to make an
    editor click Approve: the browser refuses to show it; the statement page still frames its own email preview."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    system, base = served
    decoy_html = (f'<!DOCTYPE html><title>Win a prize</title><iframe id="target" src="{base}/statements/{SID}" '
                  f'width="1000" height="700"></iframe>').encode()

    class Decoy(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.end_headers()
            self.wfile.write(decoy_html)

        def log_message(self, *args):
            pass

    decoy = ThreadingHTTPServer(("127.0.0.1", free_port()), Decoy)
    thread = threading.Thread(target=decoy.serve_forever, daemon=True)
    thread.start()
    try:
        page = browser.new_page()
        page.goto(f"{base}/login")
        page.fill("input[name=username]", "maya")
        page.fill("input[name=password]", PASSWORD)
        page.click("button:has-text('Log in')")
        page.wait_for_url(f"{base}/")
        assert "Approve" in page.goto(f"{base}/statements/{SID}").text()  # logged in: the page is there to frame
        refused: list[str] = []
        page.on("console", lambda message: refused.append(message.text))
        page.goto(f"http://127.0.0.1:{decoy.server_address[1]}/", wait_until="load")
        framed = page.frame_locator("#target")
        assert framed.locator("button:has-text('Approve')").count() == 0
        assert wait_for(lambda: any("frame-ancestors" in text for text in refused))
        page.goto(f"{base}/statements/{SID}")
        assert "Flood maps must be published" in page.frame_locator("iframe[sandbox]").locator("body").inner_text()
    finally:
        decoy.shutdown()
        decoy.server_close()
