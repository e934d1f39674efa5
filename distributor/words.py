"""The record in words: each audit event as a sentence a press officer reads ("maya approved revision 2"), and the
command line's hints said as the web app's buttons and fields. The web app's timeline and audit trail use these;
the facts are the record's, never more."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import PurePath
from zoneinfo import ZoneInfo

from distributor.render import when


def _instant(value, zone: ZoneInfo | None) -> str:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value
    if not isinstance(value, datetime):
        return str(value)
    if zone is None or zone.key == "UTC":
        return when(value)
    return f"{when(value, zone)} ({when(value)})"


def _count(n, one: str, many: str | None = None) -> str:
    n = int(n or 0)
    return f"{n} {one if n == 1 else (many or one + 's')}"


def _because(detail: dict) -> str:
    return f": {detail['reason']}" if detail.get("reason") else ""


def event(action: str, actor: str, detail: dict | None, revision: int | None, zone: ZoneInfo | None = None) -> str:
    """One audit event as a sentence."""
    d = detail or {}
    who = actor or "the system"
    source = PurePath(str(d.get("source", ""))).name
    said = {
        "imported": lambda: f"{who} imported revision 1" + (f" from {source}" if source else ""),
        "revised": lambda: f"{who} imported revision {revision}" + (f" from {source}" if source else "")
        + (f"; {_count(d.get('cancelled'), 'unsent copy', 'unsent copies')} of the old one stopped"
           if d.get("cancelled") else ""),
        "approval_revoked": lambda: f"the approval by {d.get('approved_by') or 'an editor'} no longer holds: "
                                    f"revision {revision} changed the text",
        "approved": lambda: f"{who} approved revision {revision}",
        "embargo_overridden": lambda: f"{who} set the embargo to {_instant(d.get('embargo'), zone)} instead of the "
                                      f"statement's own, {_instant(d.get('statement_embargo'), zone)}"
                                      + _because(d),
        "scheduled": lambda: f"{who} scheduled it: embargo {_instant(d.get('embargo'), zone)}"
                             + (f", on {', '.join(d['channels'])}" if d.get("channels") else ""),
        "rescheduled": lambda: f"{who} moved the embargo from {_instant(d.get('previous'), zone)} to "
                               f"{_instant(d.get('embargo'), zone)}" + _because(d)
                               + (f"; {_count(d.get('notified'), 'holder')} told" if "notified" in d else ""),
        "released": lambda: "released at the embargo"
                            + (f", {float(d['late_seconds']):.1f} s after it" if d.get("late_seconds") else ""),
        "withdrawn": lambda: f"{who} withdrew it" + _because(d)
                             + f"; {_count(d.get('cancelled'), 'unsent copy', 'unsent copies')} stopped, "
                               f"{_count(d.get('notified'), 'holder')} told",
        "corrected": lambda: f"{who} published revision {revision} as a correction" + _because(d),
        "retracted": lambda: f"{who} retracted it" + _because(d),
        "notified": lambda: f"a {str(d.get('kind', 'notice')).replace('-', ' ')} notice for "
                            + ", ".join(f"{_count(n, 'target')} on {key.removesuffix('_targets')}"
                                        for key, n in sorted(d.items()) if key.endswith("_targets")),
        "planned": lambda: f"{d.get('channel', 'a channel')}: {_count(d.get('targets'), 'delivery', 'deliveries')} "
                           f"planned",
        "delivered": lambda: f"{d.get('channel', 'a channel')} finished: " + ", ".join(
            f"{n} {key}" for key, n in sorted(d.items()) if key != "channel"),
        "retried": lambda: f"{who} retried {_count(d.get('requeued'), 'failed delivery', 'failed deliveries')}",
        "test-sent": lambda: f"{who} sent a test copy to {', '.join(d.get('to') or [])}",
        "alert": lambda: f"alert: {d.get('text', '')}",
        "alert_resolved": lambda: f"alert over: {d.get('text', '')}" + (f" ({d['why']})" if d.get("why") else ""),
        "user_added": lambda: f"{who} added {d.get('user')} as {d.get('role')}",
        "user_changed": lambda: f"{who} changed the {d.get('change', 'account')} of {d.get('user')}",
        "user_removed": lambda: f"{who} removed the user {d.get('user')}",
        "recipients_imported": lambda: f"{who} imported {PurePath(str(d.get('file', ''))).name} into the list "
                                       f"{d.get('list')}: {d.get('added', 0)} added, {d.get('updated', 0)} updated, "
                                       f"{d.get('removed', 0)} removed, {d.get('rejected', 0)} rows refused",
        "recipient_added": lambda: f"{who} added {d.get('email')} to the list {d.get('list')}",
        "recipient_removed": lambda: f"{who} removed {d.get('email')} from the list {d.get('list')}",
        "unsubscribed": lambda: f"{d.get('email')} unsubscribed" + ("" if who == "one-click unsubscribe"
                                                                    else f" (by {who})"),
        "suppression_lifted": lambda: f"{who} lifted the suppression of {d.get('email')}",
        "portal_revoked": lambda: f"{who} revoked the portal links of {d.get('email')} "
                                  f"({_count(d.get('sessions'), 'open session')} ended)",
        "language_chosen": lambda: f"{d.get('email')} chose the language {d.get('language')} in the portal",
        "list_joined": lambda: f"{d.get('email')} joined the list {d.get('list')} in the portal",
        "list_left": lambda: f"{d.get('email')} left the list {d.get('list')} in the portal",
        "media_added": lambda: f"{who} added the {'photo' if d.get('kind') == 'image' else 'document'} "
                               f"{d.get('media')} (revision {revision})",
        "media_removed": lambda: f"{who} removed the {'photo' if d.get('kind') == 'image' else 'document'} "
                                 f"{d.get('media')} (revision {revision})",
    }.get(action)
    try:
        return said() if said else f"{who}: {action.replace('_', ' ')}"
    except (TypeError, ValueError):  # an older record without a field: still one honest line
        return f"{who}: {action.replace('_', ' ')}"


def timeline_event(e: dict, zone: ZoneInfo | None = None) -> str:
    """One entry of a statement's timeline: an audit event, a run of email copies, or a public post."""
    if e["action"] == "sent":
        span = (f"at {clock(e['at'], zone)}" if e["last"] == e["at"]
                else f"between {clock(e['at'], zone)} and {clock(e['last'], zone)}")
        return f"{e['count']} {e['what']} sent {span}"
    if e["action"] == "posted":
        what = "posted" if e.get("kind") == "statement" else f"{str(e.get('kind')).replace('-', ' ')} posted"
        return f"{e['channel']}: {what} to {e['target']}"
    return event(e["action"], e["actor"], e["detail"], e["revision"], zone)


