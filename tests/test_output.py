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


def test_tables_line_up_with_wide_characters_and_cut_cells_end_in_an_ellipsis(capsys):
    from wcwidth import wcswidth

    from distributor.cli import cut
    table(["name", "outlet"], [["田中 浩", "NHK"], ["Ana", "Paper"], ["Zoë", "Radio"]])
    lines = capsys.readouterr().out.splitlines()
    assert len({wcswidth(line[:line.index(word)]) for line, word in zip(lines, ["outlet", "NHK", "Paper", "Radio"],
                                                                           strict=True)}) == 1
    assert cut("田中浩田中浩", 7) == "田中浩…" and wcswidth(cut("田中浩田中浩", 7)) == 7
    assert cut("short", 10) == "short" and cut("abcdefghij", 5) == "abcd…"


def test_every_command_describes_its_arguments_and_ends_with_examples():
    from distributor.cli import EXAMPLES, build_parser
    parser = build_parser()
    commands = [a for a in parser._actions if a.dest == "command"][0].choices
    seen = set()
    for name, sub in commands.items():
        nested = [a for a in sub._actions if a.dest in ("recipients_command", "users_command", "media_command")]
        for full, p in ([(f"{name} {n}", s) for n, s in nested[0].choices.items()] if nested else [(name, sub)]):
            seen.add(full)
            text = p.format_help()
            assert text.rstrip().splitlines()[-1].startswith("  distributor "), full
            for action in p._actions:
                if not action.option_strings:  # a positional argument
                    assert action.help, (full, action.dest)
    assert seen == set(EXAMPLES)


def test_channel_names_mean_the_same_everywhere():
    from distributor.channels import expand
    from distributor.errors import InputError
    assert expand("social") == ("mastodon", "bluesky") and expand("email") == ("email",)
    with pytest.raises(InputError) as err:
        expand("fax", "--channel")
    assert err.value.where == "--channel" and "unknown channel 'fax'" in err.value.message


def test_an_embargo_with_seconds_is_shown_with_its_seconds_everywhere():
    from datetime import UTC, datetime

    from distributor.render import when
    assert when(datetime(2026, 12, 15, 0, 1, 30, tzinfo=UTC), "Europe/London") == "00:01:30 GMT Tuesday 15 December 2026"
    assert when(datetime(2026, 12, 15, 0, 1, tzinfo=UTC)) == "00:01 UTC Tuesday 15 December 2026"


def test_statements_without_a_reference_and_a_title_in_another_script_get_ids_of_their_own():
    from datetime import date

    from distributor.statements.model import statement_id
    russian = statement_id(None, date(2026, 11, 28), "Заявление о свободе прессы")
    japanese = statement_id(None, date(2026, 11, 28), "報道の自由に関する声明")
    assert russian == "2026-11-28-zayavlenie-o-svobode-pressy"
    assert japanese.startswith("2026-11-28-baodao") and russian != japanese
    assert statement_id(None, date(2026, 11, 28), "Flood maps: Zoë’s appeal") == "2026-11-28-flood-maps-zoe-s-appeal"
    assert statement_id(None, date(2026, 11, 28), "!!!").startswith("2026-11-28-t")
