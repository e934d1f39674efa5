"""What the web pages read. Each page is a handful of indexed queries, whatever the size of the list."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import PurePath

from sqlalchemy import Connection, and_, func, or_, select

from distributor import recipients as recipients_module
from distributor.statements.model import Statement, StatementStatus
from distributor.store.schema import audit, deliveries, notices, recipients, revisions, statements

PAGE = 50
STATUSES = ("sent", "pending", "sending", "retrying", "failed", "cancelled")


def statements_page(conn: Connection, status: str | None, since: datetime | None, until: datetime | None,
                    page: int, search: str | None = None) -> tuple[list[dict], int]:
    """Statements newest first (by creation), with their title and per-channel counts; and how many in all.
    ``search`` finds words in the current revision's title or reference, or in the id."""
    condition = []
    if search:
        pattern = f"%{search.lower()}%"
        condition.append(or_(func.lower(revisions.c.content["title"].as_string()).like(pattern),
                             func.lower(revisions.c.content["reference"].as_string()).like(pattern),
                             statements.c.id.like(pattern)))
    if status:
        condition.append(statements.c.status == status)
    if since:
        condition.append(statements.c.created_at >= since)
    if until:
        condition.append(statements.c.created_at < until)
    current = and_(revisions.c.statement_id == statements.c.id, revisions.c.number == statements.c.revision)
    total = conn.execute(select(func.count()).select_from(statements.join(revisions, current)).where(
        *condition)).scalar_one()
    rows = [dict(r) for r in conn.execute(select(statements, revisions.c.content).join(revisions, and_(
        revisions.c.statement_id == statements.c.id, revisions.c.number == statements.c.revision)).where(
        *condition).order_by(statements.c.created_at.desc(), statements.c.id).limit(PAGE).offset(
        (page - 1) * PAGE)).mappings()]
    counts = channel_counts(conn, [r["id"] for r in rows])
    for row in rows:
        row["counts"] = counts.get(row["id"], {})
        row["own_embargo"] = Statement.from_dict(row["content"]).embargo  # the document's, until scheduled
    return rows, total


def channel_counts(conn: Connection, statement_ids: list[str]) -> dict[str, dict[str, dict[str, int]]]:
    """statement → channel → status → count."""
    found: dict[str, dict[str, dict[str, int]]] = {}
    if not statement_ids:
        return found
    for row in conn.execute(select(
            deliveries.c.statement_id, deliveries.c.channel, deliveries.c.status, func.count()).where(
            deliveries.c.statement_id.in_(statement_ids)).group_by(
            deliveries.c.statement_id, deliveries.c.channel, deliveries.c.status)):
        found.setdefault(str(row[0]), {}).setdefault(str(row[1]), {})[str(row[2])] = int(row[3])
    return found


def timeline(conn: Connection, statement_id: str) -> list[dict]:
    """The statement's history: its audit trail, each email copy run as one event (how many, first and last), and
    each public target's first post."""
    events = [{"at": r["at"], "action": r["action"], "actor": r["actor"], "revision": r["revision"],
               "detail": _detail(r["detail"])} for r in conn.execute(
        select(audit).where(audit.c.statement_id == statement_id).order_by(audit.c.at, audit.c.id)).mappings()]
    events = [e for e in events if e["action"] not in ("planned", "delivered")]  # said below, in numbers
    noticed = conn.execute(select(notices.c.number).where(notices.c.statement_id == statement_id).limit(1)).first()
    for variant in ("embargoed", "released"):  # each count, first and last a walk of ix_deliveries_statement_status
        sent = [deliveries.c.statement_id == statement_id, deliveries.c.channel == "email",
                deliveries.c.status == "sent", deliveries.c.variant == variant]
        if noticed:  # copies apart from the notices, which the audit trail tells of (rare: a scan is fine)
            sent.append(deliveries.c.notice == 0)
        count, first, last = conn.execute(select(func.count(), func.min(deliveries.c.sent_at),
                                                 func.max(deliveries.c.sent_at)).where(*sent)).one()
        if count:
            events.append({"at": first, "action": "sent", "actor": "", "revision": None, "detail": None,
                           "count": count, "what": f"{variant} cop{'y' if count == 1 else 'ies'}", "last": last,
                           "channel": "email"})
    for channel, target, kind, sent_at, remote_id in conn.execute(select(
            deliveries.c.channel, deliveries.c.target, deliveries.c.kind, func.min(deliveries.c.sent_at),
            func.max(deliveries.c.remote_id)).where(
            deliveries.c.statement_id == statement_id, deliveries.c.status == "sent",
            deliveries.c.channel != "email").group_by(deliveries.c.channel, deliveries.c.target, deliveries.c.kind)):
        events.append({"at": sent_at, "action": "posted", "actor": "", "revision": None, "channel": channel,
                       "target": target, "kind": kind, "detail": {"remote id": remote_id} if remote_id else None})
    return sorted(events, key=lambda e: e["at"])


