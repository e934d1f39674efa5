"""The delivery state machine: plan, claim, record, retry. Every transition lives here.

    pending ──claim──▶ sending ──▶ sent
    retrying ─claim─▶    │     ──▶ retrying (next attempt persisted, backoff)
                         │     ──▶ failed
                         │     ──▶ pending  (refused by the embargo guard: next attempt at the embargo)
    any unsent ──────────────────▶ cancelled
    sending, its worker gone ──claim──▶ sending (a dead worker's rows are taken over: heartbeat stale or lease out)
    sending, never attempted ──release──▶ pending or retrying (a stop gives back the rest of a claim)
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import Enum
from functools import cached_property
from typing import Any

from sqlalchemy import ColumnElement, Connection, and_, bindparam, case, delete, func, insert, or_, select, true, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.sql.expression import UnaryExpression
from sqlalchemy.sql.operators import custom_op

from distributor.config import DeliveryPolicy
from distributor.outcomes import Claimed, Kind, Outcome, Result, Variant
from distributor.statements.model import StatementStatus
from distributor.store.prepared import Prepared
from distributor.store.schema import attempts, deliveries, plans, recipients, statements
from distributor.workers import alive


class DeliveryStatus(str, Enum):
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    RETRYING = "retrying"
    FAILED = "failed"
    CANCELLED = "cancelled"


ACTIVE = (DeliveryStatus.PENDING.value, DeliveryStatus.SENDING.value, DeliveryStatus.RETRYING.value)
CLAIMABLE = (DeliveryStatus.PENDING.value, DeliveryStatus.RETRYING.value)
NO_LEAD = timedelta(0)


@dataclass
class Batch:
    """Rows claimed by one worker in one go."""

    token: str
    rows: list[Claimed] = field(default_factory=list)

    @cached_property
    def by_id(self) -> dict[int, Claimed]:
        return {row.id: row for row in self.rows}


def plan(conn: Connection, statement_id: str, revision: int, channel: str, targets: Iterable[str],
         due_at: datetime, now: datetime, generation: int = 1) -> int | None:
    """All targets at once, in the caller's transaction (a channel with few targets). None if already planned."""
    if channel in planned_channels(conn, statement_id, revision, generation):
        return None
    plan_chunk(conn, statement_id, revision, channel, list(targets), due_at, now, generation=generation)
    return finish_plan(conn, statement_id, revision, channel, now, generation)


def plan_chunk(conn: Connection, statement_id: str, revision: int, channel: str, targets: list[str],
               due_at: datetime, now: datetime, generation: int = 1, kind: Kind = Kind.STATEMENT,
               notice: int = 0) -> None:
    """Insert one chunk of delivery rows; a target planned before (a repeat, or an interrupted plan) is skipped."""
    if not targets:
        return
    rows = [{"statement_id": statement_id, "revision": revision, "channel": channel, "target": target,
             "status": DeliveryStatus.PENDING.value, "attempts": 0, "attempts_since_requeue": 0, "due_at": due_at,
             "next_attempt_at": due_at, "updated_at": now, "kind": kind.value, "generation": generation,
             "notice": notice} for target in targets]
    _PLAN[conn.dialect.name].execute_many(conn, rows)


def _copies(statement_id: str, revision: int, channel: str, generation: int) -> list:
    return [deliveries.c.statement_id == statement_id, deliveries.c.revision == revision,
            deliveries.c.channel == channel, deliveries.c.kind == Kind.STATEMENT.value,
            deliveries.c.generation == generation]


def finish_plan(conn: Connection, statement_id: str, revision: int, channel: str, now: datetime,
                generation: int = 1) -> int | None:
    """Mark (statement, revision, channel) planned with its row count; None if another worker did it first."""
    total = conn.execute(select(func.count()).select_from(deliveries).where(
        *_copies(statement_id, revision, channel, generation))).scalar_one()
    inserted = conn.execute(_insert_ignoring_duplicates(conn, plans).values(
        statement_id=statement_id, revision=revision, channel=channel, targets=total, planned_at=now,
        generation=generation,
    ).returning(plans.c.channel)).first()  # rowcount is not reliable for ON CONFLICT on every driver
    return total if inserted is not None else None


