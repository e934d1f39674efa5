"""The statement state machine and its audit trail. Every transition lives here.

    draft ──approve──▶ approved ──schedule──▶ scheduled ──lift──▶ released ──retract──▶ retracted
      ▲                    │                   │    ▲                │  ▲
      └──── new revision ──┴───────────────────┘    └─reschedule     │  └─ correct (an approved new revision)
    withdraw: any state before released; a withdrawn statement may be approved and scheduled again (generation + 1)

Holders (journalists with a sent embargoed copy) are told of a withdrawal, a moved embargo or a correction by
notices: email deliveries of their own kind, planned here, due at once.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import Enum
from typing import Protocol

from sqlalchemy import Connection, and_, func, insert, or_, select, update

from distributor import deliveries
from distributor.clock import clock_time
from distributor.errors import InputError, StateError
from distributor.outcomes import Kind
from distributor.statements.model import Media, Statement, StatementStatus
from distributor.store.schema import audit, notices, revisions, statements

S = StatementStatus


class Timed(Protocol):
    def due_at(self, embargo: datetime, send_embargoed_at: datetime | None) -> datetime: ...
TRANSITIONS: dict[StatementStatus, frozenset[StatementStatus]] = {
    S.DRAFT: frozenset({S.APPROVED, S.WITHDRAWN, S.DRAFT}),
    S.APPROVED: frozenset({S.SCHEDULED, S.DRAFT, S.WITHDRAWN}),
    S.SCHEDULED: frozenset({S.SCHEDULED, S.RELEASED, S.DRAFT, S.WITHDRAWN}),
    S.RELEASED: frozenset({S.RETRACTED}),
    S.WITHDRAWN: frozenset({S.DRAFT, S.APPROVED}),
    S.RETRACTED: frozenset(),
}


class Action(str, Enum):
    IMPORTED = "imported"
    REVISED = "revised"
    APPROVAL_REVOKED = "approval_revoked"
    APPROVED = "approved"
    SCHEDULED = "scheduled"
    RELEASED = "released"
    WITHDRAWN = "withdrawn"
    PLANNED = "planned"
    DELIVERED = "delivered"
    UNSUBSCRIBED = "unsubscribed"
    EMBARGO_OVERRIDDEN = "embargo_overridden"
    RECIPIENTS_IMPORTED = "recipients_imported"
    RECIPIENT_REMOVED = "recipient_removed"
    RECIPIENT_ADDED = "recipient_added"
    SUPPRESSION_LIFTED = "suppression_lifted"  # staff took back a suppression made by staff or a bounce
    TEST_SENT = "test-sent"
    RETRIED = "retried"
    RESCHEDULED = "rescheduled"
    CORRECTED = "corrected"
    RETRACTED = "retracted"
    NOTIFIED = "notified"
    ALERT = "alert"
    ALERT_RESOLVED = "alert_resolved"
    USER_ADDED = "user_added"
    USER_CHANGED = "user_changed"
    USER_REMOVED = "user_removed"
    MEDIA_ADDED = "media_added"
    MEDIA_REMOVED = "media_removed"
    PORTAL_REVOKED = "portal_revoked"
    LANGUAGE_CHOSEN = "language_chosen"   # by the journalist, in the portal
    LIST_JOINED = "list_joined"           # by the journalist, in the portal
    LIST_LEFT = "list_left"               # by the journalist, in the portal


@dataclass(frozen=True)
class ImportResult:
    id: str
    revision: int
    created: bool
    changed: bool
    approval_revoked: bool
    cancelled: int


def record(conn: Connection, action: Action, actor: str, at: datetime, statement_id: str | None = None,
           revision: int | None = None, **detail) -> None:
    conn.execute(insert(audit).values(
        at=at, actor=actor, action=action.value, statement_id=statement_id, revision=revision,
        detail=json.dumps(detail, ensure_ascii=False, default=str, sort_keys=True) if detail else None))


def get(conn: Connection, statement_id: str) -> dict:
    row = conn.execute(select(statements).where(statements.c.id == statement_id)).mappings().first()
    if row is None:
        raise InputError(f"no statement with id {statement_id!r} (see 'distributor list')", where="ID")
    return dict(row)


def lock(conn: Connection, statement_id: str) -> dict | None:
    """The statement's row, locked until the transaction ends (other workers wait; SQLite serialises anyway)."""
    row = conn.execute(select(statements).where(statements.c.id == statement_id).with_for_update()).mappings().first()
    return dict(row) if row else None


