"""Rules of the transports, one at a time: HTTP results, network errors, files, rate limits and the SMTP pool.

Real parts only: pytest-httpserver for HTTP, aiosmtpd on loopback for SMTP, the file system for files.
"""

from __future__ import annotations

import gc
import json
import logging
import socket
import ssl
import threading
import time
import warnings
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests

from distributor import __version__
from distributor.clock import FixedClock
from distributor.errors import ConfigError
from distributor.outcomes import RECORDED, Claimed, Result
from distributor.transports import http, smtp
from distributor.transports.base import Envelope, Handed, RateLimit, SharedBody, dot_stuffed, write_atomically
from distributor.transports.file import JsonFolder, MailFolder, safe_name
from tests.conftest import SinkHandler, _start_sink

NOW = datetime(2030, 1, 1, tzinfo=UTC)


def row(id: int = 7, target: str = "newswire", statement_id: str = "tro-01-001-2026", revision: int = 2) -> Claimed:
    return Claimed(id, statement_id, revision, "wire", target, 0, NOW)


# -- Retry-After ---------------------------------------------------------------------------------------------------
def test_retry_after_seconds_are_read_with_surrounding_space():
    assert http.retry_after("  45 ", NOW) == 45.0
    assert http.retry_after("0", NOW) == 0.0


def test_retry_after_empty_is_none():
    assert http.retry_after("", NOW) is None


def test_retry_after_date_without_a_zone_is_utc():
    # "-0000" makes parsedate_to_datetime return a naive datetime: it is UTC.
    assert http.retry_after("Tue, 01 Jan 2030 00:01:30 -0000", NOW) == 90.0


def test_retry_after_date_with_an_offset_is_honoured():
    assert http.retry_after("Tue, 01 Jan 2030 01:02:00 +0100", NOW) == 120.0


def test_retry_after_bad_date_is_none():
    assert http.retry_after("Tue, 99 Foo 2030 00:00:00 GMT", NOW) is None
    assert http.retry_after("-5", NOW) is None


# -- responses, over real HTTP ---------------------------------------------------------------------------------------
def reply_for(httpserver, status: int, body: str = "", headers: dict | None = None, **kwargs) -> http.Reply:
    httpserver.expect_request("/r").respond_with_data(body, status=status, headers=headers or {})
    client = http.Client(FixedClock(NOW))
    try:
        return client.send("POST", httpserver.url_for("/r"), **kwargs)
    finally:
        client.close()


@pytest.mark.parametrize("status", [200, 201, 204, 299])
def test_2xx_is_sent_with_no_detail(httpserver, status):
    reply = reply_for(httpserver, status, "" if status == 204 else "accepted")
    assert (reply.result, reply.detail, reply.retry_after) == (Result.SENT, None, None)
    assert reply.response is not None and reply.response.status_code == status


@pytest.mark.parametrize("status, result", [
    (300, Result.FAILED), (302, Result.FAILED), (400, Result.FAILED), (404, Result.FAILED), (407, Result.FAILED),
    (409, Result.FAILED), (428, Result.FAILED), (430, Result.FAILED), (499, Result.FAILED),
    (408, Result.RETRY), (429, Result.RETRY), (500, Result.RETRY), (503, Result.RETRY), (599, Result.RETRY),
])
def test_status_codes(httpserver, status, result):
    reply = reply_for(httpserver, status, "nope", headers={"Location": "http://127.0.0.1:9/elsewhere"})
    assert reply.result is result
    assert reply.detail == f"HTTP {status}: nope"
    assert reply.response is not None and reply.response.status_code == status


def test_redirects_are_not_followed(httpserver):
    httpserver.expect_request("/elsewhere").respond_with_data("followed", status=200)
    reply = reply_for(httpserver, 301, "moved", headers={"Location": httpserver.url_for("/elsewhere")})
    assert (reply.result, reply.detail) == (Result.FAILED, "HTTP 301: moved")
    assert len(httpserver.log) == 1


def test_retry_reply_carries_retry_after_and_failed_does_not(httpserver):
    reply = reply_for(httpserver, 503, "busy", headers={"Retry-After": "12"})
    assert (reply.result, reply.detail, reply.retry_after) == (Result.RETRY, "HTTP 503: busy", 12.0)
    assert reply.response.status_code == 503
    httpserver.clear()
    reply = reply_for(httpserver, 400, "bad", headers={"Retry-After": "12"})
    assert reply.retry_after is None


def test_retry_after_date_is_read_against_the_callers_clock(httpserver):
    reply = reply_for(httpserver, 429, "", headers={"Retry-After": "Tue, 01 Jan 2030 00:05:00 GMT"})
    assert (reply.result, reply.detail, reply.retry_after) == (Result.RETRY, "HTTP 429", 300.0)


def test_body_is_kept_on_one_line_and_cut_at_500_characters(httpserver):
    body = "first  line\r\n\tsecond line " + "x" * 600
    reply = reply_for(httpserver, 422, body)
    expected = " ".join(body.split())[:500]
    assert reply.detail == f"HTTP 422: {expected}"
    assert len(reply.detail) == len("HTTP 422: ") + 500


def test_empty_body_gives_the_status_alone(httpserver):
    assert reply_for(httpserver, 404, "  \n ").detail == "HTTP 404"


def test_reply_json(httpserver):
    assert reply_for(httpserver, 200, '{"id": "abc"}').json() == {"id": "abc"}
    httpserver.clear()
    assert reply_for(httpserver, 200, "[1, 2]").json() == {}
    httpserver.clear()
    assert reply_for(httpserver, 200, "not json").json() == {}
    assert http.Reply(Result.RETRY, "x").json() == {}


def test_requests_carry_the_user_agent(httpserver):
    httpserver.expect_request("/ua", headers={"User-Agent": f"distributor/{__version__}"}).respond_with_data("ok")
    client = http.Client(FixedClock(NOW))
    assert client.send("GET", httpserver.url_for("/ua")).result is Result.SENT
    client.close()
    assert http.session().headers["User-Agent"] == f"distributor/{__version__}"


def test_default_timeout_is_connect_5_read_20():
    assert http.TIMEOUT == (5.0, 20.0)


def test_read_timeout_given_by_the_caller_is_used(httpserver):
    gate = threading.Event()

    def slow(request):
        gate.wait(5)
        from werkzeug import Response
        return Response("late")

    httpserver.expect_request("/slow").respond_with_handler(slow)
    client = http.Client(FixedClock(NOW))
    started = time.monotonic()
    try:
        reply = client.send("GET", httpserver.url_for("/slow"), timeout=(2.0, 0.2))
    finally:
        gate.set()
        client.close()
    assert (reply.result, reply.detail) == (Result.TRANSPORT, "timeout: no reply in time")
    assert time.monotonic() - started < 3


# -- network errors ---------------------------------------------------------------------------------------------------
def test_connection_aborted_and_unresolved_names_are_transport_faults():
    assert http.classify_error(requests.ConnectionError(ConnectionAbortedError())).detail == \
        "connection failed: connection aborted"
    reply = http.classify_error(requests.ConnectionError(socket.gaierror(-2, "Name or service not known")))
    assert (reply.result, reply.detail) == (Result.TRANSPORT, "connection failed: host name not resolved")


def test_content_decoding_error_is_a_broken_response():
    reply = http.classify_error(requests.exceptions.ContentDecodingError("bad gzip"))
    assert (reply.result, reply.detail) == (Result.RETRY, "broken response: ContentDecodingError")