def forget_plans(conn: Connection, statement_id: str) -> None:
    """A statement scheduled again after a withdrawal is planned afresh (its earlier rows stay, as history)."""
    conn.execute(delete(plans).where(plans.c.statement_id == statement_id))


def forget_plan(conn: Connection, statement_id: str, revision: int, channel: str, generation: int) -> None:
    """Plan one channel of the statement again (its lists grew): rows planned before stay, and are skipped."""
    conn.execute(delete(plans).where(plans.c.statement_id == statement_id, plans.c.revision == revision,
                                     plans.c.channel == channel, plans.c.generation == generation))


def cancel_unchosen(conn: Connection, statement_id: str, generation: int, lists: tuple[str, ...], now: datetime,
                    reason: str) -> int:
    """Cancel the unsent email copies of the current schedule whose address is on none of ``lists`` (the lists
    chosen now, and the release lists). Returns how many. The database matches each address to the lists' members
    (by the address as written, or by its key), a row at a time through the lists' indexes."""
    member = select(recipients.c.id).where(recipients.c.list_name.in_(lists), or_(
        recipients.c.email == deliveries.c.target, recipients.c.email_key == func.lower(deliveries.c.target)))
    return conn.execute(update(deliveries).where(
        deliveries.c.statement_id == statement_id, deliveries.c.channel == "email",
        deliveries.c.generation == generation, deliveries.c.kind == Kind.STATEMENT.value,
        deliveries.c.status.in_(CLAIMABLE), ~member.exists()).values(
        status=DeliveryStatus.CANCELLED.value, last_error=reason, updated_at=now)).rowcount


def bring_forward_vetted(conn: Connection, statement_id: str, generation: int, lists: tuple[str, ...],
                         embargo: datetime, due: datetime, now: datetime) -> int:
    """Email copies waiting for the lift (the released version) whose address is vetted now on one of ``lists``:
    due at ``due`` instead, as embargoed copies. Returns how many."""
    vetted = select(recipients.c.id).where(recipients.c.list_name.in_(lists), recipients.c.embargo_ok.is_(True), or_(
        recipients.c.email == deliveries.c.target, recipients.c.email_key == func.lower(deliveries.c.target)))
    return conn.execute(update(deliveries).where(
        deliveries.c.statement_id == statement_id, deliveries.c.channel == "email",
        deliveries.c.generation == generation, deliveries.c.kind == Kind.STATEMENT.value,
        deliveries.c.status == DeliveryStatus.PENDING.value, deliveries.c.due_at == embargo,
        vetted.exists()).values(due_at=due, next_attempt_at=due, updated_at=now)).rowcount


def plan_notice(conn: Connection, statement_id: str, revision: int, generation: int, kind: Kind, notice: int,
                targets: dict[str, list[str]], due_at: datetime, now: datetime) -> dict[str, int]:
    """Rows for a notice, a correction or a retraction: channel → targets, all due at ``due_at``."""
    for channel, names in targets.items():
        for chunk in (names[i:i + 2000] for i in range(0, len(names), 2000)):
            plan_chunk(conn, statement_id, revision, channel, chunk, due_at, now, generation, kind, notice)
    return {channel: len(names) for channel, names in targets.items() if names}


def holders(conn: Connection, statement_id: str, generation: int, embargoed: bool = True,
            channel: str = "email") -> list[str]:
    """Targets with a sent copy (the statement or a correction) of any revision in this generation; with
    ``embargoed``, only of an embargoed copy."""
    condition = [deliveries.c.statement_id == statement_id, deliveries.c.channel == channel,
                 deliveries.c.generation == generation, deliveries.c.status == DeliveryStatus.SENT.value,
                 deliveries.c.kind.in_((Kind.STATEMENT.value, Kind.CORRECTION.value))]
    if embargoed:
        condition.append(deliveries.c.variant == Variant.EMBARGOED.value)
    return list(conn.execute(select(deliveries.c.target).where(*condition).distinct()
                             .order_by(deliveries.c.target)).scalars())


