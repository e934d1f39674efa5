from datetime import date

import pytest

from distributor.errors import InputError
from distributor.statements import parse_file
from distributor.statements.plaintext import parse


def test_reference_sample(shared_sample):
    s = parse_file(shared_sample)
    assert s.kind == "Public Statement"
    assert s.date == date(2002, 3, 27)
    assert s.reference == "AI Index ASA 17/013/2002"
    assert s.serial == "News Service Nr. 56"
    assert s.id == "asa-17-013-2002"
    lines = [line.strip() for line in shared_sample.read_text(encoding="utf-8").splitlines() if line.strip()]
    after_reference = lines.index("AI Index ASA 17/013/2002 - News Service Nr. 56") + 1
    assert s.title == lines[after_reference]
    assert s.body[0] == lines[after_reference + 1]
    assert len(s.body) == 6
    assert s.classification == "public document"
    assert s.contacts.startswith("For more information please call")
    assert "How you can help" not in " ".join(s.body) + s.contacts
    assert not any(p.startswith("Document - ") for p in s.body)
    assert s.embargo is None


def test_crlf_copy_is_the_same_statement(shared_sample, tmp_path):
    crlf = tmp_path / "crlf.txt"
    crlf.write_bytes(shared_sample.read_bytes().replace(b"\n", b"\r\n"))
    assert parse_file(crlf).content_hash() == parse_file(shared_sample).content_hash()


def test_lists_subheadings_wrapped_lines_and_unicode():
    text = """Press Release

2 May 2026

Index: XYZ 10/002/2026

EMBARGOED UNTIL 0001 HRS BST 5 MAY 2026

Kestrel: “Release Zoë Müller” – now

The first paragraph is wrapped
over two lines.

Our demands

- Release Zoë Müller
  immediately.
- End the ban.
1. Numbered item

Contact: press office, +44 20 7946 0000
"""
    s = parse(text.encode(), "x.txt")
    assert s.title == "Kestrel: “Release Zoë Müller” – now"
    assert s.body == ("The first paragraph is wrapped over two lines.", "Our demands",
                      "- Release Zoë Müller immediately.", "- End the ban.", "1. Numbered item")
    assert s.embargo.isoformat() == "2026-05-04T23:01:00+00:00"
    assert not any("EMBARGO" in p for p in s.body)
    assert s.contacts.startswith("Contact:")
    assert s.id == "xyz-10-002-2026"


def test_id_without_reference_uses_date_and_title():
    text = "Press Release\n\n3 June 2026\n\nA very long title about Åland and the sea that keeps going on and on and on\n\nBody.\n"
    s = parse(text.encode(), "x.txt")
    assert s.reference is None
    assert s.id.startswith("2026-06-03-a-very-long-title-about-aland")
    assert len(s.id) <= 60


def test_undecodable_bytes_name_the_line():
    with pytest.raises(InputError) as err:
        parse(b"Press Release\n\nTitle\n\nBody \xff here\n", "bad.txt")
    assert str(err.value).startswith("bad.txt:5: not UTF-8")


@pytest.mark.parametrize("text, message", [
    ("Press Release\n\n3 June 2026\n", "no title"),
    ("Press Release\n\n3 June 2026\n\nOnly a title\n", "no body paragraph"),
    ("Press Release\n\nTitle\n\nBody.\n", "reference or a date"),
])
def test_incomplete_statements_are_rejected(tmp_path, text, message):
    path = tmp_path / "s.txt"
    path.write_text(text)
    with pytest.raises(InputError) as err:
        parse_file(path)
    assert message in str(err.value)


def test_bad_embargo_line_names_the_line():
    text = "Press Release\n\n3 June 2026\n\nEmbargo: 15 January 2026 00:01 BST\n\nTitle\n\nBody.\n"
    with pytest.raises(InputError) as err:
        parse(text.encode(), "e.txt")
    assert str(err.value).startswith("e.txt:5: BST is not in force")
