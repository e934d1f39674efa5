"""The journalists' own door: a link per journalist in every email, redeemed for a session, never a password.

    email (delivery d) ──/j/<token(d)>── GET: a page with one button (recorded "link-checked"; grants nothing)
                                        POST: redeem ──▶ session ──▶ terms agreed ──▶ /portal/ ──▶ views, downloads

Every rule lives here: which links redeem, which sessions hold, which statements a journalist may see. Each is read
from the database at each request, against the embargo guard's clock, never from a cache.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, and_, delete, func, insert, or_, select, update

from distributor import recipients
from distributor.config import Config, Portal
from distributor.errors import InputError
from distributor.statements.model import StatementStatus
from distributor.store.schema import deliveries, notices, portal_events, portal_revocations, portal_sessions, statements
from distributor.store.schema import recipients as members

S = StatementStatus
log = logging.getLogger("distributor.portal")
MAC_BYTES = 18  # 144 bits
SALT = b"distributor-portal-link\0"


class Event:
    LINK_CHECKED = "link-checked"  # a GET of a link: a mail scanner or a person; never a view
    REDEEMED = "redeemed"
    AGREED = "agreed"
    VIEW = "view"
    DOWNLOAD = "download"
    REFUSED = "refused"  # an unknown, expired or revoked token: counted for the limit per address


# -- links -------------------------------------------------------------------------------------------------------

def _mac(secret: str, delivery_id: int) -> bytes:
    return hmac.new(secret.encode(), SALT + str(delivery_id).encode(), hashlib.sha256).digest()[:MAC_BYTES]


def link_token(secret: str, delivery_id: int) -> str:
    """URL-safe: the delivery's id (so that it can be found) and an HMAC of it under the web secret (so that it
    cannot be forged or guessed). The same delivery always gets the same token: a resend carries the same link."""
    raw = delivery_id.to_bytes(6, "big") + _mac(secret, delivery_id)
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


TOKEN_LENGTH = len(link_token("x", 1))
PLACEHOLDER = ("PORTALLINK" * 4)[:TOKEN_LENGTH]  # where an email's shared body takes each journalist's token


def delivery_of(secret: str, token: str) -> int | None:
    """The delivery a token was made for; None for a forged, damaged or foreign one."""
    if len(token) != TOKEN_LENGTH:
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (ValueError, TypeError):
        return None
    delivery_id = int.from_bytes(raw[:6], "big")
    return delivery_id if hmac.compare_digest(raw[6:], _mac(secret, delivery_id)) else None


def link_url(base_url: str, secret: str, delivery_id: int) -> str:
    return f"{base_url}/j/{link_token(secret, delivery_id)}"


# -- standing ----------------------------------------------------------------------------------------------------

def chosen_lists(row, config: Config) -> tuple[str, ...]:
    email = config.channels.get("email")
    return tuple(row.lists or ((email.list,) if email else ()))


def in_good_standing(conn: Connection, email_key: str) -> bool:
    """Vetted for embargoes on some list (by the office, never by joining it themselves), and not unsubscribed."""
    if recipients.is_suppressed(conn, [email_key]):
        return False
    return conn.execute(select(members.c.id).where(
        members.c.email_key == email_key, members.c.embargo_ok.is_(True),
        members.c.joined_by_self.is_(False)).limit(1)).first() is not None


def revoked_at(conn: Connection, email_key: str) -> datetime | None:
    return conn.execute(select(portal_revocations.c.revoked_at).where(
        portal_revocations.c.email_key == email_key)).scalar()


@dataclass(frozen=True)
class Link:
    delivery_id: int
    email_key: str
    address: str
    statement_id: str


def redeemable(conn: Connection, delivery_id: int, now: datetime, portal: Portal) -> Link | None:
    """The link's journalist, if the link works now: its email went out (or was being sent), it is not past
    ``link_days`` after its statement's embargo, it was sent after any revocation, and the journalist still stands."""
    row = conn.execute(select(
        deliveries.c.target, deliveries.c.statement_id, deliveries.c.sent_at, deliveries.c.updated_at,
        deliveries.c.channel, statements.c.embargo, statements.c.released_at,
    ).join(statements, statements.c.id == deliveries.c.statement_id).where(
        deliveries.c.id == delivery_id)).first()
    if row is None or row.channel != "email":
        return None
    anchor = row.embargo or row.released_at or row.updated_at
    if now > anchor + timedelta(days=portal.link_days):
        return None
    email_key = recipients.key(row.target)
    revoked = revoked_at(conn, email_key)
    issued = row.sent_at or row.updated_at
    if revoked is not None and issued <= revoked:
        return None
    if not in_good_standing(conn, email_key):
        return None
    return Link(delivery_id, email_key, row.target, row.statement_id)


