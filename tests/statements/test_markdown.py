from datetime import UTC, datetime

import pytest

from distributor.errors import InputError
from distributor.statements.markdown import parse

GOOD = """---
title: "Release Zoë now"
date: 2026-05-02
reference: "Index: XYZ 11/001/2026"
serial: News Service No. 9
embargo: 2026-05-05T00:01:00+01:00
summary: Zoë must be released.
contacts: |
  Press office
  +44 20 7946 0000
channels: [email]
---
Intro with **bold** and a [link](https://example.org/x).

## Demands

- First *demand*
- Second demand

1. One
2. Two

<script>alert(1)</script>
"""


def test_markdown_statement():
    s = parse(GOOD.encode(), "s.md")
    assert s.title == "Release Zoë now"
    assert s.id == "xyz-11-001-2026"
    assert s.embargo == datetime(2026, 5, 4, 23, 1, tzinfo=UTC)
    assert s.body[:4] == ("Intro with bold and a link (https://example.org/x).", "Demands", "- First demand", "- Second demand")
    assert s.body[4:6] == ("1. One", "2. Two")
    assert s.channels == ("email",)
    assert s.contacts == "Press office\n+44 20 7946 0000"
    assert "<script>" not in s.body_html
    assert "&lt;script&gt;" in s.body_html
    assert '<a href="https://example.org/x" style="color:#0b57d0;text-decoration:underline;">link</a>' in s.body_html


@pytest.mark.parametrize("text, message", [
    ("No front matter here.\n", "need YAML front matter"),
    (GOOD.replace("2026-05-05T00:01:00+01:00", "2026-05-05T00:01:00"), "no offset"),
    (GOOD.replace("2026-05-05T00:01:00+01:00", "'2026-05-05 00:01'"), "no offset or zone"),
    (GOOD.replace("summary:", "sumary:"), "unknown key 'sumary'"),
    (GOOD.replace('title: "Release Zoë now"\n', ""), "lacks 'title'"),
    (GOOD.replace("title: \"Release Zoë now\"", "title: [unclosed"), "not valid YAML"),
])
def test_markdown_errors(text, message):
    with pytest.raises(InputError) as err:
        parse(text.encode(), "s.md")
    assert message in str(err.value)


def test_embargo_with_iana_zone():
    s = parse(GOOD.replace("2026-05-05T00:01:00+01:00", "'2026-05-05 00:01 Europe/London'").encode(), "s.md")
    assert s.embargo == datetime(2026, 5, 4, 23, 1, tzinfo=UTC)


BOMB = """---
title: &a ["x", "x", "x", "x", "x", "x", "x", "x", "x"]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]
---
Body.
"""


def test_yaml_aliases_are_refused_before_they_expand():
    with pytest.raises(InputError) as err:
        parse(BOMB.encode(), "bomb.md")
    assert "aliases (*name) are not allowed in front matter" in err.value.message
    assert err.value.where == "bomb.md:4"


def test_an_anchor_without_an_alias_is_harmless():
    statement = parse(b"---\ntitle: &t Plain title\ndate: 2026-10-14\n---\nBody.\n", "a.md")
    assert statement.title == "Plain title"


def test_front_matter_longer_than_64_kib_is_refused():
    text = "---\ntitle: T\n" + "# filler\n" * 8000 + "---\nBody.\n"
    with pytest.raises(InputError) as err:
        parse(text.encode(), "long.md")
    assert err.value.message == "front matter is longer than 64 KiB, or has no closing '---'"
    assert err.value.where == "long.md:1"


def test_a_blank_title_is_refused_at_import(tmp_path):
    from distributor.statements import parse_file
    path = tmp_path / "blank.md"
    path.write_text("---\ntitle: \"\\x0b \\x07\"\ndate: 2026-10-14\n---\nBody.\n", encoding="utf-8")
    with pytest.raises(InputError) as err:
        parse_file(path)
    assert (err.value.message, err.value.where) == ("the title is empty; a statement needs a title", str(path))


def test_tables_links_and_images_as_an_office_writes_them():
    doc = (b"---\ntitle: T\ndate: 2026-10-14\n---\n| River | Homes |\n|---|---|\n| Alder | 1,200 |\n\n"
           b"See [the report](https://example.org/r), <https://example.org/plain> and "
           b"![Chart of homes](https://example.org/c.png).\n")
    s = parse(doc, "t.md")
    assert s.body == ("River | Homes", "Alder | 1,200",
                      "See the report (https://example.org/r), https://example.org/plain and "
                      "[image: Chart of homes] (https://example.org/c.png).")
    html = s.body_html
    assert "<table style=" in html and "<td style=" in html and ">1,200</td>" in html
    assert "<img" not in html
    assert '<a href="https://example.org/c.png" style=' in html and "[image: Chart of homes]</a>" in html
