"""The web app against hostile use: lock-outs, racing logins, framing, caching, slow clients, broken redirect targets,
and the housekeeping of sessions and login attempts."""

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests
from sqlalchemy import func, select

from distributor import users
from distributor.store.schema import login_attempts
from tests.conftest import free_port
from tests.webapp import PASSWORD, ROOT, SECRET, SID, csrf, local, login, post, serving

ROOT_DIR = Path(__file__).resolve().parent.parent


def attempt(client, name: str, password: str, address: str = "192.0.2.1"):
    """One login POST as it would come from ``address``."""
    return client.post("/login", data={"username": name, "password": password, "csrf_token": csrf(client)},
                       environ_overrides={"REMOTE_ADDR": address})


def recorded_failures(system, name: str) -> int:
    with system.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(login_attempts).where(
            login_attempts.c.user_name == name, login_attempts.c.ok.is_(False))).scalar_one()


# -- the lock-out ----------------------------------------------------------------------------------------------------
def test_refused_logins_are_never_counted_so_the_limit_cannot_be_kept_up(web):
    system, clock, app = web()
    stranger = app.test_client()
    for n in range(5):
        assert attempt(stranger, "maya", "wrong", f"198.51.100.{n}").status_code == 401
    for n in range(20):  # refused without a password check, and not recorded
        assert attempt(stranger, "maya", PASSWORD, f"203.0.113.{n}").status_code == 401
    assert recorded_failures(system, "maya") == 5
    clock.advance(15 * 60 + 1)  # the window has passed since the five failures, whatever came after
    assert attempt(stranger, "maya", PASSWORD, "203.0.113.99").status_code == 302


def test_a_locked_out_user_gets_back_in_from_a_browser_they_used_before(web):
    system, clock, app = web()
    own = login(app, "maya")  # sets the device cookie
    assert post(own, "/logout").status_code == 302
    stranger = app.test_client()
    for n in range(5):
        attempt(stranger, "maya", "wrong", f"198.51.100.{n}")
    assert attempt(stranger, "maya", PASSWORD, "198.51.100.77").status_code == 401  # the right password, elsewhere
    assert attempt(own, "maya", "still wrong", "192.0.2.50").status_code == 401
    assert recorded_failures(system, "maya") == 6  # a check from the known browser is a check, and counts
    reply = attempt(own, "maya", PASSWORD, "192.0.2.50")
    assert reply.status_code == 302 and own.get("/").status_code == 200


def test_the_device_cookie_is_signed_bound_to_its_user_and_lasts_thirty_days(web):
    system, clock, app = web()
    kims = login(app, "kim")
    cookie = kims.get_cookie("distributor_device", path=ROOT)
    assert cookie is not None and cookie.http_only and cookie.secure and cookie.same_site == "Lax"
    assert cookie.max_age == 30 * 86400 or cookie.expires is not None

    def locked_out(name: str) -> None:
        stranger = app.test_client()
        for n in range(5):
            attempt(stranger, name, "wrong", f"198.51.100.{n}")

    locked_out("maya")
    assert attempt(kims, "maya", PASSWORD, "192.0.2.9").status_code == 401  # kim's browser is not maya's
    forged = app.test_client()
    forged.set_cookie("distributor_device", cookie.value.replace("kim", "maya"), path=ROOT)
    assert attempt(forged, "maya", PASSWORD, "192.0.2.10").status_code == 401
    clock.advance(29 * 86400)
    locked_out("kim")
    assert attempt(kims, "kim", PASSWORD, "192.0.2.11").status_code == 302  # renewed by this login
    clock.advance(31 * 86400)
    locked_out("kim")
    assert attempt(kims, "kim", PASSWORD, "192.0.2.12").status_code == 401  # 31 days since the last login


def test_the_limit_per_address_holds_for_a_known_browser_too(web):
    system, clock, app = web()
    own = login(app, "maya")
    for name in ("a", "b", "c", "d", "e"):
        attempt(app.test_client(), name, "wrong", "192.0.2.200")
    assert attempt(own, "maya", PASSWORD, "192.0.2.200").status_code == 401
    assert attempt(own, "maya", PASSWORD, "192.0.2.201").status_code == 302


