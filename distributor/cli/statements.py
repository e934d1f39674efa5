"""Commands on one statement, from its file to its release and after: import, show, list, approve, schedule,
reschedule, correct, retract, preview, send-test, retry and withdraw."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from distributor import channels as channel_registry
from distributor import consequences, deliveries, media, operations, workflow
from distributor.cli.common import Parser, actor, add_examples, cut, open_app, optional_text, parse_time, table, visible
from distributor.clock import iso_z
from distributor.errors import InputError, UserError, checked_text
from distributor.outcomes import Variant
from distributor.render import when
from distributor.statements import parse_file
from distributor.statements.times import parse_instant
from distributor.store import reading
from distributor.transports.base import write_atomically


def cmd_import(args) -> int:
    app = open_app(args)
    rejected = 0
    if (args.id or args.revision_of) and len(args.files) != 1:
        raise InputError("--id and --revision-of take one file", where="--id" if args.id else "--revision-of")
    library = media.Library.of(app.config)
    for name in args.files:
        path = Path(name)
        try:
            statement = parse_file(path, library)
            with app.engine.begin() as conn:
                result = workflow.import_statement(conn, statement, str(path), actor(args), app.clock.now(),
                                                   new_id=args.id, revision_of=args.revision_of,
                                                   note=optional_text(args.note, "--note"),
                                                   keep_media=statement.source_format == "text")
        except UserError as exc:
            print(f"distributor: {exc}", file=sys.stderr)
            rejected += 1
            continue
        print(result.id)
        if result.changed and not result.created:
            print(f"distributor: {result.id}: new revision {result.revision}"
                  + ("; the approval is revoked, approve it again" if result.approval_revoked else "")
                  + (f"; {result.cancelled} unsent deliveries of the old revision cancelled" if result.cancelled else ""),
                  file=sys.stderr)
    return 2 if rejected else 0


def statement_view(conn, statement_id: str) -> dict:
    row = workflow.get(conn, statement_id)
    published = row["published_revision"]
    shown = published if published is not None else row["revision"]  # the public's version, once there is one
    document = workflow.content(conn, statement_id, shown)
    return {
        "id": statement_id, "kind": document.kind, "title": document.title,
        "date": document.date.isoformat() if document.date else None,
        "reference": document.reference, "serial": document.serial,
        "embargo": iso_z(row["embargo"] or document.embargo), "body": list(document.body),
        "contacts": document.contacts, "classification": document.classification, "summary": document.summary,
        "status": row["status"], "revision": shown, "working_revision": row["revision"],
        "generation": row["generation"], "approved_by": row["approved_by"],
        "approved_at": iso_z(row["approved_at"]), "send_embargoed_at": iso_z(row["send_embargoed_at"]),
        "released_at": iso_z(row["released_at"]), "channels": row["channels"], "lists": row["lists"],
        "media": [{"name": m.name, "kind": m.kind, "content_type": m.content_type, "bytes": m.size,
                   "width": m.width, "height": m.height, "alt": m.alt, "title": m.title, "caption": m.caption,
                   "credit": m.credit, "licence": m.licence} for m in document.media],
    }


def cmd_show(args) -> int:
    app = open_app(args)
    with reading(app.engine) as conn:
        view = statement_view(conn, args.id)
    email = app.config.channels.get("email")
    view["lists"] = view["lists"] or ([email.list] if email else [])  # the lists its email goes to
    if args.format == "json":
        print(json.dumps(view, ensure_ascii=False, indent=2))
        return 0
    office = app.config.office
    working = view["working_revision"]
    pending = f"; revision {working} in the making" if working != view["revision"] else ""
    lines = [f"{view['id']}  [{view['status']}, revision {view['revision']}{pending}]", "",
             f"{view['kind']} · {view['date'] or 'no date'} · {view['reference'] or 'no reference'}"
             + (f" · {view['serial']}" if view["serial"] else ""), "", view["title"], "=" * min(len(view["title"]), 78)]
    if view["embargo"]:
        embargo = parse_instant(view["embargo"])
        lines += ["", f"Embargo: {when(embargo)}", f"         {when(embargo, office.timezone)}"]
    if view["approved_by"]:
        lines.append(f"Approved by {view['approved_by']} at {view['approved_at']}")
    if view["send_embargoed_at"]:
        lines.append(f"Embargoed copies from {view['send_embargoed_at']} via {', '.join(view['channels'] or [])}")
    if view["lists"]:
        lines.append(f"Lists: {', '.join(view['lists'])}")
    lines.append("")
    for paragraph in view["body"]:
        lines += [paragraph, ""]
    if view["classification"]:
        lines += [view["classification"], ""]
    if view["contacts"]:
        lines += [view["contacts"]]
    if view["media"]:
        lines += ["", f"Media ({len(view['media'])}):"]
        for m in view["media"]:
            size = f"{m['width']}×{m['height']} px, " if m["width"] else ""
            lines.append(f"  {m['name']}  [{m['kind']}, {size}{media.megabytes(m['bytes'])}]  "
                         + (m["alt"] or m["title"] or ""))
            extra = " · ".join(x for x in (m["caption"], m["credit"], m["licence"]) if x)
            if extra:
                lines.append(f"      {extra}")
    print("\n".join(visible(line, lines=True) for line in lines).rstrip())
    return 0


def cmd_list(args) -> int:
    app = open_app(args)
    with reading(app.engine) as conn:
        rows = workflow.listing(conn)
    items = [{"id": r["id"], "status": r["status"], "revision": r["revision"], "title": r["content"]["title"],
              "embargo": iso_z(r["embargo"]) or r["content"].get("embargo"), "created_at": iso_z(r["created_at"])}
             for r in rows]
    if args.format == "json":
        print(json.dumps(items, ensure_ascii=False, indent=2))
    else:
        table(["id", "status", "embargo", "title"], [[i["id"], i["status"], i["embargo"] or "-", cut(i["title"], 60)]
                                                    for i in items])
    return 0


def cmd_approve(args) -> int:
    app = open_app(args)
    with app.engine.begin() as conn:
        row = workflow.approve(conn, args.id, actor(args), app.clock.now(), four_eyes=app.config.office.four_eyes)
    print(f"{args.id}: approved by {row['approved_by']} (revision {row['revision']})")
    return 0


DRY_RUN = "say what would happen (who is told, what each channel does) and do nothing"


def dry_run(app, statement_id: str, action: str, run) -> int:
    """What the action would do, as the web app's confirmation says it; nothing is done. A refusal is the action's
    own (exit 2)."""
    summary = consequences.summarise(app, statement_id, action, run)
    if summary.error is not None:
        raise summary.error
    print(f"{statement_id}: dry run of {action}, nothing done; it would do this:")
    for line in summary.lines:
        print(f"  {line}")
    return 0


def cmd_schedule(args) -> int:
    app = open_app(args)
    embargo = parse_time(args.embargo, "--embargo")
    send_at = parse_time(args.send_embargoed_at, "--send-embargoed-at")
    if args.add_lists is not None:
        others = [option for option, value in (("--lists", args.lists), ("--embargo", args.embargo),
                                                ("--send-embargoed-at", args.send_embargoed_at),
                                                ("--channels", args.channels), ("--reason", args.reason))
                  if value is not None] + (["--override-embargo"] if args.override_embargo else [])
        if others:
            raise InputError(f"only adds lists to the schedule as it is; leave out {', '.join(others)}",
                             where="--add-lists")

    def run(conn):
        return operations.schedule(app, conn, args.id, actor(args), embargo=embargo, send_embargoed_at=send_at,
                                   channels=args.channels, override_embargo=args.override_embargo,
                                   reason=optional_text(args.reason, "--reason"), lists=args.lists,
                                   add_lists=args.add_lists)
    if args.dry_run:
        return dry_run(app, args.id, "schedule", run)
    with app.engine.begin() as conn:
        before = workflow.get(conn, args.id)["lists"]
        row, chosen = run(conn)
    office = app.config.office
    lists = ", ".join(chosen_lists(app, row))
    if args.add_lists is not None:
        added = [name for name in row["lists"] or [] if name not in (before or [])]
        email = app.config.channels.get("email")
        print(workflow.lists_added_said(row, added, email.list if email else "embargo"))
        return 0
    print(f"{args.id}: scheduled; embargo {when(row['embargo'])} = {when(row['embargo'], office.timezone)}; "
          f"embargoed copies from {iso_z(row['send_embargoed_at'])}; channels {', '.join(chosen)}"
          + (f"; lists {lists}" if "email" in chosen else ""))
    return 0


def chosen_lists(app, row: dict) -> list[str]:
    """The recipient lists of the statement's email: those chosen, else ``channels.email.list``."""
    email = app.config.channels.get("email")
    return list(row["lists"] or ([email.list] if email else []))


