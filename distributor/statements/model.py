"""The parsed statement: what every format becomes, what gets hashed, approved and rendered."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from enum import Enum

from anyascii import anyascii

from distributor.clock import iso_z

ID_MAX = 60


class StatementStatus(str, Enum):
    """The statement's states; the transitions between them live in ``distributor.workflow``."""

    DRAFT = "draft"
    APPROVED = "approved"
    SCHEDULED = "scheduled"
    RELEASED = "released"
    WITHDRAWN = "withdrawn"
    RETRACTED = "retracted"  # released, then withdrawn from publication


@dataclass(frozen=True)
class Media:
    """A photo or a document that a revision carries. Its file is kept by ``distributor.media.MediaStore``."""

    name: str                  # unique in the statement: what ``show`` lists and ``media remove`` takes
    kind: str                  # "image" or "document"
    sha256: str                # of the file's bytes as uploaded: part of the content hash
    content_type: str          # read from the content: image/jpeg, image/png, image/webp, application/pdf
    size: int                  # bytes of the copy that leaves distributor (its metadata stripped)
    width: int | None = None   # an image's pixels, its orientation applied
    height: int | None = None
    alt: str | None = None     # required for an image
    title: str | None = None   # a document's title
    caption: str | None = None
    credit: str | None = None
    licence: str | None = None

    @property
    def label(self) -> str:
        """What a reader is told the item is: its alt text or title, else its name."""
        return self.alt or self.title or self.name

    @property
    def is_image(self) -> bool:
        return self.kind == "image"


@dataclass(frozen=True)
class Statement:
    title: str
    body: tuple[str, ...]
    kind: str = "Press Release"
    date: date | None = None
    reference: str | None = None
    serial: str | None = None
    embargo: datetime | None = None  # aware UTC, from the document itself
    contacts: str = ""
    classification: str | None = None
    summary: str | None = None
    body_html: str | None = None  # Markdown statements carry their own safe HTML
    channels: tuple[str, ...] | None = None
    language: str | None = None
    located: str | None = None
    lists: tuple[str, ...] | None = None  # the recipient lists it is for (Markdown front matter ``lists:``)
    media: tuple[Media, ...] = ()  # photos and documents, in the order given
    source_format: str = field(default="text", compare=False)

    @property
    def id(self) -> str:
        return statement_id(self.reference, self.date, self.title)

    def first_sentence(self) -> str:
        """The summary, else the first sentence of the first body paragraph."""
        if self.summary:
            return self.summary
        for paragraph in self.body:
            if not paragraph.startswith("- "):
                match = re.match(r"(.+?[.!?。！？])(\s|$)", paragraph)
                return match.group(1) if match else paragraph
        return ""

    def to_dict(self) -> dict:
        data = asdict(self)
        data["body"] = list(self.body)
        data["channels"] = list(self.channels) if self.channels is not None else None
        if self.lists is None:  # absent, as before there were lists: the content hash of such a statement stays
            del data["lists"]
        else:
            data["lists"] = list(self.lists)
        if not self.media:  # absent, as before there were media: the content hash of such a statement stays
            del data["media"]
        data["date"] = self.date.isoformat() if self.date else None
        data["embargo"] = iso_z(self.embargo)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> Statement:
        data = dict(data)
        data["body"] = tuple(data["body"])
        if data.get("channels") is not None:
            data["channels"] = tuple(data["channels"])
        if data.get("lists") is not None:
            data["lists"] = tuple(data["lists"])
        data["media"] = tuple(Media(**item) for item in data.get("media") or ())
        if data.get("date"):
            data["date"] = date.fromisoformat(data["date"])
        if data.get("embargo"):
            data["embargo"] = datetime.fromisoformat(data["embargo"].replace("Z", "+00:00"))
        return cls(**data)

    def content_hash(self) -> str:
        """Hash of the parsed content, so that a CRLF copy of a file is the same statement."""
        data = self.to_dict()
        data.pop("source_format")
        for item in data.get("media", ()):  # the file's own bytes and its text count; what Pillow made of it not
            item.pop("size")
        canonical = json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def slug(text: str) -> str:
    """Lower-case ASCII words joined by hyphens; titles in any script are transliterated (anyascii)."""
    return re.sub(r"[^a-z0-9]+", "-", anyascii(text).lower()).strip("-")


def statement_id(reference: str | None, issued: date | None, title: str) -> str:
    """``AI Index ASA 17/013/2002`` → ``asa-17-013-2002``; no reference → ``YYYY-MM-DD-title-slug``."""
    if reference:
        stripped = re.sub(r"^\s*(?:AI\s+Index\b:?|Index\s*:)\s*", "", reference, flags=re.IGNORECASE)
        ref_slug = slug(stripped)
        if ref_slug:
            return ref_slug[:ID_MAX].strip("-")
    if issued is None:
        raise ValueError("a statement needs a reference or a date to get an id")
    # a title with nothing to transliterate (symbols only) gets a short hash of itself
    words = slug(title) or "t" + hashlib.sha256(title.strip().encode("utf-8")).hexdigest()[:10]
    return f"{issued.isoformat()}-{words}"[:ID_MAX].strip("-")