def embargoes(conn: Connection, statement_ids: set[str]) -> dict[str, datetime | None]:
    """The current embargo of each statement, read afresh (an embargo may move while a worker sends)."""
    return dict(conn.execute(select(statements.c.id, statements.c.embargo).where(
        statements.c.id.in_(list(statement_ids)))).all())


def content(conn: Connection, statement_id: str, revision: int) -> Statement:
    data: dict = conn.execute(select(revisions.c.content).where(
        revisions.c.statement_id == statement_id, revisions.c.number == revision)).scalar_one()
    return Statement.from_dict(data)


def imported_by(conn: Connection, statement_id: str, revision: int) -> str | None:
    return conn.execute(select(revisions.c.imported_by).where(
        revisions.c.statement_id == statement_id, revisions.c.number == revision)).scalar()


def imported_at(conn: Connection, statement_id: str) -> dict[int, datetime]:
    return dict(conn.execute(select(revisions.c.number, revisions.c.imported_at).where(
        revisions.c.statement_id == statement_id)).all())


def released(conn: Connection, now: datetime, limit: int) -> list[dict]:
    """The most recent released statements, newest first, with the content of their published revision and when
    it was last corrected (None if never)."""
    corrected = select(func.max(notices.c.created_at)).where(
        notices.c.statement_id == statements.c.id, notices.c.kind == Kind.CORRECTION.value,
        notices.c.revision == statements.c.published_revision).scalar_subquery().label("corrected_at")
    rows = conn.execute(select(statements, revisions.c.content, revisions.c.imported_at, corrected).join(
        revisions, and_(revisions.c.statement_id == statements.c.id,
                        revisions.c.number == statements.c.published_revision)).where(
        statements.c.status == S.RELEASED.value, statements.c.embargo <= now,
    ).order_by(statements.c.released_at.desc(), statements.c.id).limit(limit)).mappings()
    return [dict(r) for r in rows]


def _move(conn: Connection, row: dict, to: StatementStatus, at: datetime, **fields) -> None:
    current = StatementStatus(row["status"])
    if to not in TRANSITIONS[current]:
        raise StateError(f"statement {row['id']} is {current.value}; it cannot become {to.value}", where=row["id"])
    if current is S.WITHDRAWN:  # scheduled again: a new schedule, with rows and Message-IDs of its own
        fields["generation"] = row["generation"] + 1
        deliveries.forget_plans(conn, row["id"])
    result = conn.execute(update(statements).where(
        statements.c.id == row["id"], statements.c.status == current.value, statements.c.revision == row["revision"],
    ).values(status=to.value, updated_at=at, **fields))
    if result.rowcount != 1:
        raise StateError(f"statement {row['id']} changed while this command ran; try again", where=row["id"])


ID_PATTERN = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,58}[a-z0-9])?")