def cmd_preview(args) -> int:
    app = open_app(args)
    text, job, variant = operations.preview(app, args.id, args.channel, args.variant, args.format, args.revision)
    if args.output:
        write_atomically(Path(args.output), text.encode("utf-8"))
        print(f"{args.output}: {args.channel} preview of {args.id} r{job.revision} ({variant.value})")
    else:
        sys.stdout.write(text)
    return 0


def cmd_send_test(args) -> int:
    app = open_app(args)
    with reading(app.engine) as conn:
        revision = workflow.get(conn, args.id)["revision"]
    results = operations.send_test(app, args.id, args.to, actor(args))
    for address, _, what in results:
        print(f"{address}: test copy of {args.id} r{revision} {what}")
    return 0 if all(sent for _, sent, _ in results) else 1


def cmd_retry(args) -> int:
    app = open_app(args)
    channels = channel_registry.expand(args.channel) if args.channel else None
    with app.engine.begin() as conn:
        count = workflow.retry_failed(conn, args.id, actor(args), app.clock.now(), channels)
    print(f"{args.id}: {workflow.retried_said(count, args.channel)}")
    return 0


def notified(count: int) -> str:
    return f"; {workflow.journalists(count)} will be told" if count else ""


def told(args, action: str, call) -> dict | None:
    """A change that tells the holders (withdraw, correct, retract), in one transaction: ``call(conn, actor, at,
    reason, note)``, the workflow's. With --dry-run it only says what it would do, and returns None."""
    app = open_app(args)

    def run(conn):
        return call(conn, actor(args), app.clock.now(), checked_text(args.reason, "--reason", 1000),
                    optional_text(args.note, "--note"))
    if args.dry_run:
        dry_run(app, args.id, action, run)
        return None
    with app.engine.begin() as conn:
        return run(conn)


