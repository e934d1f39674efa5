"""Bluesky: one post per account at the embargo instant, through the account's PDS (XRPC over HTTP).

A session is created once per account and refreshed when it expires; there is no log-in per post. Bluesky has no
idempotency key, so each post gets a deterministic record key: a TID made from the embargo instant and a clock id
derived from the statement revision and account. A retried create therefore targets the same record, and finding
the record already there counts as sent.

Up to 4 images go with a post (``app.bsky.embed.images``, each with its alt text and aspect ratio). Each is made
ready when the post is rendered, with no connection: the stripped copy from the media store, or, above Bluesky's
1,000,000 bytes a blob, that copy re-encoded as a JPEG (no metadata), stepping the quality and then the size down
until it fits. They are uploaded at delivery (``com.atproto.repo.uploadBlob``), after the lift, just before the post
that embeds them. A post without images carries a link card to the statement's page (``app.bsky.embed.external``).
"""

from __future__ import annotations

import hashlib
import io
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection

from distributor import deliveries
from distributor.channels.base import Channel, Job
from distributor.channels.social import (
    Picture,
    Post,
    accounts,
    count_graphemes,
    describe_pictures,
    fit,
    links,
    make_post,
    unique_names,
)
from distributor.config import Office, Table, secret, secure_url
from distributor.outcomes import Claimed, Kind, Outcome, Report, Result, Variant
from distributor.store import reading
from distributor.transports import http
from distributor.transports.file import JsonFolder

LIMIT = 300
COLLECTION = "app.bsky.feed.post"
TID_ALPHABET = "234567abcdefghijklmnopqrstuvwxyz"
BLOB_LIMIT = 1_000_000      # bytes of an image blob app.bsky.embed.images accepts
JPEG_QUALITIES = (90, 82, 74, 66, 58, 50)
SHRINK = 0.8                # each step down in size: 80 % of the edge before
UPLOAD_TIMEOUT = (5.0, 60.0)


@dataclass(frozen=True)
class Blob:
    """An image ready to upload: its bytes (never more than BLOB_LIMIT, no metadata), type and pixels, and the
    alt text it is embedded with."""

    name: str
    data: bytes
    content_type: str
    width: int
    height: int
    alt: str


def fitted(picture: Picture) -> Blob:
    """The picture as a blob Bluesky accepts: its stripped original when small enough, else that copy re-encoded
    as a JPEG, the quality stepped down first, then the size, until it fits. Pillow writes no metadata it is not
    given: the blob carries none."""
    original = picture.files[0]
    data = original.path.read_bytes()
    width, height = original.width or 1, original.height or 1
    if len(data) <= BLOB_LIMIT:
        return Blob(picture.name, data, original.content_type, width, height, picture.alt)
    from PIL import Image

    with Image.open(io.BytesIO(data)) as opened:
        opened.load()
        image: Image.Image = opened
        if image.mode in ("RGBA", "LA", "P"):  # transparency on white, as a JPEG cannot carry it
            rgba = image.convert("RGBA")
            image = Image.new("RGB", rgba.size, (255, 255, 255))
            image.paste(rgba, mask=rgba.getchannel("A"))
        elif image.mode != "RGB":
            image = image.convert("RGB")
        scaled = image
        while True:
            for quality in JPEG_QUALITIES:
                out = io.BytesIO()
                scaled.save(out, "JPEG", quality=quality, optimize=True)
                if out.tell() <= BLOB_LIMIT:
                    return Blob(_jpeg_name(picture.name), out.getvalue(), "image/jpeg", scaled.width, scaled.height,
                                picture.alt)
            edge = max(int(max(scaled.size) * SHRINK), 1)
            if edge >= max(scaled.size):
                raise ValueError(f"{picture.name} cannot be made smaller than {BLOB_LIMIT:,} bytes")
            scaled = image.copy()
            scaled.thumbnail((edge, edge), Image.Resampling.LANCZOS)


def _jpeg_name(name: str) -> str:
    return name.rpartition(".")[0] + ".jpg" if "." in name else f"{name}.jpg"


class BlueskyPost(Post):
    """A Bluesky post as rendered: the text, the pictures and their blobs, made ready before any upload."""

    def __init__(self, post: Post, blobs: tuple[Blob, ...]):
        super().__init__(post.text, post.pictures, post.problem, post.link)
        self.blobs = blobs


def embed_images(blobs: list[dict], made: tuple[Blob, ...]) -> dict:
    """``app.bsky.embed.images``: each uploaded blob with its alt text and aspect ratio."""
    return {"$type": "app.bsky.embed.images", "images": [
        {"image": blob, "alt": source.alt, "aspectRatio": {"width": source.width, "height": source.height}}
        for blob, source in zip(blobs, made, strict=True)]}


