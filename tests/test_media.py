"""A statement's photos and documents: checked by content, stripped of metadata, kept by hash, part of the revision."""

import io
import json

import pytest
from PIL import Image
from sqlalchemy import select

from distributor import media
from distributor.media.files import clean
from distributor.store import reading
from distributor.store.schema import audit, statements
from tests import mediafiles

SID = "tro-01-001-2026"

MARKDOWN = """---
title: Riverland flood maps
date: 2026-10-14
reference: "Index: TRO 01/001/2026"
{media}---
The Test Rights Office said today that the maps must be published.
"""


def markdown(tmp_path, entries: str = "", name: str = "statement.md"):
    path = tmp_path / name
    path.write_text(MARKDOWN.format(media=f"media:\n{entries}" if entries else ""), encoding="utf-8")
    return path


def write(tmp_path, name: str, data: bytes):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def state(system) -> dict:
    with reading(system.engine) as conn:
        row = conn.execute(select(statements).where(statements.c.id == SID)).mappings().first()
    return dict(row) if row else {}


def shown(system) -> dict:
    result = system.cli("show", SID, "--format", "json")
    assert result.code == 0, result.err
    return json.loads(result.out)


def kept_files(system) -> list:
    root = system.config.paths.media
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


@pytest.fixture
def system(make_system):
    return make_system()


@pytest.fixture
def imported(system, statement_file):
    """A plain-text statement, imported and approved."""
    assert system.cli("import", statement_file()).code == 0
    assert system.cli("approve", SID, "--by", "Maya").code == 0
    return system


# -- refusals ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("data, words", [
    (b"GIF89a not a photo at all", "not a JPEG, PNG or WebP image nor a PDF document"),
    (b"", "the file is empty"),
    (mediafiles.jpeg()[:4000], "truncated or corrupt"),
    (mediafiles.pdf()[:600], "not a readable PDF document"),
    (mediafiles.png_header(8000, 8000), "8000×8000 pixels (64 megapixels); an image has at most 60 megapixels"),
    (mediafiles.png_header(20000, 20000), "decompression bomb"),
    (mediafiles.bomb(), "decompression bomb"),
], ids=["not-an-image", "empty", "truncated-jpeg", "truncated-pdf", "64-megapixels", "bomb-header", "bomb"])
def test_a_file_is_refused_by_its_content_in_one_line_naming_it_and_nothing_changes(imported, tmp_path, data, words):
    path = write(tmp_path, "photo.jpg", data)
    result = imported.cli("media", "add", SID, path, "--alt", "A photo", "--by", "Sam")
    assert result.code == 2
    assert result.err.count("\n") == 1 and str(path) in result.err and words in result.err, result.err
    assert state(imported)["revision"] == 1 and state(imported)["approved_revision"] == 1
    assert kept_files(imported) == []


def test_the_type_comes_from_the_content_never_from_the_name(imported, tmp_path):
    pdf_named_jpg = write(tmp_path, "scan.jpg", mediafiles.pdf())
    png_named_pdf = write(tmp_path, "Report Cover.PDF", mediafiles.png())
    assert imported.cli("media", "add", SID, pdf_named_jpg, "--title", "Scan", "--by", "Sam").code == 0
    assert imported.cli("media", "add", SID, png_named_pdf, "--alt", "The cover", "--by", "Sam").code == 0
    items = {m["name"]: m for m in shown(imported)["media"]}
    assert items["scan.pdf"]["content_type"] == "application/pdf" and items["scan.pdf"]["kind"] == "document"
    assert items["report-cover.png"]["content_type"] == "image/png" and items["report-cover.png"]["kind"] == "image"


def test_a_file_over_media_max_bytes_is_refused_before_it_is_read(make_system, statement_file, tmp_path, write_config):
    system = make_system(extra="\n[media]\nmax_bytes = 5000\n")
    assert system.cli("import", statement_file()).code == 0
    big = write(tmp_path, "big.jpg", mediafiles.noise_jpeg(8000))
    result = system.cli("media", "add", SID, big, "--alt", "Noise", "--by", "Sam")
    assert result.code == 2 and "a media file has at most 5,000" in result.err and "media.max_bytes" in result.err
    small = write(tmp_path, "small.png", mediafiles.png(40, 30))
    assert system.cli("media", "add", SID, small, "--alt", "Small", "--by", "Sam").code == 0


def test_media_max_bytes_must_be_a_sensible_number(make_system):
    with pytest.raises(Exception, match="media.max_bytes"):
        make_system(extra="\n[media]\nmax_bytes = 10\n")


def test_an_image_needs_alt_text_and_a_document_does_not(imported, tmp_path):
    photo = write(tmp_path, "photo.jpg", mediafiles.jpeg())
    result = imported.cli("media", "add", SID, photo, "--caption", "A caption is not alt text", "--by", "Sam")
    assert result.code == 2 and "an image needs alt text" in result.err and "--alt" in result.err
    report = write(tmp_path, "report.pdf", mediafiles.pdf())
    assert imported.cli("media", "add", SID, report, "--by", "Sam").code == 0


