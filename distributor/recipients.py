"""Recipient lists: CSV import with email-validator, and suppression (unsubscribe) that no import lifts."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import ColumnElement, Connection, Select, bindparam, delete, insert, select, update

from distributor import deliveries
from distributor.errors import InputError, checked_text
from distributor.files import decode, read_bytes
from distributor.progress import Progress
from distributor.store.schema import recipients, suppressions

COLUMNS = ("email", "name", "outlet", "embargo_ok", "language", "tags")
TRUE = {"yes", "true", "1", "y"}
FALSE = {"no", "false", "0", "n", ""}
CHUNK = 1000


@dataclass
class ImportReport:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: list[str] = field(default_factory=list)  # "FILE:LINE: reason"
    removed: list[str] = field(default_factory=list)   # members not in the file, with --replace

    def summary(self, path: Path, list_name: str) -> str:
        return (f"{path}: list {list_name}: {self.added} added, {self.updated} updated, "
                f"{self.unchanged} unchanged, {len(self.removed)} removed, {len(self.rejected)} rejected")


FIELD_LENGTHS = {"name": 200, "outlet": 200, "language": 35, "tags": 500}  # the columns' sizes


def list_option(name: str) -> str:
    if not name.strip():
        raise InputError("--list needs a name", where="--list")
    return checked_text(name, "--list", 100)


def normalise(email: str) -> str:
    """The address as email-validator normalises it; raises ValueError with the reason."""
    try:
        return validate_email(email.strip(), check_deliverability=False, allow_smtputf8=True).normalized
    except EmailNotValidError as exc:
        raise ValueError(str(exc)) from None


def typed_address(email: str, where: str) -> str:
    """An address a person typed, normalised; else an error naming the option."""
    try:
        return normalise(email)
    except ValueError as exc:
        raise InputError(f"{email!r} is not an email address ({exc})", where=where) from None


def key(email: str) -> str:
    return email.lower()


def read_csv(path: Path) -> Iterator[tuple[int, dict | str]]:
    """(line, row) for good rows, (line, reason) for rejected ones. Raises InputError for an unreadable file."""
    text = decode(read_bytes(path, "a CSV file"), str(path))
    reader = csv.reader(io.StringIO(text, newline=""))
    header = [h.strip().lower() for h in next(reader, [])]
    if "email" not in header:
        raise InputError(f"no 'email' column; expected a header with {', '.join(COLUMNS)}", where=f"{path}:1")
    repeated = sorted({h for h in header if header.count(h) > 1})
    if repeated:
        raise InputError(f"column {repeated[0]!r} appears more than once in the header", where=f"{path}:1")
    unknown = [h for h in header if h not in COLUMNS]
    if unknown:
        raise InputError(f"unknown column {unknown[0]!r}; expected some of {', '.join(COLUMNS)}", where=f"{path}:1")
    seen: dict[str, int] = {}
    previous_line = reader.line_num
    for fields in _rows(reader, path):
        line = previous_line + 1  # where this row starts; a quoted field may span lines
        previous_line = reader.line_num
        if not any(f.strip() for f in fields):
            continue
        if len(fields) != len(header):
            yield line, f"{len(fields)} fields, expected {len(header)} ({', '.join(header)})"
            continue
        raw = dict(zip(header, fields, strict=True))
        values = {k: v.strip() for k, v in raw.items()}
        too_long = [k for k, v in values.items() if len(v) > FIELD_LENGTHS.get(k, 320) or "\x00" in v]
        if too_long:
            k = too_long[0]
            yield line, (f"{k}: contains a NUL byte" if "\x00" in values[k] else
                         f"{k}: {len(values[k])} characters; at most {FIELD_LENGTHS.get(k, 320)} fit")
            continue
        try:
            email = normalise(values["email"])
        except ValueError as exc:
            yield line, f"email {values['email']!r}: {exc}"
            continue
        flag = values.get("embargo_ok", "").lower()
        if flag not in TRUE | FALSE:
            yield line, f"embargo_ok {values['embargo_ok']!r}: expected yes/no/true/false/1/0 or blank"
            continue
        if key(email) in seen:
            yield line, f"duplicate of line {seen[key(email)]} ({email})"
            continue
        seen[key(email)] = line
        yield line, {"email": email, "email_key": key(email), "name": values.get("name", ""),
                     "outlet": values.get("outlet", ""), "embargo_ok": flag in TRUE,
                     "language": values.get("language", ""), "tags": values.get("tags", "")}


def _rows(reader, path: Path) -> Iterator[list[str]]:
    """The reader's rows; a row the csv module cannot read (a field over its 128 KiB limit) is an error."""
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise InputError(f"cannot read this row ({exc})", where=f"{path}:{reader.line_num}") from None
        yield fields


