"""An editor manages a statement's photos and documents from the statement page, as ``media add`` and ``media remove``
do: each change is a new revision in the editor's name; a refused file is a 4xx with the command line's words,
naming the file as it was uploaded; the thumbnails are for the staff only; the upload limit follows media.max_bytes;
a Markdown statement is imported with the files its front matter lists uploaded beside it."""

import html
import io
import json
import re

import pytest
from PIL import Image

from distributor import workflow
from distributor.statements.model import Media
from distributor.store import reading
from tests import mediafiles
from tests.test_web_actions import hand_out, released
from tests.webapp import EMBARGO, SID, csrf, local, login, post

PHOTO = f"/statements/{SID}/media"
THUMB = f"/statements/{SID}/media/field-visit.jpg/thumb"
ALT = "Volunteers fill sandbags outside a flooded house in Eastbrook"
MARKDOWN = """---
title: Eastbrook flood defences
date: 2026-10-14
reference: "Index: TRO 01/009/2026"
media:
  - file: field-visit.jpg
    alt: {alt}
    credit: "Photo: A. Reporter"
  - file: flood-report.pdf
    title: "Flood maps: the full report"
---
The Test Rights Office said today that the defences must be built.
"""


def add(client, data: bytes = b"", name: str = "Field Visit.JPG", statement_id: str = SID, token: bool = True,
        **fields):
    form = {"file": (io.BytesIO(data or mediafiles.jpeg()), name), **fields}
    if token:
        form["csrf_token"] = csrf(client, "/")
    return client.post(f"/statements/{statement_id}/media", data=form, content_type="multipart/form-data")


def media_of(system, statement_id: str = SID) -> tuple[Media, ...]:
    with reading(system.engine) as conn:
        return workflow.content(conn, statement_id, workflow.get(conn, statement_id)["revision"]).media


def row_of(system, statement_id: str = SID) -> dict:
    with reading(system.engine) as conn:
        return workflow.get(conn, statement_id)


def said(page: str, kind: str = "error") -> list[str]:
    return [html.unescape(m) for m in re.findall(rf'<div class="flash {kind}">(.*?)</div>', page, re.S)]


def has_media_form(client, statement_id: str = SID) -> bool:
    return 'id="add-media"' in client.get(f"/statements/{statement_id}").get_data(as_text=True)


def kept_files(system) -> list:
    root = system.config.paths.media
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def test_an_editor_adds_a_photo_and_removes_it_each_a_new_revision_in_their_name(web):
    system, clock, app = web()
    assert system.at("approve", SID, "--by", "sam").code == 0
    client = login(app)
    page = client.get(f"/statements/{SID}").get_data(as_text=True)
    assert "Photos and documents" in page and 'id="add-media"' in page
    reply = add(client, alt=ALT, caption="Eastbrook, 3 December 2026", credit="Photo: A. Reporter / NHRN",
                licence="CC BY 4.0", note="a photo of the visit")
    assert reply.status_code == 302 and local(reply) == f"/statements/{SID}"
    page = client.get(local(reply)).get_data(as_text=True)
    assert said(page, "ok") == ["revision 2: added field-visit.jpg (photo, "
                                f"{media_of(system)[0].size / 1000:.0f} kB); the approval is revoked, approve it again"]
    row = row_of(system)
    assert (row["revision"], row["status"], row["approved_revision"]) == (2, "draft", None)
    [item] = media_of(system)
    assert (item.name, item.alt, item.caption, item.credit, item.licence, item.width, item.height) == (
        "field-visit.jpg", ALT, "Eastbrook, 3 December 2026", "Photo: A. Reporter / NHRN", "CC BY 4.0", 1200, 800)
    trail = json.loads(system.cli("audit", SID, "--format", "json").out)
    assert {(e["action"], e["actor"]) for e in trail} >= {("media_added", "maya"), ("approval_revoked", "maya")}
    for shown in ("a photo of the visit", "field-visit.jpg", ALT, "Eastbrook, 3 December 2026",
                  "Photo: A. Reporter / NHRN", "CC BY 4.0", "1200×800", "photo", "/distributor" + THUMB):
        assert html.escape(shown, quote=False) in page, shown

    thumb = client.get(THUMB)
    assert thumb.status_code == 200 and thumb.mimetype == "image/jpeg"
    assert thumb.headers["X-Content-Type-Options"] == "nosniff" and thumb.headers["Cache-Control"] == "no-store"
    assert mediafiles.leaks(thumb.data) == []
    assert max(Image.open(io.BytesIO(thumb.data)).size) == 400
    original = client.get(f"{PHOTO}/field-visit.jpg/original")
    assert original.status_code == 200 and "attachment" in original.headers["Content-Disposition"]
    assert mediafiles.leaks(original.data) == [] and Image.open(io.BytesIO(original.data)).size == (1200, 800)
    assert login(app, "kim").get(THUMB).status_code == 200  # a manager is staff: they read it
    assert client.get(f"{PHOTO}/field-visit.jpg/large").status_code == 404  # the page's two only
    assert client.get(f"{PHOTO}/other.jpg/thumb").status_code == 404

    reply = post(client, f"{PHOTO}/field-visit.jpg/remove")
    assert reply.status_code == 302
    assert said(client.get(local(reply)).get_data(as_text=True), "ok") == ["revision 3: removed field-visit.jpg"]
    assert media_of(system) == () and row_of(system)["revision"] == 3
    trail = json.loads(system.cli("audit", SID, "--format", "json").out)
    assert ("media_removed", "maya") in {(e["action"], e["actor"]) for e in trail}
    assert client.get(THUMB).status_code == 404  # the working revision has it no more
    reply = post(client, f"{PHOTO}/field-visit.jpg/remove")  # a page shown before: refused, nothing changes
    assert "no media named 'field-visit.jpg'" in said(client.get(local(reply)).get_data(as_text=True))[0]
    assert row_of(system)["revision"] == 3