def cmd_withdraw(args) -> int:
    row = told(args, "withdraw", lambda conn, by, at, reason, note: workflow.withdraw(conn, args.id, by, at, reason,
                                                                                      note=note))
    if row is not None:
        print(f"{args.id}: {workflow.withdrawn_said(row)}")
    return 0


def cmd_reschedule(args) -> int:
    app = open_app(args)
    embargo = parse_time(args.embargo, "--embargo")
    assert embargo is not None  # required
    def run(conn):
        return operations.reschedule(app, conn, args.id, actor(args), embargo=embargo,
                                     reason=checked_text(args.reason, "--reason", 1000),
                                     note=optional_text(args.note, "--note"))
    if args.dry_run:
        return dry_run(app, args.id, "reschedule", run)
    with app.engine.begin() as conn:
        previous = workflow.get(conn, args.id)["embargo"]
        row = run(conn)
        held = deliveries.holders(conn, args.id, row["generation"])
    office = app.config.office
    print(f"{args.id}: embargo moved from {when(previous)} to {when(row['embargo'])} = "
          f"{when(row['embargo'], office.timezone)}{notified(len(held))}")
    return 0


def cmd_correct(args) -> int:
    row = told(args, "correct", lambda conn, by, at, reason, note: workflow.correct(conn, args.id, by, at,
                                                                                    reason=reason, note=note))
    if row is not None:
        print(f"{args.id}: revision {row['published_revision']} published as a correction")
    return 0


def cmd_retract(args) -> int:
    row = told(args, "retract", lambda conn, by, at, reason, note: workflow.retract(conn, args.id, by, at,
                                                                                    reason=reason, note=note))
    if row is not None:
        print(f"{args.id}: retracted")
    return 0