def test_alt_text_is_at_most_1500_characters(imported, tmp_path):
    photo = write(tmp_path, "photo.jpg", mediafiles.jpeg())
    result = imported.cli("media", "add", SID, photo, "--alt", "x" * 1501, "--by", "Sam")
    assert result.code == 2 and "--alt" in result.err and "1500" in result.err


def test_a_statement_carries_at_most_20_media(imported, tmp_path):
    for n in range(20):
        path = write(tmp_path, f"p{n}.png", _tiny_png(n))
        assert imported.cli("media", "add", SID, path, "--alt", f"Picture {n}", "--by", "Sam").code == 0
    path = write(tmp_path, "p20.png", _tiny_png(20))
    result = imported.cli("media", "add", SID, path, "--alt", "One too many", "--by", "Sam")
    assert result.code == 2 and "at most 20 media" in result.err
    assert len(shown(imported)["media"]) == 20


def test_front_matter_lists_at_most_20(system, tmp_path):
    entries = "".join(f"  - file: p{n}.png\n    alt: Picture {n}\n" for n in range(21))
    result = system.cli("import", markdown(tmp_path, entries))
    assert result.code == 2 and "lists 21 items; a statement carries at most 20" in result.err


def _tiny_png(n: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), (n * 10 % 256, 50, 90)).save(out, "PNG")
    return out.getvalue()


# -- metadata and renditions ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("make, name", [(mediafiles.jpeg, "photo.jpg"), (mediafiles.png, "chart.png"),
                                        (mediafiles.webp, "photo.webp"), (mediafiles.pdf, "report.pdf")])
def test_no_metadata_is_kept_in_any_file(imported, tmp_path, make, name):
    data = make()
    assert mediafiles.leaks(data), "the test file must carry metadata to begin with"
    path = write(tmp_path, name, data)
    assert imported.cli("media", "add", SID, path, "--alt", "Something", "--by", "Sam").code == 0
    files = [p for p in kept_files(imported) if p.name != "about.json"]
    assert files and all(mediafiles.leaks(p.read_bytes()) == [] for p in files), \
        {p.name: mediafiles.leaks(p.read_bytes()) for p in files}


def test_the_orientation_is_applied_before_the_metadata_goes():
    cleaned = clean(mediafiles.jpeg(1200, 800, orientation=6), "photo.jpg", 10**8)
    assert (cleaned.width, cleaned.height) == (800, 1200)
    upright = Image.open(io.BytesIO(cleaned.original)).convert("RGB")
    top, bottom = upright.getpixel((400, 100)), upright.getpixel((400, 1100))
    assert top[0] > 150 and top[1] < 80 and min(bottom) > 245, (top, bottom)  # the left half, turned, is on top


def test_renditions_are_2048_1024_and_400_on_the_long_side():
    cleaned = clean(mediafiles.jpeg(3000, 2000), "photo.jpg", 10**8)
    assert {name: (w, h) for name, (_, w, h) in cleaned.renditions.items()} == {
        "large": (2048, 1365), "medium": (1024, 683), "thumb": (400, 267)}
    for data, w, h in cleaned.renditions.values():
        assert Image.open(io.BytesIO(data)).size == (w, h)


def test_a_rendition_is_never_larger_than_its_original():
    cleaned = clean(mediafiles.png(640, 480), "chart.png", 10**8)
    assert cleaned.renditions["large"][1:] == (640, 480) and cleaned.renditions["medium"][1:] == (640, 480)
    assert cleaned.renditions["thumb"][1:] == (400, 300)


def test_a_pdf_loses_its_document_information_and_xmp():
    cleaned = clean(mediafiles.pdf(pages=2), "report.pdf", 10**8)
    import pikepdf

    with pikepdf.open(io.BytesIO(cleaned.original)) as pdf:
        assert len(pdf.pages) == 2
        assert "/Info" not in pdf.trailer and "/Metadata" not in pdf.Root


def test_an_encrypted_pdf_is_refused():
    import pikepdf

    document = pikepdf.new()
    document.add_blank_page()
    out = io.BytesIO()
    document.save(out, encryption=pikepdf.Encryption(owner="o", user="u"))
    with pytest.raises(Exception, match="encrypted"):
        clean(out.getvalue(), "locked.pdf", 10**8)