def test_certificate_rejected_without_a_message_says_not_trusted():
    error = ssl.SSLCertVerificationError(1, "x")
    error.verify_message = None
    reply = http.classify_error(requests.exceptions.SSLError(error))
    assert (reply.result, reply.detail) == (Result.TRANSPORT, "TLS certificate rejected: not trusted")


def test_causes_are_found_through_cause_context_and_reason():
    refused = ConnectionRefusedError()
    wrapper = OSError("wrapped")
    wrapper.__cause__ = refused
    outer = requests.ConnectionError("outer")
    outer.__context__ = wrapper
    assert http.classify_error(outer).detail == "connection failed: connection refused"

    class Pool(Exception):
        def __init__(self, reason):
            super().__init__("pool")
            self.reason = reason

    assert http.classify_error(requests.ConnectionError(Pool(ConnectionResetError()))).detail == \
        "connection failed: connection reset"


def test_causes_visits_each_exception_once_even_in_a_cycle():
    a, b = ValueError("a"), KeyError("b")
    a.__cause__ = b
    b.__context__ = a
    found = list(http.causes(a))
    assert found == [a, b]


def test_causes_order_is_depth_first_from_the_last_link():
    inner = KeyError("inner")
    outer = ValueError("outer", inner)
    assert list(http.causes(outer)) == [outer, inner]


def test_refused_connection_over_the_network_is_a_transport_fault():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = http.Client(FixedClock(NOW))
    reply = client.send("GET", f"http://127.0.0.1:{port}/")
    client.close()
    assert (reply.result, reply.detail) == (Result.TRANSPORT, "connection failed: connection refused")


# -- client and transport life cycle ----------------------------------------------------------------------------------
def test_client_makes_one_session_and_closes_only_what_it_made(httpserver):
    client = http.Client(FixedClock(NOW))
    assert not client.opened
    client.close()  # nothing made: nothing to do
    first = client.open()
    assert client.opened and client.open() is first
    client.close()
    assert not client.opened
    httpserver.expect_request("/x").respond_with_data("ok")
    assert client.send("GET", httpserver.url_for("/x")).result is Result.SENT
    assert client.opened and client.open() is not first
    client.close()


class Recording(http.HttpTransport):
    def __init__(self, name: str = "t", fail_open: bool = False, missing: bool = False, log: list | None = None):
        super().__init__(FixedClock(NOW))
        self.name, self.fail_open, self.missing = name, fail_open, missing
        self.log = log if log is not None else []

    def read_secrets(self):
        if self.missing:
            raise ConfigError(f"{self.name}: SECRET is not set", where="secret_env")
        self.log.append(("read", self.name))

    def forget_secrets(self):
        self.log.append(("forget", self.name))

    def open(self):
        if self.fail_open:
            raise RuntimeError("cannot open")
        super().open()
        self.log.append(("open", self.name))

    def close(self):
        super().close()
        self.log.append(("close", self.name))

    def send(self, row, payload):
        from distributor.outcomes import Outcome
        return Outcome(row.id, Result.SENT, remote_id=json.dumps(payload))


def test_transport_reads_secrets_once_and_forgets_them_only_if_read():
    t = Recording()
    t.close()
    assert t.log == [("close", "t")]  # never opened: nothing to forget
    t.log.clear()
    t.open()
    t.open()
    assert t.log == [("read", "t"), ("open", "t"), ("open", "t")]
    assert t.client.opened
    t.log.clear()
    t.close()
    assert t.log == [("forget", "t"), ("close", "t")] and not t.client.opened
    t.log.clear()
    t.close()
    assert t.log == [("close", "t")]
    t.open()
    assert t.log[-2] == ("read", "t")  # opened again after a close: secrets are read again


def test_post_opens_on_first_use_and_sends():
    t = Recording()
    outcome = t.post(row(), {"a": 1})
    assert (outcome.delivery_id, outcome.result, outcome.remote_id) == (7, Result.SENT, '{"a": 1}')
    assert ("read", "t") in t.log and t.client.opened
    t.close()


def test_post_without_the_secret_is_a_transport_fault_naming_it():
    t = Recording(missing=True)
    outcome = t.post(row(), {})
    assert (outcome.delivery_id, outcome.result) == (7, Result.TRANSPORT)
    assert "SECRET is not set" in outcome.detail
    assert not t.client.opened


def test_base_transport_send_is_abstract():
    with pytest.raises(NotImplementedError):
        http.HttpTransport(FixedClock(NOW)).send(row(), {})


def test_open_all_opens_every_transport_or_none():
    log: list = []
    good = [Recording("a", log=log), Recording("b", log=log)]
    http.open_all(good)
    assert [e for e in log if e[0] == "open"] == [("open", "a"), ("open", "b")]
    log.clear()
    http.close_all(good)
    assert [e for e in log if e[0] == "close"] == [("close", "a"), ("close", "b")]

    log.clear()
    mixed = [Recording("a", log=log), Recording("b", log=log), Recording("c", fail_open=True, log=log),
             Recording("d", log=log)]
    with pytest.raises(RuntimeError):
        http.open_all(mixed)
    assert [e for e in log if e[0] in ("open", "close")] == [("open", "a"), ("open", "b"), ("close", "a"),
                                                              ("close", "b")]


# -- files --------------------------------------------------------------------------------------------------------------
def test_safe_name_keeps_plain_names_and_never_maps_two_texts_to_one_file():
    assert safe_name("Ana.Lima+press@paper-1.example_x.com") == "Ana.Lima+press@paper-1.example_x.com"
    names = {safe_name(t) for t in ("a/b@x", "a_b@x", "a#b@x", "x" * 200, "x" * 201, "..", ".hidden", "a b@x")}
    assert len(names) == 8 and "a_b@x" in names
    assert safe_name("a/b@x").startswith("a_b@x~") and len(safe_name("x" * 500)) == 100 + 1 + 12
    assert all(not n.startswith(".") and "/" not in n for n in names)


def test_file_transports_refuse_a_symlinked_folder(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "outbox").symlink_to(elsewhere)
    handed: list[Handed] = []
    MailFolder(tmp_path / "outbox").send_many(
        [Envelope(1, "p@o.example", "ana@paper.example.com", b"S: a\r\n\r\nx\r\n", "<s.r1.ab@o>")],
        lambda h: handed.append(h) or RECORDED)
    assert handed[0].result is Result.FAILED and "is a symbolic link" in (handed[0].detail or "")
    outcome = JsonFolder(tmp_path / "outbox").post(row(), {"a": 1})
    assert outcome.result is Result.FAILED and "is a symbolic link" in (outcome.detail or "")
    assert list(elsewhere.iterdir()) == []


def test_write_atomically_makes_folders_and_leaves_no_temporary_file(tmp_path):
    target = tmp_path / "deep" / "er" / "item.json"
    write_atomically(target, b"one")
    write_atomically(target, b"two")
    assert target.read_bytes() == b"two"
    assert sorted(p.name for p in target.parent.iterdir()) == ["item.json"]


def test_write_atomically_failure_keeps_the_old_file_and_removes_the_temporary(tmp_path):
    target = tmp_path / "item.json"
    write_atomically(target, b"old")
    with pytest.raises(TypeError):
        write_atomically(target, "not bytes")  # type: ignore[arg-type]
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["item.json"]


