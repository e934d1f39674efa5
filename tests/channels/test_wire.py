"""The wire against a real HTTP server on loopback that checks what a receiving wire checks."""

import hashlib
import hmac
import json
import ssl
import threading
import time
from datetime import timedelta
from email.utils import format_datetime
from functools import cache
from pathlib import Path

import pytest
import requests
from jsonschema import Draft202012Validator, ValidationError
from pytest_httpserver import HTTPServer
from sqlalchemy import select
from werkzeug import Response

from distributor import workflow
from distributor.clock import FixedClock, iso_z, utcnow
from distributor.outcomes import Result
from distributor.statements.times import parse_instant
from distributor.store.schema import deliveries
from distributor.transports import http
from tests.channels.conftest import SID, by_channel, wire
from tests.conftest import free_port, wait_for

SCHEMA = Path(__file__).resolve().parent.parent / "schemas" / "ninjs-schema_3.1.json"
TLS = Path(__file__).resolve().parent / "tls"


@pytest.fixture(autouse=True)
def wire_secret(monkeypatch):
    monkeypatch.setenv("TEST_WIRE_SECRET", "s3cret-ключ")


@cache
def validator() -> Draft202012Validator:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


def test_the_schema_checks_formats_and_required_fields():
    item = {"uri": "tag:office.example.org,2026-10-14:x", "type": "text", "versionCreated": "2026-10-14T10:00:00Z"}
    validator().validate(item)
    with pytest.raises(ValidationError):
        validator().validate({**item, "versionCreated": "14 October 2026"})  # date-time is checked
    with pytest.raises(ValidationError):
        validator().validate({"type": "text"})  # uri is required


class Receiver:
    """Checks content type, signature and idempotency key; answers with queued responses."""

    def __init__(self, secret: bytes | None = b"s3cret-\xd0\xba\xd0\xbb\xd1\x8e\xd1\x87"):
        self.secret = secret
        self.requests = []
        self.responses = []

    def __call__(self, request):
        body = request.get_data()
        self.requests.append({"headers": dict(request.headers), "body": body, "at": time.time()})
        assert request.headers["Content-Type"].startswith("application/json")
        assert request.headers.get("Idempotency-Key")
        if self.secret is not None:
            expected = "sha256=" + hmac.new(self.secret, body, hashlib.sha256).hexdigest()
            if request.headers.get("X-Distributor-Signature") != expected:
                return Response('{"error": "bad signature"}', status=401, content_type="application/json")
        json.loads(body)
        if self.responses:
            response = self.responses.pop(0)
            return response if isinstance(response, Response) else response()
        return Response('{"id": "wire-item-1"}', status=201, content_type="application/json")


@pytest.fixture
def receiver(httpserver):
    handler = Receiver()
    httpserver.expect_request("/ingest", method="POST").respond_with_handler(handler)
    return handler


def lifted(make_system, scheduled, url, extra='secret_env = "TEST_WIRE_SECRET"', **statement):
    clock = FixedClock(utcnow())
    system = make_system(clock=clock, extra=wire(url, extra=extra))
    embargo = scheduled(system, channels="wire", **statement)
    clock.set(embargo)
    system.dispatcher.advance()
    return system, clock, embargo


