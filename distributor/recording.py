"""Record each outcome as it arrives: a writer thread commits small groups while the channel goes on sending.

A channel reports an outcome the moment the remote side answers and gets a :class:`Receipt`. The SMTP pool waits
for its previous receipt before it lets the relay accept the next message, so at a crash at most one accepted
message per connection has no row saying ``sent``.

A commit costs far more than a row, so the writer keeps one connection (and SQLite's page cache with it) for the
whole pass, and with a channel of several lanes waits up to ``LINGER_SECONDS`` for the other lanes' outcomes
before it commits: each lane is meanwhile busy with the next message's envelope, so the wait costs it nothing.
"""

from __future__ import annotations

import logging
import queue
import threading
import time

from sqlalchemy.engine import Connection, Engine

from distributor import deliveries
from distributor.clock import Clock
from distributor.config import DeliveryPolicy
from distributor.deliveries import Batch
from distributor.outcomes import Outcome, Receipt, Result
from distributor.store.prepared import through_driver

log = logging.getLogger("distributor.run")

GROUP_LIMIT = 500
COMMIT_TRIES = 5
# SQLite: the recorder's own connection copies the WAL into the database only past this many pages (1,000 is
# SQLite's default). The commit that checkpoints waits for the copy, and every connection waits for its receipt
# meanwhile; the claim's and the other writers' commits checkpoint in between, after their write lock is released.
CHECKPOINT_PAGES = 10_000
LINGER_SECONDS = 0.001  # how long the writer waits for the other lanes' outcomes, so that one commit serves them


class Recorder:
    """One writer thread; use as a context manager around one channel's delivery pass."""

    def __init__(self, engine: Engine, policy: DeliveryPolicy, clock: Clock, worker: str, lanes: int = 1,
                 linger: float = LINGER_SECONDS):
        self.engine = engine
        self.lanes = lanes  # with several, a group waits up to ``linger`` for as many outcomes as there are lanes
        self.linger = linger
        self.policy = policy
        self.clock = clock
        self.worker = worker
        self.counts: dict[Result, int] = {}
        self._queue: queue.SimpleQueue[tuple[Batch, Outcome, Receipt] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._write, name="recorder", daemon=True)
        self._conn: Connection | None = None  # the writer's own, kept while it works: its page cache stays warm

    def __enter__(self) -> Recorder:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._queue.put(None)
        self._thread.join()

    def reporter(self, batch: Batch, stopping: threading.Event):
        """The ``report`` function for one claimed batch: each row's first outcome counts, later ones are ignored.
        Once ``stopping`` is set, receipts ask the channel to hand over nothing more."""
        reported: set[int] = set()
        lock = threading.Lock()

        def report(outcome: Outcome) -> Receipt:
            with lock:
                first = outcome.delivery_id not in reported
                reported.add(outcome.delivery_id)
            receipt = Receipt(stop=stopping.is_set())
            if not first:
                receipt.settle(True)
                return receipt
            self._queue.put((batch, outcome, receipt))
            return receipt

        return report

    def flush(self) -> None:
        """Wait until everything reported so far is recorded."""
        marker = Receipt()
        self._queue.put((Batch(""), Outcome(-1, Result.RETRY), marker))
        marker.wait()

    def _write(self) -> None:
        try:
            self._write_all()
        finally:
            self._disconnect()

    def _connect(self) -> Connection:
        conn = self.engine.connect()
        if self.engine.dialect.name == "sqlite":
            conn.detach()  # its own, closed at the end: the setting below never reaches the pool
            through_driver(conn, f"PRAGMA wal_autocheckpoint={CHECKPOINT_PAGES}")
        return conn

    def _disconnect(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _write_all(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            group = [item]
            deadline = time.monotonic() + self.linger
            while len(group) < GROUP_LIMIT:
                wait = deadline - time.monotonic() if len(group) < self.lanes else 0
                try:
                    more = self._queue.get(timeout=wait) if wait > 0 else self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self._queue.put(None)  # finish this group, then stop
                    break
                group.append(more)
            ok = self._commit(group)
            for _, _, receipt in group:
                receipt.settle(ok)

    def _commit(self, group: list[tuple[Batch, Outcome, Receipt]]) -> bool:
        by_batch: dict[str, tuple[Batch, list[Outcome]]] = {}
        for batch, outcome, _ in group:
            if batch.token:
                by_batch.setdefault(batch.token, (batch, []))[1].append(outcome)
        if not by_batch:
            return True
        for attempt in range(COMMIT_TRIES):
            try:
                if self._conn is None:
                    self._conn = self._connect()
                with self._conn.begin():
                    now = self.clock.now()
                    counts = [deliveries.record(self._conn, batch, outcomes, self.policy, now, self.worker)
                              for batch, outcomes in by_batch.values()]
            except Exception as exc:  # the database is away: try again shortly, then give up on this group
                log.warning("recording %d outcomes failed (%s); %s", len(group), exc.__class__.__name__,
                            "retrying" if attempt + 1 < COMMIT_TRIES else "giving up")
                time.sleep(0.1 * 2 ** attempt)
                continue
            for part in counts:
                for result, n in part.items():
                    self.counts[result] = self.counts.get(result, 0) + n
            return True
        return False