def import_csv(conn: Connection, path: Path, list_name: str, now: datetime, strict: bool = False,
               replace: bool = False) -> ImportReport:
    """Upsert every valid row of the file into the list, in the caller's transaction.

    With ``replace`` the list becomes exactly the file: members not in it leave the list. A rejected row then
    fails the whole import, so that a typing error never takes a journalist off the list."""
    list_name = list_option(list_name)
    report = ImportReport()
    chunk: list[dict] = []
    in_file: set[str] = set()
    with Progress(f"importing {path.name}") as progress:
        for line, row in read_csv(path):
            if isinstance(row, str):
                report.rejected.append(f"{path}:{line}: {row}")
                if strict or replace:
                    flag = "--strict" if strict else "--replace"
                    raise InputError(f"{row} ({flag} rejects the whole file)", where=f"{path}:{line}")
                continue
            if replace:
                in_file.add(row["email_key"])
            chunk.append(row)
            if len(chunk) >= CHUNK:
                _upsert(conn, list_name, chunk, now, report)
                progress.advance(len(chunk))
                chunk = []
        if chunk:
            _upsert(conn, list_name, chunk, now, report)
            progress.advance(len(chunk))
    if replace:
        leaving = [(r.id, r.email) for r in conn.execute(select(recipients.c.id, recipients.c.email, recipients.c.email_key)
                                                         .where(recipients.c.list_name == list_name))
                   if r.email_key not in in_file]
        for start in range(0, len(leaving), CHUNK):
            ids = [i for i, _ in leaving[start:start + CHUNK]]
            conn.execute(delete(recipients).where(recipients.c.id.in_(ids)))
        report.removed = sorted(email for _, email in leaving)
    return report


_FIELDS = ("email", "name", "outlet", "embargo_ok", "language", "tags")


def _upsert(conn: Connection, list_name: str, rows: list[dict], now: datetime, report: ImportReport) -> None:
    existing = {r.email_key: r for r in conn.execute(select(recipients).where(
        recipients.c.list_name == list_name, recipients.c.email_key.in_([r["email_key"] for r in rows])))}
    new, changed = [], []
    for row in rows:
        old = existing.get(row["email_key"])
        if old is None:
            new.append({**row, "list_name": list_name, "created_at": now, "updated_at": now})
        elif any(getattr(old, f) != row[f] for f in _FIELDS):
            changed.append({**{f: row[f] for f in _FIELDS}, "b_id": old.id, "updated_at": now})
        else:
            report.unchanged += 1
    if new:
        conn.execute(insert(recipients), new)
        report.added += len(new)
    if changed:
        conn.execute(update(recipients).where(recipients.c.id == bindparam("b_id")).values(
            {f: bindparam(f) for f in (*_FIELDS, "updated_at")}), changed)
        report.updated += len(changed)


def unsubscribe(conn: Connection, email: str, actor: str, now: datetime, reason: str = "unsubscribed") -> bool:
    """Suppress an address for all future mail; cancels its unsent email. False if it was already suppressed."""
    address = typed_address(email, "EMAIL")
    if conn.execute(select(suppressions.c.email_key).where(suppressions.c.email_key == key(address))).first():
        return False
    conn.execute(insert(suppressions).values(email_key=key(address), reason=reason, actor=actor, created_at=now))
    stored: list[str] = list(conn.execute(select(recipients.c.email).where(
        recipients.c.email_key == key(address))).scalars())
    for written in {address, *stored}:  # as each list wrote it: "Ana@Paper.example" is ana@paper.example
        deliveries.cancel_target(conn, "email", written, now, reason="unsubscribed")
    return True


def is_suppressed(conn: Connection, emails: list[str]) -> set[str]:
    keys = [key(e) for e in emails]
    return {r[0] for r in conn.execute(select(suppressions.c.email_key).where(suppressions.c.email_key.in_(keys)))}


Unless = Callable[[ColumnElement[str]], ColumnElement[bool]]


def eligible(conn: Connection, list_name: str, embargoed: bool = True,
             unless: Unless | None = None) -> Iterator[str]:
    """Addresses on the list that may receive mail (embargo-vetted when ``embargoed``), streamed; none for which
    ``unless`` (an SQL condition made from the address column) holds."""
    return _stream(conn, _eligible(list_name, embargoed, unless))


