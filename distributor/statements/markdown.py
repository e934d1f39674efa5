"""Markdown statements with YAML front matter (required).

    ---
    title: ...
    date: 2026-10-14
    reference: "Index: NRW 12/004/2026"
    serial: News Service No. 118
    embargo: 2026-10-15T00:01:00+01:00      # an offset or an IANA zone; naive times are rejected
    contacts: |
      Press office, +44 20 7946 0000
    summary: One line for social posts.
    channels: [email, wire, feed, social]
    ---
    Body in Markdown. Raw HTML is shown as text, never passed through.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import frontmatter
import yaml
from markdown_it import MarkdownIt

from distributor.errors import InputError
from distributor.files import decode
from distributor.statements.model import Statement
from distributor.statements.times import in_range, parse_instant

KEYS = {"title", "date", "reference", "serial", "embargo", "contacts", "summary", "channels",
        "kind", "language", "located", "classification"}

_markdown = MarkdownIt("commonmark", {"html": False})


def _text(inline) -> str:
    parts = []
    for child in inline.children or []:
        if child.type in ("text", "code_inline"):
            parts.append(child.content)
        elif child.type in ("softbreak", "hardbreak"):
            parts.append(" ")
    return "".join(parts).strip()


def body_paragraphs(tokens) -> list[str]:
    """Headings, paragraphs and list items as plain text, list items keeping their marker."""
    paragraphs: list[str] = []
    lists: list[list] = []  # stack of [ordered, counter]
    for index, token in enumerate(tokens):
        if token.type in ("bullet_list_open", "ordered_list_open"):
            lists.append([token.type == "ordered_list_open", int(token.attrs.get("start", 1) or 1) - 1])
        elif token.type in ("bullet_list_close", "ordered_list_close"):
            lists.pop()
        elif token.type == "list_item_open":
            lists[-1][1] += 1
        elif token.type == "inline":
            text = _text(token)
            opener = tokens[index - 1]
            if not text:
                continue
            if lists and opener.type == "paragraph_open" and tokens[index - 2].type == "list_item_open":
                ordered, counter = lists[-1]
                paragraphs.append(f"{counter}. {text}" if ordered else f"- {text}")
            else:
                paragraphs.append(text)
        elif token.type in ("fence", "code_block") and token.content.strip():
            paragraphs.append(token.content.rstrip("\n"))
    return paragraphs


def _field(meta: dict, key: str, source: str, kinds: tuple, required: bool = False):
    value = meta.get(key)
    if value is None:
        if required:
            raise InputError(f"front matter lacks '{key}'", where=source)
        return None
    if not isinstance(value, kinds):
        names = " or ".join(k.__name__ for k in kinds)
        raise InputError(f"front matter '{key}': expected {names}, got {value!r}", where=source)
    return value


FRONT_MATTER_MAX = 64 * 1024  # a statement's front matter is a few lines


class _NoAliases(yaml.SafeLoader):
    """YAML without aliases: a few hundred bytes of nested aliases would otherwise expand to gigabytes."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            raise yaml.composer.ComposerError(None, None, "aliases (*name) are not allowed in front matter",
                                              self.peek_event().start_mark)
        return super().compose_node(parent, index)


class _FrontMatter(frontmatter.YAMLHandler):
    def load(self, fm: str, **kwargs: object):
        return yaml.load(fm, Loader=_NoAliases)  # noqa: S506 - a SafeLoader without aliases


def parse(data: bytes, source: str) -> Statement:
    text = decode(data, source)
    if not text.lstrip().startswith("---"):
        raise InputError("Markdown statements need YAML front matter between '---' lines at the top", where=f"{source}:1")
    start = text.find("---")
    if text.find("\n---", start + 3, start + FRONT_MATTER_MAX + 4) == -1 and len(text) > start + FRONT_MATTER_MAX:
        raise InputError(f"front matter is longer than {FRONT_MATTER_MAX // 1024} KiB, or has no closing '---'",
                         where=f"{source}:1")
    try:
        post = frontmatter.loads(text, handler=_FrontMatter())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 2}" if mark else source
        raise InputError(f"front matter is not valid YAML ({getattr(exc, 'problem', exc)})", where=where) from None
    except (ValueError, OverflowError) as exc:  # a date YAML recognises but the calendar has not: 2026-13-45
        raise InputError(f"front matter has an impossible date or time ({exc})", where=source) from None
    meta = post.metadata
    unknown = sorted(set(meta) - KEYS)
    if unknown:
        raise InputError(f"front matter has unknown key '{unknown[0]}'; expected some of {', '.join(sorted(KEYS))}",
                         where=source)

    title = str(_field(meta, "title", source, (str,), required=True)).strip()
    issued = _field(meta, "date", source, (date, str))
    if isinstance(issued, datetime):
        issued = issued.date()
    elif isinstance(issued, str):
        try:
            issued = date.fromisoformat(issued)
        except ValueError:
            raise InputError(f"front matter 'date': expected YYYY-MM-DD, got {issued!r}", where=source) from None

    embargo = _field(meta, "embargo", source, (datetime, str))
    if isinstance(embargo, datetime):
        if embargo.tzinfo is None:
            raise InputError("front matter 'embargo' has no offset; write e.g. 2026-10-15T00:01:00+01:00",
                             where=source)
        try:
            embargo = in_range(embargo.astimezone(UTC))
        except (ValueError, OverflowError) as exc:
            raise InputError(f"front matter 'embargo': {exc}", where=source) from None
    elif isinstance(embargo, str):
        try:
            embargo = parse_instant(embargo)
        except ValueError as exc:
            raise InputError(f"front matter 'embargo': {exc}", where=source) from None

    contacts = _field(meta, "contacts", source, (str, list)) or ""
    if isinstance(contacts, list):
        contacts = "\n".join(str(c) for c in contacts)
    channels = _field(meta, "channels", source, (list, str))
    if isinstance(channels, str):
        channels = [c.strip() for c in channels.split(",") if c.strip()]
    serial = _field(meta, "serial", source, (str, int))

    tokens = _markdown.parse(post.content)
    body = tuple(body_paragraphs(tokens))
    if not body:
        raise InputError("no body paragraph found after the front matter", where=source)
    return Statement(
        title=title, body=body, kind=str(meta.get("kind") or "Press Release"), date=issued,
        reference=_field(meta, "reference", source, (str,)), serial=str(serial) if serial is not None else None,
        embargo=embargo, contacts=contacts.strip(), classification=_field(meta, "classification", source, (str,)),
        summary=_field(meta, "summary", source, (str,)), body_html=_markdown.renderer.render(tokens, _markdown.options, {}),
        channels=tuple(str(c) for c in channels) if channels is not None else None,
        language=_field(meta, "language", source, (str,)), located=_field(meta, "located", source, (str,)),
        source_format="markdown",
    )