def test_mail_folder_writes_one_file_per_recipient_under_the_message(tmp_path):
    folder = MailFolder(tmp_path / "outbox")
    folder.open()
    assert (tmp_path / "outbox").is_dir()
    handed: list[Handed] = []
    envelopes = [Envelope(1, "press@o.example", "ana@paper.example.com", b"Subject: a\r\n\r\nhi\r\n",
                          "<tro-01-001-2026.r1.ab12@office.example.org>"),
                 Envelope(2, "press@o.example", "Bob Ng <bob@x.example>", b"B", "<tro-01-001-2026.r1.cd34@o>")]
    folder.send_many(envelopes, lambda h: handed.append(h) or RECORDED)
    folder.close()
    assert handed == [Handed(1, Result.SENT, None), Handed(2, Result.SENT, None)]
    assert (tmp_path / "outbox" / "tro-01-001-2026.r1" / "ana@paper.example.com.eml").read_bytes() == \
        b"Subject: a\r\n\r\nhi\r\n"
    assert (tmp_path / "outbox" / "tro-01-001-2026.r1" / f"{safe_name('Bob Ng <bob@x.example>')}.eml").read_bytes() \
        == b"B"


def test_json_folder_writes_the_payload_and_reports_its_path(tmp_path):
    folder = JsonFolder(tmp_path / "wire")
    folder.open()
    outcome = folder.post(row(target="news wire"), {"headline": "Zoë", "n": 1})
    folder.close()
    path = tmp_path / "wire" / f"{safe_name('tro-01-001-2026.r2.news wire')}.json"
    assert path.name.startswith("tro-01-001-2026.r2.news_wire~")
    assert (outcome.delivery_id, outcome.result, outcome.remote_id) == (7, Result.SENT, str(path))
    text = path.read_text(encoding="utf-8")
    assert json.loads(text) == {"headline": "Zoë", "n": 1}
    assert "Zoë" in text and '\n  "n": 1' in text  # not ASCII-escaped, indented by two


