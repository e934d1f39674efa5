from datetime import UTC, datetime

import pytest

from distributor.statements.times import parse_embargo_line, parse_instant


def utc(*a):
    return datetime(*a, tzinfo=UTC)


@pytest.mark.parametrize("line, expected", [
    ("EMBARGOED FOR: 00:01 GMT Thursday 15 October 2026", utc(2026, 10, 15, 0, 1)),
    ("Embargo: 15 October 2026 00:01 BST", utc(2026, 10, 14, 23, 1)),
    ("EMBARGOED UNTIL 0001 HRS GMT 28 MARCH 2002", utc(2002, 3, 28, 0, 1)),
    ("EMBARGOED UNTIL 9:30 am EDT 1 July 2026", utc(2026, 7, 1, 13, 30)),
    ("EMBARGOED UNTIL 10.00 CEST, Monday 1 June 2026", utc(2026, 6, 1, 8, 0)),
    ("Embargoed until: 2026-01-10 08:00 JST", utc(2026, 1, 9, 23, 0)),
    ("EMBARGO: 15:00 PST 3rd December 2026", utc(2026, 12, 3, 23, 0)),
    ("EMBARGOED: 00:01 Z 1 Jan 2027", utc(2027, 1, 1, 0, 1)),
    # four-digit times as wire desks write them
    ("EMBARGOED UNTIL 1200 GMT 15 December 2026", utc(2026, 12, 15, 12, 0)),
    ("EMBARGOED UNTIL 15 December 2026 1200 GMT", utc(2026, 12, 15, 12, 0)),
    ("EMBARGOED UNTIL 2026 GMT 15 December 2027", utc(2027, 12, 15, 20, 26)),  # the number before the zone
    ("EMBARGOED UNTIL 2026 15 December 2027 GMT", utc(2026, 12, 15, 20, 27)),
    ("EMBARGOED UNTIL 0001 HRS 15 December 2026 GMT", utc(2026, 12, 15, 0, 1)),
    ("EMBARGOED UNTIL 2359 CET Tuesday 15 December 2026", utc(2026, 12, 15, 22, 59)),
    ("Embargoed until: 2026-12-15 0930 GMT", utc(2026, 12, 15, 9, 30)),
    ("EMBARGOED UNTIL 00:01 hrs GMT, Tues 15th Dec 2026", utc(2026, 12, 15, 0, 1)),
    ("EMBARGO: 9.30pm BST Friday 5 June 2026", utc(2026, 6, 5, 20, 30)),
    ("**EMBARGOED UNTIL 00:01 GMT 1 January 2027**", utc(2027, 1, 1, 0, 1)),
])
def test_embargo_lines(line, expected):
    assert parse_embargo_line(line) == expected


