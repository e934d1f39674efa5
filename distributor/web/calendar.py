"""The embargo calendar: a page of the coming weeks' embargoes by day in the office's zone, and each user's private
iCalendar feed of them.

The feed says when, never what: an event's summary is the statement's reference (or "Embargo" without one) and its
link is the statement's page, which needs a login; no title, no text. A leaked feed address therefore leaks no
story. Its token is the only key (no login, no cookie), stored hashed; an unknown one is answered as any unknown
path is."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from itertools import groupby
from urllib.parse import urlsplit

from flask import Blueprint, Response, abort, g, render_template, request
from icalendar import Calendar, Event
from sqlalchemy import Connection, and_, func, or_, select

from distributor import users, workflow
from distributor.clock import clock_time
from distributor.render import when
from distributor.statements.model import Statement, StatementStatus
from distributor.store import reading
from distributor.store.schema import audit, revisions, statements
from distributor.web.auth import require_login
from distributor.web.site import site

calendar = Blueprint("calendar", __name__)
calendar.before_request(require_login)  # the page: staff only
feed = Blueprint("calendar_feed", __name__)  # the feed: its token is the key

S = StatementStatus
WEEKS = 6  # the page looks this far ahead; the feed keeps past and cancelled events this long
TOKEN = re.compile(r"[A-Za-z0-9_-]{20,100}")
# What moves an event or changes its status: each of these in the audit trail raises its SEQUENCE.
CHANGES = tuple(a.value for a in (workflow.Action.SCHEDULED, workflow.Action.RESCHEDULED, workflow.Action.WITHDRAWN,
                                  workflow.Action.REVISED, workflow.Action.APPROVED))


@dataclass(frozen=True)
class Entry:
    statement_id: str
    status: str         # the statement's
    at: datetime        # its embargo, aware UTC
    reference: str | None
    title: str          # for the page only, behind its login; never in the feed
    sequence: int
    stamp: datetime     # when the statement last changed

    @property
    def state(self) -> str:
        """The event's STATUS: a draft or approved statement's own embargo is not scheduled yet."""
        if self.status == S.WITHDRAWN.value:
            return "CANCELLED"
        return "TENTATIVE" if self.status in (S.DRAFT.value, S.APPROVED.value) else "CONFIRMED"


def entries(conn: Connection, now: datetime) -> list[Entry]:
    """Every embargo the calendar shows, by time: scheduled ones; a draft's or an approved statement's own
    embargo; and, for ``WEEKS``, released and retracted ones as past events and withdrawn ones as cancelled."""
    since = now - timedelta(weeks=WEEKS)
    rows = conn.execute(select(
        statements.c.id, statements.c.status, statements.c.embargo, statements.c.embargo_source,
        statements.c.updated_at, revisions.c.content).join(revisions, and_(
            revisions.c.statement_id == statements.c.id, revisions.c.number == statements.c.revision)).where(or_(
                statements.c.status.in_((S.SCHEDULED.value, S.DRAFT.value, S.APPROVED.value)),
                and_(statements.c.status.in_((S.RELEASED.value, S.RETRACTED.value)), statements.c.embargo >= since),
                and_(statements.c.status == S.WITHDRAWN.value, statements.c.updated_at >= since)))).mappings().all()
    found: list[tuple[dict, Statement, datetime]] = []
    for row in rows:
        document = Statement.from_dict(row["content"])
        at: datetime | None
        if row["status"] in (S.DRAFT.value, S.APPROVED.value, S.WITHDRAWN.value):
            at = workflow.own_embargo(dict(row), document) or row["embargo"]
        else:
            at = row["embargo"]
        if at is not None and (at >= since or row["status"] == S.WITHDRAWN.value):
            found.append((dict(row), document, at))
    ids = [row["id"] for row, _, _ in found]
    changes: dict[str, int] = dict(conn.execute(select(audit.c.statement_id, func.count()).where(
        audit.c.statement_id.in_(ids), audit.c.action.in_(CHANGES)).group_by(audit.c.statement_id)).all()) if ids else {}
    return sorted((Entry(row["id"], row["status"], at, document.reference, document.title, changes.get(row["id"], 0),
                         row["updated_at"]) for row, document, at in found), key=lambda e: (e.at, e.statement_id))


def base_url() -> str:
    """The web app's public address: ``office.base_url``, else the address this request came to."""
    return site().config.office.base_url or request.url_root.rstrip("/")


