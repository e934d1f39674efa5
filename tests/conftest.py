"""Shared fixtures: real databases, a real SMTP server on loopback, config files, the CLI in-process."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import warnings
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from sqlalchemy import text

from distributor import cli
from distributor.channels import Context, build
from distributor.channels import load_config as load
from distributor.clock import Clock, FixedClock
from distributor.dispatch import Dispatcher
from distributor.render import Renderer
from distributor.store import connect, init_schema
from distributor.store.schema import metadata

pytest_plugins = ["tests.webapp"]  # the web app's fixture

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
TEMPLATES = ROOT / "templates"

DATABASES = ["sqlite"] + (["postgresql"] if os.environ.get("DISTRIBUTOR_TEST_DATABASE_URL") else [])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(params=DATABASES)
def db_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'distributor.db'}"
    url = os.environ["DISTRIBUTOR_TEST_DATABASE_URL"]
    engine = connect(url)
    with engine.begin() as conn:
        metadata.drop_all(conn)
        conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
    engine.dispose()
    return url


@pytest.fixture
def engine(db_url):
    """An initialised database on every configured backend."""
    engine = connect(db_url)
    init_schema(engine)
    yield engine
    engine.dispose()


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    at: datetime = field(default_factory=lambda: datetime.now(UTC))  # when the sink accepted it


@dataclass
class SinkHandler:
    """Accepts mail unless told to refuse: per-recipient RCPT and DATA replies, by address. Offers PIPELINING
    (RFC 2920), as Postfix and Exim do, unless ``pipelining`` is False."""

    messages: list[Received] = field(default_factory=list)
    rcpt_replies: dict[str, str] = field(default_factory=dict)
    data_replies: dict[str, str] = field(default_factory=dict)
    mail_reply: str | None = None
    pipelining: bool = True

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        return [*responses[:-1], "250-PIPELINING", responses[-1]] if self.pipelining else responses

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        if self.mail_reply:
            return self.mail_reply
        envelope.mail_from = address
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        reply = self.rcpt_replies.get(address.lower())
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        for address in envelope.rcpt_tos:
            reply = self.data_replies.get(address.lower())
            if reply:
                return reply
        self.messages.append(Received(envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content))
        return "250 Message accepted for delivery"


@dataclass
class Sink:
    host: str
    port: int
    handler: SinkHandler

    @property
    def messages(self) -> list[Received]:
        return self.handler.messages


def _start_sink(handler: SinkHandler, **kwargs) -> Controller:
    controller = Controller(handler, hostname="127.0.0.1", port=free_port(), **kwargs)
    controller.start()
    return controller


@pytest.fixture
def smtp_sink():
    handler = SinkHandler()
    controller = _start_sink(handler)
    yield Sink("127.0.0.1", controller.port, handler)
    controller.stop()


@pytest.fixture
def smtp_auth_sink():
    """A server that requires a login and refuses every password but 'right-password'."""

    def authenticator(server, session, envelope, mechanism, auth_data):
        return AuthResult(success=getattr(auth_data, "password", b"") == b"right-password", handled=False)

    handler = SinkHandler()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # AUTH without TLS is fine on loopback
        controller = _start_sink(handler, authenticator=authenticator, auth_required=True, auth_require_tls=False)
    yield Sink("127.0.0.1", controller.port, handler)
    controller.stop()


CONFIG = """
[office]
name = "Test Rights Office"
timezone = "Europe/London"
also_show = ["America/New_York"]
from = "press@office.example.org"
reply_to = "desk@office.example.org"
public_url = "https://office.example.org/press/{{id}}"
{office_extra}

[paths]
templates = "{templates}"
media = "media"

[database]
url = "{db_url}"

[delivery]
retry_first_seconds = 30
retry_max_seconds = 900
max_attempts = 8
batch_size = {batch_size}
lease_seconds = {lease_seconds}
{delivery_extra}

[channels.email]
transport = "{transport}"
list = "embargo"
{email_extra}

[channels.email.smtp]
host = "127.0.0.1"
port = {smtp_port}
connections = {connections}
{smtp_extra}

