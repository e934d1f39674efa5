"""config/distributor.toml → frozen dataclasses. Every error names its key.

Channel tables (``[channels.*]``) are declared and validated by each channel's own module;
this module only provides the :class:`Table` reader they use.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from email_validator import EmailNotValidError, validate_email

from distributor.errors import ConfigError

DEFAULT_CONFIG = Path("config/distributor.toml")
DAY = 86400.0
_MISSING = object()

_TYPE_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "true or false", list: "a list", dict: "a table"}


class Table:
    """One TOML table, read key by key. Call :meth:`done` to reject keys nobody asked for."""

    def __init__(self, data: Any, key: str, source: Path):
        self.key = key
        self.source = source
        if not isinstance(data, dict):
            raise self.error(None, "expected a table")
        self.data = data
        self._seen: set[str] = set()

    @property
    def base(self) -> Path:
        return self.source.parent

    def name_of(self, name: str | None) -> str:
        if name is None:
            return self.key
        return f"{self.key}.{name}" if self.key else name

    def error(self, name: str | None, message: str) -> ConfigError:
        return ConfigError(f"{self.name_of(name)}: {message}", where=str(self.source))

    def has(self, name: str) -> bool:
        return name in self.data

    def get(self, name: str, kind: type | tuple = str, default: Any = _MISSING, *,
            choices: tuple | None = None, check: Callable[[Any], Any] | None = None) -> Any:
        self._seen.add(name)
        if name not in self.data:
            if default is _MISSING:
                raise self.error(name, "required key is missing")
            return default
        value = self.data[name]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        ok = any(isinstance(value, k) and not (k in (int, float) and isinstance(value, bool)) for k in kinds)
        if float in kinds and isinstance(value, int) and not isinstance(value, bool):
            ok, value = True, float(value)
        if not ok:
            expected = " or ".join(_TYPE_NAMES.get(k, k.__name__) for k in kinds)
            raise self.error(name, f"expected {expected}, got {value!r}")
        if choices is not None and value not in choices:
            raise self.error(name, f"expected one of {', '.join(map(str, choices))}, got {value!r}")
        if check is not None:
            try:
                value = check(value)
            except (ValueError, TypeError) as exc:
                raise self.error(name, str(exc)) from None
        return value

    def path(self, name: str, default: str) -> Path:
        raw = self.get(name, str, default)
        return (self.base / raw).resolve() if not os.path.isabs(raw) else Path(raw)

    def table(self, name: str) -> Table:
        self._seen.add(name)
        return Table(self.data.get(name, {}), self.name_of(name), self.source)

    def tables(self, name: str) -> list[Table]:
        """An array of tables (``[[name]]``); a single table is accepted as a list of one."""
        self._seen.add(name)
        raw = self.data.get(name, [])
        if isinstance(raw, dict):
            raw = [raw]
        if not isinstance(raw, list):
            raise self.error(name, "expected an array of tables")
        return [Table(item, f"{self.name_of(name)}[{i}]", self.source) for i, item in enumerate(raw)]

    def done(self) -> None:
        for name in self.data:
            if name not in self._seen:
                raise self.error(name, "unknown key")


def secret(env_name: str, key: str) -> str:
    """A secret from the environment variable the config names; never from the file, never logged."""
    value = os.environ.get(env_name)
    if value is None:
        raise ConfigError(f"{key}: environment variable {env_name} is not set")
    return value


def zone(value: str) -> ZoneInfo:
    try:
        return ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"expected an IANA time zone such as Europe/London, got {value!r}") from None


def email_address(value: str) -> str:
    try:
        return validate_email(value, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise ValueError(f"expected an email address, got {value!r} ({exc})") from None


def positive(value: float) -> float:
    if value <= 0:
        raise ValueError(f"expected a positive number, got {value!r}")
    return value


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def secure_url(value: str) -> str:
    """An https:// URL, or http:// to this machine only: a token or password never crosses a network in clear."""
    parts = urlsplit(value)
    if parts.scheme == "https" and parts.hostname:
        return value
    if parts.scheme == "http" and parts.hostname and is_loopback(parts.hostname):
        return value
    raise ValueError(f"expected an https:// URL (http:// only to this machine), got {value!r}")


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme in ("http", "https") and parts.hostname:
        return value
    raise ValueError(f"expected an http:// or https:// URL, got {value!r}")


def between(low: float, high: float, low_open: bool = False) -> Callable[[float], float]:
    """A check for a number in [low, high] ((low, high] with ``low_open``)."""
    def check(value: float) -> float:
        if not (low < value if low_open else low <= value) or value > high:
            lower = f"more than {low:g}" if low_open else f"from {low:g}"
            raise ValueError(f"expected a number {lower} to {high:g}, got {value!r}")
        return value
    return check


