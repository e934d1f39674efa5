"""Bluesky: one post per account at the embargo instant, through the account's PDS (XRPC over HTTP).

A session is created once per account and refreshed when it expires; there is no log-in per post. Bluesky has no
idempotency key, so each post gets a deterministic record key: a TID made from the embargo instant and a clock id
derived from the statement revision and account. A retried create therefore targets the same record, and finding
the record already there counts as sent.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection

from distributor import deliveries
from distributor.channels.base import Channel, Job
from distributor.channels.social import accounts, count_graphemes, fit, links, render_post, unique_names
from distributor.config import Office, Table, secret, secure_url
from distributor.outcomes import Claimed, Kind, Outcome, Report, Result, Variant
from distributor.store import reading
from distributor.transports import http
from distributor.transports.file import JsonFolder

LIMIT = 300
COLLECTION = "app.bsky.feed.post"
TID_ALPHABET = "234567abcdefghijklmnopqrstuvwxyz"


@dataclass(frozen=True)
class BlueskyAccount:
    name: str
    service: str
    handle: str
    password_env: str | None
    transport: str
    directory: Path


def tid(instant: datetime, seed: str) -> str:
    """A TID (13 base32-sortable characters): 53 bits of microseconds, then a 10-bit clock id from ``seed``."""
    micros = int(instant.timestamp() * 1_000_000)
    clock_id = int.from_bytes(hashlib.sha256(seed.encode()).digest()[:2], "big") & 0x3FF
    value = ((micros & ((1 << 53) - 1)) << 10) | clock_id
    return "".join(TID_ALPHABET[(value >> (5 * i)) & 31] for i in reversed(range(13)))


def link_facets(text: str) -> list[dict]:
    """Clickable links: each URL's position as UTF-8 byte offsets into the text."""
    facets = []
    for begin, _, url in links(text):
        start = len(text[:begin].encode("utf-8"))
        end = start + len(url.encode("utf-8"))
        facets.append({"index": {"byteStart": start, "byteEnd": end},
                       "features": [{"$type": "app.bsky.richtext.facet#link", "uri": url}]})
    return facets


class Session:
    """An XRPC session for one account: created once, refreshed when the access token expires."""

    def __init__(self, account: BlueskyAccount, password: str, client: http.Client):
        self.account = account
        self.password = password
        self.client = client
        self.access = self.refresh = self.did = None
        self.lock = threading.Lock()

    def url(self, nsid: str) -> str:
        return f"{self.account.service}/xrpc/{nsid}"

    def _store(self, reply: http.Reply) -> http.Reply:
        if reply.result is Result.SENT:
            data = reply.json()
            self.access, self.refresh, self.did = data.get("accessJwt"), data.get("refreshJwt"), data.get("did")
        return reply

    def login(self) -> http.Reply:
        return self._store(self.client.send("POST", self.url("com.atproto.server.createSession"),
                                            json={"identifier": self.account.handle, "password": self.password}))

    def renew(self) -> http.Reply:
        """Refresh the session; when the refresh token is refused too (expired, revoked), log in again."""
        reply = self._store(self.client.send("POST", self.url("com.atproto.server.refreshSession"),
                                             headers={"Authorization": f"Bearer {self.refresh}"}))
        return reply if reply.result is Result.SENT else self.login()

    def ensure(self) -> http.Reply | None:
        """Log in if there is no session yet; the failed reply if that did not work."""
        with self.lock:
            if self.access is None:
                reply = self.login()
                if reply.result is not Result.SENT:
                    return reply
        return None

    def call(self, method: str, nsid: str, **kwargs) -> http.Reply:
        failed = self.ensure()
        if failed is not None:
            return failed
        with self.lock:
            reply = self.client.send(method, self.url(nsid), headers={"Authorization": f"Bearer {self.access}"},
                                     **kwargs)
            if _expired(reply):
                renewed = self.renew()
                if renewed.result is not Result.SENT:
                    return renewed
                reply = self.client.send(method, self.url(nsid), headers={"Authorization": f"Bearer {self.access}"},
                                         **kwargs)
            return reply


def _expired(reply: http.Reply) -> bool:
    return reply.response is not None and reply.response.status_code in (400, 401) and \
        reply.json().get("error") in ("ExpiredToken", "InvalidToken")


