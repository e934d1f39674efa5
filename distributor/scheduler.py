"""APScheduler wiring. Jobs live in memory only; the database is the only source of truth.

Two kinds of job, each with ``max_instances=1``:

- ``advance`` runs every second (the sweep) and is moved forward to the next due instant (a send time, an
  embargo, a retry, a lift less the lead of channels that prepare ahead), so a lift happens on time; it lifts
  embargoes, plans the public channels and wakes channels;
- ``plan`` plans the long lists (the embargoed email) in chunks, beside the sweep, so a lift never waits for it;
- ``deliver:<channel>``, one per channel, delivers until nothing is due. It is woken by moving its next run time
  to now, so a long email send never delays a lift on another channel.

Listeners keep count of running jobs and log job errors; a job that fails runs again at its next wake.
"""

from __future__ import annotations

import gc
import logging
import signal
import sys
import threading
from datetime import UTC, timedelta

from apscheduler.events import (
    EVENT_JOB_ERROR,
    EVENT_JOB_EXECUTED,
    EVENT_JOB_MAX_INSTANCES,
    EVENT_JOB_SUBMITTED,
    JobEvent,
    JobExecutionEvent,
)
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.background import BackgroundScheduler

from distributor.dispatch import Dispatcher

log = logging.getLogger("distributor.run")

ADVANCE = "advance"
PLAN = "plan"
SWITCH_INTERVAL_SECONDS = 0.0005
IDLE_DELIVER_SECONDS = 60  # a channel's job also runs this often unwoken, as a safety net