def import_statement(conn: Connection, statement: Statement, source: str, actor: str, at: datetime,
                     new_id: str | None = None, revision_of: str | None = None, note: str | None = None,
                     keep_media: bool = False) -> ImportResult:
    """Import a statement: a new one, or a new revision of the one it is. ``keep_media``: a format that cannot
    list media (plain text) keeps those of the revision before.

    Which one it is: ``revision_of`` or ``new_id`` when given; else the id from its reference; else an earlier
    import of the same file with the same content (whatever id rules were in force then); else the id from its
    date and title, unless that id belongs to a statement with another title that no reference ties to this one:
    then nothing is guessed and the import stops."""
    digest = statement.content_hash()
    if revision_of is not None:
        get(conn, revision_of)
        statement_id = revision_of
    elif new_id is not None:
        if not ID_PATTERN.fullmatch(new_id):
            raise InputError("expected lower-case letters, digits and hyphens, at most 60", where="--id")
        if conn.execute(select(statements.c.id).where(statements.c.id == new_id)).first():
            raise InputError(f"the id {new_id} is taken; choose another, or use --revision-of {new_id}", where="--id")
        statement_id = new_id
    else:
        statement_id = statement.id
        earlier = None if statement.reference else conn.execute(select(revisions.c.statement_id).where(
            revisions.c.source == source, revisions.c.content_hash == digest).limit(1)).scalar()
        if earlier is not None:
            statement_id = earlier
        elif statement.reference is None:
            _refuse_a_silent_merge(conn, statement, statement_id, source)
    existing = conn.execute(select(statements).where(statements.c.id == statement_id)).mappings().first()
    if existing is None:
        conn.execute(insert(statements).values(
            id=statement_id, status=S.DRAFT.value, revision=1, created_at=at, updated_at=at))
        _add_revision(conn, statement_id, 1, statement, digest, source, actor, at, note)
        record(conn, Action.IMPORTED, actor, at, statement_id, 1, source=source, hash=digest)
        return ImportResult(statement_id, 1, created=True, changed=True, approval_revoked=False, cancelled=0)

    row = dict(existing)
    if keep_media and not statement.media:
        kept = content(conn, statement_id, row["revision"]).media
        if kept:
            statement = replace(statement, media=kept)
            digest = statement.content_hash()
    current_hash: str = conn.execute(select(revisions.c.content_hash).where(
        revisions.c.statement_id == statement_id, revisions.c.number == row["revision"])).scalar_one()
    if current_hash == digest:
        return ImportResult(statement_id, row["revision"], created=False, changed=False, approval_revoked=False,
                            cancelled=0)
    if row["status"] == S.RETRACTED.value:
        raise StateError(f"statement {statement_id} was retracted; import the file as a new statement with "
                         f"--id NEW-ID", where=source)
    if (row["embargo_source"] == EmbargoSource.SET.value and statement.embargo is not None
            and statement.embargo != row["embargo"] and row["status"] != S.RELEASED.value):
        raise StateError(
            f"the embargo line says {_utc(statement.embargo)} but the embargo of {statement_id} was set to "
            f"{_utc(row['embargo'])}; make the line say that, or import it unchanged and move the embargo with "
            + (f"'distributor reschedule {statement_id} --embargo TIME --by NAME --reason TEXT'"
               if row["status"] == S.SCHEDULED.value else
               f"'distributor schedule {statement_id} --embargo TIME --override-embargo'"), where=source)
    revision = row["revision"] + 1
    was_approved = row["approved_revision"] is not None and row["approved_revision"] != row["published_revision"]
    _add_revision(conn, statement_id, revision, statement, digest, source, actor, at, note)
    unapproved = {"revision": revision, "approved_revision": None, "approved_hash": None, "approved_by": None,
                  "approved_at": None}
    if row["status"] == S.RELEASED.value:  # a correction in the making: the public keeps the published revision
        _update(conn, row, at, **unapproved)
    else:
        _move(conn, row, S.DRAFT, at, **unapproved)
    cancelled = 0 if row["status"] == S.RELEASED.value else deliveries.cancel_unsent(  # the public's copies go on
        conn, statement_id, at, reason=f"superseded by revision {revision}", before_revision=revision)
    record(conn, Action.REVISED, actor, at, statement_id, revision, source=source, hash=digest, cancelled=cancelled)
    if was_approved:
        record(conn, Action.APPROVAL_REVOKED, actor, at, statement_id, revision,
               reason="content changed", approved_by=row["approved_by"])
    return ImportResult(statement_id, revision, created=False, changed=True, approval_revoked=was_approved,
                        cancelled=cancelled)


def change_media(conn: Connection, statement_id: str, change, actor: str, at: datetime,
                 note: str | None = None) -> tuple[ImportResult, Media]:
    """A new revision whose media are ``change(media so far)`` → (new media, the item added or removed): the same
    text, the same source file. Adding or removing a file revokes the approval, as changing a word does."""
    row = get(conn, statement_id)
    if row["status"] == S.RETRACTED.value:
        raise StateError(f"statement {statement_id} was retracted; its media cannot change", where=statement_id)
    current = content(conn, statement_id, row["revision"])
    media, item = change(current.media)
    source: str = conn.execute(select(revisions.c.source).where(
        revisions.c.statement_id == statement_id, revisions.c.number == row["revision"])).scalar_one()
    added = len(media) > len(current.media)
    result = import_statement(conn, replace(current, media=tuple(media)), source, actor, at, revision_of=statement_id,
                              note=note)
    record(conn, Action.MEDIA_ADDED if added else Action.MEDIA_REMOVED, actor, at, statement_id, result.revision,
           media=item.name, kind=item.kind, sha256=item.sha256)
    return result, item


def _refuse_a_silent_merge(conn: Connection, statement: Statement, statement_id: str, source: str) -> None:
    row = conn.execute(select(statements.c.revision).where(statements.c.id == statement_id)).first()
    if row is None:
        return
    taken = content(conn, statement_id, row.revision)
    if taken.title != statement.title and taken.reference is None:
        raise StateError(
            f"the id {statement_id} belongs to another statement ({taken.title!r}), and no reference ties it to this "
            f"one ({statement.title!r}); import with --id NEW-ID for a new statement, or --revision-of "
            f"{statement_id} for a new revision of that one", where=source)


def _add_revision(conn, statement_id, number, statement, digest, source, actor, at, note=None) -> None:
    conn.execute(insert(revisions).values(
        statement_id=statement_id, number=number, content_hash=digest, content=statement.to_dict(),
        source=source, imported_by=actor, imported_at=at, note=note))


