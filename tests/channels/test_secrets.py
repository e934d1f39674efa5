"""Secrets are read when a channel opens, not when it is built: scheduling and rendering need none."""

import json

import pytest

from distributor.errors import ConfigError
from tests.channels.conftest import SID, bluesky, by_channel, fixed_now, mastodon, wire

SECRETS = {
    "wire": ("TEST_WIRE_SECRET", "channels.wire (newswire).secret_env"),
    "mastodon": ("TEST_MASTODON_TOKEN", "channels.social (masto).token_env"),
    "bluesky": ("TEST_BLUESKY_PASSWORD", "channels.social (sky).password_env"),
}


def online(url: str) -> str:
    return wire(f"{url}/ingest", extra='secret_env = "TEST_WIRE_SECRET"') + mastodon(url) + bluesky(url)


@pytest.fixture
def no_secrets(monkeypatch):
    for env, _ in SECRETS.values():
        monkeypatch.delenv(env, raising=False)


def test_building_scheduling_and_rendering_need_no_secret(make_system, scheduled, httpserver, no_secrets):
    system = make_system(clock=fixed_now(), extra=online(httpserver.url_for("").rstrip("/")))
    scheduled(system, channels="wire,social")
    with system.engine.connect() as conn:
        job = system.dispatcher.job(conn, SID, 1)
    item = system.channels["wire"].render(job, "released")
    assert item["slugline"] == SID
    for name in ("mastodon", "bluesky"):
        post = system.channels[name].render(job, "released")
        assert post("Title", "Summary.").endswith(f"/press/{SID}")
    assert httpserver.log == []  # nothing was opened either


@pytest.mark.parametrize("name", sorted(SECRETS))
def test_open_without_the_secret_is_a_one_line_config_error(name, make_system, httpserver, no_secrets):
    system = make_system(clock=fixed_now(), extra=online(httpserver.url_for("").rstrip("/")))
    channel = system.channels[name]
    env, key = SECRETS[name]
    with pytest.raises(ConfigError) as raised:
        channel.open()
    assert str(raised.value) == f"{key}: environment variable {env} is not set"
    assert not any(t.client.opened for t in channel.transports.values())
    channel.close()  # nothing was opened; nothing to close


@pytest.mark.parametrize("name", sorted(SECRETS))
def test_delivery_without_the_secret_reports_it_and_waits(name, make_system, scheduled, httpserver, no_secrets,
                                                          monkeypatch):
    """Never opened, the channel opens on first use; a missing secret is the row's one-line error, not a crash,
    and the row goes out once the secret is there."""
    httpserver.expect_request("/ingest").respond_with_json({"id": "w1"}, status=201)
    httpserver.expect_request("/api/v2/instance").respond_with_data("not found", status=404)
    httpserver.expect_request("/api/v1/statuses").respond_with_json({"id": "m1"})
    httpserver.expect_request("/xrpc/com.atproto.server.createSession").respond_with_json(
        {"accessJwt": "a", "refreshJwt": "r", "did": "did:plc:x"})
    httpserver.expect_request("/xrpc/com.atproto.repo.createRecord").respond_with_json({"uri": "at://x", "cid": "c"})
    system = make_system(clock=fixed_now(), extra=online(httpserver.url_for("").rstrip("/")))
    system.clock.set(scheduled(system, channels=name))
    system.dispatcher.advance()
    system.dispatcher.deliver(name)
    [row] = by_channel(system).values()
    env, key = SECRETS[name]
    assert row["status"] == "retrying" and row["error"] == f"{key}: environment variable {env} is not set"
    assert not [r for r, _ in httpserver.log if r.method == "POST"]

    monkeypatch.setenv(env, "now-set")
    system.clock.advance(31)
    system.dispatcher.deliver(name)
    [row] = by_channel(system).values()
    assert row["status"] == "sent"
    assert "now-set" not in json.dumps(by_channel(system))


def test_close_closes_only_what_was_opened(make_system, httpserver, monkeypatch):
    for env, _ in SECRETS.values():
        monkeypatch.setenv(env, "set")
    system = make_system(clock=fixed_now(), extra=online(httpserver.url_for("").rstrip("/")))
    for channel in system.channels.values():
        channel.close()  # never opened
    transports = [t for name in SECRETS for t in system.channels[name].transports.values()]
    assert not any(t.client.opened for t in transports)
    for name in SECRETS:
        system.channels[name].open()
    assert all(t.client.opened for t in transports)
    for name in SECRETS:
        system.channels[name].close()
    assert not any(t.client.opened for t in transports)


def test_a_failed_open_closes_what_it_had_opened(make_system, no_secrets):
    extra = wire("http://127.0.0.1:9/a", name="open") + wire("http://127.0.0.1:9/b", name="signed",
                                                               extra='secret_env = "TEST_WIRE_SECRET"')
    system = make_system(clock=fixed_now(), extra=extra)
    channel = system.channels["wire"]
    with pytest.raises(ConfigError, match="channels.wire \\(signed\\).secret_env"):
        channel.open()
    assert not channel.transports["open"].client.opened
