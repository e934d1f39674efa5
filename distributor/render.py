"""The Jinja2 environment the press office's templates run in: autoescaped HTML, strict undefined, zone filters.

Statement text is passed to templates as data. It is never compiled as a template.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import ChoiceLoader, Environment, FileSystemLoader, StrictUndefined, TemplateNotFound, TemplateSyntaxError
from markupsafe import Markup, escape

from distributor.clock import clock_time
from distributor.config import Office
from distributor.errors import ConfigError
from distributor.statements.model import Statement

UTC = ZoneInfo("UTC")


def local_time(value: datetime, zone: ZoneInfo | str) -> datetime:
    return value.astimezone(ZoneInfo(zone) if isinstance(zone, str) else zone)


def when(value: datetime, zone: ZoneInfo | str = UTC, with_weekday: bool = True) -> str:
    """``00:01 GMT Thursday 15 October 2026``: always with the zone's abbreviation at that instant."""
    local = local_time(value, zone)
    weekday = f"{local:%A} " if with_weekday else ""
    return f"{clock_time(local)} {local.tzname()} {weekday}{local.day} {local:%B %Y}"


def statement_uri(office: Office, job) -> str:
    """A stable tag URI (RFC 4151) for a statement: the wire item's uri and the feed entry's id."""
    issued = job.statement.date or (job.first_created or job.embargo).date()
    return f"tag:{office.domain},{issued.isoformat()}:{job.statement_id}"


def breakable(text: str) -> Markup:
    """The text, escaped, with a line break allowed after each slash (``America/<wbr>New_York``): a long zone
    name wraps on a narrow screen instead of widening the message."""
    return Markup("/<wbr>").join(escape(part) for part in text.split("/"))


def zone_label(zone: ZoneInfo) -> str:
    return "UTC" if zone.key in ("UTC", "Etc/UTC") else zone.key


@dataclass(frozen=True)
class EmbargoLine:
    zone: str
    text: str


def embargo_lines(embargo: datetime, office: Office) -> list[EmbargoLine]:
    """The embargo in UTC, in the office's zone, then in every extra zone configured; no zone twice."""
    zones: list[ZoneInfo] = [UTC]
    for zone in (office.timezone, *office.also_show):
        if zone.key not in {z.key for z in zones}:
            zones.append(zone)
    return [EmbargoLine(zone_label(z), when(embargo, z)) for z in zones]


HEADING = re.compile(r"^[^.!?:;]{1,80}$")


def body_blocks(body: tuple[str, ...]) -> list[tuple[str, Any]]:
    """Group plain body elements for HTML: ("p", text), ("h", text), ("ul"/"ol", [items])."""
    blocks: list[tuple[str, Any]] = []
    for index, paragraph in enumerate(body):
        bullet = paragraph.startswith("- ")
        numbered = re.match(r"^\d+[.)] ", paragraph)
        if bullet or numbered:
            kind = "ul" if bullet else "ol"
            item = paragraph[numbered.end():] if numbered else paragraph[2:]
            if blocks and blocks[-1][0] == kind:
                blocks[-1][1].append(item)
            else:
                blocks.append((kind, [item]))
        elif HEADING.match(paragraph) and len(paragraph.split()) <= 10 and index + 1 < len(body):
            blocks.append(("h", paragraph))
        else:
            blocks.append(("p", paragraph))
    return blocks


DEFAULT_TEMPLATES = Path(__file__).parent / "templates"


class Renderer:
    """Loads each template from the office's folder if it has that file, else the default shipped with the
    package: an office overrides templates file by file. Each template is compiled once."""

    def __init__(self, templates: Path, office: Office):
        self.templates = templates
        self.office = office
        self.env = Environment(
            loader=ChoiceLoader([FileSystemLoader(str(templates)), FileSystemLoader(str(DEFAULT_TEMPLATES))]),
            autoescape=lambda name: name is not None and name.endswith((".html.j2", ".html", ".xml.j2", ".xml")),
            undefined=StrictUndefined,
            keep_trailing_newline=True,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.filters["when"] = when
        self.env.filters["local_time"] = local_time
        self.env.filters["breakable"] = breakable

    def render(self, name: str, **context) -> str:
        try:
            template = self.env.get_template(name)
        except TemplateNotFound:
            raise ConfigError(f"template {name} not found", where=str(self.templates)) from None
        except TemplateSyntaxError as exc:
            raise ConfigError(f"template syntax error: {exc.message}", where=f"{exc.filename}:{exc.lineno}") from None
        return template.render(**context)

    def context(self, statement: Statement, statement_id: str, embargo: datetime | None, embargoed: bool) -> dict:
        """What every template can use. All statement text arrives as data."""
        return {
            "office": self.office,
            "statement": statement,
            "id": statement_id,
            "embargo": embargo,
            "embargoed": embargoed,
            "embargo_lines": embargo_lines(embargo, self.office) if embargo else [],
            "embargo_office": when(embargo, self.office.timezone, with_weekday=False) if embargo else "",
            "blocks": body_blocks(statement.body),
            "body_html": Markup(statement.body_html) if statement.body_html else None,
            "public_url": self.office.public_link(statement_id),
            "summary": statement.first_sentence(),
            "media": statement.media,  # photos and documents (distributor.statements.model.Media)
            "correction": None,
            "stopped": None,  # a preview of a withdrawn or retracted statement: "withdrawn" or "retracted"
        }
