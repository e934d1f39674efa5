"""Channels, registered in one explicit table. Adding a channel means adding its module and a line here."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from distributor import config
from distributor.channels.base import Channel, Context, Job
from distributor.channels.bluesky import BlueskyChannel
from distributor.channels.email import EmailChannel
from distributor.channels.feed import FeedChannel
from distributor.channels.mastodon import MastodonChannel
from distributor.channels.newsroom import NewsroomChannel
from distributor.channels.wire import WireChannel
from distributor.config import Config, Office, Table
from distributor.errors import InputError

REGISTRY: dict[str, type[Channel]] = {
    EmailChannel.name: EmailChannel,
    WireChannel.name: WireChannel,
    FeedChannel.name: FeedChannel,
    MastodonChannel.name: MastodonChannel,
    BlueskyChannel.name: BlueskyChannel,
    NewsroomChannel.name: NewsroomChannel,
}

# Channels every release goes to when configured, whatever ``--channels`` says: the others link to them.
ALWAYS = (NewsroomChannel.name,)

# Names a person may give to ``schedule --channels`` that stand for several channels.
GROUPS: dict[str, tuple[str, ...]] = {"social": (MastodonChannel.name, BlueskyChannel.name)}


def parse_channel_tables(table: Table, office: Office) -> dict[str, Any]:
    settings = {}
    for name, channel in REGISTRY.items():
        parsed = channel.configure(table, office)
        if parsed is not None:
            settings[name] = parsed
    table.done()
    newsroom, feed = settings.get(NewsroomChannel.name), settings.get(FeedChannel.name)
    if newsroom is not None and feed is not None and not feed.path_given:  # the site's own feed
        settings[FeedChannel.name] = replace(feed, path=newsroom.directory / "feed.atom",
                                             link=feed.link or f"{newsroom.url}feed.atom")
    return settings


def load_config(path: Path) -> Config:
    """The config file, with each configured channel's table read by the channel itself. With a newsroom, a
    statement's public page is its page there unless ``office.public_url`` says otherwise."""
    loaded = config.load(path, parse_channel_tables)
    newsroom = loaded.channels.get(NewsroomChannel.name)
    if newsroom is not None and loaded.office.public_url is None:
        loaded = replace(loaded, office=replace(loaded.office, public_url=f"{newsroom.url}{{id}}/"))
    return loaded


def build(context: Context) -> dict[str, Channel]:
    return {name: REGISTRY[name](settings, context) for name, settings in context.config.channels.items()}


def expand(word: str, option: str = "--channel") -> tuple[str, ...]:
    """A channel name or group (``social``) → the channel names it stands for; an unknown one is an error."""
    names = GROUPS.get(word, (word,))
    if any(name not in REGISTRY for name in names):
        raise InputError(f"unknown channel {word!r}; expected one of {', '.join([*REGISTRY, *GROUPS])}", where=option)
    return names


def choose(requested: str | None, configured: dict[str, Any], from_document: tuple[str, ...] | None) -> list[str]:
    """``--channels email,wire,social`` → channel names; default: the document's list, else every configured one."""
    if requested is None and from_document is None:
        return [name for name in REGISTRY if name in configured]
    words = [w.strip() for w in (requested.split(",") if requested is not None else from_document or ()) if w.strip()]
    chosen: list[str] = []
    for word in words:
        for name in expand(word, "--channels"):
            if name not in configured:
                if word in GROUPS:
                    continue
                raise InputError(f"channel {name!r} is not configured (add [channels.{name}] to the config)",
                                 where="--channels")
            if name not in chosen:
                chosen.append(name)
    if not chosen:
        raise InputError("no configured channel chosen", where="--channels")
    return chosen + [name for name in ALWAYS if name in configured and name not in chosen]


__all__ = ["Channel", "Context", "Job", "REGISTRY", "build", "choose", "expand", "load_config", "parse_channel_tables"]
