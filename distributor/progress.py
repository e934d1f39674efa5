"""Progress for long work: a live line on a terminal, plain log lines otherwise."""

from __future__ import annotations

import logging
import sys
import time

log = logging.getLogger("distributor")


class Progress:
    def __init__(self, label: str, total: int | None = None, every: float = 5.0, stream=None):
        self.label = label
        self.total = total
        self.done = 0
        self.every = every
        self.stream = stream or sys.stderr
        self.live = hasattr(self.stream, "isatty") and self.stream.isatty() and log.isEnabledFor(logging.INFO)
        self._last = 0.0
        self._start = time.monotonic()

    def __enter__(self) -> Progress:
        return self

    def advance(self, n: int = 1) -> None:
        self.done += n
        now = time.monotonic()
        if self.live and now - self._last >= 0.1:
            self._last = now
            self.stream.write(f"\r{self._text()}")
            self.stream.flush()
        elif not self.live and now - self._last >= self.every:
            self._last = now
            log.info("%s", self._text())

    def _text(self) -> str:
        total = f"/{self.total}" if self.total else ""
        return f"{self.label}: {self.done}{total} ({time.monotonic() - self._start:.1f}s)"

    def __exit__(self, *exc) -> None:
        if self.live:
            self.stream.write(f"\r{self._text()}\n")
            self.stream.flush()
