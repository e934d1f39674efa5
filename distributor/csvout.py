"""CSV for spreadsheets: a text cell that a spreadsheet would run as a formula is made inert (OWASP)."""

from __future__ import annotations

import csv
from collections.abc import Iterable
from typing import IO, Any

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def inert(value: Any) -> Any:
    """A text cell that begins like a formula gets a leading apostrophe; numbers and empty cells stay as they are."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def write(out: IO[str], fields: list[str], rows: Iterable[dict]) -> None:
    writer = csv.DictWriter(out, fieldnames=fields, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: inert(value) for key, value in row.items()})
