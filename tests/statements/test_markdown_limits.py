"""Any Markdown file of 5 MB or less (the web app's upload limit) is imported, or refused with one line naming it,
within 5 s. The web app reads an upload with the same ``parse_file`` as ``distributor import``, so the command line
stands for both here.

Before, the parser took 58 s over 4.9 MB of ``[``, 62 s over ``![``, 71 s over table rows of ``|-`` and 33 s over
short lines of ``a``: linear, but at up to 15 microseconds a character. A Markdown statement now has at most 1 MB
and 50,000 line breaks and marks; what the parser may be given takes it a second at worst.

The bound is loose on purpose and counts CPU time, so that a busy machine passes it; what it catches is a pattern
the limits do not hold.
"""

import time

import pytest

from distributor.errors import InputError
from distributor.statements import parse_file
from distributor.statements.markdown import MARKDOWN_MAX, MARKS_MAX, marks

HEAD = "---\ntitle: The worst case\ndate: 2026-11-27\n---\nThe office said today.\n\n"
UPLOAD_MAX = 5 * 1024 * 1024  # distributor.web.MAX_UPLOAD
SECONDS = 5.0


def deep_list(n: int) -> str:
    return "".join("  " * (i % 40) + "- a\n" for i in range(n))


PATTERNS = {
    "open-brackets": "[", "link-openings": "[a](", "image-openings": "![", "footnote-like": "[^", "references": "[a][",
    "stars": "*", "underscores": "_", "star-words": "*a", "underscore-words": "_a", "strong-words": "**a",
    "angles": "<", "angle-lines": "<\n", "backticks": "`", "backtick-words": "`a", "bracket-lines": "[\n",
    "short-lines": "a\n", "quote-nesting": "> ", "quote-lines": ">\n", "list-nesting": "- ", "table-rows": "|-\n",
    "deep-list": None,
}


