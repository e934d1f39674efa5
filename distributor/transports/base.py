"""What a mail transport takes and gives back."""

from __future__ import annotations

import os
import re
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import idna

from distributor.outcomes import Receipt, Result

_LINE_START_DOT = re.compile(rb"(?m)^\.")


def dot_stuffed(data: bytes) -> bytes:
    """SMTP DATA form of CRLF-ended lines (RFC 5321 4.5.2): a line that starts with "." gets another."""
    return _LINE_START_DOT.sub(b"..", data)


def mail_address(address: str) -> tuple[str, bool]:
    """The address as it goes in the envelope and the headers: an internationalised domain in its ASCII
    (punycode) form. True when the local part is not ASCII, so that only SMTPUTF8 can carry it."""
    if address.isascii():
        return address, False
    local, at, domain = address.rpartition("@")
    if not at:
        raise ValueError(f"not an email address: {address!r}")
    ascii_domain = domain if domain.isascii() else idna.encode(domain, uts46=True).decode("ascii")
    return f"{local}@{ascii_domain}", not local.isascii()


class SharedBody:
    """The bytes every recipient of one message shares; their SMTP form is made once, on first use.

    With a ``placeholder`` (ASCII letters, digits, ``-`` and ``_``), each place the body holds it (in quoted-printable
    a soft line break may cut it) is a slot: :meth:`personal` writes one recipient's token of the same length there,
    byte for byte, so that the body is encoded once and each message only copies it."""

    __slots__ = ("raw", "_stuffed", "placeholder", "_slots")

    def __init__(self, raw: bytes, placeholder: bytes | None = None) -> None:
        self.raw = raw
        self._stuffed: bytes | None = None
        self.placeholder = placeholder if placeholder and placeholder in raw.replace(b"=\r\n", b"") else None
        self._slots: dict[bool, list[tuple[int, int, int]]] = {}

    @property
    def stuffed(self) -> bytes:
        if self._stuffed is None:
            self._stuffed = dot_stuffed(self.raw)
        return self._stuffed

    def slots(self, stuffed: bool) -> list[tuple[int, int, int]]:
        """Where the placeholder's bytes are, in the raw or the stuffed form: runs of (offset, index into the
        token, length), one per occurrence unless a soft line break cuts it."""
        found = self._slots.get(stuffed)
        if found is None:
            assert self.placeholder is not None
            data = self.stuffed if stuffed else self.raw
            pattern = rb"(?:=\r\n)?".join(re.escape(bytes([b])) for b in self.placeholder)
            found = []
            for match in re.finditer(pattern, data):
                offset, index = match.start(), 0
                for part in match.group().split(b"=\r\n"):
                    found.append((offset, index, len(part)))
                    offset += len(part) + 3
                    index += len(part)
            self._slots[stuffed] = found
        return found

    def personal(self, token: bytes) -> SharedBody:
        """This body with ``token`` in every slot; itself when it has none."""
        if self.placeholder is None:
            return self
        if len(token) != len(self.placeholder):
            raise ValueError("a token must be as long as the placeholder it replaces")
        own = SharedBody(_filled(self.raw, self.slots(False), token))
        own._stuffed = _filled(self.stuffed, self.slots(True), token)
        return own


def _filled(template: bytes, slots: list[tuple[int, int, int]], token: bytes) -> bytes:
    data = bytearray(template)
    for offset, index, length in slots:
        data[offset:offset + length] = token[index:index + length]
    return bytes(data)


NO_BODY = SharedBody(b"")


@dataclass(frozen=True)
class Envelope:
    key: int              # the delivery row
    sender: str
    recipient: str
    data: bytes           # this recipient's own part: whole lines, CRLF line ends (all of it without ``body``)
    message_id: str
    body: SharedBody = NO_BODY  # what follows ``data``, the same for every recipient
    smtputf8: bool = False      # the address has a non-ASCII local part: only a relay offering SMTPUTF8 takes it

    @property
    def message(self) -> bytes:
        return self.data + self.body.raw

    def smtp_data(self) -> bytes:
        """The message as DATA sends it: dot-stuffed, ended by CRLF "." CRLF."""
        stuffed = dot_stuffed(self.data) + self.body.stuffed
        return stuffed + (b".\r\n" if stuffed.endswith(b"\r\n") else b"\r\n.\r\n")


@dataclass(frozen=True)
class Handed:
    """What happened to one envelope."""

    key: int
    result: Result
    detail: str | None = None


# Called with each envelope's fate as soon as it is known; the receipt says when it is recorded.
Handover = Callable[[Handed], Receipt]


class MailTransport(Protocol):
    def open(self) -> None: ...
    def close(self) -> None: ...

    def send_many(self, envelopes: Iterable[Envelope], handover: Handover) -> None:
        """Send each envelope, calling ``handover`` with its fate. Before letting the relay accept a further
        message on the same connection, wait for the previous one's receipt: at most one accepted message per
        connection is ever unrecorded. Once a receipt says stop, take no more envelopes."""


class RateLimit:
    """At most ``per_second`` events a second across threads; None means no limit."""

    def __init__(self, per_second: float | None):
        self.interval = 1.0 / per_second if per_second else 0.0
        self._next = time.monotonic()
        self._lock = threading.Lock()

    def wait(self) -> None:
        if not self.interval:
            return
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + self.interval
        if start > now:
            time.sleep(start - now)


PUBLIC = 0o644  # a file any web server may read: the newsroom's pages, the feed


def write_atomically(path: Path, data: bytes, mode: int | None = None) -> None:
    """Write, then rename: readers see the old file or the new one, never half of one. Without ``mode`` the file is
    its writer's alone (0600, as the temporary file is made); ``PUBLIC`` for what a web server serves."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        if mode is not None:
            os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
