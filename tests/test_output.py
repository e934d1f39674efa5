"""Output that others read: spreadsheets (CSV formula injection), terminals (control characters)."""

import csv
import io

import pytest

from distributor import csvout
from distributor.cli import table, visible


@pytest.mark.parametrize("value, expected", [
    ("=cmd|'/Ccalc'!A0@example.com", "'=cmd|'/Ccalc'!A0@example.com"),
    ("+1", "'+1"), ("-2", "'-2"), ("@SUM(A1)", "'@SUM(A1)"), ("\tx", "'\tx"), ("\rx", "'\rx"),
    ("ana@paper.example.com", "ana@paper.example.com"), ("", ""), (None, None), (-3.5, -3.5), (7, 7), (True, True),
])
def test_text_cells_that_begin_like_formulas_are_made_inert_and_numbers_stay_numbers(value, expected):
    assert csvout.inert(value) == expected


def test_csv_writer_escapes_every_cell_and_keeps_the_columns():
    out = io.StringIO()
    csvout.write(out, ["target", "late_seconds", "remote_id"],
                 [{"target": "=HYPERLINK(\"x\")@e.com", "late_seconds": -0.5, "remote_id": "-urn:1"}])
    rows = list(csv.reader(io.StringIO(out.getvalue())))
    assert rows == [["target", "late_seconds", "remote_id"], ["'=HYPERLINK(\"x\")@e.com", "-0.5", "'-urn:1"]]


def test_control_characters_are_shown_as_escapes_never_obeyed(capsys):
    assert visible("a\x1b[31mred\x07\x9b") == "a\\x1b[31mred\\x07\\x9b"
    assert visible("line\nnext\tcol", lines=True) == "line\nnext\tcol"
    assert visible("line\nnext") == "line\\nnext"
    table(["title"], [["\x1b]0;pwned\x07"]])
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\\x1b]0;pwned\\x07" in out
