"""A wire endpoint or a social account that cannot be reached raises an alert of its own.

Refused connections and timeouts are transport faults; a target that meets nothing but transport faults for
``delivery.alert_after_seconds`` raises ``transport:<channel>:<target>``, whatever the channel's other targets do,
and the alert is over when that target sends again. Against real sockets on loopback: a port that refuses, a
server that never answers.
"""

import json
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import pytest

from distributor import alerts, workflow
from distributor.clock import FixedClock, utcnow
from tests.channels.conftest import SID, bluesky, by_channel, mastodon, wire
from tests.loopback import Refusing, Silent, closed_port

ALERT_AFTER = 5
RETRY = 30  # the first retry, as the test configuration has it

# What every target accepts: a wire item, a Mastodon status, a Bluesky session and record.
ACCEPTED = {"id": "item-1", "url": "https://social.example/@press/1", "accessJwt": "access", "refreshJwt": "refresh",
            "did": "did:plc:press", "uri": "at://did:plc:press/app.bsky.feed.post/k", "cid": "cid-1"}

TARGETS = {
    "wire": (lambda url: wire(url + "/ingest", name="partner"), "wire", "partner"),
    "mastodon": (lambda url: mastodon(url, name="masto"), "social", "masto"),
    "bluesky": (lambda url: bluesky(url, name="sky"), "social", "sky"),
}


@pytest.fixture
def refusing():
    endpoint = Refusing()
    yield endpoint
    endpoint.close()


def open_alerts(system) -> list[dict]:
    with system.engine.connect() as conn:
        return alerts.open_alerts(conn)


def status(system) -> tuple[int, dict]:
    result = system.cli("status", "--format", "json")
    return result.code, json.loads(result.out)


def lifted(make_system, scheduled, extra: str, channels: str):
    clock = FixedClock(utcnow())
    system = make_system(clock=clock, extra=extra, delivery_extra=f"alert_after_seconds = {ALERT_AFTER}")
    embargo = scheduled(system, channels=channels)
    clock.set(embargo)
    system.dispatcher.advance()
    return system, clock


@pytest.mark.parametrize("name", list(TARGETS))
def test_a_target_refusing_connections_raises_its_own_alert_until_it_sends_again(make_system, scheduled, refusing,
                                                                                 name):
    config, channels, target = TARGETS[name]
    system, clock = lifted(make_system, scheduled, config(refusing.url()), channels)
    system.dispatcher.deliver(name)
    row = by_channel(system)[f"{name}:{target}"]
    assert row["status"] == "retrying" and "connection refused" in row["error"], row
    assert open_alerts(system) == []  # the first fault starts the count

    clock.advance(RETRY)
    system.dispatcher.deliver(name)
    [alert] = open_alerts(system)
    assert (alert["key"], alert["channel"]) == (f"transport:{name}:{target}", name)
    assert alert["text"] == (f"{name} ({target}): nothing but transport faults for {RETRY} s: {row['error']}. What "
                             f"to do: nothing answers there: check that the server is running and the channel's "
                             f"host, port or URL")
    code, found = status(system)
    assert code == 1 and [a["key"] for a in found["alerts"]] == [f"transport:{name}:{target}"]

    refusing.answer(ACCEPTED)
    clock.advance(2 * RETRY)
    system.dispatcher.deliver(name)
    assert by_channel(system)[f"{name}:{target}"]["status"] == "sent"
    assert refusing.requests  # it was this target that answered
    assert open_alerts(system) == []
    with system.engine.connect() as conn:
        [over] = [e for e in workflow.audit_trail(conn) if e["action"] == "alert_resolved"]
    assert json.loads(over["detail"])["why"] == f"{name} ({target}) is sending again"