def ics(found: list[Entry], base: str, office_name: str) -> bytes:
    host = urlsplit(base).hostname or "localhost"
    cal = Calendar()
    cal.add("prodid", "-//distributor//embargo calendar//EN")
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("x-wr-calname", f"Embargoes, {office_name}")
    cal.add("refresh-interval", timedelta(minutes=15), parameters={"VALUE": "DURATION"})
    cal.add("x-published-ttl", "PT15M")
    for entry in found:
        event = Event()
        event.add("uid", f"{entry.statement_id}@{host}")
        event.add("dtstamp", entry.stamp.astimezone(UTC))
        event.add("dtstart", entry.at.astimezone(UTC))
        event.add("sequence", entry.sequence)
        event.add("status", entry.state)
        event.add("summary", entry.reference or "Embargo")
        event.add("url", f"{base}/statements/{entry.statement_id}")
        event.add("transp", "TRANSPARENT")  # an embargo takes nobody's time
        cal.add_component(event)
    return cal.to_ical()


@feed.route("/calendar/<token>.ics")
def feed_ics(token: str):
    s = site()
    if not TOKEN.fullmatch(token):
        abort(404)
    with reading(s.engine) as conn:
        if users.calendar_user(conn, token) is None:
            abort(404)  # the same page as any unknown path: nothing tells a token that was ever valid
        found = entries(conn, s.clock.now())
    response = Response(ics(found, base_url(), s.config.office.name), mimetype="text/calendar")
    response.headers["Cache-Control"] = "no-store"
    return response


# -- the page ---------------------------------------------------------------------------------------------------------
def days(found: list[Entry], now: datetime) -> list[tuple[str, list[dict]]]:
    """The coming ``WEEKS``' embargoes that are not cancelled, by day in the office's zone."""
    zone = site().config.office.timezone
    coming = [e for e in found if e.state != "CANCELLED" and now <= e.at < now + timedelta(weeks=WEEKS)]

    def local_day(entry: Entry) -> date:
        return entry.at.astimezone(zone).date()

    grouped = []
    for day, items in groupby(coming, key=local_day):
        rows = [{"entry": e, "local": f"{clock_time(e.at.astimezone(zone))} {e.at.astimezone(zone).tzname()}",
                 "utc": when(e.at, "UTC", with_weekday=False)} for e in items]
        grouped.append((f"{day:%A} {day.day} {day:%B %Y}", rows))
    return grouped


def page(new_url: str | None = None):
    s = site()
    now = s.clock.now()
    with reading(s.engine) as conn:
        found = entries(conn, now)
        has_feed = users.has_calendar(conn, g.user.name)
    webcal = "webcal://" + new_url.split("://", 1)[1] if new_url else None
    return render_template("calendar.html", days=days(found, now), weeks=WEEKS, has_feed=has_feed, new_url=new_url,
                           webcal=webcal)


@calendar.route("/calendar")
def calendar_page():
    return page()


@calendar.route("/calendar/address", methods=["POST"])
def new_address():
    """A new feed address for the user, shown in this answer only; the one before stops working."""
    s = site()
    with s.engine.begin() as conn:
        token = users.new_calendar_token(conn, g.user.name, s.clock.now())
        workflow.record(conn, workflow.Action.USER_CHANGED, g.user.name, s.clock.now(), user=g.user.name,
                        change="calendar address")
    return page(users.calendar_url(base_url(), token))
