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

KEYS = {"title", "date", "reference", "serial", "embargo", "contacts", "summary", "channels", "lists",
        "kind", "language", "located", "classification", "media"}
MEDIA_KEYS = ("file", "alt", "title", "caption", "credit", "licence")
MEDIA_MAX = 20

_markdown = MarkdownIt("commonmark", {"html": False}).enable("table")

# Inline styles for every element Markdown can produce: many mail clients drop <style>.
STYLES = {
    "h1": "font-size:22px;line-height:1.3;margin:24px 0 8px;",
    "h2": "font-size:19px;line-height:1.3;margin:22px 0 8px;",
    "h3": "font-size:17px;line-height:1.3;margin:20px 0 6px;",
    "h4": "font-size:16px;margin:18px 0 6px;", "h5": "font-size:15px;margin:16px 0 6px;",
    "h6": "font-size:14px;margin:16px 0 6px;",
    "p": "margin:0 0 14px;",
    "ul": "margin:0 0 14px;padding-left:24px;", "ol": "margin:0 0 14px;padding-left:24px;",
    "li": "margin:0 0 6px;",
    "blockquote": "margin:0 0 14px;padding:4px 0 4px 14px;border-left:4px solid #c8c8c8;color:#444444;",
    "pre": "margin:0 0 14px;padding:10px;background:#f4f4f4;font-family:Menlo,Consolas,monospace;"
           "font-size:13px;white-space:pre-wrap;",
    "code": "font-family:Menlo,Consolas,monospace;font-size:14px;background:#f4f4f4;padding:1px 3px;",
    "table": "border-collapse:collapse;margin:0 0 14px;font-size:14px;",
    "th": "border:1px solid #b4b4b4;padding:6px 10px;background:#eeeeee;text-align:left;",
    "td": "border:1px solid #b4b4b4;padding:6px 10px;vertical-align:top;",
    "a": "color:#0b57d0;text-decoration:underline;",
    "hr": "border:0;border-top:1px solid #c8c8c8;margin:20px 0;",
}


def _image_as_link(token, Token) -> list:
    """An email never loads a remote resource: an image becomes a link with its alt text."""
    src = token.attrGet("src") or ""
    alt = "".join(c.content for c in token.children or []) or token.content or "image"
    opening = Token("link_open", "a", 1)
    opening.attrSet("href", src)
    opening.attrSet("style", STYLES["a"])
    text = Token("text", "", 0)
    text.content = f"[image: {alt}]"
    return [opening, text, Token("link_close", "a", -1)]


# A table wider than a phone scrolls in its own box, its words whole, rather than the whole message sideways.
TABLE_BOX = '<div style="overflow-x:auto;">\n'


def styled(tokens) -> list:
    """The tokens with an inline style on every element, images turned into links and each table in a box of its
    own."""
    from markdown_it.token import Token

    boxed = []
    for token in tokens:
        if token.type == "table_open":
            boxed.append(Token("html_block", "", 0, content=TABLE_BOX))
        boxed.append(token)
        if token.type == "table_close":
            boxed.append(Token("html_block", "", 0, content="</div>\n"))
    tokens = boxed
    for token in tokens:
        if token.type in ("code_block", "fence"):
            token.attrSet("style", STYLES["pre"])
        elif token.nesting == 1 and token.tag in STYLES or token.type == "hr":
            token.attrSet("style", STYLES[token.tag])
        if token.type == "inline" and token.children:
            children = []
            for child in token.children:
                if child.type == "image":
                    children.extend(_image_as_link(child, Token))
                    continue
                if child.type in ("link_open", "code_inline"):
                    child.attrSet("style", STYLES["a" if child.type == "link_open" else "code"])
                children.append(child)
            token.children = children
    return tokens