NOTE_HELP = "a note for the journalists, printed in the notice"


def change_options(p: argparse.ArgumentParser, by_help: str, note_help: str) -> None:
    """What every change that tells the holders takes: who, why, a note, and a dry run."""
    p.add_argument("--by", required=True, help=by_help)
    p.add_argument("--reason", required=True, metavar="TEXT", help="why, for the audit trail (required)")
    p.add_argument("--note", metavar="TEXT", help=note_help)
    p.add_argument("--dry-run", action="store_true", help=DRY_RUN)


def add_parsers(sub: argparse._SubParsersAction[Parser]) -> None:
    p = sub.add_parser("import", help="import statement files (.txt or .md); prints one id per line")
    p.add_argument("files", nargs="+", metavar="FILE", help="plain-text (.txt) or Markdown (.md) statement files")
    p.add_argument("--by", help="who imports (default: the login name)")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--id", metavar="ID", help="a new statement with this id (when its own id is taken)")
    which.add_argument("--revision-of", metavar="ID", help="a new revision of this statement")
    p.add_argument("--note", metavar="TEXT", help="what changed, for journalists who hold an earlier revision")
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("show", help="show one statement")
    p.add_argument("id", help="the statement's id (see 'distributor list')")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("list", help="list statements, newest first")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("approve", help="approve the current revision of a statement")
    p.add_argument("id", help="the statement's id (see 'distributor list')")
    p.add_argument("--by", required=True, help="the approver's name (required: an approval names a person)")
    p.set_defaults(func=cmd_approve)

    p = sub.add_parser("schedule", help="schedule an approved statement under embargo")
    p.add_argument("id", help="the statement's id (see 'distributor list')")
    p.add_argument("--embargo", metavar="TIME", help="2026-10-15T00:01+01:00 or '2026-10-15 00:01 Europe/London' "
                                                    "(default: the embargo in the document)")
    p.add_argument("--override-embargo", action="store_true",
                   help="use --embargo although it differs from the statement's own embargo (recorded in the audit)")
    p.add_argument("--send-embargoed-at", metavar="TIME", help="when embargoed copies go out (default: now)")
    p.add_argument("--channels", help="comma-separated channels (default: every configured channel)")
    p.add_argument("--lists", metavar="LIST,...",
                   help="comma-separated recipient lists for the email (default: those chosen before and the "
                        "document's 'lists:', else channels.email.list); each person gets one copy")
    p.add_argument("--add-lists", metavar="LIST,...",
                   help="add lists to a scheduled statement: only their new members are planned (until the lift)")
    p.add_argument("--by", help="who schedules (default: the login name)")
    p.add_argument("--reason", metavar="TEXT",
                   help="for a corrected revision: what changed, when the import gave no --note")
    p.add_argument("--dry-run", action="store_true", help=DRY_RUN)
    p.set_defaults(func=cmd_schedule)

    p = sub.add_parser("reschedule", help="move the embargo of a scheduled statement; every holder is told")
    p.add_argument("id", help="the statement's id (see 'distributor list')")
    p.add_argument("--embargo", metavar="TIME", required=True, help="the new embargo (any form 'schedule' takes)")
    change_options(p, "who moves it (required)", NOTE_HELP)
    p.set_defaults(func=cmd_reschedule)

    p = sub.add_parser("correct", help="publish the approved new revision of a released statement, everywhere")
    p.add_argument("id", help="the statement's id (see 'distributor list')")
    change_options(p, "who corrects it (required)", "what changed, for the journalists (default: the import's --note)")
    p.set_defaults(func=cmd_correct)

    p = sub.add_parser("retract", help="withdraw a released statement from publication (a kill), everywhere")
    p.add_argument("id", help="the statement's id (see 'distributor list')")
    change_options(p, "who retracts it (required)", NOTE_HELP)
    p.set_defaults(func=cmd_retract)

    p = sub.add_parser("preview", help="what a target would get, through the channel's own rendering; sends nothing")
    p.add_argument("id", help="the statement's id (see 'distributor list')")
    p.add_argument("--channel", default="email", choices=("email", "wire", "feed", "mastodon", "bluesky"),
                   help="which channel's form (default: email)")
    p.add_argument("--variant", choices=[v.value for v in Variant],
                   help="embargoed or released (default: what would go out now)")
    p.add_argument("--format", choices=("eml", "html", "text"),
                   help="email only: the whole message (default), its HTML part or its text part")
    p.add_argument("--revision", type=int, metavar="N", help="another revision (default: the current one)")
    p.add_argument("--output", metavar="FILE", help="write to FILE instead of standard output")
    p.set_defaults(func=cmd_preview)

    p = sub.add_parser("send-test", help="send a test copy ([TEST] in the subject) to the given addresses at once")
    p.add_argument("id", help="the statement's id; a draft will do")
    p.add_argument("--to", action="append", required=True, metavar="ADDRESS", help="an address; repeat for more")
    p.add_argument("--by", help="who sends it (default: the login name)")
    p.set_defaults(func=cmd_send_test)

    p = sub.add_parser("retry", help="requeue a statement's failed deliveries, with a fresh set of attempts")
    p.add_argument("id", help="the statement's id (see 'distributor list')")
    p.add_argument("--channel", help="only this channel (email, wire, feed, mastodon, bluesky, or social)")
    p.add_argument("--by", required=True, help="who requeues them (required)")
    p.set_defaults(func=cmd_retry)

    p = sub.add_parser("withdraw", help="withdraw a statement before release; unsent deliveries are cancelled and "
                                        "every holder of the embargoed copy is told")
    p.add_argument("id", help="the statement's id (see 'distributor list')")
    change_options(p, "who withdraws (required)", NOTE_HELP)
    p.set_defaults(func=cmd_withdraw)

    add_examples(sub, EXAMPLES)


