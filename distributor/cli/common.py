"""What every command group uses: the parser class, opening the installation, who acts, times and free text given as
options, and terminal output (tables, cut cells, control characters shown, never obeyed)."""

from __future__ import annotations

import argparse
import getpass
import io
import re
import sys

from sqlalchemy.exc import OperationalError, ProgrammingError
from wcwidth import wcswidth, wcwidth

from distributor import channels as channel_registry
from distributor import config as config_module
from distributor import operations
from distributor.clock import Clock
from distributor.config import Config
from distributor.errors import ConfigError, InputError, checked_text, one_line
from distributor.statements.times import parse_instant
from distributor.store import connect
from distributor.store.engine import masked, schema_is_current


class Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def add_examples(commands: argparse._SubParsersAction[Parser], examples: dict[str, tuple[str, ...]]) -> None:
    """End each command's help with its examples; a key is the command as typed, its last word one of ``commands``."""
    for command, lines in examples.items():
        target = commands.choices[command.split()[-1]]
        target.epilog = "examples:\n" + "\n".join(f"  {line}" for line in lines)
        target.formatter_class = argparse.RawDescriptionHelpFormatter


def open_app(args, require_schema: bool = True) -> operations.App:
    config = channel_registry.load_config(config_module.config_path(args.config))
    engine = connect(config.database_url)
    if require_schema:
        try:
            current = schema_is_current(engine)
        except (OperationalError, ProgrammingError) as exc:
            raise cannot_open(config, exc) from None
        if not current:
            raise ConfigError("the database schema is missing or old; run 'distributor init'",
                              where=str(config.path))
    return operations.App(config, engine, getattr(args, "clock", None) or Clock())


def cannot_open(config: Config, exc: OperationalError | ProgrammingError) -> ConfigError:
    return ConfigError(f"database.url: cannot open the database {masked(config.database_url)} "
                       f"({one_line(exc.orig)})", where=str(config.path))


def actor(args) -> str:
    name = getattr(args, "by", None)
    if name:
        return checked_text(name, "--by", 200)
    try:
        return getpass.getuser()
    except Exception:
        return "cli"


def parse_time(value: str | None, option: str):
    if value is None:
        return None
    try:
        return parse_instant(value)
    except ValueError as exc:
        raise InputError(str(exc), where=option) from None


def optional_text(value: str | None, option: str) -> str | None:
    return checked_text(value, option, 1000) if value is not None and value.strip() else None


_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_UNPRINTABLE_BUT_LINES = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def visible(value: object, lines: bool = False) -> str:
    """Text for a terminal: control characters shown as escapes (\\x1b), never obeyed; tab and LF kept with
    ``lines``."""
    pattern = _UNPRINTABLE_BUT_LINES if lines else _UNPRINTABLE
    return pattern.sub(lambda m: repr(m.group())[1:-1], str(value))


def width(text: str) -> int:
    """Columns on a terminal: a wide character (田) takes two, a combining one none."""
    return max(wcswidth(text), 0) if text.isprintable() else len(text)


def cut(text: str, columns: int) -> str:
    """At most ``columns`` terminal columns; a cut text ends in an ellipsis."""
    if width(text) <= columns:
        return text
    kept, used = [], 0
    for char in text:
        w = max(wcwidth(char), 0)
        if used + w > columns - 1:
            break
        kept.append(char)
        used += w
    return "".join(kept) + "…"


def table(header: list[str], rows: list[list[str]]) -> None:
    rows = [[visible(c) for c in row] for row in rows]
    widths = [max([width(h)] + [width(r[i]) for r in rows]) for i, h in enumerate(header)]

    def line(cells) -> str:
        return "  ".join(c + " " * (w - width(c)) for c, w in zip(cells, widths, strict=False)).rstrip() + "\n"

    out = io.StringIO()
    out.write(line(header))
    for row in rows:
        out.write(line(row))
    sys.stdout.write(out.getvalue())