def holders_of_revision(conn: Connection, statement_id: str, revision: int, generation: int) -> set[str]:
    """Targets that have (or are about to get) this revision on email: a copy or a correction, sent or not."""
    return set(conn.execute(select(deliveries.c.target).where(
        *_has_revision(statement_id, revision, generation))).scalars())


def holds_revision(address: ColumnElement[str], statement_id: str, revision: int,
                   generation: int) -> ColumnElement[bool]:
    """SQL condition: ``address`` is among :func:`holders_of_revision` (asked row by row, through an index)."""
    return select(deliveries.c.id).where(deliveries.c.target == address,
                                         *_has_revision(statement_id, revision, generation)).exists()


def _has_revision(statement_id: str, revision: int, generation: int) -> list:
    return [deliveries.c.statement_id == statement_id, deliveries.c.channel == "email",
            deliveries.c.revision == revision, deliveries.c.generation == generation,
            deliveries.c.kind.in_((Kind.STATEMENT.value, Kind.CORRECTION.value)),
            deliveries.c.status != DeliveryStatus.CANCELLED.value]


def unsent_embargoed(conn: Connection, statement_id: str, generation: int, embargo: datetime) -> int:
    """Email copies of the current schedule due before the embargo (embargoed ones) and not sent or failed yet."""
    return conn.execute(select(func.count()).select_from(deliveries).where(
        deliveries.c.statement_id == statement_id, deliveries.c.channel == "email",
        deliveries.c.generation == generation, deliveries.c.status.in_(ACTIVE), deliveries.c.due_at < embargo,
        deliveries.c.kind.in_((Kind.STATEMENT.value, Kind.CORRECTION.value)))).scalar_one()


def first_copies(conn: Connection, statement_id: str, channel: str, targets: Iterable[str],
                 generation: int | None = None) -> dict[str, str]:
    """Target → remote id of the earliest sent copy (the Message-ID a notice threads under, the post a
    correction edits)."""
    condition = [deliveries.c.statement_id == statement_id, deliveries.c.channel == channel,
                 deliveries.c.target.in_(list(targets)), deliveries.c.status == DeliveryStatus.SENT.value,
                 deliveries.c.kind == Kind.STATEMENT.value, deliveries.c.remote_id.is_not(None)]
    if generation is not None:
        condition.append(deliveries.c.generation == generation)
    found: dict[str, str] = {}
    for target, remote in conn.execute(select(deliveries.c.target, deliveries.c.remote_id).where(*condition)
                                       .order_by(deliveries.c.sent_at.desc(), deliveries.c.id.desc())):
        found[str(target)] = str(remote)  # the earliest wins: rows come newest first
    return found


def sent_of_kind(conn: Connection, statement_id: str, channel: str, kind: Kind) -> dict[str, list[str]]:
    """Target → remote ids of sent rows of one kind (the correction replies a retraction deletes)."""
    found: dict[str, list[str]] = {}
    for target, remote in conn.execute(select(deliveries.c.target, deliveries.c.remote_id).where(
            deliveries.c.statement_id == statement_id, deliveries.c.channel == channel,
            deliveries.c.kind == kind.value, deliveries.c.status == DeliveryStatus.SENT.value,
            deliveries.c.remote_id.is_not(None)).order_by(deliveries.c.id)):
        found.setdefault(str(target), []).append(str(remote))
    return found


_INSERT: dict[str, Callable[..., Any]] = {"sqlite": sqlite_insert, "postgresql": postgresql_insert}  # with ON CONFLICT


def _insert_ignoring_duplicates(conn: Connection, table):
    return _INSERT[conn.dialect.name](table).on_conflict_do_nothing()


