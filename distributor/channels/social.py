"""What the social channels share: the post text, fitted to a network's limit without ever cutting the link, and
the images a post carries (read from the media store when the post is rendered; uploaded only when it is delivered)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import regex

from distributor.channels.base import Job
from distributor.config import Table
from distributor.media import Rendition, store_of
from distributor.render import Renderer
from distributor.statements.model import Media

URL = re.compile(r"https?://[^\s<>\"]+")
_TRAILING = ".,;:!?'\")]}»”’"


def links(text: str) -> list[tuple[int, int, str]]:
    """(start, end, url) of each link, without the punctuation that ends the sentence around it: in
    ``(https://example.org/x).`` the link is ``https://example.org/x``. A closing bracket stays when the URL
    opened one (``https://en.wikipedia.org/wiki/Foo_(bar)``)."""
    found = []
    for match in URL.finditer(text):
        url = match.group()
        while url and url[-1] in _TRAILING:
            closing = url[-1]
            opening = {")": "(", "]": "[", "}": "{"}.get(closing)
            if opening and url.count(opening) >= url.count(closing):
                break
            url = url[:-1]
        if len(url) > len("https://"):
            found.append((match.start(), match.start() + len(url), url))
    return found
ELLIPSIS = "…"
NETWORKS = ("mastodon", "bluesky")


def graphemes(text: str) -> list[str]:
    return regex.findall(r"\X", text)


def count_graphemes(text: str) -> int:
    return len(graphemes(text))


def count_mastodon(text: str, url_length: int = 23) -> int:
    """As Mastodon counts: graphemes, with every URL counting as ``url_length``."""
    return count_graphemes(URL.sub("x" * url_length, text))


def shorten(text: str, keep: int) -> str:
    """At most ``keep`` graphemes, ending in an ellipsis; cut at a word boundary when there is one."""
    units = graphemes(text)
    if len(units) <= keep:
        return text
    if keep <= 1:
        return ""
    head = "".join(units[: keep - 1])
    space = max(head.rfind(" "), head.rfind("\n"))
    if space > 0:
        head = head[:space]
    return head.rstrip(" \n,;:–—-") + ELLIPSIS


def fit(render: Callable[[str, str], str], title: str, summary: str, limit: int,
        count: Callable[[str], int]) -> str:
    """The longest text within ``limit``: shorten the summary first, then the title. The link is never cut."""

    def best(full: str, make: Callable[[str], str]) -> str | None:
        low, high, found = 0, count_graphemes(full), None
        while low <= high:
            middle = (low + high) // 2
            text = make(shorten(full, middle))
            if count(text) <= limit:
                found, low = text, middle + 1
            else:
                high = middle - 1
        return found

    whole = render(title, summary)
    if count(whole) <= limit:
        return whole
    if summary:
        text = best(summary, lambda s: render(title, s))
        if text is not None:
            return text
    text = best(title, lambda t: render(t, ""))
    if text is None:
        raise ValueError(f"the link alone is longer than the limit of {limit}")
    return text


def render_post(renderer: Renderer, network: str, job: Job) -> Callable[[str, str], str]:
    """A function (title, summary) → post text, from ``templates/social/<network>.txt.j2``."""
    link = renderer.office.public_link(job.statement_id)

    def render(title: str, summary: str) -> str:
        text = renderer.render(f"social/{network}.txt.j2", statement=job.statement, title=title, summary=summary,
                               link=link, id=job.statement_id)
        return re.sub(r"\n{3,}", "\n\n", text).strip()
    return render


def accounts(channels: Table, network: str) -> list[Table]:
    """``[[channels.social]]`` tables of one network; checks the keys every account shares."""
    found = []
    for table in channels.tables("social"):
        kind = table.data.get("network")
        if kind not in NETWORKS:
            raise table.error("network", f"expected one of {', '.join(NETWORKS)}, got {kind!r}")
        if kind == network:
            table.get("network", str)
            found.append(table)
    return found


def unique_names(tables: list[Table], what: str) -> None:
    seen = set()
    for table in tables:
        name = table.data.get("name")
        if name in seen:
            raise table.error("name", f"another {what} is already called {name!r}")
        seen.add(name)


# -- the images a post carries --------------------------------------------------------------------------------------

MAX_IMAGES = 4  # Mastodon's and Bluesky's limit of images in one post


@dataclass(frozen=True)
class Picture:
    """An image a post carries: the item as the revision describes it, and its files as they leave distributor
    (stripped of their metadata): the original first, then the renditions from the largest."""

    item: Media
    files: tuple[Rendition, ...]

    @property
    def name(self) -> str:
        return self.item.name

    @property
    def alt(self) -> str:
        return self.item.alt or ""


class Post:
    """What a social channel renders once per revision, with no connection: the text (called as
    ``post(title, summary)``) and the pictures it carries. A picture whose files are missing from ``paths.media``
    is ``problem``: the delivery waits for it rather than posting without it."""

    def __init__(self, text: Callable[[str, str], str], pictures: tuple[Picture, ...] = (), problem: str | None = None,
                 link: str = ""):
        self.text = text
        self.pictures = pictures
        self.problem = problem
        self.link = link

    def __call__(self, title: str, summary: str) -> str:
        return self.text(title, summary)


def images(statement) -> tuple[Media, ...]:
    """The photos a post carries: the statement's first four images, in its order (documents stay on the page)."""
    return tuple(item for item in statement.media if item.is_image)[:MAX_IMAGES]


def pictures(config, statement) -> tuple[tuple[Picture, ...], str | None]:
    """The statement's pictures with their files, and what is missing from the store (None: nothing)."""
    store = store_of(config)
    found, missing = [], []
    for item in images(statement):
        try:
            found.append(Picture(item, tuple(store.renditions(item))))
        except (OSError, ValueError):
            missing.append(item.name)
    problem = f"media missing from paths.media ({store.root}): {', '.join(missing)}" if missing else None
    return tuple(found), problem


def make_post(renderer: Renderer, config, network: str, job: Job) -> Post:
    """The post of one revision: its text and its pictures (read from the store, never uploaded here)."""
    found, problem = pictures(config, job.statement)
    return Post(render_post(renderer, network, job), found, problem, renderer.office.public_link(job.statement_id))


def describe_pictures(found: tuple[Picture, ...], none: str = "no images") -> str:
    """The images a preview says would be attached: name, pixels, alt text."""
    if not found:
        return none
    lines = [f"{len(found)} image{'s' if len(found) != 1 else ''} attached:"]
    for n, picture in enumerate(found, 1):
        item = picture.item
        lines.append(f"  {n}. {item.name} ({item.width}×{item.height}, {item.content_type}): alt \"{picture.alt}\"")
    return "\n".join(lines)