def _conflict(reply: http.Reply) -> bool:
    if reply.response is None:
        return False
    error = str(reply.json().get("error", ""))
    return reply.response.status_code == 409 or "AlreadyExists" in error or error == "RecordExists"


class BlueskyChannel(Channel):
    name = "bluesky"
    public = True
    ahead = True  # renders from the job alone: claimed a moment early, sent at the instant
    faults_per_target = True  # each account is reached on its own: its transport faults are alerted per account

    @classmethod
    def configure(cls, channels: Table, office: Office) -> tuple[BlueskyAccount, ...] | None:
        tables = accounts(channels, "bluesky")
        unique_names(tables, "social account")
        found = []
        for t in tables:
            transport = t.get("transport", str, "http", choices=tuple(TRANSPORTS))
            online = transport == "http"
            found.append(BlueskyAccount(
                name=t.get("name"),
                service=(t.get("service", check=secure_url) if online else t.get("service", str, "")).rstrip("/"),
                handle=t.get("handle"),
                password_env=t.get("password_env") if online else t.get("password_env", str, None),
                transport=transport,
                directory=t.path("directory", "../outbox/bluesky"),
            ))
            t.done()
        return tuple(found) or None

    def __init__(self, settings: tuple[BlueskyAccount, ...], context):
        super().__init__(settings, context)
        self.accounts = {a.name: a for a in settings}
        self.transports = {a.name: TRANSPORTS[a.transport](a, self.clock) for a in settings}

    def open(self) -> None:
        http.open_all(self.transports.values())

    def close(self) -> None:
        http.close_all(self.transports.values())

    def targets(self, conn: Connection, job: Job) -> Iterable[str]:
        return list(self.accounts)

    def render(self, job: Job, variant: Variant):
        return render_post(self.context.renderer, "bluesky", job)

    def record(self, job: Job, text: str) -> dict:
        record: dict[str, Any] = {"$type": COLLECTION, "text": text,
                  "createdAt": self.clock.now().isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                  "langs": [job.statement.language or self.context.config.office.language]}
        facets = link_facets(text)
        if facets:
            record["facets"] = facets
        return record

    def preview(self, job: Job, variant: Variant) -> str:
        text = fit(self.render(job, variant), job.statement.title, job.statement.first_sentence(), LIMIT,
                   count_graphemes)
        return f"{text}\n\n[{count_graphemes(text)} of {LIMIT} graphemes as Bluesky counts them]\n"

    def deliver(self, job: Job, render, rows: list[Claimed], report: Report) -> None:
        posts, replies = self.earlier_posts(job, rows)

        def handle(row: Claimed) -> Outcome:
            account = self.accounts.get(row.target)
            if account is None:
                return Outcome(row.id, Result.FAILED, f"account {row.target!r} is no longer configured")
            original = posts.get(row.target)
            if job.kind is not Kind.STATEMENT and original is None:
                return Outcome(row.id, Result.FAILED, f"no post of {job.statement_id} on {account.name} to "
                                                      f"{'delete' if job.kind is Kind.RETRACTION else 'reply to'}")
            transport = self.transports[account.name]
            if job.kind is Kind.RETRACTION:  # the post and every correction reply under it
                keys = [record_key(remote) for remote in (original or "", *replies.get(row.target, []))]
                return transport.post(row, {"action": "delete", "rkeys": [k for k in keys if k]})
            title, summary = job.statement.title, job.statement.first_sentence()
            if job.kind is Kind.CORRECTION:  # Bluesky has no edit: a reply under the original post
                title = f"Correction: {title}"
                summary = (job.notice.note if job.notice and job.notice.note else "") or summary
            try:
                text = fit(render, title, summary, LIMIT, count_graphemes)
            except ValueError as exc:
                return Outcome(row.id, Result.FAILED, str(exc))
            assert job.embargo is not None  # public: delivered only after the lift
            record = self.record(job, text)
            if job.kind is Kind.CORRECTION and job.notice is not None and original is not None:
                ref = reference(original)
                record["reply"] = {"root": ref, "parent": ref}
                key = tid(job.notice.at, f"{job.statement_id}/r{job.revision}/{job.tag}/{account.name}")
            else:
                key = tid(job.embargo, f"{job.statement_id}/r{job.revision}/{account.name}"
                          + (f"/{job.tag}" if job.tag else ""))
            return transport.post(row, {"rkey": key, "record": record})

        self.each_target(rows, report, handle)

    def earlier_posts(self, job: Job, rows: list[Claimed]) -> tuple[dict[str, str], dict[str, list[str]]]:
        """Account → "uri cid" of the post a correction replies to or a retraction deletes; and → its replies."""
        if job.kind is Kind.STATEMENT:
            return {}, {}
        with reading(self.context.engine) as conn:
            posts = deliveries.first_copies(conn, job.statement_id, self.name, [r.target for r in rows],
                                            job.generation)
            replies = deliveries.sent_of_kind(conn, job.statement_id, self.name, Kind.CORRECTION)
        return posts, replies