def test_the_same_file_is_kept_once_whatever_carries_it(imported, tmp_path, statement_file):
    photo = write(tmp_path, "photo.jpg", mediafiles.jpeg())
    assert imported.cli("media", "add", SID, photo, "--alt", "A photo", "--by", "Sam").code == 0
    other = statement_file(name="other.txt", reference="Index: TRO 01/002/2026")
    assert imported.cli("import", other).code == 0
    assert imported.cli("media", "add", "tro-01-002-2026", photo, "--alt", "The same photo", "--by", "Sam").code == 0
    assert len([p for p in kept_files(imported) if p.name == "about.json"]) == 1


def test_the_upload_itself_never_reaches_the_disk(imported, tmp_path):
    data = mediafiles.jpeg()
    assert imported.cli("media", "add", SID, write(tmp_path, "photo.jpg", data), "--alt", "A", "--by", "Sam").code == 0
    assert all(p.read_bytes() != data for p in kept_files(imported))


# -- revisions, approval and re-imports ----------------------------------------------------------------------------

def test_adding_or_removing_a_file_is_a_new_revision_that_revokes_the_approval(imported, tmp_path):
    photo = write(tmp_path, "photo.jpg", mediafiles.jpeg())
    result = imported.cli("media", "add", SID, photo, "--alt", "A photo", "--credit", "Photo: TRO", "--by", "Sam")
    assert result.code == 0 and result.out.strip() == "photo.jpg"
    assert "revision 2" in result.err and "approval is revoked" in result.err
    assert state(imported)["revision"] == 2 and state(imported)["approved_revision"] is None
    assert imported.cli("approve", SID, "--by", "Maya").code == 0
    result = imported.cli("media", "remove", SID, "photo.jpg", "--by", "Sam")
    assert result.code == 0 and "revision 3" in result.err and "approval is revoked" in result.err
    assert state(imported)["approved_revision"] is None and shown(imported)["media"] == []
    with reading(imported.engine) as conn:
        actions = conn.execute(select(audit.c.action, audit.c.actor).where(audit.c.statement_id == SID)).all()
    assert ("media_added", "Sam") in actions and ("media_removed", "Sam") in actions


def test_changing_a_photo_or_its_words_changes_the_content_hash(tmp_path, system):
    write(tmp_path, "photo.jpg", mediafiles.jpeg())
    entry = "  - file: photo.jpg\n    alt: {alt}\n"
    path = markdown(tmp_path, entry.format(alt="Volunteers at work"))
    assert system.cli("import", path).code == 0
    assert system.cli("approve", SID, "--by", "Maya").code == 0
    assert system.cli("import", path).code == 0 and state(system)["revision"] == 1  # the same: nothing new
    write(tmp_path, "photo.jpg", mediafiles.jpeg(colour=(20, 160, 20)))  # another photo, the same name
    result = system.cli("import", path)
    assert result.code == 0 and "approval is revoked" in result.err and state(system)["revision"] == 2
    assert system.cli("approve", SID, "--by", "Maya").code == 0
    markdown(tmp_path, entry.format(alt="Volunteers at work in Eastbrook"))
    result = system.cli("import", path)
    assert result.code == 0 and "approval is revoked" in result.err and state(system)["revision"] == 3


def test_a_markdown_reimport_replaces_the_media_and_a_text_one_keeps_them(imported, tmp_path, statement_file):
    photo = write(tmp_path, "photo.jpg", mediafiles.jpeg())
    assert imported.cli("media", "add", SID, photo, "--alt", "A photo", "--by", "Sam").code == 0
    changed = statement_file(body_extra="A new paragraph.")
    assert imported.cli("import", changed).code == 0
    assert [m["name"] for m in shown(imported)["media"]] == ["photo.jpg"]  # .txt: kept
    write(tmp_path, "report.pdf", mediafiles.pdf())
    path = markdown(tmp_path, "  - file: report.pdf\n    title: The report\n")
    assert imported.cli("import", path, "--revision-of", SID).code == 0
    assert [m["name"] for m in shown(imported)["media"]] == ["report.pdf"]  # .md: replaced
    markdown(tmp_path)
    assert imported.cli("import", path, "--revision-of", SID).code == 0
    assert shown(imported)["media"] == []


def test_show_lists_each_item_with_its_words_and_size(imported, tmp_path):
    photo = write(tmp_path, "Field Visit.jpg", mediafiles.jpeg(1200, 800))
    assert imported.cli("media", "add", SID, photo, "--alt", "Volunteers", "--caption", "Eastbrook, 3 December",
                        "--credit", "Photo: TRO", "--licence", "CC BY 4.0", "--by", "Sam").code == 0
    result = imported.cli("show", SID)
    assert "field-visit.jpg  [image, 1200×800 px," in result.out
    assert "Eastbrook, 3 December · Photo: TRO · CC BY 4.0" in result.out
    item = shown(imported)["media"][0]
    assert item["alt"] == "Volunteers" and item["width"] == 1200 and item["bytes"] > 0


