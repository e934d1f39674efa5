"""SMTP servers that go away in the middle of a message, against real aiosmtpd handlers on loopback.

A connection lost during DATA, or a 421 (service closing the channel) to RCPT or DATA, is a temporary fault of the
message being sent: that recipient is retried (never failed, never counted as sent), the others go out on a new
connection, and the retry carries the same Message-ID as the first attempt.
"""

import asyncio
import email
import email.policy
import hashlib
import json
from dataclasses import dataclass, field
from datetime import timedelta

import pytest
from sqlalchemy import select

from distributor import deliveries
from distributor.clock import FixedClock, utcnow
from distributor.store.schema import deliveries as deliveries_table
from tests.conftest import Sink, SinkHandler, _start_sink

EMAILS = [f"reporter{i}@outlet{i}.example.com" for i in range(1, 7)]
SID = "tro-01-001-2026"
REPLY_421 = "421 4.3.2 Service shutting down, closing channel"


def close_after_reply(server, reply: str) -> str:
    """Answer, then close the connection as a server does after 421 (the close runs once the reply is written)."""
    asyncio.get_running_loop().call_soon(server.transport.close)
    return reply


@dataclass
class FaultyHandler(SinkHandler):
    """Accepts mail, except that the first message it sees meets the fault."""

    fault: str = ""
    remaining: int = 1
    faulted: list[str] = field(default_factory=list)
    first_attempt: dict[str, bytes] = field(default_factory=dict)  # what arrived of the faulted message

    def take(self, address: str) -> bool:
        if self.remaining < 1:
            return False
        self.remaining -= 1
        self.faulted.append(address.lower())
        return True

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.fault == "421 to RCPT" and self.take(address):
            return close_after_reply(server, REPLY_421)
        return await super().handle_RCPT(server, session, envelope, address, rcpt_options)

    async def handle_DATA(self, server, session, envelope):
        if self.fault in ("drop in DATA", "421 to DATA") and self.take(envelope.rcpt_tos[0]):
            self.first_attempt[envelope.rcpt_tos[0].lower()] = envelope.original_content
            if self.fault == "drop in DATA":
                server.transport.close()  # the message is in, the final reply never comes
                return "250 never written: the connection is closed"
            return close_after_reply(server, REPLY_421)
        return await super().handle_DATA(server, session, envelope)


@pytest.fixture
def faulty_sink():
    controllers = []

    def start(fault: str) -> Sink:
        handler = FaultyHandler(fault=fault)
        controller = _start_sink(handler)
        controllers.append(controller)
        return Sink("127.0.0.1", controller.port, handler)
    yield start
    for controller in controllers:
        controller.stop()


def prepare(system, tmp_path, statement_file):
    csv = tmp_path / "r.csv"
    csv.write_text("email,name,embargo_ok\n" + "".join(f"{e},Reporter {i},yes\n" for i, e in enumerate(EMAILS)),
                   encoding="utf-8")
    assert system.cli("recipients", "import", csv, "--list", "embargo").code == 0
    assert system.cli("import", statement_file()).code == 0
    assert system.cli("approve", SID, "--by", "Maya").code == 0
    embargo = (system.clock.now() + timedelta(hours=2)).isoformat()
    result = system.cli("schedule", SID, "--embargo", embargo, "--send-embargoed-at", system.clock.now().isoformat())
    assert result.code == 0, result.err


def log(system) -> dict[str, dict]:
    return {r["target"]: r for r in json.loads(system.cli("log", SID, "--format", "json").out)}


def next_attempt(system, target: str):
    with system.engine.connect() as conn:
        return conn.execute(select(deliveries_table.c.next_attempt_at).where(
            deliveries_table.c.target == target)).scalar_one()


def message_id_of(raw: bytes) -> str:
    return email.message_from_bytes(raw, policy=email.policy.default)["Message-ID"]


@pytest.mark.parametrize("fault, reason", [
    ("drop in DATA", "connection lost: "),
    ("421 to RCPT", f"RCPT TO: {REPLY_421}"),
    ("421 to DATA", f"DATA: {REPLY_421}"),
])
def test_server_going_away_mid_message_retries_that_recipient_only(make_system, faulty_sink, tmp_path,
                                                                   statement_file, fault, reason):
    sink = faulty_sink(fault)
    clock = FixedClock(utcnow())
    system = make_system(clock=clock, transport="smtp", smtp_port=sink.port)  # two connections
    prepare(system, tmp_path, statement_file)
    system.dispatcher.advance()
    system.dispatcher.deliver("email")

    [hit] = sink.handler.faulted
    others = set(EMAILS) - {hit}
    rows = log(system)
    assert rows[hit]["status"] == "retrying"
    assert rows[hit]["error"].startswith(reason)  # the server's own word, not a failed RSET on a dead connection
    assert rows[hit]["sent_at"] is None and rows[hit]["remote_id"] is None
    assert {t: rows[t]["status"] for t in others} == dict.fromkeys(others, "sent")
    # The rest of the faulted connection's share went out on a new connection; nobody got two copies.
    assert sorted(m.rcpt_tos[0] for m in sink.messages) == sorted(others)

    clock.set(next_attempt(system, hit))  # the first retry is due
    system.dispatcher.deliver("email")
    rows = log(system)
    assert {t: r["status"] for t, r in rows.items()} == dict.fromkeys(EMAILS, "sent")
    assert rows[hit]["attempts"] == 2
    [retried] = [m for m in sink.messages if m.rcpt_tos == [hit]]
    assert len(sink.messages) == len(EMAILS)
    key = hashlib.sha256(f"{SID}/1/{hit}".encode()).hexdigest()[:24]
    assert message_id_of(retried.data) == rows[hit]["remote_id"] == f"<{SID}.r1.{key}@office.example.org>"
    if fault != "421 to RCPT":  # the first attempt's message reached the server before it went away
        assert message_id_of(retried.data) == message_id_of(sink.handler.first_attempt[hit])

    with system.engine.connect() as conn:
        history = {}
        for attempt in deliveries.attempt_rows(conn, SID):
            history.setdefault(attempt["target"], []).append(attempt["outcome"])
    assert history == {hit: ["retry", "sent"], **{t: ["sent"] for t in others}}
