"""A worker killed in the middle of a send: every recipient delivered, at most one duplicate per connection, each
with the first copy's Message-ID; and live workers keep their rows however long a send takes."""

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import pytest
from aiosmtpd.controller import Controller

from distributor.dispatch import Dispatcher
from tests.conftest import ROOT, free_port, soon, wait_for

SID = "tro-01-001-2026"
MESSAGE_ID = re.compile(rb"^Message-ID: (\S+)\r?$", re.MULTILINE | re.IGNORECASE)


@dataclass
class CountingSink:
    """Accepts everything, remembering each recipient's Message-IDs; optionally slow, like a busy relay."""

    delay: float = 0.0
    ids: dict[str, list[str]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server, session, envelope):
        if self.delay:
            await asyncio.sleep(self.delay)
        found = MESSAGE_ID.search(envelope.original_content)
        with self.lock:
            for rcpt in envelope.rcpt_tos:
                self.ids.setdefault(rcpt.lower(), []).append(found.group(1).decode() if found else "")
        return "250 OK"

    def total(self) -> int:
        with self.lock:
            return sum(len(v) for v in self.ids.values())


def start(handler) -> Controller:
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    return controller


def prepare(system, tmp_path, statement_file, n: int) -> None:
    csv = tmp_path / "r.csv"
    csv.write_text("email,name,embargo_ok\n" + "".join(f"j{i}@paper{i % 7}.example.com,J {i},yes\n" for i in range(n)))
    assert system.cli("recipients", "import", csv, "--list", "embargo").code == 0
    assert system.cli("import", statement_file()).code == 0
    assert system.cli("approve", SID, "--by", "Maya").code == 0
    assert system.cli("schedule", SID, "--embargo", soon(3600)).code == 0


def worker(config) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "distributor", "--config", str(config), "-q", "run"], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})


def sent(system) -> int:
    return Counter(r["status"] for r in json.loads(system.cli("log", SID, "--format", "json").out))["sent"]


@pytest.mark.subprocess
def test_kill_9_mid_send_then_restart_loses_no_one(make_system, tmp_path, statement_file):
    n, connections = 3000, 4
    sink = CountingSink()
    controller = start(sink)
    try:
        system = make_system(transport="smtp", smtp_port=controller.port, connections=connections,
                             lease_seconds=300)  # the defaults: leases of 300 s, worker timeout 15 s
        prepare(system, tmp_path, statement_file, n)
        first = worker(system.config_path)
        try:
            assert wait_for(lambda: sink.total() >= n // 3, timeout=60)
            first.send_signal(signal.SIGKILL)
            first.wait(timeout=10)
        finally:
            if first.poll() is None:
                first.kill()
        at_kill = sink.total()
        assert at_kill < n, "the send finished before the kill; nothing was tested"
        restarted_at = time.monotonic()
        second = worker(system.config_path)
        try:
            assert wait_for(lambda: sink.total() > at_kill, timeout=40)
            resumed_after = time.monotonic() - restarted_at
            assert wait_for(lambda: len(sink.ids) == n and sent(system) == n, timeout=90)
            second.send_signal(signal.SIGTERM)
            assert second.wait(timeout=30) == 0, second.stderr.read()
        finally:
            if second.poll() is None:
                second.kill()
    finally:
        controller.stop()

    assert resumed_after < 30
    assert set(sink.ids) == {f"j{i}@paper{i % 7}.example.com" for i in range(n)}  # every recipient
    duplicates = {rcpt: ids for rcpt, ids in sink.ids.items() if len(ids) > 1}
    assert len(duplicates) <= connections
    assert all(len(set(ids)) == 1 for ids in duplicates.values())  # a resend is the same message
    rows = json.loads(system.cli("log", SID, "--format", "json").out)
    assert Counter(r["status"] for r in rows) == {"sent": n}
    assert all(sink.ids[r["target"]][0] == r["remote_id"] for r in rows)
    # the abandoned attempts are counted and listed: every copy the relay got twice shows both attempts
    history = json.loads(system.cli("log", SID, "--attempts", "--format", "json").out)
    abandoned = {a["target"] for a in history if a["outcome"] == "abandoned"}
    assert set(duplicates) <= abandoned
    attempts_of = {r["target"]: r["attempts"] for r in rows}
    assert all(attempts_of[target] == 2 for target in abandoned)
    assert all(attempts_of[target] == 1 for target in attempts_of if target not in abandoned)
    assert {a["worker"] for a in history if a["outcome"] == "abandoned"} != {None}


@pytest.mark.subprocess
def test_sigterm_stops_a_send_within_seconds_and_gives_back_the_rest(make_system, tmp_path, statement_file):
    n = 1500
    sink = CountingSink(delay=0.002)
    controller = start(sink)
    try:
        system = make_system(transport="smtp", smtp_port=controller.port, connections=4, lease_seconds=300)
        prepare(system, tmp_path, statement_file, n)
        first = worker(system.config_path)
        try:
            assert wait_for(lambda: sink.total() >= 300, timeout=60)
            first.send_signal(signal.SIGTERM)
            signalled = time.monotonic()
            assert first.wait(timeout=30) == 0
            stopped_after = time.monotonic() - signalled
        finally:
            if first.poll() is None:
                first.kill()
        rows = json.loads(system.cli("log", SID, "--format", "json").out)
        counts = Counter(r["status"] for r in rows)
        assert counts["sent"] == sink.total() < n  # everything accepted is recorded; nothing else is
        assert counts["pending"] == n - counts["sent"] and "sending" not in counts
        assert all(r["attempts"] == 0 for r in rows if r["status"] == "pending")  # given back, not attempted
        assert stopped_after < 5
        second = worker(system.config_path)  # the rest go out at once, with no lease to wait for
        try:
            assert wait_for(lambda: len(sink.ids) == n, timeout=60)
            second.send_signal(signal.SIGTERM)
            assert second.wait(timeout=30) == 0
        finally:
            if second.poll() is None:
                second.kill()
    finally:
        controller.stop()
    assert all(len(ids) == 1 for ids in sink.ids.values())


@pytest.mark.slow
def test_live_workers_keep_their_rows_with_short_leases_and_a_slow_relay(make_system, tmp_path, statement_file):
    """Leases of 3 s, a relay taking 50 ms a message: the heartbeat renews the claim, so nobody sends twice."""
    n = 240
    sink = CountingSink(delay=0.05)
    controller = start(sink)
    try:
        options = dict(transport="smtp", smtp_port=controller.port, batch_size=n, connections=2,
                       lease_seconds=3)
        system = make_system(**options)
        prepare(system, tmp_path, statement_file, n)
        other = make_system(**options)
        system.dispatcher.advance()
        stop = threading.Event()
        errors = []

        def keep_delivering(dispatcher: Dispatcher):
            try:
                while not stop.is_set():
                    dispatcher.deliver("email")
                    stop.wait(0.2)
            except Exception as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=keep_delivering, args=(s.dispatcher,)) for s in (system, other)]
        for t in threads:
            t.start()
        try:
            assert wait_for(lambda: sink.total() >= n, timeout=60)
        finally:
            stop.set()
            for t in threads:
                t.join(timeout=30)
    finally:
        controller.stop()
    assert errors == []
    assert sink.total() == n and all(len(ids) == 1 for ids in sink.ids.values())
