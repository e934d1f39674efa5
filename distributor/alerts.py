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


# What to do about a transport fault: (words in the fault, the advice). The first that matches is given.
ADVICE = (
    ("login refused", "the relay refused the login: check channels.email.smtp.username and the password in the "
                      "variable channels.email.smtp.password_env names"),
    ("session refused", "the relay refused the session: check channels.email.smtp (the sender the relay allows, "
                        "office.from) and the relay's own log"),
    ("certificate", "the server's TLS certificate is not trusted: renew it, or name the CA that signed it "
                    "(channels.email.smtp.ca_file for the relay)"),
    ("TLS", "TLS failed: check the port and the tls setting of the channel (starttls or ssl)"),
    ("not resolved", "the host name is not found: check the address in the channel's config and this machine's DNS"),
    ("refused", "nothing answers there: check that the server is running and the channel's host, port or URL"),
    ("cannot connect", "nothing answers there: check that the relay is running and channels.email.smtp.host and "
                       "port"),
    ("timeout", "the server does not answer in time: check that it is up and not overloaded, and the channel's "
                "timeout_seconds"),
)


def advice(fault: str | None) -> str:
    """What a person should do about a transport fault, naming the setting to check."""
    for words, said in ADVICE:
        if fault and words in fault:
            return said
    return "check that the server is up and reachable from this machine, and the channel's settings"


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
