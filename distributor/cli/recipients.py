"""Commands on recipients and their lists: recipients import, add, remove, unsubscribe (and its undo) and list."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from distributor import recipients, workflow
from distributor.cli.common import Parser, actor, add_examples, open_app, table
from distributor.errors import InputError
from distributor.store import reading


def cmd_recipients_import(args) -> int:
    app = open_app(args)
    path = Path(args.file)
    with app.engine.begin() as conn:
        report = recipients.import_csv(conn, path, args.list, app.clock.now(), strict=args.strict,
                                       replace=args.replace)
        workflow.record(conn, workflow.Action.RECIPIENTS_IMPORTED, actor(args), app.clock.now(), file=str(path),
                        list=args.list, added=report.added, updated=report.updated, replace=args.replace,
                        removed=report.removed, rejected=len(report.rejected))
    for line in report.rejected:
        print(line, file=sys.stderr)
    print(report.summary(path, args.list))
    return 0


def cmd_recipients_add(args) -> int:
    app = open_app(args)
    with app.engine.begin() as conn:
        row = recipients.add(conn, args.list, args.email, app.clock.now(), name=args.name, outlet=args.outlet,
                             embargo_ok=args.embargo_ok, language=args.language, tags=args.tags)
        recipients.record_added(conn, row, actor(args), app.clock.now())
        suppressed = recipients.suppression(conn, row["email"]) is not None
    print(recipients.added_said(row, suppressed))
    return 0


def cmd_recipients_unsubscribe(args) -> int:
    app = open_app(args)
    if args.undo:
        with app.engine.begin() as conn:
            lifted = recipients.lift(conn, args.email)
            recipients.record_lifted(conn, args.email, lifted, actor(args), app.clock.now())
        print(recipients.lifted_said(args.email))
        return 0
    with app.engine.begin() as conn:
        changed = recipients.unsubscribe(conn, args.email, actor(args), app.clock.now())
        if changed:
            workflow.record(conn, workflow.Action.UNSUBSCRIBED, actor(args), app.clock.now(), email=args.email)
    print(recipients.unsubscribed_said(args.email, changed))
    return 0


def cmd_recipients_remove(args) -> int:
    app = open_app(args)
    with app.engine.begin() as conn:
        removed = recipients.remove(conn, args.list, args.email)
        if not removed:
            raise InputError(f"{args.email} is not on the list {args.list!r}", where="EMAIL")
        workflow.record(conn, workflow.Action.RECIPIENT_REMOVED, actor(args), app.clock.now(), email=args.email,
                        list=args.list)
    print(recipients.removed_said(args.email, args.list))
    return 0


def cmd_recipients_revoke(args) -> int:
    """End the journalist's portal links sent so far and their open sessions; later emails carry links that work."""
    from distributor import portal

    app = open_app(args)
    with app.engine.begin() as conn:
        ended = portal.revoke(conn, args.email, actor(args), app.clock.now())
        workflow.record(conn, workflow.Action.PORTAL_REVOKED, actor(args), app.clock.now(), email=args.email,
                        sessions=ended)
    print(f"{args.email}: every portal link sent so far is revoked; {ended} open "
          f"session{'' if ended == 1 else 's'} ended. Links in later emails will work, if they keep their standing.")
    return 0


def cmd_recipients_list(args) -> int:
    app = open_app(args)
    with reading(app.engine) as conn:
        rows = recipients.listing(conn, args.list)
    items = [{"list": r["list_name"], "email": r["email"], "name": r["name"], "outlet": r["outlet"],
              "embargo_ok": r["embargo_ok"], "language": r["language"], "tags": r["tags"],
              "suppressed": r["suppressed_at"] is not None} for r in rows]
    if args.format == "json":
        print(json.dumps(items, ensure_ascii=False, indent=2))
    else:
        table(["list", "email", "name", "outlet", "embargo_ok", "suppressed"],
              [[i["list"], i["email"], i["name"], i["outlet"], "yes" if i["embargo_ok"] else "no",
                "yes" if i["suppressed"] else ""] for i in items])
    return 0


def add_parsers(sub: argparse._SubParsersAction[Parser]) -> None:
    r = sub.add_parser("recipients", help="recipient lists").add_subparsers(dest="recipients_command", required=True,
                                                                           parser_class=Parser)
    p = r.add_parser("import", help="import a CSV file into a list")
    p.add_argument("file", metavar="FILE.csv", help="CSV with an email column; name, outlet, embargo_ok, language, tags")
    p.add_argument("--list", required=True, help="the list's name")
    p.add_argument("--strict", action="store_true", help="reject the whole file if any row is rejected")
    p.add_argument("--replace", action="store_true",
                   help="make the list exactly the file: members not in it leave the list (any bad row fails it all)")
    p.add_argument("--by", help="who imports (default: the login name)")
    p.set_defaults(func=cmd_recipients_import)
    p = r.add_parser("add", help="put one address on a list (a new name makes a new list)")
    p.add_argument("email", help="the address")
    p.add_argument("--list", required=True, help="the list's name")
    p.add_argument("--name", default="", help="the journalist's name")
    p.add_argument("--outlet", default="", help="the paper, station or agency")
    p.add_argument("--embargo-ok", action="store_true", help="vetted for embargoed copies (default: released only)")
    p.add_argument("--language", default="", help="e.g. en or fr")
    p.add_argument("--tags", default="", help="free text to search by, e.g. 'health courts'")
    p.add_argument("--by", help="who adds (default: the login name)")
    p.set_defaults(func=cmd_recipients_add)
    p = r.add_parser("remove", help="take one address off a list; its embargoed copies not yet sent are stopped")
    p.add_argument("email", help="the member's address")
    p.add_argument("--list", required=True, help="the list's name")
    p.add_argument("--by", help="who removes (default: the login name)")
    p.set_defaults(func=cmd_recipients_remove)
    p = r.add_parser("unsubscribe", help="suppress an address for all future mail")
    p.add_argument("email", help="the address to suppress")
    p.add_argument("--undo", action="store_true",
                   help="lift a suppression made by staff or by a bounce (never one the recipient made)")
    p.add_argument("--by", help="who unsubscribes it, or lifts it with --undo (default: the login name)")
    p.set_defaults(func=cmd_recipients_unsubscribe)
    p = r.add_parser("revoke", help="end a journalist's portal links sent so far and their open sessions")
    p.add_argument("email", help="the journalist's address")
    p.add_argument("--by", required=True, help="who revokes (required)")
    p.set_defaults(func=cmd_recipients_revoke)
    p = r.add_parser("list", help="list recipients")
    p.add_argument("--list")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.set_defaults(func=cmd_recipients_list)

    add_examples(r, EXAMPLES)


EXAMPLES: dict[str, tuple[str, ...]] = {
    "recipients import": ("distributor recipients import recipients/journalists.csv --list embargo",
                          "distributor recipients import journalists.csv --list embargo --replace --by 'Kim Ahn'"),
    "recipients add": ("distributor recipients add ana@paper.example.com --list embargo --name 'Ana Lima' "
                       "--outlet 'Daily Paper' --embargo-ok --language en --tags courts --by 'Kim Ahn'",),
    "recipients remove": ("distributor recipients remove ana@paper.example.com --list embargo --by 'Kim Ahn'",),
    "recipients unsubscribe": ("distributor recipients unsubscribe ana@paper.example.com",
                               "distributor recipients unsubscribe --undo ana@paper.example.com --by 'Kim Ahn'"),
    "recipients list": ("distributor recipients list --list embargo",),
    "recipients revoke": ("distributor recipients revoke ana@paper.example.com --by 'Kim Ahn'",),
}