PLACEHOLDER_PUBLIC_URL = "https://press.example.org/statements/{id}"  # neither office.public_url nor a newsroom


@dataclass(frozen=True)
class Office:
    name: str
    timezone: ZoneInfo
    also_show: tuple[ZoneInfo, ...]
    from_addr: str
    reply_to: str
    unsubscribe_mailto: str
    public_url: str | None  # a statement's public page ({id} is replaced); None: the newsroom's, or a placeholder
    language: str
    located: str | None = None
    base_url: str | None = None    # the web app's public address: links and unsubscribe URLs
    four_eyes: bool = False        # an editor may not approve a revision they imported

    def public_link(self, statement_id: str) -> str:
        pattern = self.public_url or PLACEHOLDER_PUBLIC_URL
        if "{id}" in pattern:
            return pattern.replace("{id}", statement_id)
        return pattern + statement_id

    @property
    def domain(self) -> str:
        return self.from_addr.rpartition("@")[2]


@dataclass(frozen=True)
class Paths:
    templates: Path
    recipients: Path
    media: Path = Path("media")  # photos and documents, kept by content hash


@dataclass(frozen=True)
class MediaSettings:
    max_bytes: int = 25_000_000  # one file, as uploaded; the web app's upload limit follows it


@dataclass(frozen=True)
class DeliveryPolicy:
    retry_first_seconds: float = 30.0
    retry_max_seconds: float = 900.0
    max_attempts: int = 8
    batch_size: int = 500
    lease_seconds: float = 300.0
    worker_timeout_seconds: float = 15.0
    notice_lead_seconds: float = 600.0     # an embargo moves earlier only this far ahead: the notices go first
    alert_after_seconds: float = 300.0     # a channel meeting only transport faults this long raises an alert
    alert_command: str | None = None       # run with an alert's text on standard input

    def backoff(self, attempts: int) -> float:
        """Seconds to wait after the given number of attempts (1 → first retry)."""
        return min(self.retry_first_seconds * 2 ** max(attempts - 1, 0), self.retry_max_seconds)


@dataclass(frozen=True)
class Web:
    secret_env: str | None = None  # the variable holding the key that signs sessions and unsubscribe links
    session_idle_hours: float = 12.0
    session_max_days: float = 7.0   # a session ends this long after its login, however busy
    login_failures: int = 5         # failed logins per user and per address within the window, then refused
    login_window_minutes: float = 15.0
    behind_proxy: bool = False      # trust one reverse proxy's X-Forwarded-For, -Proto, -Host and -Prefix


@dataclass(frozen=True)
class Portal:
    """The journalists' own door (``[portal]``): a link per journalist in every email, never a password."""

    terms: str                          # the office's embargo terms, agreed to at the first redemption
    link_days: float = 30.0             # a link works until this long after its statement's embargo
    session_hours: float = 24.0
    failures: int = 20                  # failed or unknown token attempts per address within the window
    window_minutes: float = 15.0
    keep_days: float = 365.0            # views, with their addresses and user agents, are kept this long
    self_service_lists: tuple[str, ...] = ()  # lists a journalist may join or leave by themselves


@dataclass(frozen=True)
class Config:
    path: Path
    office: Office
    paths: Paths
    database_url: str
    delivery: DeliveryPolicy
    channels: dict[str, Any] = field(default_factory=dict)  # channel name -> its parsed settings
    web: Web = field(default_factory=Web)
    media: MediaSettings = field(default_factory=MediaSettings)
    portal: Portal | None = None  # on when [portal] is present


def resolve_database_url(url: str, base: Path) -> str:
    prefix = "sqlite:///"
    if url.startswith(prefix):
        rest = url[len(prefix):]
        db_path, sep, query = rest.partition("?")
        if db_path and db_path != ":memory:" and not os.path.isabs(db_path):
            return prefix + str((base / db_path).resolve()) + sep + query
    return url


def config_path(cli_value: str | None) -> Path:
    """``--config`` wins over ``DISTRIBUTOR_CONFIG``, which wins over the default."""
    return Path(cli_value or os.environ.get("DISTRIBUTOR_CONFIG") or DEFAULT_CONFIG)


ChannelParser = Callable[["Table", "Office"], dict[str, Any]]