def test_a_document_is_listed_without_a_thumbnail(web):
    system, clock, app = web()
    client = login(app)
    assert add(client, mediafiles.pdf(), "Flood Report.pdf", title="Flood maps: the full report").status_code == 302
    page = client.get(f"/statements/{SID}").get_data(as_text=True)
    assert "flood-report.pdf" in page and "Flood maps: the full report" in page and "document" in page
    assert "flood-report.pdf/thumb" not in page
    assert client.get(f"{PHOTO}/flood-report.pdf/thumb").status_code == 404
    document = client.get(f"{PHOTO}/flood-report.pdf/original")
    assert document.mimetype == "application/pdf" and mediafiles.leaks(document.data) == []


def test_a_manager_reads_the_media_but_cannot_change_them(web):
    system, clock, app = web()
    assert system.at("media", "add", SID, write(system, "field-visit.jpg", mediafiles.jpeg()), "--alt", ALT,
                     "--by", "sam").code == 0
    manager = login(app, "kim")
    page = manager.get(f"/statements/{SID}").get_data(as_text=True)
    assert "field-visit.jpg" in page and 'id="add-media"' not in page and "/remove" not in page
    assert add(manager, alt=ALT, name="other.jpg").status_code == 403
    assert post(manager, f"{PHOTO}/field-visit.jpg/remove").status_code == 403
    assert row_of(system)["revision"] == 2 and [i.name for i in media_of(system)] == ["field-visit.jpg"]


def write(system, name: str, data: bytes):
    path = system.config.path.parent / name
    path.write_bytes(data)
    return path


def test_without_a_login_no_thumbnail_and_no_file(web):
    system, clock, app = web()
    assert system.at("media", "add", SID, write(system, "field-visit.jpg", mediafiles.jpeg()), "--alt", ALT,
                     "--by", "sam").code == 0
    stranger = app.test_client()
    for path in (THUMB, f"{PHOTO}/field-visit.jpg/original"):
        reply = stranger.get(path)
        assert reply.status_code in (302, 401), path
        assert "/login" in reply.headers.get("Location", "/login")
        assert not reply.data.startswith(b"\xff\xd8") and reply.mimetype != "image/jpeg"
    assert login(app).get(THUMB).status_code == 200


def test_a_refused_file_is_a_4xx_with_the_command_lines_words_naming_the_uploaded_file(web):
    system, clock, app = web()
    client = login(app)
    notes = b"These are my notes, not a photo.\n"
    reply = add(client, notes, "notes.jpg", alt=ALT, caption="kept in the form")
    assert reply.status_code == 400
    page = reply.get_data(as_text=True)
    cli = system.at("media", "add", SID, write(system, "notes.jpg", notes), "--alt", ALT, "--by", "sam")
    assert cli.code == 2
    words = cli.err.strip().removeprefix("distributor: ").removeprefix(str(system.config.path.parent / "notes.jpg"))
    assert said(page) == ["notes.jpg" + words]
    assert words.startswith(": not a JPEG, PNG or WebP image nor a PDF document")
    assert "kept in the form" in page  # what was typed is still there

    reply = add(client, mediafiles.png(), "Screen shot.png", caption="no alt text")
    assert reply.status_code == 400
    assert said(reply.get_data(as_text=True)) == [
        "Screen shot.png: an image needs alt text, describing it for those who cannot see it (the Alt text field)"]
    reply = add(client, b"", "", alt=ALT)  # no file chosen
    assert reply.status_code == 400 and said(reply.get_data(as_text=True)) == [
        "choose a photo (JPEG, PNG, WebP) or a PDF document"]
    assert row_of(system)["revision"] == 1 and media_of(system) == ()
    assert kept_files(system) == []  # nothing half-written: no revision, no file kept
    trail = json.loads(system.cli("audit", SID, "--format", "json").out)
    assert not any(e["action"].startswith("media") for e in trail)


