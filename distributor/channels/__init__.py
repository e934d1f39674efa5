"""Channels, registered in one explicit table. Adding a channel means adding its module and a line here."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from distributor import config
from distributor.channels.base import Channel, Context, Job
from distributor.channels.bluesky import BlueskyChannel
from distributor.channels.email import EmailChannel
from distributor.channels.feed import FeedChannel
from distributor.channels.mastodon import MastodonChannel
from distributor.channels.wire import WireChannel
from distributor.config import Config, Office, Table
from distributor.errors import InputError

REGISTRY: dict[str, type[Channel]] = {
    EmailChannel.name: EmailChannel,
    WireChannel.name: WireChannel,
    FeedChannel.name: FeedChannel,
    MastodonChannel.name: MastodonChannel,
    BlueskyChannel.name: BlueskyChannel,
}

# Names a person may give to ``schedule --channels`` that stand for several channels.
GROUPS: dict[str, tuple[str, ...]] = {"social": (MastodonChannel.name, BlueskyChannel.name)}


def parse_channel_tables(table: Table, office: Office) -> dict[str, Any]:
    settings = {}
    for name, channel in REGISTRY.items():
        parsed = channel.configure(table, office)
        if parsed is not None:
            settings[name] = parsed
    table.done()
    return settings


def load_config(path: Path) -> Config:
    """The config file, with each configured channel's table read by the channel itself."""
    return config.load(path, parse_channel_tables)


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
    return chosen


__all__ = ["Channel", "Context", "Job", "REGISTRY", "build", "choose", "expand", "load_config", "parse_channel_tables"]
