"""Mastodon: one public status per account at the embargo instant.

POST /api/v1/statuses with an Idempotency-Key, so that a retried request cannot post twice. The length limit is
read from the instance (GET /api/v2/instance) once it answers, falling back to 500; text is counted as Mastodon counts it.

Up to 4 images go with the status. They are uploaded at delivery, never when the post is rendered (which may be
before the lift): each with POST /api/v2/media (multipart: ``file``, ``description`` = the alt text), then, if the
instance answered 202, polled with GET /api/v1/media/:id until processed (206: not yet), backing off, for at most
``PROCESSING_WAIT`` seconds. The status names them in ``media_ids``. A correction edits the status with the
corrected revision's images: the ones it shows are kept (and their alt text updated) when the images are the same,
new ones are uploaded when they changed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from sqlalchemy import Connection, select

from distributor import deliveries
from distributor.channels.base import Channel, Job, idempotency_key
from distributor.channels.social import (
    Picture,
    Post,
    accounts,
    count_mastodon,
    describe_pictures,
    fit,
    images,
    links,
    make_post,
    shorten,
    unique_names,
)
from distributor.config import Office, Table, secret, secure_url
from distributor.media import Rendition
from distributor.outcomes import Claimed, Kind, Outcome, Report, Result, Variant
from distributor.statements.model import Media, Statement
from distributor.store import reading
from distributor.store.schema import deliveries as delivery_rows
from distributor.store.schema import revisions
from distributor.transports import http
from distributor.transports.file import JsonFolder

DEFAULT_LIMIT = 500
DEFAULT_URL_LENGTH = 23
# what an instance that does not say accepts (Mastodon 3.x's limits; 4.x says its own in /api/v2/instance)
DEFAULT_IMAGE_BYTES = 10_485_760
DEFAULT_IMAGE_PIXELS = 16_777_216
DEFAULT_DESCRIPTION = 1500
DEFAULT_ATTACHMENTS = 4
PROCESSING_WAIT = 30.0   # seconds an upload may take to be processed; then the row is retried, polling it again
POLL_FIRST = 0.1         # seconds before the first look at an upload being processed, doubled each time
POLL_MOST = 2.0          # and never more than this between two looks
UPLOAD_TIMEOUT = (5.0, 60.0)
UPLOAD_KEPT = 3600.0     # an upload is reused by a retry for an hour (Mastodon removes unattached media after a day)


@dataclass(frozen=True)
class MastodonAccount:
    name: str
    base_url: str
    token_env: str | None
    transport: str
    directory: Path
    visibility: str


class MastodonChannel(Channel):
    name = "mastodon"
    public = True
    ahead = True  # renders from the job alone: claimed a moment early, sent at the instant
    faults_per_target = True  # each account is reached on its own: its transport faults are alerted per account

    @classmethod
    def configure(cls, channels: Table, office: Office) -> tuple[MastodonAccount, ...] | None:
        tables = accounts(channels, "mastodon")
        unique_names(tables, "social account")
        found = []
        for t in tables:
            transport = t.get("transport", str, "http", choices=tuple(TRANSPORTS))
            online = transport == "http"
            found.append(MastodonAccount(
                name=t.get("name"),
                base_url=(t.get("base_url", check=secure_url) if online else t.get("base_url", str, "")).rstrip("/"),
                token_env=t.get("token_env") if online else t.get("token_env", str, None),
                transport=transport,
                directory=t.path("directory", "../outbox/mastodon"),
                visibility=t.get("visibility", str, "public", choices=("public", "unlisted")),
            ))
            t.done()
        return tuple(found) or None

    def __init__(self, settings: tuple[MastodonAccount, ...], context):
        super().__init__(settings, context)
        self.accounts = {a.name: a for a in settings}
        self.transports = {a.name: TRANSPORTS[a.transport](a, self.clock) for a in settings}

    def open(self) -> None:
        http.open_all(self.transports.values())

    def close(self) -> None:
        http.close_all(self.transports.values())

    def targets(self, conn: Connection, job: Job) -> Iterable[str]:
        return list(self.accounts)

    def render(self, job: Job, variant: Variant) -> Post:
        """The text and the pictures, read from the media store; nothing is uploaded before delivery."""
        return make_post(self.context.renderer, self.context.config, "mastodon", job)

    @staticmethod
    def text(job: Job, render, limit: int, url_length: int) -> str:
        return fit(render, job.statement.title, job.statement.first_sentence(), limit,
                   partial(count_mastodon, url_length=url_length))

    def preview(self, job: Job, variant: Variant) -> str:
        post = self.render(job, variant)
        text = self.text(job, post, DEFAULT_LIMIT, DEFAULT_URL_LENGTH)
        length = count_mastodon(text, DEFAULT_URL_LENGTH)
        return (f"{text}\n\n[{length} of {DEFAULT_LIMIT} characters as Mastodon counts them, a link as "
                f"{DEFAULT_URL_LENGTH}]\n[{describe_pictures(post.pictures)}]\n"
                + (f"[{post.problem}]\n" if post.problem else ""))

    def deliver(self, job: Job, render: Post, rows: list[Claimed], report: Report) -> None:
        statement = job.statement
        posted = self.first_posts(job, rows)
        shown = self.shown_images(job, rows)
        found = getattr(render, "pictures", ())
        problem = getattr(render, "problem", None)

        def handle(row: Claimed) -> Outcome:
            account = self.accounts.get(row.target)
            if account is None:
                return Outcome(row.id, Result.FAILED, f"account {row.target!r} is no longer configured")
            transport = self.transports[account.name]
            status = posted.get(row.target)
            if job.kind is not Kind.STATEMENT and status is None:
                return Outcome(row.id, Result.FAILED, f"no status of {job.statement_id} on {account.name} to "
                                                      f"{'delete' if job.kind is Kind.RETRACTION else 'edit'}")
            if job.kind is Kind.RETRACTION:
                return transport.post(row, {"action": "delete", "id": status})
            limit, url_length = transport.limits()
            try:
                text = self.text(job, render, limit, url_length)
            except ValueError as exc:
                return Outcome(row.id, Result.FAILED, str(exc))
            language = (statement.language or self.context.config.office.language)[:2]
            if job.kind is Kind.CORRECTION:  # Mastodon edits a status in place (PUT /api/v1/statuses/:id)
                edit: dict[str, object] = {"action": "edit", "id": status, "status": text, "language": language}
                before = shown.get(row.target, ())
                if before or found:  # an edit without media_ids would drop the status's images
                    if [item.sha256 for item in before] == [p.item.sha256 for p in found]:
                        edit["keep_media"] = [p.alt for p in found]  # the same images: kept, their alt text updated
                    elif problem:
                        return Outcome(row.id, Result.RETRY, problem)
                    else:
                        edit["media"] = found  # other images: uploaded, and they replace those it shows
                return transport.post(row, edit)
            if problem:  # never a post without the images it is to carry: it waits until they are back
                return Outcome(row.id, Result.RETRY, problem)
            body: dict[str, object] = {"status": text, "visibility": account.visibility, "language": language}
            if found:
                body["media"] = found
            return transport.post(row, body)

        self.each_target(rows, report, handle)


    def first_posts(self, job: Job, rows: list[Claimed]) -> dict[str, str]:
        """Account → id of the status a correction edits or a retraction deletes."""
        if job.kind is Kind.STATEMENT:
            return {}
        with reading(self.context.engine) as conn:
            found = deliveries.first_copies(conn, job.statement_id, self.name, [r.target for r in rows],
                                            job.generation)
        return {target: remote.split()[0] for target, remote in found.items()}

    def shown_images(self, job: Job, rows: list[Claimed]) -> dict[str, tuple[Media, ...]]:
        """Account → the images its status shows now, for a correction: those of the revision of its latest post or
        edit sent in this schedule."""
        if job.kind is not Kind.CORRECTION:
            return {}
        d = delivery_rows.c
        with reading(self.context.engine) as conn:
            latest: dict[str, int] = {}
            for sent in conn.execute(select(d.target, d.revision).where(
                    d.statement_id == job.statement_id, d.channel == self.name, d.target.in_([r.target for r in rows]),
                    d.status == deliveries.DeliveryStatus.SENT.value, d.generation == job.generation,
                    d.kind.in_((Kind.STATEMENT.value, Kind.CORRECTION.value))).order_by(d.sent_at, d.id)):
                latest[str(sent.target)] = int(sent.revision)  # the latest wins
            contents = {found.number: Statement.from_dict(found.content) for found in conn.execute(
                select(revisions.c.number, revisions.c.content).where(
                    revisions.c.statement_id == job.statement_id, revisions.c.number.in_(set(latest.values()))))}
        return {target: images(contents[number]) for target, number in latest.items() if number in contents}


IDEMPOTENCY_SECONDS = 3600  # how long Mastodon remembers an Idempotency-Key


@dataclass(frozen=True)
class MediaLimits:
    """What the instance accepts of an image (``configuration.media_attachments``) and how many a status carries."""

    image_bytes: int = DEFAULT_IMAGE_BYTES
    image_pixels: int = DEFAULT_IMAGE_PIXELS
    description: int = DEFAULT_DESCRIPTION
    attachments: int = DEFAULT_ATTACHMENTS


def choose(picture: Picture, limits: MediaLimits) -> Rendition:
    """The largest stripped copy the instance accepts: the original, else ``large``, ``medium``, ``thumb``."""
    for file in picture.files:
        if file.size <= limits.image_bytes and (file.width or 0) * (file.height or 0) <= limits.image_pixels:
            return file
    return picture.files[-1]


@dataclass
class Upload:
    """A media attachment this transport uploaded and has not yet seen attached to a status."""

    id: str
    ready: bool    # processed: the instance gave it a URL
    at: float      # time.monotonic() of the upload


class MastodonHttp(http.HttpTransport):
    """POST /api/v1/statuses with the account's bearer token and an Idempotency-Key; PUT to edit, DELETE to
    retract. A retry of a post later than Mastodon remembers the key first looks for the status it may have made.

    Images are uploaded first (POST /api/v2/media), waited for until processed, then named in ``media_ids``. An
    upload is kept until a status carries it: a retry of the post reuses it instead of uploading it again, and a
    retry of a post with images first looks for the status an earlier attempt may have made."""

    def __init__(self, account: MastodonAccount, clock):
        super().__init__(clock)
        self.account = account
        self.token: str | None = None
        self._configuration: dict | None = None
        self._uploads: dict[tuple[str, str, str], Upload] = {}
        self._uploads_lock = threading.Lock()

    def read_secrets(self) -> None:
        assert self.account.token_env is not None  # required for the http transport
        self.token = secret(self.account.token_env, f"channels.social ({self.account.name}).token_env")

    def forget_secrets(self) -> None:
        self.token = None

    def configuration(self) -> dict:
        """The instance's ``configuration``; kept for the run once the instance answered, asked again after a
        network fault. A 404 (an instance without /api/v2/instance) is an answer: the defaults for the run."""
        if self._configuration is not None:
            return self._configuration
        reply = self.client.send("GET", f"{self.account.base_url}/api/v2/instance", timeout=(3.0, 5.0))
        found = reply.json().get("configuration", {}) if reply.result is Result.SENT else {}
        found = found if isinstance(found, dict) else {}
        if reply.result not in (Result.RETRY, Result.TRANSPORT):  # a network fault is asked again next time
            self._configuration = found
        return found

    def limits(self) -> tuple[int, int]:
        """(max characters, characters per URL) from the instance."""
        statuses = _table(self.configuration(), "statuses")
        return (_positive_int(statuses.get("max_characters"), DEFAULT_LIMIT),
                _positive_int(statuses.get("characters_reserved_per_url"), DEFAULT_URL_LENGTH))

    def media_limits(self) -> MediaLimits:
        configuration = self.configuration()
        media, statuses = _table(configuration, "media_attachments"), _table(configuration, "statuses")
        return MediaLimits(_positive_int(media.get("image_size_limit"), DEFAULT_IMAGE_BYTES),
                           _positive_int(media.get("image_matrix_limit"), DEFAULT_IMAGE_PIXELS),
                           _positive_int(media.get("description_limit"), DEFAULT_DESCRIPTION),
                           min(_positive_int(statuses.get("max_media_attachments"), DEFAULT_ATTACHMENTS),
                               DEFAULT_ATTACHMENTS))

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def send(self, row: Claimed, payload: dict) -> Outcome:
        payload = dict(payload)
        found: tuple[Picture, ...] | None = payload.pop("media", None)
        action = payload.get("action")
        if action is not None:
            return self.change(row, payload, found)
        if row.attempts and (found or (self.client.clock.now() - row.due_at).total_seconds() > IDEMPOTENCY_SECONDS):
            existing = self.find(payload["status"])  # before any upload: a status already there needs none
            if existing:
                return Outcome(row.id, Result.SENT, "already posted by an earlier attempt", remote_id=existing)
        keys: list[tuple[str, str, str]] = []
        if found:
            attached = self.attach(row, found)
            if isinstance(attached, Outcome):
                return attached
            payload["media_ids"], keys = attached
        reply = self.client.send("POST", f"{self.account.base_url}/api/v1/statuses", json=payload, headers={
            **self.auth, "Idempotency-Key": idempotency_key(row, self.account.name)})
        self.settle(keys, reply)
        remote = None
        if reply.result is Result.SENT:
            data = reply.json()
            remote = " ".join(str(data[k]) for k in ("id", "url") if data.get(k)) or None
        return Outcome(row.id, reply.result, reply.detail, remote_id=remote, retry_after=reply.retry_after)

    def change(self, row: Claimed, payload: dict, found: tuple[Picture, ...] | None) -> Outcome:
        """Delete the status, or edit it: its text, and its images when they are the edit's to set."""
        url = f"{self.account.base_url}/api/v1/statuses/{payload['id']}"
        if payload["action"] == "delete":
            reply = self.client.send("DELETE", url, headers=self.auth)
            if reply.response is not None and reply.response.status_code == 404:
                return Outcome(row.id, Result.SENT, "already deleted", remote_id=payload["id"])
            return Outcome(row.id, reply.result, reply.detail, remote_id=payload["id"] if reply.result is
                           Result.SENT else None, retry_after=reply.retry_after)
        body: dict = {"status": payload["status"], "language": payload["language"]}
        keys: list[tuple[str, str, str]] = []
        if found is not None:  # other images: uploaded, and they replace those the status shows
            attached = self.attach(row, found)
            if isinstance(attached, Outcome):
                return attached
            body["media_ids"], keys = attached
        elif payload.get("keep_media") is not None:  # the same images: kept, as the status carries them
            kept = self.kept(row, url, payload["keep_media"])
            if isinstance(kept, Outcome):
                return kept
            body.update(kept)
        reply = self.client.send("PUT", url, headers=self.auth, json=body)
        self.settle(keys, reply)
        return Outcome(row.id, reply.result, reply.detail, remote_id=payload["id"] if reply.result is
                       Result.SENT else None, retry_after=reply.retry_after)

    def kept(self, row: Claimed, url: str, alts: list[str]) -> dict | Outcome:
        """``media_ids`` of the images the status carries, in its order, and ``media_attributes`` for those whose
        alt text the correction changes: an edit that did not name them would drop them."""
        reply = self.client.send("GET", url, headers=self.auth)
        if reply.result is not Result.SENT:
            return Outcome(row.id, reply.result, f"reading the status: {reply.detail}", retry_after=reply.retry_after)
        attachments = [a for a in reply.json().get("media_attachments") or [] if isinstance(a, dict) and a.get("id")]
        limit = self.media_limits().description
        changed = [{"id": str(a["id"]), "description": shorten(alt, limit)} for a, alt in zip(attachments, alts, strict=False)
                   if a.get("description") != shorten(alt, limit)]
        return {"media_ids": [str(a["id"]) for a in attachments], **({"media_attributes": changed} if changed else {})}

    # -- images ---------------------------------------------------------------------------------------------------
    def attach(self, row: Claimed, found: tuple[Picture, ...]) -> tuple[list[str], list[tuple[str, str, str]]] | Outcome:
        """Upload each picture (or reuse its upload by an earlier attempt) and wait until all are processed: their
        ids in order, and the keys of their uploads; or the outcome that stopped it."""
        limits = self.media_limits()
        ids, keys, waiting = [], [], {}
        for picture in found[:limits.attachments]:
            file = choose(picture, limits)
            description = shorten(picture.alt, limits.description)
            key = (picture.item.sha256, file.name, description)
            with self._uploads_lock:
                upload = self._uploads.get(key)
            if upload is None or time.monotonic() - upload.at > UPLOAD_KEPT:
                made = self.upload(row, picture, file, description)
                if isinstance(made, Outcome):
                    return made
                upload = made
                with self._uploads_lock:
                    self._uploads[key] = upload
            ids.append(upload.id)
            keys.append(key)
            if not upload.ready:
                waiting[upload.id] = key
        failed = self.processed(row, waiting)
        return failed if failed is not None else (ids, keys)

    def upload(self, row: Claimed, picture: Picture, file: Rendition, description: str) -> Upload | Outcome:
        """POST /api/v2/media: 200 when the instance processed it at once, 202 when it is processing it."""
        reply = self.client.send("POST", f"{self.account.base_url}/api/v2/media", headers=self.auth,
                                 files={"file": (picture.name, file.path.read_bytes(), file.content_type)},
                                 data={"description": description}, timeout=UPLOAD_TIMEOUT)
        if reply.result is not Result.SENT:
            return Outcome(row.id, reply.result, f"upload of {picture.name}: {reply.detail}",
                           retry_after=reply.retry_after)
        data = reply.json()
        if not data.get("id"):
            return Outcome(row.id, Result.RETRY, f"upload of {picture.name}: the instance answered without an id")
        assert reply.response is not None
        return Upload(str(data["id"]), reply.response.status_code == 200 and bool(data.get("url")), time.monotonic())

    def processed(self, row: Claimed, waiting: dict[str, tuple[str, str, str]]) -> Outcome | None:
        """Look at each upload being processed (GET /api/v1/media/:id: 206 while processing, 200 with its URL once
        done), waiting longer each time, for at most PROCESSING_WAIT seconds; None once all are processed."""
        deadline = time.monotonic() + PROCESSING_WAIT
        pause = POLL_FIRST
        while waiting:
            left = deadline - time.monotonic()
            if left <= 0:
                return Outcome(row.id, Result.RETRY, f"{len(waiting)} image(s) still being processed by the instance "
                                                     f"after {PROCESSING_WAIT:.0f} s")
            time.sleep(min(pause, left))
            pause = min(pause * 2, POLL_MOST)
            for media_id, key in list(waiting.items()):
                reply = self.client.send("GET", f"{self.account.base_url}/api/v1/media/{media_id}", headers=self.auth)
                status = reply.response.status_code if reply.response is not None else None
                if status == 200 and reply.json().get("url"):
                    del waiting[media_id]
                    with self._uploads_lock:
                        if key in self._uploads:
                            self._uploads[key].ready = True
                elif status == 206 or (status == 200 and reply.result is Result.SENT):
                    continue  # still processing
                elif status == 404:  # gone (removed on the instance): the retry uploads it afresh
                    self.forget([key])
                    return Outcome(row.id, Result.RETRY, f"upload {media_id} is no longer on the instance")
                else:
                    return Outcome(row.id, reply.result, f"processing of upload {media_id}: {reply.detail}",
                                   retry_after=reply.retry_after)
        return None

    def settle(self, keys: list[tuple[str, str, str]], reply: http.Reply) -> None:
        """After the status: its uploads are attached (or refused with it) and never reused; kept only for a retry."""
        if keys and reply.result in (Result.SENT, Result.FAILED):
            self.forget(keys)

    def forget(self, keys: list[tuple[str, str, str]]) -> None:
        with self._uploads_lock:
            for key in keys:
                self._uploads.pop(key, None)

    def find(self, text: str) -> str | None:
        """The account's recent status carrying this post's link, as "id url"; None if there is none."""
        urls = [url for _, _, url in links(text)]
        if not urls:
            return None
        me = self.client.send("GET", f"{self.account.base_url}/api/v1/accounts/verify_credentials", headers=self.auth)
        if me.result is not Result.SENT or not me.json().get("id"):
            return None
        reply = self.client.send("GET", f"{self.account.base_url}/api/v1/accounts/{me.json()['id']}/statuses",
                                 headers=self.auth, params={"limit": 40})
        statuses = reply.response.json() if reply.result is Result.SENT and reply.response is not None else []
        for status in statuses if isinstance(statuses, list) else []:
            if isinstance(status, dict) and urls[-1] in str(status.get("content", "")):
                return " ".join(str(status[k]) for k in ("id", "url") if status.get(k))
        return None


class MastodonFile(JsonFolder):
    """The status as it would have been posted, fitted to Mastodon's default limit; the images it would carry as
    their names and alt text."""

    def __init__(self, account: MastodonAccount, clock):
        super().__init__(account.directory)

    def limits(self) -> tuple[int, int]:
        return DEFAULT_LIMIT, DEFAULT_URL_LENGTH

    def post(self, row: Claimed, payload: dict) -> Outcome:
        if "media" in payload:
            payload = {**payload, "media": [{"file": p.name, "description": p.alt} for p in payload["media"]]}
        return super().post(row, payload)


TRANSPORTS: dict[str, type[MastodonHttp | MastodonFile]] = {"http": MastodonHttp, "file": MastodonFile}


def _table(data: dict, key: str) -> dict:
    found = data.get(key)
    return found if isinstance(found, dict) else {}


def _positive_int(value, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else default
