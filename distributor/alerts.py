"""Alerts: what a person must look at, kept open in the database until its cause is gone.

A worker raises one when embargoed copies are still unsent as their embargo lifts (``unsent-at-lift:<statement>``),
and when a transport has met only transport faults for ``delivery.alert_after_seconds``: the email relay
(``transport:email``: login or MAIL FROM refused, relay unreachable), or one wire endpoint or social account
(``transport:wire:<endpoint>``, ``transport:mastodon:<account>``, ``transport:bluesky:<account>``: connection
refused or reset, name not resolved, TLS failure, timeout). A transport alert is over when that relay, endpoint
or account sends again.

Raising is audited (``alert``), logged at ERROR, and hands the text to ``delivery.alert_command`` on standard
input, so that it reaches a person without anyone polling.
"""

from __future__ import annotations

import logging
import shlex
import subprocess
import threading
from datetime import datetime

from sqlalchemy import Connection, insert, select, update

from distributor.store.schema import alerts
from distributor.workflow import Action, record

log = logging.getLogger("distributor.alerts")

COMMAND_TIMEOUT_SECONDS = 60


def raise_alert(conn: Connection, key: str, text: str, actor: str, at: datetime, statement_id: str | None = None,
                channel: str | None = None) -> bool:
    """Open an alert unless one with this key is open already. True if it was opened now."""
    if conn.execute(select(alerts.c.id).where(alerts.c.key == key, alerts.c.resolved_at.is_(None))).first():
        return False
    conn.execute(insert(alerts).values(key=key, statement_id=statement_id, channel=channel, text=text, raised_at=at))
    record(conn, Action.ALERT, actor, at, statement_id, text=text, key=key)
    log.error("ALERT: %s", text)
    return True


def resolve(conn: Connection, key: str, actor: str, at: datetime, why: str) -> bool:
    """Close the open alert with this key, if any; audited with the reason it is over."""
    row = conn.execute(select(alerts).where(alerts.c.key == key, alerts.c.resolved_at.is_(None))).mappings().first()
    if row is None:
        return False
    conn.execute(update(alerts).where(alerts.c.id == row["id"]).values(resolved_at=at))
    record(conn, Action.ALERT_RESOLVED, actor, at, row["statement_id"], key=key, text=row["text"], why=why)
    log.warning("alert over: %s (%s)", row["text"], why)
    return True


def is_open(conn: Connection, key: str) -> bool:
    """Whether the alert with exactly this key is open."""
    return conn.execute(select(alerts.c.id).where(alerts.c.key == key, alerts.c.resolved_at.is_(None))).first() \
        is not None


def open_alerts(conn: Connection, prefix: str | None = None) -> list[dict]:
    query = select(alerts).where(alerts.c.resolved_at.is_(None)).order_by(alerts.c.raised_at, alerts.c.id)
    if prefix is not None:
        query = query.where(alerts.c.key.startswith(prefix))
    return [dict(r) for r in conn.execute(query).mappings()]


def notify(command: str | None, text: str) -> threading.Thread | None:
    """Run ``command`` with the alert's text on standard input, beside the worker (a lift never waits for it)."""
    if not command:
        return None

    def run() -> None:
        try:
            done = subprocess.run(shlex.split(command), input=text.encode("utf-8"), capture_output=True,
                                  timeout=COMMAND_TIMEOUT_SECONDS, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            log.warning("delivery.alert_command could not run: %s", exc)
            return
        if done.returncode != 0:
            log.warning("delivery.alert_command exited with status %d: %s", done.returncode,
                        done.stderr.decode("utf-8", "replace").strip()[:200])
    thread = threading.Thread(target=run, name="alert-command", daemon=True)
    thread.start()
    return thread
