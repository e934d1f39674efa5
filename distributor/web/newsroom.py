"""The newsroom's folder served at ``/news/``, without a login, in front of the staff's app (no session, no form).

Whether a statement's page may be shown is decided from the database's record of its release, under the embargo
guard's clock, never from whether a file exists: before the lift the answer is the 404 of an unknown id, byte for
byte. A retracted statement answers 410 with its notice. Pages may be kept by caches for five minutes.

A statement's photos and documents (``/news/<id>/media/<key>/<name>``) obey the same record: before the lift, and
after a retraction, any such address answers that same 404, whether or not a file is there. A file is sent with the
type its first bytes show (only a JPEG, PNG, WebP or PDF is ever sent), read from the disk as it is asked for.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.engine import Engine

from distributor.clock import Clock
from distributor.statements.model import StatementStatus as S
from distributor.store import reading
from distributor.store.schema import statements
from distributor.workers import database_clock

PREFIX = "/news"
ID = re.compile(r"[a-z0-9][a-z0-9-]{0,79}")
PAGE = re.compile(r"/page/([1-9][0-9]{0,5})/")
MEDIA = re.compile(r"/([a-z0-9][a-z0-9-]{0,79})/(media/[0-9a-f]{24}/[a-z0-9][a-z0-9-]{0,79}\.(?:jpg|png|webp|pdf))")
CHUNK = 1 << 16
FILES = {"/sitemap.xml": "application/xml", "/robots.txt": "text/plain; charset=utf-8",
         "/feed.atom": "application/atom+xml"}
NOT_FOUND = (b"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Not found</title></head>"
             b"<body><h1>Not found</h1><p>There is no page at this address.</p></body></html>\n")
SECURITY = [("X-Content-Type-Options", "nosniff"), ("Referrer-Policy", "strict-origin-when-cross-origin"),
            ("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; "
                                        "frame-ancestors 'none'; base-uri 'none'; form-action 'none'")]
CACHED = "public, max-age=300"
REMEMBER_SECONDS = 1.0  # a statement's state is read again after this: a lift shows within a second


class NewsroomSite:
    """WSGI: ``/news/...`` from the folder, everything else to ``app``."""

    def __init__(self, app: Callable, directory: Path, engine: Engine, clock: Clock):
        self.app = app
        self.directory = str(directory)
        self.engine = engine
        self.clock = clock
        self.database_clock = database_clock(engine)
        self.known: dict[str, tuple[float, str]] = {}   # id -> (until, state), read again after a second
        self.held: dict[str, tuple[float, bytes | None]] = {}  # file -> (until, its bytes), as long
        self.lock = threading.Lock()

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path != PREFIX and not path.startswith(PREFIX + "/"):
            return self.app(environ, start_response)
        head = environ.get("REQUEST_METHOD") == "HEAD"
        if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
            return self.answer(start_response, "405 Method Not Allowed", b"", [("Allow", "GET, HEAD")], head)
        rest = path[len(PREFIX):]
        if rest == "":
            return self.redirect(start_response, environ, "/")
        if rest == "/":
            return self.file(start_response, "index.html", "text/html; charset=utf-8", head)
        if rest in FILES:
            return self.file(start_response, rest[1:], FILES[rest], head)
        page = PAGE.fullmatch(rest)
        if page:
            return self.file(start_response, f"page/{page.group(1)}/index.html", "text/html; charset=utf-8", head)
        media = MEDIA.fullmatch(rest)
        if media:
            if self.state(media.group(1)) != S.RELEASED.value:
                return self.not_found(start_response, head)
            return self.media(start_response, f"{media.group(1)}/{media.group(2)}", head)
        name = rest.strip("/")
        if not ID.fullmatch(name):
            return self.not_found(start_response, head)
        if not rest.endswith("/"):
            return self.redirect(start_response, environ, f"/{name}/")  # for any id: says nothing of it
        state = self.state(name)
        target = f"{name}/index.html"
        if state == S.RELEASED.value:
            return self.file(start_response, target, "text/html; charset=utf-8", head)
        if state == S.RETRACTED.value:
            return self.file(start_response, target, "text/html; charset=utf-8", head, status="410 Gone")
        return self.not_found(start_response, head)

    def forget(self) -> None:
        """Read every state and file afresh at the next request."""
        with self.lock:
            self.known.clear()
            self.held.clear()

    # -- the record ------------------------------------------------------------------------------------------
    def state(self, statement_id: str) -> str | None:
        """"released" once the lift has passed on the guard's clock, "retracted" after a retraction, else None."""
        now = time.monotonic()
        with self.lock:
            found = self.known.get(statement_id)
        if found is not None and found[0] > now:
            return found[1] or None
        with reading(self.engine) as conn:
            row = conn.execute(select(statements.c.status, statements.c.embargo, statements.c.released_at).where(
                statements.c.id == statement_id)).first()
        state = ""
        if row is not None and row[2] is not None and row[0] in (S.RELEASED.value, S.RETRACTED.value):
            instant = self.clock.now()
            if self.database_clock is not None:
                instant = min(instant, self.database_clock.now())
            if row[1] is None or row[1] <= instant:
                state = row[0]
        with self.lock:
            if len(self.known) > 10_000:
                self.known.clear()
            self.known[statement_id] = (now + REMEMBER_SECONDS, state)
        return state or None

    # -- answers ---------------------------------------------------------------------------------------------
    def file(self, start_response, name: str, kind: str, head: bool, status: str = "200 OK") -> Iterable[bytes]:
        body = self.read(name)
        if body is None:  # not written (yet), or gone
            return self.not_found(start_response, head)
        return self.answer(start_response, status, body, [("Content-Type", kind), ("Cache-Control", CACHED)], head)

    def read(self, name: str) -> bytes | None:
        """A file of the site, held in memory for a second: under a rush, opening it for every request cost a
        third of the throughput. A rewrite shows within the second, as a change of state does."""
        now = time.monotonic()
        with self.lock:
            found = self.held.get(name)
        if found is not None and found[0] > now:
            return found[1]
        try:
            with open(f"{self.directory}/{name}", "rb") as handle:
                body: bytes | None = handle.read()
        except OSError:
            body = None
        with self.lock:
            if len(self.held) > 1_000:
                self.held.clear()
            self.held[name] = (now + REMEMBER_SECONDS, body)
        return body

    def media(self, start_response, name: str, head: bool) -> Iterable[bytes]:
        """A photo or document of a released statement, streamed from the disk (it may be large, so it is not held
        in memory), with the type its content shows."""
        try:
            handle = open(f"{self.directory}/{name}", "rb")  # closed by the answer's close()
        except OSError:
            return self.not_found(start_response, head)
        try:
            size = os.fstat(handle.fileno()).st_size
            kind = content_type(handle.read(16))
            handle.seek(0)
        except OSError:
            handle.close()
            return self.not_found(start_response, head)
        if kind is None:
            handle.close()
            return self.not_found(start_response, head)
        start_response("200 OK", [("Content-Type", kind), ("Cache-Control", CACHED), *SECURITY,
                                  ("Content-Length", str(size))])
        if head:
            handle.close()
            return []
        return Streamed(handle)

    def not_found(self, start_response, head: bool) -> Iterable[bytes]:
        return self.answer(start_response, "404 Not Found", NOT_FOUND,
                           [("Content-Type", "text/html; charset=utf-8"), ("Cache-Control", "no-store")], head)

    def redirect(self, start_response, environ: dict, to: str) -> Iterable[bytes]:
        location = environ.get("SCRIPT_NAME", "") + PREFIX + to
        return self.answer(start_response, "301 Moved Permanently", b"", [("Location", location),
                                                                        ("Cache-Control", CACHED)], False)

    @staticmethod
    def answer(start_response, status: str, body: bytes, headers: list[tuple[str, str]], head: bool
               ) -> Iterable[bytes]:
        start_response(status, [*headers, *SECURITY, ("Content-Length", str(len(body)))])
        return [] if head else [body]


def content_type(start: bytes) -> str | None:
    """The type of a media file from its first bytes; None for anything distributor never puts in the newsroom."""
    if start.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if start.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if start[:4] == b"RIFF" and start[8:12] == b"WEBP":
        return "image/webp"
    if start.startswith(b"%PDF-"):
        return "application/pdf"
    return None


class Streamed:
    """A file's bytes a chunk at a time; the server's ``close()`` closes the file, read to the end or not."""

    def __init__(self, handle):
        self.handle = handle

    def __iter__(self) -> Iterator[bytes]:
        while chunk := self.handle.read(CHUNK):
            yield chunk

    def close(self) -> None:
        self.handle.close()
