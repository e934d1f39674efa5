"""A statement's photos and documents in its email, against a real SMTP server on loopback: what is attached (the
stripped copies from the media store), what is listed instead and where it can be had, the size limit counted as
the wire carries it, and the notices that carry nothing."""

import email
import email.policy
import io
import json
import re
import shutil
import uuid
from datetime import timedelta

import pytest
from PIL import Image

from distributor import media, workflow
from distributor.channels.email import encoded_size
from distributor.clock import FixedClock
from tests.conftest import utc
from tests.mediafiles import jpeg, leaks, pdf

SID = "tro-01-001-2026"
LIST = """email,name,outlet,embargo_ok
ana@paper.example.com,Ana Lima,Paper,yes
tv@tv.example.org,Tess,TV,no
"""
START = utc(2027, 3, 1, 9, 0)
EMBARGO = utc(2027, 3, 2, 0, 1)
PAGE = f"https://office.example.org/press/{SID}"  # office.public_url of the tests' config
NEWSROOM = '\n[channels.newsroom]\ndirectory = "out/news"\nurl = "https://news.example.org/"\n'
PHOTO = {"--alt": "Volunteers fill sandbags outside a flooded house", "--caption": "Eastbrook, 3 December 2026",
         "--credit": "Photo: A. Reporter / TRO", "--licence": "CC BY 4.0"}
REPORT = {"--title": "Flood maps: the full report", "--caption": "Forty pages of maps",
          "--credit": "Riverland Mapping Unit"}


def messages(sink) -> list[email.message.EmailMessage]:
    return [email.message_from_bytes(m.data, policy=email.policy.default) for m in sink.messages]


def to(message) -> str:
    return message["To"].addresses[0].addr_spec


def attached(message) -> list:
    return [part for part in message.walk() if part.get_content_disposition() == "attachment"]


def text_and_html(message) -> tuple[str, str]:
    return message.get_body(("plain",)).get_content(), message.get_body(("html",)).get_content()


def tick(system) -> None:
    system.dispatcher.advance()
    system.dispatcher.deliver("email")


def items(system) -> dict[str, media.Media]:
    """The current revision's media, by the file name they were added from (without its extension)."""
    with system.engine.connect() as conn:
        statement = workflow.content(conn, SID, workflow.get(conn, SID)["revision"])
    return {item.name.rpartition(".")[0]: item for item in statement.media}


def prepared(system, tmp_path, statement_file, files: dict[str, tuple[bytes, dict]]) -> dict[str, media.Media]:
    """The list imported, the statement imported with ``files`` (name → (bytes, what is said of it)), approved."""
    csv = tmp_path / "list.csv"
    csv.write_text(LIST, encoding="utf-8")
    assert system.cli("recipients", "import", csv, "--list", "embargo").code == 0
    assert system.cli("import", statement_file()).code == 0
    for name, (data, described) in files.items():
        path = tmp_path / name
        path.write_bytes(data)
        args = [a for key, value in described.items() for a in (key, value)]
        result = system.cli("media", "add", SID, path, *args, "--by", "Sam")
        assert result.code == 0, result.err
    assert system.cli("approve", SID, "--by", "Maya").code == 0
    return items(system)


def scheduled(system) -> None:
    result = system.cli("schedule", SID, "--embargo", EMBARGO.isoformat(), "--send-embargoed-at", START.isoformat(),
                        "--channels", "email")
    assert result.code == 0, result.err


def photo_and_report():
    return {"field-visit.jpg": (jpeg(2400, 1600), PHOTO), "flood-report.pdf": (pdf(3), REPORT)}


def embargoed_copy(make_system, smtp_sink, tmp_path, statement_file, email_extra: str = "", extra: str = ""):
    """The statement with a photo and a report, its embargoed copy sent to Ana."""
    system = make_system(clock=FixedClock(START), transport="smtp", smtp_port=smtp_sink.port,
                         email_extra=email_extra, extra=extra)
    found = prepared(system, tmp_path, statement_file, photo_and_report())
    scheduled(system)
    tick(system)
    [message] = messages(smtp_sink)
    assert to(message) == "ana@paper.example.com"
    return system, found, message


def assert_listed(text: str, html: str, item: media.Media, where: str, url: str) -> None:
    """The item is described in both parts, with where to get it."""
    for part in (text, html):
        for said in (item.label, item.caption, item.credit, media.megabytes(item.size), f"{where}: "):
            assert said and said in part, (said, part)
    assert f"{where}: {url}" in text
    assert f'{where}: <a href="{url}"' in html