def reference(remote: str) -> dict:
    """A strong reference ({uri, cid}) from a delivery's remote id ("uri cid")."""
    uri, _, cid = remote.partition(" ")
    return {"uri": uri, "cid": cid}


def record_key(remote: str) -> str | None:
    """The record key of a post from its remote id ("at://did/app.bsky.feed.post/<rkey> cid")."""
    uri = remote.split(" ")[0]
    return uri.rsplit("/", 1)[-1] if uri.startswith("at://") and f"/{COLLECTION}/" in uri else None


class BlueskyHttp(http.HttpTransport):
    """Creates the record through the account's session; a record already there from an earlier attempt is sent."""

    def __init__(self, account: BlueskyAccount, clock):
        super().__init__(clock)
        self.account = account
        self.session: Session | None = None

    def read_secrets(self) -> None:
        assert self.account.password_env is not None  # required for the http transport
        password = secret(self.account.password_env, f"channels.social ({self.account.name}).password_env")
        self.session = Session(self.account, password, self.client)

    def forget_secrets(self) -> None:
        self.session = None

    def send(self, row: Claimed, payload: dict) -> Outcome:
        session = self.session
        assert session is not None  # made by open(), which post() calls first
        failed = session.ensure()
        if failed is not None:
            return Outcome(row.id, failed.result, f"session: {failed.detail}", retry_after=failed.retry_after)
        if payload.get("action") == "delete":
            return self.delete(row, payload["rkeys"])
        rkey, record = payload["rkey"], payload["record"]
        if row.attempts:
            existing = self.existing(rkey)
            if existing:
                return Outcome(row.id, Result.SENT, "already posted by an earlier attempt", remote_id=existing)
        reply = session.call("POST", "com.atproto.repo.createRecord",
                             json={"repo": session.did, "collection": COLLECTION, "rkey": rkey, "record": record})
        if reply.result is Result.SENT:
            data = reply.json()
            return Outcome(row.id, Result.SENT, remote_id=f"{data.get('uri')} {data.get('cid')}")
        if _conflict(reply):
            existing = self.existing(rkey)
            return Outcome(row.id, Result.SENT, "record already existed (earlier attempt)",
                           remote_id=existing or f"at://{session.did}/{COLLECTION}/{rkey}")
        return Outcome(row.id, reply.result, reply.detail, retry_after=reply.retry_after)

    def delete(self, row: Claimed, rkeys: list[str]) -> Outcome:
        """Delete each record (deleting one that is gone already succeeds, as the PDS answers)."""
        session = self.session
        assert session is not None
        for key in rkeys:
            reply = session.call("POST", "com.atproto.repo.deleteRecord",
                                 json={"repo": session.did, "collection": COLLECTION, "rkey": key})
            if reply.result is not Result.SENT:
                return Outcome(row.id, reply.result, reply.detail, retry_after=reply.retry_after)
        return Outcome(row.id, Result.SENT, f"deleted {len(rkeys)} record(s)", remote_id=" ".join(rkeys) or None)

    def existing(self, rkey: str) -> str | None:
        session = self.session
        assert session is not None
        reply = session.call("GET", "com.atproto.repo.getRecord",
                             params={"repo": session.did or self.account.handle, "collection": COLLECTION,
                                     "rkey": rkey})
        if reply.result is Result.SENT:
            data = reply.json()
            return f"{data.get('uri')} {data.get('cid')}"
        return None


TRANSPORTS: dict[str, Callable[..., http.PostTransport]] = {
    "http": BlueskyHttp,
    "file": lambda account, clock: JsonFolder(account.directory),
}
