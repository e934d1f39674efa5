"""What a press officer does, once, for every front end: the command line and the web app call these, which call
the workflow with the channels the configuration has. No rule lives here; the rules are in the workflow."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy import Connection
from sqlalchemy.engine import Engine

from distributor import channels as channel_registry
from distributor import deliveries, recipients, workflow
from distributor import workers as workers_module
from distributor.channels.base import Job
from distributor.channels.email import EmailChannel
from distributor.clock import Clock, iso_z
from distributor.config import Config
from distributor.errors import InputError, StateError
from distributor.outcomes import Result, Variant
from distributor.render import Renderer
from distributor.statements.model import StatementStatus
from distributor.store import reading


@dataclass(frozen=True)
class App:
    config: Config
    engine: Engine
    clock: Clock

    def context(self) -> channel_registry.Context:
        return channel_registry.Context(self.config, self.engine, self.clock,
                                        Renderer(self.config.paths.templates, self.config.office),
                                        workers_module.database_clock(self.engine))


def preview_job(conn: Connection, statement_id: str, revision: int | None) -> Job:
    """The statement (the current revision, or ``revision``) as a channel would get it; an unscheduled one carries
    its document's own embargo."""
    from distributor.dispatch import Dispatcher

    number = revision or workflow.get(conn, statement_id)["revision"]
    revisions = workflow.imported_at(conn, statement_id)
    if number not in revisions:
        raise InputError(f"{statement_id} has revisions 1 to {max(revisions)}, not {number}", where="--revision")
    job = Dispatcher.job(conn, statement_id, number)
    return replace(job, embargo=job.embargo or job.statement.embargo)


def preview(app: App, statement_id: str, channel_name: str, variant: str | None = None, form: str | None = None,
            revision: int | None = None) -> tuple[str, Job, Variant]:
    """What a target of one channel would get, through the channel's own rendering. Sends and records nothing."""
    channels = channel_registry.build(app.context())
    channel_registry.expand(channel_name, "--channel")
    if channel_name not in channels:
        raise InputError(f"channel {channel_name!r} is not configured (add [channels.{channel_name}] to the config)",
                         where="--channel")
    channel = channels[channel_name]
    if form is not None and channel_name != "email":
        raise InputError(f"--format applies to email; {channel_name} has one form", where="--format")
    with reading(app.engine) as conn:
        job = preview_job(conn, statement_id, revision)
        status = StatementStatus(workflow.get(conn, statement_id)["status"])
    if variant == Variant.EMBARGOED.value and channel.public:
        raise InputError(f"{channel_name} is public: it only ever carries the released statement", where="--variant")
    chosen = Variant(variant) if variant else channel.variant(job, app.clock.now())
    if isinstance(channel, EmailChannel):
        # a withdrawn or retracted statement is marked so, never as embargoed: nobody is to publish it
        stopped = status if status in (StatementStatus.WITHDRAWN, StatementStatus.RETRACTED) else None
        return channel.preview(job, chosen, form or "eml", stopped=stopped), job, chosen
    return channel.preview(job, chosen), job, chosen


def send_test(app: App, statement_id: str, addresses: list[str], actor: str) -> list[tuple[str, bool, str]]:
    """One [TEST] copy to each address, at once; audited. Returns (address, sent, what happened)."""
    addresses = [recipients.typed_address(address, "--to") for address in addresses]
    channels = channel_registry.build(app.context())
    email = channels.get("email")
    if not isinstance(email, EmailChannel):
        raise InputError("the email channel is not configured", where="send-test")
    with reading(app.engine) as conn:
        status = workflow.get(conn, statement_id)["status"]
        job = preview_job(conn, statement_id, None)
    if status in (StatementStatus.WITHDRAWN.value, StatementStatus.RETRACTED.value):
        raise StateError(f"statement {statement_id} is {status}: a test copy would read as one to publish; "
                         f"schedule it again first", where=statement_id)
    variant = email.variant(job, app.clock.now())
    results = email.send_test(job, variant, addresses)
    with app.engine.begin() as conn:
        workflow.record(conn, workflow.Action.TEST_SENT, actor, app.clock.now(), statement_id, job.revision,
                        to=addresses, variant=variant.value,
                        results={addresses[h.key]: h.result.value + (f": {h.detail}" if h.detail else "")
                                 for h in results})
    return [(addresses[h.key], h.result is Result.SENT,
             "sent" if h.result is Result.SENT else f"not sent ({h.result.value}: {h.detail})") for h in results]