def planned_channels(conn: Connection, statement_id: str, revision: int, generation: int = 1) -> set[str]:
    return set(conn.execute(select(plans.c.channel).where(
        plans.c.statement_id == statement_id, plans.c.revision == revision,
        plans.c.generation == generation)).scalars())


def reschedule_unsent(conn: Connection, statement_id: str, revision: int, due: dict[str, datetime],
                     now: datetime, lift: tuple[datetime, datetime] | None = None) -> None:
    """Move rows not yet sent to their channel's new due time; cancel rows of channels no longer chosen. With
    ``lift`` (old embargo, new embargo), rows due at the old lift (the released version) move to the new one."""
    unsent = [deliveries.c.statement_id == statement_id, deliveries.c.revision == revision,
              deliveries.c.status.in_(CLAIMABLE), deliveries.c.kind.in_((Kind.STATEMENT.value, Kind.CORRECTION.value))]
    conn.execute(update(deliveries).where(*unsent, deliveries.c.channel.not_in(list(due))).values(
        status=DeliveryStatus.CANCELLED.value, last_error="channel dropped by reschedule", updated_at=now))
    if lift is not None:
        conn.execute(update(deliveries).where(*unsent, deliveries.c.due_at == lift[0]).values(
            due_at=lift[1], next_attempt_at=lift[1], updated_at=now))
        unsent.append(deliveries.c.due_at != lift[1])
    for channel, due_at in due.items():
        conn.execute(update(deliveries).where(*unsent, deliveries.c.channel == channel).values(
            due_at=due_at, next_attempt_at=due_at, updated_at=now))


def _live():
    """SQL condition: a row that may still go out.

    - the copy or a correction: of the approved (or published) revision, in the current schedule of a statement
      that is scheduled or released;
    - an embargo change: in the current schedule of a statement still scheduled or released;
    - a withdrawal or a retraction notice: always (each is cancelled explicitly if overtaken).
    """
    current = [statements.c.id == deliveries.c.statement_id, statements.c.generation == deliveries.c.generation,
               statements.c.status.in_((StatementStatus.SCHEDULED.value, StatementStatus.RELEASED.value))]
    copy = select(statements.c.id).where(*current, or_(
        statements.c.approved_revision == deliveries.c.revision,
        statements.c.published_revision == deliveries.c.revision)).exists()
    return or_(
        deliveries.c.kind.in_((Kind.WITHDRAWAL.value, Kind.RETRACTION.value)),
        and_(deliveries.c.kind == Kind.EMBARGO_CHANGE.value, select(statements.c.id).where(*current).exists()),
        and_(deliveries.c.kind.in_((Kind.STATEMENT.value, Kind.CORRECTION.value)), copy),
    )


def _claimable(channel: str | None, now: datetime, cutoff: datetime, ahead: timedelta = NO_LEAD,
               worker: str | None = None, by_id: bool = False):
    """Rows a worker may take now: due and unsent (a first attempt up to ``ahead`` early), or abandoned while
    being sent; of a live, approved statement. ``by_id``: to check rows looked up by id on SQLite, whose planner
    would otherwise walk the whole due index (thousands of rows) rather than look up the few ids."""
    status = UnaryExpression(deliveries.c.status, operator=custom_op("+"), type_=deliveries.c.status.type) \
        if by_id else deliveries.c.status  # SQLite's unary + keeps an index from serving the column
    return and_(
        deliveries.c.channel == channel if channel is not None else true(),
        or_(and_(status == DeliveryStatus.PENDING.value, deliveries.c.next_attempt_at <= now + ahead),
            and_(status == DeliveryStatus.RETRYING.value, deliveries.c.next_attempt_at <= now),
            and_(status == DeliveryStatus.SENDING.value, _abandoned(now, cutoff, worker))),
        _live(),
    )


