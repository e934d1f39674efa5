"""The fixed vocabulary of delivery results. Imports nothing of the project, so every layer may use it."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import Enum


class Variant(str, Enum):
    """Which version of the statement a delivery carried."""

    EMBARGOED = "embargoed"  # before the lift, with the embargo notice
    RELEASED = "released"    # the public version, at or after the lift


class Kind(str, Enum):
    """What a delivery carries: the statement itself, or news about one a target already has."""

    STATEMENT = "statement"          # the copy (embargoed or released)
    CORRECTION = "correction"        # a corrected revision, to those who had an earlier one
    WITHDRAWAL = "withdrawal"        # an embargoed statement will not be published
    EMBARGO_CHANGE = "embargo-change"
    RETRACTION = "retraction"        # a released statement is withdrawn from publication (a kill)

    @property
    def notice_only(self) -> bool:
        """A notice that carries no statement text."""
        return self in (Kind.WITHDRAWAL, Kind.EMBARGO_CHANGE, Kind.RETRACTION)


def publication_tag(kind: Kind, generation: int, notice: int) -> str:
    """What tells one publication of a statement revision from another, in Message-IDs and idempotency keys:
    empty for the copy of the first schedule (whose ids keep the form they always had)."""
    if kind is Kind.STATEMENT and generation == 1:
        return ""
    return f"{kind.value}.g{generation}" + (f".n{notice}" if notice else "")


class Result(str, Enum):
    """What a channel says about one target. The delivery state machine turns it into a status."""

    SENT = "sent"            # the remote side accepted it
    RETRY = "retry"          # temporary refusal for this target (SMTP 4xx, HTTP 408/429/5xx, a reply cut off)
    FAILED = "failed"        # permanent refusal for this target
    # the session or connection failed (SMTP login, MAIL FROM, relay down; an HTTP endpoint refused, reset, not
    # resolved, a TLS failure, a timeout): retry, never exhausts, and counts toward the transport alert
    TRANSPORT = "transport"
    REFUSED = "refused"      # the embargo guard: not yet, try again at the embargo
    CANCELLED = "cancelled"  # no longer wanted (suppressed, withdrawn)


@dataclass(frozen=True)
class Claimed:
    """One delivery row as a worker holds it."""

    id: int
    statement_id: str
    revision: int
    channel: str
    target: str
    attempts: int            # every attempt ever made, abandoned ones included
    due_at: datetime
    since_requeue: int = 0   # attempts since it was last put back in the queue by hand; max_attempts counts these
    kind: Kind = Kind.STATEMENT
    generation: int = 1      # of the statement's schedule
    notice: int = 0          # the notice's number; 0 for a copy

    @property
    def tag(self) -> str:
        return publication_tag(self.kind, self.generation, self.notice)

    @property
    def publication(self) -> tuple[str, int, str, int, int]:
        """What one rendering serves: (statement, revision, kind, generation, notice)."""
        return (self.statement_id, self.revision, self.kind.value, self.generation, self.notice)


@dataclass(frozen=True)
class Outcome:
    """What happened to one claimed row."""

    delivery_id: int
    result: Result
    detail: str | None = None
    remote_id: str | None = None
    retry_after: float | None = None     # seconds, from the remote side (Retry-After)
    not_before: datetime | None = None   # REFUSED: the embargo
    variant: Variant | None = None       # what was sent


class Receipt:
    """Handed back for each reported outcome; :meth:`wait` returns once it is recorded (True) or cannot be.

    ``stop`` asks the channel to hand over nothing more: the worker is stopping, and the rows not yet attempted go
    back to the queue at once.
    """

    __slots__ = ("_done", "ok", "stop")

    def __init__(self, stop: bool = False) -> None:
        self._done = threading.Event()
        self.ok = False
        self.stop = stop

    def settle(self, ok: bool) -> None:
        self.ok = ok
        self._done.set()

    def wait(self, timeout: float | None = None) -> bool:
        self._done.wait(timeout)
        return self.ok


RECORDED = Receipt()
RECORDED.settle(True)

# What a channel calls with each outcome as soon as it is known: recording starts at once, in the background.
Report = Callable[[Outcome], Receipt]
