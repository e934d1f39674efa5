"""What needs a person's attention now: the report behind ``distributor status`` (and the web app's alerts page).

Needing attention means an open alert; a failed delivery of the last 7 days not retried since; a delivery due more
than a minute ago and not sent; or a statement due within the hour while no worker's heartbeat is fresh.
Statements with an instant in the next 24 hours (the embargoed copies going out, or the lift) are listed for
information only, each instant named.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Connection, and_, func, or_, select

from distributor import alerts
from distributor.config import DeliveryPolicy
from distributor.deliveries import ACTIVE, DeliveryStatus
from distributor.statements.model import StatementStatus
from distributor.store.schema import deliveries, statements, workers
from distributor.workers import db_now

FAILED_WINDOW = timedelta(days=7)
OVERDUE_AFTER = timedelta(minutes=1)
SOON = timedelta(hours=1)
AHEAD = timedelta(hours=24)
LISTED = 50  # rows listed per section; the counts are complete


def report(conn: Connection, now: datetime, policy: DeliveryPolicy) -> dict:
    columns = (deliveries.c.statement_id, deliveries.c.channel, deliveries.c.kind, deliveries.c.target,
               deliveries.c.status, deliveries.c.due_at, deliveries.c.updated_at, deliveries.c.last_error)
    failed_where = (deliveries.c.status == DeliveryStatus.FAILED.value, deliveries.c.updated_at >= now - FAILED_WINDOW)
    overdue_where = (deliveries.c.status.in_(ACTIVE), deliveries.c.due_at <= now - OVERDUE_AFTER)
    failed = _rows(conn, columns, failed_where, deliveries.c.updated_at.desc())
    overdue = _rows(conn, columns, overdue_where, deliveries.c.due_at)
    sending_soon = and_(statements.c.send_embargoed_at > now, statements.c.send_embargoed_at <= now + AHEAD)
    scheduled = [dict(r) for r in conn.execute(select(
        statements.c.id, statements.c.embargo, statements.c.send_embargoed_at).where(
        statements.c.status == StatementStatus.SCHEDULED.value,
        or_(statements.c.embargo <= now + AHEAD, sending_soon),
    ).order_by(statements.c.embargo)).mappings()]
    for row in scheduled:
        row["due"] = due_instants(row, now)
    cutoff = db_now(conn) - timedelta(seconds=policy.worker_timeout_seconds)
    running = conn.execute(select(func.count()).select_from(workers).where(
        workers.c.stopped_at.is_(None), workers.c.last_seen >= cutoff)).scalar_one()
    open_alerts = alerts.open_alerts(conn)

    reasons = []
    if open_alerts:
        reasons.append(f"{len(open_alerts)} open alert(s)")
    if failed["count"]:
        reasons.append(f"{failed['count']} failed deliveries in the last 7 days")
    if overdue["count"]:
        reasons.append(f"{overdue['count']} overdue deliveries")
    due_soon = [s["id"] for s in scheduled if min(d["at"] for d in s["due"]) <= now + SOON]
    if due_soon and not running:
        reasons.append(f"{', '.join(due_soon)} due within the hour and no worker running ('distributor run')")
    return {"at": now, "needs_attention": bool(reasons), "reasons": reasons, "alerts": open_alerts,
            "failed": failed, "overdue": overdue, "scheduled": scheduled, "workers_running": running}


def due_instants(row: dict, now: datetime) -> list[dict]:
    """Which of a scheduled statement's two instants fall in the next 24 hours, each named, soonest first: the
    embargoed copies going out (still ahead), and the lift (also when overdue)."""
    due = []
    send = row["send_embargoed_at"]
    if send is not None and now < send <= now + AHEAD and send < row["embargo"]:
        due.append({"what": "embargoed copies go out", "at": send})
    if row["embargo"] <= now + AHEAD:
        due.append({"what": "embargo lifts", "at": row["embargo"]})
    return due


def _rows(conn: Connection, columns, where, order) -> dict:
    count = conn.execute(select(func.count()).select_from(deliveries).where(*where)).scalar_one()
    rows = [dict(r) for r in conn.execute(select(*columns).where(*where).order_by(order).limit(LISTED)).mappings()]
    return {"count": count, "rows": rows}