def clock(instant: datetime, zone: ZoneInfo | None) -> str:
    local = instant.astimezone(zone) if zone is not None else instant
    return f"{local:%H:%M:%S} {local.tzname()}"


def details(detail: dict | None) -> list[tuple[str, str]]:
    """An event's details as labelled values, for the page's "details" (never raw JSON)."""
    shown = []
    for key, value in sorted((detail or {}).items()):
        if key == "hash" and isinstance(value, str):
            value = value[:12] + "…"
        elif isinstance(value, list):
            value = ", ".join(str(v) for v in value)
        elif isinstance(value, dict):
            value = "; ".join(f"{k}: {v}" for k, v in sorted(value.items()))
        shown.append((key.replace("_", " "), str(value)))
    return shown


# -- the command line's words, said as the web app's --------------------------------------------------------------
_COMMANDS = [  # (a hint for the command line, what the web says instead)
    (r"add --override-embargo", "tick \u201cOverride the statement's own embargo\u201d"),
    (r" \('distributor run'\)", ""),
    (r"'?distributor approve [^']*'?", "the Approve button"),
    (r"'?distributor schedule [^']*'?", "the Schedule form"),
    (r"'?distributor reschedule [^']*'?", "Move the embargo"),
    (r"'?distributor withdraw [^']*'?", "the Withdraw form"),
    (r"'?distributor retract [^']*'?", "the Retract form"),
    (r"'?distributor correct [^']*'?", "Publish the correction"),
    (r"'?distributor import [^']*'?", "Upload a new revision"),
    (r"'?distributor retry [^']*'?", "Retry failed deliveries"),
    (r"'?distributor run'?", "the worker"),
    (r"'?distributor users passwd [^']*'?", "a new password from the administrator"),
    (r"'?distributor list'?", "the list of statements"),
    (r"'?distributor [a-z-]+[^']*'?", "the matching action"),
]
_OPTIONS = {
    "--override-embargo": "the \u201cOverride the statement's own embargo\u201d box",
    "--embargo": "the Embargo field",
    "--send-embargoed-at": "the send time",
    "--channels": "the Channels field",
    "--channel": "the Channel field",
    "--reason": "the Reason field",
    "--note": "the Note field",
    "--by": "your login",
    "--to": "the Test addresses field",
    "--revision-of": "Upload a new revision",
    "--id": "the statement's id",
}


def for_the_web(message: str) -> str:
    """A message of the command line's, with each command and option named as the web app's button or field."""
    for pattern, said in _COMMANDS:
        message = re.sub(pattern, said, message)
    for option in sorted(_OPTIONS, key=len, reverse=True):
        message = re.sub(rf"(?<![\w-]){re.escape(option)}(?![\w-])( [A-Z]+)?", _OPTIONS[option], message)
    return message
