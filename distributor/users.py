"""People who use the web app: accounts with argon2 password hashes, server-side sessions, and the login rate limit.

Roles: a ``manager`` reads everything; an ``editor`` may also import, approve, schedule and the rest.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Connection, Engine, delete, func, insert, or_, select, update

from distributor.config import Web
from distributor.errors import InputError, checked_text
from distributor.store import reading
from distributor.store.schema import login_attempts, users, web_sessions

log = logging.getLogger("distributor.web")

HASHER = PasswordHasher()
PASSWORD_MIN = 12


@cache
def dummy_hash() -> str:
    """Verified against when a user does not exist, so that a wrong name costs as long as a wrong password.
    Made on first use (the web app makes it as it starts), never at import: a hash takes 64 MiB for a moment,
    which every process that imports this module, a worker sending mail included, would otherwise carry."""
    return HASHER.hash("not a password of anyone")


class Role(str, Enum):
    MANAGER = "manager"  # reads everything
    EDITOR = "editor"    # also acts: import, approve, schedule, reschedule, withdraw, correct, retract, retry


@dataclass(frozen=True)
class User:
    name: str
    role: Role

    @property
    def editor(self) -> bool:
        return self.role is Role.EDITOR


def user_name(value: str) -> str:
    name = checked_text(value, "NAME", 200).strip()
    if not name or any(c.isspace() for c in name):
        raise InputError("expected a user name without spaces", where="NAME")
    return name


def good_password(password: str) -> str:
    if len(password) < PASSWORD_MIN:
        raise InputError(f"expected a password of at least {PASSWORD_MIN} characters", where="password")
    return password


def add(conn: Connection, name: str, role: Role, password: str, at: datetime) -> None:
    name = user_name(name)
    if conn.execute(select(users.c.name).where(users.c.name == name)).first():
        raise InputError(f"there is a user {name!r} already (use 'distributor users passwd {name}')", where="NAME")
    conn.execute(insert(users).values(name=name, role=role.value, password_hash=HASHER.hash(good_password(password)),
                                      created_at=at, updated_at=at))


def set_password(conn: Connection, name: str, password: str, at: datetime) -> None:
    changed = conn.execute(update(users).where(users.c.name == name).values(
        password_hash=HASHER.hash(good_password(password)), updated_at=at)).rowcount
    if not changed:
        raise InputError(f"no user {name!r} (see 'distributor users list')", where="NAME")
    end_sessions(conn, name, at)  # a new password ends every session of the old one


def remove(conn: Connection, name: str) -> None:
    conn.execute(delete(web_sessions).where(web_sessions.c.user_name == name))
    if not conn.execute(delete(users).where(users.c.name == name)).rowcount:
        raise InputError(f"no user {name!r} (see 'distributor users list')", where="NAME")


def listing(conn: Connection) -> list[dict]:
    return [dict(r) for r in conn.execute(select(users.c.name, users.c.role, users.c.created_at).order_by(
        users.c.name)).mappings()]


def get(conn: Connection, name: str) -> User | None:
    row = conn.execute(select(users.c.name, users.c.role).where(users.c.name == name)).first()
    return User(row[0], Role(row[1])) if row else None


# -- logging in ------------------------------------------------------------------------------------------------------
def _serialise(conn: Connection, *keys: str) -> None:
    """Counting, checking and recording one login are one step per user and per address, whoever else logs in.
    SQLite's writers already queue (BEGIN IMMEDIATE); PostgreSQL takes an advisory lock per key, in one order."""
    if conn.dialect.name != "postgresql":
        return
    for number in sorted({int.from_bytes(hashlib.sha256(f"login:{k}".encode()).digest()[:8], "big", signed=True)
                          for k in keys}):
        conn.execute(select(func.pg_advisory_xact_lock(number)))


def _failures(conn: Connection, column, value: str, since: datetime) -> int:
    return conn.execute(select(func.count()).select_from(login_attempts).where(
        column == value, login_attempts.c.at >= since, login_attempts.c.ok.is_(False))).scalar_one()


def reserve_check(conn: Connection, name: str, address: str, at: datetime, policy: Web, known_device: bool) -> int | None:
    """One password check allowed, recorded beforehand as a failure (its outcome replaces that): the attempt's id.
    None when the limit refuses it, which is never recorded, so refusals cannot keep a user locked out.

    Past ``login_failures`` failures for a user within the window, only a browser holding that user's device
    cookie may still try; past as many from an address, nobody there may."""
    _serialise(conn, name, address)
    since = at - timedelta(minutes=policy.login_window_minutes)
    conn.execute(delete(login_attempts).where(login_attempts.c.at < since))  # the window is all the limit reads
    if _failures(conn, login_attempts.c.address, address, since) >= policy.login_failures:
        return None
    if not known_device and _failures(conn, login_attempts.c.user_name, name, since) >= policy.login_failures:
        return None
    key = conn.execute(insert(login_attempts).values(at=at, user_name=name, address=address, ok=False)
                       ).inserted_primary_key
    assert key is not None
    return int(key[0])


