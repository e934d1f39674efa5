"""HTTP with requests: one reading of what a response or a network error means, and the base of the HTTP channels'
transports.

    2xx                                    sent
    408, 429, 5xx                          retry (Retry-After honoured, in seconds or as an HTTP date)
    any other 4xx                          failed, with the response body kept
    connect or read timeout                transport fault
    refused, reset, name not resolved      transport fault
    any other connection failure           transport fault
    TLS handshake or certificate failure   transport fault (a rejected certificate says so in the detail)
    response cut off or undecodable        retry
    bad URL, too many redirects, other     failed

A transport fault (``Result.TRANSPORT``, as for an SMTP relay that is down) means the endpoint could not be
reached, spoken to securely, or heard from in time; it never said no to the item. The row is retried on the usual
schedule and never exhausts its attempts; a target that meets nothing but transport faults for
``delivery.alert_after_seconds`` raises an alert (``transport:<channel>:<target>``).

Network errors are told apart by exception type only, never by message text. Retry-After dates are read against
the caller's clock, never the wall clock.

A channel picks one transport per target when it is built: an :class:`HttpTransport` subclass for ``http``, or
:class:`distributor.transports.file.JsonFolder` for ``file``. Both have ``open``, ``close`` and
``post(row, payload) -> Outcome``.
"""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Protocol

import requests

from distributor import __version__
from distributor.clock import Clock
from distributor.errors import ConfigError
from distributor.outcomes import Claimed, Outcome, Result

TIMEOUT = (5.0, 20.0)  # connect, read
USER_AGENT = f"distributor/{__version__}"
BODY_KEPT = 500


class PostTransport(Protocol):
    """What a channel target posts through: ``http`` or ``file``, chosen once, when the channel is built."""

    def open(self) -> None: ...
    def close(self) -> None: ...
    def post(self, row: Claimed, payload: dict) -> Outcome: ...


@dataclass(frozen=True)
class Reply:
    result: Result
    detail: str | None
    retry_after: float | None = None
    response: requests.Response | None = None

    def json(self) -> dict:
        try:
            data = self.response.json() if self.response is not None else {}
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}


def session() -> requests.Session:
    s = requests.Session()
    s.headers["User-Agent"] = USER_AGENT
    return s


def retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a Retry-After header (delay-seconds or HTTP date, RFC 9110 10.2.3), from ``now``."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - now).total_seconds(), 0.0)


def classify(response: requests.Response, now: datetime) -> Reply:
    status = response.status_code
    body = " ".join(response.text.split())[:BODY_KEPT]
    detail = f"HTTP {status}: {body}" if body else f"HTTP {status}"
    if 200 <= status < 300:
        return Reply(Result.SENT, None, response=response)
    if status in (408, 429) or status >= 500:
        return Reply(Result.RETRY, detail, retry_after(response.headers.get("Retry-After"), now), response)
    return Reply(Result.FAILED, detail, response=response)


CONNECTION_CAUSES = (
    (ConnectionRefusedError, "connection refused"),
    (ConnectionResetError, "connection reset"),
    (ConnectionAbortedError, "connection aborted"),
    (socket.gaierror, "host name not resolved"),
)


def classify_error(exc: requests.RequestException) -> Reply:
    """A network error as a result, by its type and the types of its causes."""
    if isinstance(exc, requests.ConnectTimeout):
        return Reply(Result.TRANSPORT, "timeout: no connection in time")
    if isinstance(exc, requests.Timeout):
        return Reply(Result.TRANSPORT, "timeout: no reply in time")
    if isinstance(exc, requests.exceptions.SSLError):
        rejected = next((c for c in causes(exc) if isinstance(c, ssl.SSLCertVerificationError)), None)
        if rejected is not None:
            return Reply(Result.TRANSPORT, f"TLS certificate rejected: {rejected.verify_message or 'not trusted'}")
        return Reply(Result.TRANSPORT, "connection failed: TLS handshake failed")
    if isinstance(exc, requests.ConnectionError):
        for cause in causes(exc):
            for kind, words in CONNECTION_CAUSES:
                if isinstance(cause, kind):
                    return Reply(Result.TRANSPORT, f"connection failed: {words}")
        return Reply(Result.TRANSPORT, f"connection failed: {type(exc).__name__}")
    if isinstance(exc, (requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError)):
        return Reply(Result.RETRY, f"broken response: {type(exc).__name__}")
    return Reply(Result.FAILED, f"request failed: {type(exc).__name__}")


def causes(exc: BaseException) -> Iterator[BaseException]:
    """The exception and everything it wraps: causes, contexts, urllib3's ``reason`` and exception arguments."""
    seen: set[int] = set()
    stack = [exc]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        linked = (getattr(current, "reason", None), current.__cause__, current.__context__, *current.args)
        stack.extend(e for e in linked if isinstance(e, BaseException))


def send(s: requests.Session, method: str, url: str, clock: Clock, **kwargs) -> Reply:
    """One request, never raising for network trouble."""
    try:
        response = s.request(method, url, timeout=kwargs.pop("timeout", TIMEOUT), allow_redirects=False, **kwargs)
    except requests.RequestException as exc:
        return classify_error(exc)
    return classify(response, clock.now())


class Client:
    """A requests session made on first use (or by :meth:`open`); :meth:`close` closes it only if it was made."""

    def __init__(self, clock: Clock):
        self.clock = clock
        self._session: requests.Session | None = None
        self._lock = threading.Lock()

    def open(self) -> requests.Session:
        with self._lock:
            if self._session is None:
                self._session = session()
            return self._session

    def close(self) -> None:
        with self._lock:
            if self._session is not None:
                self._session.close()
                self._session = None

    @property
    def opened(self) -> bool:
        return self._session is not None

    def send(self, method: str, url: str, **kwargs) -> Reply:
        return send(self.open(), method, url, self.clock, **kwargs)


class HttpTransport:
    """Base of one target's ``http`` transport. Secrets are read and the session made by :meth:`open`, or on the
    first post if open() was never called; building the transport reads nothing."""

    def __init__(self, clock: Clock):
        self.client = Client(clock)
        self._ready = False
        self._lock = threading.Lock()

    def read_secrets(self) -> None:
        """Read this target's secrets from the environment; a missing one raises ConfigError naming its key."""

    def forget_secrets(self) -> None:
        """Drop what :meth:`read_secrets` read."""

    def open(self) -> None:
        with self._lock:
            if not self._ready:
                self.read_secrets()
                self.client.open()
                self._ready = True

    def close(self) -> None:
        with self._lock:
            self.client.close()
            if self._ready:
                self.forget_secrets()
                self._ready = False

    def post(self, row: Claimed, payload: dict) -> Outcome:
        try:
            self.open()
        except ConfigError as exc:  # reported on the row in one line; the row waits until the secret is set
            return Outcome(row.id, Result.TRANSPORT, str(exc))
        return self.send(row, payload)

    def send(self, row: Claimed, payload: dict) -> Outcome:
        raise NotImplementedError


def open_all(transports: Iterable[PostTransport]) -> None:
    """Open every transport, or none: if one fails, those already opened are closed again."""
    opened = []
    try:
        for transport in transports:
            transport.open()
            opened.append(transport)
    except BaseException:
        for transport in opened:
            transport.close()
        raise


def close_all(transports: Iterable[PostTransport]) -> None:
    for transport in transports:
        transport.close()