def test_ninjs_payload_signature_and_idempotency(make_system, scheduled, receiver, httpserver):
    system, clock, embargo = lifted(make_system, scheduled, httpserver.url_for("/ingest"))
    system.dispatcher.deliver("wire")
    assert len(receiver.requests) == 1
    request = receiver.requests[0]
    item = json.loads(request["body"])
    validator().validate(item)
    assert item["uri"] == "tag:office.example.org,2026-10-14:tro-01-001-2026"
    assert item["headlines"][0]["value"] == "Riverland: Flood maps must be published"
    assert {b["contentType"] for b in item["bodies"]} == {"text/plain", "text/html"}
    assert "Åsgård" in item["bodies"][0]["value"]
    assert item["pubStatus"] == "usable" and item["urgency"] == 4 and item["language"] == "en"
    assert {"role": "reference", "value": "Index: TRO 01/001/2026"} in item["altIds"]
    assert {"role": "serial", "value": "News Service No. 7"} in item["altIds"]
    assert item["infoSources"][0]["contactInfo"][0]["value"].startswith("For more information")
    assert item["by"] == "Test Rights Office"
    row = by_channel(system)["wire:newswire"]
    assert row["status"] == "sent" and row["remote_id"] == "wire-item-1"
    key = request["headers"]["Idempotency-Key"]

    # the same revision to the same endpoint always carries the same key
    from distributor.channels.base import idempotency_key
    with system.engine.connect() as conn:
        job = system.dispatcher.job(conn, SID, 1)
    assert idempotency_key(job, "newswire") == key


def test_every_payload_validates_markdown_too(make_system, httpserver, receiver, tmp_path):
    clock = FixedClock(utcnow())
    system = make_system(clock=clock, extra=wire(httpserver.url_for("/ingest"), extra='secret_env = "TEST_WIRE_SECRET"'))
    md = tmp_path / "s.md"
    embargo = clock.now() + timedelta(hours=1)
    md.write_text(f"""---
title: "Zoë's “release” — 释放"
reference: "Index: MD 01/002/2026"
embargo: {embargo.isoformat()}
summary: A summary.
---
Body with <b>raw</b> HTML and a [link](https://example.org).

- one
- two
""")
    sid = system.cli("import", md).out.strip()
    system.cli("approve", sid, "--by", "M")
    system.cli("schedule", sid, "--send-embargoed-at", clock.now().isoformat())
    clock.set(embargo)
    system.dispatcher.advance()
    system.dispatcher.deliver("wire")
    item = json.loads(receiver.requests[0]["body"])
    validator().validate(item)
    html = [b for b in item["bodies"] if b["contentType"] == "text/html"][0]["value"]
    assert "&lt;b&gt;raw&lt;/b&gt;" in html and ">one</li>" in html


@pytest.mark.parametrize("status, body, headers, expected, error", [
    (400, '{"error": "headline missing"}', {}, "failed", 'HTTP 400: {"error": "headline missing"}'),
    (422, "unprocessable", {}, "failed", "HTTP 422: unprocessable"),
    (500, "boom", {}, "retrying", "HTTP 500: boom"),
    (503, "", {"Retry-After": "120"}, "retrying", "HTTP 503"),
    (429, "slow down", {"Retry-After": "90"}, "retrying", "HTTP 429: slow down"),
    (408, "", {}, "retrying", "HTTP 408"),
])
def test_responses(make_system, scheduled, receiver, httpserver, status, body, headers, expected, error):
    receiver.responses.append(Response(body, status=status, headers=headers))
    system, clock, _ = lifted(make_system, scheduled, httpserver.url_for("/ingest"))
    system.dispatcher.deliver("wire")
    row = by_channel(system)["wire:newswire"]
    assert row["status"] == expected
    assert row["error"] == error
    if "Retry-After" in headers:
        from distributor.statements.times import parse_instant
        wait = (parse_instant(row["next_attempt_at"]) - clock.now()).total_seconds()
        assert int(headers["Retry-After"]) - 1 <= wait <= int(headers["Retry-After"]) + 1