def _eligible(list_name: str, embargoed: bool, unless: Unless | None) -> Select:
    query = select(recipients.c.email).where(
        recipients.c.list_name == list_name,
        ~select(suppressions.c.email_key).where(suppressions.c.email_key == recipients.c.email_key).exists(),
    ).order_by(recipients.c.id)
    if embargoed:
        query = query.where(recipients.c.embargo_ok.is_(True))
    if unless is not None:
        query = query.where(~unless(recipients.c.email))
    return query


def _stream(conn: Connection, query: Select) -> Iterator[str]:
    for row in conn.execute(query.execution_options(yield_per=CHUNK)):
        yield row[0]


@dataclass(frozen=True)
class Standing:
    """Where an address stands now, as a copy is about to go out."""

    name: str = ""
    member: bool = False
    embargo_ok: bool = False
    suppressed: bool = False

    @property
    def awaits_release(self) -> bool:
        """A member who may not have the embargoed copy but gets the released version at the lift."""
        return self.member and not self.embargo_ok and not self.suppressed

    def refusal(self, embargoed: bool, list_name: str) -> str | None:
        """Why this address may not have the copy now, or None. Only an embargoed copy needs a vetted member."""
        if self.suppressed:
            return "unsubscribed"
        if embargoed and not self.member:
            return f"no longer on the list {list_name!r}"
        if embargoed and not self.embargo_ok:
            return "no longer vetted for embargoed copies"
        return None


def standing(conn: Connection, list_name: str, emails: list[str],
             release_lists: tuple[str, ...] = ()) -> dict[str, Standing]:
    """Each address's standing (by address as given), read in two queries whatever the number. A member of a
    release list only counts as a member who is not vetted: the released version is theirs, at the lift."""
    keys = {key(e): e for e in emails}
    found: dict[str, Any] = {}
    for r in conn.execute(select(
            recipients.c.email_key, recipients.c.name, recipients.c.embargo_ok, recipients.c.list_name).where(
            recipients.c.list_name.in_((list_name, *release_lists)), recipients.c.email_key.in_(list(keys)))):
        if r.list_name == list_name or r.email_key not in found:
            found[r.email_key] = (r.name, bool(r.embargo_ok) and r.list_name == list_name)
    suppressed = is_suppressed(conn, emails)
    result = {}
    for k, email in keys.items():
        row = found.get(k)
        result[email] = Standing(name=row[0] if row else "", member=row is not None,
                                 embargo_ok=bool(row and row[1]), suppressed=k in suppressed)
    return result


def release_members(conn: Connection, list_name: str, release_lists: tuple[str, ...],
                    unless: Unless | None = None) -> Iterator[str]:
    """Who gets the released version at the lift: the list's members not vetted for embargoes, then the members
    of each release list; each address once (by its key), none unsubscribed, none for which ``unless`` holds.

    The database does the sifting, a list at a time, so that nothing here grows with the lists."""
    names = (list_name, *release_lists)
    other = recipients.alias("other")
    vetted = select(other.c.id).where(other.c.email_key == recipients.c.email_key, other.c.list_name == list_name,
                                      other.c.embargo_ok.is_(True)).exists()
    for i, name in enumerate(names):
        query = _eligible(name, False, unless).where(~vetted)
        if i:  # met on a list before this one: already yielded or skipped there
            query = query.where(~select(other.c.id).where(other.c.email_key == recipients.c.email_key,
                                                          other.c.list_name.in_(names[:i])).exists())
        yield from _stream(conn, query)


def remove(conn: Connection, list_name: str, email: str) -> bool:
    """Take one member off a list. False if the address was not on it."""
    list_name = list_option(list_name)
    address = typed_address(email, "EMAIL")
    return conn.execute(delete(recipients).where(
        recipients.c.list_name == list_name, recipients.c.email_key == key(address))).rowcount > 0


def listing(conn: Connection, list_name: str | None = None) -> list[dict]:
    query = select(recipients, suppressions.c.created_at.label("suppressed_at")).outerjoin(
        suppressions, suppressions.c.email_key == recipients.c.email_key).order_by(
        recipients.c.list_name, recipients.c.email_key)
    if list_name:
        query = query.where(recipients.c.list_name == list_name)
    return [dict(r) for r in conn.execute(query).mappings()]
