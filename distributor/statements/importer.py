"""Choose the parser by file name and read the file."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import fields, replace
from pathlib import Path
from typing import TYPE_CHECKING

from distributor.errors import InputError
from distributor.files import read_bytes
from distributor.statements import markdown, plaintext
from distributor.statements.model import Statement

if TYPE_CHECKING:
    from distributor.media import Library

PARSERS = {".md": markdown.parse, ".markdown": markdown.parse, ".txt": plaintext.parse, ".text": plaintext.parse}


# C0 control characters other than tab, LF and CR: XML refuses them, terminals obey them. Word writes a vertical
# tab for a line break.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


def without_controls(statement: Statement) -> Statement:
    """The statement with every C0 control character (but tab, LF, CR) in every text field made a space."""
    changes: dict[str, object] = {}
    for f in fields(statement):
        value = getattr(statement, f.name)
        if isinstance(value, str):
            changes[f.name] = _CONTROL.sub(" ", value)
        elif isinstance(value, tuple):
            changes[f.name] = tuple(_CONTROL.sub(" ", v) if isinstance(v, str) else v for v in value)
    return replace(statement, **changes)  # type: ignore[arg-type]


def parse_file(path: Path, library: Library | None = None, uploads: Mapping[str, bytes] | None = None
               ) -> Statement:
    """The statement in the file; with a ``library``, the media its front matter lists are read (relative to the
    file), checked and kept. Without one, a file that lists media is refused. ``uploads`` (the web app's): each media
    file is taken by its name from these bytes, never from a disk."""
    data = read_bytes(path, "a statement file (.txt or .md)")
    entries: list[dict[str, str | None]] = []
    if PARSERS.get(path.suffix.lower()) is markdown.parse:
        parsed, entries = markdown.parse_document(data, str(path))
    else:
        parsed = PARSERS.get(path.suffix.lower(), plaintext.parse)(data, str(path))
    statement = without_controls(parsed)
    if not statement.title.strip():
        raise InputError("the title is empty; a statement needs a title", where=str(path))
    try:
        _ = statement.id
    except ValueError as exc:
        raise InputError(str(exc), where=str(path)) from None
    if entries:
        if library is None:
            raise InputError("the front matter lists media, and nothing here can keep them", where=str(path))
        items: tuple = ()
        for index, entry in enumerate(entries):
            prefix = f"media[{index}]."
            if uploads is None:
                items += (library.load(path.parent / str(entry["file"]), entry, items, field_prefix=prefix),)
                continue
            name = Path(str(entry["file"])).name or str(entry["file"])
            if name not in uploads:
                raise InputError("not uploaded with the statement; choose it beside the statement file", where=name)
            items += (library.take(uploads[name], name, name, entry, items, field_prefix=prefix),)
        statement = replace(statement, media=items)
    return statement