EXAMPLES: dict[str, tuple[str, ...]] = {
    "import": ("distributor import statements/flood-maps.txt", "distributor import release.md --by 'Sam Lee'",
               "distributor import flood-maps-v2.txt --note 'Corrects the date in paragraph 3.'"),
    "show": ("distributor show tro-01-001-2026", "distributor show tro-01-001-2026 --format json"),
    "list": ("distributor list", "distributor list --format json"),
    "approve": ("distributor approve tro-01-001-2026 --by 'Maya Okafor'",),
    "schedule": ("distributor schedule tro-01-001-2026",
                 "distributor schedule tro-01-001-2026 --embargo '15 December 2026 00:01 GMT' "
                 "--send-embargoed-at '2026-12-14 09:00 Europe/London' --channels email,wire,social"),
    "preview": ("distributor preview tro-01-001-2026", "distributor preview tro-01-001-2026 --format html --output "
                "preview.html", "distributor preview tro-01-001-2026 --channel mastodon"),
    "send-test": ("distributor send-test tro-01-001-2026 --to editor@press.example.org --by 'Sam Lee'",),
    "retry": ("distributor retry tro-01-001-2026 --by 'Maya Okafor'",
              "distributor retry tro-01-001-2026 --channel wire --by 'Maya Okafor'"),
    "withdraw": ("distributor withdraw tro-01-001-2026 --by 'Maya Okafor' --reason 'figures under review'",
                 "distributor withdraw tro-01-001-2026 --by 'Maya Okafor' --reason 'legal advice' "
                 "--note 'A revised statement will follow.'"),
    "reschedule": ("distributor reschedule tro-01-001-2026 --embargo '16 December 2026 00:01 GMT' "
                   "--by 'Maya Okafor' --reason 'minister delayed' --note 'The report is now out a day later.'",),
    "correct": ("distributor import statements/flood-maps.txt --note 'The figure in paragraph 2 is 1,200, not 12,000.'",
                "distributor approve tro-01-001-2026 --by 'Maya Okafor'",
                "distributor correct tro-01-001-2026 --by 'Maya Okafor' --reason 'wrong figure'"),
    "retract": ("distributor retract tro-01-001-2026 --by 'Maya Okafor' --reason 'published in error'",),
}