def assert_same_file(part, data: bytes, name: str, content_type: str) -> None:
    assert part.get_content_disposition() == "attachment"
    assert part.get_filename() == name
    assert part.get_content_type() == content_type
    assert part["Content-Transfer-Encoding"] == "base64"
    assert part.get_content() == data
    assert leaks(part.get_content()) == []


# -- what is attached -------------------------------------------------------------------------------------------------

def test_the_documents_go_with_the_embargoed_copy_stripped_and_named_as_the_item_by_default(
        make_system, smtp_sink, tmp_path, statement_file):
    system, found, message = embargoed_copy(make_system, smtp_sink, tmp_path, statement_file)
    photo, report = found["field-visit"], found["flood-report"]
    store = media.store_of(system.config)
    upload = (tmp_path / "flood-report.pdf").read_bytes()
    assert leaks(upload) and store.read(report) != upload  # what was uploaded is never what leaves

    assert message.get_content_type() == "multipart/mixed"
    [part] = attached(message)
    assert_same_file(part, store.read(report), "flood-report.pdf", "application/pdf")
    raw = smtp_sink.messages[0].data
    assert all(b < 128 for b in raw) and max(len(line) for line in raw.split(b"\r\n")) <= 998

    text, html = text_and_html(message)  # the photo is not attached: it is listed, with where to get it
    assert "flood-report.pdf: Flood maps: the full report" in text and "flood-report.pdf: Flood maps" in html
    assert_listed(text, html, photo, "On the newsroom page after the lift", PAGE)
    assert report.label not in text.partition("Not attached")[2]


def test_all_attaches_the_medium_rendition_of_each_photo(make_system, smtp_sink, tmp_path, statement_file):
    system, found, message = embargoed_copy(make_system, smtp_sink, tmp_path, statement_file,
                                            email_extra='attachments = "all"')
    photo, report = found["field-visit"], found["flood-report"]
    store = media.store_of(system.config)
    first, second = attached(message)  # in the statement's order
    assert_same_file(first, store.read(photo, "medium"), "field-visit.jpg", "image/jpeg")
    assert Image.open(io.BytesIO(first.get_content())).size == (1024, 683)
    assert_same_file(second, store.read(report), "flood-report.pdf", "application/pdf")
    text, html = text_and_html(message)
    assert "Not attached" not in text and "Not attached" not in html
    assert "field-visit.jpg: Volunteers fill sandbags" in text


def test_none_attaches_nothing_and_lists_everything(make_system, smtp_sink, tmp_path, statement_file):
    _, found, message = embargoed_copy(make_system, smtp_sink, tmp_path, statement_file,
                                       email_extra='attachments = "none"')
    assert message.get_content_type() == "multipart/alternative" and attached(message) == []
    text, html = text_and_html(message)
    assert "Attached to this email" not in text and "Attached to this email" not in html
    for item in found.values():
        assert_listed(text, html, item, "On the newsroom page after the lift", PAGE)


# -- the limit ------------------------------------------------------------------------------------------------------

def test_what_would_pass_the_limit_is_listed_not_attached_counted_as_base64_on_the_wire(
        make_system, smtp_sink, tmp_path, statement_file, write_config, run):
    files = {"big.pdf": (pdf(60, text=f"big {uuid.uuid4()}"), {"--title": "The full report", **{
                 k: v for k, v in REPORT.items() if k != "--title"}}),
             "small.pdf": (pdf(1, text=f"small {uuid.uuid4()}"), {"--title": "The summary",
                                                                  "--caption": "Two pages for the desk",
                                                                  "--credit": "TRO research"})}
    # room for the big one and all but one byte of the small one, as base64: more than both files' own bytes
    probe = make_system(clock=FixedClock(START), transport="smtp", smtp_port=smtp_sink.port, name="probe.toml")
    sizes = prepared(probe, tmp_path, statement_file, files)
    big, small = sizes["big"], sizes["small"]
    limit = encoded_size(big.size) + encoded_size(small.size) - 1
    assert big.size + small.size < limit
    probe.close()

    system = make_system(clock=FixedClock(START), transport="smtp", smtp_port=smtp_sink.port,
                         email_extra=f"max_attachment_bytes = {limit}")
    scheduled(system)
    tick(system)
    [message] = messages(smtp_sink)
    [part] = attached(message)
    assert part.get_filename() == big.name
    on_wire = re.search(rb'filename="big.pdf"\r\n(?:[^\r\n]+\r\n)*\r\n(.*?)\r\n--=_',
                        smtp_sink.messages[0].data, re.S).group(1)
    assert len(on_wire) == encoded_size(big.size) <= limit  # its lines, each CRLF-ended
    text, html = text_and_html(message)
    assert_listed(text, html, small, "On the newsroom page after the lift", PAGE)

    def preview_attaching(room: int) -> list[str]:
        config = write_config(name=f"room-{room}.toml", email_extra=f"max_attachment_bytes = {room}")
        result = run(config, "preview", SID)
        assert result.code == 0, result.err
        parsed = email.message_from_bytes(result.out.encode(), policy=email.policy.default)
        return [p.get_filename() for p in attached(parsed)]

    assert preview_attaching(limit + 1) == ["big.pdf", "small.pdf"]  # at most the limit: exactly it fits
    assert preview_attaching(encoded_size(small.size)) == ["small.pdf"]  # a later item that fits still goes
    assert preview_attaching(0) == []


