"""The one source of "now". Tests and the embargo guard use a controllable clock."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta


def utcnow() -> datetime:
    return datetime.now(UTC)


class Clock:
    """Wall clock, aware UTC."""

    real_time = True  # it moves by itself: waiting for an instant makes sense

    def now(self) -> datetime:
        return utcnow()


class FixedClock(Clock):
    """A clock that stands still until moved. For tests and dry runs."""

    real_time = False

    def __init__(self, at: datetime):
        if at.tzinfo is None:
            raise ValueError("FixedClock needs an aware datetime")
        self._at = at.astimezone(UTC)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._at

    def set(self, at: datetime) -> None:
        with self._lock:
            self._at = at.astimezone(UTC)

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._at += timedelta(seconds=seconds)


def require_aware(value: datetime, what: str = "time") -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware")
    return value.astimezone(UTC)


def iso_z(value: datetime | None) -> str | None:
    """``YYYY-MM-DDTHH:MM:SSZ`` or None."""
    if value is None:
        return None
    return require_aware(value).strftime("%Y-%m-%dT%H:%M:%SZ")


def clock_time(value: datetime) -> str:
    """``00:01``, or ``00:01:30`` when the instant has seconds: an embargo is never shown earlier than it is."""
    return f"{value:%H:%M}" if value.second == 0 and value.microsecond == 0 else f"{value:%H:%M:%S}"
