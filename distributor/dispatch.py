"""The pipeline, top to bottom: due statements → plan targets → claim → render once → deliver → record."""

from __future__ import annotations

import logging
import os
import socket
from datetime import datetime
from itertools import groupby

from distributor import deliveries, workflow
from distributor.channels import Channel, Context, Job
from distributor.outcomes import Outcome, Result
from distributor.statements.model import StatementStatus
from distributor.store import reading
from distributor.workflow import Action

log = logging.getLogger("distributor.run")


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class Dispatcher:
    def __init__(self, context: Context, channels: dict[str, Channel], worker: str | None = None):
        self.context = context
        self.engine = context.engine
        self.clock = context.clock
        self.policy = context.config.delivery
        self.channels = channels
        self.worker = worker or worker_name()
        self.actor = f"scheduler@{self.worker}"
        self._warned: set[tuple[str, str]] = set()

    def job(self, conn, statement_id: str, revision: int) -> Job:
        row = workflow.get(conn, statement_id)
        imported = workflow.imported_at(conn, statement_id)
        return Job(statement_id, revision, workflow.content(conn, statement_id, revision), row["embargo"],
                   row["send_embargoed_at"], first_created=imported.get(1), version_created=imported.get(revision))

    # -- statements: plan what is due, lift what is past its embargo ----------------------------------------
    def advance(self) -> int:
        """Plan every channel whose time has come and release statements at their embargo. Returns lifts."""
        now = self.clock.now()
        lifted = 0
        with reading(self.engine) as conn:
            work = [(row, self.unplanned(conn, row, now)) for row in workflow.scheduled(conn)]
        for candidate, names in work:
            if not names and candidate["embargo"] > now:
                continue
            with self.engine.begin() as conn:
                row = workflow.lock(conn, candidate["id"])  # another worker may have got here first
                if row is None or row["status"] != StatementStatus.SCHEDULED.value \
                        or row["revision"] != candidate["revision"]:
                    continue
                job = self.job(conn, row["id"], row["revision"])
                for name in names:
                    channel = self.channels[name]
                    planned = deliveries.plan(conn, job.statement_id, job.revision, name, channel.targets(conn, job),
                                              channel.due_at(job.embargo, job.send_embargoed_at), now)
                    if planned is not None:
                        log.info("%s r%d: planned %d %s deliveries", job.statement_id, job.revision, planned, name)
                        workflow.record(conn, Action.PLANNED, self.actor, now, job.statement_id, job.revision,
                                        channel=name, targets=planned)
                if row["embargo"] <= now:
                    workflow.release(conn, row, self.actor, now)
                    lifted += 1
                    log.info("%s: embargo lifted at %s (%.3fs after %s)", row["id"], now.isoformat(),
                             (now - row["embargo"]).total_seconds(), row["embargo"].isoformat())
        return lifted

    def unplanned(self, conn, row: dict, now: datetime) -> list[str]:
        """The statement's channels that are due by ``now`` and have no delivery rows yet."""
        planned = deliveries.planned_channels(conn, row["id"], row["revision"])
        names = []
        for name in row["channels"] or []:
            channel = self.channels.get(name)
            if channel is None:
                if (row["id"], name) not in self._warned:
                    self._warned.add((row["id"], name))
                    log.warning("%s: channel %r is not configured here; its deliveries wait", row["id"], name)
                continue
            if name not in planned and channel.due_at(row["embargo"], row["send_embargoed_at"]) <= now:
                names.append(name)
        return names

    # -- deliveries: one channel, batch after batch until nothing is due -------------------------------------
    def deliver(self, name: str) -> dict[Result, int]:
        channel = self.channels[name]
        totals: dict[Result, int] = {}
        jobs: dict[tuple[str, int], Job] = {}
        rendered: dict[tuple[str, int, str], object] = {}
        while True:
            now = self.clock.now()
            with self.engine.begin() as conn:
                batch = deliveries.claim(conn, name, now, self.worker, self.policy.batch_size,
                                         self.policy.lease_seconds)
                for key in {(r.statement_id, r.revision) for r in batch.rows} - set(jobs):
                    jobs[key] = self.job(conn, *key)
            if not batch.rows:
                break
            outcomes: list[Outcome] = []
            for key, group in groupby(batch.rows, key=lambda r: (r.statement_id, r.revision)):
                rows = list(group)
                job = jobs[key]
                try:
                    variant = channel.variant(job, now)
                    if (*key, variant) not in rendered:
                        rendered[(*key, variant)] = channel.render(job, variant)
                    outcomes += channel.send(job, rendered[(*key, variant)], rows)
                except Exception as exc:  # a bug or a broken template must not strand the rows
                    log.exception("%s: %s r%d: delivery failed", name, *key)
                    outcomes += [Outcome(r.id, Result.RETRY, f"internal error: {exc}") for r in rows]
            with self.engine.begin() as conn:
                counts = deliveries.record(conn, batch, outcomes, self.policy, self.clock.now(), self.worker)
            for result, n in counts.items():
                totals[result] = totals.get(result, 0) + n
            log.info("%s: batch of %d: %s", name, len(batch.rows),
                     ", ".join(f"{r.value} {n}" for r, n in sorted(counts.items())))
            self.log_failures(name, batch, outcomes)
            if all(o.result in (Result.TRANSPORT, Result.REFUSED) for o in outcomes):
                break  # nothing will succeed right now; the retry schedule brings the rows back
        self.finish_plans()
        return totals

    @staticmethod
    def log_failures(name: str, batch, outcomes: list[Outcome]) -> None:
        """Each permanent failure on its own line; retries and transport faults once per distinct reason."""
        targets = {row.id: row.target for row in batch.rows}
        grouped: dict[tuple[Result, str], int] = {}
        for outcome in outcomes:
            if outcome.result is Result.FAILED:
                log.warning("%s: %s failed: %s", name, targets.get(outcome.delivery_id), outcome.detail)
            elif outcome.result in (Result.RETRY, Result.TRANSPORT):
                key = (outcome.result, outcome.detail or "")
                grouped[key] = grouped.get(key, 0) + 1
        for (result, detail), count in grouped.items():
            log.warning("%s: %d deliveries to retry (%s): %s", name, count, result.value, detail)

    def finish_plans(self) -> None:
        now = self.clock.now()
        with self.engine.begin() as conn:
            for plan in deliveries.complete_plans(conn, now):
                workflow.record(conn, Action.DELIVERED, self.actor, now, plan["statement_id"], plan["revision"],
                                channel=plan["channel"], **plan["counts"])
                log.info("%s r%d: %s complete: %s", plan["statement_id"], plan["revision"], plan["channel"],
                         ", ".join(f"{k} {v}" for k, v in sorted(plan["counts"].items())))

    # -- what the scheduler needs to know ---------------------------------------------------------------------
    def upcoming(self) -> list[datetime]:
        """Future instants at which something becomes due: send times, lifts, retries."""
        now = self.clock.now()
        with reading(self.engine) as conn:
            instants = {t for r in workflow.scheduled(conn) for t in (r["send_embargoed_at"], r["embargo"]) if t}
            instants.update(deliveries.next_attempts(conn))
        return sorted(t for t in instants if t > now)

    def due_channels(self) -> list[str]:
        """Channels with rows to claim now (pending or retrying and due, or sending past their lease)."""
        with reading(self.engine) as conn:
            return [name for name in deliveries.due_channels(conn, self.clock.now()) if name in self.channels]

    def idle(self) -> bool:
        with reading(self.engine) as conn:
            return not workflow.scheduled(conn) and deliveries.active_count(conn) == 0
