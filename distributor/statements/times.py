"""Embargo times: the zone-abbreviation table, embargo lines in documents, and times typed by people.

Every function returns an aware UTC instant or raises ``ValueError`` with a message fit for a person.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, available_timezones


@dataclass(frozen=True)
class ZoneAbbreviation:
    offset_hours: float
    in_force_zone: str | None  # the IANA zone that must be on this offset at that instant; None = always valid


# The one table of unambiguous abbreviations. Anything else is an error, never a guess.
ZONE_ABBREVIATIONS: dict[str, ZoneAbbreviation] = {
    "UTC": ZoneAbbreviation(0, None),
    "GMT": ZoneAbbreviation(0, None),
    "Z": ZoneAbbreviation(0, None),
    "WET": ZoneAbbreviation(0, "Europe/Lisbon"),
    "WEST": ZoneAbbreviation(1, "Europe/Lisbon"),
    "BST": ZoneAbbreviation(1, "Europe/London"),
    "CET": ZoneAbbreviation(1, "Europe/Paris"),
    "CEST": ZoneAbbreviation(2, "Europe/Paris"),
    "EET": ZoneAbbreviation(2, "Europe/Athens"),
    "EEST": ZoneAbbreviation(3, "Europe/Athens"),
    "MSK": ZoneAbbreviation(3, None),
    "EST": ZoneAbbreviation(-5, "America/New_York"),
    "EDT": ZoneAbbreviation(-4, "America/New_York"),
    "MST": ZoneAbbreviation(-7, "America/Denver"),
    "MDT": ZoneAbbreviation(-6, "America/Denver"),
    "PST": ZoneAbbreviation(-8, "America/Los_Angeles"),
    "PDT": ZoneAbbreviation(-7, "America/Los_Angeles"),
    "HKT": ZoneAbbreviation(8, None),
    "SGT": ZoneAbbreviation(8, None),
    "JST": ZoneAbbreviation(9, None),
    "KST": ZoneAbbreviation(9, None),
    "AEST": ZoneAbbreviation(10, "Australia/Sydney"),
    "AEDT": ZoneAbbreviation(11, "Australia/Sydney"),
    "NZST": ZoneAbbreviation(12, "Pacific/Auckland"),
    "NZDT": ZoneAbbreviation(13, "Pacific/Auckland"),
}

# Abbreviations used for more than one zone (CST: China, Central US, Cuba; IST: India, Ireland, Israel ...).
AMBIGUOUS_ABBREVIATIONS = frozenset({"CST", "CDT", "IST", "AST", "ADT", "BT", "ECT", "GST", "SST", "AMT", "PST8PDT"})

MONTHS = {m: i for i, m in enumerate(
    ["january", "february", "march", "april", "may", "june", "july", "august",
     "september", "october", "november", "december"], start=1)}
MONTHS.update({name[:3]: i for name, i in list(MONTHS.items())})
MONTHS["sept"] = 9
WEEKDAYS = {d: i for i, d in enumerate(["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"])}
WEEKDAYS.update({name[:3]: i for name, i in list(WEEKDAYS.items())})
WEEKDAYS.update({"tues": 1, "wed": 2, "thur": 3, "thurs": 3})
HOURS_WORDS = ("hrs", "hours", "hr", "h")
YEARS = (1970, 2199)  # an embargo outside these years is a typing error
FILLER = {"on", "at", "the", "of", "for", "until", "till", "hrs", "hours", "hr", "h"}

# Only the line's opening is a pattern; the rest is cut with str methods. Every pattern here that sees a
# document's text has one way to match each character, so it runs in linear time.
EMBARGO_PREFIX = re.compile(
    r"\s*(?:\*\*\s*)?(?:(?:EMBARGOED(?:\s+(?:FOR|UNTIL|TILL|TO))?|EMBARGO)\b\s*:?"
    r"|[Ee]mbargo(?:ed)?(?:\s+(?:for|until|till|to))?\s*:)"
)
_TOKEN = re.compile(r"\d{4}-\d{2}-\d{2}|\d{1,2}[:.]\d{2}|\d+(?:st|nd|rd|th)?|[A-Za-z]+|[^\sA-Za-z\d]")
_MERIDIEM = re.compile(r"\b([ap])\.?\s?m\b\.?", re.IGNORECASE)
EXAMPLE = "e.g. 'EMBARGOED UNTIL 00:01 GMT Thursday 15 October 2026'"


def is_embargo_line(line: str) -> bool:
    return EMBARGO_PREFIX.match(line) is not None


def parse_embargo_line(line: str) -> datetime | None:
    """The embargo instant in a line such as ``EMBARGOED FOR: 00:01 GMT Thursday 15 October 2026``.

    None when the line is not an embargo line; ``ValueError`` when it is one but cannot be read safely.
    """
    match = EMBARGO_PREFIX.match(line)
    if match is None:
        return None
    rest = line[match.end():].strip()
    if rest.endswith("**"):
        rest = rest[:-2].rstrip()
    return parse_embargo_text(rest)


def parse_embargo_text(text: str) -> datetime:
    text = _MERIDIEM.sub(lambda m: f" {m.group(1).lower()}m ", text)
    tokens = _TOKEN.findall(text)
    clock_at = _four_digit_clock(tokens)
    year = month = day = weekday = None
    clock: tuple[int, int] | None = None
    meridiem = None
    abbreviation = None
    for i, token in enumerate(tokens):
        lower = token.lower()
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", token):
            year, month, day = (int(x) for x in token.split("-"))
        elif re.fullmatch(r"\d{1,2}[:.]\d{2}", token):
            hours, minutes = re.split(r"[:.]", token)
            clock = _set_once(clock, (int(hours), int(minutes)), "time")
        elif re.fullmatch(r"\d{4}", token):
            value = int(token)
            if i == clock_at:
                clock = _set_once(clock, (value // 100, value % 100), "time")
            elif year is None:
                year = value
            else:
                raise ValueError(f"unexpected number {token!r} in embargo time; {EXAMPLE}")
        elif re.fullmatch(r"\d{1,2}(?:st|nd|rd|th)?", token):
            day = _set_once(day, int(re.sub(r"\D", "", token)), "day")
        elif lower in ("am", "pm"):
            meridiem = lower
        elif lower in MONTHS:
            month = _set_once(month, MONTHS[lower], "month")
        elif lower in WEEKDAYS:
            weekday = _set_once(weekday, WEEKDAYS[lower], "weekday")
        elif lower in FILLER:
            continue
        elif token.upper() in ZONE_ABBREVIATIONS:
            abbreviation = _set_once(abbreviation, token.upper(), "time zone")
        elif token.upper() in AMBIGUOUS_ABBREVIATIONS:
            raise ValueError(f"time zone {token!r} is ambiguous; use one of {_zone_list()} or an offset")
        elif token.isalpha():
            if token.isupper() and 1 <= len(token) <= 5:
                raise ValueError(f"unknown time zone {token!r}; expected one of {_zone_list()}")
            raise ValueError(f"unexpected word {token!r} in embargo time; {EXAMPLE}")
        elif token in ",-–—/()":
            continue
        else:
            raise ValueError(f"unexpected {token!r} in embargo time; {EXAMPLE}")

    missing = [name for name, value in (("time", clock), ("day", day), ("month", month), ("year", year),
                                        ("time zone", abbreviation)) if value is None]
    if missing:
        raise ValueError(f"embargo time lacks {', '.join(missing)}; {EXAMPLE}")
    assert clock is not None and year is not None and month is not None and day is not None and abbreviation is not None
    hour, minute = clock
    if meridiem:
        if hour == 12:
            raise ValueError("12 a.m./p.m. is ambiguous; write 00:00 for midnight or 12:00 for noon (24-hour clock)")
        if not 1 <= hour <= 11:
            raise ValueError(f"{hour}:{minute:02d} {meridiem} is not a 12-hour clock time")
        if meridiem == "pm":
            hour += 12
    if hour == 24 and minute == 0:
        raise ValueError("24:00 is ambiguous; write 00:00 on the following day or 23:59")
    try:
        local = datetime.combine(date(year, month, day), time(hour, minute))
    except ValueError as exc:
        raise ValueError(f"embargo time is not a real date and time ({exc})") from None
    in_range(local)
    if weekday is not None and local.weekday() != weekday:
        actual = local.strftime("%A")
        raise ValueError(f"weekday does not match the date: {local:%d %B %Y} is a {actual}")
    return with_abbreviation(local, abbreviation)


def _four_digit_clock(tokens: list[str]) -> int | None:
    """Which four-digit token, if any, is a time such as ``1200 GMT``.

    A number from 0000 to 2359 is a time when it stands directly before a zone or ``hrs`` and a year (from
    1970 to 2199) is given elsewhere in the line; one four-digit number on its own before ``hrs`` is a time too.
    Any other pair of four-digit numbers cannot be told apart and is an error.
    """
    fours = [i for i, t in enumerate(tokens) if re.fullmatch(r"\d{4}", t)]
    iso_dates = sum(1 for t in tokens if re.fullmatch(r"\d{4}-\d{2}-\d{2}", t))
    if not fours:
        return None
    if len(fours) + iso_dates > 2:
        raise ValueError(f"too many four-digit numbers in embargo time; {EXAMPLE}")

    def before(i: int) -> str:
        return tokens[i + 1] if i + 1 < len(tokens) else ""

    def clock_like(i: int) -> bool:
        value, following = int(tokens[i]), before(i)
        return (value // 100 <= 23 and value % 100 <= 59
                and (following.lower() in HOURS_WORDS or following.upper() in ZONE_ABBREVIATIONS
                     or following.upper() in AMBIGUOUS_ABBREVIATIONS))

    def year_like(i: int) -> bool:
        return YEARS[0] <= int(tokens[i]) <= YEARS[1]

    # a time needs a year elsewhere: the other four-digit number, or an ISO date
    candidates = [i for i in fours if clock_like(i) and all(year_like(j) for j in fours if j != i)]
    if len(fours) + iso_dates == 2:  # one time and one year, or an error
        if len(candidates) != 1:
            pair = " and ".join(repr(tokens[i]) for i in fours) if len(fours) == 2 else repr(tokens[fours[0]])
            raise ValueError(f"cannot tell the time from the year in {pair}; write the time as HH:MM, {EXAMPLE}")
        return candidates[0]
    only = fours[0]
    return only if before(only).lower() in HOURS_WORDS else None


def with_abbreviation(local: datetime, abbreviation: str) -> datetime:
    entry = ZONE_ABBREVIATIONS[abbreviation]
    offset = timedelta(hours=entry.offset_hours)
    instant = (local - offset).replace(tzinfo=UTC)
    if entry.in_force_zone:
        zone = ZoneInfo(entry.in_force_zone)
        actual = instant.astimezone(zone)
        if actual.utcoffset() != offset:
            raise ValueError(
                f"{abbreviation} is not in force on {local:%d %B %Y} at {local:%H:%M} "
                f"({entry.in_force_zone} is on {actual.tzname()} then)")
    return instant


def parse_instant(text: str) -> datetime:
    """A time typed by a person: ISO 8601 with an offset, a local time followed by a zone, or any form an
    embargo line accepts.

    ``2026-10-15T00:01+01:00``, ``2026-10-15 00:01Z``, ``2026-10-15 00:01 Europe/London`` (IANA names in any case),
    ``2026-10-15 00:01 BST`` (the abbreviation table, with its rule that the abbreviation is in force that day, even
    for words that are also IANA names, such as EST or CET), ``15 October 2026 00:01 BST``,
    ``00:01 GMT Thursday 15 October 2026``. Naive times, and local times in a daylight-saving gap or overlap, are
    rejected."""
    text = text.strip()
    value = _fromiso(text)
    if value is not None:
        if value.tzinfo is None:
            raise ValueError(f"{text!r} has no offset or zone; add one, e.g. '{text}+01:00' or '{text} Europe/London'")
        return _in_range(text, lambda: value.astimezone(UTC))
    head, _, zone_name = text.rpartition(" ")
    local = _fromiso(head.strip()) if head else None
    if local is None:
        if any(word.lower() in MONTHS for word in _TOKEN.findall(text)):
            return parse_embargo_text(text)  # "15 October 2026 00:01 BST": an embargo line's own forms and errors
        raise ValueError(f"expected a time such as '2026-10-15T00:01+01:00', '2026-10-15 00:01 Europe/London' or "
                         f"'15 October 2026 00:01 BST', got {text!r}")
    if local.tzinfo is not None:
        raise ValueError(f"{text!r} gives both an offset and a zone; give one")
    if zone_name.upper() in ZONE_ABBREVIATIONS:
        return in_range(with_abbreviation(local, zone_name.upper()))
    if zone_name.upper() in AMBIGUOUS_ABBREVIATIONS:
        raise ValueError(f"time zone {zone_name!r} is ambiguous; use one of {_zone_list()}, an IANA name or an offset")
    zone = _iana_zone(zone_name)
    return _in_range(text, lambda: localize(local, zone))


def _iana_zone(name: str) -> ZoneInfo:
    """An IANA zone by name, without regard to case (``europe/london``)."""
    global _ZONES_BY_LOWER
    if _ZONES_BY_LOWER is None:
        _ZONES_BY_LOWER = {z.lower(): z for z in available_timezones()}
    key = _ZONES_BY_LOWER.get(name.lower())
    if key is None:
        raise ValueError(f"unknown time zone {name!r}; expected an IANA name such as Europe/London")
    return ZoneInfo(key)


_ZONES_BY_LOWER: dict[str, str] | None = None


def _in_range(text: str, convert: Callable[[], datetime]) -> datetime:
    try:
        return in_range(convert())
    except OverflowError:  # year 1 or 9999 and an offset: beyond what datetime holds
        raise ValueError(f"{text!r} is out of range; expected a year from {YEARS[0]} to {YEARS[1]}") from None


def in_range(instant: datetime) -> datetime:
    """An embargo instant in the years an embargo can have; anything else is a typing error."""
    if not YEARS[0] <= instant.year <= YEARS[1]:
        raise ValueError(f"year {instant.year} is out of range; expected {YEARS[0]} to {YEARS[1]}")
    return instant


def localize(local: datetime, zone: ZoneInfo) -> datetime:
    """A wall-clock time in a zone → UTC, refusing times that occur twice or never."""
    first = local.replace(tzinfo=zone, fold=0)
    second = local.replace(tzinfo=zone, fold=1)
    if first.utcoffset() != second.utcoffset():
        round_trip = first.astimezone(UTC).astimezone(zone).replace(tzinfo=None)
        if round_trip != local:
            raise ValueError(f"{local:%Y-%m-%d %H:%M} does not exist in {zone.key} (daylight-saving gap)")
        raise ValueError(f"{local:%Y-%m-%d %H:%M} happens twice in {zone.key} (daylight-saving overlap); give an offset")
    return first.astimezone(UTC)


def _fromiso(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def _set_once(current, value, what):
    if current is not None and current != value:
        raise ValueError(f"embargo time gives the {what} twice")
    return value


def _zone_list() -> str:
    return ", ".join(sorted(ZONE_ABBREVIATIONS))