class _SkippedRunFilter(logging.Filter):
    """A wake that finds the channel busy is expected (it runs again after); don't report it as a warning."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "maximum number of running instances reached" not in record.getMessage()


class Runner:
    def __init__(self, dispatcher: Dispatcher, sweep_seconds: float = 1.0):
        self.dispatcher = dispatcher
        self.sweep_seconds = sweep_seconds
        self.stop = threading.Event()
        self.exit_when_idle = False
        self.scheduler = BackgroundScheduler(
            timezone=UTC,
            executors={"default": ThreadPoolExecutor(len(dispatcher.channels) + 2)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None})
        self._running: dict[str, int] = {}
        self._rewake: set[str] = set()
        self._lock = threading.Condition()  # notified whenever a job finishes

    # -- the jobs ------------------------------------------------------------------------------------------
    def advance(self) -> None:
        """Lift, plan, wake the channels with work, and come back at the next due instant."""
        if self.exit_when_idle and not self.busy() and not self.dispatcher.lists_to_plan() and self.dispatcher.idle():
            log.info("nothing pending, sending, retrying or scheduled: exiting")
            self.stop.set()
            return
        try:
            self.dispatcher.advance(defer_lists=True)
        except Exception:  # a failed lift or plan must not keep due deliveries waiting
            log.exception("advancing statements failed; the next sweep tries again")
        lifted = set(self.dispatcher.planned_now)
        for name in lifted:  # what was just lifted goes out first, before any other query
            self.wake(f"deliver:{name}")
        if self.dispatcher.lists_to_plan():
            self.wake(PLAN)
        self.wake_due_channels(skip=lifted)
        self.come_back_at_next_instant()

    def plan(self) -> None:
        """Plan the long lists that came due, beside the sweep: a lift never waits for them."""
        try:
            self.dispatcher.plan_lists()
        except Exception:
            log.exception("planning failed; the next sweep tries again")
        self.wake_due_channels()

    def wake_due_channels(self, skip: set[str] | frozenset[str] = frozenset()) -> None:
        try:
            due = self.dispatcher.due_channels()
        except Exception:
            log.exception("reading due deliveries failed; the next sweep tries again")
            due = []
        for name in due:
            if name not in skip:
                self.wake(f"deliver:{name}")

    def come_back_at_next_instant(self) -> None:
        now = self.dispatcher.clock.now()
        upcoming = self.dispatcher.upcoming()
        if upcoming and upcoming[0] < now + timedelta(seconds=self.sweep_seconds):
            self._move(ADVANCE, upcoming[0])

    def wake(self, job_id: str) -> None:
        with self._lock:
            if self._running.get(job_id, 0) > 0:
                self._rewake.add(job_id)  # it runs again as soon as it finishes
                return
        self._move(job_id, self.dispatcher.clock.now())

    def finish_running(self, timeout: float = 600.0) -> bool:
        """Wait until no job runs (at most ``timeout`` seconds). True if none does."""
        with self._lock:
            return self._lock.wait_for(lambda: not any(n > 0 for n in self._running.values()), timeout)

    def _move(self, job_id: str, when) -> None:
        try:
            self.scheduler.modify_job(job_id, next_run_time=when)
        except JobLookupError:  # shutting down
            pass

    # -- what the listeners see ----------------------------------------------------------------------------
    def _on_event(self, event: JobEvent) -> None:
        job_id = event.job_id
        with self._lock:
            if event.code == EVENT_JOB_SUBMITTED:
                self._running[job_id] = self._running.get(job_id, 0) + 1
                return
            if event.code == EVENT_JOB_MAX_INSTANCES:
                self._rewake.add(job_id)
                return
            again = job_id in self._rewake and job_id != ADVANCE  # the sweep comes back on its own
            self._rewake.discard(job_id)
        if event.code == EVENT_JOB_ERROR and isinstance(event, JobExecutionEvent):
            log.error("%s failed: %s: %s; it runs again at its next wake", job_id,
                      event.exception.__class__.__name__, event.exception)
        if again and not self.stop.is_set():
            self._move(job_id, self.dispatcher.clock.now())
        with self._lock:  # counted as finished only once it has moved itself: a stop waits for that too
            self._running[job_id] = self._running.get(job_id, 0) - 1
            self._lock.notify_all()

    def busy(self) -> bool:
        with self._lock:
            return any(n > 0 for job_id, n in self._running.items() if job_id != ADVANCE)

    # -- the process ---------------------------------------------------------------------------------------
    def run(self, exit_when_idle: bool = False) -> int:
        self.exit_when_idle = exit_when_idle
        # A lift must not wait behind a send for the interpreter: with the default 5 ms switch interval, a thread
        # woken at the embargo waits up to 5 ms per step while the SMTP and recording threads run.
        sys.setswitchinterval(SWITCH_INTERVAL_SECONDS)
        previous = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                previous[sig] = signal.signal(sig, lambda *_: self.stop.set())
        self.dispatcher.open()
        # What start-up made (modules, SQLAlchemy's tables and caches) lives as long as the process. Frozen, a full
        # collection no longer walks it: it takes a few ms instead of 30 to 40, which a lift would otherwise wait.
        gc.collect()
        gc.freeze()
        now = self.dispatcher.clock.now()
        logging.getLogger("apscheduler.scheduler").addFilter(_SkippedRunFilter())
        self.scheduler.add_listener(self._on_event, EVENT_JOB_SUBMITTED | EVENT_JOB_EXECUTED | EVENT_JOB_ERROR
                                    | EVENT_JOB_MAX_INSTANCES)
        self.scheduler.add_job(self.advance, "interval", seconds=self.sweep_seconds, id=ADVANCE, next_run_time=now)
        self.scheduler.add_job(self.plan, "interval", seconds=IDLE_DELIVER_SECONDS, id=PLAN)
        for name in self.dispatcher.channels:
            self.scheduler.add_job(self.dispatcher.deliver, "interval", args=[name], id=f"deliver:{name}",
                                   seconds=IDLE_DELIVER_SECONDS, next_run_time=now)
        log.info("scheduler running (worker %s, channels %s)", self.dispatcher.worker,
                 ", ".join(self.dispatcher.channels) or "none")
        self.scheduler.start()
        try:
            while not self.stop.wait(0.2):
                pass
        finally:
            self.stop.set()
            self.dispatcher.stopping.set()  # deliveries stop claiming; what is on the wire finishes and is recorded
            self.finish_running()
            # APScheduler holds its job store lock while it waits for running jobs, and moving a job takes that
            # lock: the jobs have finished above, so shutting down does not wait for any of them
            self.scheduler.shutdown(wait=False)
            self.dispatcher.close()
            gc.unfreeze()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return 0
