"""APScheduler wiring. Jobs live in memory only and are re-derived from the database at start and every sweep.

A date job fires at each due instant (send time, embargo, retry) for precision; a sweep every second catches
anything scheduled meanwhile or missed (misfires included). Each channel delivers on its own thread, so a long
email send never delays a lift.
"""

from __future__ import annotations

import logging
import signal
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timezone

from apscheduler.schedulers.background import BackgroundScheduler

from distributor.dispatch import Dispatcher

log = logging.getLogger("distributor.run")


class Runner:
    def __init__(self, dispatcher: Dispatcher, sweep_seconds: float = 1.0, horizon: int = 50):
        self.dispatcher = dispatcher
        self.sweep_seconds = sweep_seconds
        self.horizon = horizon
        self.stop = threading.Event()
        self._advance_lock = threading.Lock()
        self._channel_locks = {name: threading.Lock() for name in dispatcher.channels}
        self._pool = ThreadPoolExecutor(max_workers=max(len(dispatcher.channels), 1), thread_name_prefix="channel")
        self._scheduler = BackgroundScheduler(timezone=timezone.utc, job_defaults={
            "coalesce": True, "max_instances": 1, "misfire_grace_time": None})
        self._known: set[str] = set()
        self.failures = 0

    def tick(self) -> None:
        """Advance statements, then start every channel that is not already delivering."""
        try:
            with self._advance_lock:
                self.dispatcher.advance()
        except Exception:
            self.failures += 1
            log.exception("advancing statements failed; the next sweep tries again")
        try:
            due = self.dispatcher.due_channels()
        except Exception:
            log.exception("reading due deliveries failed")
            return
        for name in due:
            lock = self._channel_locks[name]
            if lock.acquire(blocking=False):
                self._pool.submit(self._deliver, name, lock)

    def _deliver(self, name: str, lock: threading.Lock) -> None:
        try:
            self.dispatcher.deliver(name)
        except Exception:
            self.failures += 1
            log.exception("%s: delivery loop failed; the next sweep tries again", name)
        finally:
            lock.release()

    def busy(self) -> bool:
        return any(lock.locked() for lock in self._channel_locks.values()) or self._advance_lock.locked()

    def sweep(self) -> None:
        if self._exit_when_idle and not self.busy() and self.dispatcher.idle():
            log.info("nothing pending, sending, retrying or scheduled: exiting")
            self.stop.set()
            return
        self.tick()
        self.sync_jobs()

    def sync_jobs(self) -> None:
        """One date job per upcoming instant; APScheduler never holds anything the database does not."""
        try:
            upcoming = self.dispatcher.upcoming()[: self.horizon]
        except Exception:
            log.exception("reading upcoming instants failed")
            return
        wanted = {f"due@{t.isoformat()}": t for t in upcoming}
        for job in self._scheduler.get_jobs():
            if job.id.startswith("due@") and job.id not in wanted:
                job.remove()
        existing = {job.id for job in self._scheduler.get_jobs()}
        for job_id, instant in wanted.items():
            if job_id not in existing:
                self._scheduler.add_job(self.tick, "date", run_date=instant, id=job_id)

    def run(self, exit_when_idle: bool = False) -> int:
        self._exit_when_idle = exit_when_idle
        for channel in self.dispatcher.channels.values():
            channel.open()
        self._scheduler.add_job(self.sweep, "interval", seconds=self.sweep_seconds, id="sweep",
                                next_run_time=self.dispatcher.clock.now())
        previous = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                previous[sig] = signal.signal(sig, lambda *_: self.stop.set())
        log.info("scheduler running (worker %s, channels %s)", self.dispatcher.worker,
                 ", ".join(self.dispatcher.channels) or "none")
        self._scheduler.start()
        try:
            while not self.stop.wait(0.2):
                pass
        finally:
            self._scheduler.shutdown(wait=True)
            self._pool.shutdown(wait=True)
            for channel in self.dispatcher.channels.values():
                channel.close()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return 0
