"""Workers announce themselves with a heartbeat in the database.

Each `distributor run` process has a row in ``workers``. Its heartbeat, every third of the shortest limit, renews
``last_seen`` (by the database's clock, never the worker's) and extends the leases of the batches it is sending, so
a live worker's rows are never taken, however long its send takes; rows of a batch it no longer has in hand are
not renewed, and once their lease runs out any worker takes them. A worker whose heartbeat is older than
``delivery.worker_timeout_seconds`` is presumed dead: the claim query hands its rows to others.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, and_, exists, insert, select, text, update
from sqlalchemy.engine import Engine

from distributor.clock import Clock
from distributor.config import DeliveryPolicy
from distributor.store.schema import deliveries, workers

log = logging.getLogger("distributor.run")


def new_id() -> str:
    """host:pid:random. The random part keeps ids unique in containers, where every worker is pid 1."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


def db_now(conn: Connection) -> datetime:
    """The database's clock, so that workers on machines with different clocks judge staleness alike."""
    if conn.dialect.name == "postgresql":
        return conn.execute(text("SELECT clock_timestamp()")).scalar_one().astimezone(UTC)
    raw: str = conn.execute(text("SELECT strftime('%Y-%m-%d %H:%M:%f', 'now')")).scalar_one()
    return datetime.fromisoformat(raw).replace(tzinfo=UTC)


class DatabaseClock(Clock):
    """The database server's clock (PostgreSQL): one host's fast clock cannot decide a lift alone."""

    def __init__(self, engine: Engine):
        self.engine = engine

    def now(self) -> datetime:
        with self.engine.connect() as conn:
            return db_now(conn)


def database_clock(engine: Engine) -> Clock | None:
    """The clock the embargo is also judged by: the server's on PostgreSQL. None on SQLite, whose database and
    worker share one machine's clock."""
    return DatabaseClock(engine) if engine.dialect.name == "postgresql" else None


def alive(cutoff: datetime):
    """SQL condition: the worker holding a delivery row has beaten since ``cutoff``."""
    return exists().where(and_(workers.c.id == deliveries.c.worker_id, workers.c.last_seen >= cutoff,
                               workers.c.stopped_at.is_(None)))


def listing(conn: Connection) -> tuple[datetime, list[dict]]:
    """Every known worker, newest first, with the database's now to judge them by."""
    rows = conn.execute(select(workers).order_by(workers.c.started_at.desc())).mappings()
    return db_now(conn), [dict(r) for r in rows]


class Heartbeat:
    """Registers a worker and keeps it alive from a thread of its own."""

    def __init__(self, engine: Engine, clock: Clock, policy: DeliveryPolicy, worker_id: str | None = None):
        self.engine = engine
        self.clock = clock
        self.policy = policy
        self.id = worker_id or new_id()
        self.interval = min(policy.worker_timeout_seconds, policy.lease_seconds) / 3
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.registered = False
        self._in_hand: set[str] = set()  # the claim tokens of the batches being sent now
        self._in_hand_lock = threading.Lock()

    def register(self) -> None:
        if self.registered:
            return
        self.registered = True
        with self.engine.begin() as conn:
            now = db_now(conn)
            conn.execute(insert(workers).values(id=self.id, host=socket.gethostname(), pid=os.getpid(),
                                                started_at=now, last_seen=now))

    @contextmanager
    def in_hand(self, token: str) -> Iterator[None]:
        """While the block runs, beats renew the lease of the rows claimed under ``token``. Rows of a batch that
        ended without being given back (the database was away at that moment) are renewed no more: their lease
        runs out and any worker, this one too, takes them again."""
        with self._in_hand_lock:
            self._in_hand.add(token)
        try:
            yield
        finally:
            with self._in_hand_lock:
                self._in_hand.discard(token)

    def beat(self) -> int:
        """Renew ``last_seen`` and the leases of the rows of the batches in hand. Returns the rows renewed."""
        with self._in_hand_lock:
            tokens = sorted(self._in_hand)
        with self.engine.begin() as conn:
            conn.execute(update(workers).where(workers.c.id == self.id).values(last_seen=db_now(conn)))
            if not tokens:
                return 0
            return conn.execute(update(deliveries).where(
                deliveries.c.claimed_by.in_(tokens), deliveries.c.status == "sending",
            ).values(lease_until=self.clock.now() + timedelta(seconds=self.policy.lease_seconds))).rowcount

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.beat()
            except Exception as exc:  # the database may be away for a moment; the next beat tries again
                log.warning("heartbeat failed: %s", exc.__class__.__name__)

    def start(self) -> None:
        self.register()
        self._thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if not self.registered:
            return
        with self.engine.begin() as conn:
            conn.execute(update(workers).where(workers.c.id == self.id).values(stopped_at=db_now(conn)))