def embed_card(link: str, title: str, description: str) -> dict:
    """``app.bsky.embed.external``: a link card to the statement's page."""
    return {"$type": "app.bsky.embed.external", "external": {"uri": link, "title": title, "description": description}}


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

    def call(self, method: str, nsid: str, headers: dict[str, str] | None = None, **kwargs) -> http.Reply:
        failed = self.ensure()
        if failed is not None:
            return failed
        with self.lock:
            reply = self.client.send(method, self.url(nsid),
                                     headers={**(headers or {}), "Authorization": f"Bearer {self.access}"}, **kwargs)
            if _expired(reply):
                renewed = self.renew()
                if renewed.result is not Result.SENT:
                    return renewed
                reply = self.client.send(method, self.url(nsid),
                                         headers={**(headers or {}), "Authorization": f"Bearer {self.access}"},
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

    def render(self, job: Job, variant: Variant) -> BlueskyPost:
        """The text, and each picture as a blob Bluesky accepts (re-encoded here when too large: before the lift
        for a channel rendered ahead, and with no connection). Nothing is uploaded before delivery."""
        post = make_post(self.context.renderer, self.context.config, "bluesky", job)
        if post.problem:
            return BlueskyPost(post, ())
        try:
            blobs = tuple(fitted(picture) for picture in post.pictures)
        except (OSError, ValueError) as exc:
            return BlueskyPost(Post(post.text, post.pictures, f"cannot make an image ready: {exc}", post.link), ())
        return BlueskyPost(post, blobs)

    def record(self, job: Job, text: str) -> dict:
        record: dict[str, Any] = {"$type": COLLECTION, "text": text,
                  "createdAt": self.clock.now().isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                  "langs": [job.statement.language or self.context.config.office.language]}
        facets = link_facets(text)
        if facets:
            record["facets"] = facets
        return record

    def preview(self, job: Job, variant: Variant) -> str:
        post = self.render(job, variant)
        text = fit(post, job.statement.title, job.statement.first_sentence(), LIMIT, count_graphemes)
        card = f"no images: a link card to {post.link}"
        return (f"{text}\n\n[{count_graphemes(text)} of {LIMIT} graphemes as Bluesky counts them]\n"
                f"[{describe_pictures(post.pictures, card)}]\n"
                + "".join(f"[{blob.name} is re-encoded to fit Bluesky's {BLOB_LIMIT:,} bytes: {blob.width}×"
                          f"{blob.height}, {len(blob.data):,} bytes]\n"
                          for blob, picture in zip(post.blobs, post.pictures, strict=False)
                          if picture.files and len(blob.data) != picture.files[0].size)
                + (f"[{post.problem}]\n" if post.problem else ""))

    def deliver(self, job: Job, render: BlueskyPost, rows: list[Claimed], report: Report) -> None:
        posts, replies = self.earlier_posts(job, rows)
        blobs: tuple[Blob, ...] = getattr(render, "blobs", ())
        problem: str | None = getattr(render, "problem", None)
        link = getattr(render, "link", "") or self.context.renderer.office.public_link(job.statement_id)

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
            payload: dict[str, Any] = {"record": record}
            if job.kind is Kind.CORRECTION and job.notice is not None and original is not None:
                ref = reference(original)
                record["reply"] = {"root": ref, "parent": ref}
                key = tid(job.notice.at, f"{job.statement_id}/r{job.revision}/{job.tag}/{account.name}")
                record["embed"] = embed_card(link, job.statement.title, job.statement.first_sentence())
            else:
                key = tid(job.embargo, f"{job.statement_id}/r{job.revision}/{account.name}"
                          + (f"/{job.tag}" if job.tag else ""))
                if problem:  # never a post without the images it is to carry: it waits until they are back
                    return Outcome(row.id, Result.RETRY, problem)
                if blobs:  # uploaded by the transport, at delivery, then embedded
                    payload["images"] = blobs
                else:
                    record["embed"] = embed_card(link, job.statement.title, job.statement.first_sentence())
            payload["rkey"] = key
            return transport.post(row, payload)

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
        if row.attempts:  # before any upload: a record already there needs none
            existing = self.existing(rkey)
            if existing:
                return Outcome(row.id, Result.SENT, "already posted by an earlier attempt", remote_id=existing)
        made: tuple[Blob, ...] = payload.get("images") or ()
        if made:
            uploaded = []
            for blob in made:
                reply = session.call("POST", "com.atproto.repo.uploadBlob", headers={"Content-Type": blob.content_type},
                                     data=blob.data, timeout=UPLOAD_TIMEOUT)
                ref = reply.json().get("blob") if reply.result is Result.SENT else None
                if reply.result is not Result.SENT:
                    return Outcome(row.id, reply.result, f"upload of {blob.name}: {reply.detail}",
                                   retry_after=reply.retry_after)
                if not isinstance(ref, dict) or not isinstance(ref.get("ref"), dict):
                    return Outcome(row.id, Result.RETRY, f"upload of {blob.name}: the PDS answered without a blob")
                uploaded.append(ref)
            record = {**record, "embed": embed_images(uploaded, made)}
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


class BlueskyFile(JsonFolder):
    """The record as it would have been created; the images it would embed as their names, alt text and pixels."""

    def __init__(self, account: BlueskyAccount, clock):
        super().__init__(account.directory)

    def post(self, row: Claimed, payload: dict) -> Outcome:
        if "images" in payload:
            payload = {**payload, "images": [{"file": b.name, "alt": b.alt, "mimeType": b.content_type,
                                              "size": len(b.data), "aspectRatio": {"width": b.width, "height": b.height}}
                                             for b in payload["images"]]}
        return super().post(row, payload)


TRANSPORTS: dict[str, Callable[..., http.PostTransport]] = {
    "http": BlueskyHttp,
    "file": BlueskyFile,
}
