"""The pipeline, top to bottom: due statements → plan targets → claim → render once → deliver → record."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import replace
from datetime import datetime, timedelta
from itertools import groupby, islice

from distributor import alerts, deliveries, workflow
from distributor.channels import Channel, Context, Job
from distributor.channels.base import Notice, embargo_now
from distributor.clock import clock_time
from distributor.outcomes import Claimed, Kind, Outcome, Report, Result
from distributor.recording import Recorder
from distributor.statements.model import StatementStatus
from distributor.store import reading
from distributor.workers import Heartbeat, db_now
from distributor.workflow import Action

log = logging.getLogger("distributor.run")

PLAN_CHUNK = 2000
MAX_SKEW_SECONDS = 1.0  # a worker further than this from the database's clock lifts nothing
LEAD_SECONDS = 1.0  # a channel that prepares ahead is planned, claimed and rendered this long before the lift


def batched(items: Iterable[str], size: int) -> Iterator[list[str]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


class Dispatcher:
    """One worker's pipeline. :meth:`open` registers the worker (heartbeat) and opens the channels."""

    def __init__(self, context: Context, channels: dict[str, Channel], worker: str | None = None,
                 lead_seconds: float = LEAD_SECONDS):
        self.context = context
        self.engine = context.engine
        self.clock = context.clock
        # with a clock that does not move by itself (tests, dry runs) nothing is prepared ahead: nothing could wait
        self.lead = timedelta(seconds=lead_seconds if self.clock.real_time else 0)
        self.policy = context.config.delivery
        self.channels = channels
        self.heartbeat = Heartbeat(self.engine, self.clock, self.policy, worker)
        self.worker = self.heartbeat.id
        self.actor = f"scheduler@{self.worker}"
        self.stopping = threading.Event()
        self.clock_agreed = True
        self.planned_now: set[str] = set()
        self._opened: list[Channel] = []
        self._warned: set[tuple[str, str]] = set()
        self._lists: dict[tuple[str, int, str], dict] = {}  # long lists due, left by advance() for plan_lists()
        self._lists_lock = threading.Lock()
        self._alerts_to_send: list[str] = []
        self._faulty_since: dict[str, datetime] = {}  # alert key → first of an unbroken run of transport faults

    def open(self) -> None:
        """Register this worker and open every channel; if one fails, close what was opened and re-raise."""
        self.heartbeat.start()
        self.clock_agrees()
        try:
            for channel in self.channels.values():
                channel.open()
                self._opened.append(channel)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Close only what :meth:`open` opened, then mark the worker stopped."""
        while self._opened:
            channel = self._opened.pop()
            try:
                channel.close()
            except Exception:
                log.exception("%s: closing failed", channel.name)
        self.heartbeat.stop()

    @staticmethod
    def job(conn, statement_id: str, revision: int, kind: Kind = Kind.STATEMENT, generation: int | None = None,
            notice: int = 0) -> Job:
        """What a channel needs to render one publication: the revision's content, its times, and the notice."""
        row = workflow.get(conn, statement_id)
        imported = workflow.imported_at(conn, statement_id)
        found = None
        if notice:
            n = workflow.notice(conn, statement_id, notice)
            found = Notice(notice, Kind(n["kind"]), n["note"], n["detail"] or {}, n["created_at"],
                           workflow.version(conn, statement_id, notice))
        return Job(statement_id, revision, workflow.content(conn, statement_id, revision), row["embargo"],
                   row["send_embargoed_at"], first_created=imported.get(1), version_created=imported.get(revision),
                   kind=kind, generation=row["generation"] if generation is None else generation, notice=found,
                   lists=tuple(row.get("lists") or ()))

    # -- statements: lift what is past its embargo, plan what is due -----------------------------------------
    def advance(self, defer_lists: bool = False) -> int:
        """Release statements at their embargo and plan every channel whose time has come. Returns lifts.

        Public channels (a handful of targets) are planned with the lift; long lists are planned afterwards in
        chunks, each its own transaction, so no write holds the database for long. With ``defer_lists`` they are
        left for :meth:`plan_lists`, so that planning 60,000 addresses never keeps the next lift waiting.
        """
        self.planned_now = set()  # public channels planned by this call: the scheduler wakes them first
        lifting = self.clock_agrees()
        now = embargo_now(self.context)
        with reading(self.engine) as conn:
            work = [(row, self.unplanned(conn, row, now)) for row in workflow.scheduled(conn, due_by=now + self.lead)]
        lifted = 0
        later: list[tuple[dict, str]] = []
        for candidate, names in work:
            if not names and (candidate["embargo"] > now or not lifting):
                continue
            with self.engine.begin() as conn:
                row = workflow.lock(conn, candidate["id"])  # another worker may have got here first
                if row is None or row["status"] != StatementStatus.SCHEDULED.value \
                        or row["revision"] != candidate["revision"]:
                    continue
                for name in names:
                    if not self.channels[name].public:
                        later.append((row, name))
                    elif lifting:
                        self.plan(conn, row, name, now)
                        self.planned_now.add(name)
                if lifting and row["embargo"] <= now:
                    workflow.release(conn, row, self.actor, now)
                    lifted += 1
                    log.info("%s: embargo lifted at %s (%.3fs after %s)", row["id"], now.isoformat(),
                             (now - row["embargo"]).total_seconds(), row["embargo"].isoformat())
                    self.unsent_at_lift(conn, row, now)
        self.resolve_lift_alerts(now)
        if defer_lists:
            with self._lists_lock:
                for row, name in later:
                    self._lists.setdefault((row["id"], row["revision"], name), row)
        else:
            for row, name in later:
                self.plan_in_chunks(row, name, now)
        return lifted

    # -- alerts ----------------------------------------------------------------------------------------------
    def alert(self, conn, key: str, text: str, now: datetime, **about) -> None:
        if alerts.raise_alert(conn, key, text, self.actor, now, **about):
            self._alerts_to_send.append(text)

    def send_alerts(self) -> None:
        """Hand the alerts raised (and committed) so far to ``delivery.alert_command``."""
        while self._alerts_to_send:
            alerts.notify(self.policy.alert_command, self._alerts_to_send.pop(0))

    def unsent_at_lift(self, conn, row: dict, now: datetime) -> None:
        """An alert when journalists on the list had not all got the embargoed copy by the lift."""
        unsent = deliveries.unsent_embargoed(conn, row["id"], row["generation"], row["embargo"])
        if unsent:
            self.alert(conn, f"unsent-at-lift:{row['id']}",
                       f"{row['id']}: {unsent} embargoed copies were still unsent when the embargo lifted at "
                       f"{row['embargo']:%Y-%m-%d} {clock_time(row['embargo'])} UTC; they go out as the released "
                       f"version. What to do: look at the statement's failures and overdue copies (its page, or "
                       f"its report); retry the failed ones once their cause is fixed", now,
                       statement_id=row["id"], channel="email")

    def resolve_lift_alerts(self, now: datetime) -> None:
        with reading(self.engine) as conn:  # most sweeps: one read, nothing open
            open_now = alerts.open_alerts(conn, "unsent-at-lift:")
        if open_now:
            self.resolve_open(open_now, now)
        self.send_alerts()

    def resolve_open(self, open_now: list[dict], now: datetime) -> None:
        with self.engine.begin() as conn:
            for alert in open_now:
                row = workflow.get(conn, alert["statement_id"])
                if row["embargo"] is None or not deliveries.unsent_embargoed(conn, row["id"], row["generation"],
                                                                               row["embargo"]):
                    alerts.resolve(conn, alert["key"], self.actor, now, "every copy has been sent or has failed")

    def transport_health(self, name: str, counts: dict[Result, int], last_fault: str | None,
                         target: str | None = None) -> None:
        """Alert when a channel (or, given ``target``, one target of a channel whose targets are reached each on
        its own) has met only transport faults for ``delivery.alert_after_seconds``: key ``transport:<channel>``,
        or ``transport:<channel>:<target>``. ``counts`` are the outcomes of one call of :meth:`deliver`; a call
        with anything but transport faults neither starts nor breaks the run. The alert is over once it sends
        again."""
        now = self.clock.now()
        key = f"transport:{name}" if target is None else f"transport:{name}:{target}"
        what = name if target is None else f"{name} ({target})"
        if counts.get(Result.SENT):
            self._faulty_since.pop(key, None)
            with reading(self.engine) as conn:  # raised by this worker or another
                raised = alerts.is_open(conn, key)
            if raised:
                with self.engine.begin() as conn:
                    alerts.resolve(conn, key, self.actor, now, f"{what} is sending again")
            return
        if not counts or not set(counts) <= {Result.TRANSPORT}:
            return
        since = self._faulty_since.setdefault(key, now)
        if (now - since).total_seconds() >= self.policy.alert_after_seconds:
            with self.engine.begin() as conn:
                self.alert(conn, key, f"{what}: nothing but transport faults for "
                                      f"{(now - since).total_seconds():.0f} s: {last_fault}. What to do: "
                                      f"{alerts.advice(last_fault)}", now, channel=name)
            self.send_alerts()

    def lists_to_plan(self) -> bool:
        with self._lists_lock:
            return bool(self._lists)

    def plan_lists(self) -> int:
        """Plan the long lists that :meth:`advance` left for later. Returns how many were planned."""
        with self._lists_lock:
            work, self._lists = self._lists, {}
        for (_, _, name), row in work.items():
            self.plan_in_chunks(row, name, self.clock.now())
        return len(work)

    def clock_agrees(self) -> bool:
        """Whether this worker's clock is within MAX_SKEW of the database's. While it is not, an ERROR is logged
        at every sweep and no embargo is lifted."""
        database = self.context.database_clock
        if database is None:
            return True
        skew = (self.clock.now() - database.now()).total_seconds()
        agrees = abs(skew) <= MAX_SKEW_SECONDS
        if not agrees:
            log.error("this worker's clock is %.3f s %s the database's (more than %g s): no embargo is lifted "
                      "until they agree; fix the clock (NTP)", abs(skew), "ahead of" if skew > 0 else "behind",
                      MAX_SKEW_SECONDS)
        elif not self.clock_agreed:
            log.warning("this worker's clock agrees with the database's again (%.3f s apart)", abs(skew))
        self.clock_agreed = agrees
        return agrees

    def plan(self, conn, row: dict, name: str, now: datetime) -> None:
        """All targets of a small channel in the caller's transaction."""
        channel = self.channels[name]
        job = self.job(conn, row["id"], row["revision"])
        assert job.embargo is not None  # only scheduled statements are planned
        if name not in deliveries.planned_channels(conn, job.statement_id, job.revision, job.generation):
            deliveries.plan_chunk(conn, job.statement_id, job.revision, name, list(channel.release_targets(conn, job)),
                                  job.embargo, now, job.generation)
        planned = deliveries.plan(conn, job.statement_id, job.revision, name, channel.targets(conn, job),
                                  channel.due_at(job.embargo, job.send_embargoed_at), now, job.generation)
        self.planned(conn, job, name, planned, now)

    def plan_in_chunks(self, row: dict, name: str, now: datetime) -> None:
        """A long list: targets streamed from a read, written in chunks; an interrupted plan resumes."""
        channel = self.channels[name]
        with reading(self.engine) as source:
            job = self.job(source, row["id"], row["revision"])
            assert job.embargo is not None  # only scheduled statements are planned
            due = channel.due_at(job.embargo, job.send_embargoed_at)
            for chunk in batched(channel.targets(source, job), PLAN_CHUNK):
                with self.engine.begin() as conn:
                    deliveries.plan_chunk(conn, job.statement_id, job.revision, name, list(chunk), due, now,
                                          job.generation)
            for chunk in batched(channel.release_targets(source, job), PLAN_CHUNK):  # the rest, at the lift
                with self.engine.begin() as conn:
                    deliveries.plan_chunk(conn, job.statement_id, job.revision, name, list(chunk), job.embargo, now,
                                          job.generation)
        with self.engine.begin() as conn:
            current = workflow.lock(conn, job.statement_id)
            if current is not None and tuple(current["lists"] or ()) != job.lists:
                log.info("%s r%d: its lists changed while %s was planned; planned again", job.statement_id,
                         job.revision, name)
                return  # not marked planned: the next sweep plans the members of the lists chosen now
            self.planned(conn, job, name, deliveries.finish_plan(conn, job.statement_id, job.revision, name, now,
                                                                 job.generation), now)

    def planned(self, conn, job: Job, name: str, planned: int | None, now: datetime) -> None:
        if planned is not None:  # None: another worker finished this plan first
            log.info("%s r%d: planned %d %s deliveries", job.statement_id, job.revision, planned, name)
            workflow.record(conn, Action.PLANNED, self.actor, now, job.statement_id, job.revision,
                            channel=name, targets=planned)

    def unplanned(self, conn, row: dict, now: datetime) -> list[str]:
        """The statement's channels that are due by ``now`` and have no delivery rows yet."""
        due = []
        for name in row["channels"] or []:
            channel = self.channels.get(name)
            if channel is None:
                if (row["id"], name) not in self._warned:
                    self._warned.add((row["id"], name))
                    log.warning("%s: channel %r is not configured here; its deliveries wait", row["id"], name)
                continue
            if channel.due_at(row["embargo"], row["send_embargoed_at"]) - self.ahead(name) <= now:
                due.append(name)
        if not due:  # most statements most of the time: no query
            return []
        planned = deliveries.planned_channels(conn, row["id"], row["revision"], row["generation"])
        return [name for name in due if name not in planned]

    # -- deliveries: one channel, batch after batch until nothing is due -------------------------------------
    def ahead(self, name: str) -> timedelta:
        """How long before their time a channel's rows are planned, claimed and rendered (then held)."""
        return self.lead if self.channels[name].ahead else timedelta(0)

    @staticmethod
    def not_before(channel: Channel, job: Job, rows: list[Claimed]) -> datetime:
        """When rows may be attempted: their due time, and for a public channel the embargo as it is now."""
        instants = [row.due_at for row in rows]
        if channel.public and job.embargo is not None:
            instants.append(job.embargo)
        return max(instants)

    def hold(self, channel: Channel, instant: datetime) -> bool:
        """Wait until ``instant`` by the guard's clock (rows claimed ahead); False if the worker stops meanwhile.
        The guard in ``send`` still decides: this only times the attempt."""
        while self.clock.real_time and not self.stopping.is_set():
            left = (instant - channel.embargo_now()).total_seconds()
            if left <= 0:
                break
            self.stopping.wait(left)
        return not self.stopping.is_set()

    def cutoff(self, conn) -> datetime:
        """Rows of workers not seen since this instant (by the database's clock) may be taken over."""
        return db_now(conn) - timedelta(seconds=self.policy.worker_timeout_seconds)

    def deliver(self, name: str) -> dict[Result, int]:
        """Claim and send batch after batch until nothing is due. For a channel of several lanes the next batch is
        claimed while one is sent, so that its connections do not wait for the claim."""
        self.heartbeat.register()  # rows are claimed in this worker's name
        channel = self.channels[name]
        jobs: dict[tuple, Job] = {}
        rendered: dict[tuple, object] = {}
        run: dict[Result, int] = {}  # this call's outcomes, for the channel's health
        last_fault: str | None = None
        per_target = channel.faults_per_target
        by_target: dict[str, dict[Result, int]] = {}  # the same, per target, when faults are each target's own
        target_fault: dict[str, str | None] = {}
        with Recorder(self.engine, self.policy, self.clock, self.worker, channel.lanes) as recorder, \
                ThreadPoolExecutor(1, thread_name_prefix=f"{name}-claim") as claimer:
            claimed = self.claim(name, jobs)
            while True:
                batch, held = claimed
                if not batch.rows:
                    held.close()
                    break
                if self.stopping.is_set():
                    self.give_back(batch, held)
                    break
                following = claimer.submit(self.claim, name, jobs) if channel.lanes > 1 else None
                before = dict(recorder.counts)
                record = recorder.reporter(batch, self.stopping)
                trouble: list[Outcome] = []
                every: list[Outcome] = []  # kept only for a channel whose faults are per target

                def report(outcome: Outcome, record=record, trouble=trouble, every=every):
                    if outcome.result is not Result.SENT:
                        trouble.append(outcome)
                    if per_target:
                        every.append(outcome)
                    return record(outcome)
                try:
                    with held:
                        self.send_batch(channel, batch, jobs, rendered, report, recorder)
                except BaseException:
                    if following is not None and following.exception() is None:
                        self.give_back(*following.result())
                    raise
                ahead = following.result() if following is not None else None
                counts = {r: n - before.get(r, 0) for r, n in recorder.counts.items() if n != before.get(r, 0)}
                for result, n in counts.items():
                    run[result] = run.get(result, 0) + n
                last_fault = next((o.detail for o in reversed(trouble) if o.result is Result.TRANSPORT), last_fault)
                if per_target:
                    self.count_per_target(batch, every, by_target, target_fault)
                log.info("%s: batch of %d: %s", name, len(batch.rows),
                         ", ".join(f"{r.value} {n}" for r, n in sorted(counts.items())))
                self.log_failures(name, batch, trouble)
                if counts and set(counts) <= {Result.TRANSPORT, Result.REFUSED}:
                    if ahead is not None:  # nothing will succeed right now; the retry schedule brings the rows back
                        self.give_back(*ahead)
                    break
                claimed = ahead if ahead is not None else self.claim(name, jobs)
            totals = dict(recorder.counts)
        self.finish_plans()
        if per_target:
            for target, seen in by_target.items():
                self.transport_health(name, seen, target_fault.get(target), target)
        else:
            self.transport_health(name, run, last_fault)
        return totals

    @staticmethod
    def count_per_target(batch: deliveries.Batch, outcomes: Iterable[Outcome], counts: dict[str, dict[Result, int]],
                         faults: dict[str, str | None]) -> None:
        """Add a batch's outcomes to each target's counts, and note each target's last transport fault. A row's
        first outcome counts, as it does for the recorder; any later one is ignored."""
        targets = {row.id: row.target for row in batch.rows}
        for outcome in outcomes:
            target = targets.pop(outcome.delivery_id, None)
            if target is None:
                continue
            seen = counts.setdefault(target, {})
            seen[outcome.result] = seen.get(outcome.result, 0) + 1
            if outcome.result is Result.TRANSPORT:
                faults[target] = outcome.detail

    def claim(self, name: str, jobs: dict[tuple, Job]) -> tuple[deliveries.Batch, ExitStack]:
        """The channel's next due rows, in hand (their leases renewed by the heartbeat) until the stack is closed;
        the jobs of their publications added to ``jobs``."""
        now = self.clock.now()
        found = cutoff = None
        if self.engine.dialect.name == "sqlite":  # looked up without the one write lock: the recorder goes on meanwhile
            with reading(self.engine) as conn:
                cutoff = self.cutoff(conn)
                found = deliveries.candidates(conn, name, now, cutoff, self.policy.batch_size, self.ahead(name),
                                              self.worker)
        with self.engine.begin() as conn:
            batch = deliveries.claim(conn, name, now, self.worker, self.policy.batch_size, self.policy.lease_seconds,
                                     self.cutoff(conn) if cutoff is None else cutoff, self.ahead(name), found)
        with reading(self.engine) as conn:
            for key in {r.publication for r in batch.rows} - set(jobs):
                sid, revision, kind, generation, notice = key
                jobs[key] = self.job(conn, sid, revision, Kind(kind), generation, notice)
            # the embargo as it is now, never as it was when the job was first read: it may have moved
            embargoes = workflow.embargoes(conn, {r.statement_id for r in batch.rows})
            for key, job in list(jobs.items()):
                if key[0] in embargoes and job.embargo != embargoes[key[0]]:
                    jobs[key] = replace(job, embargo=embargoes[key[0]])
        held = ExitStack()
        held.enter_context(self.heartbeat.in_hand(batch.token))
        return batch, held

    def give_back(self, batch: deliveries.Batch, held: ExitStack) -> None:
        """A batch claimed but not to be sent now: its rows go back at once."""
        with held, self.engine.begin() as conn:
            deliveries.release(conn, batch, self.clock.now())

    def send_batch(self, channel: Channel, batch: deliveries.Batch, jobs: dict[tuple, Job],
                   rendered: dict[tuple, object], report: Report, recorder: Recorder) -> None:
        """Render (once per publication, variant and embargo) and send one claimed batch, soonest due first; then
        give back at once whatever was not attempted."""
        try:
            groups = [(self.not_before(channel, jobs[key], rows), key, rows) for key, rows in (
                (key, list(group)) for key, group in groupby(
                    sorted(batch.rows, key=lambda r: r.publication), key=lambda r: r.publication))]
            for due, key, rows in sorted(groups, key=lambda g: g[0]):  # soonest first: held until due
                job = jobs[key]
                try:
                    variant = channel.variant(job, channel.embargo_now())
                    once = (*key, variant, job.embargo)  # a moved embargo is rendered afresh
                    if once not in rendered:
                        rendered[once] = channel.render(job, variant)
                    if not self.hold(channel, due):
                        break  # stopping: the rows not attempted are given back below
                    channel.send(job, rendered[once], rows, report)
                except Exception as exc:  # a bug or a broken template must not strand the rows
                    log.exception("%s: %s r%d: delivery failed", channel.name, *key[:2])
                    for row in rows:
                        report(Outcome(row.id, Result.RETRY, f"internal error: {exc}"))
        finally:
            recorder.flush()
            with self.engine.begin() as conn:  # anything claimed but never attempted goes back at once
                deliveries.release(conn, batch, self.clock.now())

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
            instants = workflow.scheduled_instants(conn, now, self.lead if any(
                channel.ahead for channel in self.channels.values()) else timedelta(0))
            instants.update(deliveries.next_attempts(conn, now, self.channels))
        return sorted(t for t in instants if t > now)

    def due_channels(self) -> list[str]:
        """Channels with rows to claim now (pending or retrying and due, or sending past their lease)."""
        with reading(self.engine) as conn:
            return deliveries.due_channels(conn, self.clock.now(), self.cutoff(conn), self.channels,
                                           {name: self.ahead(name) for name in self.channels})

    def idle(self) -> bool:
        with reading(self.engine) as conn:
            return not workflow.scheduled(conn) and not deliveries.any_active(conn)