# -- rate limit ---------------------------------------------------------------------------------------------------------
def test_rate_limit_spaces_events_across_threads():
    limit = RateLimit(20)  # one every 50 ms
    assert limit.interval == pytest.approx(0.05)
    started = time.monotonic()
    threads = [threading.Thread(target=limit.wait) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert time.monotonic() - started >= 0.19  # four intervals after the first


def test_no_rate_limit_never_waits():
    for per_second in (None, 0):
        limit = RateLimit(per_second)
        assert limit.interval == 0.0
        started = time.monotonic()
        for _ in range(1000):
            limit.wait()
        assert time.monotonic() - started < 0.5


def test_rate_limit_first_event_is_immediate():
    limit = RateLimit(0.5)  # one every two seconds
    started = time.monotonic()
    limit.wait()
    assert time.monotonic() - started < 0.5


# -- SMTP pool, against aiosmtpd on loopback ----------------------------------------------------------------------------
@pytest.fixture(params=["pipelining", "lockstep"])
def sink(request):
    """The same rules whether the relay offers PIPELINING (MAIL, RCPT and DATA in one write) or not."""
    handler = SinkHandler(pipelining=request.param == "pipelining")
    controller = _start_sink(handler)
    yield handler, controller.port
    controller.stop()


def envelopes(n: int, domain: str = "paper.example.com") -> list[Envelope]:
    return [Envelope(i, "press@office.example.org", f"r{i}@{domain}", f"Subject: {i}\r\n\r\nbody {i}\r\n".encode(),
                     f"<m{i}@office.example.org>") for i in range(n)]


def send(pool: smtp.SmtpPool, items: list[Envelope]) -> dict[int, Handed]:
    handed: dict[int, Handed] = {}
    lock = threading.Lock()

    def handover(h: Handed):
        with lock:
            assert h.key not in handed, "an envelope was handed over twice"
            handed[h.key] = h
        return RECORDED

    pool.send_many(items, handover)
    return handed


def send_through(handler: SinkHandler, items: list[Envelope], connections: int = 1) -> dict[int, Handed]:
    """Send over a pool of its own to a sink of its own, both closed after."""
    controller = _start_sink(handler)
    pool = smtp.SmtpPool(smtp.SmtpSettings(host="127.0.0.1", port=controller.port, connections=connections))
    try:
        return send(pool, items)
    finally:
        pool.close()
        controller.stop()


def test_smtp_sends_each_envelope_once_over_the_configured_connections(sink):
    handler, port = sink
    pool = smtp.SmtpPool(smtp.SmtpSettings(host="127.0.0.1", port=port, connections=3))
    try:
        handed = send(pool, envelopes(7))
        assert pool._executor is not None and pool._executor._max_workers == 3
    finally:
        pool.close()
    assert pool._executor is None
    assert {k: h.result for k, h in handed.items()} == {i: Result.SENT for i in range(7)}
    assert all(h.detail is None for h in handed.values())
    assert sorted(m.rcpt_tos[0] for m in handler.messages) == sorted(f"r{i}@paper.example.com" for i in range(7))
    assert all(m.mail_from == "press@office.example.org" for m in handler.messages)


def test_smtp_lines_starting_with_a_dot_arrive_intact(sink):
    handler, port = sink
    shared = SharedBody(b"Subject: s\r\n\r\n.\r\n..two\r\n.end")
    items = [Envelope(1, "press@office.example.org", "ana@paper.example.com", b"To: ana@paper.example.com\r\n",
                      "<m1@o>", shared),
             Envelope(2, "press@office.example.org", "bo@paper.example.com", b"Subject: t\r\n\r\n.lone\r\n", "<m2@o>")]
    pool = smtp.SmtpPool(smtp.SmtpSettings(host="127.0.0.1", port=port, connections=1))
    try:
        assert {h.result for h in send(pool, items).values()} == {Result.SENT}
    finally:
        pool.close()
    got = {m.rcpt_tos[0]: m.data for m in handler.messages}
    assert got["ana@paper.example.com"] == b"To: ana@paper.example.com\r\nSubject: s\r\n\r\n.\r\n..two\r\n.end\r\n"
    assert got["bo@paper.example.com"] == b"Subject: t\r\n\r\n.lone\r\n"
    assert items[0].message == b"To: ana@paper.example.com\r\n" + shared.raw


def test_dot_stuffing_doubles_a_leading_dot_on_every_line_and_nothing_else():
    assert dot_stuffed(b".a\r\nb.c\r\n.\r\n") == b"..a\r\nb.c\r\n..\r\n"
    assert Envelope(1, "s@x", "r@x", b"a\r\n", "<m@x>").smtp_data() == b"a\r\n.\r\n"
    assert Envelope(1, "s@x", "r@x", b"a", "<m@x>").smtp_data() == b"a\r\n.\r\n"


@pytest.mark.parametrize("recipient", ["Bob <bob@x.example>", "bob @x.example", "bob@x.example\r\nRCPT TO:<e@x>",
                                       "jo@b\u00fccher.example", "tab\t@x.example"])
def test_smtp_an_address_that_cannot_go_in_rcpt_to_fails_alone(sink, recipient):
    handler, port = sink
    items = [Envelope(9, "press@office.example.org", recipient, b"Subject: a\r\n\r\nx\r\n", "<m9@o>"),
             *envelopes(2)[1:]]
    pool = smtp.SmtpPool(smtp.SmtpSettings(host="127.0.0.1", port=port, connections=1))
    try:
        handed = send(pool, items)
    finally:
        pool.close()
    assert handed[9].result is Result.FAILED and "not a deliverable address" in (handed[9].detail or "")
    assert handed[1].result is Result.SENT
    assert [m.rcpt_tos for m in handler.messages] == [["r1@paper.example.com"]]


def test_smtp_nothing_to_send_opens_nothing():
    pool = smtp.SmtpPool(smtp.SmtpSettings(host="127.0.0.1", port=9))
    pool.send_many([], lambda h: RECORDED)
    assert pool._executor is None


def test_smtp_connections_are_reused_and_closed(sink):
    handler, port = sink
    pool = smtp.SmtpPool(smtp.SmtpSettings(host="127.0.0.1", port=port, connections=1))
    try:
        send(pool, envelopes(2))
        assert pool._idle.qsize() == 1
        conn = pool._idle.get_nowait()[0]
        pool._checkin(conn)
        send(pool, envelopes(2))
        assert pool._idle.qsize() == 1 and pool._idle.get_nowait()[0] is conn
        pool._checkin(conn)
    finally:
        pool.close()
    assert pool._idle.empty()
    assert conn.sock is None  # QUIT sent and the socket closed


def test_smtp_idle_connection_is_checked_and_a_dead_one_replaced(sink, monkeypatch):
    handler, port = sink
    pool = smtp.SmtpPool(smtp.SmtpSettings(host="127.0.0.1", port=port, connections=1))
    monkeypatch.setattr(smtp, "IDLE_CHECK_SECONDS", 0.0)
    try:
        send(pool, envelopes(1))
        alive = pool._idle.get_nowait()[0]
        pool._checkin(alive)
        assert pool._checkout() is alive  # NOOP answered 250
        alive.close()  # the server side is gone
        pool._checkin(alive)
        fresh = pool._checkout()
        assert fresh is not alive and fresh.noop()[0] == 250
        pool._checkin(fresh)
    finally:
        pool.close()


def test_smtp_recently_used_connection_is_not_checked(sink):
    handler, port = sink
    pool = smtp.SmtpPool(smtp.SmtpSettings(host="127.0.0.1", port=port, connections=1))
    try:
        send(pool, envelopes(1))
        conn = pool._idle.get_nowait()[0]
        conn.close()  # would fail a NOOP; within the idle window it is trusted as it is
        pool._checkin(conn)
        assert pool._checkout() is conn
    finally:
        pool.close()


@pytest.mark.parametrize("reply, result", [
    ("450 mailbox busy", Result.RETRY), ("451 local error", Result.RETRY), ("499 edge", Result.RETRY),
    ("550 no such user", Result.FAILED), ("553 bad name", Result.FAILED), ("500 edge", Result.FAILED),
])
def test_smtp_refused_recipient_is_never_sent(sink, reply, result):
    handler, port = sink
    handler.rcpt_replies["r1@paper.example.com"] = reply
    pool = smtp.SmtpPool(smtp.SmtpSettings(host="127.0.0.1", port=port, connections=1))
    try:
        handed = send(pool, envelopes(3))
    finally:
        pool.close()
    assert handed[1] == Handed(1, result, f"RCPT TO: {reply}")
    assert handed[0].result is handed[2].result is Result.SENT
    assert sorted(m.rcpt_tos[0] for m in handler.messages) == ["r0@paper.example.com", "r2@paper.example.com"]


class ForwardingHandler(SinkHandler):
    """Accepts every recipient with 251 (user not local; will forward)."""

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        envelope.rcpt_tos.append(address)
        return "251 User not local; will forward"


def test_smtp_recipient_251_is_accepted():
    handler = ForwardingHandler()
    handed = send_through(handler, envelopes(2))
    assert handed == {0: Handed(0, Result.SENT, None), 1: Handed(1, Result.SENT, None)}
    assert len(handler.messages) == 2


@pytest.mark.parametrize("reply, result", [
    ("452 try later", Result.RETRY), ("554 rejected as spam", Result.FAILED),
])
def test_smtp_refused_data_is_not_sent_and_the_session_goes_on(sink, reply, result):
    handler, port = sink
    handler.data_replies["r0@paper.example.com"] = reply
    pool = smtp.SmtpPool(smtp.SmtpSettings(host="127.0.0.1", port=port, connections=1))
    try:
        handed = send(pool, envelopes(2))
    finally:
        pool.close()
    assert handed[0] == Handed(0, result, f"DATA: {reply}")
    assert handed[1] == Handed(1, Result.SENT, None)


def test_smtp_421_at_data_drops_the_connection_and_retries(sink):
    handler, port = sink
    handler.data_replies["r0@paper.example.com"] = "421 closing"
    pool = smtp.SmtpPool(smtp.SmtpSettings(host="127.0.0.1", port=port, connections=1))
    try:
        handed = send(pool, envelopes(2))
    finally:
        pool.close()
    assert handed[0] == Handed(0, Result.RETRY, "DATA: 421 closing")
    assert handed[1].result is Result.SENT  # a new connection carried the next one


def test_smtp_421_at_rcpt_is_retried(sink):
    handler, port = sink
    handler.rcpt_replies["r0@paper.example.com"] = "421 going down"
    pool = smtp.SmtpPool(smtp.SmtpSettings(host="127.0.0.1", port=port, connections=1))
    try:
        handed = send(pool, envelopes(2))
    finally:
        pool.close()
    assert handed[0] == Handed(0, Result.RETRY, "RCPT TO: 421 going down")
    assert handed[1].result is Result.SENT


def test_smtp_421_at_mail_from_is_retried(sink):
    handler, port = sink
    handler.mail_reply = "421 going down"
    pool = smtp.SmtpPool(smtp.SmtpSettings(host="127.0.0.1", port=port, connections=1))
    try:
        handed = send(pool, envelopes(2))
    finally:
        pool.close()
    assert handed[0] == Handed(0, Result.RETRY, "MAIL FROM: 421 going down")
    assert handed[1] == Handed(1, Result.RETRY, "MAIL FROM: 421 going down")


def test_smtp_refused_mail_from_is_a_session_fault_for_the_rest_of_the_lane(sink):
    handler, port = sink
    handler.mail_reply = "550 sender not allowed"
    pool = smtp.SmtpPool(smtp.SmtpSettings(host="127.0.0.1", port=port, connections=1))
    try:
        handed = send(pool, envelopes(3))
    finally:
        pool.close()
    fault = "MAIL FROM refused: 550 sender not allowed"
    assert handed == {i: Handed(i, Result.TRANSPORT, fault) for i in range(3)}
    assert handler.messages == []


def test_smtp_relay_down_is_a_transport_fault_naming_host_and_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    pool = smtp.SmtpPool(smtp.SmtpSettings(host="127.0.0.1", port=port, connections=2, timeout=2))
    try:
        handed = send(pool, envelopes(4))
    finally:
        pool.close()
    assert {h.result for h in handed.values()} == {Result.TRANSPORT}
    assert all(h.detail.startswith(f"cannot connect to 127.0.0.1:{port}: ") for h in handed.values())


def test_smtp_unavailable_delivery_record_stops_the_lane(sink):
    handler, port = sink
    from distributor.outcomes import Receipt
    failed = Receipt()
    failed.settle(False)
    pool = smtp.SmtpPool(smtp.SmtpSettings(host="127.0.0.1", port=port, connections=1))
    handed: list[Handed] = []
    try:
        pool.send_many(envelopes(3), lambda h: handed.append(h) or failed)
    finally:
        pool.close()
    assert handed[0] == Handed(0, Result.SENT, None)
    fault = "the delivery record is unavailable; not sending more"
    assert handed[1:] == [Handed(1, Result.TRANSPORT, fault), Handed(2, Result.TRANSPORT, fault)]
    assert len(handler.messages) == 1


def test_smtp_lanes_wait_for_each_receipt_before_the_next_data(sink):
    handler, port = sink
    from distributor.outcomes import Receipt
    pool = smtp.SmtpPool(smtp.SmtpSettings(host="127.0.0.1", port=port, connections=1))
    pending: list[Receipt] = []

    def handover(h: Handed):
        receipt = Receipt()
        pending.append(receipt)
        return receipt

    worker = threading.Thread(target=pool.send_many, args=(envelopes(2), handover))
    worker.start()
    try:
        deadline = time.monotonic() + 5
        while not pending and time.monotonic() < deadline:
            time.sleep(0.01)
        worker.join(0.3)
        assert worker.is_alive() and len(handler.messages) == 1  # the second DATA waits for the first record
        pending[0].settle(True)
        deadline = time.monotonic() + 5
        while len(pending) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(handler.messages) == 2
        worker.join(0.3)
        assert worker.is_alive()  # and the lane waits for the last record too
        pending[1].settle(True)
        worker.join(5)
        assert not worker.is_alive()
    finally:
        for r in pending:
            r.settle(True)
        pool.close()


class LineRelay:
    """A loopback relay that keeps every line it reads, so a test sees what reached the relay and when. It offers
    PIPELINING, accepts every command and every message, and notes when a connection ends."""

    def __init__(self):
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.lines: list[bytes] = []
        self.ended = 0
        self.changed = threading.Condition()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket):
        try:
            self._converse(conn)
        except OSError:  # the client cut the connection off: the lines so far are what arrived
            pass
        with self.changed:
            self.ended += 1
            self.changed.notify_all()

    def _converse(self, conn: socket.socket):
        with conn, conn.makefile("rb") as lines:
            conn.sendall(b"220 relay\r\n")
            in_data = False
            for line in lines:
                with self.changed:
                    self.lines.append(line)
                    self.changed.notify_all()
                word = line[:4].upper()
                if in_data:
                    if line == b".\r\n":
                        in_data = False
                        conn.sendall(b"250 queued\r\n")
                elif word == b"EHLO":
                    conn.sendall(b"250-relay\r\n250 PIPELINING\r\n")
                elif word == b"DATA":
                    in_data = True
                    conn.sendall(b"354 go on\r\n")
                elif word == b"QUIT":
                    conn.sendall(b"221 bye\r\n")
                    break
                else:
                    conn.sendall(b"250 ok\r\n")

    def wait_for(self, condition, timeout: float = 5) -> None:
        with self.changed:
            assert self.changed.wait_for(condition, timeout), self.lines

    def close(self):
        self.server.close()