def _update(conn: Connection, row: dict, at: datetime, **fields) -> None:
    """Change a statement without changing its status, if nobody changed it meanwhile."""
    result = conn.execute(update(statements).where(
        statements.c.id == row["id"], statements.c.status == row["status"], statements.c.revision == row["revision"],
    ).values(updated_at=at, **fields))
    if result.rowcount != 1:
        raise StateError(f"statement {row['id']} changed while this command ran; try again", where=row["id"])


def approve(conn: Connection, statement_id: str, by: str, at: datetime, four_eyes: bool = False) -> dict:
    """Approve the current revision. With ``four_eyes`` (office.four_eyes), not by the person who imported it."""
    if not by.strip():
        raise InputError("--by needs the approver's name", where="--by")
    row = get(conn, statement_id)
    if four_eyes and imported_by(conn, statement_id, row["revision"]) == by:
        raise StateError(f"revision {row['revision']} of {statement_id} was imported by {by}; with office.four_eyes "
                         f"someone else approves it", where=statement_id)
    correction = row["status"] == S.RELEASED.value and row["revision"] != row["published_revision"]
    if row["status"] not in (S.DRAFT.value, S.WITHDRAWN.value) and not correction:
        raise StateError(f"statement {statement_id} is {row['status']}; only a draft, a withdrawn statement or "
                         f"the correction of a released one can be approved", where=statement_id)
    if correction and row["approved_revision"] == row["revision"]:
        raise StateError(f"revision {row['revision']} of {statement_id} is approved already; publish it with "
                         f"'distributor correct {statement_id} --by NAME --reason TEXT'", where=statement_id)
    digest: str = conn.execute(select(revisions.c.content_hash).where(
        revisions.c.statement_id == statement_id, revisions.c.number == row["revision"])).scalar_one()
    approval = {"approved_revision": row["revision"], "approved_hash": digest, "approved_by": by, "approved_at": at}
    if correction:
        _update(conn, row, at, **approval)
    else:
        _move(conn, row, S.APPROVED, at, **approval)
    record(conn, Action.APPROVED, by, at, statement_id, row["revision"], hash=digest)
    return get(conn, statement_id)


class EmbargoSource(str, Enum):
    DOCUMENT = "document"   # the statement's own embargo line
    SET = "set"             # set by a person (an override, or no line in the document): it is the statement's own now


def own_embargo(row: dict, document: Statement) -> datetime | None:
    """The statement's own embargo: the one a person set, once set; else the one its document states."""
    if row.get("embargo_source") == EmbargoSource.SET.value:
        return row["embargo"]
    return document.embargo