def _abandoned(now: datetime, cutoff: datetime, worker: str | None = None):
    """Rows being sent by a worker that stopped beating (heartbeat older than ``cutoff``), or whose lease ran
    out: a live worker renews the lease only while the batch is in hand. ``worker`` (the one claiming) is alive,
    whatever its heartbeat says: its own rows in flight are not taken for that, only once their lease ran out."""
    silent = ~alive(cutoff)
    if worker is not None:
        silent = and_(silent, or_(deliveries.c.worker_id.is_(None), deliveries.c.worker_id != worker))
    return or_(deliveries.c.lease_until < now, silent)


def candidates(conn: Connection, channel: str, now: datetime, cutoff: datetime, limit: int,
               ahead: timedelta = NO_LEAD, worker: str | None = None) -> list[int]:
    """Ids of up to ``limit`` claimable rows, soonest due first. One query per status, each an ordered walk of
    the (status, channel, next_attempt_at) index that stops at ``limit``: the cost does not grow with the list."""
    found: list[tuple[Any, Any]] = []  # (next_attempt_at, id)
    for status in (*CLAIMABLE, DeliveryStatus.SENDING.value):
        condition = [deliveries.c.status == status, deliveries.c.channel == channel, _live()]
        if status == DeliveryStatus.SENDING.value:
            condition.append(_abandoned(now, cutoff, worker))
        elif status == DeliveryStatus.PENDING.value:
            condition.append(deliveries.c.next_attempt_at <= now + ahead)
        else:
            condition.append(deliveries.c.next_attempt_at <= now)
        query = select(deliveries.c.next_attempt_at, deliveries.c.id).where(*condition).order_by(
            deliveries.c.next_attempt_at, deliveries.c.id).limit(limit)
        if conn.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True, of=deliveries)
        found.extend((row[0], row[1]) for row in conn.execute(query))
    return [i for _, i in sorted(found)[:limit]]


def claim(conn: Connection, channel: str, now: datetime, worker: str, limit: int, lease_seconds: float,
          cutoff: datetime, ahead: timedelta = NO_LEAD, found: list[int] | None = None) -> Batch:
    """Atomically take up to ``limit`` due rows of a channel. A row is never held by two workers at once.

    ``cutoff`` is the database's now less the worker timeout: rows of a worker not seen since are taken over.
    With ``ahead``, rows not yet tried are taken up to that much before they are due (the caller holds them
    until their time: ``Claimed.due_at``). Rows ``found`` beforehand by :func:`candidates`, outside the
    write (SQLite has one writer at a time), are each checked again here: only the still claimable are taken.
    """
    token = f"{worker}/{uuid.uuid4().hex[:12]}"
    ids = found if found is not None else candidates(conn, channel, now, cutoff, limit, ahead, worker)
    if not ids:
        return Batch(token)
    by_id = found is not None and conn.dialect.name == "sqlite"
    abandoned = conn.execute(select(deliveries.c.id, deliveries.c.claimed_by).where(
        deliveries.c.id.in_(ids), deliveries.c.status == DeliveryStatus.SENDING.value,
        _claimable(channel, now, cutoff, ahead, worker, by_id))).all()
    if abandoned:  # a worker died or stalled holding these rows: say so in their history
        conn.execute(insert(attempts), [{"delivery_id": i, "at": now, "outcome": "abandoned", "worker": worker,
                                         "detail": f"{holder} stopped; taken over"} for i, holder in abandoned])
    taken_over = case((deliveries.c.status == DeliveryStatus.SENDING.value, 1), else_=0)  # an abandoned attempt
    rows = conn.execute(update(deliveries).where(deliveries.c.id.in_(ids),
                                                 _claimable(channel, now, cutoff, ahead, worker, by_id)).values(
        status=DeliveryStatus.SENDING.value, claimed_by=token, worker_id=worker,
        lease_until=now + timedelta(seconds=lease_seconds), updated_at=now,
        attempts=deliveries.c.attempts + taken_over,
        attempts_since_requeue=deliveries.c.attempts_since_requeue + taken_over,
    ).returning(deliveries.c.id, deliveries.c.statement_id, deliveries.c.revision, deliveries.c.channel,
                deliveries.c.target, deliveries.c.attempts, deliveries.c.due_at,
                deliveries.c.attempts_since_requeue, deliveries.c.kind, deliveries.c.generation,
                deliveries.c.notice)).all()
    claimed = [Claimed(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], Kind(r[8]), r[9], r[10]) for r in rows]
    return Batch(token, sorted(claimed, key=lambda c: c.id))


