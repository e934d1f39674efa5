"""The Atom feed (RFC 4287): one file with the most recent released statements, rewritten atomically at each lift.

It never holds an embargoed or withdrawn statement: entries come only from statements that are released and whose
embargo has passed. An entry's id is stable and its ``updated`` changes only when its content changes.

With a newsroom, each photo and document of an entry's revision is a ``<link rel="enclosure">`` to its original in
the newsroom (``type``, ``length``), and the entry's HTML shows each photo's ``medium`` rendition with its alt text,
caption and credit, and links each document (``feed/entry.html.j2``: ``images`` and ``documents``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree as ET

from sqlalchemy import Connection

from distributor import media, workflow
from distributor.channels.base import Channel, Job
from distributor.clock import iso_z
from distributor.config import Office, Table, between
from distributor.outcomes import Claimed, Outcome, Report, Result, Variant
from distributor.render import statement_uri
from distributor.statements.model import Media, Statement
from distributor.store import reading
from distributor.transports.base import PUBLIC, write_atomically

ATOM = "http://www.w3.org/2005/Atom"


@dataclass(frozen=True)
class FeedSettings:
    path: Path
    entries: int
    title: str
    link: str | None
    path_given: bool = True  # False: the default, which follows the newsroom's folder when there is one


log = logging.getLogger("distributor.channels")


class FeedChannel(Channel):
    name = "feed"
    public = True

    @classmethod
    def configure(cls, channels: Table, office: Office) -> FeedSettings | None:
        if not channels.has("feed"):
            channels.table("feed")
            return None
        t = channels.table("feed")
        settings = FeedSettings(
            path=t.path("path", "../outbox/feed.atom"),
            entries=int(t.get("entries", int, 50, check=between(1, 10_000))),
            title=t.get("title", str, f"{office.name}: statements"),
            link=t.get("link", str, None),
            path_given=t.has("path"),
        )
        t.done()
        return settings

    def targets(self, conn: Connection, job: Job) -> Iterable[str]:
        return [str(self.settings.path)]

    def open(self) -> None:
        if not self.settings.link:
            log.warning("channels.feed.link is not set: the feed has no rel=\"self\" link, which feed readers and "
                        "validators expect; set it to the feed's own public URL")

    def render(self, job: Job, variant: Variant) -> None:
        return None  # the whole feed is rebuilt from the database at delivery

    def preview(self, job: Job, variant: Variant) -> str:
        """The feed with this statement as its one entry, as if released now."""
        now = self.clock.now()
        row = {"id": job.statement_id, "revision": job.revision, "embargo": job.embargo or now,
               "send_embargoed_at": job.send_embargoed_at, "released_at": job.embargo or now,
               "imported_at": job.version_created or now}
        return self.build([(row, job.statement, job.first_created or now)]).decode("utf-8")

    def deliver(self, job: Job, rendered: None, rows: list[Claimed], report: Report) -> None:
        now = self.clock.now()
        with reading(self.context.engine) as conn:
            released = workflow.released(conn, now, self.settings.entries)
            entries = [(row, Statement.from_dict(row["content"]),
                        workflow.imported_at(conn, row["id"]).get(1)) for row in released]
        data = self.build(entries)
        try:
            ET.fromstring(data)  # what is published must parse: a feed that does not is never written
        except ET.ParseError as exc:
            for row in rows:
                report(Outcome(row.id, Result.FAILED, f"the feed would not be well-formed XML ({exc}); not published"))
            return
        write_atomically(self.settings.path, data, PUBLIC)
        for row in rows:
            report(Outcome(row.id, Result.SENT, remote_id=statement_uri(self.context.config.office, job)))

    def files(self, statement_id: str, items: tuple[Media, ...]) -> list[tuple[Media, dict, dict]]:
        """Each item with its original and the file an entry shows (a photo's ``medium`` rendition), as the newsroom
        serves them. Without a newsroom no URL serves the files: the entry then neither links nor shows them."""
        config = self.context.config
        if not items or config.channels.get("newsroom") is None:
            return []
        store = media.store_of(config)
        found = []
        for item in items:
            renditions = {r.name: {"href": media.public_url(config, statement_id, item, r.name),
                                   "content_type": r.content_type, "size": r.size, "size_label": media.megabytes(r.size),
                                   "width": r.width, "height": r.height} for r in store.renditions(item)}
            original = renditions[media.ORIGINAL]
            found.append((item, original, renditions.get("medium", original)))
        return found

    def build(self, entries) -> bytes:
        office = self.context.config.office
        renderer = self.context.renderer
        ET.register_namespace("", ATOM)
        feed = ET.Element(f"{{{ATOM}}}feed")
        ET.SubElement(feed, f"{{{ATOM}}}id").text = f"tag:{office.domain},2000:feed:{self.settings.path.name}"
        ET.SubElement(feed, f"{{{ATOM}}}title").text = self.settings.title
        updated = ET.SubElement(feed, f"{{{ATOM}}}updated")
        author = ET.SubElement(ET.SubElement(feed, f"{{{ATOM}}}author"), f"{{{ATOM}}}name")
        author.text = office.name
        if self.settings.link:
            ET.SubElement(feed, f"{{{ATOM}}}link", rel="self", href=self.settings.link)
        newest = None
        for row, statement, first_imported in entries:
            job = Job(row["id"], row["revision"], statement, row["embargo"], row["send_embargoed_at"],
                      first_created=first_imported, version_created=row["imported_at"])
            # published at the lift; updated again when a correction is published
            entry_updated = max(row["released_at"], row.get("corrected_at") or row["released_at"])
            newest = max(newest, entry_updated) if newest else entry_updated
            entry = ET.SubElement(feed, f"{{{ATOM}}}entry")
            ET.SubElement(entry, f"{{{ATOM}}}id").text = statement_uri(office, job)
            ET.SubElement(entry, f"{{{ATOM}}}title").text = statement.title
            ET.SubElement(entry, f"{{{ATOM}}}published").text = iso_z(row["released_at"])
            ET.SubElement(entry, f"{{{ATOM}}}updated").text = iso_z(entry_updated)
            ET.SubElement(entry, f"{{{ATOM}}}link", rel="alternate", type="text/html",
                          href=office.public_link(row["id"]))
            files = self.files(row["id"], statement.media)
            for _item, original, _shown in files:
                ET.SubElement(entry, f"{{{ATOM}}}link", rel="enclosure", href=original["href"],
                              type=original["content_type"], length=str(original["size"]))
            ET.SubElement(entry, f"{{{ATOM}}}summary").text = statement.first_sentence()
            context = renderer.context(statement, row["id"], row["embargo"], embargoed=False)
            context["images"] = [{"item": item, **shown} for item, _original, shown in files if item.is_image]
            context["documents"] = [{"item": item, **original} for item, original, _shown in files
                                    if not item.is_image]
            content = ET.SubElement(entry, f"{{{ATOM}}}content", type="html")
            content.text = renderer.render("feed/entry.html.j2", **context).strip()
            if statement.kind:
                ET.SubElement(entry, f"{{{ATOM}}}category", term=statement.kind)
        updated.text = iso_z(newest) if newest else "1970-01-01T00:00:00Z"
        return ET.tostring(feed, encoding="utf-8", xml_declaration=True) + b"\n"