def schedule(conn: Connection, statement_id: str, actor: str, at: datetime, *, embargo: datetime | None,
             send_embargoed_at: datetime | None, channels: dict[str, Timed], override_embargo: bool = False,
             reason: str | None = None, lists: tuple[str, ...] | None = None, default_list: str = "embargo",
             release_lists: tuple[str, ...] = (), lists_where: str = "--lists", grow: str | None = None) -> dict:
    """``channels`` maps each chosen channel's name to the channel, which says when it is due. ``lists`` are the
    recipient lists chosen for its email (None: those chosen before, else ``default_list``). Before anyone holds a
    copy they may change: the copies planned for members no longer chosen are cancelled. After, they only grow.

    ``embargo`` must be the statement's own embargo unless ``override_embargo``: a typed time never silently beats
    the date printed in the document."""
    row = get(conn, statement_id)
    if row["status"] in (S.RELEASED.value, S.WITHDRAWN.value):
        raise StateError(f"statement {statement_id} is {row['status']}; it cannot be scheduled", where=statement_id)
    if row["status"] != S.APPROVED.value and row["status"] != S.SCHEDULED.value:
        raise StateError(f"statement {statement_id} is {row['status']}; approve it first "
                         f"('distributor approve {statement_id} --by NAME')", where=statement_id)
    document = content(conn, statement_id, row["revision"])
    own = own_embargo(row, document)
    if embargo is None:
        embargo = own
    elif own is not None and embargo != own and not override_embargo:
        raise InputError(f"{_utc(embargo)} is not the statement's own embargo ({_utc(own)}); "
                         f"add --override-embargo to move it", where="--embargo")
    if embargo is None:
        raise InputError("no embargo given and none found in the statement; use --embargo TIME", where="--embargo")
    if embargo <= at:
        raise InputError(f"the embargo {embargo:%Y-%m-%d %H:%M:%S} UTC is in the past", where="--embargo")
    send_at = send_embargoed_at or at
    if send_at >= embargo:
        raise InputError("embargoed copies must go out before the embargo", where="--send-embargoed-at")

    generation = row["generation"]
    held = deliveries.holders(conn, statement_id, generation)
    if held and row["embargo"] is not None and row["embargo"] != embargo:
        raise StateError(f"{journalists(len(held))} already {'holds' if len(held) == 1 else 'hold'} {statement_id} "
                         f"under the embargo "
                         f"{_utc(row['embargo'])}; move it with 'distributor reschedule {statement_id} "
                         f"--embargo TIME --by NAME --reason TEXT', which tells them", where="--embargo")
    before = chosen_lists(row, default_list)
    stored = list(lists or row["lists"] or []) or None  # None: channels.email.list, as before lists were chosen
    lists = lists or before
    dropped = [name for name in before if name not in lists]
    if held and dropped:
        raise StateError(f"{journalists(len(held))} already {'holds' if len(held) == 1 else 'hold'} {statement_id}; "
                         f"its lists can only grow now, and {', '.join(dropped)} would leave them: "
                         + (grow or f"add lists with 'distributor schedule {statement_id} --add-lists LIST'"),
                         where=lists_where)
    cancelled = 0
    if row["status"] == S.SCHEDULED.value:
        due = {name: channel.due_at(embargo, send_at) for name, channel in channels.items()}
        deliveries.reschedule_unsent(conn, statement_id, row["revision"], due, at, lift=(row["embargo"], embargo))
        if lists != before:
            if dropped:
                cancelled = deliveries.cancel_unchosen(conn, statement_id, row["generation"],
                                                       (*lists, *release_lists), at,
                                                       f"not on the lists chosen now ({', '.join(lists)})")
            deliveries.forget_plan(conn, statement_id, row["revision"], "email", row["generation"])
            deliveries.bring_forward_vetted(conn, statement_id, row["generation"], lists, embargo, send_at, at)
    elif held and "email" in channels:
        _correct_holders(conn, row, held, actor, at, send_at, reason)
    source = EmbargoSource.DOCUMENT if embargo == document.embargo else EmbargoSource.SET
    _move(conn, row, S.SCHEDULED, at, embargo=embargo, embargo_source=source.value, send_embargoed_at=send_at,
          channels=list(channels), lists=stored)
    if own is not None and embargo != own:
        record(conn, Action.EMBARGO_OVERRIDDEN, actor, at, statement_id, row["revision"], embargo=embargo,
               statement_embargo=own)
    named: dict[str, object] = {"lists": stored} if stored else {}
    if lists != before:
        named.update(lists_before=list(before), cancelled=cancelled)
    record(conn, Action.SCHEDULED, actor, at, statement_id, row["revision"], embargo=embargo,
           send_embargoed_at=send_at, channels=list(channels), **named)
    return get(conn, statement_id)


def chosen_lists(row: dict, default_list: str) -> tuple[str, ...]:
    """The recipient lists chosen for the statement's email: ``default_list`` unless others were chosen."""
    return tuple(row.get("lists") or ()) or (default_list,)


def add_lists(conn: Connection, statement_id: str, actor: str, at: datetime, *, lists: tuple[str, ...],
              default_list: str = "embargo") -> tuple[dict, list[str]]:
    """Add recipient lists to a scheduled statement: their members not yet planned get the statement (each person
    once; nobody twice). Refused once it is released. Returns the row and the lists added (none: all were)."""
    row = get(conn, statement_id)
    if row["status"] == S.RELEASED.value:
        raise StateError(f"statement {statement_id} is released; its lists cannot change now: send the news to "
                         f"other lists as a new statement", where="--add-lists")
    if row["status"] != S.SCHEDULED.value:
        raise StateError(f"statement {statement_id} is {row['status']}; choose its lists as you schedule it "
                         f"('distributor schedule {statement_id} --lists LIST,...')", where="--add-lists")
    before = chosen_lists(row, default_list)
    added = [name for name in lists if name not in before]
    if not added:
        return row, []
    result = conn.execute(update(statements).where(
        statements.c.id == statement_id, statements.c.status == S.SCHEDULED.value,
        statements.c.revision == row["revision"], statements.c.generation == row["generation"],
    ).values(lists=[*before, *added], updated_at=at))
    if result.rowcount != 1:
        raise StateError(f"statement {statement_id} changed while this command ran; try again", where=statement_id)
    deliveries.forget_plan(conn, statement_id, row["revision"], "email", row["generation"])
    # a member waiting for the released version and vetted on a list added: the embargoed copy, from now
    deliveries.bring_forward_vetted(conn, statement_id, row["generation"], (*before, *added), row["embargo"],
                                    max(row["send_embargoed_at"] or at, at), at)
    record(conn, Action.SCHEDULED, actor, at, statement_id, row["revision"], embargo=row["embargo"],
           send_embargoed_at=row["send_embargoed_at"], channels=row["channels"], lists_added=added,
           lists=[*before, *added])  # the same schedule, to more lists
    return get(conn, statement_id), added


