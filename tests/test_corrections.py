"""A released statement corrected and then retracted, on every channel at once: email (aiosmtpd), the wire, the
Atom feed, Mastodon and Bluesky (real HTTP servers on loopback that check what the services check)."""

import email
import email.policy
import json
from datetime import timedelta
from xml.etree import ElementTree as ET

import pytest
from werkzeug import Response

from distributor.clock import FixedClock
from tests.channels.conftest import bluesky, feed, mastodon, wire
from tests.channels.test_social import PDS, MastodonServer
from tests.conftest import utc

SID = "tro-01-001-2026"
START = utc(2027, 3, 1, 9, 0)
EMBARGO = utc(2027, 3, 2, 0, 1)
ATOM = "{http://www.w3.org/2005/Atom}"


class Wire:
    def __init__(self):
        self.items: list[dict] = []
        self.keys: list[str] = []

    def __call__(self, request):
        assert request.headers["Content-Type"].startswith("application/json")
        self.items.append(request.get_json())
        self.keys.append(request.headers["Idempotency-Key"])
        return Response('{"id": "w"}', content_type="application/json")


@pytest.fixture
def released(make_system, smtp_sink, statement_file, tmp_path, httpserver, monkeypatch):
    """Ana holds the embargoed copy; the statement is then released on every channel."""
    import re

    monkeypatch.setenv("TEST_MASTODON_TOKEN", "mastodon-token-123")
    monkeypatch.setenv("TEST_BLUESKY_PASSWORD", "app-password-456")

    wire_server, masto, pds = Wire(), MastodonServer(limit=500), PDS()
    httpserver.expect_request("/ninjs", method="POST").respond_with_handler(wire_server)
    httpserver.expect_request("/api/v2/instance", method="GET").respond_with_handler(masto.instance)
    httpserver.expect_request("/api/v1/statuses", method="POST").respond_with_handler(masto.statuses)
    for method in ("PUT", "DELETE"):
        httpserver.expect_request(re.compile(r"/api/v1/statuses/\w+"), method=method).respond_with_handler(masto.status)
    httpserver.expect_request("/api/v1/accounts/verify_credentials", method="GET").respond_with_handler(masto.me)
    httpserver.expect_request(re.compile(r"/api/v1/accounts/\w+/statuses"), method="GET").respond_with_handler(
        masto.account_statuses)
    for nsid, method, handler in [
        ("com.atproto.server.createSession", "POST", pds.create_session),
        ("com.atproto.repo.createRecord", "POST", pds.create_record),
        ("com.atproto.repo.getRecord", "GET", pds.get_record),
        ("com.atproto.repo.deleteRecord", "POST", pds.delete_record),
    ]:
        httpserver.expect_request(f"/xrpc/{nsid}", method=method).respond_with_handler(handler)
    base = httpserver.url_for("").rstrip("/")
    clock = FixedClock(START)
    system = make_system(clock=clock, transport="smtp", smtp_port=smtp_sink.port,
                         extra=wire(f"{base}/ninjs") + feed() + mastodon(base) + bluesky(base))
    csv = tmp_path / "list.csv"
    csv.write_text("email,name,embargo_ok\nana@paper.example.com,Ana,yes\n", encoding="utf-8")
    assert system.cli("recipients", "import", csv, "--list", "embargo").code == 0
    assert system.at("import", statement_file()).code == 0
    assert system.at("approve", SID, "--by", "Maya").code == 0
    assert system.at("schedule", SID, "--embargo", EMBARGO.isoformat()).code == 0
    tick(system)
    clock.set(EMBARGO)
    tick(system)
    assert (len(wire_server.items), len(masto.posts), len(pds.records), len(smtp_sink.messages)) == (1, 1, 1, 1)
    return system, clock, wire_server, masto, pds


def tick(system) -> None:
    system.dispatcher.advance()
    for name in system.channels:
        system.dispatcher.deliver(name)


def messages(sink):
    return [email.message_from_bytes(m.data, policy=email.policy.default) for m in sink.messages]


def entries(system) -> list:
    path = system.config_path.parent / "out" / "feed.atom"
    return ET.parse(path).getroot().findall(f"{ATOM}entry")


def show(system) -> dict:
    return json.loads(system.cli("show", SID, "--format", "json").out)