def test_retry_after_as_http_date_beyond_the_backoff_is_followed(make_system, scheduled, receiver, httpserver):
    """The date is read against the injected clock (ten minutes ahead of the wall clock here), not the wall clock."""
    wait = 600  # far beyond delivery.retry_first_seconds = 30
    system = make_system(clock=FixedClock(utcnow()), extra=wire(httpserver.url_for("/ingest"),
                                                                extra='secret_env = "TEST_WIRE_SECRET"'))
    clock = system.clock
    when = []

    def busy():
        when.append((clock.now() + timedelta(seconds=wait)).replace(microsecond=0))
        return Response("busy", status=429, headers={"Retry-After": format_datetime(when[0], usegmt=True)})
    receiver.responses.append(busy)
    clock.set(scheduled(system, channels="wire"))
    system.dispatcher.advance()
    system.dispatcher.deliver("wire")
    row = by_channel(system)["wire:newswire"]
    assert row["status"] == "retrying" and row["error"] == "HTTP 429: busy"
    assert row["next_attempt_at"] == iso_z(when[0])

    clock.set(when[0] - timedelta(seconds=1))
    system.dispatcher.deliver("wire")
    assert len(receiver.requests) == 1  # not due yet
    clock.set(when[0])
    system.dispatcher.deliver("wire")
    assert by_channel(system)["wire:newswire"]["status"] == "sent"
    keys = {r["headers"]["Idempotency-Key"] for r in receiver.requests}
    assert len(receiver.requests) == 2 and len(keys) == 1


def test_retry_after_reads_seconds_and_dates_against_the_given_instant():
    now = parse_instant("2030-01-01T00:00:00Z")
    assert http.retry_after("120", now) == 120.0
    assert http.retry_after("Tue, 01 Jan 2030 00:10:00 GMT", now) == 600.0
    assert http.retry_after("Mon, 31 Dec 2029 23:00:00 GMT", now) == 0.0  # in the past: no extra wait
    assert http.retry_after("soon", now) is None and http.retry_after(None, now) is None


def test_bad_signature_is_refused_by_the_receiver(make_system, scheduled, httpserver, monkeypatch):
    handler = Receiver(secret=b"another secret")
    httpserver.expect_request("/ingest", method="POST").respond_with_handler(handler)
    system, _, _ = lifted(make_system, scheduled, httpserver.url_for("/ingest"))
    system.dispatcher.deliver("wire")
    row = by_channel(system)["wire:newswire"]
    assert row["status"] == "failed" and "HTTP 401" in row["error"]


def test_read_timeout_is_retried(make_system, scheduled, httpserver):
    release = threading.Event()

    def stalled(request):
        release.wait(10)
        return Response("{}", status=201)
    httpserver.expect_request("/slow", method="POST").respond_with_handler(stalled)
    system, _, _ = lifted(make_system, scheduled, httpserver.url_for("/slow"), extra="timeout_seconds = 0.5")
    try:
        system.dispatcher.deliver("wire")
    finally:
        release.set()
    row = by_channel(system)["wire:newswire"]
    assert row["status"] == "retrying" and row["error"] == "timeout: no reply in time"


def test_connection_refused_is_retried(make_system, scheduled):
    system, _, _ = lifted(make_system, scheduled, f"http://127.0.0.1:{free_port()}/ingest")
    system.dispatcher.deliver("wire")
    row = by_channel(system)["wire:newswire"]
    assert row["status"] == "retrying" and row["error"] == "connection failed: connection refused"


@pytest.fixture
def https_server():
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(TLS / "cert.pem", TLS / "key.pem")
    server = HTTPServer(host="127.0.0.1", ssl_context=context)
    server.start()
    yield server
    server.clear()
    if server.is_running():
        server.stop()


def test_untrusted_certificate_is_a_transport_fault_and_sends_nothing(make_system, scheduled, https_server):
    https_server.expect_request("/ingest", method="POST").respond_with_data("{}", status=201)
    system, _, _ = lifted(make_system, scheduled, https_server.url_for("/ingest"))
    assert https_server.url_for("/ingest").startswith("https://")
    system.dispatcher.deliver("wire")
    row = by_channel(system)["wire:newswire"]
    assert row["status"] == "retrying" and row["error"] == "TLS certificate rejected: self-signed certificate"
    assert https_server.log == []


def certificate_error() -> ssl.SSLCertVerificationError:
    error = ssl.SSLCertVerificationError(1, "Connection refused")  # the text is misleading on purpose
    error.verify_message = "certificate has expired"
    return error