def lists_added_said(row: dict, added: list[str], default_list: str) -> str:
    lists = ", ".join(chosen_lists(row, default_list))
    if not added:
        return f"{row['id']}: already goes to {lists}; nothing added"
    return f"{row['id']}: now goes to {lists}; the new members of {', '.join(added)} are planned (each person once)"


def _correct_holders(conn: Connection, row: dict, held: list[str], actor: str, at: datetime, due: datetime,
                     reason: str | None) -> None:
    """A new revision scheduled while journalists hold an earlier one: they get it as a correction (with the
    import's note, else the reason given here); the plan of its copies leaves them out."""
    has_it = deliveries.holders_of_revision(conn, row["id"], row["revision"], row["generation"])
    targets = [t for t in held if t not in has_it]
    if not targets:
        return
    note = conn.execute(select(revisions.c.note).where(
        revisions.c.statement_id == row["id"], revisions.c.number == row["revision"])).scalar() or reason
    _notify(conn, row, Kind.CORRECTION, {"email": targets}, actor, at, note=note, due=due)


def _notify(conn: Connection, row: dict, kind: Kind, targets: dict[str, list[str]], actor: str, at: datetime,
            note: str | None, due: datetime | None = None, **detail) -> int:
    """Number a notice and plan its deliveries (due at once unless ``due``). Returns how many targets."""
    number = (conn.execute(select(func.max(notices.c.number)).where(
        notices.c.statement_id == row["id"])).scalar() or 0) + 1
    conn.execute(insert(notices).values(
        statement_id=row["id"], number=number, kind=kind.value, revision=row["revision"],
        generation=row["generation"], note=note, detail=json.loads(json.dumps(detail, default=str)) or None,
        actor=actor, created_at=at))
    planned = deliveries.plan_notice(conn, row["id"], row["revision"], row["generation"], kind, number, targets,
                                     due or at, at)
    record(conn, Action.NOTIFIED, actor, at, row["id"], row["revision"], kind=kind.value, notice=number,
           note=note, **{f"{channel}_targets": n for channel, n in planned.items()})
    return sum(planned.values())


def notice(conn: Connection, statement_id: str, number: int) -> dict:
    return dict(conn.execute(select(notices).where(
        notices.c.statement_id == statement_id, notices.c.number == number)).mappings().one())


def version(conn: Connection, statement_id: str, number: int | None) -> int:
    """The ninjs version of what a notice publishes: 1 for the release, then one more for every correction or
    retraction published after it, up to this notice."""
    if number is None:
        return 1
    details: list[dict | None] = list(conn.execute(select(notices.c.detail).where(
        notices.c.statement_id == statement_id, notices.c.number <= number)).scalars())
    return 1 + sum(1 for d in details if d and d.get("public"))


def reschedule(conn: Connection, statement_id: str, actor: str, at: datetime, *, embargo: datetime, reason: str,
               note: str | None, channels: dict[str, Timed], lead_seconds: float) -> dict:
    """Move the embargo of a scheduled statement, telling every holder. Earlier only while the notices can go
    out first: the new time must be ``lead_seconds`` ahead."""
    row = lock(conn, statement_id) or get(conn, statement_id)  # one at a time: notices are numbered
    if row["status"] in (S.RELEASED.value, S.RETRACTED.value):
        raise StateError(f"statement {statement_id} is {row['status']} (public since {_utc(row['released_at'])}); "
                         f"its embargo cannot move", where=statement_id)
    if row["status"] != S.SCHEDULED.value:
        raise StateError(f"statement {statement_id} is {row['status']}; only a scheduled statement can be "
                         f"rescheduled ('distributor schedule {statement_id}' sets the embargo)", where=statement_id)
    previous: datetime = row["embargo"]
    if embargo == previous:
        raise InputError(f"the embargo is {_utc(previous)} already", where="--embargo")
    if embargo <= at:
        raise InputError(f"the embargo {_utc(embargo)} is in the past", where="--embargo")
    held = deliveries.holders(conn, statement_id, row["generation"])
    if held and embargo < previous and (embargo - at).total_seconds() < lead_seconds:
        raise InputError(f"{_utc(embargo)} is too soon: {journalists(len(held))} hold the embargoed copy and must "
                         f"be told first; the new time must be at least {lead_seconds:g} s ahead "
                         f"(delivery.notice_lead_seconds)", where="--embargo")
    send_at = row["send_embargoed_at"] if row["send_embargoed_at"] < embargo else at
    due = {name: channel.due_at(embargo, send_at) for name, channel in channels.items()}
    deliveries.reschedule_unsent(conn, statement_id, row["revision"], due, at, lift=(previous, embargo))
    _move(conn, row, S.SCHEDULED, at, embargo=embargo, embargo_source=EmbargoSource.SET.value,
          send_embargoed_at=send_at)
    notified = _notify(conn, row, Kind.EMBARGO_CHANGE, {"email": held}, actor, at, note=note,
                       previous=previous, embargo=embargo) if held else 0
    record(conn, Action.RESCHEDULED, actor, at, statement_id, row["revision"], embargo=embargo, previous=previous,
           reason=reason, note=note, notified=notified)
    return get(conn, statement_id)


