"""preview and send-test: what a target would get, before anyone gets it; nothing in the delivery log."""

import email
import email.policy
import json
import xml.etree.ElementTree as ET

import pytest

from distributor.channels.base import Job
from distributor.channels.email import message_id
from tests.channels.conftest import bluesky, feed, file_wire, mastodon

SID = "tro-01-001-2026"
EXTRA = file_wire() + feed() + mastodon("https://m.example", transport="file") + bluesky("https://b.example",
                                                                                         transport="file")


@pytest.fixture
def system(make_system, smtp_sink, statement_file):
    system = make_system(transport="smtp", smtp_port=smtp_sink.port, extra=EXTRA)
    assert system.cli("import", statement_file(embargo="EMBARGOED FOR: 00:01 GMT Thursday 15 January 2099")).code == 0
    return system


def parse(text: str):
    return email.message_from_bytes(text.encode("utf-8"), policy=email.policy.default)


def test_email_preview_is_the_whole_message_to_a_placeholder_and_writes_no_row(system):
    result = system.cli("preview", SID)
    assert result.code == 0, result.err
    message = parse(result.out)
    assert message["To"] == "Placeholder Journalist <journalist@example.invalid>"
    assert message["Subject"].startswith("EMBARGOED UNTIL 00:01 GMT 15 January 2099: ")
    assert message.get_body(("html",)) is not None and message.get_body(("plain",)) is not None
    assert json.loads(system.cli("log", SID, "--format", "json").out) == []
    released = parse(system.cli("preview", SID, "--variant", "released").out)
    assert not released["Subject"].startswith("EMBARGOED")
    html = system.cli("preview", SID, "--format", "html").out
    assert html.lstrip().lower().startswith("<!doctype html") and "EMBARGOED" in html
    assert "The Test Rights Office said today" in system.cli("preview", SID, "--format", "text").out


def test_public_channels_preview_their_own_form(system, tmp_path):
    ninjs = json.loads(system.cli("preview", SID, "--channel", "wire").out)
    assert ninjs["uri"].endswith(SID) and ninjs["headlines"][0]["value"]
    ET.fromstring(system.cli("preview", SID, "--channel", "feed").out)
    toot = system.cli("preview", SID, "--channel", "mastodon").out
    assert "of 500 characters as Mastodon counts them" in toot
    post = system.cli("preview", SID, "--channel", "bluesky").out
    assert "of 300 graphemes as Bluesky counts them" in post
    out = tmp_path / "p.eml"
    result = system.cli("preview", SID, "--output", out)
    assert result.code == 0 and parse(out.read_text(encoding="utf-8"))["To"].endswith("<journalist@example.invalid>")


@pytest.mark.parametrize("args, where, message", [
    (["--channel", "wire", "--format", "html"], "--format", "applies to email"),
    (["--channel", "mastodon", "--variant", "embargoed"], "--variant", "only ever carries the released"),
    (["--revision", "7"], "--revision", "has revisions 1 to 1, not 7"),
])
def test_preview_errors(system, args, where, message):
    result = system.cli("preview", SID, *args)
    assert result.code == 2 and where in result.err and message in result.err and result.err.count("\n") == 1


def test_a_test_copy_goes_out_at_once_marked_and_with_its_own_message_id(system, smtp_sink):
    result = system.cli("send-test", SID, "--to", "Tester@Office.example.org", "--to", "ana@paper.example.com",
                        "--by", "Sam")
    assert result.code == 0, result.err
    got = {m.rcpt_tos[0]: email.message_from_bytes(m.data, policy=email.policy.default) for m in smtp_sink.messages}
    assert set(got) == {"Tester@office.example.org", "ana@paper.example.com"}
    for message in got.values():
        assert message["Subject"].startswith("[TEST] EMBARGOED UNTIL")
    real = message_id(Job(SID, 1, None, None, None), "ana@paper.example.com", "office.example.org")
    test_id = got["ana@paper.example.com"]["Message-ID"]
    assert test_id != real and test_id.startswith(f"<{SID}.r1.test.") and real.startswith(f"<{SID}.r1.")
    assert got["Tester@office.example.org"]["Message-ID"] != test_id
    assert json.loads(system.cli("log", SID, "--format", "json").out) == []  # not in the delivery log
    [entry] = [e for e in json.loads(system.cli("audit", SID, "--format", "json").out) if e["action"] == "test-sent"]
    assert entry["actor"] == "Sam" and entry["detail"]["to"] == ["Tester@office.example.org", "ana@paper.example.com"]
    assert json.loads(system.cli("show", SID, "--format", "json").out)["status"] == "draft"  # a draft will do