@pytest.mark.parametrize("error, result, detail", [
    (requests.ReadTimeout("Connection refused"), Result.TRANSPORT, "timeout: no reply in time"),
    (requests.ConnectTimeout("Connection reset"), Result.TRANSPORT, "timeout: no connection in time"),
    (requests.ConnectionError(ConnectionRefusedError("timed out")), Result.TRANSPORT,
     "connection failed: connection refused"),
    (requests.ConnectionError(ConnectionResetError()), Result.TRANSPORT, "connection failed: connection reset"),
    (requests.ConnectionError("Connection refused"), Result.TRANSPORT, "connection failed: ConnectionError"),
    (requests.exceptions.SSLError(certificate_error()), Result.TRANSPORT,
     "TLS certificate rejected: certificate has expired"),
    (requests.exceptions.SSLError("certificate verify failed"), Result.TRANSPORT,
     "connection failed: TLS handshake failed"),
    (requests.exceptions.ChunkedEncodingError("timed out"), Result.RETRY, "broken response: ChunkedEncodingError"),
    (requests.exceptions.InvalidURL("timed out"), Result.FAILED, "request failed: InvalidURL"),
    (requests.TooManyRedirects(), Result.FAILED, "request failed: TooManyRedirects"),
])
def test_network_errors_are_told_apart_by_type_never_by_text(error, result, detail):
    reply = http.classify_error(error)
    assert (reply.result, reply.detail) == (result, detail)


def test_missing_secret_variable_is_a_config_error(write_config, run, monkeypatch):
    monkeypatch.delenv("TEST_WIRE_SECRET")
    path = write_config(extra=wire("http://127.0.0.1:9/x", extra='secret_env = "TEST_WIRE_SECRET"'))
    run(path, "init")
    result = run(path, "run", "--exit-when-idle")
    assert result.code == 2 and "TEST_WIRE_SECRET is not set" in result.err


def test_wire_config_errors(write_config, run):
    result = run(write_config(extra=wire("ftp://example.org/x")), "list")
    assert result.code == 2 and "channels.wire[0].url: expected an http:// or https:// URL" in result.err
    result = run(write_config(extra=wire("http://x.example.org", extra='format = "nitf"')), "list")
    assert result.code == 2 and "channels.wire[0].format: expected one of ninjs" in result.err
    twice = wire("http://x.example.org") + wire("http://y.example.org")
    result = run(write_config(extra=twice), "list")
    assert result.code == 2 and "channels.wire[1].name: another wire endpoint is already called 'newswire'" in result.err


def test_file_transport_writes_json(make_system, scheduled):
    from tests.channels.conftest import file_wire
    clock = FixedClock(utcnow())
    system = make_system(clock=clock, extra=file_wire())
    embargo = scheduled(system, channels="wire")
    clock.set(embargo)
    system.dispatcher.advance()
    system.dispatcher.deliver("wire")
    files = list(Path(system.config_path.parent / "out" / "wire").glob("*.json"))
    assert len(files) == 1
    validator().validate(json.loads(files[0].read_text()))


# -- a lift prepared ahead: claimed and rendered within the lead, held, posted at the embargo, never before -------------
def held_lift(make_system, scheduled, httpserver, seconds: float):
    system = make_system(extra=wire(httpserver.url_for("/ingest"), extra='secret_env = "TEST_WIRE_SECRET"'))
    system.dispatcher.lead = timedelta(minutes=1)  # everything below happens within the lead
    embargo = scheduled(system, channels="wire", embargo=utcnow() + timedelta(seconds=seconds))
    system.dispatcher.advance()
    return system, embargo


def wire_row(system) -> dict:
    with system.engine.connect() as conn:
        return dict(conn.execute(select(deliveries).where(deliveries.c.channel == "wire")).mappings().one())


