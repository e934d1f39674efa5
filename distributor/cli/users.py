"""Commands on the people who use the web app: users add, passwd, remove, list and calendar-reset."""

from __future__ import annotations

import argparse
import getpass
import json
import sys

from distributor import users as users_module
from distributor import workflow
from distributor.cli.common import Parser, actor, add_examples, open_app, table
from distributor.clock import iso_z
from distributor.errors import InputError
from distributor.store import reading


def read_password(args) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if not sys.stdin.isatty():
        raise InputError("no terminal to ask for the password; use --password-stdin", where="password")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Again: ") != first:
        raise InputError("the two passwords differ", where="password")
    return first


def cmd_users_add(args) -> int:
    app = open_app(args)
    password = read_password(args)
    with app.engine.begin() as conn:
        users_module.add(conn, args.name, users_module.Role(args.role), password, app.clock.now())
        workflow.record(conn, workflow.Action.USER_ADDED, actor(args), app.clock.now(), user=args.name, role=args.role)
    print(f"{args.name}: added as {args.role}")
    return 0


def cmd_users_passwd(args) -> int:
    app = open_app(args)
    password = read_password(args)
    with app.engine.begin() as conn:
        users_module.set_password(conn, args.name, password, app.clock.now())
        workflow.record(conn, workflow.Action.USER_CHANGED, actor(args), app.clock.now(), user=args.name,
                        change="password")
    print(f"{args.name}: password set; their sessions have ended")
    return 0


def cmd_users_remove(args) -> int:
    app = open_app(args)
    with app.engine.begin() as conn:
        users_module.remove(conn, args.name)
        workflow.record(conn, workflow.Action.USER_REMOVED, actor(args), app.clock.now(), user=args.name)
    print(f"{args.name}: removed")
    return 0


def cmd_users_list(args) -> int:
    app = open_app(args)
    with reading(app.engine) as conn:
        found = users_module.listing(conn)
    if args.format == "json":
        print(json.dumps([{**u, "created_at": iso_z(u["created_at"])} for u in found], indent=2))
    elif not found:
        print("no users yet: 'distributor users add NAME --role editor'")
    else:
        table(["user", "role", "since"], [[u["name"], u["role"], iso_z(u["created_at"]) or ""] for u in found])
    return 0


def cmd_users_calendar_reset(args) -> int:
    app = open_app(args)
    with app.engine.begin() as conn:
        token = users_module.new_calendar_token(conn, args.name, app.clock.now())
        workflow.record(conn, workflow.Action.USER_CHANGED, actor(args), app.clock.now(), user=args.name,
                        change="calendar address")
    print(f"{args.name}: a new calendar feed address; the one before no longer works. It is shown only now:")
    if app.config.office.base_url:
        print(users_module.calendar_url(app.config.office.base_url, token))
    else:
        print(f"{users_module.calendar_url('', token)}  (after the web app's address; set office.base_url)")
    return 0


def add_parsers(sub: argparse._SubParsersAction[Parser]) -> None:
    u = sub.add_parser("users", help="people who use the web app").add_subparsers(dest="users_command", required=True,
                                                                                parser_class=Parser)
    p = u.add_parser("add", help="add a user; the password is asked for, or read from standard input")
    p.add_argument("name", metavar="NAME", help="the login name")
    p.add_argument("--role", required=True, choices=[r.value for r in users_module.Role],
                   help="manager (reads everything) or editor (also imports, approves, schedules ...)")
    p.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    p.set_defaults(func=cmd_users_add)
    p = u.add_parser("passwd", help="set a user's password; their sessions end")
    p.add_argument("name", metavar="NAME", help="the login name")
    p.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    p.set_defaults(func=cmd_users_passwd)
    p = u.add_parser("remove", help="remove a user; their sessions end")
    p.add_argument("name", metavar="NAME", help="the login name")
    p.set_defaults(func=cmd_users_remove)
    p = u.add_parser("list", help="list the users and their roles")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.set_defaults(func=cmd_users_list)
    p = u.add_parser("calendar-reset", help="revoke a user's calendar feed address and print a new one, once")
    p.add_argument("name", metavar="NAME", help="the login name")
    p.set_defaults(func=cmd_users_calendar_reset)

    add_examples(u, EXAMPLES)


EXAMPLES: dict[str, tuple[str, ...]] = {
    "users add": ("printf '%s' \"$PASSWORD\" | distributor users add kim --role manager --password-stdin",
                  "distributor users add maya --role editor"),
    "users passwd": ("distributor users passwd maya",),
    "users remove": ("distributor users remove kim",),
    "users list": ("distributor users list",),
    "users calendar-reset": ("distributor users calendar-reset maya",),
}
