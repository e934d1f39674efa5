"""SQLAlchemy Core tables. Every change here comes with an Alembic migration in ``migrations/versions``."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import JSON, Boolean, Column, DateTime, ForeignKey, Index, Integer, MetaData, String, Table, Text, UniqueConstraint
from sqlalchemy.sql import false as sa_false
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator):
    """Aware UTC in, aware UTC out, on SQLite (which stores naive text) as on PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect):
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


metadata = MetaData(naming_convention={
    "ix": "ix_%(column_0_label)s", "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s", "pk": "pk_%(table_name)s",
})

statements = Table(
    "statements", metadata,
    Column("id", String(80), primary_key=True),
    Column("status", String(16), nullable=False),
    Column("revision", Integer, nullable=False),
    Column("approved_revision", Integer),
    Column("approved_hash", String(64)),
    Column("approved_by", String(200)),
    Column("approved_at", UTCDateTime),
    Column("embargo", UTCDateTime),
    Column("embargo_source", String(16)),  # "document": its embargo line; "override": set by a person since
    Column("send_embargoed_at", UTCDateTime),
    Column("channels", JSON),
    Column("lists", JSON),  # the recipient lists chosen for the email channel; None: channels.email.list
    Column("released_at", UTCDateTime),
    Column("generation", Integer, nullable=False, default=1, server_default="1"),  # scheduled again after a withdrawal: +1
    Column("published_revision", Integer),   # the revision the public has (the feed, show); corrections move it
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

revisions = Table(
    "revisions", metadata,
    Column("statement_id", String(80), ForeignKey("statements.id"), primary_key=True),
    Column("number", Integer, primary_key=True),
    Column("content_hash", String(64), nullable=False),
    Column("content", JSON, nullable=False),
    Column("source", Text, nullable=False),
    Column("imported_by", String(200), nullable=False),
    Column("imported_at", UTCDateTime, nullable=False),
    Column("note", Text),  # "what changed", for the journalists who hold an earlier revision
)

recipients = Table(
    "recipients", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("list_name", String(100), nullable=False),
    Column("email", String(320), nullable=False),
    Column("email_key", String(320), nullable=False),
    Column("name", String(200), nullable=False, default=""),
    Column("outlet", String(200), nullable=False, default=""),
    Column("embargo_ok", Boolean, nullable=False, default=False),
    Column("language", String(35), nullable=False, default=""),
    Column("tags", String(500), nullable=False, default=""),
    Column("language_by_self", Boolean, nullable=False, default=False, server_default=sa_false()),  # a CSV never overrides it
    Column("joined_by_self", Boolean, nullable=False, default=False, server_default=sa_false()),  # never vetted thereby
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    UniqueConstraint("list_name", "email_key", name="uq_recipients_list_email"),
    Index("ix_recipients_email", "email"),  # the web app joins deliveries (by address) to their outlet
    Index("ix_recipients_list_email", "list_name", "email"),  # who on a list has not got a statement
)

suppressions = Table(
    "suppressions", metadata,
    Column("email_key", String(320), primary_key=True),
    Column("reason", String(200), nullable=False),
    Column("actor", String(200), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

# One row per (statement, revision, channel) once its targets have been planned.
plans = Table(
    "plans", metadata,
    Column("statement_id", String(80), ForeignKey("statements.id"), primary_key=True),
    Column("revision", Integer, primary_key=True),
    Column("channel", String(80), primary_key=True),
    Column("targets", Integer, nullable=False),
    Column("generation", Integer, nullable=False, default=1, server_default="1"),
    Column("planned_at", UTCDateTime, nullable=False),
    Column("completed_at", UTCDateTime),
)

deliveries = Table(
    "deliveries", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("statement_id", String(80), ForeignKey("statements.id"), nullable=False),
    Column("revision", Integer, nullable=False),
    Column("channel", String(80), nullable=False),
    Column("target", String(500), nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),            # every attempt, for ever
    Column("attempts_since_requeue", Integer, nullable=False, default=0, server_default="0"),
    Column("last_error", Text),
    Column("due_at", UTCDateTime, nullable=False),
    Column("next_attempt_at", UTCDateTime, nullable=False),
    Column("lease_until", UTCDateTime),
    Column("claimed_by", String(100)),        # the claim (one batch of one worker)
    Column("worker_id", String(100)),         # the worker holding the claim, whose heartbeat keeps it
    Column("sent_at", UTCDateTime),
    Column("remote_id", String(500)),
    Column("variant", String(16)),  # what was actually sent: "embargoed" or "released"
    Column("kind", String(16), nullable=False, default="statement", server_default="statement"),  # DeliveryKind
    Column("generation", Integer, nullable=False, default=1, server_default="1"),  # of the statement's schedule
    Column("notice", Integer, nullable=False, default=0, server_default="0"),  # notices.number; 0 for a copy
    Column("updated_at", UTCDateTime, nullable=False),
    UniqueConstraint("statement_id", "revision", "channel", "target", "kind", "generation", "notice",
                     name="uq_deliveries_target"),
    Index("ix_deliveries_due", "status", "channel", "next_attempt_at"),
    Index("ix_deliveries_worker", "worker_id"),
    Index("ix_deliveries_statement_status", "statement_id", "channel", "status", "variant", "sent_at"),  # web pages
    Index("ix_deliveries_statement_target", "statement_id", "channel", "target", "status"),  # who has not got it
    Index("ix_deliveries_target", "target"),                                      # one recipient's history
)

# Withdrawal, embargo change, correction, retraction: each numbered per statement. Their deliveries carry the number.
notices = Table(
    "notices", metadata,
    Column("statement_id", String(80), ForeignKey("statements.id"), primary_key=True),
    Column("number", Integer, primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("revision", Integer, nullable=False),
    Column("generation", Integer, nullable=False),
    Column("note", Text),          # for the journalists; the only free text a notice shows
    Column("detail", JSON),        # facts the notice states (old and new embargo)
    Column("actor", String(200), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

# Something a person must look at: open until its cause is gone. Raised and resolved by the workers.
alerts = Table(
    "alerts", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("key", String(200), nullable=False),      # what it is about, e.g. "transport:email"; one open per key
    Column("statement_id", String(80)),
    Column("channel", String(80)),
    Column("text", Text, nullable=False),
    Column("raised_at", UTCDateTime, nullable=False),
    Column("resolved_at", UTCDateTime),
    Index("ix_alerts_open", "key", "resolved_at"),
)

# One row per `distributor run` process. A stale heartbeat (judged by the database's clock) lets others take over.
workers = Table(
    "workers", metadata,
    Column("id", String(100), primary_key=True),  # host:pid:random, unique even where every pid is 1
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("last_seen", UTCDateTime, nullable=False),
    Column("stopped_at", UTCDateTime),
)

attempts = Table(
    "attempts", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("delivery_id", Integer, ForeignKey("deliveries.id"), nullable=False, index=True),
    Column("at", UTCDateTime, nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("detail", Text),
    Column("worker", String(100), nullable=False),
)

audit = Table(
    "audit", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", UTCDateTime, nullable=False),
    Column("actor", String(200), nullable=False),
    Column("action", String(40), nullable=False),
    Column("statement_id", String(80), index=True),
    Column("revision", Integer),
    Column("detail", Text),
)


# People who use the web app. Passwords are argon2 hashes; the role is "manager" (reads) or "editor" (also acts).
users = Table(
    "users", metadata,
    Column("name", String(200), primary_key=True),
    Column("role", String(16), nullable=False),
    Column("password_hash", String(200), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("calendar_token", String(64)),  # SHA-256 of the token in their calendar feed's address, never the token
    Index("ix_users_calendar_token", "calendar_token", unique=True),
)

# Web sessions, held on the server: logging out or an idle spell ends one, whatever the browser keeps.
web_sessions = Table(
    "web_sessions", metadata,
    Column("id", String(64), primary_key=True),  # SHA-256 of the token in the cookie, never the token itself
    Column("user_name", String(200), ForeignKey("users.name", ondelete="CASCADE"), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("last_seen", UTCDateTime, nullable=False),
    Column("ended_at", UTCDateTime),
)

# Every login attempt, for the rate limit (per user and per address) and the record.
login_attempts = Table(
    "login_attempts", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", UTCDateTime, nullable=False),
    Column("user_name", String(200), nullable=False),
    Column("address", String(64), nullable=False),
    Column("ok", Boolean, nullable=False),
    Index("ix_login_attempts_user", "user_name", "at"),
    Index("ix_login_attempts_address", "address", "at"),
)


# The journalists' portal. A session is one redeemed link: the cookie holds a token, this table its SHA-256.
portal_sessions = Table(
    "portal_sessions", metadata,
    Column("id", String(64), primary_key=True),
    Column("email_key", String(320), nullable=False),
    Column("delivery_id", Integer, nullable=False),  # the email whose link opened it
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("agreed_at", UTCDateTime),               # the embargo terms, agreed
    Column("ended_at", UTCDateTime),
    Index("ix_portal_sessions_email", "email_key"),
)

# A revocation ends every link sent before it and every session opened before it.
portal_revocations = Table(
    "portal_revocations", metadata,
    Column("email_key", String(320), primary_key=True),
    Column("revoked_at", UTCDateTime, nullable=False),
    Column("actor", String(200), nullable=False),
)

# What each journalist did: link-checked (a GET of the link: a scanner or a person), redeemed, agreed, view,
# download, and refused token attempts (for the limit per address).
portal_events = Table(
    "portal_events", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", UTCDateTime, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("email_key", String(320)),
    Column("statement_id", String(80)),
    Column("revision", Integer),
    Column("delivery_id", Integer),
    Column("item", String(200)),       # the media item downloaded, and its rendition
    Column("address", String(64), nullable=False),
    Column("user_agent", String(300), nullable=False, default=""),
    Index("ix_portal_events_statement", "statement_id", "kind", "email_key"),
    Index("ix_portal_events_email", "email_key", "at"),
    Index("ix_portal_events_address", "address", "kind", "at"),
)