def _text(inline) -> str:
    """An inline run as plain text: a link keeps its URL, ``text (https://...)``; an image is its alt text and URL."""
    parts = []
    href = None
    start = 0
    for child in inline.children or []:
        if child.type in ("text", "code_inline"):
            parts.append(child.content)
        elif child.type in ("softbreak", "hardbreak"):
            parts.append(" ")
        elif child.type == "link_open":
            href, start = child.attrGet("href"), len(parts)
        elif child.type == "link_close" and href:
            label = "".join(parts[start:]).strip()
            if href not in (label, f"mailto:{label}"):
                parts.append(f" ({href})")
            href = None
        elif child.type == "image":
            alt = "".join(c.content for c in child.children or []) or "image"
            parts.append(f"[image: {alt}] ({child.attrGet('src')})")
    return "".join(parts).strip()


def body_paragraphs(tokens) -> list[str]:
    """Headings, paragraphs and list items as plain text, list items keeping their marker."""
    paragraphs: list[str] = []
    lists: list[list] = []  # stack of [ordered, counter]
    row: list[str] | None = None
    for index, token in enumerate(tokens):
        if token.type == "tr_open":
            row = []
            continue
        if token.type == "tr_close" and row is not None:
            paragraphs.append(" | ".join(row))  # a table row on one line
            row = None
            continue
        if row is not None:
            if token.type == "inline":
                row.append(_text(token))
            continue
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


def _nesting(tokens, source: str, first_line: int) -> None:
    """Refuses lists and quotes nested so deep that the parser would drop what they hold (it stops at
    ``maxNesting`` levels, a list taking two, and leaves out the rest of the document without a word)."""
    deepest = _markdown.options["maxNesting"] - 1
    for token in tokens:
        if token.type in ("list_item_open", "blockquote_open") and token.level >= deepest:
            line = first_line + (token.map[0] if token.map else 0) + 1
            raise InputError("lists and quotes are nested too deeply here: what they hold would be lost; nest fewer "
                             "of them", where=f"{source}:{line}")


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


def _lists(value: list | str | None, source: str) -> tuple[str, ...] | None:
    """``lists: [health, europe]`` or ``lists: health, europe``: the recipient lists, each name once."""
    if value is None:
        return None
    parts = value.split(",") if isinstance(value, str) else value
    names = []
    for part in parts:
        if not isinstance(part, str) or not part.strip() or len(part.strip()) > 100:
            raise InputError(f"front matter 'lists': expected list names (at most 100 characters each), e.g. "
                             f"[health, europe]; got {part!r}", where=source)
        names.append(part.strip())
    if not names:
        raise InputError("front matter 'lists': expected at least one list name", where=source)
    return tuple(dict.fromkeys(names))


FRONT_MATTER_MAX = 64 * 1024  # a statement's front matter is a few lines

# What the Markdown parser is given is bounded, so that any file is read or refused within about a second: it spends
# a microsecond or less on a plain character but up to some 15 on each line break and each character that may be
# markup (``[`` ``*`` ``_`` ``<`` and the rest below); 5 MB of ``[`` took a minute. The example statement has 108 of
# them in a kilobyte, the densest page of this project's documentation 150: 50,000 is some 350 KB of such text.
MARKDOWN_MAX = 1_000_000  # bytes: some 150,000 words
MARKS_MAX = 50_000
MARKS = "\n!#$%&*+-:<=>@[\\]^_`{}|~"


FRONT_MATTER_DEPTH = 20  # lists and mappings within each other; a statement's front matter has two levels at most


class _NoAliases(yaml.SafeLoader):
    """YAML without aliases: a few hundred bytes of nested aliases would otherwise expand to gigabytes; and not
    nested deeper than ``FRONT_MATTER_DEPTH``: ``[[[[...`` thousands deep would exhaust Python's stack."""

    depth = 0

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            raise yaml.composer.ComposerError(None, None, "aliases (*name) are not allowed in front matter",
                                              self.peek_event().start_mark)
        if self.depth >= FRONT_MATTER_DEPTH:
            raise yaml.composer.ComposerError(None, None, f"nested more than {FRONT_MATTER_DEPTH} levels deep",
                                              self.peek_event().start_mark)
        self.depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


