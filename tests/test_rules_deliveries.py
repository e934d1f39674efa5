"""The delivery state machine, rule by rule, on a real database (SQLite, and PostgreSQL when configured)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from functools import partial

import pytest
from sqlalchemy import insert, select, update

from distributor import deliveries as d
from distributor import recipients as members
from distributor.clock import FixedClock
from distributor.config import DeliveryPolicy
from distributor.outcomes import Claimed, Kind, Outcome, Result, Variant
from distributor.store.schema import attempts, deliveries, plans, recipients, statements, suppressions, workers
from distributor.workers import Heartbeat

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
POLICY = DeliveryPolicy(retry_first_seconds=30, retry_max_seconds=900, max_attempts=3)


def add_statement(conn, sid="s1", status="scheduled", revision=1, approved=1, embargo=NOW + timedelta(hours=1)):
    conn.execute(insert(statements).values(id=sid, status=status, revision=revision, approved_revision=approved,
                                           created_at=NOW, updated_at=NOW, embargo=embargo))


def add_worker(conn, wid, seen_ago: float = 0, stopped: bool = False):
    conn.execute(insert(workers).values(id=wid, host="h", pid=1, started_at=NOW,
                                        last_seen=NOW - timedelta(seconds=seen_ago),
                                        stopped_at=NOW if stopped else None))


def rows(conn, **where) -> list[dict]:
    query = select(deliveries).order_by(deliveries.c.id)
    for key, value in where.items():
        query = query.where(deliveries.c[key] == value)
    return [dict(r) for r in conn.execute(query).mappings()]


def one(conn, target) -> dict:
    [r] = rows(conn, target=target)
    return r


def set_row(conn, target, **values):
    conn.execute(update(deliveries).where(deliveries.c.target == target).values(**values))


CUTOFF = NOW - timedelta(seconds=15)


def claim(conn, worker="w1", channel="email", now=NOW, limit=100, lease=60.0, cutoff=CUTOFF):
    return d.claim(conn, channel, now, worker, limit, lease, cutoff)


@pytest.fixture
def planned(engine):
    """s1 r1: three email rows due at NOW, one wire row; a live worker w1 and w2."""
    with engine.begin() as conn:
        add_statement(conn)
        add_worker(conn, "w1")
        add_worker(conn, "w2")
        d.plan(conn, "s1", 1, "email", ["a@x", "b@x", "c@x"], NOW, NOW - timedelta(minutes=1))
        d.plan(conn, "s1", 1, "wire", ["newswire"], NOW + timedelta(hours=1), NOW)
    return engine


def test_plan_returns_the_number_of_rows_planned(engine):
    with engine.begin() as conn:
        add_statement(conn)
        assert d.plan(conn, "s1", 1, "email", ["a@x", "b@x", "c@x"], NOW, NOW) == 3
        assert d.plan(conn, "s1", 1, "wire", ["newswire"], NOW, NOW) == 1


# -- planning -------------------------------------------------------------------------------------------------------
def test_planned_rows_start_pending_and_due(planned):
    with planned.connect() as conn:
        r = one(conn, "a@x")
        plan = dict(conn.execute(select(plans).where(plans.c.channel == "email")).mappings().one())
    assert (r["statement_id"], r["revision"], r["channel"], r["status"], r["attempts"]) == \
        ("s1", 1, "email", "pending", 0)
    assert r["due_at"] == r["next_attempt_at"] == NOW
    assert r["updated_at"] == NOW - timedelta(minutes=1)
    assert (r["last_error"], r["claimed_by"], r["worker_id"], r["lease_until"], r["sent_at"]) == (None,) * 5
    assert (plan["targets"], plan["planned_at"], plan["completed_at"]) == (3, NOW - timedelta(minutes=1), None)


def test_plan_with_no_targets_is_planned_with_zero(engine):
    with engine.begin() as conn:
        add_statement(conn)
        assert d.plan(conn, "s1", 1, "email", [], NOW, NOW) == 0
        assert d.planned_channels(conn, "s1", 1) == {"email"}
        assert rows(conn) == []
        assert d.plan(conn, "s1", 1, "email", ["late@x"], NOW, NOW) is None


def test_finish_plan_counts_only_its_own_rows_and_is_done_once(planned):
    with planned.begin() as conn:
        add_statement(conn, "s2")
        d.plan_chunk(conn, "s2", 1, "email", ["a@x", "b@x"], NOW, NOW)
        d.plan_chunk(conn, "s2", 1, "email", ["b@x", "c@x"], NOW, NOW)  # an interrupted plan resumed
        d.plan_chunk(conn, "s2", 2, "email", ["z@x"], NOW, NOW)
        d.plan_chunk(conn, "s2", 1, "wire", ["newswire"], NOW, NOW)
        assert d.finish_plan(conn, "s2", 1, "email", NOW) == 3
        assert d.finish_plan(conn, "s2", 1, "email", NOW) is None
        assert d.planned_channels(conn, "s2", 1) == {"email"}
        assert d.planned_channels(conn, "s2", 2) == set()
        assert d.planned_channels(conn, "s1", 1) == {"email", "wire"}


def add_members(conn, list_name, *members):
    """members: (address, vetted) pairs."""
    conn.execute(insert(recipients), [
        {"list_name": list_name, "email": address, "email_key": address.lower(), "embargo_ok": vetted,
         "created_at": NOW, "updated_at": NOW} for address, vetted in members])


def test_who_gets_which_copy_is_sifted_by_the_database(engine):
    """Vetted members get the embargoed copy; the rest of the list, then each release list, the released one;
    each address once whatever its case; never the unsubscribed, never a holder of this revision."""
    with engine.begin() as conn:
        add_statement(conn)
        add_members(conn, "main", ("Vet@x", True), ("held@x", True), ("plain@x", False), ("gone@x", False))
        add_members(conn, "desks", ("desk@x", False), ("VET@x", False), ("PLAIN@x", True), ("held2@x", False),
                    ("both@x", False))
        add_members(conn, "more", ("Both@x", False), ("last@x", True))
        conn.execute(insert(suppressions).values(email_key="gone@x", reason="unsubscribed", actor="a",
                                                 created_at=NOW))
        d.plan(conn, "s1", 1, "email", ["held@x", "held2@x"], NOW, NOW)
        d.plan(conn, "s1", 2, "email", ["plain@x"], NOW, NOW)  # another revision holds nothing of this one
        unless = partial(d.holds_revision, statement_id="s1", revision=1, generation=1)
        assert list(members.eligible(conn, "main", embargoed=True, unless=unless)) == ["Vet@x"]
        assert list(members.eligible(conn, "main", embargoed=False)) == ["Vet@x", "held@x", "plain@x"]
        assert list(members.release_members(conn, "main", ("desks", "more"), unless)) == [
            "plain@x", "desk@x", "both@x", "last@x"]
        assert list(members.release_members(conn, "main", ())) == ["plain@x"]
        assert d.holders_of_revision(conn, "s1", 1, 1) == {"held@x", "held2@x"}


# -- rescheduling and cancelling ------------------------------------------------------------------------------------
def test_reschedule_moves_unsent_rows_and_cancels_dropped_channels(planned):
    later = NOW + timedelta(hours=5)
    with planned.begin() as conn:
        set_row(conn, "b@x", status="sent")
        set_row(conn, "c@x", status="retrying")
        add_statement(conn, "s2")
        d.plan(conn, "s2", 1, "email", ["other@x"], NOW, NOW)
        d.plan(conn, "s2", 1, "wire", ["newswire"], NOW, NOW)
        d.reschedule_unsent(conn, "s1", 1, {"email": later}, NOW + timedelta(seconds=1))
        a, b, c = one(conn, "a@x"), one(conn, "b@x"), one(conn, "c@x")
        wire = rows(conn, statement_id="s1", channel="wire")[0]
        others = rows(conn, statement_id="s2")
    assert (a["due_at"], a["next_attempt_at"], a["updated_at"]) == (later, later, NOW + timedelta(seconds=1))
    assert (c["due_at"], c["status"]) == (later, "retrying")
    assert (b["due_at"], b["status"]) == (NOW, "sent")
    assert (wire["status"], wire["last_error"]) == ("cancelled", "channel dropped by reschedule")
    assert wire["updated_at"] == NOW + timedelta(seconds=1)
    assert a["status"] == "pending"
    assert [(r["status"], r["due_at"]) for r in others] == [("pending", NOW), ("pending", NOW)]


def test_reschedule_of_one_revision_leaves_the_other(planned):
    with planned.begin() as conn:
        d.plan(conn, "s1", 2, "wire", ["newswire"], NOW, NOW)
        d.reschedule_unsent(conn, "s1", 1, {"email": NOW}, NOW)
        assert [r["status"] for r in rows(conn, channel="wire")] == ["cancelled", "pending"]


def test_cancel_unsent_by_revision_channel_and_target(planned):
    with planned.begin() as conn:
        d.plan(conn, "s1", 2, "email", ["a@x"], NOW, NOW)
        d.plan(conn, "s1", 3, "email", ["a@x"], NOW, NOW)
        set_row(conn, "b@x", status="sending")
        assert d.cancel_unsent(conn, "s1", NOW, "superseded", before_revision=2) == 3  # a, c by email; the wire row
        assert [r["status"] for r in rows(conn, target="a@x")] == ["cancelled", "pending", "pending"]
        assert one(conn, "b@x")["status"] == "sending"  # being sent: it finishes
        assert one(conn, "c@x")["last_error"] == "superseded"
        assert d.cancel_unsent(conn, "s1", NOW, "x", channel="wire") == 0
        assert d.cancel_unsent(conn, "s1", NOW, "only a", target="a@x", channel="email") == 2
        assert [r["last_error"] for r in rows(conn, target="a@x")] == ["superseded", "only a", "only a"]


def test_cancel_unsent_touches_only_its_statement_and_channel(planned):
    with planned.begin() as conn:
        add_statement(conn, "s2")
        d.plan(conn, "s2", 1, "email", ["a@x"], NOW, NOW)
        assert d.cancel_unsent(conn, "s1", NOW, "withdrawn", channel="email") == 3
        assert rows(conn, statement_id="s2")[0]["status"] == "pending"
        assert rows(conn, channel="wire")[0]["status"] == "pending"
        stamped = one(conn, "b@x")
        assert (stamped["status"], stamped["updated_at"]) == ("cancelled", NOW)


def test_cancel_target_across_statements_on_one_channel(planned):
    with planned.begin() as conn:
        add_statement(conn, "s2")
        d.plan(conn, "s2", 1, "email", ["a@x", "b@x"], NOW, NOW)
        d.plan(conn, "s2", 1, "wire", ["a@x"], NOW, NOW)
        set_row(conn, "b@x", status="failed")
        assert d.cancel_target(conn, "email", "a@x", NOW + timedelta(seconds=2), "unsubscribed") == 2
        cancelled = [r for r in rows(conn) if r["status"] == "cancelled"]
        assert {(r["statement_id"], r["channel"], r["target"]) for r in cancelled} == \
            {("s1", "email", "a@x"), ("s2", "email", "a@x")}
        assert {(r["last_error"], r["updated_at"]) for r in cancelled} == {("unsubscribed", NOW + timedelta(seconds=2))}
        assert d.cancel_target(conn, "email", "b@x", NOW, "x") == 0  # failed and sent rows stay as they are


# -- claiming --------------------------------------------------------------------------------------------------------
def test_claim_takes_due_rows_in_order_and_marks_them(planned):
    with planned.begin() as conn:
        set_row(conn, "a@x", next_attempt_at=NOW - timedelta(seconds=1))  # due first
        set_row(conn, "c@x", attempts=2)
        batch = claim(conn, "w1", limit=2, lease=90)
        assert re.fullmatch(r"w1/[0-9a-f]{12}", batch.token)
        assert [c.target for c in batch.rows] == ["a@x", "b@x"]
        first = batch.rows[0]
        assert first == Claimed(first.id, "s1", 1, "email", "a@x", 0, NOW)
        r = one(conn, "a@x")
        assert (r["status"], r["claimed_by"], r["worker_id"], r["lease_until"], r["updated_at"]) == \
            ("sending", batch.token, "w1", NOW + timedelta(seconds=90), NOW)
        assert one(conn, "c@x")["status"] == "pending"
        rest = claim(conn, "w2")
        assert [(c.target, c.attempts) for c in rest.rows] == [("c@x", 2)]
        assert rest.token != batch.token
        assert claim(conn, "w2").rows == []
        assert conn.execute(select(attempts)).all() == []  # nothing was abandoned


def test_claim_orders_by_next_attempt_then_id(planned):
    with planned.begin() as conn:
        set_row(conn, "c@x", next_attempt_at=NOW - timedelta(seconds=5))
        set_row(conn, "b@x", next_attempt_at=NOW - timedelta(seconds=3))
        batch = claim(conn, limit=1)
        assert [c.target for c in batch.rows] == ["c@x"]
        assert [c.target for c in claim(conn, limit=1).rows] == ["b@x"]


def test_claim_returns_rows_sorted_by_id(planned):
    with planned.begin() as conn:
        set_row(conn, "c@x", next_attempt_at=NOW - timedelta(seconds=5))
        assert [c.target for c in claim(conn).rows] == ["a@x", "b@x", "c@x"]


def test_claim_due_boundary_is_inclusive(planned):
    with planned.begin() as conn:
        assert claim(conn, now=NOW - timedelta(microseconds=1)).rows == []
        assert len(claim(conn, now=NOW).rows) == 3


def test_claim_only_its_channel(planned):
    with planned.begin() as conn:
        assert claim(conn, channel="wire").rows == []  # due at the embargo, an hour on
        batch = claim(conn, channel="wire", now=NOW + timedelta(hours=1))
        assert [(c.channel, c.target) for c in batch.rows] == [("wire", "newswire")]


@pytest.mark.parametrize("status, claimable", [("pending", True), ("retrying", True), ("sent", False),
                                               ("failed", False), ("cancelled", False)])
def test_claimable_statuses(planned, status, claimable):
    with planned.begin() as conn:
        set_row(conn, "a@x", status=status)
        assert ("a@x" in [c.target for c in claim(conn).rows]) is claimable


@pytest.mark.parametrize("status, approved, revision, claimable", [
    ("scheduled", 1, 1, True), ("released", 1, 1, True), ("approved", 1, 1, False), ("draft", None, 1, False),
    ("withdrawn", 1, 1, False), ("scheduled", 2, 2, False),
])
def test_only_rows_of_a_live_approved_revision_are_claimed(engine, status, approved, revision, claimable):
    with engine.begin() as conn:
        add_statement(conn, "s1", status=status, revision=revision, approved=approved)
        add_statement(conn, "s2")  # a live statement whose id must match
        add_worker(conn, "w1")
        d.plan(conn, "s1", 1, "email", ["a@x"], NOW, NOW)
        assert d.due_channels(conn, NOW, CUTOFF) == (["email"] if claimable else [])
        assert bool(claim(conn).rows) is claimable


def test_rows_found_beforehand_and_claimed_since_by_another_worker_are_left_alone(planned):
    """On SQLite the search runs before the write: what another worker took meanwhile is neither taken nor said
    to be abandoned."""
    with planned.begin() as conn:
        found = d.candidates(conn, "email", NOW, CUTOFF, 100)
        assert len(found) == 3
        other = claim(conn, "w2", limit=2)
        mine = d.claim(conn, "email", NOW, "w1", 100, 60.0, CUTOFF, found=found)
        assert {c.id for c in mine.rows} == set(found) - {c.id for c in other.rows}
        assert conn.execute(select(attempts)).all() == []


def test_rows_found_beforehand_are_looked_up_by_id_not_by_walking_the_due_index(planned):
    """SQLite's planner would otherwise walk every due row of the channel in its index to check the few found,
    holding the one write lock (and every outcome waiting to be recorded) all the while."""
    if planned.dialect.name != "sqlite":
        pytest.skip("only SQLite looks rows up before the write; PostgreSQL claims them in one statement")
    from sqlalchemy import event

    updates: list[tuple[str, tuple]] = []

    def grab(conn, cursor, statement, parameters, context, executemany):
        if statement.startswith("UPDATE deliveries"):
            updates.append((statement, parameters))
    with planned.begin() as conn:  # a batch's worth: with a few ids the planner finds the way by itself
        d.plan_chunk(conn, "s1", 1, "email", [f"r{i}@x" for i in range(500)], NOW, NOW)
    event.listen(planned, "before_cursor_execute", grab)
    try:
        with planned.begin() as conn:
            found = d.candidates(conn, "email", NOW, CUTOFF, 500)
            assert len(d.claim(conn, "email", NOW, "w1", 500, 60.0, CUTOFF, found=found).rows) == 500
            [(sql, parameters)] = updates
            plan = " | ".join(row[-1] for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql, parameters))
    finally:
        event.remove(planned, "before_cursor_execute", grab)
    assert "USING INTEGER PRIMARY KEY" in plan and "ix_deliveries_due" not in plan, plan


def test_a_sending_row_is_taken_over_when_its_lease_ran_out(planned):
    with planned.begin() as conn:
        held = claim(conn, "w1", lease=60)
        at_lease_end = NOW + timedelta(seconds=60)
        assert claim(conn, "w2", now=at_lease_end, cutoff=CUTOFF).rows == []  # the lease still holds at its end
        taken = claim(conn, "w2", now=at_lease_end + timedelta(microseconds=1), cutoff=CUTOFF)
        assert [c.id for c in taken.rows] == [c.id for c in held.rows]
        history = conn.execute(select(attempts).order_by(attempts.c.delivery_id)).mappings().all()
        assert [(h["delivery_id"], h["outcome"], h["worker"], h["detail"], h["at"]) for h in history] == \
            [(c.id, "abandoned", "w2", f"{held.token} stopped; taken over", at_lease_end + timedelta(microseconds=1))
             for c in held.rows]
        assert {r["worker_id"] for r in rows(conn, channel="email")} == {"w2"}
        assert {(r["attempts"], r["attempts_since_requeue"]) for r in rows(conn, channel="email")} == {(1, 1)}
        assert {(c.attempts, c.since_requeue) for c in taken.rows} == {(1, 1)}


def test_a_beat_renews_the_leases_of_the_batches_in_hand_and_no_others(planned):
    """A batch whose send ended without giving its rows back (the database was away then) is renewed no more:
    once its lease runs out, any worker takes the rows again, the one that claimed them too."""
    with planned.begin() as conn:
        kept = claim(conn, "w1", limit=1, lease=60)
        dropped = claim(conn, "w1", limit=1, lease=60)
    later = NOW + timedelta(seconds=50)
    heartbeat = Heartbeat(planned, FixedClock(later), DeliveryPolicy(lease_seconds=60), "w1")
    assert heartbeat.beat() == 0  # nothing in hand
    with heartbeat.in_hand(kept.token):
        assert heartbeat.beat() == 1
    assert heartbeat.beat() == 0
    with planned.begin() as conn:
        leases = {r["id"]: r["lease_until"] for r in rows(conn, channel="email")}
        assert leases[kept.rows[0].id] == later + timedelta(seconds=60)
        assert leases[dropped.rows[0].id] == NOW + timedelta(seconds=60)
        conn.execute(update(workers).where(workers.c.id == "w1").values(last_seen=NOW))  # alive, by the test's clock
        again = claim(conn, "w1", now=NOW + timedelta(seconds=61))
        never_claimed = {"a@x", "b@x", "c@x"} - {kept.rows[0].target, dropped.rows[0].target}
        assert {c.target for c in again.rows} == {dropped.rows[0].target, *never_claimed}


def test_max_attempts_counts_the_attempts_since_the_last_requeue_and_attempts_counts_all(planned):
    with planned.begin() as conn:
        set_row(conn, "a@x", attempts=7, attempts_since_requeue=1)  # requeued by hand after 6 attempts
        set_row(conn, "b@x", attempts=2, attempts_since_requeue=2)
        batch = claim(conn, limit=2)
        assert {(c.target, c.attempts, c.since_requeue) for c in batch.rows} == {("a@x", 7, 1), ("b@x", 2, 2)}
        record(conn, batch, *(Outcome(r.id, Result.RETRY, "451") for r in batch.rows))
        ra, rb = one(conn, "a@x"), one(conn, "b@x")
        assert (ra["status"], ra["attempts"], ra["attempts_since_requeue"]) == ("retrying", 8, 2)
        assert ra["next_attempt_at"] == NOW + timedelta(seconds=60)  # the backoff after the second attempt
        assert (rb["status"], rb["attempts"], rb["attempts_since_requeue"]) == ("failed", 3, 3)


def test_refused_and_cancelled_outcomes_count_no_attempt(planned):
    with planned.begin() as conn:
        set_row(conn, "a@x", attempts=2, attempts_since_requeue=1)
        set_row(conn, "b@x", attempts=2, attempts_since_requeue=1)
        batch = claim(conn, limit=2)
        a, b = sorted(batch.rows, key=lambda r: r.target)
        record(conn, batch, Outcome(a.id, Result.REFUSED, "embargo", not_before=NOW + timedelta(hours=1)),
               Outcome(b.id, Result.CANCELLED, "unsubscribed"))
        assert (one(conn, "a@x")["attempts"], one(conn, "a@x")["attempts_since_requeue"]) == (2, 1)
        assert (one(conn, "b@x")["attempts"], one(conn, "b@x")["attempts_since_requeue"]) == (2, 1)


@pytest.mark.parametrize("seen_ago, stopped, taken", [(0, False, False), (14, False, False), (15, False, False),
                                                      (16, False, True), (0, True, True)])
def test_a_sending_row_of_a_silent_or_stopped_worker_is_taken_over(planned, seen_ago, stopped, taken):
    with planned.begin() as conn:
        add_worker(conn, "w3", seen_ago=seen_ago, stopped=stopped)
        held = claim(conn, "w3", lease=3600)
        assert len(held.rows) == 3
        assert d.due_channels(conn, NOW, CUTOFF) == (["email"] if taken else [])
        assert bool(claim(conn, "w1").rows) is taken


def test_a_worker_never_takes_over_its_own_rows_in_flight_for_a_silent_heartbeat(planned):
    """It claims the next batch while one is sent: its rows in flight are its own, however old its heartbeat looks.
    Another worker takes them; it takes them itself only once their lease ran out."""
    with planned.begin() as conn:
        add_worker(conn, "w3", seen_ago=16)
        held = claim(conn, "w3", lease=60)
        assert len(held.rows) == 3
        assert claim(conn, "w3").rows == []
        assert len(claim(conn, "w3", now=NOW + timedelta(seconds=61)).rows) == 3
        conn.execute(update(deliveries).where(deliveries.c.channel == "email").values(lease_until=NOW + timedelta(hours=1)))
        assert len(claim(conn, "w1").rows) == 3


def test_a_sending_row_without_a_worker_row_is_taken_over(planned):
    with planned.begin() as conn:
        claim(conn, "ghost", lease=3600)
        assert len(claim(conn, "w1").rows) == 3


# -- release ---------------------------------------------------------------------------------------------------------
def test_release_gives_back_pending_or_retrying_and_only_its_own_rows(planned):
    with planned.begin() as conn:
        set_row(conn, "b@x", attempts=1, status="retrying")
        batch = claim(conn, "w1", limit=2)
        other = claim(conn, "w2")
        assert d.release(conn, batch, NOW + timedelta(seconds=3)) == 2
        a, b, c = one(conn, "a@x"), one(conn, "b@x"), one(conn, "c@x")
        assert (a["status"], b["status"], c["status"]) == ("pending", "retrying", "sending")
        assert (a["claimed_by"], a["worker_id"], a["lease_until"], a["updated_at"]) == \
            (None, None, None, NOW + timedelta(seconds=3))
        assert c["claimed_by"] == other.token
        assert d.release(conn, batch, NOW) == 0


def test_release_leaves_recorded_rows(planned):
    with planned.begin() as conn:
        batch = claim(conn)
        d.record(conn, batch, [Outcome(batch.rows[0].id, Result.SENT)], POLICY, NOW, "w1")
        assert d.release(conn, batch, NOW) == 2
        assert [r["status"] for r in rows(conn, channel="email")] == ["sent", "pending", "pending"]


# -- recording outcomes ----------------------------------------------------------------------------------------------
def record(conn, batch, *outcomes, now=NOW, policy=POLICY, worker="w1"):
    return d.record(conn, batch, outcomes, policy, now, worker)


def test_sent_is_recorded_with_its_remote_id_and_variant(planned):
    later = NOW + timedelta(seconds=7)
    with planned.begin() as conn:
        batch = claim(conn)
        a, b, c = batch.rows
        counts = record(conn, batch, Outcome(a.id, Result.SENT, remote_id="<m1@x>", variant=Variant.EMBARGOED),
                        Outcome(b.id, Result.SENT, detail="ignored"), now=later, worker="w9")
        assert counts == {Result.SENT: 2}
        ra, rb = one(conn, "a@x"), one(conn, "b@x")
        assert (ra["status"], ra["attempts"], ra["sent_at"], ra["remote_id"], ra["variant"], ra["last_error"]) == \
            ("sent", 1, later, "<m1@x>", "embargoed", None)
        assert (ra["lease_until"], ra["claimed_by"], ra["worker_id"], ra["updated_at"], ra["next_attempt_at"]) == \
            (None, None, None, later, later)
        assert (rb["status"], rb["variant"], rb["remote_id"], rb["last_error"]) == ("sent", None, None, None)
        history = conn.execute(select(attempts).order_by(attempts.c.id)).mappings().all()
        assert [(h["delivery_id"], h["at"], h["outcome"], h["detail"], h["worker"]) for h in history] == \
            [(a.id, later, "sent", None, "w9"), (b.id, later, "sent", "ignored", "w9")]
        assert one(conn, "c@x")["status"] == "sending"


def test_refused_goes_back_to_pending_at_the_embargo_without_counting_an_attempt(planned):
    embargo = NOW + timedelta(hours=1)
    with planned.begin() as conn:
        set_row(conn, "b@x", attempts=2)
        batch = claim(conn)
        a, b, c = batch.rows
        counts = record(conn, batch, Outcome(a.id, Result.REFUSED, "refused: embargo", not_before=embargo),
                        Outcome(b.id, Result.REFUSED, "refused: embargo"))
        assert counts == {Result.REFUSED: 2}
        ra, rb = one(conn, "a@x"), one(conn, "b@x")
        assert (ra["status"], ra["attempts"], ra["next_attempt_at"], ra["last_error"], ra["sent_at"]) == \
            ("pending", 0, embargo, "refused: embargo", None)
        assert (ra["claimed_by"], ra["worker_id"], ra["lease_until"]) == (None, None, None)
        assert (rb["status"], rb["attempts"], rb["next_attempt_at"]) == ("pending", 2, NOW)
        assert [h.outcome for h in conn.execute(select(attempts.c.outcome))] == ["refused", "refused"]


def test_cancelled_keeps_the_attempt_count(planned):
    with planned.begin() as conn:
        set_row(conn, "a@x", attempts=1)
        batch = claim(conn, limit=1)
        assert record(conn, batch, Outcome(batch.rows[0].id, Result.CANCELLED, "suppressed")) == {Result.CANCELLED: 1}
        r = one(conn, "a@x")
        assert (r["status"], r["attempts"], r["last_error"], r["claimed_by"]) == ("cancelled", 1, "suppressed", None)
        assert conn.execute(select(attempts.c.outcome)).scalar_one() == "cancelled"


def test_failed_is_final_with_its_reason(planned):
    with planned.begin() as conn:
        batch = claim(conn, limit=1)
        assert record(conn, batch, Outcome(batch.rows[0].id, Result.FAILED, "550 no such user")) == {Result.FAILED: 1}
        r = one(conn, "a@x")
        assert (r["status"], r["attempts"], r["last_error"], r["sent_at"], r["lease_until"]) == \
            ("failed", 1, "550 no such user", None, None)
        assert conn.execute(select(attempts.c.outcome)).scalar_one() == "failed"


def test_retry_backs_off_and_gives_up_at_max_attempts(planned):
    with planned.begin() as conn:
        set_row(conn, "a@x", attempts=0)
        set_row(conn, "b@x", attempts=1, attempts_since_requeue=1)
        set_row(conn, "c@x", attempts=2, attempts_since_requeue=2)  # the third attempt is the last (max_attempts = 3)
        batch = claim(conn)
        a, b, c = batch.rows
        counts = record(conn, batch, *(Outcome(r.id, Result.RETRY, "451 later") for r in batch.rows))
        assert counts == {Result.RETRY: 3}
        ra, rb, rc = one(conn, "a@x"), one(conn, "b@x"), one(conn, "c@x")
        assert (ra["status"], ra["attempts"], ra["next_attempt_at"], ra["last_error"]) == \
            ("retrying", 1, NOW + timedelta(seconds=30), "451 later")
        assert (rb["status"], rb["attempts"], rb["next_attempt_at"]) == ("retrying", 2, NOW + timedelta(seconds=60))
        assert (rc["status"], rc["attempts"], rc["last_error"]) == ("failed", 3, "gave up after 3 attempts: 451 later")
        assert (ra["claimed_by"], ra["worker_id"], ra["lease_until"], ra["sent_at"]) == (None, None, None, None)
        assert [h.outcome for h in conn.execute(select(attempts.c.outcome))] == ["retry"] * 3


def test_retry_after_longer_than_the_backoff_is_followed_and_shorter_is_not(planned):
    with planned.begin() as conn:
        batch = claim(conn, limit=2)
        a, b = batch.rows
        record(conn, batch, Outcome(a.id, Result.RETRY, "429", retry_after=120.5),
               Outcome(b.id, Result.RETRY, "429", retry_after=5))
        assert one(conn, "a@x")["next_attempt_at"] == NOW + timedelta(seconds=120.5)
        assert one(conn, "b@x")["next_attempt_at"] == NOW + timedelta(seconds=30)


def test_transport_faults_never_exhaust_the_attempts(planned):
    with planned.begin() as conn:
        set_row(conn, "a@x", attempts=10, attempts_since_requeue=10)
        batch = claim(conn, limit=1)
        assert record(conn, batch, Outcome(batch.rows[0].id, Result.TRANSPORT, "relay down")) == {Result.TRANSPORT: 1}
        r = one(conn, "a@x")
        assert (r["status"], r["attempts"], r["last_error"], r["next_attempt_at"]) == \
            ("retrying", 11, "relay down", NOW + timedelta(seconds=900))
        assert conn.execute(select(attempts.c.outcome)).scalar_one() == "transport"


def test_outcomes_for_rows_not_in_the_batch_are_ignored(planned):
    with planned.begin() as conn:
        batch = claim(conn, limit=1)
        counts = record(conn, batch, Outcome(9999, Result.SENT), Outcome(batch.rows[0].id, Result.SENT))
        assert counts == {Result.SENT: 1}
        assert len(conn.execute(select(attempts)).all()) == 1
        assert record(conn, batch) == {}


def test_outcome_for_a_row_taken_over_by_another_claim_is_not_written(planned):
    with planned.begin() as conn:
        stale = claim(conn, "w1", limit=1, lease=1)
        fresh = claim(conn, "w2", now=NOW + timedelta(seconds=2), limit=1)
        assert [c.id for c in fresh.rows] == [c.id for c in stale.rows]
        record(conn, stale, Outcome(stale.rows[0].id, Result.FAILED, "late answer"))
        r = one(conn, "a@x")
        assert (r["status"], r["claimed_by"]) == ("sending", fresh.token)


def test_outcome_for_a_row_no_longer_sending_is_not_written(planned):
    with planned.begin() as conn:
        batch = claim(conn, limit=1)
        set_row(conn, "a@x", status="cancelled")
        record(conn, batch, Outcome(batch.rows[0].id, Result.SENT))
        assert one(conn, "a@x")["status"] == "cancelled"


def test_counts_add_up_per_result(planned):
    with planned.begin() as conn:
        batch = claim(conn)
        a, b, c = batch.rows
        counts = record(conn, batch, Outcome(a.id, Result.SENT), Outcome(b.id, Result.FAILED, "x"),
                        Outcome(c.id, Result.SENT))
        assert counts == {Result.SENT: 2, Result.FAILED: 1}


def test_holders_are_targets_with_a_sent_copy_of_any_revision_once_each(planned):
    with planned.begin() as conn:
        d.plan(conn, "s1", 2, "email", ["a@x", "d@x"], NOW, NOW)
        d.plan(conn, "s1", 3, "email", ["e@x"], NOW, NOW, generation=2)
        conn.execute(update(deliveries).where(deliveries.c.target.in_(["a@x", "b@x", "e@x"])).values(
            status="sent", variant="embargoed"))
        set_row(conn, "c@x", status="sent", variant="released")
        set_row(conn, "d@x", status="failed", variant="embargoed")
        conn.execute(update(deliveries).where(deliveries.c.channel == "wire").values(status="sent",
                                                                                     variant="embargoed"))
        assert d.holders(conn, "s1", 1) == ["a@x", "b@x"]
        assert d.holders(conn, "s1", 1, embargoed=False) == ["a@x", "b@x", "c@x"]
        assert d.holders(conn, "s1", 1, channel="wire") == ["newswire"]
        assert d.holders(conn, "s1", 2) == ["e@x"]
        assert d.holders(conn, "s2", 1) == []


def test_first_copies_are_the_earliest_sent_statement_copy_per_target(planned):
    with planned.begin() as conn:
        d.plan(conn, "s1", 2, "email", ["a@x", "b@x"], NOW, NOW)
        d.plan(conn, "s1", 3, "email", ["a@x"], NOW, NOW, generation=2)
        d.plan_notice(conn, "s1", 2, 1, Kind.CORRECTION, 1, {"email": ["c@x"]}, NOW, NOW)
        for target, revision, generation, kind, remote, minutes in [
                ("a@x", 1, 1, "statement", "<a1>", 1), ("a@x", 2, 1, "statement", "<a2>", 2),
                ("a@x", 3, 2, "statement", "<a3>", 3), ("b@x", 2, 1, "statement", None, 1),
                ("c@x", 2, 1, "correction", "<c-fix>", 5)]:
            conn.execute(update(deliveries).where(
                deliveries.c.target == target, deliveries.c.revision == revision, deliveries.c.kind == kind,
                deliveries.c.generation == generation, deliveries.c.channel == "email").values(
                status="sent", remote_id=remote, sent_at=NOW + timedelta(minutes=minutes)))
        set_row(conn, "c@x", status="sent", remote_id="<c1>", sent_at=NOW)
        conn.execute(update(deliveries).where(deliveries.c.kind == "correction").values(
            remote_id="<c-fix>", sent_at=NOW + timedelta(minutes=5)))
        everyone = ["a@x", "b@x", "c@x", "newswire"]
        assert d.first_copies(conn, "s1", "email", everyone) == {"a@x": "<a1>", "c@x": "<c1>"}
        assert d.first_copies(conn, "s1", "email", everyone, generation=2) == {"a@x": "<a3>"}
        assert d.first_copies(conn, "s1", "email", ["b@x"]) == {}
        assert d.first_copies(conn, "s1", "wire", everyone) == {}
        assert d.first_copies(conn, "s2", "email", everyone) == {}
        assert d.sent_of_kind(conn, "s1", "email", Kind.CORRECTION) == {"c@x": ["<c-fix>"]}
        assert d.sent_of_kind(conn, "s1", "email", Kind.STATEMENT) == {
            "a@x": ["<a1>", "<a2>", "<a3>"], "c@x": ["<c1>"]}
        assert d.sent_of_kind(conn, "s1", "wire", Kind.STATEMENT) == {}


def test_first_copies_at_the_same_instant_take_the_first_row(planned):
    with planned.begin() as conn:
        d.plan(conn, "s1", 2, "email", ["a@x"], NOW, NOW)
        for revision in (2, 1):
            conn.execute(update(deliveries).where(deliveries.c.target == "a@x", deliveries.c.revision == revision)
                         .values(status="sent", sent_at=NOW, remote_id=f"<r{revision}>"))
        assert d.first_copies(conn, "s1", "email", ["a@x"]) == {"a@x": "<r1>"}


# -- what the scheduler reads ----------------------------------------------------------------------------------------
def test_due_channels_and_active_count(planned):
    with planned.begin() as conn:
        assert d.due_channels(conn, NOW, CUTOFF) == ["email"]
        assert sorted(d.due_channels(conn, NOW + timedelta(hours=1), CUTOFF)) == ["email", "wire"]
        assert d.due_channels(conn, NOW - timedelta(seconds=1), CUTOFF) == []
        assert d.active_count(conn) == 4
        set_row(conn, "a@x", status="sending")
        set_row(conn, "b@x", status="retrying")
        assert d.active_count(conn) == 4
        for status in ("sent", "failed", "cancelled"):
            set_row(conn, "c@x", status=status)
            assert d.active_count(conn) == 3


def test_next_attempts_are_the_soonest_future_instant_per_channel_of_claimable_rows(planned):
    early = NOW - timedelta(seconds=1)
    with planned.begin() as conn:
        set_row(conn, "a@x", next_attempt_at=NOW + timedelta(seconds=30), status="retrying")
        set_row(conn, "c@x", status="sending", next_attempt_at=NOW + timedelta(seconds=10))
        assert d.next_attempts(conn, early) == [NOW, NOW + timedelta(seconds=30), NOW + timedelta(hours=1)]
        assert d.next_attempts(conn, early, ["email"]) == [NOW, NOW + timedelta(seconds=30)]
        assert d.next_attempts(conn, NOW) == [NOW + timedelta(seconds=30), NOW + timedelta(hours=1)]
        set_row(conn, "b@x", status="sent")
        assert d.next_attempts(conn, early, ["email"]) == [NOW + timedelta(seconds=30)]
        assert d.next_attempts(conn, early, ["nothing"]) == []


def test_any_active(planned):
    with planned.begin() as conn:
        assert d.any_active(conn)
        conn.execute(update(deliveries).values(status="sent"))
        assert not d.any_active(conn)
        set_row(conn, "a@x", status="retrying")
        assert d.any_active(conn)


def test_complete_plans_once_nothing_is_active(planned):
    with planned.begin() as conn:
        assert d.complete_plans(conn, NOW) == []
        set_row(conn, "a@x", status="sent")
        set_row(conn, "b@x", status="failed")
        assert d.complete_plans(conn, NOW) == []
        set_row(conn, "c@x", status="sent")
        done = d.complete_plans(conn, NOW + timedelta(seconds=4))
        assert [(p["statement_id"], p["revision"], p["channel"], p["targets"], p["counts"]) for p in done] == \
            [("s1", 1, "email", 3, {"sent": 2, "failed": 1})]
        completed = conn.execute(select(plans.c.channel, plans.c.completed_at).order_by(plans.c.channel)).all()
        assert [tuple(r) for r in completed] == [("email", NOW + timedelta(seconds=4)), ("wire", None)]
        assert d.complete_plans(conn, NOW + timedelta(seconds=5)) == []


@pytest.mark.parametrize("status", ["pending", "sending", "retrying"])
def test_a_plan_with_any_active_row_is_not_complete(planned, status):
    with planned.begin() as conn:
        conn.execute(update(deliveries).values(status="sent"))
        set_row(conn, "b@x", status=status)
        assert [p["channel"] for p in d.complete_plans(conn, NOW)] == ["wire"]


def test_log_rows_carry_the_embargo_in_order_and_filter(planned):
    with planned.begin() as conn:
        add_statement(conn, "s0", embargo=NOW)
        d.plan(conn, "s0", 1, "email", ["z@x"], NOW, NOW)
        set_row(conn, "b@x", status="failed", last_error="550")
        log = list(d.log_rows(conn))
        assert [(r["statement"], r["channel"], r["target"]) for r in log] == \
            [("s0", "email", "z@x"), ("s1", "email", "a@x"), ("s1", "email", "b@x"), ("s1", "email", "c@x"),
             ("s1", "wire", "newswire")]
        b = log[2]
        assert (b["status"], b["error"], b["attempts"], b["revision"], b["embargo"], b["due_at"]) == \
            ("failed", "550", 0, 1, NOW + timedelta(hours=1), NOW)
        assert set(b) == {"statement", "revision", "channel", "target", "status", "attempts", "error", "due_at",
                          "sent_at", "remote_id", "variant", "next_attempt_at", "embargo", "kind", "generation",
                          "notice"}
        assert [r["target"] for r in d.log_rows(conn, "s0")] == ["z@x"]


def test_log_rows_order_by_revision_before_channel(engine):
    with engine.begin() as conn:
        add_statement(conn)
        d.plan(conn, "s1", 2, "email", ["a@x"], NOW, NOW)
        d.plan(conn, "s1", 1, "wire", ["w"], NOW, NOW)
        d.plan(conn, "s1", 1, "email", ["b@x", "a@x"], NOW, NOW)
        assert [(r["revision"], r["channel"], r["target"]) for r in d.log_rows(conn)] == \
            [(1, "email", "b@x"), (1, "email", "a@x"), (1, "wire", "w"), (2, "email", "a@x")]


def test_attempt_rows_in_order_of_time_for_one_statement(planned):
    with planned.begin() as conn:
        add_statement(conn, "s2")
        d.plan(conn, "s2", 1, "email", ["o@x"], NOW, NOW)
        batch = claim(conn, limit=3)
        a, b, c = batch.rows
        record(conn, batch, Outcome(b.id, Result.RETRY, "451"), now=NOW + timedelta(seconds=2))
        record(conn, batch, Outcome(a.id, Result.SENT), Outcome(c.id, Result.FAILED, "550"),
               now=NOW + timedelta(seconds=1))
        history = d.attempt_rows(conn, "s1")
        assert [(h["target"], h["outcome"], h["detail"], h["at"]) for h in history] == \
            [("a@x", "sent", None, NOW + timedelta(seconds=1)), ("c@x", "failed", "550", NOW + timedelta(seconds=1)),
             ("b@x", "retry", "451", NOW + timedelta(seconds=2))]
        assert set(history[0]) == {"channel", "target", "status", "at", "outcome", "detail", "worker"}
        assert history[0]["channel"] == "email" and history[0]["worker"] == "w1"
        assert d.attempt_rows(conn, "s2") == []


def test_status_names_and_groups():
    assert [s.value for s in d.DeliveryStatus] == ["pending", "sending", "sent", "retrying", "failed", "cancelled"]
    assert d.ACTIVE == ("pending", "sending", "retrying")
    assert d.CLAIMABLE == ("pending", "retrying")
    assert d.Batch("t").rows == [] and d.Batch("t").rows is not d.Batch("t").rows


# -- rules found by mutation testing -----------------------------------------------------------------------------------
def test_retry_without_retry_after_waits_the_backoff_alone_even_below_a_second(planned):
    quick = DeliveryPolicy(retry_first_seconds=0.25, retry_max_seconds=900, max_attempts=3)
    with planned.begin() as conn:
        batch = claim(conn, limit=1)
        d.record(conn, batch, [Outcome(batch.rows[0].id, Result.RETRY, "451")], quick, NOW, "w1")
        assert one(conn, "a@x")["next_attempt_at"] == NOW + timedelta(seconds=0.25)


def test_attempt_rows_at_the_same_instant_keep_the_order_they_were_written(planned):
    with planned.begin() as conn:
        batch = claim(conn)
        a, b, c = batch.rows
        record(conn, batch, Outcome(c.id, Result.SENT), Outcome(a.id, Result.SENT), Outcome(b.id, Result.SENT))
        assert [h["target"] for h in d.attempt_rows(conn, "s1")] == ["c@x", "a@x", "b@x"]


def test_complete_plans_judge_each_statement_and_revision_alone(planned):
    with planned.begin() as conn:
        add_statement(conn, "s2")
        d.plan(conn, "s2", 1, "email", ["a@x"], NOW, NOW)  # s2 r1 email: still pending
        d.plan(conn, "s1", 2, "email", ["a@x"], NOW, NOW)  # s1 r2 email: still pending
        conn.execute(update(deliveries).where(deliveries.c.statement_id == "s1", deliveries.c.revision == 1)
                     .values(status="sent"))
        done = d.complete_plans(conn, NOW)
        assert sorted((p["statement_id"], p["revision"], p["channel"]) for p in done) == \
            [("s1", 1, "email"), ("s1", 1, "wire")]
        assert {p["channel"]: p["counts"] for p in done} == {"email": {"sent": 3}, "wire": {"sent": 1}}
        open_plans = conn.execute(select(plans.c.statement_id, plans.c.revision).where(
            plans.c.completed_at.is_(None)).order_by(plans.c.statement_id, plans.c.revision)).all()
        assert [tuple(p) for p in open_plans] == [("s1", 2), ("s2", 1)]


def test_next_attempts_lists_each_instant_once(planned):
    with planned.begin() as conn:
        assert d.next_attempts(conn, NOW - timedelta(seconds=1)) == [NOW, NOW + timedelta(hours=1)]  # three due at NOW


def test_reschedule_gives_each_channel_its_own_due_time(planned):
    with planned.begin() as conn:
        d.reschedule_unsent(conn, "s1", 1, {"email": NOW + timedelta(minutes=5), "wire": NOW + timedelta(hours=2)},
                            NOW)
        assert {r["channel"]: r["due_at"] for r in rows(conn)} == {"email": NOW + timedelta(minutes=5),
                                                                   "wire": NOW + timedelta(hours=2)}


def test_recorded_times_are_stored_exactly_as_every_other_write_stores_them(planned):
    """The recording statements run through the driver, past SQLAlchemy's execution: a time must still be stored
    in the one form the other statements write and compare against (on SQLite, text with its microseconds)."""
    on_the_second = NOW + timedelta(seconds=5)  # microsecond 0: the driver's own conversion would drop ".000000"
    with planned.begin() as conn:
        batch = claim(conn)
        a, b, _ = batch.rows
        record(conn, batch, Outcome(a.id, Result.SENT), Outcome(b.id, Result.RETRY, "451 later"), now=on_the_second)
        conn.execute(update(deliveries).where(deliveries.c.target == "c@x").values(updated_at=on_the_second))
        stored = conn.execute(select(deliveries.c.target, deliveries.c.sent_at, deliveries.c.updated_at,
                                     deliveries.c.next_attempt_at).order_by(deliveries.c.id)
                              .where(deliveries.c.channel == "email")).all()
        if conn.dialect.name == "sqlite":
            raw = {r[0]: r[1:] for r in conn.exec_driver_sql(
                "SELECT target, sent_at, updated_at FROM deliveries WHERE channel = 'email'")}
            assert raw["a@x"] == (raw["c@x"][1], raw["c@x"][1])
            assert raw["b@x"][1] == raw["c@x"][1]
            at = conn.exec_driver_sql("SELECT DISTINCT at FROM attempts").scalar_one()
            assert at == raw["c@x"][1]
        assert stored[0][1:3] == (on_the_second, on_the_second)
        assert stored[1][1:] == (None, on_the_second, on_the_second + timedelta(seconds=30))
        # a comparison against a bound time finds them, as the claim and the log queries do
        assert conn.execute(select(deliveries.c.target).where(deliveries.c.sent_at == on_the_second)).all() == \
            [("a@x",)]


def test_a_claim_ahead_takes_first_attempts_due_within_the_lead_and_never_a_retry_early(planned):
    lead = timedelta(minutes=1)
    with planned.begin() as conn:
        set_row(conn, "a@x", status="retrying", next_attempt_at=NOW + lead)
        set_row(conn, "b@x", next_attempt_at=NOW + lead)
        set_row(conn, "c@x", next_attempt_at=NOW + lead + timedelta(microseconds=1))
        assert d.due_channels(conn, NOW, CUTOFF, ["email"]) == []
        assert d.due_channels(conn, NOW, CUTOFF, ["email"], {"email": lead}) == ["email"]
        assert d.due_channels(conn, NOW, CUTOFF, ["email"], {"wire": lead}) == []
        assert claim(conn).rows == []
        batch = d.claim(conn, "email", NOW, "w1", 100, 60.0, CUTOFF, lead)
        assert [r.target for r in batch.rows] == ["b@x"]
        assert one(conn, "b@x")["status"] == "sending" and one(conn, "a@x")["status"] == "retrying"
