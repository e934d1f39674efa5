"""Command line: parse arguments, call one function, print. A user's mistake is one line on stderr and exit 2.

This module holds main(), the global options and the assembly of the parser; each command group is a module beside
it, with its commands and their options: statements, recipients, users, web and operations. Shared helpers are in
common."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from sqlalchemy.exc import OperationalError

from distributor import __version__
from distributor.cli import media, operations, recipients, statements, users, web
from distributor.cli.common import Parser, cut, table, visible
from distributor.cli.web import serve_options
from distributor.clock import Clock
from distributor.errors import UserError, one_line

__all__ = ["EXAMPLES", "Parser", "build_parser", "cut", "main", "serve_options", "setup_logging", "table", "visible"]

GROUPS = (operations, statements, media, recipients, users, web)

# --help lists the commands in the order of an office's work, not by the module that holds them.
COMMANDS = ("new", "init", "import", "media", "show", "list", "approve", "schedule", "reschedule", "correct", "retract", "preview",
            "send-test", "retry", "withdraw", "run", "log", "report", "audit", "status", "workers", "recipients", "users",
            "serve")

EXAMPLES: dict[str, tuple[str, ...]] = {command: lines for group in GROUPS for command, lines in group.EXAMPLES.items()}


def build_parser() -> Parser:
    parser = Parser(prog="distributor", description="Embargoed press-release distribution.")
    parser.add_argument("--config", help="config file (default: $DISTRIBUTOR_CONFIG or config/distributor.toml)")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    parser.add_argument("-q", "--quiet", action="count", default=0, help="less log output")
    parser.add_argument("--version", action="version", version=f"distributor {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for group in GROUPS:
        group.add_parsers(sub)
    in_order(sub, COMMANDS)
    return parser


def in_order(sub: argparse._SubParsersAction[Parser], names: tuple[str, ...]) -> None:
    """Put the commands in this order, in the usage line and in the list --help prints; a name missing from either
    side fails here, at once."""
    sub._choices_actions.sort(key=lambda action: names.index(action.dest))
    parsers = dict(sub.choices)
    sub.choices.clear()
    sub.choices.update((name, parsers[name]) for name in names)


def setup_logging(level: int) -> None:
    levels = {-1: logging.WARNING, 0: logging.INFO, 1: logging.DEBUG}
    logging.basicConfig(level=levels[max(-1, min(1, level))], stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%Y-%m-%dT%H:%M:%S%z")
    for noisy in ("apscheduler", "alembic", "pikepdf"):
        logging.getLogger(noisy).setLevel(logging.WARNING if level < 1 else logging.INFO)


def main(argv: list[str] | None = None, clock: Clock | None = None) -> int:
    """Run one command; ``clock`` (default: the system's) is the time every command acts at."""
    args = build_parser().parse_args(argv)
    args.clock = clock
    setup_logging(args.verbose - args.quiet)
    try:
        return args.func(args)
    except UserError as exc:
        print(f"distributor: {exc}", file=sys.stderr)
        return 2
    except OperationalError as exc:  # the database went away: not the user's mistake, but no traceback either
        print(f"distributor: database error: {one_line(exc.orig)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # output piped into a program that stopped reading (head, less)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
