"""The dispatcher's safety nets: a channel that crashes, forgets a row or fails to open never strands a delivery."""

import json
import threading
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import update

from distributor.channels.email import EmailChannel
from distributor.clock import utcnow
from distributor.outcomes import Outcome, Result
from distributor.scheduler import Runner
from distributor.store.schema import deliveries
from tests.conftest import soon, wait_for

SID = "tro-01-001-2026"
PEOPLE = ["ana@paper.example.com", "bob@wire.example.net", "cy@radio.example.org"]


def schedule(system, tmp_path, statement_file):
    csv = tmp_path / "r.csv"
    csv.write_text("email,name,embargo_ok\n" + "".join(f"{p},{p[:3]},yes\n" for p in PEOPLE))
    assert system.cli("recipients", "import", csv, "--list", "embargo").code == 0
    assert system.cli("import", statement_file()).code == 0
    assert system.cli("approve", SID, "--by", "Maya").code == 0
    assert system.cli("schedule", SID, "--embargo", soon(3600)).code == 0


def prepare(system, tmp_path, statement_file):
    schedule(system, tmp_path, statement_file)
    system.dispatcher.advance()


def replace_email(system, cls):
    channel = cls(system.config.channels["email"], system.context)
    system.channels["email"] = channel
    system.dispatcher.channels["email"] = channel
    return channel


def statuses(system) -> dict[str, tuple[str, str | None]]:
    rows = json.loads(system.cli("log", SID, "--format", "json").out)
    return {r["target"]: (r["status"], r["error"]) for r in rows}


class SendsOneThenCrashes(EmailChannel):
    def deliver(self, job, rendered, rows, report):
        report(Outcome(rows[0].id, Result.SENT, variant=rendered.variant))
        raise RuntimeError("template bug")


class ForgetsTheLastRow(EmailChannel):
    def deliver(self, job, rendered, rows, report):
        super().deliver(job, rendered, rows[:-1], report)


class CannotRender(EmailChannel):
    def render(self, job, variant):
        raise ValueError("broken template")


def test_a_channel_that_raises_strands_no_row(make_system, tmp_path, statement_file):
    system = make_system()
    prepare(system, tmp_path, statement_file)
    replace_email(system, SendsOneThenCrashes)
    system.dispatcher.deliver("email")
    seen = statuses(system)
    assert seen[PEOPLE[0]] == ("sent", None)
    assert seen[PEOPLE[1]] == seen[PEOPLE[2]] == ("retrying", "internal error: RuntimeError: template bug")


def test_a_row_with_no_outcome_is_retried(make_system, tmp_path, statement_file):
    system = make_system()
    prepare(system, tmp_path, statement_file)
    replace_email(system, ForgetsTheLastRow)
    system.dispatcher.deliver("email")
    seen = statuses(system)
    assert [seen[p][0] for p in PEOPLE] == ["sent", "sent", "retrying"]
    assert seen[PEOPLE[2]][1] == "email: no outcome reported"


def test_a_render_that_raises_is_retried_for_every_row(make_system, tmp_path, statement_file):
    system = make_system()
    prepare(system, tmp_path, statement_file)
    replace_email(system, CannotRender)
    system.dispatcher.deliver("email")
    assert set(statuses(system).values()) == {("retrying", "internal error: broken template")}


def test_a_failing_lift_does_not_hold_up_due_deliveries(make_system, tmp_path, statement_file, monkeypatch):
    """Runner.advance: an exception while advancing statements still wakes the channels that have work."""
    system = make_system()
    prepare(system, tmp_path, statement_file)
    with system.engine.begin() as conn:  # due a moment after the runner starts, so only a wake delivers them
        conn.execute(update(deliveries).values(next_attempt_at=utcnow() + timedelta(seconds=1.5)))

    def broken():
        raise RuntimeError("database hiccup")

    monkeypatch.setattr(system.dispatcher, "advance", broken)
    runner = Runner(system.dispatcher)
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    try:
        assert wait_for(lambda: Counter(s for s, _ in statuses(system).values()) == {"sent": 3}, timeout=15)
    finally:
        runner.stop.set()
        thread.join(timeout=15)
    assert not thread.is_alive()


class Recording(EmailChannel):
    events: list[str] = []

    def open(self):
        if self.settings.list == "broken":
            raise OSError("cannot open")
        Recording.events.append(f"open {self.settings.list}")

    def close(self):
        Recording.events.append(f"close {self.settings.list}")


def test_open_failure_closes_the_channels_opened_before(make_system):
    from dataclasses import replace

    from distributor.dispatch import Dispatcher

    system = make_system()
    settings = system.config.channels["email"]
    first = Recording(settings, system.context)
    broken = Recording(replace(settings, list="broken"), system.context)
    Recording.events = []
    dispatcher = Dispatcher(system.context, {"first": first, "broken": broken})
    with pytest.raises(OSError):
        dispatcher.open()
    assert Recording.events == ["open embargo", "close embargo"]


def test_long_lists_can_be_left_for_a_planning_job_so_a_lift_never_waits_for_them(make_system, tmp_path,
                                                                                 statement_file):
    system = make_system()
    schedule(system, tmp_path, statement_file)
    system.dispatcher.advance(defer_lists=True)
    system.dispatcher.advance(defer_lists=True)  # asked twice before planning: planned once
    assert system.dispatcher.lists_to_plan() and statuses(system) == {}
    assert system.dispatcher.plan_lists() == 1
    assert not system.dispatcher.lists_to_plan() and system.dispatcher.plan_lists() == 0
    assert {t: s for t, (s, _) in statuses(system).items()} == dict.fromkeys(PEOPLE, "pending")