def release(conn: Connection, batch: Batch, now: datetime) -> int:
    """Give back the rows of a claim that were never attempted (a stop, a crash of the channel loop)."""
    return conn.execute(update(deliveries).where(
        deliveries.c.claimed_by == batch.token, deliveries.c.status == DeliveryStatus.SENDING.value,
    ).values(status=case((deliveries.c.attempts > 0, DeliveryStatus.RETRYING.value),
                         else_=DeliveryStatus.PENDING.value),
             claimed_by=None, worker_id=None, lease_until=None, updated_at=now)).rowcount


def record(conn: Connection, batch: Batch, outcomes: Iterable[Outcome], policy: DeliveryPolicy, now: datetime,
           worker: str) -> dict[Result, int]:
    """Write each outcome as a status change plus one attempt row. Rows no longer held by this batch are left alone."""
    by_id = batch.by_id
    updates: list[dict] = []
    attempt_rows: list[dict] = []
    counts: dict[Result, int] = {}
    for outcome in outcomes:
        row = by_id.get(outcome.delivery_id)
        if row is None:
            continue
        counts[outcome.result] = counts.get(outcome.result, 0) + 1
        change = _transition(row, outcome, policy, now)
        change["b_id"] = row.id
        updates.append(change)
        attempt_rows.append({"delivery_id": row.id, "at": now, "outcome": _attempt_label(outcome),
                             "detail": outcome.detail, "worker": worker})
    if updates:
        _RECORD.execute_many(conn, ({**_EMPTY, **u, "b_token": batch.token} for u in updates))
        _ATTEMPT.execute_many(conn, attempt_rows)
    return counts


_COLUMNS = ("status", "attempts", "attempts_since_requeue", "last_error", "next_attempt_at", "sent_at", "remote_id", "variant",
            "lease_until", "claimed_by", "worker_id", "updated_at")
_EMPTY = dict.fromkeys(_COLUMNS)
# The statements of the hottest path, each outcome as it arrives: compiled once, run by the driver.
_RECORD = Prepared(update(deliveries).where(
    deliveries.c.id == bindparam("b_id"), deliveries.c.claimed_by == bindparam("b_token"),
    deliveries.c.status == DeliveryStatus.SENDING.value,
).values({key: bindparam(key) for key in _COLUMNS}))
_ATTEMPT = Prepared(insert(attempts).inline().values({key: bindparam(key) for key in
                                             ("delivery_id", "at", "outcome", "detail", "worker")}))


# A long list is planned in chunks of thousands of rows: the insert, compiled once per dialect, runs by the driver.
_PLANNED = ("statement_id", "revision", "channel", "target", "status", "attempts", "attempts_since_requeue", "due_at",
            "next_attempt_at", "updated_at", "kind", "generation", "notice")
_PLAN = {dialect: Prepared(make(deliveries).values({key: bindparam(key) for key in _PLANNED}).on_conflict_do_nothing())
         for dialect, make in _INSERT.items()}


def _attempt_label(outcome: Outcome) -> str:
    return "refused" if outcome.result is Result.REFUSED else outcome.result.value