def held(system) -> threading.Thread:
    """The wire's delivery running in a thread of its own, once it holds the claimed row."""
    worker = threading.Thread(target=system.dispatcher.deliver, args=("wire",))
    worker.start()
    wait_for(lambda: wire_row(system)["status"] == "sending")
    return worker


def test_a_lift_prepared_ahead_is_posted_at_the_embargo_never_before(make_system, scheduled, receiver, httpserver):
    system, embargo = held_lift(make_system, scheduled, httpserver, 1.5)
    with system.engine.connect() as conn:
        assert workflow.get(conn, SID)["status"] == "scheduled"  # planned ahead; not lifted
    assert wire_row(system)["status"] == "pending"
    assert system.dispatcher.deliver("wire") == {Result.SENT: 1}
    [request] = receiver.requests
    assert request["at"] >= embargo.timestamp()
    assert wire_row(system)["status"] == "sent"


def test_a_statement_withdrawn_while_its_lift_is_held_is_never_posted(make_system, scheduled, receiver, httpserver):
    system, embargo = held_lift(make_system, scheduled, httpserver, 3)
    worker = held(system)
    assert system.cli("withdraw", SID, "--by", "Maya", "--reason", "facts changed").code == 0
    worker.join(timeout=30)
    assert not worker.is_alive() and receiver.requests == []
    row = wire_row(system)
    assert (row["status"], row["last_error"]) == ("cancelled", "withdrawn")


def test_an_embargo_moved_later_while_the_lift_is_held_is_kept(make_system, scheduled, receiver, httpserver):
    system, embargo = held_lift(make_system, scheduled, httpserver, 2)
    worker = held(system)
    later = embargo + timedelta(seconds=1)
    assert system.cli("reschedule", SID, "--embargo", later.isoformat(), "--by", "Maya", "--reason", "x").code == 0
    worker.join(timeout=30)
    assert not worker.is_alive() and receiver.requests == []
    row = wire_row(system)
    assert (row["status"], row["next_attempt_at"], row["attempts"]) == ("pending", later, 0)
    # claimed ahead again, and held for the new embargo, though the row was first due at the old one
    assert system.dispatcher.deliver("wire") == {Result.SENT: 1}
    [request] = receiver.requests
    assert request["at"] >= later.timestamp()


def test_a_worker_stopping_while_it_holds_a_lift_gives_the_row_back(make_system, scheduled, receiver, httpserver):
    system, embargo = held_lift(make_system, scheduled, httpserver, 30)
    worker = held(system)
    system.dispatcher.stopping.set()
    worker.join(timeout=10)
    assert not worker.is_alive() and receiver.requests == []
    row = wire_row(system)
    assert (row["status"], row["claimed_by"], row["attempts"]) == ("pending", None, 0)


def test_lifts_claimed_together_go_out_soonest_first(make_system, scheduled, receiver, httpserver):
    system = make_system(extra=wire(httpserver.url_for("/ingest"), extra='secret_env = "TEST_WIRE_SECRET"'))
    system.dispatcher.lead = timedelta(minutes=1)
    now = utcnow()
    for reference, seconds in (("Index: TRO 01/001/2026", 2.5), ("Index: TRO 01/002/2026", 1.5)):
        scheduled(system, channels="wire", statement_name=f"{seconds}.txt", reference=reference,
                  embargo=now + timedelta(seconds=seconds))
    system.dispatcher.advance()
    assert system.dispatcher.deliver("wire") == {Result.SENT: 2}  # one claim, held for each embargo in turn
    uris = [json.loads(r["body"])["uri"].rsplit(":", 1)[1] for r in receiver.requests]
    assert uris == ["tro-01-002-2026", "tro-01-001-2026"]
    assert receiver.requests[0]["at"] >= (now + timedelta(seconds=1.5)).timestamp()
    assert receiver.requests[1]["at"] >= (now + timedelta(seconds=2.5)).timestamp()