def test_simultaneous_wrong_passwords_get_no_more_checks_than_the_limit(web):
    """Counting, checking and recording are one step per user: on PostgreSQL an advisory lock, on SQLite the
    single writer."""
    system, clock, app = web()
    start = threading.Barrier(24)
    results: list[object] = []

    def one(n: int) -> None:
        start.wait()
        results.append(users.authenticate(system.engine, "kim", "wrong", f"198.51.100.{n}", clock.now(),
                                          system.config.web))

    threads = [threading.Thread(target=one, args=(n,)) for n in range(24)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [None] * 24
    assert recorded_failures(system, "kim") == system.config.web.login_failures == 5


def test_attempts_older_than_the_window_are_pruned(web):
    system, clock, app = web()
    for n in range(40):
        attempt(app.test_client(), f"nobody{n}", "wrong", f"198.51.100.{n}")
    clock.advance(15 * 60 + 1)
    attempt(app.test_client(), "someone", "wrong", "192.0.2.1")
    with system.engine.connect() as conn:
        assert conn.execute(select(login_attempts.c.user_name)).scalars().all() == ["someone"]


# -- headers ---------------------------------------------------------------------------------------------------------
def test_no_page_may_be_framed_sniffed_or_cached(web):
    system, clock, app = web()
    client = login(app)
    for path in ("/login", "/", f"/statements/{SID}", f"/statements/{SID}/deliveries.csv", "/audit", "/status",
                 "/recipients/ana@paper.example.com", "/statements/no-such-id"):
        headers = client.get(path).headers
        assert "frame-ancestors 'none'" in headers["Content-Security-Policy"], path
        assert headers["X-Frame-Options"] == "DENY", path
        assert headers["X-Content-Type-Options"] == "nosniff", path
        assert headers["Referrer-Policy"] == "same-origin", path
        assert headers["Cache-Control"] == "no-store", path
    preview = client.get(f"/statements/{SID}/email.html").headers
    policy = preview["Content-Security-Policy"]
    assert "frame-ancestors 'self'" in policy and "'none'" not in policy.split("frame-ancestors")[1]
    assert policy.startswith("sandbox") and preview["X-Frame-Options"] == "SAMEORIGIN"
    assert preview["Cache-Control"] == "no-store"


# -- redirects and cookies -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("target", ["/\r\nSet-Cookie: x=1", "/audit\n", "/a\x7fb", "/\tx"])
def test_a_control_character_in_the_target_leads_home(web, target):
    system, clock, app = web()
    client = app.test_client()
    reply = client.post("/login", query_string={"next": target},
                        data={"username": "maya", "password": PASSWORD, "csrf_token": csrf(client)})
    assert reply.status_code == 302
    assert reply.headers["Location"] in (f"{ROOT}/", target) and "\n" not in reply.headers["Location"]
    assert client.get(local(reply)).status_code == 200


@pytest.mark.parametrize("base_url, path", [("https://press.example.org/distributor", ROOT),
                                             ("http://localhost:8080", "/")])
def test_cookies_live_at_the_path_of_the_base_url(web, base_url, path):
    system, clock, app = web(base_url=base_url)
    client = app.test_client()
    reply = client.post("/login", data={"username": "maya", "password": PASSWORD, "csrf_token": csrf(client)})
    cookies = reply.headers.getlist("Set-Cookie")
    assert {c.split("=")[0] for c in cookies} == {"distributor_session", "distributor_device"}
    assert all(f"Path={path};" in c or c.endswith(f"Path={path}") for c in cookies), cookies


def test_a_session_ends_after_its_absolute_lifetime_however_busy(web):
    system, clock, app = web()
    assert system.config.web.session_max_days == 7
    client = login(app)
    for _ in range(7 * 24 // 6 - 1):  # used every six hours: never idle
        clock.advance(6 * 3600)
        assert client.get("/").status_code == 200
    clock.advance(6 * 3600 + 1)
    assert client.get("/").status_code == 302


# -- slow clients ----------------------------------------------------------------------------------------------------
def test_a_crowd_of_half_sent_requests_keeps_nobody_out(write_config, tmp_path):
    """120 connections that never finish their request: the login page still answers."""
    port = free_port()
    path = write_config(extra='\n[web]\nsecret_env = "TEST_WEB_SECRET"\n')
    env = {**os.environ, "TEST_WEB_SECRET": SECRET}
    assert subprocess.run([sys.executable, "-m", "distributor", "--config", str(path), "-q", "init"], cwd=ROOT_DIR,
                          env=env, capture_output=True, check=False).returncode == 0
    slow: list[socket.socket] = []
    with serving(path, port):
        try:
            for _ in range(120):
                sock = socket.create_connection(("127.0.0.1", port), timeout=5)
                sock.sendall(b"GET /login HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
                slow.append(sock)
            began = time.monotonic()
            reply = requests.get(f"http://127.0.0.1:{port}/login", timeout=5)
            assert reply.status_code == 200 and time.monotonic() - began < 5
        finally:
            for sock in slow:
                sock.close()


def test_serve_sets_waitress_for_slow_clients_and_the_base_url(web):
    import argparse

    from distributor.cli import serve_options
    system, clock, app = web()
    options = serve_options(argparse.Namespace(host="127.0.0.1", port=8080, threads=8), system.config)
    assert options["connection_limit"] == 1000 and options["channel_timeout"] == 30
    assert options["url_prefix"] == ROOT


def test_a_new_office_gets_no_copy_of_the_web_pages_and_serve_warns_of_an_override(run, tmp_path):
    from distributor.channels import load_config
    from distributor.cli.web import overridden_pages
    office = tmp_path / "office"
    assert run(None, "new", office).code == 0
    assert (office / "templates" / "email" / "embargoed.html.j2").is_file()
    assert not (office / "templates" / "web").exists()  # the pages are the program's, upgraded with it
    config = load_config(office / "config" / "distributor.toml")
    assert overridden_pages(config) == []
    (office / "templates" / "web").mkdir()
    (office / "templates" / "web" / "statement.html").write_text("{% extends 'base.html' %}", encoding="utf-8")
    (office / "templates" / "web" / "extra.html").write_text("mine", encoding="utf-8")  # not one of ours
    assert overridden_pages(config) == [office / "templates" / "web" / "statement.html"]


def test_a_fault_of_ours_is_a_plain_page_and_the_traceback_goes_to_the_log(web, caplog):
    system, clock, app = web()
    app.config["TESTING"] = False  # as served: exceptions become the 500 page
    client = login(app)
    with system.engine.begin() as conn:  # a statement row the page cannot read
        conn.exec_driver_sql("UPDATE statements SET revision = 99")
    reply = client.get(f"/statements/{SID}")
    page = reply.get_data(as_text=True)
    assert reply.status_code == 500 and "Something went wrong on our side" in page
    assert "Traceback" not in page and "NoResultFound" not in page
    assert "GET /statements/" in caplog.text and "Traceback" in caplog.text
    assert client.put("/").status_code == 405
