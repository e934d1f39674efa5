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


class Result(str, Enum):
    """What a channel says about one target. The delivery state machine turns it into a status."""

    SENT = "sent"            # the remote side accepted it
    RETRY = "retry"          # temporary refusal for this target (SMTP 4xx, HTTP 429/5xx, timeout)
    FAILED = "failed"        # permanent refusal for this target
    TRANSPORT = "transport"  # the session failed (login, MAIL FROM, relay down): retry, never exhausts
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