def _detail(text: str | None) -> dict | None:
    if not text:
        return None
    try:
        found = json.loads(text)
    except ValueError:
        return {"detail": text}
    return found if isinstance(found, dict) else {"detail": found}


def failures(conn: Connection, statement_id: str, limit: int = 100) -> list[dict]:
    return [dict(r) for r in conn.execute(select(
        deliveries.c.channel, deliveries.c.kind, deliveries.c.target, deliveries.c.last_error, deliveries.c.updated_at,
    ).where(deliveries.c.statement_id == statement_id, deliveries.c.status == "failed").order_by(
        deliveries.c.updated_at.desc()).limit(limit)).mappings()]


def recipient_rows(conn: Connection, statement_id: str, status: str | None, search: str | None,
                   page: int) -> tuple[list[dict], int]:
    """The email deliveries of one statement, filtered by status and by address or outlet, a page at a time."""
    outlet = select(recipients.c.outlet).where(recipients.c.email == deliveries.c.target).limit(1).scalar_subquery()
    condition = [deliveries.c.statement_id == statement_id, deliveries.c.channel == "email"]
    if status:
        condition.append(deliveries.c.status == status)
    if search:
        pattern = f"%{search.lower()}%"
        of_outlet = select(recipients.c.email).where(func.lower(recipients.c.outlet).like(pattern))  # computed once
        condition.append(or_(func.lower(deliveries.c.target).like(pattern), deliveries.c.target.in_(of_outlet)))
    total = conn.execute(select(func.count()).select_from(deliveries).where(*condition)).scalar_one()
    rows = [dict(r) for r in conn.execute(select(
        deliveries.c.target, deliveries.c.kind, deliveries.c.revision, deliveries.c.status, deliveries.c.variant,
        deliveries.c.sent_at, deliveries.c.due_at, deliveries.c.attempts, deliveries.c.last_error,
        outlet.label("outlet"),
    ).where(*condition).order_by(deliveries.c.id).limit(PAGE).offset((page - 1) * PAGE)).mappings()]
    return rows, total


def left_out(conn: Connection, statement_id: str, list_names: tuple[str, ...], status: str,
             limit: int = 200, chosen: tuple[str, ...] | None = None) -> list[dict]:
    """Members of the lists (the statement's chosen lists and the release lists) who have no copy of this
    statement, once each, with the reason that fits the statement's state; a member whose copies were all stopped
    is listed with why they were stopped. Only vetting on a ``chosen`` list (default: all of them) counts."""
    chosen = list_names if chosen is None else chosen
    has = select(deliveries.c.id).where(deliveries.c.statement_id == statement_id, deliveries.c.channel == "email",
                                        deliveries.c.target == recipients.c.email,
                                        deliveries.c.status != "cancelled").exists()  # one covering-index probe each
    other = recipients.alias("other")  # the same person written in another case on another of the lists
    has_as_other = select(other.c.id).where(
        other.c.list_name.in_(list_names), other.c.email_key == recipients.c.email_key,
        other.c.email != recipients.c.email,
        select(deliveries.c.id).where(deliveries.c.statement_id == statement_id, deliveries.c.channel == "email",
                                      deliveries.c.target == other.c.email,
                                      deliveries.c.status != "cancelled").exists()).exists()
    members = conn.execute(select(recipients.c.email, recipients.c.outlet, recipients.c.embargo_ok,
                                  recipients.c.list_name).where(
        recipients.c.list_name.in_(list_names), ~has, ~has_as_other).order_by(
        recipients.c.email, recipients.c.list_name).limit(limit)).all()
    stopped = {str(r[0]): r[1] for r in conn.execute(select(deliveries.c.target, deliveries.c.last_error).where(
        deliveries.c.statement_id == statement_id, deliveries.c.channel == "email",
        deliveries.c.status == "cancelled").order_by(deliveries.c.target, deliveries.c.id).limit(limit))}  # the last stop
    suppressed = recipients_module.is_suppressed(conn, [str(m[0]) for m in members])
    planned = status not in (StatementStatus.DRAFT.value, StatementStatus.APPROVED.value)
    found: dict[str, dict] = {}
    for address, outlet, embargo_ok, list_name in members:
        email = str(address)
        person = recipients_module.key(email)  # one line a person, however each list writes the address
        if person in found:  # on several of the lists: one line, every list named
            found[person]["list"] += f", {list_name}"
            found[person]["vetted"] = found[person]["vetted"] or (bool(embargo_ok) and list_name in chosen)
            continue
        found[person] = {"email": email, "outlet": outlet or "", "list": list_name,
                         "vetted": bool(embargo_ok) and list_name in chosen}
    for person, row in found.items():
        email = row["email"]
        if person in suppressed:
            row["reason"] = "unsubscribed"
        elif email in stopped:
            row["reason"] = stopped[email] or "cancelled"
        elif not planned:
            row["reason"] = ("to get the embargoed copy once the statement is scheduled" if row["vetted"] else
                             "not vetted for embargoes: to get the released version at the lift, once scheduled")
        elif status == StatementStatus.WITHDRAWN.value:
            row["reason"] = "withdrawn before a copy was planned"
        elif not row["vetted"] and status == StatementStatus.SCHEDULED.value:
            row["reason"] = "not vetted for embargoes: gets the released version at the lift"
        else:
            row["reason"] = "joined the list after the copies were planned"
    for email, why in stopped.items():  # stopped, and no longer on the lists
        if recipients_module.key(email) not in found and len(found) < limit:
            found[recipients_module.key(email)] = {"email": email, "outlet": "", "list": "", "reason": why or "cancelled"}
    return sorted(found.values(), key=lambda r: r["email"])


