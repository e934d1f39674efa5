"""The web app's test set-up: an office with an editor, a manager and a statement, and logged-out test clients."""

import os
import re
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from distributor import users
from distributor.clock import FixedClock
from distributor.web import create_app
from tests.conftest import utc

SID = "tro-01-001-2026"
SECRET = "a-test-secret-of-more-than-32-characters!"
START = utc(2027, 3, 1, 9, 0)
EMBARGO = utc(2027, 3, 2, 0, 1)
LIST = """email,name,outlet,embargo_ok
ana@paper.example.com,Ana Lima,Daily Paper,yes
bob@wire.example.net,Bob Ng,Wire Service,yes
tv@tv.example.org,Tess,TV,no
"""
PASSWORD = "correct horse battery"
ROOT = "/distributor"  # the path of the fixture's office.base_url, where the app lives and its cookies apply


def local(reply) -> str:
    """Where a redirect goes, as the test client (which adds the root itself) asks for it."""
    return reply.headers["Location"].removeprefix(ROOT)


@pytest.fixture
def web(make_system, statement_file, tmp_path, monkeypatch):
    """A configured office with an editor (maya) and a manager (kim), a statement imported by sam, and a factory
    of logged-out test clients."""
    monkeypatch.setenv("TEST_WEB_SECRET", SECRET)

    def make(base_url: str = "https://press.example.org/distributor", four_eyes: bool = False, extra: str = ""):
        clock = FixedClock(START)
        office = f'base_url = "{base_url}"\nfour_eyes = {"true" if four_eyes else "false"}'
        system = make_system(clock=clock, office_extra=office, extra='\n[web]\nsecret_env = "TEST_WEB_SECRET"\n' + extra)
        csv_path = tmp_path / "list.csv"
        csv_path.write_text(LIST, encoding="utf-8")
        assert system.cli("recipients", "import", csv_path, "--list", "embargo").code == 0
        assert system.at("import", statement_file(), "--by", "sam").code == 0
        with system.engine.begin() as conn:
            users.add(conn, "maya", users.Role.EDITOR, PASSWORD, START)
            users.add(conn, "kim", users.Role.MANAGER, PASSWORD, START)
            users.add(conn, "sam", users.Role.EDITOR, PASSWORD, START)
        app = create_app(system.config, system.engine, clock)
        app.config["TESTING"] = True
        return system, clock, app
    return make


def csrf(client, path="/login") -> str:
    page = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def login(app, name="maya", password=PASSWORD):
    client = app.test_client()
    reply = client.post("/login", data={"username": name, "password": password, "csrf_token": csrf(client)})
    assert reply.status_code == 302, reply.get_data(as_text=True)
    return client


def post(client, path, **data):
    return client.post(path, data={**data, "csrf_token": csrf(client, "/")})


def confirmed(client, path, **data):
    """An action that asks first: the summary, then the POST that confirms it with the summary's fingerprint."""
    summary = post(client, path, **data)
    assert summary.status_code == 200, summary.status_code
    page = summary.get_data(as_text=True)
    fingerprint = re.search(r'name="fingerprint" value="([^"]+)"', page).group(1)
    return post(client, path, **data, confirm="1", fingerprint=fingerprint)


@contextmanager
def serving(config_path: Path, port: int, probe: str = "/login"):
    """A real 'distributor serve' on loopback, in a process of its own, answering before the block begins; stopped
    with SIGTERM, as a service manager stops it, at its end."""
    env = {**os.environ, "TEST_WEB_SECRET": SECRET}
    server = subprocess.Popen([sys.executable, "-m", "distributor", "--config", str(config_path), "serve", "--port",
                               str(port)], cwd=Path(__file__).resolve().parent.parent, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                requests.get(f"http://127.0.0.1:{port}{probe}", timeout=5)
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline and server.poll() is None, "the server did not start"
                time.sleep(0.05)
        yield server
    finally:
        server.terminate()
        server.wait(timeout=30)