def test_one_endpoint_refusing_while_another_sends_still_raises_the_alert_of_the_one_refusing(
        make_system, scheduled, refusing, httpserver):
    httpserver.expect_request("/ingest", method="POST").respond_with_json({"id": "item-1"}, status=201)
    clock = FixedClock(utcnow())
    system = make_system(clock=clock, delivery_extra=f"alert_after_seconds = {ALERT_AFTER}",
                         extra=wire(refusing.url("/ingest"), name="partner") +
                         wire(httpserver.url_for("/ingest"), name="agency"))
    first = scheduled(system, channels="wire")
    second = scheduled(system, channels="wire", embargo=first + timedelta(seconds=RETRY),
                       statement_name="second.txt", reference="Index: TRO 01/002/2026")
    clock.set(first)
    system.dispatcher.advance()
    system.dispatcher.deliver("wire")
    assert open_alerts(system) == []
    clock.set(second)  # the second lifts as the first's retry to partner falls due: all three in one run
    system.dispatcher.advance()
    system.dispatcher.deliver("wire")
    statuses = {k: r["status"] for k, r in by_channel(system).items()}
    statuses.update({k + " (second)": r["status"] for k, r in by_channel(system, "tro-01-002-2026").items()})
    assert statuses == {"wire:partner": "retrying", "wire:agency": "sent", "wire:partner (second)": "retrying",
                        "wire:agency (second)": "sent"}
    assert [a["key"] for a in open_alerts(system)] == ["transport:wire:partner"]


def test_an_endpoint_that_never_answers_times_out_toward_the_alert(make_system, scheduled):
    silent = Silent()
    try:
        system, clock = lifted(make_system, scheduled, wire(silent.url("/ingest"), name="partner",
                                                            extra="timeout_seconds = 0.3"), "wire")
        system.dispatcher.deliver("wire")
        assert by_channel(system)["wire:partner"]["error"] == "timeout: no reply in time"
        clock.advance(RETRY)
        system.dispatcher.deliver("wire")
    finally:
        silent.close()
    [alert] = open_alerts(system)
    assert alert["key"] == "transport:wire:partner"
    assert alert["text"].endswith(": timeout: no reply in time. What to do: the server does not answer in time: "
                                  "check that it is up and not overloaded, and the channel's timeout_seconds")


@pytest.mark.subprocess
@pytest.mark.slow
def test_a_worker_against_a_closed_port_raises_the_alert_that_status_shows(write_config, run, statement_file,
                                                                           tmp_path):
    """The issue's case end to end: ``distributor run`` against a closed port, ``alert_after_seconds = 5``: the
    alert is open in ``distributor status --format json`` within 45 s, and status exits 1."""
    path = write_config(extra=wire(f"http://127.0.0.1:{closed_port()}/ingest", name="partner"),
                        delivery_extra=f"alert_after_seconds = {ALERT_AFTER}")
    # retries a second apart (then 2, 4, ...): the run of faults reaches 5 s within seconds, not minutes
    path.write_text(path.read_text().replace("retry_first_seconds = 30", "retry_first_seconds = 1"))
    assert run(path, "init").code == 0
    assert run(path, "import", statement_file()).code == 0
    assert run(path, "approve", SID, "--by", "Maya").code == 0
    embargo = datetime.now(UTC) + timedelta(seconds=2)
    assert run(path, "schedule", SID, "--embargo", embargo.isoformat(), "--channels", "wire").code == 0
    log = (tmp_path / "worker.log").open("w")
    worker = subprocess.Popen([sys.executable, "-m", "distributor", "--config", str(path), "run"], stderr=log)
    deadline = time.monotonic() + 45
    try:
        while True:
            result = run(path, "status", "--format", "json")
            found = json.loads(result.out)
            if found["alerts"] or time.monotonic() > deadline or worker.poll() is not None:
                break
            time.sleep(0.2)
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=10)
        finally:
            if worker.poll() is None:
                worker.kill()
            log.close()
    shown = (tmp_path / "worker.log").read_text()
    assert len(found["alerts"]) == 1, shown
    [alert] = found["alerts"]
    assert (alert["key"], alert["channel"]) == ("transport:wire:partner", "wire"), shown
    assert "connection refused" in alert["text"]
    assert result.code == 1 and found["reasons"] == ["1 open alert(s)"]
