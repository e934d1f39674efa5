"""Persistence: tables, engine set-up and migrations. The database is the one source of truth."""

from distributor.store import schema
from distributor.store.engine import connect, init_schema, reading

__all__ = ["connect", "init_schema", "reading", "schema"]
