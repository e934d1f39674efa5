"""Choose the parser by file name and read the file."""

from __future__ import annotations

import re
from dataclasses import fields, replace
from pathlib import Path

from distributor.errors import InputError
from distributor.files import read_bytes
from distributor.statements import markdown, plaintext
from distributor.statements.model import Statement

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


def parse_file(path: Path) -> Statement:
    parser = PARSERS.get(path.suffix.lower(), plaintext.parse)
    statement = without_controls(parser(read_bytes(path, "a statement file (.txt or .md)"), str(path)))
    if not statement.title.strip():
        raise InputError("the title is empty; a statement needs a title", where=str(path))
    try:
        _ = statement.id
    except ValueError as exc:
        raise InputError(str(exc), where=str(path)) from None
    return statement
