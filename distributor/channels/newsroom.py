"""The newsroom: a static site with a public page for every released statement, written at the lift.

At each delivery (a lift, a correction, a retraction) the statement's photos and documents are copied beside its page
(``<id>/media/<key>/<name>``, from the media store's stripped copies), then its own page is written, then the index
pages, ``sitemap.xml`` and ``robots.txt``, each file to a temporary name and renamed, so a reader never sees half a
page or half a photo. The files of items a correction dropped go after the new page is in place; a retraction takes
the whole media folder away.
A page is written only for a statement the database holds as released (or, after a retraction, a notice that
carries none of its text); a withdrawn or never-released statement never has one. Any web server or CDN can serve
the folder; ``distributor serve`` serves it at ``/news/`` and answers from the database's record of the release.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from xml.etree import ElementTree as ET

from markupsafe import Markup
from sqlalchemy import Connection, select

from distributor import media, workflow
from distributor.channels.base import Channel, Job
from distributor.clock import iso_z
from distributor.config import Office, Table, between
from distributor.outcomes import Claimed, Kind, Outcome, Report, Result, Variant
from distributor.statements.model import Media, Statement
from distributor.statements.model import StatementStatus as S
from distributor.store import reading
from distributor.store.schema import notices, revisions, statements
from distributor.transports.base import PUBLIC, write_atomically

log = logging.getLogger("distributor.channels")
SITEMAP = "http://www.sitemaps.org/schemas/sitemap/0.9"
PAGE_FILE = "index.html"
MEDIA_FOLDER = "media"
KINDS = {"image/jpeg": "JPEG image", "image/png": "PNG image", "image/webp": "WebP image",
         "application/pdf": "PDF document"}
SIZES = "(min-width: 45em) 42em, calc(100vw - 32px)"  # the page's column: 42em wide, 16px each side on a phone


@dataclass(frozen=True)
class NewsroomSettings:
    directory: Path
    url: str          # where the site is served, ending in "/"
    title: str
    per_page: int

    def page(self, statement_id: str) -> Path:
        return self.directory / statement_id / PAGE_FILE

    def link(self, statement_id: str) -> str:
        return f"{self.url}{statement_id}/"

    def media(self, statement_id: str) -> Path:
        return self.directory / statement_id / MEDIA_FOLDER


class MissingMedia(Exception):
    """A file the statement carries is not in the media store (``paths.media`` moved or pruned by hand)."""


class NewsroomChannel(Channel):
    name = "newsroom"
    public = True

    @classmethod
    def configure(cls, channels: Table, office: Office) -> NewsroomSettings | None:
        if not channels.has("newsroom"):
            channels.table("newsroom")
            return None
        t = channels.table("newsroom")
        default_url = f"{office.base_url}/news/" if office.base_url else None
        url = t.get("url", str, default_url)
        if not url:
            raise t.error("url", "expected the address the site is served at, e.g. \"https://press.example.org/news/\" "
                                 "(or set office.base_url: the site is then at {base_url}/news/)")
        if not url.startswith(("https://", "http://")):
            raise t.error("url", f"expected an http(s) address, got {url!r}")
        settings = NewsroomSettings(
            directory=t.path("directory", "../outbox/news"),
            url=url if url.endswith("/") else url + "/",
            title=t.get("title", str, f"{office.name}: news"),
            per_page=int(t.get("per_page", int, 20, check=between(1, 1000))),
        )
        t.done()
        return settings

    def targets(self, conn: Connection, job: Job) -> Iterable[str]:
        return [self.settings.url]

    def render(self, job: Job, variant: Variant) -> None:
        return None  # each page is written from the database at delivery

    def preview(self, job: Job, variant: Variant) -> str:
        """The statement's page as it would be at the lift."""
        now = self.clock.now()
        return self.statement_page(job.statement_id, job.statement, job.embargo or now, corrections=[])

    def deliver(self, job: Job, rendered: None, rows: list[Claimed], report: Report) -> None:
        try:
            link = self.publish(job.statement_id)
        except MissingMedia as exc:
            for row in rows:
                report(Outcome(row.id, Result.RETRY, f"newsroom: {exc}"))
            return
        except OSError as exc:
            for row in rows:
                report(Outcome(row.id, Result.RETRY, f"newsroom: cannot write {self.settings.directory} "
                                                     f"({exc.strerror})"))
            return
        for row in rows:
            report(Outcome(row.id, Result.SENT, remote_id=link))

    # -- the site ------------------------------------------------------------------------------------------
    def publish(self, statement_id: str) -> str:
        """Write the statement's media and page as the database has it now, then the index, the sitemap and
        robots.txt."""
        with reading(self.context.engine) as conn:
            facts = self.facts(conn, statement_id)
            listed = workflow.released(conn, self.embargo_now(), 1_000_000)
        page = self.settings.page(statement_id)
        if facts is None:  # not public (any more): no page, whoever asked
            if page.parent.exists():
                shutil.rmtree(page.parent)
        elif facts["status"] == S.RETRACTED.value:
            write_atomically(page, self.retraction_notice(statement_id, facts).encode("utf-8"), PUBLIC)
            remove_folder(self.settings.media(statement_id))
        else:
            statement: Statement = facts["statement"]
            wanted = self.copy_media(statement_id, statement.media)  # before the page that shows them
            write_atomically(page, self.statement_page(statement_id, statement, facts["released_at"],
                                                       facts["corrections"]).encode("utf-8"), PUBLIC)
            self.prune_media(statement_id, wanted)  # after it: the page before showed them until now
        self.write_index(listed)
        return self.settings.link(statement_id)

    def facts(self, conn: Connection, statement_id: str) -> dict | None:
        """What a page shows, from the database: None unless the statement is released (or retracted after it)."""
        row = conn.execute(select(statements).where(statements.c.id == statement_id)).mappings().first()
        if row is None or row["released_at"] is None or row["status"] not in (S.RELEASED.value, S.RETRACTED.value):
            return None
        if row["embargo"] is not None and row["embargo"] > self.embargo_now():
            return None
        content: dict = conn.execute(select(revisions.c.content).where(
            revisions.c.statement_id == statement_id,
            revisions.c.number == (row["published_revision"] or row["revision"]))).scalar_one()
        told = conn.execute(select(notices.c.kind, notices.c.created_at, notices.c.note).where(
            notices.c.statement_id == statement_id,
            notices.c.kind.in_((Kind.CORRECTION.value, Kind.RETRACTION.value))).order_by(notices.c.number)).all()
        return {"status": row["status"], "released_at": row["released_at"], "statement": Statement.from_dict(content),
                "corrections": [{"at": at, "note": note} for kind, at, note in told if kind == Kind.CORRECTION.value],
                "retracted": next(({"at": at, "note": note} for kind, at, note in reversed(told)
                                   if kind == Kind.RETRACTION.value), None)}

    # -- photos and documents -----------------------------------------------------------------------------
    def renditions(self, item: Media) -> list[media.Rendition]:
        store = media.store_of(self.context.config)
        if store.missing((item,)):
            raise MissingMedia(f"the file of {item.name} ({item.sha256[:12]}…) is not in the media store "
                               f"{store.root} (restore paths.media from its backup)")
        return store.renditions(item)

    def copy_media(self, statement_id: str, items: tuple[Media, ...]) -> set[Path]:
        """Copy each file of each item (the original, then an image's renditions) from the store to its public path,
        each to a temporary name and renamed; a file already there whole is left. Returns the files the page uses."""
        folder = self.settings.page(statement_id).parent
        wanted: set[Path] = set()
        for item in items:
            for rendition in self.renditions(item):
                target = folder / media.public_path(statement_id, item, rendition.name)
                wanted.add(target)
                if not (target.is_file() and target.stat().st_size == rendition.size):
                    copy_atomically(rendition.path, target)
        return wanted

    def prune_media(self, statement_id: str, wanted: set[Path]) -> None:
        """Remove the files, and the folders, of the items the statement no longer carries."""
        root = self.settings.media(statement_id)
        if not root.is_dir():
            return
        kept = {path.parent for path in wanted}
        for folder in root.iterdir():
            if not folder.is_dir():
                folder.unlink()
            elif folder not in kept:
                remove_folder(folder)
            else:
                for path in folder.iterdir():
                    if path not in wanted:
                        path.unlink()
        if not any(root.iterdir()):
            root.rmdir()

    def media_view(self, statement_id: str, statement: Statement) -> dict:
        """What the page shows of the media: the images with their renditions (``srcset``), the downloads, and the
        lead image for Open Graph. Links are relative to the page, so that everything loads from wherever the page
        is served; the Open Graph image is absolute, as the networks need."""
        images, downloads = [], []
        store = media.store_of(self.context.config)
        missing = store.missing(statement.media)  # publish refuses first; a preview shows what there is
        for item in statement.media:
            if item in missing:
                continue
            files = {rendition.name: rendition for rendition in store.renditions(item)}
            original = files[media.ORIGINAL]
            download = {"item": item, "href": media.public_path(statement_id, item), "size": media.megabytes(
                original.size), "type": KINDS.get(item.content_type, item.content_type), "width": original.width,
                "height": original.height, "label": item.title or item.caption or item.alt or item.name}
            downloads.append(download)
            if not item.is_image:
                continue
            widths: dict[int, str] = {}  # a rendition the size of a smaller one says nothing new
            for name in reversed(media.RENDITIONS):
                found = files.get(name)
                if found is not None and found.width and found.width not in widths:
                    widths[found.width] = media.public_path(statement_id, item, name)
            shown = files.get("medium") or original
            large = files.get("large") or original
            images.append({
                "item": item, "src": media.public_path(statement_id, item, shown.name),
                "srcset": ", ".join(f"{href} {width}w" for width, href in sorted(widths.items())), "sizes": SIZES,
                "width": shown.width, "height": shown.height, "download": download,
                "og": {"url": f"{self.settings.link(statement_id)}{media.public_path(statement_id, item, large.name)}",
                       "width": large.width, "height": large.height, "type": item.content_type}})
        return {"images": images, "downloads": downloads, "lead": images[0] if images else None}

    def common(self) -> dict:
        office = self.context.config.office
        feed = self.context.config.channels.get("feed")
        feed_url = None
        if feed is not None:
            try:
                feed_url = self.settings.url + feed.path.resolve().relative_to(self.settings.directory.resolve()).as_posix()
            except ValueError:
                feed_url = feed.link
        return {"office": office, "site_title": self.settings.title, "site_url": self.settings.url,
                "feed_url": feed_url, "language": office.language}

    def statement_page(self, statement_id: str, statement: Statement, released_at: datetime,
                       corrections: list[dict]) -> str:
        renderer = self.context.renderer
        office = self.context.config.office
        link = self.settings.link(statement_id)
        modified = corrections[-1]["at"] if corrections else released_at
        article = {"@context": "https://schema.org", "@type": "NewsArticle", "headline": statement.title,
                   "datePublished": iso_z(released_at), "dateModified": iso_z(modified), "url": link,
                   "mainEntityOfPage": link, "description": statement.first_sentence(),
                   "publisher": {"@type": "Organization", "name": office.name}}
        if statement.language or office.language:
            article["inLanguage"] = statement.language or office.language
        view = self.media_view(statement_id, statement)
        if view["images"]:
            article["image"] = [image["og"]["url"] for image in view["images"]]
        context = renderer.context(statement, statement_id, released_at, embargoed=False)
        return renderer.render("newsroom/statement.html.j2", **{
            **context, **self.common(), **view, "canonical": link, "released_at": released_at, "modified": modified,
            "corrections": corrections, "description": statement.first_sentence(),
            "json_ld": Markup(json.dumps(article, ensure_ascii=False).replace("<", "\\u003c").replace(
                ">", "\\u003e").replace("&", "\\u0026"))})

    def retraction_notice(self, statement_id: str, facts: dict) -> str:
        statement: Statement = facts["statement"]
        return self.context.renderer.render(
            "newsroom/retracted.html.j2", **self.common(), id=statement_id, reference=statement.reference,
            released_at=facts["released_at"], retracted=facts["retracted"], canonical=self.settings.link(statement_id))

    def write_index(self, listed: list[dict]) -> None:
        """The index, newest first, ``per_page`` to a page (``page/2/`` and on), the sitemap and robots.txt."""
        per = self.settings.per_page
        chunks = [listed[i:i + per] for i in range(0, len(listed), per)] or [[]]
        for number, chunk in enumerate(chunks, start=1):
            items = [{"id": r["id"], "link": self.settings.link(r["id"]), "released_at": r["released_at"],
                      "statement": Statement.from_dict(r["content"])} for r in chunk]
            html = self.context.renderer.render(
                "newsroom/index.html.j2", **self.common(), items=items, page=number, pages=len(chunks),
                canonical=self.settings.url if number == 1 else f"{self.settings.url}page/{number}/")
            target = self.settings.directory / PAGE_FILE if number == 1 else \
                self.settings.directory / "page" / str(number) / PAGE_FILE
            write_atomically(target, html.encode("utf-8"), PUBLIC)
        stale = self.settings.directory / "page"
        if stale.is_dir():  # pages the shorter list no longer has
            for folder in stale.iterdir():
                if folder.name.isdigit() and int(folder.name) > len(chunks):
                    shutil.rmtree(folder)
        write_atomically(self.settings.directory / "sitemap.xml", self.sitemap(listed), PUBLIC)
        write_atomically(self.settings.directory / "robots.txt",
                         f"User-agent: *\nAllow: /\nSitemap: {self.settings.url}sitemap.xml\n".encode(), PUBLIC)

    def sitemap(self, listed: list[dict]) -> bytes:
        ET.register_namespace("", SITEMAP)
        urlset = ET.Element(f"{{{SITEMAP}}}urlset")
        home = ET.SubElement(urlset, f"{{{SITEMAP}}}url")
        ET.SubElement(home, f"{{{SITEMAP}}}loc").text = self.settings.url
        for row in listed:
            url = ET.SubElement(urlset, f"{{{SITEMAP}}}url")
            ET.SubElement(url, f"{{{SITEMAP}}}loc").text = self.settings.link(row["id"])
            modified = max(row["released_at"], row.get("corrected_at") or row["released_at"])
            ET.SubElement(url, f"{{{SITEMAP}}}lastmod").text = iso_z(modified)
        return ET.tostring(urlset, encoding="utf-8", xml_declaration=True) + b"\n"


def copy_atomically(source: Path, target: Path) -> None:
    """Copy to a temporary name beside the target, then rename: a reader finds the whole file or none."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle, open(source, "rb") as original:
            shutil.copyfileobj(original, handle, 1 << 20)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide it from a web server running as another user
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def remove_folder(folder: Path) -> None:
    """Rename the folder out of the way, then remove it: no URL finds half of it meanwhile."""
    if not folder.exists():
        return
    gone = folder.with_name(f".{folder.name}.removed-{os.getpid()}-{id(folder)}")
    os.replace(folder, gone)
    shutil.rmtree(gone)