def recipient_history(conn: Connection, address: str) -> list[dict]:
    """Everything ever sent (or meant) for one address, newest first."""
    return [dict(r) for r in conn.execute(select(
        deliveries.c.statement_id, deliveries.c.revision, deliveries.c.kind, deliveries.c.status, deliveries.c.variant,
        deliveries.c.sent_at, deliveries.c.due_at, deliveries.c.last_error,
    ).where(deliveries.c.target == address, deliveries.c.channel == "email").order_by(
        deliveries.c.due_at.desc(), deliveries.c.id.desc()).limit(1000)).mappings()]


def memberships(conn: Connection, address: str) -> list[dict]:
    key = recipients_module.key(address)
    return [dict(r) for r in conn.execute(select(
        recipients.c.list_name, recipients.c.name, recipients.c.outlet, recipients.c.embargo_ok).where(
        recipients.c.email_key == key)).mappings()]


def audit_page(conn: Connection, page: int, statement_id: str | None = None, actor: str | None = None,
               action: str | None = None, since: datetime | None = None, until: datetime | None = None
               ) -> tuple[list[dict], int]:
    """The audit trail, newest first, filtered by statement, actor, action and time."""
    condition = []
    if statement_id:
        condition.append(audit.c.statement_id == statement_id)
    if actor:
        condition.append(audit.c.actor == actor)
    if action:
        condition.append(audit.c.action == action)
    if since:
        condition.append(audit.c.at >= since)
    if until:
        condition.append(audit.c.at < until)
    total = conn.execute(select(func.count()).select_from(audit).where(*condition)).scalar_one()
    rows = [{**r, "detail": _detail(r["detail"])} for r in conn.execute(select(audit).where(*condition).order_by(
        audit.c.at.desc(), audit.c.id.desc()).limit(PAGE * 2).offset((page - 1) * PAGE * 2)).mappings()]
    return rows, total


def audit_choices(conn: Connection) -> tuple[list[str], list[str]]:
    """The actors and actions found in the trail, for the filters."""
    return (list(conn.execute(select(audit.c.actor).distinct().order_by(audit.c.actor)).scalars()),
            list(conn.execute(select(audit.c.action).distinct().order_by(audit.c.action)).scalars()))


def revision_list(conn: Connection, statement_id: str) -> list[dict]:
    """Every revision of a statement, newest first: who imported it, when, from which file, and what changed."""
    return [{**r, "source": PurePath(str(r["source"])).name} for r in conn.execute(select(
        revisions.c.number, revisions.c.imported_by, revisions.c.imported_at, revisions.c.source, revisions.c.note
    ).where(revisions.c.statement_id == statement_id).order_by(revisions.c.number.desc())).mappings()]


def sent_over_time(conn: Connection, statement_id: str, points: int = 120) -> dict[str, list[tuple[datetime, int]]]:
    """Per version (embargoed, released): the running total of email copies sent, at most ``points`` steps of it
    (the first, every n-th, the last). Each is one walk of ix_deliveries_statement_status in time order."""
    found = {}
    for variant in ("embargoed", "released"):
        sent = (deliveries.c.statement_id == statement_id, deliveries.c.channel == "email",
                deliveries.c.status == "sent", deliveries.c.variant == variant, deliveries.c.sent_at.is_not(None))
        total = conn.execute(select(func.count()).where(*sent)).scalar_one()
        if not total:
            continue
        step = max(1, -(-total // points))
        ranked = select(deliveries.c.sent_at, func.row_number().over(order_by=deliveries.c.sent_at).label("n")).where(
            *sent).subquery()
        found[variant] = [(r[0], int(r[1])) for r in conn.execute(select(ranked.c.sent_at, ranked.c.n).where(
            or_(ranked.c.n % step == 0, ranked.c.n == total, ranked.c.n == 1)).order_by(ranked.c.n))]
    return found


def busy(conn: Connection, statement_id: str, now: datetime, within: timedelta = timedelta(seconds=60)) -> bool:
    """Whether deliveries of the statement are being sent, or are due within ``within``: the page then refreshes."""
    return conn.execute(select(deliveries.c.id).where(
        deliveries.c.statement_id == statement_id,
        or_(deliveries.c.status == "sending",
            and_(deliveries.c.status.in_(("pending", "retrying")), deliveries.c.next_attempt_at <= now + within))
    ).limit(1)).first() is not None