LISTS_WHERE = {"lists": "--lists", "add": "--add-lists", "front": "lists", "see": "see 'distributor recipients list'"}


def schedule(app: App, conn: Connection, statement_id: str, actor: str, *, embargo: datetime | None,
             send_embargoed_at: datetime | None, channels: str | None, override_embargo: bool = False,
             reason: str | None = None, lists: str | list[str] | None = None, add_lists: str | list[str] | None = None,
             where: dict[str, str] = LISTS_WHERE) -> tuple[dict, list[str]]:
    """Schedule with the channels asked for (default: the document's, else every configured one) and the recipient
    lists asked for (default: those chosen before with the document's ``lists:``, else ``channels.email.list``).
    With ``add_lists``, only add lists to a scheduled statement."""
    email = app.config.channels.get("email")
    default_list = email.list if email else "embargo"
    release_lists = tuple(email.release_lists) if email else ()
    if add_lists is not None:
        if lists is not None:
            raise InputError(f"either choose the lists ({where['lists']}) or add to them, not both",
                             where=where["add"])
        added = known_lists(conn, recipients.chosen_lists(add_lists, where["add"]), where["add"], where["see"])
        row, _ = workflow.add_lists(conn, statement_id, actor, app.clock.now(), lists=added,
                                    default_list=default_list)
        return row, list(row["channels"] or [])
    row = workflow.get(conn, statement_id)
    document = workflow.content(conn, statement_id, row["revision"])
    chosen = channel_registry.choose(channels, app.config.channels, document.channels)
    wanted: tuple[str, ...] | None = None
    if lists is not None:
        wanted = known_lists(conn, recipients.chosen_lists(lists, where["lists"]), where["lists"], where["see"])
    elif document.lists:  # added to those chosen before: a revision's front matter never drops a list silently
        wanted = known_lists(conn, tuple(dict.fromkeys((*(row["lists"] or ()), *document.lists))), where["front"],
                             where["see"])
    row = workflow.schedule(conn, statement_id, actor, app.clock.now(), embargo=embargo,
                            send_embargoed_at=send_embargoed_at,
                            channels={n: channel_registry.REGISTRY[n] for n in chosen},
                            override_embargo=override_embargo, reason=reason, lists=wanted,
                            default_list=default_list, release_lists=release_lists, lists_where=where["lists"],
                            grow=where.get("grow"))
    return row, chosen


def known_lists(conn: Connection, names: tuple[str, ...], where: str, see: str) -> tuple[str, ...]:
    """The lists, each of which must exist (have members); else an error naming the first unknown one."""
    unknown = recipients.unknown_list(conn, names)
    if unknown is not None:
        raise InputError(f"no list named {unknown!r} ({see})", where=where)
    return names


def reschedule(app: App, conn: Connection, statement_id: str, actor: str, *, embargo: datetime, reason: str,
               note: str | None) -> dict:
    """Move the embargo; every holder is told."""
    row = workflow.get(conn, statement_id)
    chosen: dict[str, workflow.Timed] = {n: channel_registry.REGISTRY[n] for n in row["channels"] or []
                                         if n in channel_registry.REGISTRY}
    return workflow.reschedule(conn, statement_id, actor, app.clock.now(), embargo=embargo, reason=reason,
                               note=note, channels=chosen, lead_seconds=app.config.delivery.notice_lead_seconds)


LOG_FIELDS = ["statement", "revision", "kind", "generation", "channel", "target", "status", "attempts", "error",
              "due_at", "sent_at", "late_seconds", "variant", "remote_id", "next_attempt_at"]


def log_record(row: dict) -> dict:
    """One delivery as ``log`` and the web app's CSV give it."""
    late = (row["sent_at"] - row["due_at"]).total_seconds() if row["sent_at"] else None
    return {
        "statement": row["statement"], "revision": row["revision"], "kind": row["kind"],
        "generation": row["generation"], "channel": row["channel"],
        "target": row["target"], "status": row["status"], "attempts": row["attempts"], "error": row["error"],
        "due_at": iso_z(row["due_at"]), "sent_at": iso_z(row["sent_at"]),
        "late_seconds": round(late, 3) if late is not None else None, "variant": row["variant"],
        "after_lift": bool(row["sent_at"] and row["embargo"] and row["sent_at"] >= row["embargo"]),
        "remote_id": row["remote_id"],
        "next_attempt_at": iso_z(row["next_attempt_at"]) if row["status"] in deliveries.CLAIMABLE else None,
    }