@pytest.fixture
def line_relay():
    relay = LineRelay()
    yield relay
    relay.close()


def test_smtp_the_next_message_goes_to_the_relay_while_the_receipt_is_awaited_but_not_its_final_dot(line_relay):
    from distributor.outcomes import Receipt
    pool = smtp.SmtpPool(smtp.SmtpSettings(host="127.0.0.1", port=line_relay.port, connections=1))
    first = Receipt()  # the first message's record, held back by the test
    handed: list[Handed] = []
    worker = threading.Thread(target=pool.send_many,
                              args=(envelopes(2), lambda h: handed.append(h) or (first if h.key == 0 else RECORDED)))
    worker.start()
    try:
        line_relay.wait_for(lambda: b"body 1\r\n" in line_relay.lines)  # the second message, before the record
        assert line_relay.lines.count(b".\r\n") == 1  # but not the dot that would end it
        assert [h.key for h in handed] == [0]
        first.settle(True)
        worker.join(5)
        assert not worker.is_alive()
    finally:
        first.settle(True)
        pool.close()
    assert line_relay.lines.count(b".\r\n") == 2
    assert [h.result for h in handed] == [Result.SENT, Result.SENT]


def test_smtp_a_message_held_for_an_unavailable_record_is_cut_off_unfinished(line_relay):
    from distributor.outcomes import Receipt
    failed = Receipt()
    failed.settle(False)
    pool = smtp.SmtpPool(smtp.SmtpSettings(host="127.0.0.1", port=line_relay.port, connections=1, timeout=2))
    handed: list[Handed] = []
    try:
        pool.send_many(envelopes(2), lambda h: handed.append(h) or failed)
    finally:
        pool.close()
    line_relay.wait_for(lambda: line_relay.ended == 1)
    # the connection ended inside the second message's DATA, with nothing after its body: no QUIT to be read
    # as a line of the message, and no final dot
    assert line_relay.lines[-1] == b"body 1\r\n"
    assert line_relay.lines.count(b".\r\n") == 1
    assert [h.result for h in handed] == [Result.SENT, Result.TRANSPORT]


def test_smtp_connections_send_small_writes_at_once(sink):
    """The final dot is a write of its own: with Nagle's algorithm it would wait for the relay's delayed ACK."""
    _, port = sink
    pool = smtp.SmtpPool(smtp.SmtpSettings(host="127.0.0.1", port=port, connections=1))
    try:
        conn = pool._checkout()
        assert conn.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        pool._checkin(conn)
    finally:
        pool.close()


def test_smtp_login_is_used_and_a_wrong_password_refused(smtp_auth_sink, monkeypatch):
    monkeypatch.setenv("TEST_SMTP_PASSWORD", "right-password")
    settings = smtp.SmtpSettings(host="127.0.0.1", port=smtp_auth_sink.port, connections=1, username="press",
                                 password_env="TEST_SMTP_PASSWORD")
    pool = smtp.SmtpPool(settings)
    assert pool.password == "right-password"
    try:
        assert send(pool, envelopes(1))[0].result is Result.SENT
    finally:
        pool.close()
    monkeypatch.setenv("TEST_SMTP_PASSWORD", "wrong")
    pool = smtp.SmtpPool(settings)
    try:
        handed = send(pool, envelopes(2))
    finally:
        pool.close()
    assert {h.result for h in handed.values()} == {Result.TRANSPORT}
    assert handed[0].detail.startswith("login refused: 535 ")


def test_smtp_connection_refused_a_login_is_closed_at_once(smtp_auth_sink, monkeypatch):
    monkeypatch.setenv("TEST_SMTP_PASSWORD", "wrong")
    pool = smtp.SmtpPool(smtp.SmtpSettings(host="127.0.0.1", port=smtp_auth_sink.port, connections=1,
                                           username="press", password_env="TEST_SMTP_PASSWORD"))
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always", ResourceWarning)
        try:
            handed = send(pool, envelopes(1))
        finally:
            pool.close()
        gc.collect()
    assert handed[0].detail.startswith("login refused: 535 ")
    assert [str(w.message) for w in seen if w.category is ResourceWarning] == []


def test_smtp_without_a_username_does_not_log_in(smtp_auth_sink):
    pool = smtp.SmtpPool(smtp.SmtpSettings(host="127.0.0.1", port=smtp_auth_sink.port, connections=1))
    assert pool.password is None
    try:
        handed = send(pool, envelopes(1))
    finally:
        pool.close()
    assert handed[0].result is Result.TRANSPORT  # the server wants a login first
    assert handed[0].detail.startswith("MAIL FROM refused: 530 ")


def test_smtp_missing_password_variable_is_a_config_error(monkeypatch):
    monkeypatch.delenv("TEST_SMTP_PASSWORD", raising=False)
    with pytest.raises(ConfigError) as error:
        smtp.SmtpPool(smtp.SmtpSettings(username="u", password_env="TEST_SMTP_PASSWORD"))
    assert "TEST_SMTP_PASSWORD" in str(error.value)


def test_smtp_reply_text_is_one_line():
    assert smtp._reply(550, b"no\r\n  such   user") == "550 no such user"
    assert smtp._reply(421, "bye\n now") == "421 bye now"
    assert smtp._reply(554, b"caf\xe9") == "554 caf\ufffd"