def correct(conn: Connection, statement_id: str, actor: str, at: datetime, *, reason: str,
            note: str | None) -> dict:
    """Publish the approved correction of a released statement at once, on every channel that has it."""
    row = lock(conn, statement_id) or get(conn, statement_id)  # one at a time: notices are numbered
    if row["status"] != S.RELEASED.value:
        hint = " (before the release, schedule the approved new revision: its holders get it as a correction)" \
            if row["status"] in (S.APPROVED.value, S.SCHEDULED.value, S.DRAFT.value) else ""
        raise StateError(f"statement {statement_id} is {row['status']}; only a released statement can be "
                         f"corrected{hint}", where=statement_id)
    if row["revision"] == row["published_revision"]:
        raise StateError(f"statement {statement_id} has no new revision to publish; import the corrected file "
                         f"first", where=statement_id)
    if row["approved_revision"] != row["revision"]:
        raise StateError(f"revision {row['revision']} of {statement_id} is not approved; "
                         f"'distributor approve {statement_id} --by NAME' first", where=statement_id)
    note = note or conn.execute(select(revisions.c.note).where(
        revisions.c.statement_id == statement_id, revisions.c.number == row["revision"])).scalar()
    targets = _everyone_reached(conn, row)
    _update(conn, row, at, published_revision=row["revision"])
    notified = _notify(conn, row, Kind.CORRECTION, targets, actor, at, note=note, public=True)
    record(conn, Action.CORRECTED, actor, at, statement_id, row["revision"], reason=reason, note=note,
           previous_revision=row["published_revision"], targets=notified)
    return get(conn, statement_id)


def retract(conn: Connection, statement_id: str, actor: str, at: datetime, *, reason: str,
            note: str | None) -> dict:
    """Withdraw a released statement from publication (a kill): every channel that has it takes it down."""
    row = lock(conn, statement_id) or get(conn, statement_id)  # one at a time: notices are numbered
    if row["status"] != S.RELEASED.value:
        hint = f"; before the release use 'distributor withdraw {statement_id}'" if row["status"] in (
            S.DRAFT.value, S.APPROVED.value, S.SCHEDULED.value) else ""
        raise StateError(f"statement {statement_id} is {row['status']}; only a released statement can be "
                         f"retracted{hint}", where=statement_id)
    deliveries.cancel_unsent(conn, statement_id, at, reason=f"retracted: {reason}")
    targets = _everyone_reached(conn, row)
    _move(conn, row, S.RETRACTED, at, revision=row["published_revision"] or row["revision"])
    notified = _notify(conn, {**row, "revision": row["published_revision"] or row["revision"]}, Kind.RETRACTION,
                       targets, actor, at, note=note, public=True)
    record(conn, Action.RETRACTED, actor, at, statement_id, row["published_revision"], reason=reason, note=note,
           targets=notified)
    return get(conn, statement_id)


def _everyone_reached(conn: Connection, row: dict) -> dict[str, list[str]]:
    """Channel → targets that got any copy of the statement in its current schedule."""
    return {channel: deliveries.holders(conn, row["id"], row["generation"], embargoed=False, channel=channel)
            for channel in row["channels"] or []}


def retry_failed(conn: Connection, statement_id: str, actor: str, at: datetime,
                 channels: tuple[str, ...] | None = None) -> int:
    """Requeue the failed deliveries of a statement (of some channels), audited. Returns how many."""
    row = get(conn, statement_id)
    count = deliveries.requeue_failed(conn, statement_id, at, channels)
    record(conn, Action.RETRIED, actor, at, statement_id, row["revision"], requeued=count,
           channels=list(channels) if channels else "all")
    return count


def journalists(count: int) -> str:
    return f"{count} journalist" + ("" if count == 1 else "s")