def test_a_file_is_named_as_uploaded_its_last_part_only(web):
    system, clock, app = web()
    client = login(app)
    reply = add(client, b"junk", "..", alt=ALT)
    assert said(reply.get_data(as_text=True))[0].startswith("file: not a JPEG")
    long = "a" * 150 + ".jpg"
    reply = add(client, b"junk", long, alt=ALT)
    assert said(reply.get_data(as_text=True))[0].startswith(long[-100:] + ": not a JPEG")
    reply = add(client, name="Field Visit.JPG", alt=ALT, caption="c" * 2001)
    assert said(reply.get_data(as_text=True)) == ["the Caption field: is 2001 characters long; at most 2000 fit"]
    windows = "C:\\Users\\sam\\Field Visit.JPG".replace("\\", "\\\\")  # escaped in the header, as it is sent
    assert add(client, name=windows, alt=ALT).status_code == 302
    assert [i.name for i in media_of(system)] == ["field-visit.jpg"]


def test_a_new_revision_says_what_it_cancelled(web):
    system, clock, app = web()
    assert system.at("approve", SID, "--by", "sam").code == 0
    assert system.at("schedule", SID, "--embargo", EMBARGO.isoformat(), "--channels", "email", "--override-embargo",
                     "--reason", "test").code == 0
    system.dispatcher.advance()  # the embargoed copies planned, none sent
    client = login(app)
    reply = add(client, alt=ALT)
    [message] = said(client.get(local(reply)).get_data(as_text=True), "ok")
    assert re.fullmatch(r"revision 2: added field-visit\.jpg \(photo, \d+ kB\); the approval is revoked, approve it "
                        r"again; \d+ unsent deliveries of the old revision cancelled", message), message
    assert row_of(system)["status"] == "draft"


def test_media_change_in_every_state_but_retracted(web, statement_file):
    from tests.channels.conftest import file_wire
    system, clock, app = web(extra=file_wire())
    editor = login(app)
    assert has_media_form(editor)  # draft
    assert system.at("approve", SID, "--by", "sam").code == 0
    assert has_media_form(editor)  # approved
    assert system.at("schedule", SID, "--embargo", EMBARGO.isoformat(), "--channels", "email", "--override-embargo",
                     "--reason", "test").code == 0
    hand_out(system)
    assert row_of(system)["status"] == "scheduled" and has_media_form(editor)
    released(system, clock)
    editor = login(app)  # a day later: the session before has ended
    assert has_media_form(editor)  # released: a correction in the making
    assert add(editor, alt=ALT).status_code == 302
    row = row_of(system)
    assert (row["status"], row["revision"], row["published_revision"]) == ("released", 2, 1)
    assert editor.get(THUMB).status_code == 200  # the working revision's, not yet the public's
    assert "Those of revision 2, in the making" in editor.get(f"/statements/{SID}").get_data(as_text=True)
    assert system.at("retract", SID, "--by", "sam", "--reason", "wrong maps").code == 0
    assert not has_media_form(editor)  # retracted
    reply = add(editor, alt=ALT, name="other.jpg")
    assert reply.status_code == 409 and "retracted" in said(reply.get_data(as_text=True))[0]


def test_a_withdrawn_statement_takes_media(web):
    system, clock, app = web()
    assert system.at("withdraw", SID, "--by", "sam", "--reason", "not yet").code == 0
    editor = login(app)
    assert has_media_form(editor)
    assert add(editor, alt=ALT).status_code == 302 and [i.name for i in media_of(system)] == ["field-visit.jpg"]