def test_smtp_defaults():
    s = smtp.SmtpSettings()
    assert (s.host, s.port, s.security, s.connections, s.max_per_second, s.timeout) == \
        ("localhost", 25, "none", 4, None, 30.0)
    assert smtp.IDLE_CHECK_SECONDS == 5.0


def test_smtp_classify_boundaries():
    assert [smtp._classify(c) for c in (399, 400, 450, 499, 500, 554)] == \
        [Result.FAILED, Result.RETRY, Result.RETRY, Result.RETRY, Result.FAILED, Result.FAILED]


def test_smtp_tls_to_a_plain_server_is_a_session_fault(sink):
    handler, port = sink
    for security in ("ssl", "starttls"):
        pool = smtp.SmtpPool(smtp.SmtpSettings(host="127.0.0.1", port=port, connections=1, security=security,
                                               timeout=3))
        try:
            handed = send(pool, envelopes(1))
        finally:
            pool.close()
        assert handed[0].result is Result.TRANSPORT, security
    assert handler.messages == []


def test_smtp_rate_limit_spaces_messages(sink):
    handler, port = sink
    pool = smtp.SmtpPool(smtp.SmtpSettings(host="127.0.0.1", port=port, connections=2, max_per_second=20))
    started = time.monotonic()
    try:
        send(pool, envelopes(5))
    finally:
        pool.close()
    assert time.monotonic() - started >= 0.19
    assert len(handler.messages) == 5


def test_paths_are_under_the_given_folder(tmp_path):
    assert isinstance(MailFolder(tmp_path).directory, Path)


# -- rules found by mutation testing -----------------------------------------------------------------------------------
TLS = Path(__file__).resolve().parent / "channels" / "tls"


@pytest.mark.parametrize("error, result, detail", [
    (requests.ConnectTimeout("x"), Result.TRANSPORT, "timeout: no connection in time"),
    (requests.ReadTimeout("x"), Result.TRANSPORT, "timeout: no reply in time"),
    (requests.exceptions.SSLError("handshake cut"), Result.TRANSPORT, "connection failed: TLS handshake failed"),
    (requests.ConnectionError("x"), Result.TRANSPORT, "connection failed: ConnectionError"),
    (requests.exceptions.ProxyError("x"), Result.TRANSPORT, "connection failed: ProxyError"),
    (requests.exceptions.InvalidURL("x"), Result.FAILED, "request failed: InvalidURL"),
    (requests.exceptions.MissingSchema("x"), Result.FAILED, "request failed: MissingSchema"),
])
def test_every_kind_of_network_error(error, result, detail):
    reply = http.classify_error(error)
    assert (reply.result, reply.detail, reply.retry_after, reply.response) == (result, detail, None, None)


def test_causes_goes_on_past_an_exception_already_seen():
    a, b = KeyError("a"), KeyError("b")
    outer = ValueError(b, a, a)
    assert list(http.causes(outer)) == [outer, a, b]


def test_retry_after_date_now_or_past_is_zero():
    assert http.retry_after("Tue, 01 Jan 2030 00:00:00 GMT", NOW) == 0.0
    assert http.retry_after("Mon, 31 Dec 2029 23:59:59 GMT", NOW) == 0.0


def test_request_options_are_passed_on(httpserver):
    httpserver.expect_request("/opts", method="POST", json={"a": 1}, headers={"X-Key": "k"}).respond_with_data("ok")
    client = http.Client(FixedClock(NOW))
    try:
        reply = client.send("POST", httpserver.url_for("/opts"), json={"a": 1}, headers={"X-Key": "k"})
    finally:
        client.close()
    assert reply.result is Result.SENT


class Posting(http.HttpTransport):
    def __init__(self, url):
        super().__init__(FixedClock(NOW))
        self.url = url

    def send(self, row, payload):
        reply = self.client.send("POST", self.url, json=payload)
        from distributor.outcomes import Outcome
        return Outcome(row.id, reply.result, reply.detail, retry_after=reply.retry_after)


def test_transport_reads_retry_after_dates_with_its_clock(httpserver):
    httpserver.expect_request("/p").respond_with_data("", status=503,
                                                      headers={"Retry-After": "Tue, 01 Jan 2030 00:00:42 GMT"})
    transport = Posting(httpserver.url_for("/p"))
    try:
        outcome = transport.post(row(), {"x": 1})
    finally:
        transport.close()
    assert (outcome.result, outcome.detail, outcome.retry_after) == (Result.RETRY, "HTTP 503", 42.0)


def test_write_atomically_on_another_file_system(tmp_path):
    import os
    import tempfile
    shm = Path("/dev/shm")
    if not shm.is_dir() or os.stat(shm).st_dev == os.stat(tempfile.gettempdir()).st_dev:
        pytest.skip("needs /dev/shm on a file system of its own")
    folder = Path(tempfile.mkdtemp(dir=shm))
    try:
        write_atomically(folder / "x.json", b"data")  # the temporary is made beside the file, so rename works
        assert (folder / "x.json").read_bytes() == b"data"
        assert [p.name for p in folder.iterdir()] == ["x.json"]
    finally:
        import shutil
        shutil.rmtree(folder)


def test_mail_folder_open_makes_parents_and_may_be_repeated(tmp_path):
    folder = MailFolder(tmp_path / "a" / "b" / "outbox")
    folder.open()
    folder.open()
    assert (tmp_path / "a" / "b" / "outbox").is_dir()


def test_mail_folder_strips_only_the_angle_brackets(tmp_path):
    folder = MailFolder(tmp_path)
    folder.send_many([Envelope(1, "s@x", "r@x", b"D", "<Xs.r1.ab12X@office.example.org>")], lambda h: RECORDED)
    assert (tmp_path / "Xs.r1" / "r@x.eml").read_bytes() == b"D"


def test_smtp_missing_password_error_names_the_key(monkeypatch):
    monkeypatch.delenv("TEST_SMTP_PASSWORD", raising=False)
    with pytest.raises(ConfigError) as error:
        smtp.SmtpPool(smtp.SmtpSettings(username="u", password_env="TEST_SMTP_PASSWORD"))
    assert str(error.value) == "channels.email.smtp.password_env: environment variable TEST_SMTP_PASSWORD is not set"


def test_smtp_username_without_password_logs_in_with_an_empty_one():

    from aiosmtpd.smtp import AuthResult

    def authenticator(server, session, envelope, mechanism, auth_data):
        return AuthResult(success=getattr(auth_data, "password", None) == b"", handled=False)

    handler = SinkHandler()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        controller = _start_sink(handler, authenticator=authenticator, auth_required=True, auth_require_tls=False)
    pool = smtp.SmtpPool(smtp.SmtpSettings(host="127.0.0.1", port=controller.port, connections=1, username="press"))
    try:
        assert send(pool, envelopes(1))[0] == Handed(0, Result.SENT, None)
    finally:
        pool.close()
        controller.stop()


def test_smtp_refused_greeting_is_a_session_fault_with_the_reply():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]

    def greet():
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                conn.sendall(b"554 no  service\r\n")
                conn.recv(1024)

    threading.Thread(target=greet, daemon=True).start()
    pool = smtp.SmtpPool(smtp.SmtpSettings(host="127.0.0.1", port=port, connections=1, timeout=5))
    try:
        handed = send(pool, envelopes(2))
    finally:
        pool.close()
        server.close()
    assert handed == {i: Handed(i, Result.TRANSPORT, "session refused: 554 no service") for i in range(2)}


