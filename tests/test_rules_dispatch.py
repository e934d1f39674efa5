"""The pipeline rule by rule: lift, plan, claim, render once, send, record; with channels written for the test and
a real database."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from distributor import alerts, deliveries, dispatch, workflow
from distributor.channels import Context
from distributor.channels import load_config as load
from distributor.channels.base import Channel, Job
from distributor.clock import Clock, FixedClock, utcnow
from distributor.dispatch import Dispatcher
from distributor.outcomes import Claimed, Outcome, Result, Variant
from distributor.statements.model import Statement
from distributor.store import connect, init_schema
from distributor.store.schema import deliveries as delivery_rows
from distributor.store.schema import plans, statements, workers

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
SID = "tro-01-001-2030"
DOC = Statement(title="Flood maps must be published", body=("The authority must publish.",),
                reference="TRO 01/001/2030")


class Probe(Channel):
    """A channel that answers as told and writes down what it was asked."""

    name = "probe"
    public = False

    def __init__(self, context, name="probe", public=False, targets=("a@x", "b@x", "c@x"), answer=Result.SENT,
                 events=None):
        super().__init__(None, context)
        self.name, self.public = name, public
        self._targets = list(targets)
        self.answer = answer  # a Result, a dict target -> Result, or an exception to raise from deliver
        self.events = events if events is not None else []
        self.rendered: list[tuple[str, int, Variant]] = []
        self.sent: list[tuple[str, list[str], object]] = []
        self.render_error: Exception | None = None
        self.fail_open = self.fail_close = False

    @classmethod
    def configure(cls, channels, config_so_far):
        return None

    def due_at(self, embargo, send_embargoed_at):  # per instance: the class attribute is per channel kind
        return embargo if self.public or send_embargoed_at is None else send_embargoed_at

    def targets(self, conn, job):
        # like a real channel: read with the connection given, for the job given
        conn.execute(select(statements.c.id).where(statements.c.id == job.statement_id)).all()
        return iter(self._targets)

    def render(self, job, variant):
        if self.render_error:
            raise self.render_error
        self.rendered.append((job.statement_id, job.revision, variant))
        return f"{job.statement_id} r{job.revision} {variant.value}"

    def deliver(self, job, rendered, rows, report):
        self.sent.append((rendered, [r.target for r in rows], job))
        if isinstance(self.answer, BaseException):
            raise self.answer
        for row in rows:
            result = self.answer.get(row.target, Result.SENT) if isinstance(self.answer, dict) else self.answer
            report(Outcome(row.id, result, None if result is Result.SENT else f"{result.value} for {row.target}",
                           remote_id=f"id-{row.target}" if result is Result.SENT else None,
                           variant=Variant.RELEASED if result is Result.SENT else None))

    def open(self):
        if self.fail_open:
            raise RuntimeError(f"{self.name} cannot open")
        self.events.append(("open", self.name))

    def close(self):
        self.events.append(("close", self.name))
        if self.fail_close:
            raise RuntimeError(f"{self.name} cannot close")


class Env:
    def __init__(self, config_path, clock):
        self.config = load(config_path)
        self.engine = connect(self.config.database_url)
        init_schema(self.engine)
        self.clock = clock
        self.context = Context(self.config, self.engine, clock, None)

    def dispatcher(self, *channels: Probe, worker: str | None = "w1") -> Dispatcher:
        return Dispatcher(self.context, {c.name: c for c in channels}, worker)

    def probe(self, **kwargs) -> Probe:
        return Probe(self.context, **kwargs)

    def statement(self, channels=("probe",), embargo=NOW + HOUR, send_at=NOW, doc=DOC, approve=True,
                  at=NOW - timedelta(minutes=5)):
        with self.engine.begin() as conn:
            workflow.import_statement(conn, doc, "f.txt", "ana", at)
            if approve:
                workflow.approve(conn, doc.id, "Maya", at)
                timed = {name: _Timed(name) for name in channels}
                workflow.schedule(conn, doc.id, "ana", at, embargo=embargo, send_embargoed_at=send_at,
                                  channels=timed)
        return doc.id

    def rows(self, sid=SID) -> dict[str, dict]:
        with self.engine.connect() as conn:
            return {r["channel"] + ":" + r["target"]: dict(r) for r in conn.execute(
                select(delivery_rows).where(delivery_rows.c.statement_id == sid)).mappings()}

    def status(self, sid=SID) -> dict[str, str]:
        return {k: r["status"] for k, r in self.rows(sid).items()}

    def audit(self, sid=SID) -> list[tuple]:
        with self.engine.connect() as conn:
            return [(e["action"], e["actor"], json.loads(e["detail"]) if e["detail"] else None)
                    for e in workflow.audit_trail(conn, sid)]


class _Timed:
    def __init__(self, name):
        self.name = name

    def due_at(self, embargo, send_embargoed_at):
        return send_embargoed_at or embargo


@pytest.fixture
def env(write_config):
    e = Env(write_config(batch_size=2), FixedClock(NOW))
    yield e
    e.engine.dispose()


def test_batched_splits_into_chunks_of_size():
    assert list(dispatch.batched(iter("abcde"), 2)) == [["a", "b"], ["c", "d"], ["e"]]
    assert list(dispatch.batched([], 3)) == []
    assert dispatch.PLAN_CHUNK == 2000


def test_worker_and_actor_names(env):
    d = env.dispatcher(worker="box:1:abc")
    assert (d.worker, d.actor, d.heartbeat.id) == ("box:1:abc", "scheduler@box:1:abc", "box:1:abc")
    assert d.policy is env.config.delivery and d.clock is env.clock and d.engine is env.engine
    assert not d.stopping.is_set()
    assert env.dispatcher(worker=None).worker != env.dispatcher(worker=None).worker


# -- open and close ----------------------------------------------------------------------------------------------------
def test_open_opens_every_channel_and_close_closes_them_in_reverse(env):
    events: list = []
    a, b = env.probe(name="a", events=events), env.probe(name="b", events=events)
    d = env.dispatcher(a, b)
    d.open()
    with env.engine.connect() as conn:
        assert conn.execute(select(workers.c.id, workers.c.stopped_at)).all() == [("w1", None)]
    d.close()
    assert events == [("open", "a"), ("open", "b"), ("close", "b"), ("close", "a")]
    with env.engine.connect() as conn:
        assert conn.execute(select(workers.c.stopped_at)).scalar_one() is not None
    d.close()
    assert len(events) == 4  # closes only what it opened


def test_a_failed_open_closes_what_was_opened_and_re_raises(env):
    events: list = []
    a, b, c = (env.probe(name=n, events=events) for n in "abc")
    b.fail_open = True
    d = env.dispatcher(a, b, c)
    with pytest.raises(RuntimeError, match="b cannot open"):
        d.open()
    assert events == [("open", "a"), ("close", "a")]
    with env.engine.connect() as conn:
        assert conn.execute(select(workers.c.stopped_at)).scalar_one() is not None


def test_a_failed_close_is_logged_and_the_rest_still_close(env, caplog):
    events: list = []
    a, b = env.probe(name="a", events=events), env.probe(name="b", events=events)
    b.fail_close = True
    d = env.dispatcher(a, b)
    d.open()
    with caplog.at_level(logging.ERROR, logger="distributor.run"):
        d.close()
    assert events[-2:] == [("close", "b"), ("close", "a")]
    assert any(r.getMessage() == "b: closing failed" for r in caplog.records)


# -- jobs ----------------------------------------------------------------------------------------------------------------
def test_job_carries_content_times_and_import_instants(env):
    env.statement(send_at=NOW + timedelta(minutes=1))
    with env.engine.begin() as conn:
        workflow.import_statement(conn, replace(DOC, body=("Changed.",)), "f.txt", "ana", NOW)
    d = env.dispatcher(env.probe())
    with env.engine.connect() as conn:
        job = d.job(conn, SID, 2)
        first = d.job(conn, SID, 1)
    assert job == Job(SID, 2, replace(DOC, body=("Changed.",)), NOW + HOUR, NOW + timedelta(minutes=1),
                      first_created=NOW - timedelta(minutes=5), version_created=NOW)
    assert first.statement == DOC and first.version_created == NOW - timedelta(minutes=5)


# -- advance: plan and lift ------------------------------------------------------------------------------------------
def test_advance_plans_due_private_channels_and_waits_for_the_embargo(env):
    env.statement(channels=("probe", "wire"))
    probe, wire = env.probe(), env.probe(name="wire", public=True, targets=["newswire"])
    d = env.dispatcher(probe, wire)
    assert d.advance() == 0
    assert env.status() == {"probe:a@x": "pending", "probe:b@x": "pending", "probe:c@x": "pending"}
    assert env.rows()["probe:a@x"]["due_at"] == NOW
    assert env.audit()[-1] == ("planned", "scheduler@w1", {"channel": "probe", "targets": 3})
    assert d.advance() == 0 and len(env.audit()) == 4  # nothing new
    with env.engine.connect() as conn:
        assert workflow.get(conn, SID)["status"] == "scheduled"

    env.clock.set(NOW + HOUR)
    assert d.advance() == 1
    rows = env.rows()
    assert rows["wire:newswire"]["status"] == "pending" and rows["wire:newswire"]["due_at"] == NOW + HOUR
    with env.engine.connect() as conn:
        row = workflow.get(conn, SID)
    assert (row["status"], row["released_at"]) == ("released", NOW + HOUR)
    assert [a[0] for a in env.audit()[-2:]] == ["planned", "released"]
    assert env.audit()[-1][1] == "scheduler@w1"
    assert d.advance() == 0


def test_a_private_channel_due_later_is_not_planned_yet(env):
    env.statement(send_at=NOW + timedelta(minutes=10))
    d = env.dispatcher(env.probe())
    assert d.advance() == 0 and env.status() == {}
    env.clock.set(NOW + timedelta(minutes=10))
    d.advance()
    assert len(env.status()) == 3


def test_lift_without_anything_to_plan(env):
    env.statement()
    d = env.dispatcher(env.probe())
    d.advance()
    env.clock.set(NOW + HOUR - timedelta(microseconds=1))
    assert d.advance() == 0
    env.clock.set(NOW + HOUR)
    assert d.advance() == 1


def test_public_channels_are_planned_with_the_lift_in_one_transaction(env):
    env.statement(channels=("wire",))
    wire = env.probe(name="wire", public=True, targets=["n1", "n2"])
    d = env.dispatcher(wire)
    env.clock.set(NOW + 2 * HOUR)
    assert d.advance() == 1
    assert env.status() == {"wire:n1": "pending", "wire:n2": "pending"}
    assert env.rows()["wire:n1"]["updated_at"] == NOW + 2 * HOUR
    assert env.audit()[-2] == ("planned", "scheduler@w1", {"channel": "wire", "targets": 2})


def test_unapproved_or_changed_statements_are_left_alone(env):
    env.statement()
    d = env.dispatcher(env.probe())
    with env.engine.begin() as conn:
        conn.execute(update(statements).values(status="withdrawn"))
    env.clock.set(NOW + HOUR)
    assert d.advance() == 0 and env.status() == {}


def test_a_statement_changed_after_the_read_is_skipped(env):
    env.statement()
    d = env.dispatcher(env.probe())
    env.clock.set(NOW + HOUR)
    with env.engine.connect() as conn:
        [row] = workflow.scheduled(conn)
        names = d.unplanned(conn, row, env.clock.now())
    assert names == ["probe"]
    # another worker released it meanwhile: this worker neither plans nor lifts it again
    other = env.dispatcher(env.probe(), worker="w2")
    assert other.advance() == 1
    assert d.advance() == 0
    assert [a[0] for a in env.audit()].count("released") == 1
    assert [a[0] for a in env.audit()].count("planned") == 1


def test_plan_in_chunks_writes_every_target_once(env, monkeypatch):
    monkeypatch.setattr(dispatch, "PLAN_CHUNK", 2)
    env.statement()
    targets = [f"r{i}@x" for i in range(5)]
    d = env.dispatcher(env.probe(targets=targets))
    d.advance()
    assert sorted(env.status()) == sorted(f"probe:{t}" for t in targets)
    with env.engine.connect() as conn:
        assert conn.execute(select(plans.c.targets)).scalar_one() == 5
    assert env.audit()[-1] == ("planned", "scheduler@w1", {"channel": "probe", "targets": 5})
    with env.engine.begin() as conn:
        d.planned(conn, d.job(conn, SID, 1), "probe", None, NOW)  # another worker finished it: no record
    assert [a[0] for a in env.audit()].count("planned") == 1


def test_unconfigured_channel_waits_and_is_warned_about_once(env, caplog):
    env.statement(channels=("probe", "missing"))
    d = env.dispatcher(env.probe())
    with caplog.at_level(logging.WARNING, logger="distributor.run"):
        d.advance()
        env.clock.set(NOW + HOUR)
        d.advance()
    warnings = [r.getMessage() for r in caplog.records if "not configured" in r.getMessage()]
    assert warnings == [f"{SID}: channel 'missing' is not configured here; its deliveries wait"]
    assert set(env.status()) == {"probe:a@x", "probe:b@x", "probe:c@x"}


def test_statement_without_channels_is_still_lifted(env):
    env.statement(channels=())
    d = env.dispatcher(env.probe())
    env.clock.set(NOW + HOUR)
    assert d.advance() == 1


# -- deliver -----------------------------------------------------------------------------------------------------------
def test_deliver_sends_every_row_in_batches_rendering_once(env):
    env.statement()
    probe = env.probe(targets=[f"r{i}@x" for i in range(5)])
    d = env.dispatcher(probe)
    d.advance()
    totals = d.deliver("probe")
    assert totals == {Result.SENT: 5}
    assert [len(rows) for _, rows, _ in probe.sent] == [2, 2, 1]  # batch_size = 2
    assert probe.rendered == [(SID, 1, Variant.EMBARGOED)]
    assert all(rendered == f"{SID} r1 embargoed" for rendered, _, _ in probe.sent)
    rows = env.rows()
    assert {r["status"] for r in rows.values()} == {"sent"}
    assert rows["probe:r0@x"]["remote_id"] == "id-r0@x"
    assert env.audit()[-1] == ("delivered", "scheduler@w1", {"channel": "probe", "sent": 5})
    with env.engine.connect() as conn:
        assert conn.execute(select(plans.c.completed_at)).scalar_one() == NOW
        assert conn.execute(select(workers.c.id)).scalar_one() == "w1"  # rows were claimed in its name


def test_copy_sent_after_the_lift_is_rendered_as_released(env):
    env.statement()
    probe = env.probe()
    d = env.dispatcher(probe)
    d.advance()
    env.clock.set(NOW + HOUR)
    d.deliver("probe")
    assert probe.rendered == [(SID, 1, Variant.RELEASED)]


def test_an_embargo_moved_during_a_pass_is_rendered_afresh_for_the_rest(env):
    env.statement()
    later = NOW + 2 * HOUR

    class Moving(Probe):
        def render(self, job, variant):
            super().render(job, variant)
            return f"embargoed until {job.embargo.isoformat()}"

        def deliver(self, job, rendered, rows, report):
            super().deliver(job, rendered, rows, report)
            with env.engine.begin() as conn:  # the press officer moves it while the first batch goes out
                conn.execute(update(statements).values(embargo=later))

    probe = Moving(env.context, targets=[f"r{i}@x" for i in range(4)])
    d = env.dispatcher(probe)
    d.advance()
    assert d.deliver("probe") == {Result.SENT: 4}
    assert [rendered for rendered, _, _ in probe.sent] == [
        f"embargoed until {(NOW + HOUR).isoformat()}", f"embargoed until {later.isoformat()}"]
    assert len(probe.rendered) == 2


def test_each_revision_is_rendered_for_itself(env):
    env.statement()
    env.statement(doc=replace(DOC, reference="TRO 01/002/2030"))
    probe = env.probe(targets=["a@x"])
    d = env.dispatcher(probe)
    d.advance()
    assert d.deliver("probe") == {Result.SENT: 2}
    assert sorted(probe.rendered) == [(SID, 1, Variant.EMBARGOED), ("tro-01-002-2030", 1, Variant.EMBARGOED)]
    assert {job.statement_id for _, _, job in probe.sent} == {SID, "tro-01-002-2030"}


def test_a_broken_render_is_retried_not_stranded(env, caplog):
    env.statement()
    probe = env.probe(targets=["a@x"])
    probe.render_error = ValueError("template broken")
    d = env.dispatcher(probe)
    d.advance()
    with caplog.at_level(logging.ERROR, logger="distributor.run"):
        assert d.deliver("probe") == {Result.RETRY: 1}
    row = env.rows()["probe:a@x"]
    assert (row["status"], row["last_error"], row["attempts"]) == ("retrying", "internal error: template broken", 1)
    assert any(r.getMessage() == f"probe: {SID} r1: delivery failed" for r in caplog.records)


def test_failures_are_recorded_and_the_pass_goes_on(env, caplog):
    env.statement()
    probe = env.probe(targets=[f"r{i}@x" for i in range(4)], answer={"r0@x": Result.FAILED, "r2@x": Result.RETRY,
                                                                     "r3@x": Result.RETRY})
    d = env.dispatcher(probe)
    d.advance()
    with caplog.at_level(logging.WARNING, logger="distributor.run"):
        totals = d.deliver("probe")
    assert totals == {Result.FAILED: 1, Result.SENT: 1, Result.RETRY: 2}
    assert env.status() == {"probe:r0@x": "failed", "probe:r1@x": "sent", "probe:r2@x": "retrying",
                            "probe:r3@x": "retrying"}
    messages = [r.getMessage() for r in caplog.records]
    assert "probe: r0@x failed: failed for r0@x" in messages
    assert "probe: 1 deliveries to retry (retry): retry for r2@x" in messages
    assert "probe: 1 deliveries to retry (retry): retry for r3@x" in messages
    assert env.audit()[-1][0] == "planned"  # retries are still active: the plan is not complete


@pytest.mark.parametrize("answer", [Result.TRANSPORT, Result.REFUSED])
def test_a_pass_stops_when_nothing_can_succeed_now(env, answer):
    env.statement()
    probe = env.probe(targets=[f"r{i}@x" for i in range(5)], answer=answer)
    d = env.dispatcher(probe)
    d.advance()
    if answer is Result.TRANSPORT:
        totals = d.deliver("probe")
        assert totals == {Result.TRANSPORT: 2}
    else:
        totals = d.deliver("probe")
        assert totals == {Result.REFUSED: 2}
    assert len(probe.sent) == 1
    assert sorted(env.status().values()).count("sending") == 0


def test_a_pass_goes_on_after_a_mixed_batch(env):
    env.statement()
    probe = env.probe(targets=[f"r{i}@x" for i in range(4)], answer={"r0@x": Result.TRANSPORT})
    d = env.dispatcher(probe)
    d.advance()
    assert d.deliver("probe") == {Result.TRANSPORT: 1, Result.SENT: 3}
    assert len(probe.sent) == 2


def test_rows_never_reported_go_back_at_once(env):
    env.statement()
    probe = env.probe(targets=["a@x", "b@x"], answer=RuntimeError("bug"))
    d = env.dispatcher(probe)
    d.advance()
    totals = d.deliver("probe")
    assert totals == {Result.RETRY: 2}  # the channel layer gives every row an outcome
    assert {r["claimed_by"] for r in env.rows().values()} == {None}


def test_a_stopping_dispatcher_claims_nothing(env):
    env.statement()
    probe = env.probe()
    d = env.dispatcher(probe)
    d.advance()
    d.stopping.set()
    assert d.deliver("probe") == {}
    assert probe.sent == [] and set(env.status().values()) == {"pending"}


def test_deliver_counts_only_this_pass(env):
    env.statement()
    probe = env.probe(targets=["a@x"])
    d = env.dispatcher(probe)
    d.advance()
    assert d.deliver("probe") == {Result.SENT: 1}
    assert d.deliver("probe") == {}


def test_log_failures_groups_retries_by_reason(caplog):
    from distributor.deliveries import Batch
    from distributor.outcomes import Claimed
    batch = Batch("t", [Claimed(i, SID, 1, "probe", f"r{i}@x", 0, NOW) for i in range(5)])
    outcomes = [Outcome(0, Result.FAILED, "550 no"), Outcome(1, Result.RETRY, "451 later"),
                Outcome(2, Result.RETRY, "451 later"), Outcome(3, Result.TRANSPORT, None),
                Outcome(4, Result.REFUSED, "embargo"), Outcome(4, Result.CANCELLED, "gone")]
    with caplog.at_level(logging.WARNING, logger="distributor.run"):
        Dispatcher.log_failures("probe", batch, outcomes)
    assert [r.getMessage() for r in caplog.records] == [
        "probe: r0@x failed: 550 no",
        "probe: 2 deliveries to retry (retry): 451 later",
        "probe: 1 deliveries to retry (transport): ",
    ]
    assert {r.levelno for r in caplog.records} == {logging.WARNING}


# -- what the scheduler asks ---------------------------------------------------------------------------------------------
def test_upcoming_lists_future_send_lift_and_retry_instants(env):
    env.statement(send_at=NOW + timedelta(minutes=10))
    env.statement(doc=replace(DOC, reference="TRO 01/002/2030"), send_at=None, embargo=NOW + 2 * HOUR)
    d = env.dispatcher(env.probe())
    assert d.upcoming() == [NOW + timedelta(minutes=10), NOW + HOUR, NOW + 2 * HOUR]
    env.clock.set(NOW + timedelta(minutes=10))
    d.advance()
    with env.engine.begin() as conn:
        conn.execute(update(delivery_rows).where(delivery_rows.c.target == "a@x").values(
            status="retrying", next_attempt_at=NOW + timedelta(minutes=30)))
    assert d.upcoming() == [NOW + timedelta(minutes=30), NOW + HOUR, NOW + 2 * HOUR]
    env.clock.set(NOW + HOUR)
    assert d.upcoming() == [NOW + 2 * HOUR]


def test_due_channels_are_only_those_configured_here(env):
    env.statement(channels=("probe", "other"))
    probe = env.probe()
    d = env.dispatcher(probe)
    d.advance()
    assert d.due_channels() == ["probe"]
    with env.engine.begin() as conn:
        deliveries.plan(conn, SID, 1, "other", ["x"], NOW, NOW)
    assert d.due_channels() == ["probe"]
    d.deliver("probe")
    assert d.due_channels() == []


def test_cutoff_is_the_database_clock_less_the_worker_timeout(env):
    d = env.dispatcher(env.probe())
    before = datetime.now(UTC)
    with env.engine.connect() as conn:
        cutoff = d.cutoff(conn)
    after = datetime.now(UTC)
    timeout = timedelta(seconds=env.config.delivery.worker_timeout_seconds)
    assert before - timeout - timedelta(seconds=1) <= cutoff <= after - timeout + timedelta(seconds=1)


def test_idle_when_nothing_is_scheduled_or_active(env):
    d = env.dispatcher(env.probe(targets=["a@x"]))
    assert d.idle()
    env.statement()
    assert not d.idle()
    d.advance()
    d.deliver("probe")
    assert not d.idle()  # still scheduled
    env.clock.set(NOW + HOUR)
    d.advance()
    assert d.idle()
    with env.engine.begin() as conn:
        deliveries.plan(conn, SID, 1, "late", ["x"], NOW, NOW)
    assert not d.idle()


# -- rules found by mutation testing -----------------------------------------------------------------------------------
class Stop(BaseException):
    """A stop that no channel catches (as a signal would be)."""


def test_a_pass_stops_after_a_batch_of_only_transport_faults_and_refusals(env):
    env.statement()
    targets = [f"r{i}@x" for i in range(5)]
    probe = env.probe(targets=targets, answer={"r2@x": Result.TRANSPORT, "r3@x": Result.REFUSED})
    d = env.dispatcher(probe)
    d.advance()
    assert d.deliver("probe") == {Result.SENT: 2, Result.TRANSPORT: 1, Result.REFUSED: 1}
    assert [rows for _, rows, _ in probe.sent] == [["r0@x", "r1@x"], ["r2@x", "r3@x"]]
    assert env.status()["probe:r4@x"] == "pending"  # left for the next pass


def test_deliver_claims_only_its_channel_in_this_workers_name(env):
    env.statement(channels=("probe", "other"))
    probe, other = env.probe(), env.probe(name="other", targets=["o@x"])
    holders: list = []

    def deliver(job, rendered, rows, report, original=probe.deliver):
        with env.engine.connect() as conn:
            holders.extend(conn.execute(select(delivery_rows.c.worker_id, delivery_rows.c.channel).where(
                delivery_rows.c.status == "sending")).all())
        original(job, rendered, rows, report)

    probe.deliver = deliver
    d = env.dispatcher(probe, other)
    d.advance()
    assert d.deliver("probe") == {Result.SENT: 3}
    assert env.status()["other:o@x"] == "pending" and other.sent == []
    assert {tuple(h) for h in holders} == {("w1", "probe")}


def test_rows_of_a_pass_stopped_hard_go_back_at_once(env):
    env.statement()
    probe = env.probe(targets=["a@x", "b@x"], answer=Stop())
    d = env.dispatcher(probe)
    d.advance()
    env.clock.set(NOW + timedelta(seconds=3))
    with pytest.raises(Stop):
        d.deliver("probe")
    rows = env.rows()
    assert {(r["status"], r["claimed_by"], r["updated_at"]) for r in rows.values()} == \
        {("pending", None, NOW + timedelta(seconds=3))}


def test_the_delivered_record_names_the_revision(env):
    env.statement()
    d = env.dispatcher(env.probe(targets=["a@x"]))
    d.advance()
    d.deliver("probe")
    with env.engine.connect() as conn:
        last = workflow.audit_trail(conn, SID)[-1]
    assert (last["action"], last["revision"], last["statement_id"]) == ("delivered", 1, SID)


def test_a_statement_with_nothing_due_does_not_hold_up_the_next(env):
    env.statement(send_at=NOW + timedelta(minutes=10))
    env.statement(doc=replace(DOC, reference="TRO 01/002/2030"))
    d = env.dispatcher(env.probe(targets=["a@x"]))
    d.advance()
    assert env.status("tro-01-002-2030") == {"probe:a@x": "pending"}


def test_two_lifts_in_one_advance_are_counted(env):
    env.statement()
    env.statement(doc=replace(DOC, reference="TRO 01/002/2030"))
    env.clock.set(NOW + HOUR)
    assert env.dispatcher(env.probe()).advance() == 2


def test_the_planned_record_names_the_revision(env):
    env.statement()
    env.dispatcher(env.probe()).advance()
    with env.engine.connect() as conn:
        last = workflow.audit_trail(conn, SID)[-1]
    assert (last["action"], last["revision"]) == ("planned", 1)


def test_a_plan_is_made_once_and_later_targets_are_not_added(env):
    env.statement()
    probe = env.probe(targets=["a@x"])
    d = env.dispatcher(probe)
    d.advance()
    probe._targets.append("late@x")
    d.advance()
    assert env.status() == {"probe:a@x": "pending"}


def test_an_unconfigured_channel_listed_first_does_not_hold_up_the_others(env):
    env.statement(channels=("missing", "probe"))
    env.dispatcher(env.probe(targets=["a@x"])).advance()
    assert env.status() == {"probe:a@x": "pending"}


class Racing(Dispatcher):
    """Withdraws the first statement it reads, as another command would between the read and the lock."""

    def unplanned(self, conn, row, now):
        names = super().unplanned(conn, row, now)
        if row["id"] == SID:
            with self.engine.begin() as other:
                other.execute(update(statements).where(statements.c.id == SID).values(status="withdrawn"))
        return names


def test_a_statement_withdrawn_between_the_read_and_the_lock_is_skipped(env):
    env.statement()
    env.statement(doc=replace(DOC, reference="TRO 01/002/2030"))
    env.clock.set(NOW + HOUR)
    d = Racing(env.context, {"probe": env.probe(targets=["a@x"])}, "w1")
    assert d.advance() == 1
    assert env.status() == {}
    assert env.status("tro-01-002-2030") == {"probe:a@x": "pending"}
    with env.engine.connect() as conn:
        assert workflow.get(conn, SID)["status"] == "withdrawn"


# -- channels that prepare ahead: planned, claimed and rendered a lead before the lift, sent at it ----------------------
LEAD = timedelta(seconds=2)


def ahead_env(env):
    ready = env.probe(name="ready", public=True, targets=("endpoint",))
    ready.ahead = True
    late = env.probe(name="late", public=True, targets=("feed",))  # reads what the lift writes: not ahead
    env.statement(channels=("ready", "late"), send_at=None, embargo=NOW + HOUR)
    d = env.dispatcher(ready, late)
    d.lead = LEAD
    return d, ready, late


def test_a_channel_that_prepares_ahead_is_planned_a_lead_before_the_lift_and_nothing_is_released(env):
    d, ready, late = ahead_env(env)
    assert Dispatcher(env.context, {}, "w2").lead == timedelta(0)  # a clock that stands still: nothing waits
    assert dispatch.LEAD_SECONDS == 1.0
    env.clock.set(NOW + HOUR - LEAD - timedelta(microseconds=1))
    assert d.advance() == 0 and env.status() == {}
    env.clock.set(NOW + HOUR - LEAD)
    assert d.advance() == 0
    assert env.status() == {"ready:endpoint": "pending"} and d.planned_now == {"ready"}
    assert env.rows()["ready:endpoint"]["due_at"] == NOW + HOUR
    with env.engine.connect() as conn:
        assert workflow.get(conn, SID)["status"] == "scheduled"
    assert d.due_channels() == ["ready"]
    env.clock.set(NOW + HOUR)
    assert d.advance() == 1
    assert env.status() == {"ready:endpoint": "pending", "late:feed": "pending"}


def test_upcoming_has_each_lift_less_the_lead_only_when_a_channel_prepares_ahead(env):
    d, ready, late = ahead_env(env)
    assert d.upcoming() == [NOW + HOUR - LEAD, NOW + HOUR]
    ready.ahead = False
    assert d.upcoming() == [NOW + HOUR]


def test_rows_claimed_ahead_are_still_refused_by_the_guard_before_the_embargo(env):
    d, ready, late = ahead_env(env)
    env.clock.set(NOW + HOUR - LEAD)
    d.advance()
    assert d.deliver("ready") == {Result.REFUSED: 1}  # this clock never reaches the embargo: nothing waits for it
    assert ready.sent == [] and ready.rendered == [(SID, 1, Variant.RELEASED)]
    row = env.rows()["ready:endpoint"]
    assert (row["status"], row["next_attempt_at"], row["attempts"]) == ("pending", NOW + HOUR, 0)
    assert d.deliver("late") == {}


def test_rows_may_go_at_their_due_time_and_a_public_channels_not_before_the_embargo(env):
    public, private = env.probe(name="pub", public=True), env.probe(name="priv")
    job = Job(SID, 1, DOC, NOW + HOUR, NOW)
    rows = [Claimed(1, SID, 1, "pub", "a", 0, NOW - HOUR), Claimed(2, SID, 1, "pub", "b", 0, NOW)]
    assert Dispatcher.not_before(public, job, rows) == NOW + HOUR
    assert Dispatcher.not_before(public, replace(job, embargo=NOW - 2 * HOUR), rows) == NOW
    assert Dispatcher.not_before(private, job, rows) == NOW
    assert Dispatcher.not_before(public, replace(job, embargo=None), rows[:1]) == NOW - HOUR


def test_hold_waits_for_the_instant_by_the_guards_clock_and_not_once_the_worker_stops(env):
    real = Context(env.config, env.engine, Clock(), None)
    channel = Probe(real, public=True)
    d = Dispatcher(real, {"probe": channel}, "w1")
    assert d.lead == timedelta(seconds=dispatch.LEAD_SECONDS)
    instant = utcnow() + timedelta(seconds=0.2)
    assert d.hold(channel, instant) is True
    assert utcnow() >= instant
    assert d.hold(channel, utcnow() - HOUR) is True
    d.stopping.set()
    assert d.hold(channel, utcnow() + HOUR) is False  # returns at once
    assert env.dispatcher(channel).hold(channel, NOW + HOUR) is True  # a clock that stands still: nothing waits


# -- alerts at the lift, and lists planned later -----------------------------------------------------------------------
def test_copies_unsent_at_the_lift_raise_one_alert_that_ends_once_they_are_sent(env):
    env.statement(channels=("email",))
    probe = env.probe(name="email", answer={"b@x": Result.RETRY})
    d = env.dispatcher(probe)
    d.advance()
    d.deliver("email")
    env.clock.set(NOW + HOUR)
    assert d.advance() == 1
    d.advance()  # one alert, however many sweeps see it
    with env.engine.connect() as conn:
        [alert] = alerts.open_alerts(conn)
    assert (alert["key"], alert["statement_id"], alert["channel"], alert["raised_at"]) == \
        (f"unsent-at-lift:{SID}", SID, "email", NOW + HOUR)
    assert alert["text"] == (f"{SID}: 1 embargoed copies were still unsent when the embargo lifted at "
                             f"2030-01-01 13:00 UTC; they go out as the released version. What to do: look at the "
                             f"statement's failures and overdue copies (its page, or its report); retry the failed "
                             f"ones once their cause is fixed")
    env.clock.set(NOW + HOUR + timedelta(minutes=5))
    d.advance()
    with env.engine.connect() as conn:
        assert len(alerts.open_alerts(conn)) == 1  # still unsent: still open
    probe.answer = Result.SENT
    d.deliver("email")
    d.advance()
    with env.engine.connect() as conn:
        assert alerts.open_alerts(conn) == []
        [resolved] = [e for e in workflow.audit_trail(conn) if e["action"] == "alert_resolved"]
    assert json.loads(resolved["detail"])["why"] == "every copy has been sent or has failed"


def test_every_copy_sent_by_the_lift_raises_no_alert(env):
    env.statement(channels=("email",))
    d = env.dispatcher(env.probe(name="email"))
    d.advance()
    d.deliver("email")
    env.clock.set(NOW + HOUR)
    assert d.advance() == 1
    with env.engine.connect() as conn:
        assert alerts.open_alerts(conn) == []


def test_lists_left_by_advance_are_planned_later_once(env):
    env.statement()
    d = env.dispatcher(env.probe())
    assert not d.lists_to_plan()
    d.advance(defer_lists=True)
    assert env.rows() == {}
    assert d.lists_to_plan()
    assert d.plan_lists() == 1
    assert not d.lists_to_plan()
    assert sorted(env.rows()) == ["probe:a@x", "probe:b@x", "probe:c@x"]
    assert d.plan_lists() == 0


# -- the worker's clock against the database's ------------------------------------------------------------------------
@pytest.mark.parametrize("skew, agrees, words", [
    (2.0, False, "2.000 s ahead of"), (-1.5, False, "1.500 s behind"), (1.0, True, None), (-1.0, True, None)])
def test_a_worker_whose_clock_is_off_by_more_than_a_second_lifts_nothing(env, caplog, skew, agrees, words):
    env.statement()
    database = FixedClock(NOW + HOUR - timedelta(seconds=skew))
    env.context = replace(env.context, database_clock=database)
    d = env.dispatcher(env.probe())
    env.clock.set(NOW + HOUR)
    with caplog.at_level(logging.WARNING, logger="distributor.run"):
        assert d.clock_agrees() is agrees
        lifted = d.advance()
    assert d.clock_agreed is agrees
    with env.engine.connect() as conn:
        status = workflow.get(conn, SID)["status"]
    if agrees:  # lifted once both clocks are past the embargo: the database's, 1 s behind, is not yet
        assert (lifted, status, caplog.messages) == ((0, "scheduled", []) if skew > 0 else (1, "released", []))
        return
    assert (lifted, status) == (0, "scheduled")
    assert caplog.messages[0] == (f"this worker's clock is {words} the database's (more than 1 s): no embargo is "
                                  f"lifted until they agree; fix the clock (NTP)")
    assert [r.levelname for r in caplog.records] == ["ERROR", "ERROR"]  # once per sweep
    caplog.clear()
    database.set(NOW + HOUR)
    with caplog.at_level(logging.WARNING, logger="distributor.run"):
        assert d.advance() == 1
        d.clock_agrees()
    assert caplog.messages == ["this worker's clock agrees with the database's again (0.000 s apart)"]


# -- a channel that meets only transport faults --------------------------------------------------------------------------
def test_only_transport_faults_for_the_alert_time_raise_one_alert_that_sending_again_ends(env):
    d = env.dispatcher(env.probe())
    after = env.config.delivery.alert_after_seconds
    fault = {Result.TRANSPORT: 3}
    d.transport_health("probe", fault, "relay down")
    env.clock.advance(after - 1)
    d.transport_health("probe", fault, "relay down")
    d.transport_health("probe", {Result.TRANSPORT: 1, Result.RETRY: 1}, "relay down")  # not only faults: no change
    d.transport_health("probe", {}, None)
    with env.engine.connect() as conn:
        assert alerts.open_alerts(conn) == []
    env.clock.advance(1)
    d.transport_health("probe", fault, "relay still down")
    d.transport_health("probe", fault, "relay still down")
    with env.engine.connect() as conn:
        [alert] = alerts.open_alerts(conn)
    assert (alert["key"], alert["channel"], alert["raised_at"]) == ("transport:probe", "probe", NOW + timedelta(
        seconds=after))
    assert alert["text"] == (f"probe: nothing but transport faults for {after:.0f} s: relay still down. What to do: "
                             f"check that the server is up and reachable from this machine, and the channel's "
                             f"settings")
    d.transport_health("probe", {Result.SENT: 1, Result.TRANSPORT: 2}, None)
    with env.engine.connect() as conn:
        assert alerts.open_alerts(conn) == []
        [resolved] = [e for e in workflow.audit_trail(conn) if e["action"] == "alert_resolved"]
    assert json.loads(resolved["detail"])["why"] == "probe is sending again"
    d.transport_health("probe", fault, "down again")  # the count starts afresh
    env.clock.advance(after - 1)
    d.transport_health("probe", fault, "down again")
    with env.engine.connect() as conn:
        assert alerts.open_alerts(conn) == []


class OnItsOwn(Probe):
    faults_per_target = True  # each target reached on its own, as a wire endpoint or a social account


@pytest.mark.parametrize("per_target", [True, False])
def test_a_target_reached_on_its_own_has_its_own_transport_alert_whatever_the_others_do(env, per_target):
    probe = (OnItsOwn if per_target else Probe)(env.context, targets=("a@x", "b@x"), answer=Result.TRANSPORT)
    env.statement()
    d = env.dispatcher(probe)
    d.advance()
    after = env.config.delivery.alert_after_seconds
    assert d.deliver("probe") == {Result.TRANSPORT: 2}  # each target's run of faults starts
    env.clock.advance(after)
    probe.answer = {"a@x": Result.TRANSPORT}  # b@x sends again, a@x still cannot be reached
    assert d.deliver("probe") == {Result.TRANSPORT: 1, Result.SENT: 1}
    with env.engine.connect() as conn:
        found = [(a["key"], a["channel"], a["text"]) for a in alerts.open_alerts(conn)]
    if not per_target:  # one relay: the channel sent, so it is not down
        assert found == []
        return
    assert found == [("transport:probe:a@x", "probe",
                      f"probe (a@x): nothing but transport faults for {after:.0f} s: transport for a@x. What to "
                      f"do: {alerts.advice('transport for a@x')}")]
    env.clock.advance(60)  # a@x's next attempt
    probe.answer = Result.SENT
    assert d.deliver("probe") == {Result.SENT: 1}
    with env.engine.connect() as conn:
        assert alerts.open_alerts(conn) == []
        [resolved] = [e for e in workflow.audit_trail(conn) if e["action"] == "alert_resolved"]
    assert json.loads(resolved["detail"]) == {"key": "transport:probe:a@x", "text": found[0][2],
                                              "why": "probe (a@x) is sending again"}


class Twice(OnItsOwn):
    """Reports a transport fault, then a success for the same row: the first outcome is the one recorded."""

    def deliver(self, job, rendered, rows, report):
        for row in rows:
            report(Outcome(row.id, Result.TRANSPORT, "down"))
            report(Outcome(row.id, Result.SENT, remote_id="x", variant=Variant.RELEASED))


def test_a_target_is_judged_by_the_first_outcome_of_each_row_as_recorded(env):
    env.statement()
    d = env.dispatcher(Twice(env.context, targets=("a@x",)))
    d.advance()
    d.deliver("probe")
    env.clock.advance(env.config.delivery.alert_after_seconds)
    d.deliver("probe")
    assert env.status() == {"probe:a@x": "retrying"}
    with env.engine.connect() as conn:
        assert [a["key"] for a in alerts.open_alerts(conn)] == ["transport:probe:a@x"]


def test_the_batch_being_sent_has_its_leases_renewed_and_no_longer_once_done(env):
    env.statement()
    probe = env.probe(targets=[f"r{i}@x" for i in range(3)])
    d = env.dispatcher(probe)
    renewed: list[int] = []
    deliver = probe.deliver
    probe.deliver = lambda *args: (renewed.append(d.heartbeat.beat()), deliver(*args))
    d.advance()
    assert d.deliver("probe") == {Result.SENT: 3}
    assert renewed == [2, 1]  # batch_size = 2: the rows of the batch in hand, each time
    assert d.heartbeat.beat() == 0


class TwoLanes(Probe):
    lanes = 2  # a channel of several lanes: the next batch is claimed while one is sent


def wait_for_sending(env, n: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while sum(s == "sending" for s in env.status().values()) < n:
        assert time.monotonic() < deadline, env.status()
        time.sleep(0.01)


def test_with_several_lanes_the_next_batch_is_claimed_and_in_hand_while_one_is_sent(env):
    env.statement()
    probe = TwoLanes(env.context, targets=[f"r{i}@x" for i in range(3)])
    d = env.dispatcher(probe)
    renewed: list[int] = []
    deliver = probe.deliver

    def beat_then_deliver(*args):
        wait_for_sending(env, 3 if not renewed else 1)  # the first time: this batch of 2 and the next of 1
        in_hand = 2 if not renewed else 1  # and the next batch in hand too: it is, once its jobs are read
        deadline = time.monotonic() + 10
        while len(d.heartbeat._in_hand) < in_hand:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        renewed.append(d.heartbeat.beat())
        deliver(*args)
    probe.deliver = beat_then_deliver
    d.advance()
    assert d.deliver("probe") == {Result.SENT: 3}
    assert renewed == [3, 1]  # both batches in hand, then the last one alone
    assert d.heartbeat.beat() == 0


def test_the_batch_claimed_ahead_goes_back_at_once_when_nothing_can_succeed(env):
    env.statement()
    probe = TwoLanes(env.context, targets=[f"r{i}@x" for i in range(3)], answer=Result.TRANSPORT)
    d = env.dispatcher(probe)
    d.advance()
    assert d.deliver("probe") == {Result.TRANSPORT: 2}
    rows = env.rows()
    assert sorted(r["status"] for r in rows.values()) == ["pending", "retrying", "retrying"]
    assert [r["attempts"] for r in rows.values() if r["status"] == "pending"] == [0]
    assert d.heartbeat.beat() == 0



@pytest.mark.parametrize("fault, words", [
    ("login refused: 535 5.7.8 authentication failed", "channels.email.smtp.password_env"),
    ("session refused: 550 5.7.1 sender not allowed", "office.from"),
    ("TLS with relay:465: server certificate not trusted: self-signed", "ca_file"),
    ("TLS certificate rejected: not trusted", "ca_file"),
    ("TLS with relay:465 failed: wrong version number", "starttls or ssl"),
    ("connection failed: host name not resolved", "DNS"),
    ("connection failed: connection refused", "host, port or URL"),
    ("cannot connect to relay:25: [Errno 111] Connection refused", "host, port or URL"),
    ("cannot connect to relay:25: timed out", "channels.email.smtp.host"),
    ("timeout: no reply in time", "timeout_seconds"),
    (None, "reachable from this machine"),
])
def test_an_alert_says_what_to_do_about_its_fault(fault, words):
    assert words in alerts.advice(fault)
