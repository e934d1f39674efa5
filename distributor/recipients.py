"""Recipient lists: CSV import with email-validator, one member added or removed, and suppression (unsubscribe) that
no import lifts; staff may lift one made by staff or by a bounce, never the recipient's own."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import ColumnElement, Connection, Select, bindparam, case, delete, func, insert, or_, select, update

from distributor import deliveries, workflow
from distributor.errors import InputError, StateError, checked_text
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


# What a person typed is named in a message by where they typed it: the command line's option, or the web form's
# field. The words of the message are the same.
OPTIONS: Mapping[str, str] = {"list": "--list", "email": "EMAIL", "name": "--name", "outlet": "--outlet",
                              "language": "--language", "tags": "--tags"}


def list_option(name: str, where: str = "--list") -> str:
    if not name.strip():
        raise InputError("needs a name", where=where)
    return checked_text(name, where, 100)


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
               replace: bool = False, names: tuple[str, str, str] = ("--list", "--strict", "--replace")) -> ImportReport:
    """Upsert every valid row of the file into the list, in the caller's transaction.

    With ``replace`` the list becomes exactly the file (and the members who joined it by themselves, in the
    journalists' portal): members not in it leave the list. A rejected row then
    fails the whole import, so that a typing error never takes a journalist off the list. ``names`` are what the
    list, ``strict`` and ``replace`` are called where the person chose them."""
    list_name = list_option(list_name, names[0])
    report = ImportReport()
    chunk: list[dict] = []
    in_file: set[str] = set()
    with Progress(f"importing {path.name}") as progress:
        for line, row in read_csv(path):
            if isinstance(row, str):
                report.rejected.append(f"{path}:{line}: {row}")
                if strict or replace:
                    flag = names[1] if strict else names[2]
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
                                                         .where(recipients.c.list_name == list_name,
                                                                recipients.c.joined_by_self.is_(False)))
                   if r.email_key not in in_file]  # members who joined by themselves stay: the file is not theirs
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
        if old is not None and old.language_by_self:  # the journalist chose their language: a file never overrides it
            row = {**row, "language": old.language}
        if old is None:
            new.append({**row, "list_name": list_name, "created_at": now, "updated_at": now})
        elif any(getattr(old, f) != row[f] for f in _FIELDS) or old.joined_by_self:
            # the office's file lists a member who joined by themselves: the membership, and its vetting, are the office's
            changed.append({**{f: row[f] for f in _FIELDS}, "joined_by_self": False, "b_id": old.id, "updated_at": now})
        else:
            report.unchanged += 1
    if new:
        conn.execute(insert(recipients), new)
        report.added += len(new)
    if changed:
        conn.execute(update(recipients).where(recipients.c.id == bindparam("b_id")).values(
            {f: bindparam(f) for f in (*_FIELDS, "joined_by_self", "updated_at")}), changed)
        report.updated += len(changed)


PORTAL_ACTOR = "the journalist, in the portal"
BY_RECIPIENT = frozenset({"one-click unsubscribe", PORTAL_ACTOR})  # the actors that are the recipient themselves


@dataclass(frozen=True)
class Suppression:
    """Why an address gets no mail, and who made it so."""

    email_key: str
    reason: str
    actor: str
    created_at: datetime

    @property
    def by_recipient(self) -> bool:
        """The recipient's own request (the one-click link in every email): no one but they may undo it. Staff's
        suppressions, and a bounce's, may be lifted."""
        return self.actor in BY_RECIPIENT


def suppression(conn: Connection, address: str, lock: bool = False) -> Suppression | None:
    query = select(suppressions).where(suppressions.c.email_key == key(address))
    row = conn.execute(query.with_for_update() if lock else query).first()
    return Suppression(row.email_key, row.reason, row.actor, row.created_at) if row else None


def unsubscribe(conn: Connection, email: str, actor: str, now: datetime, reason: str = "unsubscribed",
                where: str = "EMAIL") -> bool:
    """Suppress an address for all future mail; cancels its unsent email. False if it was already suppressed.

    The recipient's own request replaces a suppression made by staff or a bounce, so that lifting that one later
    cannot undo what the recipient asked for."""
    address = typed_address(email, where)
    found = suppression(conn, address, lock=True)
    if found is not None:
        if found.by_recipient or actor not in BY_RECIPIENT:
            return False
        conn.execute(update(suppressions).where(suppressions.c.email_key == key(address)).values(
            reason=reason, actor=actor, created_at=now))
    else:
        conn.execute(insert(suppressions).values(email_key=key(address), reason=reason, actor=actor, created_at=now))
    stored: list[str] = list(conn.execute(select(recipients.c.email).where(
        recipients.c.email_key == key(address))).scalars())
    for written in {address, *stored}:  # as each list wrote it: "Ana@Paper.example" is ana@paper.example
        deliveries.cancel_target(conn, "email", written, now, reason="unsubscribed")
    return True


def lift(conn: Connection, email: str, where: str = "EMAIL") -> Suppression:
    """Let mail go to a suppressed address again; what it lifted. Copies cancelled meanwhile stay cancelled.
    Only a suppression made by staff or by a bounce may be lifted, never the recipient's own."""
    address = typed_address(email, where)
    found = suppression(conn, address, lock=True)
    if found is None:
        raise InputError(f"{address} is not suppressed", where=where)
    if found.by_recipient:
        raise StateError(f"{address} unsubscribed themselves ({found.actor}); only a suppression made by staff or "
                         f"by a bounce can be lifted", where=where)
    conn.execute(delete(suppressions).where(suppressions.c.email_key == key(address)))
    return found


def record_added(conn: Connection, row: dict, actor: str, now: datetime) -> None:
    workflow.record(conn, workflow.Action.RECIPIENT_ADDED, actor, now, email=row["email"], list=row["list_name"],
                    embargo_ok=row["embargo_ok"])


def record_lifted(conn: Connection, email: str, lifted: Suppression, actor: str, now: datetime) -> None:
    workflow.record(conn, workflow.Action.SUPPRESSION_LIFTED, actor, now, email=email, suppressed_by=lifted.actor,
                    reason=lifted.reason)


def unsubscribed_said(address: str, changed: bool) -> str:
    return f"{address}: " + ("suppressed for all future mail" if changed else "was already suppressed")


def lifted_said(address: str) -> str:
    return f"{address}: no longer suppressed; copies cancelled while it was stay cancelled"


def is_suppressed(conn: Connection, emails: list[str]) -> set[str]:
    keys = [key(e) for e in emails]
    return {r[0] for r in conn.execute(select(suppressions.c.email_key).where(suppressions.c.email_key.in_(keys)))}


Unless = Callable[[ColumnElement[str]], ColumnElement[bool]]


Lists = str | tuple[str, ...]  # one list's name, or the lists chosen for a statement


def names_of(lists: Lists) -> tuple[str, ...]:
    """The chosen lists as a tuple, each name once, in the order given."""
    return (lists,) if isinstance(lists, str) else tuple(dict.fromkeys(lists))


def said_lists(lists: Lists) -> str:
    """'the list 'embargo'', or 'any of the lists 'health', 'europe''."""
    names = names_of(lists)
    if len(names) == 1:
        return f"the list {names[0]!r}"
    return "any of the lists " + ", ".join(repr(n) for n in names)


def eligible(conn: Connection, lists: Lists, embargoed: bool = True,
             unless: Unless | None = None) -> Iterator[str]:
    """Addresses on the lists that may receive mail (embargo-vetted on one of them when ``embargoed``), streamed,
    each person once however many of the lists they are on; none for which ``unless`` (an SQL condition made from
    the address column) holds.

    The database does the sifting, a list at a time: a person met on an earlier list (vetted there, when
    ``embargoed``) is left out of the later ones, so that nothing here grows with the lists."""
    names = names_of(lists)
    other = recipients.alias("other")
    for i, name in enumerate(names):
        query = _eligible(name, embargoed, unless)
        if i:
            earlier = [other.c.email_key == recipients.c.email_key, other.c.list_name.in_(names[:i])]
            if embargoed:
                earlier.append(other.c.embargo_ok.is_(True))
            query = query.where(~select(other.c.id).where(*earlier).exists())
        yield from _stream(conn, query)


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

    def refusal(self, embargoed: bool, list_name: Lists) -> str | None:
        """Why this address may not have the copy now, or None. Only an embargoed copy needs a vetted member."""
        if self.suppressed:
            return "unsubscribed"
        if embargoed and not self.member:
            return f"no longer on {said_lists(list_name)}"
        if embargoed and not self.embargo_ok:
            return "no longer vetted for embargoed copies"
        return None


def standing(conn: Connection, lists: Lists, emails: list[str],
             release_lists: tuple[str, ...] = ()) -> dict[str, Standing]:
    """Each address's standing (by address as given), read in two queries whatever the number. Vetting is per
    membership: vetted on any of the chosen lists is vetted. A member of a release list only counts as a member
    who is not vetted: the released version is theirs, at the lift."""
    chosen = names_of(lists)
    keys = {key(e): e for e in emails}
    found: dict[str, Any] = {}
    for r in conn.execute(select(
            recipients.c.email_key, recipients.c.name, recipients.c.embargo_ok, recipients.c.list_name).where(
            recipients.c.list_name.in_((*chosen, *release_lists)), recipients.c.email_key.in_(list(keys)))):
        on_chosen = r.list_name in chosen
        vetted = bool(r.embargo_ok) and on_chosen
        before = found.get(r.email_key)
        if before is None or (on_chosen and not before[2]) or (vetted and not before[1]):
            found[r.email_key] = (r.name, vetted or bool(before and before[1]), on_chosen)
    suppressed = is_suppressed(conn, emails)
    result = {}
    for k, email in keys.items():
        row = found.get(k)
        result[email] = Standing(name=row[0] if row else "", member=row is not None,
                                 embargo_ok=bool(row and row[1]), suppressed=k in suppressed)
    return result


def release_members(conn: Connection, lists: Lists, release_lists: tuple[str, ...],
                    unless: Unless | None = None) -> Iterator[str]:
    """Who gets the released version at the lift: the chosen lists' members vetted for embargoes on none of them,
    then the members of each release list; each address once (by its key), none unsubscribed, none for which
    ``unless`` holds.

    The database does the sifting, a list at a time, so that nothing here grows with the lists."""
    chosen = names_of(lists)
    names = tuple(dict.fromkeys((*chosen, *release_lists)))
    other = recipients.alias("other")
    vetted = select(other.c.id).where(other.c.email_key == recipients.c.email_key, other.c.list_name.in_(chosen),
                                      other.c.embargo_ok.is_(True)).exists()
    for i, name in enumerate(names):
        query = _eligible(name, False, unless).where(~vetted)
        if i:  # met on a list before this one: already yielded or skipped there
            query = query.where(~select(other.c.id).where(other.c.email_key == recipients.c.email_key,
                                                          other.c.list_name.in_(names[:i])).exists())
        yield from _stream(conn, query)


def unknown_list(conn: Connection, names: tuple[str, ...]) -> str | None:
    """The first of these names that no list has (a list is its members), or None."""
    known: set[str] = set(conn.execute(select(recipients.c.list_name).where(
        recipients.c.list_name.in_(names)).distinct()).scalars())
    return next((n for n in names if n not in known), None)


def chosen_lists(text: str | list | tuple, where: str) -> tuple[str, ...]:
    """Lists as typed (``health,europe``) or written in front matter (a list or that text): each name once."""
    parts = text.split(",") if isinstance(text, str) else list(text)
    names = []
    for part in parts:
        if not isinstance(part, str):
            raise InputError(f"expected list names, e.g. health,europe; got {part!r}", where=where)
        name = part.strip()
        if not name:
            raise InputError("expected list names separated by commas, e.g. health,europe", where=where)
        names.append(checked_text(name, where, 100))
    if not names:
        raise InputError("expected at least one list name", where=where)
    return tuple(dict.fromkeys(names))


def remove(conn: Connection, list_name: str, email: str, names: Mapping[str, str] = OPTIONS) -> bool:
    """Take one member off a list. False if the address was not on it."""
    list_name = list_option(list_name, names["list"])
    address = typed_address(email, names["email"])
    return conn.execute(delete(recipients).where(
        recipients.c.list_name == list_name, recipients.c.email_key == key(address))).rowcount > 0


def removed_said(email: str, list_name: str) -> str:
    return f"{email}: removed from the list {list_name}; embargoed copies not yet sent to it will not go out"


def add(conn: Connection, list_name: str, email: str, now: datetime, *, name: str = "", outlet: str = "",
        embargo_ok: bool = False, language: str = "", tags: str = "", names: Mapping[str, str] = OPTIONS) -> dict:
    """Put one member on a list (which it creates if new), checked as an imported row is; the row as stored. An
    address already on the list is refused: a re-import changes a member."""
    list_name = list_option(list_name, names["list"])
    address = typed_address(email, names["email"])
    values = {"name": name, "outlet": outlet, "language": language, "tags": tags}
    fields = {f: checked_text(v.strip(), names[f], FIELD_LENGTHS[f]) for f, v in values.items()}
    if conn.execute(select(recipients.c.id).where(recipients.c.list_name == list_name,
                                                  recipients.c.email_key == key(address))).first():
        raise InputError(f"{address} is already on the list {list_name!r}; a re-import changes a member",
                         where=names["email"])
    row = {"list_name": list_name, "email": address, "email_key": key(address), **fields,
           "embargo_ok": embargo_ok, "created_at": now, "updated_at": now}
    conn.execute(insert(recipients).values(row))
    return row


def added_said(row: dict, suppressed: bool) -> str:
    return (f"{row['email']}: added to the list {row['list_name']}; "
            + ("vetted for embargoed copies" if row["embargo_ok"] else "not vetted: gets the released version only")
            + ("; suppressed, so it gets no mail" if suppressed else ""))


def lists(conn: Connection, list_name: str | None = None) -> list[dict]:
    """Every list (or the one named) with its number of members and of members vetted for embargoed copies, by
    name. A list is its members: one without any does not exist."""
    vetted = func.sum(case((recipients.c.embargo_ok.is_(True), 1), else_=0))
    query = select(recipients.c.list_name, func.count(), vetted).group_by(recipients.c.list_name).order_by(
        recipients.c.list_name)
    if list_name is not None:
        query = query.where(recipients.c.list_name == list_name)
    return [{"name": r[0], "members": int(r[1]), "vetted": int(r[2] or 0)} for r in conn.execute(query)]


@dataclass(frozen=True)
class Member:
    email: str
    name: str
    outlet: str
    embargo_ok: bool
    language: str
    tags: str
    suppression: Suppression | None


def members(conn: Connection, list_name: str, search: str | None, page: int, per_page: int) -> tuple[list[Member], int]:
    """A page of the list's members by address, those whose address, name, outlet or tags hold ``search`` (in any
    case); and how many match."""
    condition = [recipients.c.list_name == list_name]
    if search:
        wanted = search.lower()
        condition.append(or_(*(func.lower(column).contains(wanted, autoescape=True) for column in (
            recipients.c.email, recipients.c.name, recipients.c.outlet, recipients.c.tags))))
    total = conn.execute(select(func.count()).select_from(recipients).where(*condition)).scalar_one()
    rows = conn.execute(select(recipients, suppressions.c.reason, suppressions.c.actor,
                               suppressions.c.created_at.label("suppressed_at")).outerjoin(
        suppressions, suppressions.c.email_key == recipients.c.email_key).where(*condition).order_by(
        recipients.c.email_key).limit(per_page).offset((page - 1) * per_page)).mappings()
    return [Member(r["email"], r["name"], r["outlet"], bool(r["embargo_ok"]), r["language"], r["tags"],
                   Suppression(r["email_key"], r["reason"], r["actor"], r["suppressed_at"])
                   if r["suppressed_at"] is not None else None) for r in rows], total


def listing(conn: Connection, list_name: str | None = None) -> list[dict]:
    query = select(recipients, suppressions.c.created_at.label("suppressed_at")).outerjoin(
        suppressions, suppressions.c.email_key == recipients.c.email_key).order_by(
        recipients.c.list_name, recipients.c.email_key)
    if list_name:
        query = query.where(recipients.c.list_name == list_name)
    return [dict(r) for r in conn.execute(query).mappings()]