def _transition(row: Claimed, outcome: Outcome, policy: DeliveryPolicy, now: datetime) -> dict:
    attempts_made = row.since_requeue + 1  # what max_attempts and the backoff count
    base = {"attempts": row.attempts + 1, "attempts_since_requeue": attempts_made, "updated_at": now,
            "lease_until": None, "claimed_by": None, "worker_id": None,
            "next_attempt_at": now, "last_error": outcome.detail, "sent_at": None, "remote_id": None,
            "variant": None}
    result = outcome.result
    if result is Result.SENT:
        return {**base, "status": DeliveryStatus.SENT.value, "sent_at": now, "remote_id": outcome.remote_id,
                "last_error": None, "variant": outcome.variant.value if outcome.variant else None}
    if result is Result.REFUSED:
        return {**base, "status": DeliveryStatus.PENDING.value, "attempts": row.attempts,
                "attempts_since_requeue": row.since_requeue, "next_attempt_at": outcome.not_before or now}
    if result is Result.CANCELLED:
        return {**base, "status": DeliveryStatus.CANCELLED.value, "attempts": row.attempts,
                "attempts_since_requeue": row.since_requeue}
    if result is Result.FAILED or (result is Result.RETRY and attempts_made >= policy.max_attempts):
        detail = outcome.detail if result is Result.FAILED else f"gave up after {attempts_made} attempts: {outcome.detail}"
        return {**base, "status": DeliveryStatus.FAILED.value, "last_error": detail}
    wait = max(policy.backoff(attempts_made), outcome.retry_after or 0)
    return {**base, "status": DeliveryStatus.RETRYING.value, "next_attempt_at": now + timedelta(seconds=wait)}


def cancel_unsent(conn: Connection, statement_id: str, now: datetime, reason: str,
                  before_revision: int | None = None, channel: str | None = None, target: str | None = None) -> int:
    """Cancel what has not gone out yet. Rows being sent right now finish; their outcome is still recorded."""
    condition = [deliveries.c.statement_id == statement_id, deliveries.c.status.in_(CLAIMABLE)]
    if before_revision is not None:
        condition.append(deliveries.c.revision < before_revision)
    if channel is not None:
        condition.append(deliveries.c.channel == channel)
    if target is not None:
        condition.append(deliveries.c.target == target)
    return conn.execute(update(deliveries).where(*condition).values(
        status=DeliveryStatus.CANCELLED.value, last_error=reason, updated_at=now)).rowcount


def requeue_failed(conn: Connection, statement_id: str, now: datetime, channels: Iterable[str] | None = None) -> int:
    """Put the statement's failed deliveries back in the queue, due now, with a fresh set of attempts (the total
    is kept)."""
    condition = [deliveries.c.statement_id == statement_id, deliveries.c.status == DeliveryStatus.FAILED.value,
                 _live()]  # never what a withdrawal, a retraction or a new schedule has overtaken
    if channels is not None:
        condition.append(deliveries.c.channel.in_(list(channels)))
    return conn.execute(update(deliveries).where(*condition).values(
        status=DeliveryStatus.RETRYING.value, attempts_since_requeue=0, next_attempt_at=now, updated_at=now,
    )).rowcount


def cancel_target(conn: Connection, channel: str, target: str, now: datetime, reason: str) -> int:
    return conn.execute(update(deliveries).where(
        deliveries.c.channel == channel, deliveries.c.target == target, deliveries.c.status.in_(CLAIMABLE),
    ).values(status=DeliveryStatus.CANCELLED.value, last_error=reason, updated_at=now)).rowcount


def due_channels(conn: Connection, now: datetime, cutoff: datetime, channels: Iterable[str] | None = None,
                 ahead: dict[str, timedelta] | None = None) -> list[str]:
    """The channels with a row to claim now (for those in ``ahead``, a first attempt due that much later). Give
    the channel names to keep this cheap on a long list."""
    if channels is None:
        channels = sorted(conn.execute(select(plans.c.channel).distinct()).scalars())
    ahead = ahead or {}
    return [name for name in channels if candidates(conn, name, now, cutoff, 1, ahead.get(name, NO_LEAD))]


def active_count(conn: Connection) -> int:
    return conn.execute(select(func.count()).select_from(deliveries).where(
        deliveries.c.status.in_(ACTIVE))).scalar_one()