def test_two_files_of_one_name_get_names_of_their_own(imported, tmp_path):
    first = write(tmp_path, "photo.jpg", mediafiles.jpeg())
    assert imported.cli("media", "add", SID, first, "--alt", "One", "--by", "Sam").code == 0
    (tmp_path / "b").mkdir()
    second = write(tmp_path / "b", "photo.jpg", mediafiles.jpeg(colour=(0, 0, 200)))
    assert imported.cli("media", "add", SID, second, "--alt", "Two", "--by", "Sam").out.strip() == "photo-2.jpg"
    again = imported.cli("media", "add", SID, first, "--alt", "One again", "--by", "Sam")
    assert again.code == 2 and "carries this file already, as photo.jpg" in again.err


def test_removing_a_name_that_is_not_there_lists_those_that_are(imported, tmp_path):
    photo = write(tmp_path, "photo.jpg", mediafiles.jpeg())
    assert imported.cli("media", "add", SID, photo, "--alt", "A photo", "--by", "Sam").code == 0
    result = imported.cli("media", "remove", SID, "nope.jpg", "--by", "Sam")
    assert result.code == 2 and "no media named 'nope.jpg'; this revision has: photo.jpg" in result.err


def test_a_retracted_statement_keeps_its_media(imported, tmp_path):
    photo = write(tmp_path, "photo.jpg", mediafiles.jpeg())
    assert imported.cli("media", "add", SID, photo, "--alt", "A photo", "--by", "Sam").code == 0
    with imported.engine.begin() as conn:  # as a retraction leaves it
        conn.execute(statements.update().where(statements.c.id == SID).values(status="retracted"))
    result = imported.cli("media", "remove", SID, "photo.jpg", "--by", "Sam")
    assert result.code == 2 and "was retracted" in result.err


# -- front matter --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("entries, words", [
    ("  - file: missing.jpg\n    alt: Gone\n", "missing.jpg: no such file"),
    ("  - alt: No file\n", "'media[0]' lacks 'file'"),
    ("  - file: photo.jpg\n    alt: A\n    colour: red\n", "'media[0]' has unknown key 'colour'"),
    ("  - file: photo.jpg\n", "an image needs alt text"),
    ("  - file: photo.jpg\n    alt: [a, b]\n", "'media[0].alt': expected text"),
], ids=["missing", "no-file", "unknown-key", "no-alt", "alt-not-text"])
def test_front_matter_media_errors_name_the_entry_or_the_file(system, tmp_path, entries, words):
    write(tmp_path, "photo.jpg", mediafiles.jpeg())
    result = system.cli("import", markdown(tmp_path, entries))
    assert result.code == 2 and words in result.err and result.err.count("\n") == 1, result.err
    assert state(system) == {}


def test_a_refused_second_file_leaves_no_statement(system, tmp_path):
    write(tmp_path, "photo.jpg", mediafiles.jpeg())
    write(tmp_path, "broken.pdf", b"%PDF-1.7 and nothing else")
    entries = "  - file: photo.jpg\n    alt: A photo\n  - file: broken.pdf\n    title: Broken\n"
    result = system.cli("import", markdown(tmp_path, entries))
    assert result.code == 2 and "broken.pdf: not a readable PDF document" in result.err
    assert state(system) == {}


def test_front_matter_media_carry_their_words(system, tmp_path):
    write(tmp_path, "photo.jpg", mediafiles.jpeg())
    write(tmp_path, "report.pdf", mediafiles.pdf())
    entries = ("  - file: photo.jpg\n    alt: Volunteers\n    caption: Eastbrook\n    credit: \"Photo: TRO\"\n"
               "    licence: CC BY 4.0\n  - file: report.pdf\n    title: The full report\n")
    assert system.cli("import", markdown(tmp_path, entries)).code == 0
    photo, report = shown(system)["media"]
    assert (photo["alt"], photo["caption"], photo["credit"], photo["licence"]) == (
        "Volunteers", "Eastbrook", "Photo: TRO", "CC BY 4.0")
    assert report["title"] == "The full report" and report["kind"] == "document"


def test_the_store_gives_back_each_file_with_its_pixels_and_bytes(imported, tmp_path):
    photo = write(tmp_path, "photo.jpg", mediafiles.jpeg(3000, 2000))
    assert imported.cli("media", "add", SID, photo, "--alt", "A photo", "--by", "Sam").code == 0
    from distributor import workflow

    with reading(imported.engine) as conn:
        item = workflow.content(conn, SID, 2).media[0]
    found = media.store_of(imported.config).renditions(item)
    assert [r.name for r in found] == ["original", "large", "medium", "thumb"]
    for rendition in found:
        assert rendition.path.stat().st_size == rendition.size
        assert Image.open(rendition.path).size == (rendition.width, rendition.height)
    assert media.public_path(SID, item, "large").startswith("media/") and \
        media.public_path(SID, item, "large").endswith("/large-photo.jpg")