@pytest.fixture
def trusted_tls(monkeypatch):
    monkeypatch.setenv("SSL_CERT_FILE", str(TLS / "cert.pem"))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(TLS / "cert.pem", TLS / "key.pem")
    return context


def test_smtp_over_implicit_tls(trusted_tls):
    handler = SinkHandler()
    controller = _start_sink(handler, ssl_context=trusted_tls)
    pool = smtp.SmtpPool(smtp.SmtpSettings(host="127.0.0.1", port=controller.port, connections=1, security="ssl"))
    try:
        handed = send(pool, envelopes(2))
    finally:
        pool.close()
        controller.stop()
    assert handed == {0: Handed(0, Result.SENT, None), 1: Handed(1, Result.SENT, None)}
    assert len(handler.messages) == 2


def test_smtp_with_starttls(trusted_tls):
    handler = SinkHandler()
    controller = _start_sink(handler, tls_context=trusted_tls, require_starttls=True)
    pool = smtp.SmtpPool(smtp.SmtpSettings(host="127.0.0.1", port=controller.port, connections=1,
                                           security="starttls"))
    try:
        handed = send(pool, envelopes(1))
    finally:
        pool.close()
        controller.stop()
    assert handed == {0: Handed(0, Result.SENT, None)}
    plain = smtp.SmtpPool(smtp.SmtpSettings(host="127.0.0.1", port=9, connections=1))
    plain.close()


def test_smtp_starttls_required_but_not_used_is_refused(trusted_tls):
    handler = SinkHandler()
    controller = _start_sink(handler, tls_context=trusted_tls, require_starttls=True)
    pool = smtp.SmtpPool(smtp.SmtpSettings(host="127.0.0.1", port=controller.port, connections=1))
    try:
        handed = send(pool, envelopes(1))
    finally:
        pool.close()
        controller.stop()
    assert handed[0].result is Result.TRANSPORT and handed[0].detail.startswith("MAIL FROM refused: 530 ")


def test_smtp_threads_are_named_and_close_waits_for_them(sink):
    handler, port = sink
    pool = smtp.SmtpPool(smtp.SmtpSettings(host="127.0.0.1", port=port, connections=2))
    names: list[str] = []
    pool.send_many(envelopes(2), lambda h: names.append(threading.current_thread().name) or RECORDED)
    threads = [t for t in threading.enumerate() if t.name.startswith("smtp_")]
    pool.close()
    assert names and all(n.startswith("smtp_") for n in names)
    assert threads and not any(t.is_alive() for t in threads)


class NoRecipientHandler(SinkHandler):
    """Says 251 but keeps no recipient, so the server refuses the DATA command itself."""

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        return "251 noted"


def test_smtp_data_command_refused_is_classified():
    handed = send_through(NoRecipientHandler(), envelopes(2))
    assert handed[0] == Handed(0, Result.FAILED, "DATA: 503 Error: need RCPT command")
    assert handed[1].result is Result.FAILED


def scripted_server(replies: dict[bytes, bytes | None], pipelining: bool = False, chunks: list[bytes] | None = None):
    """A line-by-line SMTP server: the reply for each command word, or None to hang up. With ``pipelining`` its
    EHLO offers PIPELINING; ``chunks`` gets what each read brought."""
    if pipelining:
        replies = {b"EHLO": b"250-scripted\r\n250 PIPELINING", **replies}
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()

    def serve():
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                try:
                    converse(conn)
                except OSError:  # the client cut the connection off
                    pass

    def converse(conn: socket.socket):
        conn.sendall(b"220 scripted\r\n")
        buffer = b""
        in_data = False  # after a 354: the message's lines, up to the lone dot
        while True:
            data = conn.recv(4096)
            if not data:
                return
            if chunks is not None:
                chunks.append(data)
            buffer += data
            while b"\r\n" in buffer:
                line, buffer = buffer.split(b"\r\n", 1)
                if in_data:
                    if line == b".":
                        in_data = False
                        conn.sendall(b"250 queued\r\n")
                    continue
                word = line.split(b" ")[0].split(b":")[0].upper()
                reply = replies.get(word, b"250 ok")
                if reply is None:
                    return
                conn.sendall(reply + b"\r\n")
                in_data = reply.startswith(b"354")

    threading.Thread(target=serve, daemon=True).start()
    return server


@pytest.mark.parametrize("pipelining", [True, False])
def test_smtp_connection_lost_mid_message_is_retried_on_a_new_connection(pipelining):
    server = scripted_server({b"MAIL": None}, pipelining)
    port = server.getsockname()[1]
    pool = smtp.SmtpPool(smtp.SmtpSettings(host="127.0.0.1", port=port, connections=1, timeout=5))
    try:
        handed = send(pool, envelopes(2))
    finally:
        pool.close()
        server.close()
    assert {h.result for h in handed.values()} == {Result.RETRY}
    assert all(h.detail.startswith("connection lost: ") for h in handed.values())


@pytest.mark.parametrize("pipelining", [True, False])
def test_smtp_failed_reset_drops_the_connection(pipelining):
    server = scripted_server({b"RCPT": b"550 no such user", b"DATA": b"554 no valid recipients", b"RSET": None},
                             pipelining)
    port = server.getsockname()[1]
    pool = smtp.SmtpPool(smtp.SmtpSettings(host="127.0.0.1", port=port, connections=1, timeout=5))
    try:
        handed = send(pool, envelopes(1))
    finally:
        pool.close()
        server.close()
    assert handed[0].result is Result.RETRY and handed[0].detail.startswith("RSET failed: ")


@pytest.mark.parametrize("pipelining", [True, False])
def test_smtp_groups_mail_rcpt_and_data_only_for_a_relay_offering_pipelining(pipelining):
    chunks: list[bytes] = []
    server = scripted_server({b"DATA": b"354 go ahead"}, pipelining, chunks)
    pool = smtp.SmtpPool(smtp.SmtpSettings(host="127.0.0.1", port=server.getsockname()[1], connections=1, timeout=5))
    try:
        send(pool, envelopes(1))
    finally:
        pool.close()
        server.close()
    chunks = [chunk[:4].upper() + chunk[4:] for chunk in chunks]  # the command word in either case
    mail = b"MAIL FROM:<press@office.example.org>\r\n"
    group = mail + b"RCPT TO:<r0@paper.example.com>\r\nDATA\r\n"
    assert (group in chunks) is pipelining  # one write, its three replies read after it
    assert (mail in chunks) is not pipelining  # one command at a time, each reply awaited


def test_smtp_data_accepted_after_every_recipient_refused_is_ended_by_a_lone_dot():
    """RFC 2920 3.1: the client cannot count on DATA being refused; if it is accepted, a single dot ends it."""
    chunks: list[bytes] = []
    server = scripted_server({b"RCPT": b"550 no such user", b"DATA": b"354 go ahead"}, True, chunks)
    pool = smtp.SmtpPool(smtp.SmtpSettings(host="127.0.0.1", port=server.getsockname()[1], connections=1, timeout=5))
    try:
        handed = send(pool, envelopes(1))
        assert pool._idle.qsize() == 1  # the session goes on
    finally:
        pool.close()
        server.close()
    assert handed[0] == Handed(0, Result.FAILED, "RCPT TO: 550 no such user")
    lines = b"".join(chunks).split(b"\r\n")
    assert [line.upper() for line in lines[lines.index(b"DATA") + 1:][:2]] == [b".", b"RSET"]
    assert not any(line.startswith(b"Subject") for line in lines)  # nothing of the message