def load(path: Path, parse_channels: ChannelParser) -> Config:
    """Read the file. ``parse_channels`` (from the channel registry) reads ``[channels]``."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError("config file not found (use --config PATH or DISTRIBUTOR_CONFIG)", where=str(path)) from None
    except IsADirectoryError:
        raise ConfigError("is a directory; expected the config file (config/distributor.toml)", where=str(path)) from None
    except OSError as exc:
        raise ConfigError(f"cannot read the config file ({exc.strerror})", where=str(path)) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not UTF-8 text ({exc.reason} at byte {exc.start})", where=str(path)) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}", where=str(path)) from None
    path = path.resolve()
    root = Table(raw, "", path)

    o = root.table("office")
    from_addr = o.get("from", check=email_address)
    reply_to = o.get("reply_to", str, from_addr, check=email_address)
    office = Office(
        name=o.get("name"),
        timezone=o.get("timezone", check=zone),
        also_show=tuple(zone(z) for z in o.get("also_show", list, [], check=_zone_list)),
        from_addr=from_addr,
        reply_to=reply_to,
        unsubscribe_mailto=o.get("unsubscribe_mailto", str, reply_to, check=email_address),
        public_url=o.get("public_url", str, None),
        language=o.get("language", str, "en"),
        located=o.get("located", str, None),
        base_url=(o.get("base_url", str, None, check=_http_url) or "").rstrip("/") or None,
        four_eyes=o.get("four_eyes", bool, False),
    )
    o.done()

    p = root.table("paths")
    paths = Paths(templates=p.path("templates", "../templates"), recipients=p.path("recipients", "../recipients"),
                  media=p.path("media", "../media"))
    p.done()

    m = root.table("media")
    media = MediaSettings(max_bytes=int(m.get("max_bytes", int, 25_000_000, check=between(1000, 2_000_000_000))))
    m.done()

    d = root.table("database")
    database_url = resolve_database_url(d.get("url"), path.parent)
    d.done()

    r = root.table("delivery")
    delivery = DeliveryPolicy(
        retry_first_seconds=r.get("retry_first_seconds", float, 30.0, check=between(0, DAY, low_open=True)),
        retry_max_seconds=r.get("retry_max_seconds", float, 900.0, check=between(0, 7 * DAY, low_open=True)),
        max_attempts=int(r.get("max_attempts", int, 8, check=between(1, 1000))),
        batch_size=int(r.get("batch_size", int, 500, check=between(1, 100_000))),
        lease_seconds=r.get("lease_seconds", float, 300.0, check=between(1, DAY)),
        worker_timeout_seconds=r.get("worker_timeout_seconds", float, 15.0, check=between(1, 3600)),
        notice_lead_seconds=r.get("notice_lead_seconds", float, 600.0, check=between(0, DAY)),
        alert_after_seconds=r.get("alert_after_seconds", float, 300.0, check=between(1, DAY)),
        alert_command=r.get("alert_command", str, None) or None,
    )
    r.done()

    w = root.table("web")
    web = Web(
        secret_env=w.get("secret_env", str, None),
        session_idle_hours=w.get("session_idle_hours", float, 12.0, check=between(0, 24 * 30, low_open=True)),
        session_max_days=w.get("session_max_days", float, 7.0, check=between(0, 365, low_open=True)),
        login_failures=int(w.get("login_failures", int, 5, check=between(1, 1000))),
        login_window_minutes=w.get("login_window_minutes", float, 15.0, check=between(0, DAY, low_open=True)),
        behind_proxy=w.get("behind_proxy", bool, False),
    )
    w.done()
    if office.base_url and not web.secret_env:
        raise w.error("secret_env", "office.base_url is set: the unsubscribe links in every email are signed with the "
                                    "key this variable holds; name it")

    portal = None
    if root.has("portal"):
        t = root.table("portal")
        lists = t.get("self_service_lists", list, [])
        if not all(isinstance(name, str) and name.strip() for name in lists):
            raise t.error("self_service_lists", "expected a list of list names, e.g. [\"health\", \"europe\"]")
        terms = t.get("terms", str)
        if not terms.strip():
            raise t.error("terms", "expected the office's embargo terms, which each journalist agrees to")
        portal = Portal(
            terms=terms.strip(),
            link_days=t.get("link_days", float, 30.0, check=between(0, 3650, low_open=True)),
            session_hours=t.get("session_hours", float, 24.0, check=between(0, 24 * 90, low_open=True)),
            failures=int(t.get("failures", int, 20, check=between(1, 100_000))),
            window_minutes=t.get("window_minutes", float, 15.0, check=between(0, DAY, low_open=True)),
            keep_days=t.get("keep_days", float, 365.0, check=between(1, 3650 * 3)),
            self_service_lists=tuple(dict.fromkeys(name.strip() for name in lists)),
        )
        t.done()
        if not office.base_url:
            raise t.error(None, "the portal's links start with office.base_url; set it in [office]")
    else:
        root.table("portal")
    channels = parse_channels(root.table("channels"), office)
    root.done()
    return Config(path=path, office=office, paths=paths, database_url=database_url, delivery=delivery,
                  channels=channels, web=web, media=media, portal=portal)


def _zone_list(value: list) -> list:
    for item in value:
        if not isinstance(item, str):
            raise ValueError(f"expected a list of IANA zone names, got {item!r}")
        zone(item)
    return value