def check_password(conn: Connection, name: str, password: str) -> User | None:
    """The user whose password this is; an unknown name costs as long as a wrong password."""
    row = conn.execute(select(users.c.name, users.c.role, users.c.password_hash).where(users.c.name == name)).first()
    ok: bool
    try:
        ok = HASHER.verify(row[2] if row else dummy_hash(), password)
    except (VerificationError, InvalidHashError):
        ok = False
    return User(row[0], Role(row[1])) if ok and row is not None else None


def authenticate(engine: Engine, name: str, password: str, address: str, at: datetime, policy: Web,
                 known_device: bool = False) -> User | None:
    """The user if the password is theirs and the limit allows; every check is recorded and failures logged.
    The hash is checked outside any transaction, so a login never holds the database's write lock."""
    name = name.replace("\x00", "").strip()[:200]
    password = password.replace("\x00", "")
    with engine.begin() as conn:
        attempt = reserve_check(conn, name, address, at, policy, known_device)
    if attempt is None:
        log.warning("login refused for %r from %s: too many failed attempts", name, address)
        return None
    with reading(engine) as conn:
        user = check_password(conn, name, password)
    if user is None:
        log.warning("failed login for %r from %s", name, address)
        return None
    with engine.begin() as conn:
        conn.execute(update(login_attempts).where(login_attempts.c.id == attempt).values(ok=True))
    return user


# -- sessions --------------------------------------------------------------------------------------------------------
def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start_session(conn: Connection, user: User, at: datetime) -> str:
    """A new session; returns the token for the cookie (only its hash is stored)."""
    token = secrets.token_urlsafe(32)
    conn.execute(insert(web_sessions).values(id=_digest(token), user_name=user.name, created_at=at, last_seen=at))
    return token


def session_user(conn: Connection, token: str, at: datetime, policy: Web) -> User | None:
    """The user of a live session, which this use keeps alive; None once it ended, sat idle too long or reached
    its absolute lifetime (``web.session_max_days``), however busy."""
    idle = at - timedelta(hours=policy.session_idle_hours)
    born = at - timedelta(days=policy.session_max_days)
    row = conn.execute(select(web_sessions.c.user_name, users.c.role).join(
        users, users.c.name == web_sessions.c.user_name).where(
        web_sessions.c.id == _digest(token), web_sessions.c.ended_at.is_(None),
        web_sessions.c.last_seen >= idle, web_sessions.c.created_at >= born)).first()
    if row is None:
        return None
    conn.execute(update(web_sessions).where(web_sessions.c.id == _digest(token)).values(last_seen=at))
    return User(row[0], Role(row[1]))


def end_session(conn: Connection, token: str, at: datetime) -> None:
    conn.execute(update(web_sessions).where(web_sessions.c.id == _digest(token)).values(ended_at=at))


def end_sessions(conn: Connection, name: str, at: datetime) -> None:
    conn.execute(update(web_sessions).where(web_sessions.c.user_name == name,
                                            or_(web_sessions.c.ended_at.is_(None))).values(ended_at=at))


# -- the calendar feed -----------------------------------------------------------------------------------------------
def calendar_url(base_url: str, token: str) -> str:
    """The address of a calendar feed: ``base_url`` is the web app's (``office.base_url``)."""
    return f"{base_url}/calendar/{token}.ics"


def new_calendar_token(conn: Connection, name: str, at: datetime) -> str:
    """A new token for the user's calendar feed, which replaces the one before (its address stops working).
    Returns the token, to be shown once: only its hash is stored."""
    token = secrets.token_urlsafe(32)
    if not conn.execute(update(users).where(users.c.name == name).values(
            calendar_token=_digest(token), updated_at=at)).rowcount:
        raise InputError(f"no user {name!r} (see 'distributor users list')", where="NAME")
    return token


def has_calendar(conn: Connection, name: str) -> bool:
    return conn.execute(select(users.c.calendar_token).where(users.c.name == name)).scalar() is not None


def calendar_user(conn: Connection, token: str) -> User | None:
    """The user whose calendar feed this token opens, if any."""
    row = conn.execute(select(users.c.name, users.c.role).where(users.c.calendar_token == _digest(token))).first()
    return User(row[0], Role(row[1])) if row else None
