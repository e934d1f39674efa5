"""What an action will do, told before it is done: the summary that the web app's confirmation and the command
line's ``--dry-run`` show, and the fingerprint that lets the action go ahead only on the state the summary described.

The summary is not a guess: the action itself runs, inside a transaction that is then rolled back, and the summary
counts what it planned (the holders told, the copies cancelled, each channel's notices). A refusal is the action's
own refusal.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, func, select

from distributor import channels as channel_registry
from distributor import workflow
from distributor.errors import StateError, UserError
from distributor.outcomes import Kind, Variant
from distributor.render import when
from distributor.statements.model import StatementStatus as S
from distributor.store.schema import deliveries, notices

CONFIRMED = ("withdraw", "reschedule", "correct", "retract", "schedule")  # schedule: only with an override


class Changed(StateError):
    """The statement changed between the summary and the confirmation: the summary no longer says what would
    happen."""


def fingerprint(conn: Connection, statement_id: str) -> str:
    """A hash of what a summary depends on: status, revision, approval, embargo, generation and last notice."""
    row = workflow.get(conn, statement_id)
    last = conn.execute(select(func.max(notices.c.number)).where(notices.c.statement_id == statement_id)).scalar()
    facts = [row["status"], row["revision"], row["approved_revision"], row["published_revision"],
             row["embargo"].isoformat() if row["embargo"] else None, row["generation"], last or 0]
    return hashlib.sha256(json.dumps(facts).encode()).hexdigest()[:32]


def check(conn: Connection, statement_id: str, expected: str | None) -> None:
    """Refuse to act unless the statement is as the confirmed summary saw it (the row is locked first)."""
    workflow.lock(conn, statement_id)
    if not expected or fingerprint(conn, statement_id) != expected:
        raise Changed(f"statement {statement_id} changed since the summary was shown (approved, scheduled, moved "
                      f"or notified meanwhile); look at it again before you act", where=statement_id)


@dataclass
class Summary:
    action: str
    statement_id: str
    title: str
    status: str
    fingerprint: str
    refusal: str | None = None
    error: UserError | None = field(default=None, repr=False)  # the refusal as the action raised it
    told: int = 0                      # holders of a copy who get a notice
    subject: str | None = None         # the subject line of that notice
    cancelled: int = 0                 # copies and posts not yet sent, now never sent
    channels: list[tuple[str, str]] = field(default_factory=list)  # (channel, what happens on it)
    embargo: datetime | None = None    # the embargo after the action
    previous: datetime | None = None   # the embargo before it (or the file's, for an override)
    previous_label: str = "now"
    zones: list[str] = field(default_factory=list)

    def times(self, instant: datetime | None) -> list[str]:
        """An instant in UTC and in every zone the office shows."""
        if instant is None:
            return []
        return [when(instant)] + [when(instant, ZoneInfo(z)) for z in self.zones]

    @property
    def lines(self) -> list[str]:
        """The summary in sentences, as both front ends show it."""
        if self.refusal:
            return [self.refusal]
        said = []
        if self.action in ("withdraw", "reschedule", "correct", "retract"):
            said.append(f"{workflow.journalists(self.told)} holding a copy will be told"
                        + (f", with the subject \u201c{self.subject}\u201d." if self.subject and self.told else ".")
                        if self.told else "Nobody holds a copy, so nobody is told.")
        if self.cancelled or self.action in ("withdraw", "retract"):
            said.append(f"{self.cancelled} cop{'y' if self.cancelled == 1 else 'ies'} not yet sent will never be "
                        f"sent.")
        for channel, what in self.channels:
            said.append(f"{channel}: {what}.")
        if self.embargo and self.action in ("reschedule", "schedule"):
            said.append("The embargo will be " + " = ".join(self.times(self.embargo)) + ".")
            if self.previous and self.previous != self.embargo:
                said.append(f"It is {self.previous_label} " + " = ".join(self.times(self.previous)) + ".")
        return said


def summarise(app, statement_id: str, action: str, run: Callable[[Connection], object]) -> Summary:
    """Run ``run`` (the action, exactly as it would be done) and roll it back, reporting what it did."""
    channels = channel_registry.build(app.context())
    with app.engine.connect() as conn:
        transaction = conn.begin()
        try:
            before = workflow.get(conn, statement_id)
            summary = Summary(action, statement_id, workflow.content(conn, statement_id, before["revision"]).title,
                              before["status"], fingerprint(conn, statement_id),
                              zones=[z.key for z in (app.config.office.timezone, *app.config.office.also_show)])
            summary.previous = before["embargo"]
            if summary.previous is None or action == "schedule":
                summary.previous = workflow.content(conn, statement_id, before["revision"]).embargo
                summary.previous_label = "the file's embargo:" if summary.previous else "now"
            last = conn.execute(select(func.max(notices.c.number)).where(
                notices.c.statement_id == statement_id)).scalar() or 0
            cancelled_before = _cancelled(conn, statement_id)
            try:
                run(conn)
            except UserError as exc:
                summary.refusal, summary.error = str(exc), exc
                return summary
            after = workflow.get(conn, statement_id)
            summary.embargo = after["embargo"]
            summary.cancelled = _cancelled(conn, statement_id) - cancelled_before
            _notices(conn, summary, statement_id, last, channels)
            _public(summary, after, channels, action)
            return summary
        finally:
            transaction.rollback()


def _cancelled(conn: Connection, statement_id: str) -> int:
    return conn.execute(select(func.count()).select_from(deliveries).where(
        deliveries.c.statement_id == statement_id, deliveries.c.status == "cancelled")).scalar_one()


def _notices(conn: Connection, summary: Summary, statement_id: str, last: int, channels: dict) -> None:
    """What the notices planned by the action carry, per channel, and the email's subject."""
    from distributor.dispatch import Dispatcher

    for found in conn.execute(select(notices.c.number, notices.c.kind, notices.c.revision).where(
            notices.c.statement_id == statement_id, notices.c.number > last)).all():
        number, kind, revision = int(found[0]), str(found[1]), int(found[2])
        per_channel: dict[str, list[str]] = {}
        for channel, target in conn.execute(select(deliveries.c.channel, deliveries.c.target).where(
                deliveries.c.statement_id == statement_id, deliveries.c.notice == number).order_by(
                deliveries.c.channel, deliveries.c.target)):
            per_channel.setdefault(str(channel), []).append(str(target))
        summary.told += len(per_channel.pop("email", []))
        email = channels.get("email")
        if email is not None and summary.told:
            job = Dispatcher.job(conn, statement_id, revision, kind=Kind(kind), notice=number)
            variant = Variant.EMBARGOED if Kind(kind) in (Kind.WITHDRAWAL, Kind.EMBARGO_CHANGE) else Variant.RELEASED
            summary.subject = email.render(job, variant).subject
        verb = {Kind.CORRECTION.value: "updated with the correction", Kind.RETRACTION.value: "taken down"}.get(
            kind, "told")
        for channel, targets in sorted(per_channel.items()):
            summary.channels.append((channel, f"{verb} at {_named(targets)}"))


def _named(targets: list[str]) -> str:
    shown = ", ".join(targets[:5])
    return shown + (f" and {len(targets) - 5} more" if len(targets) > 5 else "")


def _public(summary: Summary, after: dict, channels: dict, action: str) -> None:
    """What happens on the public channels that no notice covers."""
    public = [name for name in after["channels"] or [] if name in channels and channels[name].public]
    noted = {name for name, _ in summary.channels}
    for name in public:
        if name in noted:
            continue
        if action in ("schedule", "reschedule") and after["status"] == S.SCHEDULED.value:
            summary.channels.append((name, f"goes public at the lift, {when(after['embargo'])}"))
        elif action == "withdraw":
            summary.channels.append((name, "was never public; nothing will be posted"))
