"""File transports: one file per delivery in a folder, for the demo and for offline use."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from pathlib import Path

from distributor.outcomes import Claimed, Outcome, Result
from distributor.transports.base import Envelope, Handed, Handover, write_atomically


def safe_name(text: str) -> str:
    """A file name for ``text``: the text itself when it is short and plain, else a readable part plus a hash of
    the whole, so that two different texts never share a file (``a/b@x`` and ``a_b@x``)."""
    readable = re.sub(r"[^A-Za-z0-9@._+-]+", "_", text)[:100].lstrip(".")
    if readable == text and readable:
        return readable
    return f"{readable}~{hashlib.sha256(text.encode('utf-8')).hexdigest()[:12]}"


def real_folder(folder: Path) -> Path:
    """``folder``, made if missing; a symbolic link is refused, so no file lands outside the configured place."""
    if folder.is_symlink():
        raise SymlinkRefused(f"{folder} is a symbolic link; refusing to write through it")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


class SymlinkRefused(Exception):
    pass


class MailFolder:
    """Writes each message as ``<folder>/<message-id>/<recipient>.eml``."""

    def __init__(self, directory: Path):
        self.directory = directory

    def open(self) -> None:
        if not self.directory.is_symlink():
            self.directory.mkdir(parents=True, exist_ok=True)

    def close(self) -> None:
        pass

    def send_many(self, envelopes: Iterable[Envelope], handover: Handover) -> None:
        for envelope in envelopes:
            name = safe_name(envelope.message_id.strip("<>").split("@")[0].rsplit(".", 1)[0])
            try:
                folder = real_folder(real_folder(self.directory) / name)
            except SymlinkRefused as exc:
                handed = Handed(envelope.key, Result.FAILED, str(exc))
            else:
                write_atomically(folder / f"{safe_name(envelope.recipient)}.eml", envelope.message)
                handed = Handed(envelope.key, Result.SENT, None)
            if handover(handed).stop:
                break


class JsonFolder:
    """The ``file`` transport of the HTTP channels: what would have been posted, as JSON, one file per delivery
    (``<statement>.r<revision>[.<kind>.g<generation>.n<notice>].<target>.json``, written atomically). Reports
    sent, with the path as remote id."""

    def __init__(self, directory: Path):
        self.directory = directory

    def open(self) -> None:
        pass

    def close(self) -> None:
        pass

    def post(self, row: Claimed, payload: dict) -> Outcome:
        try:
            folder = real_folder(self.directory)
        except SymlinkRefused as exc:
            return Outcome(row.id, Result.FAILED, str(exc))
        tag = f".{row.tag}" if row.tag else ""
        path = folder / f"{safe_name(f'{row.statement_id}.r{row.revision}{tag}.{row.target}')}.json"
        write_atomically(path, json.dumps(payload, ensure_ascii=False, indent=2).encode("utf-8"))
        return Outcome(row.id, Result.SENT, remote_id=str(path))