def test_the_upload_limit_follows_media_max_bytes(web):
    system, clock, app = web(extra="\n[media]\nmax_bytes = 6000000\n")
    client = login(app)
    reply = add(client, b"x" * 5_500_000, "big.jpg", alt=ALT)  # above the statement files' 5 MB: read, refused
    assert reply.status_code == 400 and said(reply.get_data(as_text=True))[0].startswith("big.jpg: not a JPEG")
    assert "at most 6.0 MB" in client.get(f"/statements/{SID}").get_data(as_text=True)  # the form says so
    reply = add(client, b"x" * 7_000_000, "huge.jpg", alt=ALT)
    assert reply.status_code == 413
    assert "at most 6.1 MB, and a photo or document at most 6.0 MB (media.max_bytes)" in reply.get_data(as_text=True)
    assert row_of(system)["revision"] == 1


def test_a_file_over_media_max_bytes_is_refused_with_its_size(web):
    system, clock, app = web(extra="\n[media]\nmax_bytes = 20000\n")
    client = login(app)
    photo = mediafiles.noise_jpeg(40_000)
    reply = add(client, photo, "noise.jpg", alt=ALT)
    assert reply.status_code == 400
    assert said(reply.get_data(as_text=True)) == [
        f"noise.jpg: the file has {len(photo):,} bytes; a media file has at most 20,000 (20 kB, media.max_bytes)"]
    reply = add(client, b"x" * 5_300_000, "huge.jpg", alt=ALT)  # the statement files' limit stays
    assert reply.status_code == 413 and "at most 5.2 MB" in reply.get_data(as_text=True)
    assert kept_files(system) == []


def test_an_upload_is_read_into_memory_never_spooled_to_disk(web):
    system, clock, app = web()
    with app.test_request_context("/", method="POST", content_type="multipart/form-data",
                                  data={"file": (io.BytesIO(b"x" * 1_000_000), "photo.jpg")}):
        from flask import request
        assert isinstance(request.files["file"].stream, io.BytesIO)


def import_markdown(client, files: dict[str, bytes], text: str | None = None, **fields):
    form = {"file": (io.BytesIO((text or MARKDOWN.format(alt=ALT)).encode()), "Eastbrook.md"),
            "media": [(io.BytesIO(data), name) for name, data in files.items()], "csrf_token": csrf(client, "/"),
            **fields}  # a field given replaces the files
    return client.post("/import", data=form, content_type="multipart/form-data")


def test_a_markdown_import_carries_the_media_uploaded_with_it(web):
    system, clock, app = web()
    client = login(app)
    assert 'name="media" multiple' in client.get("/").get_data(as_text=True)
    reply = import_markdown(client, {"field-visit.jpg": mediafiles.jpeg(), "flood-report.pdf": mediafiles.pdf(),
                                     "spare.png": mediafiles.png()})
    assert reply.status_code == 302 and local(reply) == "/statements/tro-01-009-2026"
    page = client.get(local(reply)).get_data(as_text=True)
    assert said(page, "ok") == ["imported as tro-01-009-2026 revision 1; 1 of the files uploaded with it left out: "
                                "its front matter does not list them"]
    items = media_of(system, "tro-01-009-2026")
    assert [(i.name, i.alt, i.title, i.credit) for i in items] == [
        ("field-visit.jpg", ALT, None, "Photo: A. Reporter"), ("flood-report.pdf", None, "Flood maps: the full report",
                                                               None)]
    thumb = client.get("/statements/tro-01-009-2026/media/field-visit.jpg/thumb")
    assert thumb.status_code == 200 and mediafiles.leaks(thumb.data) == []
    assert json.loads(system.cli("audit", "tro-01-009-2026", "--format", "json").out)[0]["actor"] == "maya"


def test_an_import_refuses_a_missing_or_bad_media_file_by_its_name(web):
    system, clock, app = web()
    client = login(app)
    reply = import_markdown(client, {"flood-report.pdf": mediafiles.pdf()})
    assert reply.status_code == 400
    [message] = said(reply.get_data(as_text=True))
    assert message.startswith("field-visit.jpg: not uploaded with the statement") and "/tmp" not in message
    reply = import_markdown(client, {"field-visit.jpg": b"not a photo", "flood-report.pdf": mediafiles.pdf()})
    assert reply.status_code == 400
    assert said(reply.get_data(as_text=True))[0].startswith("field-visit.jpg: not a JPEG, PNG or WebP image")
    reply = import_markdown(client, {"field-visit.jpg": mediafiles.jpeg(), "flood-report.pdf": mediafiles.pdf()},
                            text=MARKDOWN.format(alt='""'))
    assert reply.status_code == 400
    assert said(reply.get_data(as_text=True))[0].startswith("field-visit.jpg: an image needs alt text")
    reply = import_markdown(client, {"field-visit.jpg": mediafiles.jpeg(), "flood-report.pdf": mediafiles.pdf()},
                            media=[(io.BytesIO(mediafiles.jpeg()), "field-visit.jpg"),
                                   (io.BytesIO(mediafiles.pdf()), "sub/field-visit.jpg")])
    assert reply.status_code == 400 and said(reply.get_data(as_text=True)) == [
        "field-visit.jpg: two files uploaded with the statement have this name"]
    reply = import_markdown(client, {}, media=[(io.BytesIO(mediafiles.jpeg()), "\U0001F30A" * 60 + ".jpg")])
    assert reply.status_code == 400
    assert said(reply.get_data(as_text=True))[0].endswith(": expected a file's name of at most 200 bytes")
    assert system.at("show", "tro-01-009-2026").code == 2  # a refused import made nothing


