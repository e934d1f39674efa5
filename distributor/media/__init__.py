"""A statement's photos and documents: checked and stripped of metadata (``files``), kept by content hash
(``store``), described by :class:`~distributor.statements.model.Media` in each revision.

    Library(config).take(data, "photo.jpg", where=..., alt=...)  →  Media, its files kept
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from pathlib import Path

from distributor.errors import InputError, checked_text
from distributor.media.files import RENDITIONS, clean, megabytes
from distributor.media.store import ORIGINAL, MediaStore, Rendition, public_key, public_path
from distributor.statements.model import Media, slug

MAX_ITEMS = 20
TEXT_LIMITS = {"alt": 1500, "title": 300, "caption": 2000, "credit": 300, "licence": 500}


class Library:
    """Takes files into the store under the configured limits."""

    def __init__(self, root: Path, max_bytes: int):
        self.store = MediaStore(root)
        self.max_bytes = max_bytes

    @classmethod
    def of(cls, config) -> Library:
        return cls(config.paths.media, config.media.max_bytes)

    def take(self, data: bytes, filename: str, where: str, described: Mapping[str, str | None],
             taken: tuple[Media, ...] = (), field_prefix: str = "--") -> Media:
        """Check the file and what a person says of it (``alt`` for an image, ``title`` for a document, ``caption``,
        ``credit``, ``licence``), keep its safe copies, and describe it as a revision's item; the name is unique
        among ``taken`` (the statement's other items)."""
        if len(taken) >= MAX_ITEMS:
            raise InputError(f"a statement carries at most {MAX_ITEMS} media", where=where)
        texts = {key: _text(described.get(key), f"{field_prefix}{key}", limit)
                 for key, limit in TEXT_LIMITS.items()}
        cleaned = clean(data, where, self.max_bytes)
        if cleaned.kind == "image" and not texts["alt"]:
            raise InputError(f"an image needs alt text, describing it for those who cannot see it "
                             f"({field_prefix}alt)", where=where)
        sha = hashlib.sha256(data).hexdigest()
        for other in taken:
            if other.sha256 == sha:
                raise InputError(f"the statement carries this file already, as {other.name}", where=where)
        self.store.keep(sha, cleaned)
        return Media(name=unique_name(filename, cleaned.extension, taken), kind=cleaned.kind, sha256=sha,
                     content_type=cleaned.content_type, size=len(cleaned.original), width=cleaned.width,
                     height=cleaned.height, **texts)

    def load(self, path: Path, described: Mapping[str, str | None], taken: tuple[Media, ...] = (), field_prefix: str = "--"
             ) -> Media:
        where = str(path)
        try:
            size = path.stat().st_size
            if size > self.max_bytes:  # refused before it is read
                raise InputError(f"the file has {size:,} bytes; a media file has at most {self.max_bytes:,} "
                                 f"({megabytes(self.max_bytes)}, media.max_bytes)", where=where)
            data = path.read_bytes()
        except FileNotFoundError:
            raise InputError("no such file; expected a photo (JPEG, PNG, WebP) or a PDF", where=where) from None
        except IsADirectoryError:
            raise InputError("is a folder; expected a photo (JPEG, PNG, WebP) or a PDF", where=where) from None
        except OSError as exc:
            raise InputError(f"cannot read the file ({exc.strerror})", where=where) from None
        return self.take(data, path.name, where, described, taken, field_prefix)


def _text(value: str | None, field: str, limit: int) -> str | None:
    if value is None or not str(value).strip():
        return None
    return " ".join(checked_text(str(value), field, limit).split())


def unique_name(filename: str, extension: str, taken: tuple[Media, ...]) -> str:
    """``Field Visit (1).JPG`` → ``field-visit-1.jpg``: lower-case ASCII, the extension its content's, unique among
    the statement's items (``-2``, ``-3``…)."""
    stem = slug(re.sub(r"\.[A-Za-z0-9]{1,5}$", "", Path(filename).name))[:40].strip("-") or "file"
    names = {item.name for item in taken}
    name, n = f"{stem}.{extension}", 1
    while name in names:
        n += 1
        name = f"{stem}-{n}.{extension}"
    return name


def public_url(config, statement_id: str, item: Media, rendition: str = ORIGINAL) -> str | None:
    """The newsroom URL of a file of the item, which answers from the lift (None without a newsroom)."""
    newsroom = config.channels.get("newsroom")
    if newsroom is None:
        return None
    return f"{newsroom.url}{statement_id}/{public_path(statement_id, item, rendition)}"


def store_of(config) -> MediaStore:
    return MediaStore(config.paths.media)


def find(items: tuple[Media, ...], name: str, where: str = "MEDIA") -> Media:
    for item in items:
        if item.name == name:
            return item
    known = ", ".join(item.name for item in items) or "none"
    raise InputError(f"no media named {name!r}; this revision has: {known}", where=where)


__all__ = ["MAX_ITEMS", "ORIGINAL", "RENDITIONS", "TEXT_LIMITS", "Library", "Media", "MediaStore", "Rendition", "find",
           "megabytes", "public_key", "public_path", "public_url", "store_of", "unique_name"]