class FirstSessionRefused(SinkHandler):
    """Refuses MAIL FROM in the first session only."""

    first: object = None

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        if self.first is None:
            self.first = session
        if session is self.first:
            return "550 not from this connection"
        return await super().handle_MAIL(server, session, envelope, address, mail_options)


def test_smtp_a_lane_whose_session_failed_leaves_the_rest_to_the_others():
    handler = FirstSessionRefused()
    handed = send_through(handler, envelopes(6), connections=2)
    results = sorted(h.result.value for h in handed.values())
    assert results == sorted([Result.TRANSPORT.value] + [Result.SENT.value] * 5)
    assert len(handler.messages) == 5


class QuitCounting(SinkHandler):
    quits = 0

    async def handle_QUIT(self, server, session, envelope):
        QuitCounting.quits += 1
        return "221 bye"


def test_smtp_session_fault_closes_the_connection_and_is_logged(caplog):
    QuitCounting.quits = 0
    handler = QuitCounting(mail_reply="550 sender not allowed")
    controller = _start_sink(handler)
    pool = smtp.SmtpPool(smtp.SmtpSettings(host="127.0.0.1", port=controller.port, connections=1))
    try:
        with caplog.at_level(logging.WARNING, logger="distributor.smtp"):
            send(pool, envelopes(2))
        assert pool._idle.empty()
        deadline = time.monotonic() + 5
        while QuitCounting.quits < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert QuitCounting.quits == 1
    finally:
        pool.close()
        controller.stop()
    assert [r.getMessage() for r in caplog.records] == ["SMTP transport fault: MAIL FROM refused: 550 sender not allowed"]


@pytest.mark.parametrize("stage", ["rcpt", "data"])
def test_smtp_421_gives_up_the_connection(sink, stage):
    handler, port = sink
    getattr(handler, f"{stage}_replies")["r0@paper.example.com"] = "421 closing"
    pool = smtp.SmtpPool(smtp.SmtpSettings(host="127.0.0.1", port=port, connections=1))
    try:
        handed = send(pool, envelopes(1))
        assert handed[0].result is Result.RETRY
        assert pool._idle.empty()  # not given back to the pool
    finally:
        pool.close()


def test_smtp_refused_recipient_keeps_the_connection(sink):
    handler, port = sink
    handler.rcpt_replies["r0@paper.example.com"] = "550 no such user"
    pool = smtp.SmtpPool(smtp.SmtpSettings(host="127.0.0.1", port=port, connections=1))
    try:
        send(pool, envelopes(1))
        assert pool._idle.qsize() == 1
    finally:
        pool.close()


def silent_server():
    """Accepts connections and never says a word."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    held: list = []

    def accept():
        while True:
            try:
                held.append(server.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    return server, held


@pytest.mark.parametrize("security", ["none", "ssl"])
def test_smtp_silent_server_times_out(security):
    server, held = silent_server()
    pool = smtp.SmtpPool(smtp.SmtpSettings(host="127.0.0.1", port=server.getsockname()[1], connections=1,
                                           timeout=0.5, security=security))
    started = time.monotonic()
    try:
        handed = send(pool, envelopes(1))
    finally:
        pool.close()
        server.close()
        for s in held:
            s.close()
    assert handed[0].result is Result.TRANSPORT and handed[0].detail.startswith("cannot connect to ")
    assert time.monotonic() - started < 5


def test_http_default_timeout_applies(monkeypatch):
    server, held = silent_server()
    monkeypatch.setattr(http, "TIMEOUT", (0.5, 0.5))
    client = http.Client(FixedClock(NOW))
    started = time.monotonic()
    try:
        reply = client.send("GET", f"http://127.0.0.1:{server.getsockname()[1]}/")
    finally:
        client.close()
        server.close()
        for s in held:
            s.close()
    assert (reply.result, reply.detail) == (Result.TRANSPORT, "timeout: no reply in time")
    assert time.monotonic() - started < 5


@pytest.mark.parametrize("security", ["ssl", "starttls"])
def test_smtp_untrusted_certificate_is_refused(monkeypatch, security):
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(TLS / "cert.pem", TLS / "key.pem")
    handler = SinkHandler()
    options = {"ssl_context": context} if security == "ssl" else {"tls_context": context}
    controller = _start_sink(handler, **options)
    pool = smtp.SmtpPool(smtp.SmtpSettings(host="127.0.0.1", port=controller.port, connections=1,
                                           security=security, timeout=5))
    try:
        handed = send(pool, envelopes(1))
    finally:
        pool.close()
        controller.stop()
    assert handed[0].result is Result.TRANSPORT and "server certificate not trusted" in handed[0].detail
    assert handler.messages == []


def test_smtp_dropped_connection_is_closed():
    QuitCounting.quits = 0
    handler = QuitCounting()
    handler.rcpt_replies["r0@paper.example.com"] = "421 closing"
    controller = _start_sink(handler)
    pool = smtp.SmtpPool(smtp.SmtpSettings(host="127.0.0.1", port=controller.port, connections=1))
    try:
        send(pool, envelopes(1))
        deadline = time.monotonic() + 5
        while QuitCounting.quits < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert QuitCounting.quits == 1
    finally:
        pool.close()
        controller.stop()


@pytest.mark.parametrize("address, expected", [
    ("ana@paper.example.com", ("ana@paper.example.com", False)),
    ("jo@bücher.example", ("jo@xn--bcher-kva.example", False)),
    ("jö@bücher.example", ("jö@xn--bcher-kva.example", True)),
    ("jö@plain.example", ("jö@plain.example", True)),
    ("jo@straße.example", ("jo@xn--strae-oqa.example", False)),  # IDNA 2008, not 2003's "strasse"
])
def test_mail_address_puts_domains_in_ascii_and_says_when_smtputf8_is_needed(address, expected):
    from distributor.transports.base import mail_address
    assert mail_address(address) == expected


def test_mail_address_without_an_at_sign_is_an_error():
    from distributor.transports.base import mail_address
    with pytest.raises(ValueError):
        mail_address("jö-at-nowhere")


def test_a_shared_body_takes_each_messages_token_wherever_a_soft_line_break_cuts_its_placeholder():
    import email as email_module
    from email.message import EmailMessage
    from email.policy import SMTP

    from distributor.transports.base import SharedBody

    placeholder, token = "PORTALLINKPLACEHOLDER_0123456789", b"abcdefghijklmnopqrstuvwxyz-_0123"
    for pad in range(0, 80, 7):  # the placeholder at every place of a quoted-printable line
        text = ("x" * pad + f" https://press.example.org/j/{placeholder}\n") * 2 + "." + placeholder + "\n"
        message = EmailMessage(policy=SMTP)
        message.set_content(text, subtype="plain", charset="utf-8", cte="quoted-printable")
        message.add_alternative(f'<a href="https://p/j/{placeholder}">{"y" * pad}</a>', subtype="html",
                                charset="utf-8", cte="quoted-printable")
        own = SharedBody(message.as_bytes(policy=SMTP), placeholder.encode()).personal(token)
        parts = [p.get_content() for p in email_module.message_from_bytes(own.raw, policy=SMTP).walk()
                 if p.get_content_type().startswith("text/")]
        assert [part.count(token.decode()) for part in parts] == [3, 1], pad
        assert all(placeholder not in part for part in parts)
        assert own.stuffed == own.raw.replace(b"\r\n.", b"\r\n..")  # the SMTP form carries the same token
    plain = SharedBody(b"Subject: x\r\n\r\nno placeholder here\r\n", placeholder.encode())
    assert plain.placeholder is None and plain.personal(token) is plain
