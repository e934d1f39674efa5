"""Reading a person's input file: a missing, unreadable or non-UTF-8 file is a one-line error naming it."""

from __future__ import annotations

from pathlib import Path

from distributor.errors import InputError


def read_bytes(path: Path, expected: str = "a file") -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise InputError("file not found", where=str(path)) from None
    except IsADirectoryError:
        raise InputError(f"is a folder, expected {expected}", where=str(path)) from None
    except OSError as exc:
        raise InputError(f"cannot read ({exc.strerror})", where=str(path)) from None


def decode(data: bytes, source: str) -> str:
    """UTF-8 text with LF line ends and no byte-order mark; an undecodable byte names its line."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise InputError(f"not UTF-8 text: byte 0x{data[exc.start]:02x} cannot be decoded; save the file as UTF-8",
                         where=f"{source}:{line}") from None
    return text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
