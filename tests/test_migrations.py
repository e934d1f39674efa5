"""The Alembic migrations against ``distributor/store/schema.py``, on SQLite and on PostgreSQL.

1. Upgrading an empty database to head builds exactly the tables of schema.py (autogenerate finds nothing).
2. Rows written under the FIRST migration's schema, by plain SQL, survive every later migration with their values;
   times stay aware UTC. New migrations need no change here: the rows are read back through the head schema,
   column by column, and only the columns the first schema had are compared.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import MetaData, func, inspect, select, text

from distributor import deliveries as delivery_queries
from distributor import workflow
from distributor.store import connect, init_schema
from distributor.store.engine import alembic_config, schema_is_current
from distributor.store.schema import UTCDateTime, metadata


def empty(engine) -> None:
    """Drop every table, including any a migration of another branch left behind in a shared database."""
    found = MetaData()
    found.reflect(engine)
    found.drop_all(engine)


def test_migrations_build_exactly_the_tables_of_schema_py(db_url):
    engine = connect(db_url)
    try:
        empty(engine)
        init_schema(engine)
        assert schema_is_current(engine)
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            differences = compare_metadata(context, metadata)
        assert differences == []
        assert set(inspect(engine).get_table_names()) == set(metadata.tables) | {"alembic_version"}
    finally:
        engine.dispose()


def test_a_second_init_is_a_no_op(db_url):
    engine = connect(db_url)
    try:
        first = init_schema(engine)
        assert init_schema(engine) == first
        assert first == ScriptDirectory.from_config(alembic_config(engine)).get_current_head()
    finally:
        engine.dispose()


# -- rows written under the first migration -------------------------------------------------------------------

def at(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


T0 = at(2026, 11, 27, 9, 30, 0, 123456)
EMBARGO = at(2026, 12, 15, 0, 1)
CONTENT = {  # a statement as Statement.to_dict() wrote it under the first schema
    "title": "Riverland: “Flood maps” must be published", "body": ["Residents of Åsgård & Zürich-Nord.", "- a list item"],
    "kind": "Press Release", "date": "2026-11-27", "reference": "Index: NHRN 12/004/2026", "serial": "News Service No. 118",
    "embargo": "2026-12-15T00:01:00Z", "contacts": "For more information please call +44 20 7946 0000",
    "classification": "public document", "summary": None, "body_html": None, "channels": ["email", "wire"],
    "language": "en", "located": None, "source_format": "text"}

# Table by table, in foreign-key order; each row as the application would have written it (aware UTC times, JSON as
# Python values, booleans). Integer ids are left to the database and read back; "{delivery:TARGET}" in attempts is
# replaced by that delivery's id.
FIRST_SCHEMA_ROWS: dict[str, list[dict]] = {
    "statements": [
        {"id": "nhrn-12-004-2026", "status": "released", "revision": 2, "approved_revision": 2,
         "approved_hash": "a" * 64, "approved_by": "Maya Okafor", "approved_at": T0 + timedelta(hours=2),
         "embargo": EMBARGO, "send_embargoed_at": T0 + timedelta(hours=3), "channels": ["email", "wire", "feed"],
         "released_at": EMBARGO + timedelta(microseconds=250_000), "created_at": T0,
         "updated_at": EMBARGO + timedelta(microseconds=250_000)},
        {"id": "2026-11-28-a-draft", "status": "draft", "revision": 1, "approved_revision": None,
         "approved_hash": None, "approved_by": None, "approved_at": None, "embargo": None, "send_embargoed_at": None,
         "channels": None, "released_at": None, "created_at": T0 + timedelta(days=1),
         "updated_at": T0 + timedelta(days=1)},
    ],
    "revisions": [
        {"statement_id": "nhrn-12-004-2026", "number": 1, "content_hash": "1" * 64, "content": CONTENT,
         "source": "examples/statements/nhrn-12-004-2026.txt", "imported_by": "cli", "imported_at": T0},
        {"statement_id": "nhrn-12-004-2026", "number": 2, "content_hash": "a" * 64,
         "content": {**CONTENT, "title": "Corrected", "embargo": None}, "source": "nhrn.txt", "imported_by": "Zoë",
         "imported_at": T0 + timedelta(hours=1)},
        {"statement_id": "2026-11-28-a-draft", "number": 1, "content_hash": "d" * 64,
         "content": {**CONTENT, "reference": None, "body_html": "<p>x</p>"},
         "source": "draft.md", "imported_by": "cli", "imported_at": T0 + timedelta(days=1)},
    ],
    "recipients": [
        {"list_name": "embargo", "email": "Ana@Paper.example.com", "email_key": "ana@paper.example.com",
         "name": "Ana Lima", "outlet": "Paper", "embargo_ok": True, "language": "pt", "tags": "health,rivers",
         "created_at": T0, "updated_at": T0 + timedelta(minutes=5)},
        {"list_name": "embargo", "email": "zoe@radio.example.org", "email_key": "zoe@radio.example.org",
         "name": "Zoë Ærø", "outlet": "", "embargo_ok": False, "language": "", "tags": "",
         "created_at": T0, "updated_at": T0},
    ],
    "suppressions": [
        {"email_key": "gone@paper.example.com", "reason": "unsubscribed", "actor": "cli", "created_at": T0},
    ],
    "plans": [
        {"statement_id": "nhrn-12-004-2026", "revision": 2, "channel": "email", "targets": 2,
         "planned_at": T0 + timedelta(hours=3), "completed_at": T0 + timedelta(hours=3, seconds=4)},
        {"statement_id": "nhrn-12-004-2026", "revision": 2, "channel": "wire", "targets": 1, "planned_at": EMBARGO,
         "completed_at": None},
    ],
    "deliveries": [
        {"statement_id": "nhrn-12-004-2026", "revision": 2, "channel": "email", "target": "Ana@Paper.example.com",
         "status": "sent", "attempts": 1, "last_error": None, "due_at": T0 + timedelta(hours=3),
         "next_attempt_at": T0 + timedelta(hours=3), "lease_until": None, "claimed_by": None,
         "sent_at": T0 + timedelta(hours=3, seconds=1), "remote_id": "<nhrn-12-004-2026.r2.abc@nhrn.example.org>",
         "variant": "embargoed", "updated_at": T0 + timedelta(hours=3, seconds=1)},
        {"statement_id": "nhrn-12-004-2026", "revision": 2, "channel": "email", "target": "zoe@radio.example.org",
         "status": "retrying", "attempts": 3, "last_error": "RCPT TO: 452 4.3.1 Insufficient storage",
         "due_at": T0 + timedelta(hours=3), "next_attempt_at": T0 + timedelta(hours=3, minutes=4, microseconds=7),
         "lease_until": None, "claimed_by": None, "sent_at": None, "remote_id": None, "variant": None,
         "updated_at": T0 + timedelta(hours=3, minutes=2)},
        {"statement_id": "nhrn-12-004-2026", "revision": 2, "channel": "wire", "target": "newswire",
         "status": "sending", "attempts": 0, "last_error": None, "due_at": EMBARGO, "next_attempt_at": EMBARGO,
         "lease_until": EMBARGO + timedelta(minutes=5), "claimed_by": "host-a:4242/0123456789ab", "sent_at": None,
         "remote_id": None, "variant": None, "updated_at": EMBARGO},
    ],
    "attempts": [
        {"delivery_id": "{delivery:Ana@Paper.example.com}", "at": T0 + timedelta(hours=3, seconds=1),
         "outcome": "sent", "detail": None, "worker": "host-a:4242"},
        {"delivery_id": "{delivery:zoe@radio.example.org}", "at": T0 + timedelta(hours=3, seconds=1),
         "outcome": "retry", "detail": "RCPT TO: 452 4.3.1 Insufficient storage", "worker": "host-a:4242"},
        {"delivery_id": "{delivery:newswire}", "at": EMBARGO, "outcome": "abandoned",
         "detail": "lease of host-b:1/ffff expired; taken over", "worker": "host-a:4242"},
    ],
    "audit": [
        {"at": T0, "actor": "cli", "action": "imported", "statement_id": "nhrn-12-004-2026", "revision": 1,
         "detail": json.dumps({"hash": "1" * 64, "source": "nhrn.txt"})},
        {"at": EMBARGO, "actor": "scheduler@host-a:4242", "action": "released", "statement_id": "nhrn-12-004-2026",
         "revision": 2, "detail": json.dumps({"late_seconds": 0.25})},
        {"at": T0 + timedelta(minutes=1), "actor": "cli", "action": "unsubscribed", "statement_id": None,
         "revision": None, "detail": None},
    ],
}


def first_revision(engine) -> str:
    [base] = ScriptDirectory.from_config(alembic_config(engine)).get_bases()
    return base


def as_stored(value, column_type, dialect: str):
    """A Python value as plain SQL would write it: SQLite keeps UTC times as naive text, JSON as text."""
    if isinstance(value, datetime):
        if dialect == "sqlite":
            return value.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")
        return value
    if value is not None and column_type == "json":
        return json.dumps(value, ensure_ascii=False)
    return value


def insert_plain(conn, table: str, row: dict, json_columns: set[str]) -> None:
    dialect = conn.dialect.name
    names = list(row)
    values = ", ".join(
        f"CAST(:{n} AS JSON)" if n in json_columns and dialect == "postgresql" and row[n] is not None else f":{n}"
        for n in names)
    conn.execute(text(f"INSERT INTO {table} ({', '.join(names)}) VALUES ({values})"),
                 {n: as_stored(row[n], "json" if n in json_columns else None, dialect) for n in names})


def fill_first_schema(engine) -> dict[str, list[dict]]:
    """Insert FIRST_SCHEMA_ROWS by plain SQL; returns them with the ids the database gave."""
    columns = {t: {c["name"]: c for c in inspect(engine).get_columns(t)} for t in FIRST_SCHEMA_ROWS}
    json_columns = {t: {n for n, c in cs.items() if "JSON" in str(c["type"]).upper()} for t, cs in columns.items()}
    written: dict[str, list[dict]] = {}
    delivery_ids: dict[str, int] = {}
    with engine.begin() as conn:
        for table, rows in FIRST_SCHEMA_ROWS.items():
            written[table] = []
            for row in rows:
                row = {k: (delivery_ids[v[len("{delivery:"):-1]] if isinstance(v, str) and v.startswith("{delivery:")
                           else v) for k, v in row.items()}
                insert_plain(conn, table, row, json_columns[table])
                if "id" in columns[table] and "id" not in row:
                    row = {"id": conn.execute(text(f"SELECT max(id) FROM {table}")).scalar_one(), **row}
                    if table == "deliveries":
                        delivery_ids[row["target"]] = row["id"]
                written[table].append(row)
    return written


def test_rows_written_under_the_first_migration_survive_every_later_one(db_url):
    engine = connect(db_url)
    try:
        empty(engine)
        config = alembic_config(engine)
        command.upgrade(config, first_revision(engine))
        first_tables = set(inspect(engine).get_table_names()) - {"alembic_version"}
        assert first_tables == set(FIRST_SCHEMA_ROWS), "fill every table the first migration creates"
        written = fill_first_schema(engine)

        init_schema(engine)
        engine.dispose()  # a fresh connection sees the upgraded tables, as a new process would
        assert schema_is_current(engine)

        with engine.connect() as conn:
            for name, rows in written.items():
                table = metadata.tables[name]
                assert conn.execute(select(func.count()).select_from(table)).scalar_one() == len(rows), name
                key = [c.name for c in table.primary_key.columns]
                for row in rows:
                    stored = conn.execute(select(*[table.c[c] for c in row]).where(
                        *[table.c[k] == row[k] for k in key])).mappings().one()
                    assert dict(stored) == row, (name, row)
                    for column, value in stored.items():
                        if isinstance(table.c[column].type, UTCDateTime) and value is not None:
                            assert value.utcoffset() == timedelta(0), (name, column)
                            raw = conn.execute(select(text(column)).select_from(table).where(
                                *[table.c[k] == row[k] for k in key])).scalar_one()
                            if conn.dialect.name == "sqlite":  # naive text, meaning UTC
                                assert datetime.fromisoformat(raw).replace(tzinfo=UTC) == row[column]
                            else:  # still timestamp with time zone: an aware instant
                                assert raw.tzinfo is not None and raw == row[column]

        # The application reads and extends the migrated data as its own.
        with engine.begin() as conn:
            log = list(delivery_queries.log_rows(conn, "nhrn-12-004-2026"))
            assert [(r["target"], r["status"]) for r in log] == [
                ("Ana@Paper.example.com", "sent"), ("zoe@radio.example.org", "retrying"), ("newswire", "sending")]
            assert delivery_queries.holders(conn, "nhrn-12-004-2026", 1) == ["Ana@Paper.example.com"]
            assert workflow.content(conn, "nhrn-12-004-2026", 1).to_dict() == CONTENT
            workflow.record(conn, workflow.Action.PLANNED, "test", EMBARGO, "nhrn-12-004-2026", 2, channel="feed")
            newest = conn.execute(select(func.max(metadata.tables["audit"].c.id))).scalar_one()
        assert newest > max(r["id"] for r in written["audit"])
    finally:
        engine.dispose()
