"""Engine set-up (SQLite pragmas) and schema creation/upgrade through Alembic."""

from __future__ import annotations

import re
import threading
from pathlib import Path

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError

from distributor.errors import ConfigError
from distributor.store.prepared import through_driver

MIGRATIONS = Path(__file__).parent / "migrations"
READ_ONLY = "distributor_read_only"


def connect(url: str) -> Engine:
    try:
        if url.startswith("sqlite"):
            engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
            event.listen(engine, "connect", _sqlite_pragmas)
            _serialise_writers(engine)
            db_file = url.removeprefix("sqlite:///").partition("?")[0]
            if db_file and db_file != ":memory:" and url.startswith("sqlite:///"):
                Path(db_file).parent.mkdir(parents=True, exist_ok=True)
        else:
            engine = create_engine(url, pool_pre_ping=True, pool_size=8, max_overflow=8)
    except (ArgumentError, NoSuchModuleError):
        raise ConfigError(f"database.url: cannot use {masked(url)!r}; expected e.g. sqlite:///var/distributor.db or "
                          f"postgresql+psycopg://user@host/db") from None
    except OSError as exc:
        raise ConfigError(f"database.url: cannot create the folder for {masked(url)!r} ({exc.strerror})") from None
    except ImportError as exc:
        raise ConfigError(f"database.url: the driver for {url.split(':')[0]!r} is not installed ({exc.name}); "
                          f"for PostgreSQL install distributor[postgres]") from None
    return engine


def masked(url: str) -> str:
    """The URL with any password replaced by ***, even when the URL cannot be parsed."""
    return re.sub(r"(://[^/@:]*:)[^/@]*@", r"\1***@", url)


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    # Let SQLAlchemy issue BEGIN itself so that writes take the lock up front (see _sqlite_begin).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


HOLDS_WRITER = "distributor_holds_writer"


def _serialise_writers(engine: Engine) -> None:
    """A transaction that may write takes SQLite's single write lock from its start (BEGIN IMMEDIATE), so two
    workers never both read a row as claimable and then both claim it. Reads (see `reading`) take no lock: under
    WAL they see a snapshot while a writer works.

    Within one process the writers also queue on a lock of their own: a waiting writer is woken the moment the
    lock is free, where SQLite's busy handler would poll with growing sleeps and could lose, again and again, to
    a thread that commits and begins at once (a lift waiting behind a long send)."""
    writer = threading.Lock()

    def begin(connection) -> None:
        if connection.get_execution_options().get(READ_ONLY, False):
            through_driver(connection, "BEGIN DEFERRED")
            return
        writer.acquire()
        try:
            through_driver(connection, "BEGIN IMMEDIATE")
        except BaseException:
            writer.release()
            raise
        connection.info[HOLDS_WRITER] = True

    def end(connection) -> None:
        if connection.info.pop(HOLDS_WRITER, False):
            writer.release()

    event.listen(engine, "begin", begin)
    event.listen(engine, "commit", end)
    event.listen(engine, "rollback", end)


def reading(engine: Engine) -> Connection:
    """A connection for reads only: on SQLite it never waits for, or holds up, a writer."""
    return engine.connect().execution_options(**{READ_ONLY: True})


def alembic_config(engine: Engine):
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config


def init_schema(engine: Engine) -> str | None:
    """Create or upgrade the schema to the newest revision; safe to repeat. Returns the revision."""
    from alembic import command
    from alembic.runtime.migration import MigrationContext

    try:
        command.upgrade(alembic_config(engine), "head")
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    except OperationalError as exc:
        raise ConfigError(f"database.url: cannot open the database ({exc.orig})") from None


def schema_is_current(engine: Engine) -> bool:
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config(engine)).get_current_head()
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision() == head
