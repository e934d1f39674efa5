"""The scheduler loop, with real time: date jobs, the sweep, the lift and --exit-when-idle."""

import gc
import json
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from distributor.scheduler import Runner
from tests.conftest import soon, wait_for

SID = "tro-01-001-2026"


def setup_statement(system, tmp_path, statement_file):
    csv = tmp_path / "r.csv"
    csv.write_text("email,name,embargo_ok\nana@paper.example.com,Ana,yes\nbob@wire.example.net,Bob,yes\n")
    system.cli("recipients", "import", csv, "--list", "embargo")
    system.cli("import", statement_file())
    system.cli("approve", SID, "--by", "Maya")


def test_run_exit_when_idle_delivers_and_lifts(make_system, smtp_sink, tmp_path, statement_file):
    system = make_system(transport="smtp", smtp_port=smtp_sink.port)
    setup_statement(system, tmp_path, statement_file)
    embargo = datetime.now(UTC) + timedelta(seconds=2)
    assert system.cli("schedule", SID, "--embargo", embargo.isoformat()).code == 0
    started = time.monotonic()
    result = system.cli("-q", "run", "--exit-when-idle")
    assert result.code == 0
    assert datetime.now(UTC) >= embargo  # it waited for the lift before exiting
    assert time.monotonic() - started < 10
    assert len(smtp_sink.messages) == 2
    shown = json.loads(system.cli("show", SID, "--format", "json").out)
    assert shown["status"] == "released"
    audit = [e["action"] for e in json.loads(system.cli("audit", SID, "--format", "json").out)]
    assert audit == ["imported", "approved", "scheduled", "planned", "delivered", "released"]


def test_statement_scheduled_while_running_is_picked_up_within_a_second(make_system, smtp_sink, tmp_path,
                                                                           statement_file):
    system = make_system(transport="smtp", smtp_port=smtp_sink.port)
    setup_statement(system, tmp_path, statement_file)
    runner = Runner(system.dispatcher)
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    try:
        assert wait_for(lambda: runner.scheduler.running, timeout=5)
        assert system.cli("schedule", SID, "--embargo", soon(3600)).code == 0
        assert wait_for(lambda: len(smtp_sink.messages) == 2, timeout=5)
    finally:
        runner.stop.set()
        thread.join(timeout=10)
    assert not thread.is_alive()
    from sqlalchemy import select

    from distributor.store.schema import audit
    with system.engine.connect() as conn:
        at = dict(conn.execute(select(audit.c.action, audit.c.at).where(audit.c.statement_id == SID)).all())
    assert (at["planned"] - at["scheduled"]).total_seconds() <= 1.1  # the sweep runs every second


def test_send_time_in_the_future_is_honoured(make_system, smtp_sink, tmp_path, statement_file):
    system = make_system(transport="smtp", smtp_port=smtp_sink.port)
    setup_statement(system, tmp_path, statement_file)
    send_at = datetime.now(UTC) + timedelta(seconds=3)
    system.cli("schedule", SID, "--embargo", soon(3600), "--send-embargoed-at", send_at.isoformat())
    runner = Runner(system.dispatcher)
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    try:
        assert wait_for(lambda: len(smtp_sink.messages) == 2, timeout=8)
    finally:
        runner.stop.set()
        thread.join(timeout=10)
    assert all(message.at >= send_at for message in smtp_sink.messages)  # none before the send time
    rows = json.loads(system.cli("log", SID, "--format", "json").out)
    assert all(datetime.fromisoformat(r["sent_at"].replace("Z", "+00:00")) >= send_at.replace(microsecond=0)
               for r in rows)


@pytest.mark.subprocess
def test_run_stops_cleanly_on_sigterm(write_config, run):
    import signal
    import subprocess
    import sys

    path = write_config()
    assert run(path, "init").code == 0
    process = subprocess.Popen([sys.executable, "-m", "distributor", "--config", str(path), "run"],
                               stderr=subprocess.PIPE, text=True)
    try:
        lines = iter(process.stderr.readline, "")
        assert any("scheduler running" in line for line in lines)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()


def test_a_lifted_channel_is_woken_first_and_once(make_system, statement_file):
    from distributor.clock import FixedClock
    from tests.channels.conftest import file_wire
    embargo = datetime(2027, 1, 6, 0, 1, tzinfo=UTC)
    clock = FixedClock(embargo - timedelta(hours=1))
    system = make_system(clock=clock, extra=file_wire())
    system.cli("import", statement_file())
    system.cli("approve", SID, "--by", "Maya")
    assert system.cli("schedule", SID, "--embargo", embargo.isoformat(), "--channels", "wire").code == 0
    runner = Runner(system.dispatcher)
    woken: list[str] = []
    runner.wake = woken.append  # type: ignore[method-assign]
    clock.set(embargo)
    runner.advance()
    assert woken == ["deliver:wire"]
    runner.advance()  # nothing lifted now: the due channel is woken by the sweep's own look
    assert woken == ["deliver:wire", "deliver:wire"]


def test_while_it_runs_what_start_up_made_is_left_out_of_full_collections(make_system):
    system = make_system()
    runner = Runner(system.dispatcher)
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    try:  # a full collection walks only what was made since: no 30 ms pause at a lift
        assert wait_for(lambda: gc.get_freeze_count() > 0, timeout=5)
    finally:
        runner.stop.set()
        thread.join(timeout=10)
    assert not thread.is_alive()
    assert gc.get_freeze_count() == 0  # given back when it stops
