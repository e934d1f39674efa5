"""The plain-text public statement, in the shape press offices have sent by email for decades:

    Document - <title>                       (dropped)
    Public Statement                         kind
    27 March 2002                            issue date
    AI Index ASA 17/013/2002 - News Service Nr. 56   reference - serial
    EMBARGOED UNTIL 0001 HRS GMT 28 MARCH 2002       optional, anywhere before the footer
    <title>
    <body paragraphs, sub-headings, "- " list items>
    public document                          classification
    For more information please call ...     contact block, to the end
    How you can help ...                     boilerplate (dropped)
"""

from __future__ import annotations

import re
from datetime import date

from distributor.errors import InputError
from distributor.files import decode
from distributor.statements.model import Statement
from distributor.statements.times import MONTHS, WEEKDAYS, is_embargo_line, parse_embargo_line

KINDS = re.compile(
    r"^(?:(?:joint\s+|public\s+|press\s+|news\s+|media\s+)?(?:statement|release|advisory|briefing|alert)"
    r"|open\s+letter|urgent\s+action|news|press\s+release|news\s+release)$", re.IGNORECASE)
REFERENCE = re.compile(r"(?:AI\s+Index\b|Index\s*:)", re.IGNORECASE)
SERIAL_SEPARATOR = re.compile(r"\s[-–—]\s")  # "Index: TRO 01/001/2026 - News Service No. 7"
SERIAL = re.compile(r"^(?:News\s+Service\s+)?(?:Nr|No|Number)\.?\s*\d+\S*$|^News\s+Service\s+\S+$", re.IGNORECASE)
CONTACTS = re.compile(r"^(?:for\s+(?:more|further)\s+information|press\s+office|media\s+contacts?|press\s+contacts?"
                      r"|contacts?\s*:|for\s+media\s+enquiries|media\s+enquiries)", re.IGNORECASE)
CLASSIFICATION = re.compile(r"^(?:public|internal|restricted|confidential)(?:\s+document)?$", re.IGNORECASE)
BOILERPLATE = re.compile(r"^\s*how\s+you\s+can\s+help\b", re.IGNORECASE)
HEADER_LINE = re.compile(r"^Document\s+[-–—]\s+")
BULLET = re.compile(r"^\s*(?:[-*•–]|\d+[.)])\s+")


def split_reference(line: str) -> tuple[str, str | None]:
    """The reference and the serial after the first spaced dash, if any."""
    separator = SERIAL_SEPARATOR.search(line)
    if separator is None or not line[separator.end():].strip():
        return line.strip(), None
    return line[:separator.start()].strip(), line[separator.end():].strip()


def parse_date(text: str) -> date | None:
    """``27 March 2002``, ``Thursday 27 March 2002``, ``March 27, 2002`` or ``2002-03-27``."""
    text = text.strip().rstrip(".")
    try:
        return date.fromisoformat(text)
    except ValueError:
        pass
    words = [w for w in re.split(r"[\s,]+", text.lower()) if w and w not in WEEKDAYS]
    if len(words) != 3:
        return None
    for day_i, month_i in ((0, 1), (1, 0)):
        day_word, month_word, year_word = words[day_i], words[month_i], words[2]
        day_word = re.sub(r"(st|nd|rd|th)$", "", day_word)
        if day_word.isdigit() and month_word in MONTHS and re.fullmatch(r"\d{4}", year_word):
            try:
                return date(int(year_word), MONTHS[month_word], int(day_word))
            except ValueError:
                return None
    return None


def _blocks(lines: list[tuple[int, str]]) -> list[list[tuple[int, str]]]:
    blocks, current = [], []
    for number, line in lines:
        if line.strip():
            current.append((number, line))
        elif current:
            blocks.append(current)
            current = []
    if current:
        blocks.append(current)
    return blocks


def _join(block: list[tuple[int, str]]) -> str:
    return " ".join(line.strip() for _, line in block)


def _paragraphs(block: list[tuple[int, str]]) -> list[str]:
    """One element per paragraph or list item; wrapped lines joined with a space."""
    if not any(BULLET.match(line) for _, line in block):
        return [_join(block)]
    items: list[str] = []
    lead: list[str] = []
    for _, line in block:
        if BULLET.match(line):
            marker = re.match(r"\s*(\d+[.)])", line)
            items.append((marker.group(1) + " " if marker else "- ") + BULLET.sub("", line).strip())
        elif items:
            items[-1] += " " + line.strip()
        else:
            lead.append(line.strip())
    return ([" ".join(lead)] if lead else []) + items


TEXT_MAX = 1_000_000  # bytes, as for Markdown: some 150,000 words; 5 MB of short lines took 6 s to read


def parse(data: bytes, source: str) -> Statement:
    if len(data) > TEXT_MAX:
        raise InputError(f"the file has {len(data):,} bytes; a plain-text statement has at most {TEXT_MAX:,} (1 MB)",
                         where=source)
    text = decode(data, source)
    lines = [(n, line.rstrip()) for n, line in enumerate(text.split("\n"), start=1)]

    for index, (_, line) in enumerate(lines):
        if BOILERPLATE.match(line):
            lines = lines[:index]
            break
    first = next((i for i, (_, line) in enumerate(lines) if line.strip()), None)
    if first is not None and HEADER_LINE.match(lines[first][1]):
        lines[first] = (lines[first][0], "")

    embargo = None
    for index, (number, line) in enumerate(lines):
        if is_embargo_line(line):
            if embargo is not None:
                raise InputError("a second embargo line; a statement has one embargo", where=f"{source}:{number}")
            try:
                embargo = parse_embargo_line(line)
            except ValueError as exc:
                raise InputError(str(exc), where=f"{source}:{number}") from None
            lines[index] = (number, "")

    blocks = _blocks(lines)
    kind = issued = reference = serial = None
    i = 0
    while i < len(blocks) and len(blocks[i]) == 1:
        line = blocks[i][0][1].strip()
        if kind is None and KINDS.match(line):
            kind = line
        elif issued is None and parse_date(line):
            issued = parse_date(line)
        elif reference is None and REFERENCE.match(line):
            reference, serial = split_reference(line)
        elif serial is None and SERIAL.match(line):
            serial = line
        else:
            break
        i += 1
    if i >= len(blocks):
        raise InputError("no title found after the header lines (kind, date, reference)", where=source)
    title = _join(blocks[i])
    rest = blocks[i + 1:]

    contacts = ""
    for j, block in enumerate(rest):
        if CONTACTS.match(block[0][1].strip()):
            contacts = "\n\n".join("\n".join(line.strip() for _, line in b) for b in rest[j:])
            rest = rest[:j]
            break
    classification = None
    if rest and len(rest[-1]) == 1 and CLASSIFICATION.match(rest[-1][0][1].strip()):
        classification = rest[-1][0][1].strip()
        rest = rest[:-1]

    body = tuple(p for block in rest for p in _paragraphs(block))
    if not body:
        raise InputError("no body paragraph found after the title", where=source)
    return Statement(
        title=title, body=body, kind=kind or "Statement", date=issued, reference=reference, serial=serial,
        embargo=embargo, contacts=contacts, classification=classification, source_format="text",
    )


