"""The newsroom's folder served at ``/news/``, without a login, in front of the staff's app (no session, no form).

Whether a statement's page may be shown is decided from the database's record of its release, under the embargo
guard's clock, never from whether a file exists: before the lift the answer is the 404 of an unknown id, byte for
byte. A retracted statement answers 410 with its notice. Pages may be kept by caches for five minutes.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterable
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