@pytest.mark.parametrize("line, message", [
    ("EMBARGOED UNTIL 10:00 CST 1 May 2026", "ambiguous"),
    ("EMBARGOED UNTIL 10:00 IST 1 May 2026", "ambiguous"),
    ("EMBARGOED UNTIL 10:00 XYZ 1 May 2026", "unknown time zone"),
    ("Embargo: 15 January 2026 00:01 BST", "not in force"),
    ("EMBARGOED UNTIL 10:00 EDT 15 January 2026", "not in force"),
    ("EMBARGOED FOR: 00:01 GMT Friday 15 October 2026", "weekday does not match"),
    ("EMBARGOED UNTIL 12:00 am GMT 1 May 2026", "ambiguous"),
    ("EMBARGOED UNTIL 12:00 p.m. GMT 1 May 2026", "ambiguous"),
    ("EMBARGOED UNTIL 10:00 1 May 2026", "lacks time zone"),
    ("EMBARGOED UNTIL 10:00 GMT 31 April 2026", "not a real date"),
    # four-digit numbers that cannot be told apart, and years no embargo has
    ("EMBARGOED UNTIL 2030 GMT 15 December 2031 GMT", "cannot tell the time from the year"),
    ("EMBARGOED UNTIL 2100 GMT 2026 HRS 15 December", "cannot tell the time from the year"),
    ("EMBARGOED UNTIL 2400 GMT 15 December 2026", "cannot tell the time from the year"),
    ("EMBARGOED UNTIL 1260 GMT 15 December 2026", "cannot tell the time from the year"),
    ("EMBARGOED UNTIL 1200 GMT 2026-12-15 2026", "too many four-digit numbers"),
    ("EMBARGOED UNTIL 1200 1300 GMT 15 December 2026", "too many four-digit numbers"),
    ("EMBARGOED UNTIL 1200 GMT 15 December", "lacks time"),
    ("EMBARGOED UNTIL 0001 HRS GMT 15 December", "lacks year"),
    ("EMBARGOED UNTIL 00:01 GMT 15 December 0001", "out of range"),
    ("EMBARGOED UNTIL 00:01 GMT 15 December 9999", "out of range"),
    ("EMBARGOED UNTIL 00:01 GMT 15 December 1969", "out of range"),
    ("EMBARGOED UNTIL noon GMT 15 December 2026", "unexpected word"),
    ("EMBARGOED UNTIL 00:01 GMT 15 Decembre 2026", "unexpected word"),
    ("EMBARGOED UNTIL 00:01 GMT 15/12/2026", "gives the day twice"),
])
def test_embargo_errors_are_errors_not_guesses(line, message):
    with pytest.raises(ValueError) as err:
        parse_embargo_line(line)
    assert message in str(err.value)


def test_prose_is_not_an_embargo_line():
    assert parse_embargo_line("Embargo on arms sales must stay in force, the group said.") is None


@pytest.mark.parametrize("text, expected", [
    ("2026-10-15T00:01+01:00", utc(2026, 10, 14, 23, 1)),
    ("2026-10-15 00:01Z", utc(2026, 10, 15, 0, 1)),
    ("2026-10-15 00:01 Europe/London", utc(2026, 10, 14, 23, 1)),
    ("2026-01-15 00:01 Europe/London", utc(2026, 1, 15, 0, 1)),
    ("2026-03-08 03:30 America/New_York", utc(2026, 3, 8, 7, 30)),
    # one parser: what an embargo line accepts, --embargo accepts
    ("15 December 2026 00:01 GMT", utc(2026, 12, 15, 0, 1)),
    ("00:01 GMT Tuesday 15 December 2026", utc(2026, 12, 15, 0, 1)),
    ("1200 GMT 15 December 2026", utc(2026, 12, 15, 12, 0)),
    ("2026-10-15 00:01 europe/london", utc(2026, 10, 14, 23, 1)),
    ("2026-10-15 00:01 AMERICA/NEW_YORK", utc(2026, 10, 15, 4, 1)),
    ("2026-01-15 00:01 EST", utc(2026, 1, 15, 5, 1)),     # the table's EST (-5, in force in New York in January)
    ("2026-01-15 00:01 CET", utc(2026, 1, 14, 23, 1)),
    ("2026-10-15 00:01 BST", utc(2026, 10, 14, 23, 1)),
])
def test_instants(text, expected):
    assert parse_instant(text) == expected


@pytest.mark.parametrize("text, message", [
    ("2026-10-15T00:01", "no offset or zone"),
    ("2026-03-29 01:30 Europe/London", "does not exist"),
    ("2026-10-25 01:30 Europe/London", "happens twice"),
    ("2026-03-08 02:30 America/New_York", "does not exist"),
    ("2026-11-01 01:30 America/New_York", "happens twice"),
    ("2026-10-15 00:01 Mars/Olympus", "unknown time zone"),
    ("tomorrow", "expected a time"),
    ("2026-07-15 00:01 EST", "not in force"),              # a word of the table keeps its rule, though IANA has EST
    ("2026-01-15 00:01 BST", "not in force"),
    ("2026-01-15 00:01 CST", "ambiguous"),
    ("2026 GMT 15 December 2027 2028", "too many four-digit numbers"),
    ("15 December 2026 00:01", "lacks time zone"),
])
def test_instant_errors(text, message):
    with pytest.raises(ValueError) as err:
        parse_instant(text)
    assert message in str(err.value)
