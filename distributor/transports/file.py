"""File transports: one file per delivery in a folder, for the demo and for offline use."""

from __future__ import annotations

import re
from pathlib import Path

from distributor.outcomes import Result
from distributor.transports.base import Envelope, Handed, Handover, write_atomically


def safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9@._+-]+", "_", text)[:150]


class MailFolder:
    """Writes each message as ``<folder>/<message-id>/<recipient>.eml``."""

    def __init__(self, directory: Path):
        self.directory = directory

    def open(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)

    def close(self) -> None:
        pass

    def send_many(self, envelopes: list[Envelope], handover: Handover) -> None:
        for envelope in envelopes:
            folder = self.directory / safe_name(envelope.message_id.strip("<>").split("@")[0].rsplit(".", 1)[0])
            write_atomically(folder / f"{safe_name(envelope.recipient)}.eml", envelope.data)
            handover(Handed(envelope.key, Result.SENT, None))


class Folder:
    """Writes one file per delivery into a folder, atomically: the offline stand-in for an HTTP endpoint."""

    def __init__(self, directory: Path):
        self.directory = directory

    def write(self, name: str, data: bytes) -> Path:
        path = self.directory / safe_name(name)
        write_atomically(path, data)
        return path