def _utc(instant: datetime) -> str:
    return f"{instant:%Y-%m-%d} {clock_time(instant)} UTC"


def withdraw(conn: Connection, statement_id: str, actor: str, at: datetime, reason: str,
             note: str | None = None) -> dict:
    """Stop a statement before its release. Every journalist holding its embargoed copy is told."""
    row = lock(conn, statement_id) or get(conn, statement_id)  # one at a time: notices are numbered
    if row["status"] in (S.RELEASED.value, S.RETRACTED.value):
        raise StateError(f"statement {statement_id} is already public; it cannot be withdrawn (retract it: "
                         f"'distributor retract {statement_id} --by NAME --reason TEXT')", where=statement_id)
    _move(conn, row, S.WITHDRAWN, at)
    cancelled = deliveries.cancel_unsent(conn, statement_id, at, reason=f"withdrawn: {reason}")
    held = deliveries.holders(conn, statement_id, row["generation"])
    notified = _notify(conn, row, Kind.WITHDRAWAL, {"email": held}, actor, at, note=note) if held else 0
    record(conn, Action.WITHDRAWN, actor, at, statement_id, row["revision"], reason=reason,
           cancelled=cancelled, notified=notified, **({"note": note} if note else {}))
    return {**get(conn, statement_id), "cancelled": cancelled, "holders": len(held)}


def withdrawn_said(row: dict) -> str:
    """What a withdrawal did, in counts (0 included), for every front end."""
    held = row["holders"]
    told = (f"{journalists(held)} holding the embargoed copy will be told" if held
            else "nobody holds the embargoed copy, so nobody is told")
    return f"withdrawn; {row['cancelled']} unsent cop{'y' if row['cancelled'] == 1 else 'ies'} cancelled; {told}"


def retried_said(count: int, channels: str | None = None) -> str:
    """What a retry did, in counts (0 included), for every front end."""
    where = f" ({channels})" if channels else ""
    if not count:
        return f"nothing to retry: no failed deliveries{where}"
    return (f"{count} failed deliver{'y' if count == 1 else 'ies'} requeued{where}; a running worker sends "
            f"{'it' if count == 1 else 'them'} at its next sweep")


def release(conn: Connection, row: dict, actor: str, at: datetime) -> None:
    _move(conn, row, S.RELEASED, at, released_at=at, published_revision=row["revision"])
    record(conn, Action.RELEASED, actor, at, row["id"], row["revision"], embargo=row["embargo"],
           late_seconds=round((at - row["embargo"]).total_seconds(), 3))




def scheduled(conn: Connection, due_by: datetime | None = None) -> list[dict]:
    """Approved statements waiting for their send or lift time; with ``due_by``, only those with a send or lift
    time at or before it (what a sweep has to look at)."""
    query = select(statements).where(statements.c.status == S.SCHEDULED.value,
                                     statements.c.approved_revision == statements.c.revision)
    if due_by is not None:
        query = query.where(or_(statements.c.embargo <= due_by, statements.c.send_embargoed_at <= due_by))
    return [dict(r) for r in conn.execute(query).mappings()]


def scheduled_instants(conn: Connection, after: datetime, lead: timedelta = timedelta(0)) -> set[datetime]:
    """The send and lift times after ``after`` of every scheduled statement (two columns only); with ``lead``,
    also each lift less that lead (when channels that prepare ahead are planned)."""
    rows = conn.execute(select(statements.c.send_embargoed_at, statements.c.embargo).where(
        statements.c.status == S.SCHEDULED.value, statements.c.approved_revision == statements.c.revision,
        or_(statements.c.embargo > after, statements.c.send_embargoed_at > after)))
    instants: set[datetime] = set()
    for row in rows:
        send_at: datetime | None = row[0]
        embargo: datetime | None = row[1]
        instants.update(t for t in (send_at, embargo) if t is not None)
        if lead and embargo is not None:
            instants.add(embargo - lead)
    return {t for t in instants if t > after}


def listing(conn: Connection) -> list[dict]:
    rows = conn.execute(select(statements, revisions.c.content).join(revisions, and_(
        revisions.c.statement_id == statements.c.id, revisions.c.number == statements.c.revision))
        .order_by(statements.c.created_at.desc(), statements.c.id)).mappings()
    return [dict(r) for r in rows]


def audit_trail(conn: Connection, statement_id: str | None = None) -> list[dict]:
    query = select(audit).order_by(audit.c.at, audit.c.id)
    if statement_id:
        get(conn, statement_id)
        query = query.where(audit.c.statement_id == statement_id)
    return [dict(r) for r in conn.execute(query).mappings()]
