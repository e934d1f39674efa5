"""Helpers for the public channels: a scheduled statement and a clock standing just before or after its embargo."""

import json
from datetime import timedelta

import pytest

from distributor.clock import FixedClock, utcnow

SID = "tro-01-001-2026"


def wire(url: str, name: str = "newswire", extra: str = "") -> str:
    return f'\n[[channels.wire]]\nname = "{name}"\nurl = "{url}"\ntransport = "http"\n{extra}\n'


def mastodon(base_url: str, name: str = "masto", transport: str = "http") -> str:
    return (f'\n[[channels.social]]\nnetwork = "mastodon"\nname = "{name}"\nbase_url = "{base_url}"\n'
            f'token_env = "TEST_MASTODON_TOKEN"\ntransport = "{transport}"\ndirectory = "out/mastodon"\n')


def bluesky(service: str, name: str = "sky", transport: str = "http") -> str:
    return (f'\n[[channels.social]]\nnetwork = "bluesky"\nname = "{name}"\nservice = "{service}"\n'
            f'handle = "press.example.org"\npassword_env = "TEST_BLUESKY_PASSWORD"\ntransport = "{transport}"\n'
            f'directory = "out/bluesky"\n')


def feed(path: str = "out/feed.atom", entries: int = 50) -> str:
    return f'\n[channels.feed]\npath = "{path}"\nentries = {entries}\n'


def file_wire(name: str = "filewire") -> str:
    return f'\n[[channels.wire]]\nname = "{name}"\ntransport = "file"\ndirectory = "out/wire"\n'


@pytest.fixture(autouse=True)
def social_secrets(monkeypatch):
    monkeypatch.setenv("TEST_MASTODON_TOKEN", "mastodon-token-123")
    monkeypatch.setenv("TEST_BLUESKY_PASSWORD", "app-password-456")


@pytest.fixture
def scheduled(statement_file):
    """scheduled(system, channels=..., embargo=...) → the embargo instant; the statement is approved and scheduled."""

    def make(system, channels: str | None = None, embargo=None, statement_name: str = "statement.txt", **statement):
        clock = system.clock
        embargo = embargo or (clock.now() + timedelta(minutes=10))
        path = statement_file(name=statement_name, **statement)
        result = system.cli("import", path)
        assert result.code == 0, result.err
        sid = result.out.strip()
        assert system.cli("approve", sid, "--by", "Maya").code == 0
        args = ["schedule", sid, "--embargo", embargo.isoformat(), "--send-embargoed-at", clock.now().isoformat()]
        if channels:
            args += ["--channels", channels]
        result = system.cli(*args)
        assert result.code == 0, result.err
        return embargo
    return make


def log(system, sid: str = SID) -> list[dict]:
    return json.loads(system.cli("log", sid, "--format", "json").out)


def by_channel(system, sid: str = SID) -> dict[str, dict]:
    return {r["channel"] + ":" + r["target"]: r for r in log(system, sid)}


def fixed_now() -> FixedClock:
    return FixedClock(utcnow())