[channels.email.file]
directory = "outbox"
"""


@pytest.fixture
def write_config(tmp_path, db_url):
    def write(transport: str = "file", smtp_port: int = 25, smtp_extra: str = "", batch_size: int = 500,
              extra: str = "", name: str = "distributor.toml", lease_seconds: float = 60,
              connections: int = 2, email_extra: str = "", delivery_extra: str = "", office_extra: str = "") -> Path:
        path = tmp_path / name
        path.write_text(CONFIG.format(templates=TEMPLATES, db_url=db_url, transport=transport, smtp_port=smtp_port,
                                      smtp_extra=smtp_extra, batch_size=batch_size,
                                      lease_seconds=lease_seconds, connections=connections,
                                      email_extra=email_extra, delivery_extra=delivery_extra,
                                      office_extra=office_extra) + extra, encoding="utf-8")
        return path
    return write


@dataclass
class Result:
    code: int
    out: str
    err: str


@pytest.fixture
def run(capsys):
    """Run the CLI in-process: run(config, "import", "file.txt") → Result."""

    def invoke(config: Path | None, *args: str, clock: Clock | None = None) -> Result:
        capsys.readouterr()
        argv = (["--config", str(config)] if config else []) + [str(a) for a in args]
        try:
            code = cli.main(argv, clock)
        except SystemExit as exc:  # argparse
            code = exc.code
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)
    return invoke


@dataclass
class System:
    """A configured, initialised installation, driven without the scheduler's timing."""

    config_path: Path
    clock: Clock
    run: object
    database_clock: Clock | None = None  # stands in for PostgreSQL's clock

    def __post_init__(self):
        self.config = load(self.config_path)
        self.engine = connect(self.config.database_url)
        init_schema(self.engine)
        renderer = Renderer(self.config.paths.templates, self.config.office)
        self.context = Context(self.config, self.engine, self.clock, renderer, self.database_clock)
        self.channels = build(self.context)
        self.dispatcher = Dispatcher(self.context, self.channels)
        self.dispatcher.heartbeat.start()  # a live worker; channels open on first use

    def cli(self, *args):
        """A command at the real time."""
        return self.run(self.config_path, *args)

    def at(self, *args):
        """A command at this system's clock, as a press officer would type it at that moment."""
        return self.run(self.config_path, *args, clock=self.clock)

    def close(self):
        self.dispatcher.close()
        for channel in self.channels.values():
            channel.close()
        self.engine.dispose()


@pytest.fixture
def make_system(write_config, run):
    systems = []

    def make(clock: Clock | None = None, database_clock: Clock | None = None, **config) -> System:
        system = System(write_config(**config), clock or Clock(), run, database_clock)
        systems.append(system)
        return system
    yield make
    for system in systems:
        system.close()


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def soon(seconds: float = 3600) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()


STATEMENT = """Press Release

14 October 2026

{reference} - News Service No. 7

{embargo}

{title}

The Test Rights Office said today that a fictional river authority must publish its flood maps.

Residents of Åsgård and Zürich-Nord told researchers that “nobody listened” — the maps were withheld.

For more information please call the press office on +44 20 7946 0000
"""


@pytest.fixture
def statement_file(tmp_path):
    def write(name: str = "statement.txt", title: str = "Riverland: Flood maps must be published",
              embargo: str = "", body_extra: str = "", reference: str = "Index: TRO 01/001/2026") -> Path:
        path = tmp_path / name
        text = STATEMENT.format(embargo=embargo, title=title, reference=reference)
        if body_extra:
            text = text.replace("\nFor more information", f"\n{body_extra}\n\nFor more information")
        path.write_text(text, encoding="utf-8")
        return path
    return write


def wait_for(predicate, timeout: float = 10.0, interval: float = 0.05):
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


@pytest.fixture
def shared_sample() -> Path:
    path = SHARED / "samples" / "public-statement-asa-17-013-2002.txt"
    if not path.exists():
        pytest.skip(f"reference sample not found at {path}")
    return path


__all__ = ["FixedClock", "utc", "soon", "wait_for", "threading"]


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")  # Debian's package, never a download


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium driven by Playwright, for the tests that render in a browser."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed (run make install)")
    if CHROMIUM is None:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium; .ci/run installs it)")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()
