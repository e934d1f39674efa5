"""Choose the parser by file name and read the file."""

from __future__ import annotations

from pathlib import Path

from distributor.errors import InputError
from distributor.statements import markdown, plaintext
from distributor.statements.model import Statement

PARSERS = {".md": markdown.parse, ".markdown": markdown.parse, ".txt": plaintext.parse, ".text": plaintext.parse}


def parse_file(path: Path) -> Statement:
    parser = PARSERS.get(path.suffix.lower(), plaintext.parse)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputError("file not found", where=str(path)) from None
    except IsADirectoryError:
        raise InputError("is a folder, expected a statement file (.txt or .md)", where=str(path)) from None
    except OSError as exc:
        raise InputError(f"cannot read ({exc.strerror})", where=str(path)) from None
    statement = parser(data, str(path))
    try:
        statement.id
    except ValueError as exc:
        raise InputError(str(exc), where=str(path)) from None
    return statement
