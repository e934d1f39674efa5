"""Choose the parser by file name and read the file."""

from __future__ import annotations

from pathlib import Path

from distributor.errors import InputError
from distributor.files import read_bytes
from distributor.statements import markdown, plaintext
from distributor.statements.model import Statement

PARSERS = {".md": markdown.parse, ".markdown": markdown.parse, ".txt": plaintext.parse, ".text": plaintext.parse}


def parse_file(path: Path) -> Statement:
    parser = PARSERS.get(path.suffix.lower(), plaintext.parse)
    statement = parser(read_bytes(path, "a statement file (.txt or .md)"), str(path))
    try:
        _ = statement.id
    except ValueError as exc:
        raise InputError(str(exc), where=str(path)) from None
    return statement
