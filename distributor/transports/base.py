"""What a mail transport takes and gives back."""

from __future__ import annotations

import os
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from distributor.outcomes import Receipt, Result


@dataclass(frozen=True)
class Envelope:
    key: int              # the delivery row
    sender: str
    recipient: str
    data: bytes           # the whole message, CRLF line ends
    message_id: str


@dataclass(frozen=True)
class Handed:
    """What happened to one envelope."""

    key: int
    result: Result
    detail: str | None = None


# Called with each envelope's fate as soon as it is known; the receipt says when it is recorded.
Handover = Callable[[Handed], Receipt]


class MailTransport(Protocol):
    def open(self) -> None: ...
    def close(self) -> None: ...

    def send_many(self, envelopes: list[Envelope], handover: Handover) -> None:
        """Send each envelope, calling ``handover`` with its fate. Before handing the relay a further message on
        the same connection, wait for the previous one's receipt: at most one accepted message per connection is
        ever unrecorded."""


class RateLimit:
    """At most ``per_second`` events a second across threads; None means no limit."""

    def __init__(self, per_second: float | None):
        self.interval = 1.0 / per_second if per_second else 0.0
        self._next = time.monotonic()
        self._lock = threading.Lock()

    def wait(self) -> None:
        if not self.interval:
            return
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + self.interval
        if start > now:
            time.sleep(start - now)


def write_atomically(path: Path, data: bytes) -> None:
    """Write, then rename: readers see the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
