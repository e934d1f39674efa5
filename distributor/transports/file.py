"""File transports: one file per delivery in a folder, for the demo and for offline use."""

from __future__ import annotations

import json
import re
from pathlib import Path

from distributor.outcomes import Claimed, Outcome, Result
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
            write_atomically(folder / f"{safe_name(envelope.recipient)}.eml", envelope.message)
            if handover(Handed(envelope.key, Result.SENT, None)).stop:
                break


class JsonFolder:
    """The ``file`` transport of the HTTP channels: what would have been posted, as JSON, one file per delivery
    (``<statement>.r<revision>.<target>.json``, written atomically). Reports sent, with the path as remote id."""

    def __init__(self, directory: Path):
        self.directory = directory

    def open(self) -> None:
        pass

    def close(self) -> None:
        pass

    def post(self, row: Claimed, payload: dict) -> Outcome:
        path = self.directory / safe_name(f"{row.statement_id}.r{row.revision}.{row.target}.json")
        write_atomically(path, json.dumps(payload, ensure_ascii=False, indent=2).encode("utf-8"))
        return Outcome(row.id, Result.SENT, remote_id=str(path))
