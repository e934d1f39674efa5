"""SMTP with a small pool of persistent connections.

Per message: MAIL FROM, RCPT TO, DATA, with the reply codes read one by one, so that a refused recipient is
never counted as sent. A session-level failure (refused login, refused MAIL FROM, relay down) is a transport
fault for the messages it touched, not a failure of each recipient.
"""

from __future__ import annotations

import logging
import queue
import smtplib
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from itertools import chain
from pathlib import Path

from distributor.config import secret
from distributor.outcomes import Receipt, Result
from distributor.transports.base import Envelope, Handed, Handover, RateLimit

log = logging.getLogger("distributor.smtp")
IDLE_CHECK_SECONDS = 5.0


@dataclass(frozen=True)
class SmtpSettings:
    host: str = "localhost"
    port: int = 25
    security: str = "none"        # none | starttls | ssl
    username: str | None = None
    password_env: str | None = None
    connections: int = 4
    max_per_second: float | None = None
    timeout: float = 30.0
    ca_file: Path | None = None   # trust anchors for the server's certificate; None: the system trust store


class SessionFault(Exception):
    """The SMTP session cannot carry mail: every message it would carry is retried later."""


class Dropped(Exception):
    """The connection went away in the middle of a message."""


def _reply(code: int, text: bytes | str) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return f"{code} {' '.join(text.split())}"


