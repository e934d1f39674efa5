"""The wire: an IPTC ninjs 3.1 item pushed over HTTP to each configured endpoint at the embargo instant.

Where the press office's own identifiers go (documented for receivers):
  altIds[role=reference]  the reference as written, e.g. "Index: NHRN 12/004/2026"
  altIds[role=serial]     the serial as written, e.g. "News Service No. 118"
  altIds[role=statement]  distributor's statement id, e.g. "nhrn-12-004-2026"
  infoSources[role=originator].contactInfo   the press-office contact block

A statement's photos and documents are its ``associations``, one ninjs object each (with a newsroom only: their
files are served nowhere else):
  name, uri               the item's name in the statement; a tag URI of its own, under the statement's
  type                    "picture" for a photo, "text" for a document (a PDF)
  title                   a document's title
  descriptions            role "caption" and role "alt" (the alt text), text/plain
  copyrightHolder         the credit, e.g. "Photo: A. Reporter / NHRN"
  usageTerms              the licence, e.g. "CC BY 4.0"
  renditions              one per file in the newsroom: "original", then a photo's "large", "medium" and "thumb",
                          each with href, contentType, width and height (a photo's), sizeInBytes
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection

from distributor import media
from distributor.channels.base import Channel, Job, idempotency_key, tables_of
from distributor.channels.social import unique_names
from distributor.clock import iso_z
from distributor.config import Config, Office, Table, between, secret
from distributor.outcomes import Claimed, Kind, Outcome, Report, Result, Variant
from distributor.render import statement_uri
from distributor.transports import http
from distributor.transports.file import JsonFolder

SIGNATURE_HEADER = "X-Distributor-Signature"


@dataclass(frozen=True)
class WireEndpoint:
    name: str
    url: str
    format: str
    secret_env: str | None
    transport: str
    directory: Path
    urgency: int
    timeout: float


def associations(config: Config, job: Job) -> list[dict]:
    """One ninjs object per photo or document of the revision, its files as the newsroom serves them from the
    lift. Without a newsroom no URL serves them: the item then carries no associations. A retraction carries none
    either: the retraction takes the files down."""
    if job.kind is Kind.RETRACTION or config.channels.get("newsroom") is None:
        return []
    store = media.store_of(config)
    uri = statement_uri(config.office, job)
    found = []
    for item in job.statement.media:
        renditions = []
        for rendition in store.renditions(item):
            described: dict[str, Any] = {
                "name": rendition.name, "href": media.public_url(config, job.statement_id, item, rendition.name),
                "contentType": rendition.content_type}
            if rendition.width is not None and rendition.height is not None:
                described["width"], described["height"] = rendition.width, rendition.height
            described["sizeInBytes"] = rendition.size
            renditions.append(described)
        association: dict[str, Any] = {
            "name": item.name,
            "uri": f"{uri}/media/{media.public_key(job.statement_id, item)}",
            "type": "picture" if item.is_image else "text",
            "renditions": renditions,
        }
        if item.title:
            association["title"] = item.title
        descriptions = [{"role": role, "contentType": "text/plain", "value": value}
                        for role, value in (("caption", item.caption), ("alt", item.alt)) if value]
        if descriptions:
            association["descriptions"] = descriptions
        if item.credit:
            association["copyrightHolder"] = item.credit
        if item.licence:
            association["usageTerms"] = item.licence
        found.append(association)
    return found


def ninjs(job: Job, office: Office, text: str, html: str, associated: list[dict] | None = None) -> dict:
    s = job.statement
    item: dict[str, Any] = {
        "uri": statement_uri(office, job),
        "type": "text",
        "profile": "press-release",
        "version": str(job.notice.version if job.notice else 1),  # every publication: release, correction, retraction
        "versionCreated": iso_z(job.notice.at if job.notice else (job.version_created or job.embargo)),
        "firstCreated": iso_z(job.first_created or job.embargo),
        "contentCreated": iso_z(job.first_created or job.embargo),
        "pubStatus": "canceled" if job.kind is Kind.RETRACTION else "usable",
        "language": s.language or office.language,
        "headlines": [{"role": "main", "contentType": "text/plain", "value": s.title}],
        "bodies": [{"role": "main", "contentType": "text/plain", "value": text},
                   {"role": "main", "contentType": "text/html", "value": html}],
        "by": office.name,
        "copyrightHolder": office.name,
        "genres": [{"name": s.kind}],
        "slugline": job.statement_id,
        "altIds": [{"role": "statement", "value": job.statement_id}],
        "infoSources": [{"name": office.name, "role": "originator"}],
        # the public page (the newsroom's, or office.public_url): live from the lift, a notice after a retraction
        "renditions": [{"name": "web", "href": office.public_link(job.statement_id), "contentType": "text/html"}],
    }
    if s.summary or s.body:
        item["descriptions"] = [{"role": "summary", "contentType": "text/plain", "value": s.first_sentence()}]
    if s.reference:
        item["altIds"].append({"role": "reference", "value": s.reference})
    if s.serial:
        item["altIds"].append({"role": "serial", "value": s.serial})
    if s.contacts:
        item["infoSources"][0]["contactInfo"] = [{"type": "text", "role": "press-office", "value": s.contacts}]
    located = s.located or office.located
    if located:
        item["located"] = located
    if associated:
        item["associations"] = associated
    return item


class WireChannel(Channel):
    name = "wire"
    public = True
    ahead = True  # renders from the job alone: claimed a moment early, sent at the instant
    faults_per_target = True  # each endpoint is reached on its own: its transport faults are alerted per endpoint

    @classmethod
    def configure(cls, channels: Table, office: Office) -> tuple[WireEndpoint, ...] | None:
        tables = tables_of(channels, "wire")
        unique_names(tables, "wire endpoint")
        endpoints = []
        for t in tables:
            endpoints.append(WireEndpoint(
                name=t.get("name"),
                url=t.get("url", str, check=_http_url) if t.data.get("transport") != "file" else t.get("url", str, ""),
                format=t.get("format", str, "ninjs", choices=("ninjs",)),
                secret_env=t.get("secret_env", str, None),
                transport=t.get("transport", str, "http", choices=tuple(TRANSPORTS)),
                directory=t.path("directory", "../outbox/wire"),
                urgency=t.get("urgency", int, 4, check=lambda u: u if 1 <= u <= 9 else _bad_urgency(u)),
                timeout=t.get("timeout_seconds", float, 20.0, check=between(0, 3600, low_open=True)),
            ))
            t.done()
        return tuple(endpoints) or None

    def __init__(self, settings: tuple[WireEndpoint, ...], context):
        super().__init__(settings, context)
        self.endpoints = {e.name: e for e in settings}
        self.transports = {e.name: TRANSPORTS[e.transport](e, self.clock) for e in settings}

    def open(self) -> None:
        http.open_all(self.transports.values())

    def close(self) -> None:
        http.close_all(self.transports.values())

    def targets(self, conn: Connection, job: Job) -> Iterable[str]:
        return list(self.endpoints)

    def render(self, job: Job, variant: Variant) -> dict:
        renderer = self.context.renderer
        context = renderer.context(job.statement, job.statement_id, job.embargo, embargoed=False)
        text = renderer.render("wire/body.txt.j2", **context).strip()
        html = renderer.render("wire/body.html.j2", **context).strip()
        config = self.context.config
        return ninjs(job, config.office, text, html, associations(config, job))

    def preview(self, job: Job, variant: Variant) -> str:
        endpoint = next(iter(self.endpoints.values()))
        return json.dumps(self.payload(self.render(job, variant), endpoint), ensure_ascii=False, indent=2) + "\n"

    def payload(self, item: dict, endpoint: WireEndpoint) -> dict:
        return {**item, "urgency": endpoint.urgency}

    def deliver(self, job: Job, rendered: dict, rows: list[Claimed], report: Report) -> None:
        def handle(row: Claimed) -> Outcome:
            endpoint = self.endpoints.get(row.target)
            if endpoint is None:
                return Outcome(row.id, Result.FAILED, f"wire endpoint {row.target!r} is no longer configured")
            return self.transports[endpoint.name].post(row, self.payload(rendered, endpoint))

        self.each_target(rows, report, handle)


class WireHttp(http.HttpTransport):
    """POSTs the item as JSON with an Idempotency-Key, signed with HMAC-SHA256 when the endpoint has a secret."""

    def __init__(self, endpoint: WireEndpoint, clock):
        super().__init__(clock)
        self.endpoint = endpoint
        self.key: bytes | None = None

    def read_secrets(self) -> None:
        e = self.endpoint
        if e.secret_env:
            self.key = secret(e.secret_env, f"channels.wire ({e.name}).secret_env").encode("utf-8")

    def forget_secrets(self) -> None:
        self.key = None

    def send(self, row: Claimed, payload: dict) -> Outcome:
        e = self.endpoint
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        headers = {"Content-Type": "application/json; charset=utf-8", "Idempotency-Key": idempotency_key(row, e.name)}
        if self.key is not None:
            headers[SIGNATURE_HEADER] = "sha256=" + hmac.new(self.key, body, hashlib.sha256).hexdigest()
        reply = self.client.send("POST", e.url, data=body, headers=headers, timeout=(min(5.0, e.timeout), e.timeout))
        remote = None
        if reply.result is Result.SENT:
            data = reply.json()
            location = reply.response.headers.get("Location") if reply.response is not None else None
            remote = str(data.get("id") or data.get("uri") or location or "") or None
        return Outcome(row.id, reply.result, reply.detail, remote_id=remote, retry_after=reply.retry_after)


TRANSPORTS: dict[str, Callable[..., http.PostTransport]] = {
    "http": WireHttp,
    "file": lambda endpoint, clock: JsonFolder(endpoint.directory),
}


def _http_url(url: str) -> str:
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"expected an http:// or https:// URL, got {url!r}")
    return url


def _bad_urgency(value: int) -> int:
    raise ValueError(f"expected an urgency from 1 to 9, got {value}")