def test_a_correction_after_the_release_updates_every_channel_in_place(released, smtp_sink, statement_file):
    system, clock, wire_server, masto, pds = released
    [entry] = entries(system)
    first_id, first_updated = entry.find(f"{ATOM}id").text, entry.find(f"{ATOM}updated").text

    clock.advance(3600)
    result = system.at("import", statement_file(body_extra="The maps cover 1,200 homes."),
                        "--note", "Adds the number of homes.")
    assert result.code == 0, result.err
    # until it is published the public keeps the published revision
    assert (show(system)["status"], show(system)["revision"], show(system)["working_revision"]) == ("released", 1, 2)
    refused = system.at("correct", SID, "--by", "Maya", "--reason", "homes missing")
    assert refused.code == 2 and "is not approved" in refused.err
    assert system.at("approve", SID, "--by", "Maya").code == 0
    result = system.at("correct", SID, "--by", "Maya", "--reason", "homes missing")
    assert result.code == 0, result.err
    tick(system)

    # email: the correction, threaded under Ana's copy
    original, correction = messages(smtp_sink)
    assert correction["Subject"] == "CORRECTED: Riverland: Flood maps must be published"
    assert correction["In-Reply-To"] == original["Message-ID"]
    text = correction.get_body(("plain",)).get_content()
    assert "What changed: Adds the number of homes." in text and "1,200 homes" in text
    # wire: the same item, a new version, a key of its own
    first, second = wire_server.items
    assert second["uri"] == first["uri"] and (first["version"], second["version"]) == ("1", "2")
    assert second["pubStatus"] == "usable" and second["versionCreated"] > first["versionCreated"]
    assert "1,200 homes" in second["bodies"][0]["value"] and wire_server.keys[0] != wire_server.keys[1]
    # feed: the same entry, new content, a new updated
    [entry] = entries(system)
    assert entry.find(f"{ATOM}id").text == first_id and entry.find(f"{ATOM}updated").text > first_updated
    assert "1,200 homes" in entry.find(f"{ATOM}content").text
    # Mastodon: the status edited in place; Bluesky: a reply under the post
    [(status_id, edit)] = masto.edits
    assert status_id == "11001" and len(masto.posts) == 1
    [post] = [r for r in pds.records.values() if "reply" not in r["value"]]
    [reply] = [r for r in pds.records.values() if "reply" in r["value"]]
    assert reply["value"]["reply"]["root"] == {"uri": post["uri"], "cid": post["cid"]}
    assert reply["value"]["text"].startswith("Correction: ") and "Adds the number of homes." in reply["value"]["text"]
    kinds = {(r["channel"], r["kind"], r["status"]) for r in json.loads(system.cli("log", SID, "--format", "json").out)}
    assert {(c, "correction", "sent") for c in ("email", "wire", "feed", "mastodon", "bluesky")} <= kinds
    assert (show(system)["status"], show(system)["revision"]) == ("released", 2)
    trail = [e for e in json.loads(system.cli("audit", SID, "--format", "json").out) if e["action"] == "corrected"]
    assert [(e["actor"], e["detail"]["reason"], e["detail"]["previous_revision"]) for e in trail] == [
        ("Maya", "homes missing", 1)]


def test_a_retraction_takes_the_statement_down_everywhere(released, smtp_sink, statement_file):
    system, clock, wire_server, masto, pds = released
    clock.advance(60)
    assert system.at("import", statement_file(body_extra="Amended.")).code == 0
    assert system.at("approve", SID, "--by", "Maya").code == 0
    assert system.at("correct", SID, "--by", "Maya", "--reason", "amended").code == 0
    tick(system)
    assert len(pds.records) == 2
    clock.advance(60)
    result = system.at("retract", SID, "--by", "Maya", "--reason", "published in error", "--note", "Sorry.")
    assert result.code == 0, result.err
    tick(system)
    assert show(system)["status"] == "retracted"
    assert wire_server.items[-1]["pubStatus"] == "canceled" and wire_server.items[-1]["version"] == "3"
    assert wire_server.items[-1]["uri"] == wire_server.items[0]["uri"]
    assert entries(system) == []
    assert masto.deleted == ["11001"]
    assert pds.records == {} and len(pds.deletes) == 2
    notice = messages(smtp_sink)[-1]
    assert notice["Subject"] == "RETRACTED: Riverland: Flood maps must be published"
    assert notice["In-Reply-To"] == messages(smtp_sink)[0]["Message-ID"]
    assert "Sorry." in notice.get_body(("plain",)).get_content()
    assert "published in error" not in notice.get_body(("plain",)).get_content()


def test_refusals_name_what_to_do(released, smtp_sink, make_system, statement_file):
    system, clock, *_ = released
    result = system.at("correct", SID, "--by", "Maya", "--reason", "r")
    assert result.code == 2 and "no new revision to publish" in result.err
    result = system.at("withdraw", SID, "--by", "Maya", "--reason", "r")
    assert result.code == 2 and "distributor retract" in result.err
    result = system.at("import", statement_file(name="other.txt", title="Another one",
                                                 reference="Index: TRO 01/002/2026"))
    other = result.out.strip()
    result = system.at("retract", other, "--by", "Maya", "--reason", "r")
    assert result.code == 2 and "only a released statement can be retracted" in result.err
    assert "distributor withdraw" in result.err
    assert system.at("approve", other, "--by", "Maya").code == 0
    result = system.at("correct", other, "--by", "Maya", "--reason", "r")
    assert result.code == 2 and "only a released statement can be corrected" in result.err
    assert system.at("retract", SID, "--by", "Maya", "--reason", "r").code == 0
    result = system.at("retract", SID, "--by", "Maya", "--reason", "r")
    assert result.code == 2 and "is retracted" in result.err
    result = system.at("import", statement_file(body_extra="Again."))
    assert result.code == 2 and "was retracted" in result.err and "--id NEW-ID" in result.err


def test_a_mastodon_retry_later_than_the_key_is_kept_finds_the_status_it_made(released, smtp_sink):
    from distributor.outcomes import Claimed
    system, clock, wire_server, masto, pds = released
    channel = system.channels["mastodon"]
    transport = channel.transports["masto"]
    text = masto.posts[0]["status"]
    row = Claimed(1, SID, 1, "mastodon", "masto", 1, clock.now() - timedelta(hours=2))
    outcome = transport.post(row, {"status": text, "visibility": "public", "language": "en"})
    assert (outcome.result.value, outcome.detail) == ("sent", "already posted by an earlier attempt")
    assert outcome.remote_id.startswith("11001 ") and len(masto.posts) == 1
    fresh = Claimed(2, SID, 1, "mastodon", "masto", 1, clock.now() - timedelta(minutes=30))
    assert transport.post(fresh, {"status": text, "visibility": "public", "language": "en"}).result.value == "sent"
    assert len(masto.posts) == 2  # within the hour the Idempotency-Key is Mastodon's to honour
