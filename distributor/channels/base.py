"""The channel interface, and the embargo guard every public delivery passes through.

A channel turns a statement into what its targets receive (``render``, once per revision and variant) and hands
it to its targets (``deliver``, per batch). Callers use :meth:`Channel.send`, never ``deliver`` directly: ``send``
is where a public channel refuses to act before the embargo, whoever called it.
"""

from __future__ import annotations

import hashlib
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Connection, select
from sqlalchemy.engine import Engine

from distributor.clock import Clock
from distributor.config import Config, Table
from distributor.outcomes import Claimed, Kind, Outcome, Receipt, Report, Result, Variant, publication_tag
from distributor.render import Renderer
from distributor.statements.model import Statement, StatementStatus
from distributor.store import reading
from distributor.store.schema import statements

T = TypeVar("T")

log = logging.getLogger("distributor.channels")

EMBARGOED = Variant.EMBARGOED
RELEASED = Variant.RELEASED


@dataclass(frozen=True)
class Context:
    """What channels get from the running system."""

    config: Config
    engine: Engine
    clock: Clock
    renderer: Renderer
    database_clock: Clock | None = None  # PostgreSQL's clock: an embargo is past only when both clocks agree


def embargo_now(context: Context) -> datetime:
    """Now, for every embargo decision: the earlier of this worker's clock and the database's."""
    now = context.clock.now()
    if context.database_clock is not None:
        now = min(now, context.database_clock.now())
    return now


@dataclass(frozen=True)
class Notice:
    """A withdrawal, embargo change, correction or retraction, as the command that made it recorded it."""

    number: int
    kind: Kind
    note: str | None          # for the journalists: the only free text a notice shows
    detail: dict              # the facts it states (for an embargo change: "previous" and "embargo")
    at: datetime
    version: int = 1          # the ninjs version of the item it publishes (corrections and retractions count)


@dataclass(frozen=True)
class Job:
    """One statement revision as the scheduler hands it to a channel: its copy, or a notice about it."""

    statement_id: str
    revision: int
    statement: Statement
    embargo: datetime | None
    send_embargoed_at: datetime | None
    first_created: datetime | None = None    # when revision 1 was imported
    version_created: datetime | None = None  # when this revision was imported
    kind: Kind = Kind.STATEMENT
    generation: int = 1
    notice: Notice | None = None
    lists: tuple[str, ...] = ()  # the recipient lists chosen for its email; none: channels.email.list

    @property
    def tag(self) -> str:
        return publication_tag(self.kind, self.generation, self.notice.number if self.notice else 0)


def idempotency_key(item: Job | Claimed, target: str) -> str:
    """Stable per (statement revision, publication, target): a retried request is recognisably the same request;
    a correction or a retraction is another request."""
    tag = f"/{item.tag}" if item.tag else ""
    return hashlib.sha256(f"{item.statement_id}/r{item.revision}{tag}/{target}".encode()).hexdigest()[:32]


def tables_of(channels: Table, key: str, network: str | None = None) -> list[Table]:
    """The array of tables ``[[channels.<key>]]``, or only those whose ``network`` is the given one."""
    found = channels.tables(key)
    if network is None:
        return found
    return [t for t in found if t.data.get("network") == network]