def document(name: str, size: int, most_marks: int) -> str:
    """The pattern repeated to ``size`` characters or ``most_marks`` marks, whichever comes first."""
    pattern = PATTERNS[name]
    if pattern is None:
        line = len(deep_list(40)) / 40
        return HEAD + deep_list(int(min(size / line, most_marks / (marks(deep_list(40)) / 40))))
    body = pattern * min(size // len(pattern), most_marks // marks(pattern))
    if name == "table-rows":
        body = "a|b\n-|-\n" + body
    return HEAD + body + "\n"


def imported_or_refused(run, config, path):
    started = time.process_time()
    result = run(config, "import", path)
    spent = time.process_time() - started
    assert result.code == 0 or (result.code == 2 and result.err.count("\n") == 1 and str(path) in result.err), \
        result.err[:300]
    return result, spent


@pytest.fixture
def config(write_config, run):
    path = write_config()
    assert run(path, "init").code == 0
    return path


@pytest.mark.parametrize("name", PATTERNS)
def test_five_megabytes_of_the_worst_markdown_are_refused_at_once(config, run, tmp_path, name):
    path = tmp_path / f"{name}.md"
    path.write_text(document(name, UPLOAD_MAX - 1000, UPLOAD_MAX), encoding="utf-8")
    assert 0.99 * UPLOAD_MAX < path.stat().st_size <= UPLOAD_MAX
    result, spent = imported_or_refused(run, config, path)
    assert result.code == 2 and f"a Markdown statement has at most {MARKDOWN_MAX:,}" in result.err
    assert spent < SECONDS


@pytest.mark.parametrize("name", PATTERNS)
def test_the_worst_markdown_within_the_limits_is_read_or_refused_in_seconds(config, run, tmp_path, name):
    """Just inside both limits: what the parser itself gets at worst."""
    path = tmp_path / f"{name}.md"
    text = document(name, MARKDOWN_MAX - 1000, MARKS_MAX - 1000)
    assert marks(text) <= MARKS_MAX and len(text.encode()) <= MARKDOWN_MAX
    path.write_text(text, encoding="utf-8")
    result, spent = imported_or_refused(run, config, path)
    assert spent < SECONDS, f"{spent:.1f} s"


def test_the_limits_are_named_with_the_file(config, run, tmp_path):
    big = tmp_path / "big.md"
    big.write_text(HEAD + "word " * (MARKDOWN_MAX // 5), encoding="utf-8")
    result = run(config, "import", big)
    assert result.code == 2 and result.err.count("\n") == 1
    assert result.err.startswith(f"distributor: {big}: the file has 1,000,0") and "at most 1,000,000 (1 MB)" in result.err
    marked = tmp_path / "marked.md"
    marked.write_text(HEAD + "*a* " * (MARKS_MAX // 2 + 1), encoding="utf-8")
    result = run(config, "import", marked)
    assert result.code == 2 and result.err.count("\n") == 1 and str(marked) in result.err
    assert "the body has 50,004 line breaks and Markdown marks" in result.err and "at most 50,000" in result.err


def test_a_long_statement_with_every_kind_of_markup_is_read_whole(config, run, tmp_path):
    section = ("## Findings\n\nThe *Network* found that **many** families were evicted; see [the report]"
               "(https://nhrn.example.org/r) and `KI-2025-0412`.\n\n- one point\n- another point\n\n"
               "> A quotation from a resident.\n\n| Period | Where |\n|---|---|\n| Days 1–90 | Harbour |\n\n")
    path = tmp_path / "long.md"
    count = (MARKS_MAX - 1000) // marks(section)  # some 270 KB, denser in markup than any page of the docs
    path.write_text(HEAD + section * count + "The last paragraph.\n", encoding="utf-8")
    assert path.stat().st_size > 250_000
    started = time.process_time()
    statement = parse_file(path)
    assert time.process_time() - started < SECONDS
    assert statement.body[-1] == "The last paragraph." and statement.body.count("- one point") == count
    assert run(config, "import", path).code == 0


@pytest.mark.parametrize("depth, kept", [(9, True), (10, False)])
def test_lists_nested_too_deep_are_refused_not_cut_short(tmp_path, depth, kept):
    """The parser stops at 20 levels (a list takes two) and leaves out the rest of the document without a word."""
    path = tmp_path / "nested.md"
    path.write_text(HEAD + "".join("  " * i + f"- item {i}\n" for i in range(depth)) + "\nAfter.\n", encoding="utf-8")
    if kept:
        body = parse_file(path).body
        assert body[-2:] == (f"- item {depth - 1}", "After.")
        return
    with pytest.raises(InputError) as refused:
        parse_file(path)
    assert str(refused.value).startswith(f"{path}:{6 + depth}: lists and quotes are nested too deeply")


@pytest.mark.parametrize("depth, kept", [(19, True), (20, False)])
def test_quotes_nested_too_deep_are_refused_not_cut_short(tmp_path, depth, kept):
    path = tmp_path / "quoted.md"
    path.write_text(HEAD + "> " * depth + "Deep.\n\nAfter.\n", encoding="utf-8")
    if kept:
        assert parse_file(path).body[-2:] == ("Deep.", "After.")
        return
    with pytest.raises(InputError) as refused:
        parse_file(path)
    assert str(refused.value).startswith(f"{path}:7: lists and quotes are nested too deeply")


@pytest.mark.parametrize("value", ["[" * 60_000, "{a: " * 15_000, "[" * 21 + "a" + "]" * 21],
                         ids=["lists", "mappings", "twenty-one"])
def test_front_matter_nested_deep_is_refused_in_a_line(config, run, tmp_path, value):
    """Before, ``title: [[[[...`` 60,000 deep (within the 64 KiB of front matter) ended in a RecursionError."""
    path = tmp_path / "deep.md"
    path.write_text(f"---\ntitle: {value}\ndate: 2026-11-27\n---\nBody.\n", encoding="utf-8")
    result = run(config, "import", path)
    assert result.code == 2 and result.err.count("\n") == 1 and f"{path}:" in result.err
    assert "front matter is not valid YAML (nested more than 20 levels deep)" in result.err


def test_a_plain_text_file_over_a_megabyte_is_refused_at_once_naming_the_file(tmp_path):
    path = tmp_path / "long.txt"
    path.write_bytes(b"Press Release\n\nA title\n\n" + b"a\n\n" * 400_000)  # 1.2 MB of short lines
    started = time.process_time()
    with pytest.raises(InputError) as refused:
        parse_file(path)
    assert time.process_time() - started < 1
    assert str(path) in str(refused.value) and "a plain-text statement has at most 1,000,000" in str(refused.value)
    path.write_bytes(b"Press Release\n\n14 October 2026\n\nA title\n\n" + b"a\n\n" * 300_000)  # 0.9 MB: read
    started = time.process_time()
    assert parse_file(path).title == "A title"
    assert time.process_time() - started < 5
