"""Media files kept by the hash of their bytes as uploaded (``paths.media``): the same photo in two revisions, or
two statements, is kept once. Only the safe copies are kept, never the upload itself: its metadata never reaches
the disk.

    <paths.media>/ab/ab12…ef/original.jpg   the file without its metadata, its orientation applied
                             large.jpg  medium.jpg  thumb.jpg   an image's renditions
                             about.json  each file's pixels and bytes
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from distributor.media.files import RENDITIONS, Cleaned
from distributor.statements.model import Media

ORIGINAL = "original"


@dataclass(frozen=True)
class Rendition:
    """One file of a media item as it leaves: the original (stripped) or a rendition."""

    name: str            # "original", "large", "medium" or "thumb"
    path: Path
    content_type: str
    size: int
    width: int | None
    height: int | None


class MediaStore:
    def __init__(self, root: Path):
        self.root = root

    def folder(self, sha256: str) -> Path:
        return self.root / sha256[:2] / sha256

    def keep(self, sha256: str, cleaned: Cleaned) -> None:
        """Write the item's files once: into a folder of their own beside it, renamed into place whole, so that a
        reader never finds half of them."""
        folder = self.folder(sha256)
        if (folder / "about.json").is_file():
            return
        folder.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".incoming-", dir=folder.parent))
        try:
            about = {ORIGINAL: {"size": len(cleaned.original), "width": cleaned.width, "height": cleaned.height}}
            (staging / f"{ORIGINAL}.{cleaned.extension}").write_bytes(cleaned.original)
            for name, (data, width, height) in cleaned.renditions.items():
                (staging / f"{name}.{cleaned.extension}").write_bytes(data)
                about[name] = {"size": len(data), "width": width, "height": height}
            (staging / "about.json").write_text(json.dumps(about, sort_keys=True), encoding="utf-8")
            for written in staging.iterdir():
                with open(written, "rb") as f:
                    os.fsync(f.fileno())
            try:
                os.rename(staging, folder)
            except OSError:  # kept meanwhile by another import of the same file
                if not (folder / "about.json").is_file():
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def renditions(self, item: Media) -> list[Rendition]:
        """The item's files, the original first, then the renditions from the largest."""
        folder = self.folder(item.sha256)
        about = json.loads((folder / "about.json").read_text(encoding="utf-8"))
        extension = item.name.rpartition(".")[2]
        return [Rendition(name, folder / f"{name}.{extension}", item.content_type, facts["size"], facts["width"],
                          facts["height"])
                for name in (ORIGINAL, *RENDITIONS) if (facts := about.get(name)) is not None]

    def rendition(self, item: Media, name: str = ORIGINAL) -> Rendition:
        for found in self.renditions(item):
            if found.name == name:
                return found
        raise KeyError(f"{item.name} has no {name} rendition")

    def read(self, item: Media, name: str = ORIGINAL) -> bytes:
        return self.rendition(item, name).path.read_bytes()

    def missing(self, items: tuple[Media, ...]) -> list[Media]:
        """The items whose files are not here (a store moved or pruned by hand)."""
        return [item for item in items if not (self.folder(item.sha256) / "about.json").is_file()]


def public_key(statement_id: str, item: Media) -> str:
    """The folder name of an item's public copies: not guessable without the uploaded file, which never leaves."""
    return hashlib.sha256(f"{statement_id}\0{item.sha256}".encode()).hexdigest()[:24]


def public_path(statement_id: str, item: Media, rendition: str = ORIGINAL) -> str:
    """Where a file of the item is in the newsroom, relative to the statement's page: ``media/<key>/<name>`` for the
    original, ``media/<key>/<rendition>-<name>`` for a rendition."""
    prefix = "" if rendition == ORIGINAL else f"{rendition}-"
    return f"media/{public_key(statement_id, item)}/{prefix}{item.name}"