# -- where the listed files are -------------------------------------------------------------------------------------

def test_the_released_version_lists_each_file_at_its_newsroom_url(make_system, smtp_sink, tmp_path, statement_file,
                                                                  write_config, run):
    system, found, message = embargoed_copy(make_system, smtp_sink, tmp_path, statement_file, extra=NEWSROOM)
    photo = found["field-visit"]
    assert_listed(*text_and_html(message), photo, "On the newsroom page after the lift", PAGE)
    system.clock.set(EMBARGO)
    tick(system)
    [released] = [m for m in messages(smtp_sink) if to(m) == "tv@tv.example.org"]
    assert not released["Subject"].startswith("EMBARGOED")
    assert [p.get_filename() for p in attached(released)] == ["flood-report.pdf"]
    url = media.public_url(system.config, SID, photo)
    assert url.startswith(f"https://news.example.org/{SID}/media/") and url.endswith("/field-visit.jpg")
    assert_listed(*text_and_html(released), photo, "Download", url)
    # without a newsroom, the statement's page
    result = run(write_config(name="no-newsroom.toml"), "preview", SID, "--variant", "released", "--format", "text")
    assert result.code == 0, result.err
    assert f"Online: {PAGE}" in result.out and "after the lift" not in result.out


# -- notices ----------------------------------------------------------------------------------------------------------

def assert_bare(message) -> None:
    """A notice: no file, and no list of files."""
    assert message.get_content_type() == "multipart/alternative" and attached(message) == []
    for part in text_and_html(message):
        assert "attached" not in part.lower() and PHOTO["--alt"] not in part


def test_a_moved_embargo_and_a_withdrawal_carry_no_attachments_while_a_correction_does(
        make_system, smtp_sink, tmp_path, statement_file):
    system, found, copy = embargoed_copy(make_system, smtp_sink, tmp_path, statement_file)
    assert [p.get_filename() for p in attached(copy)] == ["flood-report.pdf"]

    result = system.cli("reschedule", SID, "--embargo", (EMBARGO + timedelta(hours=1)).isoformat(), "--by", "Maya",
                        "--reason", "the minister's statement moved")
    assert result.code == 0, result.err
    tick(system)
    [moved] = messages(smtp_sink)[1:]
    assert moved["Subject"].startswith("EMBARGO CHANGED")
    assert_bare(moved)

    assert system.cli("import", statement_file(body_extra="The maps cover 1,200 homes."),
                      "--note", "Adds the number of homes.").code == 0
    assert system.cli("approve", SID, "--by", "Maya").code == 0
    assert system.cli("schedule", SID).code == 0
    tick(system)
    [corrected] = messages(smtp_sink)[2:]
    assert corrected["Subject"].startswith("CORRECTED: ")
    [part] = attached(corrected)
    assert_same_file(part, media.store_of(system.config).read(found["flood-report"]), "flood-report.pdf",
                     "application/pdf")
    assert_listed(*text_and_html(corrected), found["field-visit"], "On the newsroom page after the lift", PAGE)

    assert system.cli("withdraw", SID, "--by", "Maya", "--reason", "legal advice").code == 0
    tick(system)
    [withdrawn] = messages(smtp_sink)[3:]
    assert withdrawn["Subject"].startswith("WITHDRAWN")
    assert_bare(withdrawn)


