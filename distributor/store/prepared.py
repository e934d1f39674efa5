"""Statements of the hottest path, compiled once per dialect and run through the driver's ``executemany``.

Recording an outcome as the relay accepts it means a commit of one to a few rows, hundreds of times a second;
SQLAlchemy's per-call work (compiling from its cache, building the execution context, processing each
parameter set) then costs more than the database's own. A :class:`Prepared` statement keeps the SQL text, the
order of its parameters and each parameter's type processing from one compile, so each call is the driver's
work alone. The statement is still written in SQLAlchemy Core, so it stays checked against ``schema.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.expression import Executable

_FIXED = object()


@dataclass(frozen=True)
class _Form:
    sql: str
    names: tuple[str, ...]  # the parameters in the order the SQL names them
    # per parameter: the value fixed in the statement itself (or _FIXED's absence) and the column type's processing
    steps: tuple[tuple[str, Any, Callable[[Any], Any] | None], ...]
    positional: bool

    def parameters(self, rows: Iterable[dict[str, Any]]) -> list[tuple | dict]:
        """Each row's parameters; a value repeated from row to row (a chunk's one due time) is processed once."""
        memos: list[dict[Any, Any]] = [{} for _ in self.steps]
        every = []
        for row in rows:
            values = []
            for (name, fixed, process), memo in zip(self.steps, memos, strict=True):
                value = row.get(name, fixed)
                if value is _FIXED:
                    raise KeyError(name)
                if process is not None and value is not None:
                    try:
                        processed = memo[value]
                    except KeyError:
                        processed = memo[value] = process(value)
                    except TypeError:  # unhashable
                        processed = process(value)
                    value = processed
                values.append(value)
            every.append(tuple(values) if self.positional else dict(zip(self.names, values, strict=True)))
        return every


class Prepared:
    def __init__(self, statement: Executable):
        self.statement = statement
        self._forms: dict[str, _Form] = {}

    def form(self, conn: Connection) -> _Form:
        dialect = conn.dialect
        found = self._forms.get(dialect.name)
        if found is None:
            compiled = self.statement.compile(dialect=dialect)  # type: ignore[attr-defined]
            binds = {name: bind for bind, name in compiled.bind_names.items()}
            names = tuple(compiled.positiontup) if compiled.positional else tuple(binds)
            steps = tuple((name, _FIXED if binds[name].required else binds[name].value,
                           binds[name].type.dialect_impl(dialect).bind_processor(dialect)) for name in names)
            found = _Form(compiled.string, names, steps, compiled.positional)
            self._forms[dialect.name] = found
        return found

    def execute_many(self, conn: Connection, rows: Iterable[dict[str, Any]]) -> None:
        """Run the statement once per row (a dict of its parameters by name) in the caller's transaction."""
        form = self.form(conn)
        parameters = form.parameters(rows)
        if not parameters:
            return
        through_driver(conn, form.sql, parameters)


def through_driver(conn: Connection, sql: str, parameters: list | None = None) -> None:
    """``sql`` run by the driver alone (with ``parameters``, once per set), its errors raised as SQLAlchemy's."""
    dbapi = conn.dialect.loaded_dbapi
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        if parameters is None:
            cursor.execute(sql)
        else:
            cursor.executemany(sql, parameters)
    except dbapi.Error as exc:
        raise DBAPIError.instance(sql, parameters, exc, dbapi.Error, dialect=conn.dialect) from exc
    finally:
        cursor.close()