class SmtpPool:
    def __init__(self, settings: SmtpSettings):
        self.settings = settings
        self.password = (secret(settings.password_env, "channels.email.smtp.password_env")
                         if settings.password_env else None)
        self._idle: queue.SimpleQueue[tuple[smtplib.SMTP, float]] = queue.SimpleQueue()
        self._rate = RateLimit(settings.max_per_second)
        self._executor: ThreadPoolExecutor | None = None

    # -- connections -----------------------------------------------------------------------------------------
    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        conn: smtplib.SMTP | None = None
        try:
            # Certificates and host names are always verified: against ca_file if set, else the system store.
            tls = (ssl.create_default_context(cafile=str(s.ca_file) if s.ca_file else None)
                   if s.security != "none" else None)
            if s.security == "ssl":
                conn = smtplib.SMTP_SSL(s.host, s.port, timeout=s.timeout, context=tls)
            else:
                conn = smtplib.SMTP(s.host, s.port, timeout=s.timeout)
            # the final dot of a message is a write of its own: it must not wait for the ACK of the rest
            assert conn.sock is not None  # connected above
            conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn.ehlo_or_helo_if_needed()
            if s.security == "starttls":
                conn.starttls(context=tls)
                conn.ehlo()
            if s.username:
                conn.login(s.username, self.password or "")
            conn.command_encoding = "utf-8"  # used only after SMTPUTF8 is offered and asked for
            return conn
        except (smtplib.SMTPException, OSError) as exc:
            if conn is not None:  # refused after it connected (STARTTLS, login): the socket is closed here
                conn.close()
            raise SessionFault(self._refusal(exc)) from None

    def _refusal(self, exc: smtplib.SMTPException | OSError) -> str:
        s = self.settings
        if isinstance(exc, smtplib.SMTPAuthenticationError):
            return f"login refused: {_reply(exc.smtp_code, exc.smtp_error)}"
        if isinstance(exc, smtplib.SMTPResponseException):
            return f"session refused: {_reply(exc.smtp_code, exc.smtp_error)}"
        if isinstance(exc, ssl.SSLCertVerificationError):
            return f"TLS with {s.host}:{s.port}: server certificate not trusted: {exc.verify_message or exc}"
        if isinstance(exc, ssl.SSLError):
            return f"TLS with {s.host}:{s.port} failed: {exc}"
        return f"cannot connect to {s.host}:{s.port}: {exc}"

    def _checkout(self) -> smtplib.SMTP:
        """An idle connection (checked with NOOP if it sat for a while), else a new one."""
        while True:
            try:
                conn, last_used = self._idle.get_nowait()
            except queue.Empty:
                return self._connect()
            if time.monotonic() - last_used < IDLE_CHECK_SECONDS:
                return conn
            try:
                if conn.noop()[0] == 250:
                    return conn
            except (smtplib.SMTPException, OSError):
                pass
            self._discard(conn)

    def _checkin(self, conn: smtplib.SMTP) -> None:
        self._idle.put((conn, time.monotonic()))

    @staticmethod
    def _discard(conn: smtplib.SMTP | None) -> None:
        if conn is None:
            return
        try:
            conn.quit()
        except (smtplib.SMTPException, OSError):
            conn.close()

    def open(self) -> None:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=self.settings.connections, thread_name_prefix="smtp")

    def close(self) -> None:
        while True:
            try:
                self._discard(self._idle.get_nowait()[0])
            except queue.Empty:
                break
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    # -- sending ---------------------------------------------------------------------------------------------
    def send_many(self, envelopes: Iterable[Envelope], handover: Handover) -> None:
        """Every lane takes the next envelope as soon as it is free, so the lanes finish together and a lane opens
        a connection only once it has a message for it. ``envelopes`` may be made as they are taken."""
        source = iter(envelopes)
        first = next(source, None)
        if first is None:
            return
        self.open()
        assert self._executor is not None
        shared = _Shared(chain([first], source), self.settings.connections)
        lanes = [self._executor.submit(self._lane, shared, handover) for _ in range(self.settings.connections)]
        wait(lanes)  # all of them, before any error is raised: no lane is still sending when this returns
        for lane in lanes:
            lane.result()

    def _lane(self, shared: _Shared, handover: Handover) -> None:
        """One connection's messages, in turn. The previous message's receipt is awaited before the next message's
        final dot, which is what makes the relay accept it."""
        conn: smtplib.SMTP | None = None
        previous: Receipt | None = None

        def recorded() -> None:
            if previous is not None and not previous.wait():
                raise SessionFault("the delivery record is unavailable; not sending more")

        while not (previous is not None and previous.stop):  # stopping: the rest go back unattempted
            envelope = shared.take()
            if envelope is None:
                break
            try:
                if conn is None:
                    conn = self._checkout()
                self._rate.wait()
                result, detail = self._send_one(conn, envelope, recorded)
                previous = handover(Handed(envelope.key, result, detail))
            except SessionFault as exc:
                fault = str(exc)
                log.warning("SMTP transport fault: %s", fault)
                self._discard(conn)
                conn = None
                previous = handover(Handed(envelope.key, Result.TRANSPORT, fault))
                if shared.give_up():  # the last lane standing: what no lane can send is a fault
                    while not previous.stop and (envelope := shared.take()) is not None:
                        previous = handover(Handed(envelope.key, Result.TRANSPORT, fault))
                break
            except Dropped as exc:
                self._discard(conn)
                conn = None
                previous = handover(Handed(envelope.key, Result.RETRY, str(exc)))
        if conn is not None:
            self._checkin(conn)
        if previous is not None:
            previous.wait()

    def _send_one(self, conn: smtplib.SMTP, envelope: Envelope, before_end: Callable[[], None]) -> tuple[Result, str | None]:
        if not _plain_address(envelope.recipient, envelope.smtputf8):
            return Result.FAILED, f"not a deliverable address: {envelope.recipient!r}"
        options = ""
        if envelope.smtputf8:
            if not conn.has_extn("smtputf8"):
                return Result.FAILED, "the relay does not offer SMTPUTF8, which this address needs"
            options = " SMTPUTF8"
        text: bytes | str
        try:
            if conn.does_esmtp and conn.has_extn("pipelining"):
                return self._pipelined(conn, envelope, options, before_end)
            code, text = conn.docmd("mail", f"FROM:<{envelope.sender}>{options}")
            if code == 421:
                raise Dropped(f"MAIL FROM: {_reply(code, text)}")
            if code != 250:
                self._reset(conn)
                raise SessionFault(f"MAIL FROM refused: {_reply(code, text)}")
            code, text = conn.docmd("rcpt", f"TO:<{envelope.recipient}>")
            if code == 421:
                raise Dropped(f"RCPT TO: {_reply(code, text)}")
            if code not in (250, 251):
                self._reset(conn)
                return _classify(code), f"RCPT TO: {_reply(code, text)}"
            code, text = conn.docmd("data")
            return self._content(conn, envelope, code, text, before_end)
        except (smtplib.SMTPServerDisconnected, smtplib.SMTPResponseException, OSError) as exc:
            raise Dropped(f"connection lost: {exc}") from None

    def _pipelined(self, conn: smtplib.SMTP, envelope: Envelope, options: str,
                   before_end: Callable[[], None]) -> tuple[Result, str | None]:
        """MAIL, RCPT and DATA in one group (RFC 2920), every reply checked; the content after 354, its final dot
        only after the previous message's receipt."""
        conn.send(f"MAIL FROM:<{envelope.sender}>{options}\r\nRCPT TO:<{envelope.recipient}>\r\nDATA\r\n"
                  .encode(conn.command_encoding))
        mail = conn.getreply()
        if mail[0] == 421:
            raise Dropped(f"MAIL FROM: {_reply(*mail)}")
        rcpt = conn.getreply()
        if rcpt[0] == 421:
            raise Dropped(f"RCPT TO: {_reply(*rcpt)}")
        code, text = conn.getreply()
        if mail[0] != 250 or rcpt[0] not in (250, 251):
            if code == 354:  # DATA accepted without a recipient: a lone dot ends it (RFC 2920 3.1)
                conn.send(b".\r\n")
                conn.getreply()
            self._reset(conn)
            if mail[0] != 250:
                raise SessionFault(f"MAIL FROM refused: {_reply(*mail)}")
            return _classify(rcpt[0]), f"RCPT TO: {_reply(*rcpt)}"
        return self._content(conn, envelope, code, text, before_end)

    def _content(self, conn: smtplib.SMTP, envelope: Envelope, code: int, text: bytes | str,
                 before_end: Callable[[], None]) -> tuple[Result, str | None]:
        """After the reply to DATA: the message, if the relay is ready for it, and its fate. The final dot goes
        only after ``before_end``: until then the relay holds an unfinished message, which it drops if the
        connection ends."""
        if code == 354:
            data = envelope.smtp_data()
            conn.send(data[:-3])
            try:
                before_end()
            except SessionFault:
                conn.close()  # in the middle of DATA: no QUIT can be said; closing drops the message
                raise
            conn.send(data[-3:])
            code, text = conn.getreply()
        if code == 250:
            return Result.SENT, None
        if code == 421:
            raise Dropped(f"DATA: {_reply(code, text)}")
        self._reset(conn)
        return _classify(code), f"DATA: {_reply(code, text)}"

    @staticmethod
    def _reset(conn: smtplib.SMTP) -> None:
        try:
            conn.rset()
        except (smtplib.SMTPException, OSError) as exc:
            raise Dropped(f"RSET failed: {exc}") from None


class _Shared:
    """The envelopes of one send, taken one at a time by whichever lane is free."""

    def __init__(self, envelopes: Iterator[Envelope], lanes: int):
        self._envelopes = envelopes
        self._lock = threading.Lock()
        self._lanes = lanes

    def take(self) -> Envelope | None:
        with self._lock:
            return next(self._envelopes, None)

    def give_up(self) -> bool:
        """A lane whose session failed takes no more; True for the last one."""
        with self._lock:
            self._lanes -= 1
            return self._lanes == 0


def _plain_address(address: str, utf8: bool = False) -> bool:
    """An address that can go in MAIL FROM / RCPT TO as it is: printable (ASCII unless SMTPUTF8), no brackets or
    spaces."""
    return (utf8 or address.isascii()) and address.isprintable() and not any(c in address for c in " <>")


def _classify(code: int) -> Result:
    return Result.RETRY if 400 <= code < 500 else Result.FAILED