class Channel(ABC):
    """One way a statement reaches its targets. A channel must:

    - ``configure``: read and validate its own ``[channels.*]`` table (every error names its key);
    - ``targets``: list its targets for a statement (rows are planned once per revision);
    - ``render``: build what all targets share, once per revision and variant, with no secret and no connection;
    - ``deliver``: hand it to each target and ``report`` each row's outcome (a :class:`Result`) as soon as the
      remote side answers, never counting a target as sent before the remote side accepted it;
    - ``open``/``close``: take and give back long-lived resources (connections, sessions, secrets), closing only
      what it opened; ``deliver`` also works unopened.

    Callers use :meth:`send`, never ``deliver``: ``send`` holds the embargo guard and gives every row an outcome.
    Public channels (``public = True``) never act before the embargo, whoever calls them. A channel whose
    ``render`` needs nothing that the lift itself writes may set ``ahead = True``: the dispatcher then claims and
    renders its rows a moment before the embargo and hands them to ``send`` at the instant, so that a lift costs
    only the guard and the request.

    A transport fault (``Result.TRANSPORT``) is about the channel's one relay unless ``faults_per_target`` is set:
    then each target is reached on its own (a wire endpoint, a social account), and the dispatcher keeps the
    transport alert per target (``transport:<channel>:<target>``), so that one target sending does not hide another
    that cannot be reached.
    """

    name: str = ""        # the ``channel`` column of delivery rows
    public: bool = True   # public channels never act before the embargo
    ahead: bool = False   # its rows may be claimed and rendered shortly before their time, then held until it
    faults_per_target: bool = False  # a transport fault is one target's (its endpoint), not the channel's relay

    def __init__(self, settings: Any, context: Context):
        self.settings = settings
        self.context = context
        self.clock = context.clock

    @property
    def lanes(self) -> int:
        """How many targets this channel has in flight at once (each waiting for its outcome to be recorded)."""
        return 1

    # -- configuration: each channel reads and validates its own table --------------------------------------
    @classmethod
    @abstractmethod
    def configure(cls, channels: Table, config_so_far: Any) -> Any | None:
        """Parse this channel's part of ``[channels]``; None when it is not configured."""

    # -- planning --------------------------------------------------------------------------------------------
    @abstractmethod
    def targets(self, conn: Connection, job: Job) -> Iterable[str]:
        """Every target of this statement on this channel."""

    def release_targets(self, conn: Connection, job: Job) -> Iterable[str]:
        """Targets of a channel that sends ahead of the embargo who get the released version at the lift."""
        return ()

    @classmethod
    def due_at(cls, embargo: datetime, send_embargoed_at: datetime | None) -> datetime:
        """Public channels are due at the embargo; the others when embargoed copies go out. Builds nothing."""
        return embargo if cls.public or send_embargoed_at is None else send_embargoed_at

    # -- rendering and delivery ------------------------------------------------------------------------------
    def embargo_now(self) -> datetime:
        return embargo_now(self.context)

    def variant(self, job: Job, now: datetime) -> Variant:
        """Embargoed copies sent after the lift go out as the released version."""
        if self.public or job.embargo is None or now >= job.embargo:
            return RELEASED
        return EMBARGOED

    @abstractmethod
    def render(self, job: Job, variant: Variant) -> Any:
        """What all targets share; called once per (revision, variant)."""

    def preview(self, job: Job, variant: Variant) -> str:
        """What one target would get, as text, through the same render code; nothing is sent or recorded."""
        raise NotImplementedError(f"{self.name} has no preview")

    @abstractmethod
    def deliver(self, job: Job, rendered: Any, rows: list[Claimed], report: Report) -> None:
        """Hand the rendered statement to each target and ``report`` each row's outcome as soon as it is known."""

    def each_target(self, rows: list[Claimed], report: Report, handle: Callable[[Claimed], Outcome | None]) -> None:
        """Call ``handle`` for each row and report the outcome it returns (None: it reports later itself).

        An error while preparing one target is that target's failure alone; the others go on."""
        for _ in self.prepared(rows, report, handle):
            pass

    def prepared(self, rows: list[Claimed], report: Report, make: Callable[[Claimed], T | Outcome | None]) -> Iterator[T]:
        """What ``make`` makes of each row, made as it is taken; an :class:`Outcome` it returns is reported instead
        (None: it reports later itself). An error while preparing one target is that target's failure alone."""
        for row in rows:
            try:
                made = make(row)
            except Exception as exc:
                log.exception("%s: cannot prepare %s for %r", self.name, row.statement_id, row.target)
                made = Outcome(row.id, Result.FAILED, f"cannot prepare this target: {exc.__class__.__name__}: {exc}")
            if isinstance(made, Outcome):
                report(made)
            elif made is not None:
                yield made

    def open(self) -> None:  # noqa: B027 - optional hook, a no-op by default
        """Open long-lived connections. Channels that hold none need not override it."""

    def close(self) -> None:  # noqa: B027 - optional hook, a no-op by default
        """Close only what :meth:`open` or :meth:`deliver` opened."""

    # -- the one entry point ---------------------------------------------------------------------------------
    def send(self, job: Job, rendered: Any, rows: list[Claimed], report: Report) -> None:
        """Deliver through the embargo guard. Every row gets exactly one outcome, even if ``deliver`` raises,
        unless the worker is stopping: then the rows not attempted are left for the dispatcher to give back."""
        reported: set[int] = set()
        stopped = False

        def tracked(outcome: Outcome) -> Receipt:
            nonlocal stopped
            reported.add(outcome.delivery_id)
            receipt = report(outcome)
            stopped = stopped or receipt.stop
            return receipt

        refusal = self.embargo_refusal(job, rows)
        if refusal is not None:
            for outcome in refusal:
                report(outcome)
            return
        try:
            self.deliver(job, rendered, rows, tracked)
        except Exception as exc:  # a bug in one channel must not strand its rows
            log.exception("%s: delivery of %s r%d failed", self.name, job.statement_id, job.revision)
            detail = f"internal error: {exc.__class__.__name__}: {exc}"
        else:
            if stopped:
                return
            detail = f"{self.name}: no outcome reported"
        for row in rows:
            if row.id not in reported:
                report(Outcome(row.id, Result.RETRY, detail))

    def embargo_refusal(self, job: Job, rows: list[Claimed]) -> list[Outcome] | None:
        """The embargo guard: a public channel refuses every row while the statement is under embargo, and
        cancels what a withdrawal, a retraction or a new schedule has overtaken. The embargo and the status are
        read from the database now, never taken from the job, which may have been read before they changed."""
        if not self.public:
            return None
        current = self.current(job)
        overtaken = current.overtakes(job)
        if overtaken:
            log.warning("%s: cancelled %d deliveries of %s: %s", self.name, len(rows), job.statement_id, overtaken)
            return [Outcome(row.id, Result.CANCELLED, overtaken) for row in rows]
        embargo = current.embargo
        now = self.embargo_now()
        if embargo is not None and now >= embargo:
            return None
        log.warning("%s: refused %d deliveries of %s: embargo until %s (now %s)", self.name, len(rows),
                    job.statement_id, embargo, now)
        return [Outcome(row.id, Result.REFUSED, "refused: embargo", not_before=embargo) for row in rows]

    def current(self, job: Job) -> Current:
        """The statement as the database has it now (the job's own view, for one it does not hold: a preview)."""
        with reading(self.context.engine) as conn:
            row = conn.execute(select(statements.c.embargo, statements.c.status, statements.c.generation).where(
                statements.c.id == job.statement_id)).first()
        if row is None:
            return Current(job.embargo, None, job.generation)
        return Current(row[0], row[1], row[2])


@dataclass(frozen=True)
class Current:
    """A statement's embargo, status and schedule as a channel reads them just before it acts."""

    embargo: datetime | None
    status: str | None
    generation: int

    def overtakes(self, job: Job) -> str | None:
        """Why this job must not go out any more, or None: its statement was withdrawn or retracted, or scheduled
        afresh since. Notices of a withdrawal or a retraction always go."""
        if job.kind in (Kind.WITHDRAWAL, Kind.RETRACTION) or self.status is None:
            return None
        if self.status == StatementStatus.WITHDRAWN.value:
            return "withdrawn"
        if self.status == StatementStatus.RETRACTED.value:
            return "retracted"
        if self.generation != job.generation:
            return "overtaken by a new schedule"
        if self.status not in (StatementStatus.SCHEDULED.value, StatementStatus.RELEASED.value):
            return f"the statement is {self.status} now"
        return None