def any_active(conn: Connection) -> bool:
    return conn.execute(select(deliveries.c.id).where(deliveries.c.status.in_(ACTIVE)).limit(1)).first() is not None


def next_attempts(conn: Connection, after: datetime, channels: Iterable[str] | None = None) -> list[datetime]:
    """For each channel, the soonest instant after ``after`` at which a pending or retrying row becomes due (for a
    precise wake-up). One index seek per status and channel."""
    if channels is None:
        channels = sorted(conn.execute(select(plans.c.channel).distinct()).scalars())
    instants = set()
    for channel in channels:
        for status in CLAIMABLE:
            soonest = conn.execute(select(func.min(deliveries.c.next_attempt_at)).where(
                deliveries.c.status == status, deliveries.c.channel == channel,
                deliveries.c.next_attempt_at > after)).scalar()
            if soonest is not None:
                instants.add(soonest)
    return sorted(instants)


def complete_plans(conn: Connection, now: datetime) -> list[dict]:
    """Mark plans with nothing left to do as complete; returns them with their final counts."""
    open_plans = conn.execute(select(plans).where(plans.c.completed_at.is_(None))).mappings().all()
    done = []
    for p in open_plans:
        copies = _copies(p["statement_id"], p["revision"], p["channel"], p["generation"])
        active = conn.execute(select(deliveries.c.id).where(deliveries.c.status.in_(ACTIVE), *copies).limit(1)).first()
        if active is not None:
            continue  # cheap while a long send is under way; counted once, when it is done
        counts: dict[str, int] = dict(conn.execute(select(deliveries.c.status, func.count()).where(*copies)
                                                   .group_by(deliveries.c.status)).all())
        if not any(counts.get(s, 0) for s in ACTIVE):
            marked = conn.execute(update(plans).where(
                plans.c.statement_id == p["statement_id"], plans.c.revision == p["revision"],
                plans.c.channel == p["channel"], plans.c.completed_at.is_(None)).values(completed_at=now))
            if marked.rowcount == 1:  # another worker may have marked it first
                done.append({**dict(p), "counts": counts})
    return done


def log_rows(conn: Connection, statement_id: str | None = None, since: datetime | None = None,
             until: datetime | None = None) -> Iterator[dict]:
    """Every delivery (of one statement); with ``since``/``until``, those sent in that span, or due in it if not
    sent."""
    query = select(
        deliveries.c.statement_id.label("statement"), deliveries.c.revision, deliveries.c.channel,
        deliveries.c.target, deliveries.c.status, deliveries.c.attempts, deliveries.c.last_error.label("error"),
        deliveries.c.due_at, deliveries.c.sent_at, deliveries.c.remote_id, deliveries.c.variant,
        deliveries.c.next_attempt_at, statements.c.embargo, deliveries.c.kind, deliveries.c.generation,
        deliveries.c.notice,
    ).join(statements, statements.c.id == deliveries.c.statement_id).order_by(
        deliveries.c.statement_id, deliveries.c.revision, deliveries.c.channel, deliveries.c.id)
    if statement_id is not None:
        query = query.where(deliveries.c.statement_id == statement_id)
    when = func.coalesce(deliveries.c.sent_at, deliveries.c.due_at)
    if since is not None:
        query = query.where(when >= since)
    if until is not None:
        query = query.where(when < until)
    for row in conn.execute(query).mappings():
        yield dict(row)


def attempt_rows(conn: Connection, statement_id: str) -> list[dict]:
    return [dict(r) for r in conn.execute(select(
        deliveries.c.channel, deliveries.c.target, deliveries.c.status, attempts.c.at, attempts.c.outcome,
        attempts.c.detail, attempts.c.worker).join(deliveries, deliveries.c.id == attempts.c.delivery_id).where(
        deliveries.c.statement_id == statement_id).order_by(attempts.c.at, attempts.c.id)).mappings()]