class _FrontMatter(frontmatter.YAMLHandler):
    def load(self, fm: str, **kwargs: object):
        return yaml.load(fm, Loader=_NoAliases)  # noqa: S506 - a SafeLoader without aliases


def marks(text: str) -> int:
    """How many line breaks and characters that may be Markdown markup the text has."""
    return sum(text.count(mark) for mark in MARKS)


def media_entries(value, source: str) -> list[dict[str, str | None]]:
    """``media:`` in the front matter: a list of ``{file, alt | title, caption, credit, licence}``, each checked
    here for its shape; the files themselves are read by the importer."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise InputError("front matter 'media': expected a list of items, each with 'file' and 'alt' (an image) or "
                         "'title' (a document)", where=source)
    if len(value) > MEDIA_MAX:
        raise InputError(f"front matter 'media' lists {len(value)} items; a statement carries at most {MEDIA_MAX}",
                         where=source)
    entries = []
    for index, item in enumerate(value):
        where = f"media[{index}]"
        if isinstance(item, str):
            item = {"file": item}
        if not isinstance(item, dict):
            raise InputError(f"front matter '{where}': expected a table with 'file', got {item!r}", where=source)
        unknown = sorted(set(map(str, item)) - set(MEDIA_KEYS))
        if unknown:
            raise InputError(f"front matter '{where}' has unknown key '{unknown[0]}'; expected some of "
                             f"{', '.join(MEDIA_KEYS)}", where=source)
        entry: dict[str, str | None] = {}
        for key in MEDIA_KEYS:
            found = item.get(key)
            if found is not None and not isinstance(found, (str, int, float)):
                raise InputError(f"front matter '{where}.{key}': expected text, got {found!r}", where=source)
            entry[key] = str(found) if found is not None else None
        if not entry["file"] or not entry["file"].strip():
            raise InputError(f"front matter '{where}' lacks 'file', the file's path beside the statement",
                             where=source)
        entries.append(entry)
    return entries


def parse(data: bytes, source: str) -> Statement:
    return parse_document(data, source)[0]


def parse_document(data: bytes, source: str) -> tuple[Statement, list[dict[str, str | None]]]:
    """The statement, and the media its front matter lists (not yet read)."""
    if len(data) > MARKDOWN_MAX:
        raise InputError(f"the file has {len(data):,} bytes; a Markdown statement has at most {MARKDOWN_MAX:,} (1 MB)",
                         where=source)
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
    lists = _lists(_field(meta, "lists", source, (list, str)), source)
    serial = _field(meta, "serial", source, (str, int))
    media = media_entries(meta.get("media"), source)

    found = marks(post.content)
    if found > MARKS_MAX:
        raise InputError(f"the body has {found:,} line breaks and Markdown marks ([ ] * _ ` < > and the like); a "
                         f"statement has at most {MARKS_MAX:,}", where=source)
    tokens = _markdown.parse(post.content)
    _nesting(tokens, source, text.count("\n", 0, text.find(post.content, start + 3)) if post.content else 0)
    body = tuple(body_paragraphs(tokens))
    if not body:
        raise InputError("no body paragraph found after the front matter", where=source)
    return Statement(
        title=title, body=body, kind=str(meta.get("kind") or "Press Release"), date=issued,
        reference=_field(meta, "reference", source, (str,)), serial=str(serial) if serial is not None else None,
        embargo=embargo, contacts=contacts.strip(), classification=_field(meta, "classification", source, (str,)),
        summary=_field(meta, "summary", source, (str,)),
        body_html=_markdown.renderer.render(styled(tokens), _markdown.options, {}),
        channels=tuple(str(c) for c in channels) if channels is not None else None,
        language=_field(meta, "language", source, (str,)), located=_field(meta, "located", source, (str,)),
        lists=lists, source_format="markdown",
    ), media