# -- sessions ----------------------------------------------------------------------------------------------------

def _hashed(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start_session(conn: Connection, link: Link, now: datetime, portal: Portal) -> tuple[str, bool]:
    """A new session for the link's journalist: the token for the cookie (only its hash is kept), and whether the
    terms are agreed already (by an agreement of an earlier session)."""
    token = secrets.token_urlsafe(32)
    agreed = has_agreed_before(conn, link.email_key)
    conn.execute(insert(portal_sessions).values(
        id=_hashed(token), email_key=link.email_key, delivery_id=link.delivery_id, created_at=now,
        expires_at=now + timedelta(hours=portal.session_hours), agreed_at=now if agreed else None))
    return token, agreed


@dataclass(frozen=True)
class Journalist:
    session_id: str
    email_key: str
    address: str
    name: str
    agreed: bool
    delivery_id: int


def journalist(conn: Connection, token: str | None, now: datetime) -> Journalist | None:
    """The session's journalist, if it holds now: not ended, not expired, not revoked since it began, and the
    journalist still stands."""
    if not token or len(token) > 100:
        return None
    row = conn.execute(select(portal_sessions).where(portal_sessions.c.id == _hashed(token))).mappings().first()
    if row is None or row["ended_at"] is not None or now >= row["expires_at"]:
        return None
    revoked = revoked_at(conn, row["email_key"])
    if revoked is not None and row["created_at"] <= revoked:
        return None
    if not in_good_standing(conn, row["email_key"]):
        return None
    member = conn.execute(select(members.c.email, members.c.name).where(
        members.c.email_key == row["email_key"]).order_by(members.c.embargo_ok.desc(), members.c.id).limit(1)).first()
    address = member.email if member else row["email_key"]
    return Journalist(row["id"], row["email_key"], address, member.name if member else "",
                      row["agreed_at"] is not None, row["delivery_id"])


def agree(conn: Connection, who: Journalist, now: datetime) -> None:
    conn.execute(update(portal_sessions).where(portal_sessions.c.id == who.session_id).values(agreed_at=now))


def has_agreed_before(conn: Connection, email_key: str) -> bool:
    return conn.execute(select(portal_events.c.id).where(
        portal_events.c.email_key == email_key, portal_events.c.kind == Event.AGREED).limit(1)).first() is not None


def end_session(conn: Connection, who: Journalist, now: datetime) -> None:
    conn.execute(update(portal_sessions).where(portal_sessions.c.id == who.session_id).values(ended_at=now))


def revoke(conn: Connection, email: str, actor: str, now: datetime) -> int:
    """End every link sent to the address before now, and every session it has open; the number of sessions
    ended. Links in later emails work again, unless the journalist lost their standing."""
    email_key = recipients.key(recipients.typed_address(email, "EMAIL"))
    known = conn.execute(select(func.count()).select_from(members).where(members.c.email_key == email_key)).scalar()
    if not known:
        raise InputError(f"no recipient {email!r} on any list (see 'distributor recipients list')", where="EMAIL")
    found = conn.execute(select(portal_revocations.c.email_key).where(
        portal_revocations.c.email_key == email_key)).first()
    if found:
        conn.execute(update(portal_revocations).where(portal_revocations.c.email_key == email_key).values(
            revoked_at=now, actor=actor))
    else:
        conn.execute(insert(portal_revocations).values(email_key=email_key, revoked_at=now, actor=actor))
    return conn.execute(update(portal_sessions).where(
        portal_sessions.c.email_key == email_key, portal_sessions.c.ended_at.is_(None),
        portal_sessions.c.expires_at > now).values(ended_at=now)).rowcount


# -- what a journalist may see -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Entitled:
    """A statement as one journalist may see it now."""

    id: str
    status: str
    revision: int            # the revision they see: the public's once released, else the one scheduled
    embargo: datetime | None
    embargoed: bool          # still under embargo now
    withdrawn: bool


def _held(conn: Connection, who: Journalist):
    """(statement, generation) of each copy of a statement the journalist was sent: a copy, not a notice, and of one
    schedule only (a statement withdrawn and issued again is another issue, perhaps to other lists)."""
    addresses = {who.address} | {r[0] for r in conn.execute(select(members.c.email).where(
        members.c.email_key == who.email_key))}
    return select(deliveries.c.statement_id, deliveries.c.generation).where(
        deliveries.c.channel == "email", deliveries.c.status == "sent", deliveries.c.kind == "statement",
        deliveries.c.target.in_(sorted(addresses)))


def entitled(conn: Connection, who: Journalist, statement_id: str | None, now: datetime, config: Config
             ) -> list[Entitled]:
    """The statements the journalist may see now (or just the one asked for): those released, and those under
    embargo that are theirs under the email's own rules (vetted on one of its lists, their copy's send time come)
    or of which they hold a copy. A withdrawn one only if they held a copy of it, and then only as withdrawn."""
    query = select(statements).where(statements.c.status.in_(
        [S.SCHEDULED.value, S.RELEASED.value, S.WITHDRAWN.value, S.RETRACTED.value]))
    if statement_id is not None:
        query = query.where(statements.c.id == statement_id)
    rows = conn.execute(query.order_by(statements.c.embargo.desc(), statements.c.id)).all()
    if not rows:
        return []
    held = {(r[0], r[1]) for r in conn.execute(_held(conn, who).where(
        deliveries.c.statement_id.in_([r.id for r in rows])).distinct())}
    vetted_on = {r[0] for r in conn.execute(select(members.c.list_name).where(
        members.c.email_key == who.email_key, members.c.embargo_ok.is_(True), members.c.joined_by_self.is_(False)))}
    found = []
    for row in rows:
        released = row.status == S.RELEASED.value and row.embargo is not None and row.embargo <= now
        if row.status == S.RETRACTED.value:
            continue
        holds = (row.id, row.generation) in held  # a copy of this issue of it
        if row.status == S.WITHDRAWN.value:
            if holds:
                found.append(Entitled(row.id, row.status, row.revision, row.embargo, True, True))
            continue
        # the public's revision once released; else the approved one: never a draft (a correction in the making)
        shown = row.published_revision if row.status == S.RELEASED.value else row.approved_revision
        if shown is None:
            continue
        if released:
            found.append(Entitled(row.id, row.status, shown, row.embargo, False, False))
            continue
        if "email" not in (row.channels or ()):  # nobody gets it under embargo: nobody reads it before the lift
            continue
        lists = set(chosen_lists(row, config))
        due = row.send_embargoed_at is None or row.send_embargoed_at <= now
        if holds or (lists & vetted_on and due):
            found.append(Entitled(row.id, row.status, shown, row.embargo, True, False))
    return found


def notices_of(conn: Connection, statement_id: str) -> list[dict]:
    """What the holders were told, oldest first: moved embargoes, corrections, a withdrawal."""
    return [dict(r) for r in conn.execute(select(notices.c.kind, notices.c.note, notices.c.detail,
                                                 notices.c.created_at).where(
        notices.c.statement_id == statement_id).order_by(notices.c.number)).mappings()]


def withdrawal_note(conn: Connection, statement_id: str) -> str | None:
    return conn.execute(select(notices.c.note).where(
        notices.c.statement_id == statement_id, notices.c.kind == "withdrawal").order_by(
        notices.c.number.desc()).limit(1)).scalar()


# -- their own settings ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Settings:
    language: str
    lists: dict[str, bool]   # each self-service list: whether they are on it
    subscribed: bool


def own_settings(conn: Connection, who: Journalist, portal_settings: Portal) -> Settings:
    rows = conn.execute(select(members.c.list_name, members.c.language).where(
        members.c.email_key == who.email_key)).all()
    on = {r.list_name for r in rows}
    language = next((r.language for r in rows if r.language), "")
    return Settings(language, {name: name in on for name in portal_settings.self_service_lists},
                    not recipients.is_suppressed(conn, [who.email_key]))


def language_tag(value: str) -> str:
    """A BCP 47 language tag, in its standard form (``pt-br`` → ``pt-BR``); an error naming the field."""
    import langcodes

    text = value.strip()
    try:
        if text and len(text) <= 35 and langcodes.tag_is_valid(text):
            return langcodes.standardize_tag(text)
    except ValueError:
        pass
    raise InputError(f"expected a language tag such as en, fr or pt-BR, got {value[:40]!r}", where="language")


def choose_language(conn: Connection, who: Journalist, value: str, at: datetime) -> str:
    """The journalist's language on every list they are on, marked as theirs: a later CSV import keeps it."""
    tag = language_tag(value)
    conn.execute(update(members).where(members.c.email_key == who.email_key).values(
        language=tag, language_by_self=True, updated_at=at))
    return tag


def join(conn: Connection, who: Journalist, list_name: str, at: datetime, portal_settings: Portal) -> bool:
    """On a self-service list, never vetted thereby (vetting is the office's); False if already on it."""
    if list_name not in portal_settings.self_service_lists:
        raise InputError(f"{list_name!r} is not a list you can join here", where="list")
    if conn.execute(select(members.c.id).where(members.c.list_name == list_name,
                                               members.c.email_key == who.email_key)).first():
        return False
    conn.execute(insert(members).values(
        list_name=list_name, email=who.address, email_key=who.email_key, name=who.name, outlet="", embargo_ok=False,
        language=own_settings(conn, who, portal_settings).language, tags="", joined_by_self=True, created_at=at,
        updated_at=at))
    return True


def leave(conn: Connection, who: Journalist, list_name: str, portal_settings: Portal) -> bool:
    """Off a self-service list, whoever put them on it; False if not on it."""
    if list_name not in portal_settings.self_service_lists:
        raise InputError(f"{list_name!r} is not a list you can leave here", where="list")
    return conn.execute(delete(members).where(members.c.list_name == list_name,
                                              members.c.email_key == who.email_key)).rowcount > 0


# -- the record --------------------------------------------------------------------------------------------------

def record(conn: Connection, kind: str, at: datetime, address: str, user_agent: str, email_key: str | None = None,
           statement_id: str | None = None, revision: int | None = None, delivery_id: int | None = None,
           item: str | None = None) -> None:
    conn.execute(insert(portal_events).values(_event(kind, at, address, user_agent, email_key, statement_id,
                                                     revision, delivery_id, item)))


def _event(kind, at, address, user_agent, email_key=None, statement_id=None, revision=None, delivery_id=None,
           item=None) -> dict:
    return {"kind": kind, "at": at, "address": address[:64], "user_agent": (user_agent or "")[:300],
            "email_key": email_key, "statement_id": statement_id, "revision": revision, "delivery_id": delivery_id,
            "item": item[:200] if item else None}


def refused_recently(conn: Connection, address: str, now: datetime, portal: Portal) -> bool:
    """Past the limit of failed and unknown token attempts from this address within the window."""
    since = now - timedelta(minutes=portal.window_minutes)
    count = conn.execute(select(func.count()).select_from(portal_events).where(
        portal_events.c.address == address[:64], portal_events.c.kind == Event.REFUSED,
        portal_events.c.at >= since)).scalar() or 0
    return count >= portal.failures


def prune(conn: Connection, now: datetime, portal: Portal) -> int:
    """Forget events older than ``keep_days``, with their addresses and user agents, and sessions long over."""
    cutoff = now - timedelta(days=portal.keep_days)
    removed = conn.execute(delete(portal_events).where(portal_events.c.at < cutoff)).rowcount
    conn.execute(delete(portal_sessions).where(portal_sessions.c.expires_at < cutoff))
    return removed


VIEW_COLUMNS = ("journalist", "first_view", "last_view", "views", "downloads")


def opened_by(conn: Connection, statement_id: str) -> list[dict]:
    """Who opened the statement in the portal: each journalist, their first and last view, and counts."""
    viewed = or_(portal_events.c.kind == Event.VIEW, portal_events.c.kind == Event.DOWNLOAD)
    rows = conn.execute(select(
        portal_events.c.email_key,
        func.min(portal_events.c.at).filter(portal_events.c.kind == Event.VIEW),
        func.max(portal_events.c.at).filter(portal_events.c.kind == Event.VIEW),
        func.count().filter(portal_events.c.kind == Event.VIEW),
        func.count().filter(portal_events.c.kind == Event.DOWNLOAD),
    ).where(and_(portal_events.c.statement_id == statement_id, viewed)).group_by(
        portal_events.c.email_key).order_by(func.min(portal_events.c.at), portal_events.c.email_key)).all()
    return [dict(zip(VIEW_COLUMNS, row, strict=True)) for row in rows]


def activity(conn: Connection, email_key: str, limit: int = 200) -> list[dict]:
    """One journalist's record in the portal, newest first: redemptions, agreements, views and downloads."""
    return [dict(r) for r in conn.execute(select(
        portal_events.c.at, portal_events.c.kind, portal_events.c.statement_id, portal_events.c.revision,
        portal_events.c.item, portal_events.c.address, portal_events.c.user_agent).where(
        portal_events.c.email_key == email_key).order_by(portal_events.c.at.desc(), portal_events.c.id.desc()).limit(
        limit)).mappings()]


class Recorder:
    """Views and downloads, written in batches: a page's request only appends to a list; a thread writes the list
    every ``interval`` seconds in one transaction (and at close)."""

    def __init__(self, engine, interval: float = 1.0, portal_settings: Portal | None = None, clock=None):
        self.engine = engine
        self.interval = interval
        self.portal_settings = portal_settings
        self.clock = clock
        self._pruned = 0.0
        self._pending: list[dict] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="portal-recorder", daemon=True)
        self._thread.start()

    def add(self, kind: str, at: datetime, address: str, user_agent: str, **fields) -> None:
        with self._lock:
            self._pending.append(_event(kind, at, address, user_agent, **fields))

    def flush(self) -> int:
        with self._lock:
            batch, self._pending = self._pending, []
        if batch:
            try:
                with self.engine.begin() as conn:
                    conn.execute(insert(portal_events), batch)
            except Exception:
                with self._lock:  # kept for the next try: no view is lost to a database away for a moment
                    self._pending[:0] = batch
                raise
        return len(batch)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.flush()
                if self.portal_settings is not None and self.clock is not None and time.monotonic() > self._pruned:
                    self._pruned = time.monotonic() + 3600  # once an hour
                    with self.engine.begin() as conn:
                        prune(conn, self.clock.now(), self.portal_settings)
            except Exception:
                log.exception("could not record the portal's views yet")

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.flush()