def test_a_plain_text_revision_keeps_the_media_and_a_markdown_one_replaces_them(web, statement_file):
    system, clock, app = web()
    client = login(app)
    assert add(client, alt=ALT).status_code == 302
    newer = statement_file(name="newer.txt", body_extra="\nA new paragraph.\n")
    reply = client.post("/import", data={"file": (io.BytesIO(newer.read_bytes()), "newer.txt"), "revision_of": SID,
                                         "media": (io.BytesIO(b""), ""),  # the browser's empty file input
                                         "csrf_token": csrf(client, "/")}, content_type="multipart/form-data")
    assert reply.status_code == 302
    assert row_of(system)["revision"] == 3 and [i.name for i in media_of(system)] == ["field-visit.jpg"]
    text = MARKDOWN.format(alt=ALT).replace("TRO 01/009/2026", "TRO 01/001/2026").split("  - file: field-visit")[0]
    reply = import_markdown(client, {"flood-report.pdf": mediafiles.pdf()},
                            text=text + "  - file: flood-report.pdf\n    title: Maps\n---\nNew text.\n", revision_of=SID)
    assert reply.status_code == 302, said(client.get(f"/statements/{SID}").get_data(as_text=True))
    assert [i.name for i in media_of(system)] == ["flood-report.pdf"]


def test_csrf_is_required(web):
    system, clock, app = web()
    client = login(app)
    assert add(client, alt=ALT, token=False).status_code == 400
    assert system.at("media", "add", SID, write(system, "field-visit.jpg", mediafiles.jpeg()), "--alt", ALT,
                     "--by", "sam").code == 0
    assert client.post(f"{PHOTO}/field-visit.jpg/remove").status_code == 400
    assert row_of(system)["revision"] == 2 and [i.name for i in media_of(system)] == ["field-visit.jpg"]
    reply = client.post("/import", data={"file": (io.BytesIO(MARKDOWN.format(alt=ALT).encode()), "x.md"),
                                         "media": [(io.BytesIO(mediafiles.jpeg()), "field-visit.jpg")]},
                        content_type="multipart/form-data")
    assert reply.status_code == 400


def test_the_media_section_fits_a_phone_and_passes_axe(web, browser):
    """The statement page with a photo and a document, for an editor, in a real browser: the thumbnail loads under
    the page's policy, nothing runs off a phone's screen, and axe-core finds nothing serious."""
    import threading

    from waitress import create_server

    from tests.conftest import free_port

    in_browser = pytest.importorskip("tests.test_pages_in_browser")
    port = free_port()
    system, clock, app = web(base_url=f"http://127.0.0.1:{port}")
    for name, data, described in (("field-visit.jpg", mediafiles.jpeg(), ("--alt", ALT, "--caption", "Eastbrook")),
                                  ("flood-report.pdf", mediafiles.pdf(), ("--title", "The full report"))):
        assert system.at("media", "add", SID, write(system, name, data), *described, "--credit", "NHRN",
                         "--by", "sam").code == 0
    server = create_server(app, host="127.0.0.1", port=port)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    context = browser.new_context()
    try:
        base = f"http://127.0.0.1:{port}"
        page = in_browser.log_in(context, base, "maya")
        in_browser.ARTEFACTS.mkdir(parents=True, exist_ok=True)
        pages = in_browser.Pages(in_browser.axe_playwright.Axe())
        pages.check(page, "statement-media", f"{base}/statements/{SID}")
        assert page.locator("img.thumb").evaluate("image => image.complete && image.naturalWidth") == 400
        assert page.locator("#add-media").count() == 1
        assert not pages.too_wide, pages.too_wide
        assert not pages.violations, pages.violations
    finally:
        context.close()
        server.close()
        thread.join(timeout=5)
