"""Persistence: tables, engine set-up and migrations. The database is the one source of truth."""

from distributor.store.engine import connect, init_schema, reading
from distributor.store import schema

__all__ = ["connect", "init_schema", "reading", "schema"]