def test_a_retraction_carries_no_attachments(make_system, smtp_sink, tmp_path, statement_file):
    system, _, copy = embargoed_copy(make_system, smtp_sink, tmp_path, statement_file)
    system.clock.set(EMBARGO)
    tick(system)
    assert len(smtp_sink.messages) == 2 and all(len(attached(m)) == 1 for m in messages(smtp_sink))
    assert system.at("retract", SID, "--by", "Maya", "--reason", "published in error").code == 0
    tick(system)
    notices = messages(smtp_sink)[2:]
    assert sorted(to(m) for m in notices) == ["ana@paper.example.com", "tv@tv.example.org"]
    for notice in notices:
        assert notice["Subject"].startswith("RETRACTED")
        assert_bare(notice)


# -- preview, signing, config ---------------------------------------------------------------------------------------

def test_preview_shows_the_attachments_and_the_list_of_what_is_not_attached(make_system, tmp_path, statement_file):
    system = make_system()
    found = prepared(system, tmp_path, statement_file, photo_and_report())
    result = system.cli("preview", SID)
    assert result.code == 0, result.err
    message = email.message_from_bytes(result.out.encode(), policy=email.policy.default)
    [part] = attached(message)
    assert_same_file(part, media.store_of(system.config).read(found["flood-report"]), "flood-report.pdf",
                     "application/pdf")
    outer, inner = message.get_boundary(), message.get_payload()[0].get_boundary()
    assert message.get_payload()[0].get_content_type() == "multipart/alternative"
    assert not outer.startswith(inner) and not inner.startswith(outer)
    again = system.cli("preview", SID).out  # the same bytes at every render: boundaries included
    assert re.sub(r"(?m)^Date: .*$", "", again) == re.sub(r"(?m)^Date: .*$", "", result.out)
    for form in ("text", "html"):
        shown = system.cli("preview", SID, "--format", form).out
        assert "Not attached to this email" in shown and PHOTO["--alt"] in shown and PHOTO["--credit"] in shown
        assert "flood-report.pdf: Flood maps: the full report" in shown


def test_dkim_signs_a_message_with_attachments(make_system, smtp_sink, tmp_path, statement_file, monkeypatch):
    import base64

    import dkim
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    monkeypatch.setenv("TEST_DKIM_KEY", private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption()).decode())
    public = base64.b64encode(private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)).decode()
    _, _, message = embargoed_copy(
        make_system, smtp_sink, tmp_path, statement_file, email_extra='attachments = "all"\n'
        '[channels.email.dkim]\nselector = "press2026"\nprivate_key_env = "TEST_DKIM_KEY"\n')
    assert len(attached(message)) == 2

    def dns(name, timeout=5):
        return f"v=DKIM1; k=rsa; p={public}".encode()
    raw = smtp_sink.messages[0].data
    assert dkim.verify(raw, dnsfunc=dns)
    cut = raw.index(b'filename="flood-report.pdf"')
    line = raw.index(b"\r\n\r\n", cut) + 4
    tampered = raw[:line] + (b"B" if raw[line:line + 1] != b"B" else b"C") + raw[line + 1:]
    assert not dkim.verify(tampered, dnsfunc=dns)  # the attachments are signed too


def test_a_file_missing_from_the_store_holds_the_copy_back(make_system, smtp_sink, tmp_path, statement_file):
    system = make_system(clock=FixedClock(START), transport="smtp", smtp_port=smtp_sink.port)
    found = prepared(system, tmp_path, statement_file,
                     {"unique.pdf": (pdf(1, text=f"only here {uuid.uuid4()}"), {"--title": "Unique"})})
    store = media.store_of(system.config)
    shutil.rmtree(store.folder(found["unique"].sha256))
    scheduled(system)
    tick(system)
    assert smtp_sink.messages == []  # never without it, nor with anything else
    rows = [r for r in json.loads(system.cli("log", SID, "--format", "json").out)
            if r["target"] == "ana@paper.example.com"]
    assert [r["status"] for r in rows] == ["retrying"] and "no copy of unique.pdf" in rows[0]["error"]


@pytest.mark.parametrize("setting, key", [
    ('attachments = "photos"', "channels.email.attachments"),
    ("attachments = true", "channels.email.attachments"),
    ("max_attachment_bytes = -1", "channels.email.max_attachment_bytes"),
    ('max_attachment_bytes = "7 MB"', "channels.email.max_attachment_bytes"),
    ("max_attachment_bytes = 100000001", "channels.email.max_attachment_bytes"),
    ("max_attachment_bytes = 7.5", "channels.email.max_attachment_bytes"),
])
def test_a_bad_value_is_refused_in_one_line_naming_the_key(write_config, run, setting, key):
    result = run(write_config(email_extra=setting), "init")
    assert result.code == 2
    assert key in result.err and len(result.err.strip().splitlines()) == 1