def test_a_test_copy_to_a_bad_or_refused_address(system, smtp_sink):
    result = system.cli("send-test", SID, "--to", "not-an-address")
    assert result.code == 2 and "--to" in result.err and result.err.count("\n") == 1
    smtp_sink.handler.rcpt_replies["bo@paper.example.com"] = "550 5.1.1 No such user"
    result = system.cli("send-test", SID, "--to", "bo@paper.example.com", "--to", "ana@paper.example.com")
    assert result.code == 1
    assert "bo@paper.example.com: test copy of tro-01-001-2026 r1 not sent (failed: RCPT TO: 550" in result.out
    assert "ana@paper.example.com: test copy of tro-01-001-2026 r1 sent" in result.out


def test_a_withdrawn_statement_is_previewed_as_withdrawn_not_embargoed(system):
    assert system.cli("approve", SID, "--by", "Maya").code == 0
    assert system.cli("schedule", SID, "--channels", "email").code == 0
    assert "EMBARGOED" in system.cli("preview", SID, "--format", "html").out
    assert system.cli("withdraw", SID, "--by", "Maya", "--reason", "legal advice").code == 0
    for args in ([], ["--variant", "embargoed"]):
        html = system.cli("preview", SID, "--format", "html", *args).out
        assert "EMBARGOED" not in html and "NOT FOR PUBLICATION" not in html
        assert "WITHDRAWN &mdash; NOT TO BE PUBLISHED" in html and "It will not be published" in html
        assert "The Test Rights Office said today" in html  # what was withdrawn, for the record
        assert "https://office.example.org/press/" not in html  # never published: no link to it
        message = parse(system.cli("preview", SID, *args).out)
        assert message["Subject"] == "WITHDRAWN: Riverland: Flood maps must be published"
        text = message.get_body(("plain",)).get_content()
        assert text.startswith("*** WITHDRAWN: NOT TO BE PUBLISHED ***") and "EMBARGOED" not in text
        assert "EMBARGOED" not in message.get_body(("html",)).get_content()
    assert json.loads(system.cli("log", SID, "--format", "json").out) == []
    # scheduled again, it is embargoed again
    assert system.cli("approve", SID, "--by", "Maya").code == 0
    assert system.cli("schedule", SID, "--channels", "email").code == 0
    html = system.cli("preview", SID, "--format", "html").out
    assert "EMBARGOED" in html and "WITHDRAWN" not in html


def test_a_retracted_statement_is_previewed_as_retracted(make_system, statement_file):
    from distributor.clock import FixedClock
    from tests.conftest import utc

    clock = FixedClock(utc(2027, 3, 1, 9, 0))
    system = make_system(clock=clock)
    assert system.at("import", statement_file()).code == 0
    assert system.at("approve", SID, "--by", "Maya").code == 0
    assert system.at("schedule", SID, "--embargo", "2027-03-02T00:01:00Z", "--channels", "email").code == 0
    clock.set(utc(2027, 3, 2, 0, 1))
    system.dispatcher.advance()
    assert "https://office.example.org/press/" in system.at("preview", SID, "--format", "html").out
    assert system.at("retract", SID, "--by", "Maya", "--reason", "published in error").code == 0
    html = system.at("preview", SID, "--format", "html").out
    assert "RETRACTED &mdash; NOT TO BE PUBLISHED" in html and "EMBARGOED" not in html
    assert "https://office.example.org/press/" not in html
    assert parse(system.at("preview", SID).out)["Subject"] == "RETRACTED: Riverland: Flood maps must be published"


@pytest.mark.parametrize("status", ["withdrawn", "retracted"])
def test_no_test_copy_of_a_withdrawn_or_retracted_statement(system, smtp_sink, status):
    from sqlalchemy import update

    from distributor.store.schema import statements
    with system.engine.begin() as conn:  # as a withdrawal or a retraction leaves it
        conn.execute(update(statements).where(statements.c.id == SID).values(status=status))
    result = system.cli("send-test", SID, "--to", "tester@office.example.org")
    assert result.code == 2 and f"is {status}: a test copy would read as one to publish" in result.err
    assert smtp_sink.messages == [] and result.err.count("\n") == 1
