"""Command line: parse arguments, call one function, print. A user's mistake is one line on stderr and exit 2."""

from __future__ import annotations

import argparse
import getpass
import io
import json
import logging
import os
import re
import sys
from pathlib import Path

from sqlalchemy.exc import OperationalError, ProgrammingError
from wcwidth import wcswidth, wcwidth

from distributor import __version__, csvout, deliveries, operations, recipients, workflow
from distributor import channels as channel_registry
from distributor import config as config_module
from distributor import status as status_module
from distributor import users as users_module
from distributor import workers as workers_module
from distributor.clock import Clock, iso_z
from distributor.config import Config
from distributor.errors import ConfigError, InputError, UserError, checked_text, one_line
from distributor.outcomes import Variant
from distributor.render import when
from distributor.statements import parse_file
from distributor.statements.times import parse_instant
from distributor.store import connect, init_schema, reading
from distributor.store.engine import masked, schema_is_current
from distributor.transports.base import write_atomically

log = logging.getLogger("distributor")


class Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


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


# -- commands -------------------------------------------------------------------------------------------------

SCAFFOLD = Path(__file__).parent / "scaffold"


def cmd_new(args) -> int:
    """A new office folder: a documented config, templates to edit, an example list and statement."""
    import shutil

    from distributor.render import DEFAULT_TEMPLATES

    target = Path(args.dir)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise InputError("exists and is not an empty folder; choose a new one", where=str(target))
    shutil.copytree(SCAFFOLD, target, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(DEFAULT_TEMPLATES, target / "templates", ignore=shutil.ignore_patterns("__pycache__"))
    print(f"""{target}: a new office folder. Next:
  cd {target}
  distributor init
  distributor recipients import recipients/journalists.csv --list embargo
  distributor import statements/example.txt
  distributor approve epo-01-001-2030 --by "Your Name"
  distributor schedule epo-01-001-2030
  distributor run --exit-when-idle
Edit config/distributor.toml first: the office, its sender address, and the channels.""")
    return 0


def cmd_init(args) -> int:
    app = open_app(args, require_schema=False)
    try:
        revision = init_schema(app.engine)
    except (OperationalError, ProgrammingError) as exc:
        raise cannot_open(app.config, exc) from None
    print(f"database ready at schema revision {revision}")
    return 0


def cmd_import(args) -> int:
    app = open_app(args)
    rejected = 0
    if (args.id or args.revision_of) and len(args.files) != 1:
        raise InputError("--id and --revision-of take one file", where="--id" if args.id else "--revision-of")
    for name in args.files:
        path = Path(name)
        try:
            statement = parse_file(path)
            with app.engine.begin() as conn:
                result = workflow.import_statement(conn, statement, str(path), actor(args), app.clock.now(),
                                                   new_id=args.id, revision_of=args.revision_of,
                                                   note=optional_text(args.note, "--note"))
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
        "released_at": iso_z(row["released_at"]), "channels": row["channels"],
    }


def cmd_show(args) -> int:
    app = open_app(args)
    with reading(app.engine) as conn:
        view = statement_view(conn, args.id)
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
    lines.append("")
    for paragraph in view["body"]:
        lines += [paragraph, ""]
    if view["classification"]:
        lines += [view["classification"], ""]
    if view["contacts"]:
        lines += [view["contacts"]]
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


def cmd_schedule(args) -> int:
    app = open_app(args)
    embargo = parse_time(args.embargo, "--embargo")
    send_at = parse_time(args.send_embargoed_at, "--send-embargoed-at")
    with app.engine.begin() as conn:
        row, chosen = operations.schedule(app, conn, args.id, actor(args), embargo=embargo, send_embargoed_at=send_at,
                                          channels=args.channels, override_embargo=args.override_embargo,
                                          reason=optional_text(args.reason, "--reason"))
    office = app.config.office
    print(f"{args.id}: scheduled; embargo {when(row['embargo'])} = {when(row['embargo'], office.timezone)}; "
          f"embargoed copies from {iso_z(row['send_embargoed_at'])}; channels {', '.join(chosen)}")
    return 0


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


def optional_text(value: str | None, option: str) -> str | None:
    return checked_text(value, option, 1000) if value is not None and value.strip() else None


def notified(count: int) -> str:
    return f"; {workflow.journalists(count)} will be told" if count else ""


def cmd_withdraw(args) -> int:
    app = open_app(args)
    with app.engine.begin() as conn:
        row = workflow.withdraw(conn, args.id, actor(args), app.clock.now(),
                                checked_text(args.reason, "--reason", 1000), note=optional_text(args.note, "--note"))
    print(f"{args.id}: {workflow.withdrawn_said(row)}")
    return 0


def cmd_reschedule(args) -> int:
    app = open_app(args)
    embargo = parse_time(args.embargo, "--embargo")
    assert embargo is not None  # required
    with app.engine.begin() as conn:
        previous = workflow.get(conn, args.id)["embargo"]
        row = operations.reschedule(app, conn, args.id, actor(args), embargo=embargo,
                                    reason=checked_text(args.reason, "--reason", 1000),
                                    note=optional_text(args.note, "--note"))
        held = deliveries.holders(conn, args.id, row["generation"])
    office = app.config.office
    print(f"{args.id}: embargo moved from {when(previous)} to {when(row['embargo'])} = "
          f"{when(row['embargo'], office.timezone)}{notified(len(held))}")
    return 0


def cmd_correct(args) -> int:
    app = open_app(args)
    with app.engine.begin() as conn:
        row = workflow.correct(conn, args.id, actor(args), app.clock.now(),
                               reason=checked_text(args.reason, "--reason", 1000),
                               note=optional_text(args.note, "--note"))
    print(f"{args.id}: revision {row['published_revision']} published as a correction")
    return 0


def cmd_retract(args) -> int:
    app = open_app(args)
    with app.engine.begin() as conn:
        workflow.retract(conn, args.id, actor(args), app.clock.now(),
                         reason=checked_text(args.reason, "--reason", 1000), note=optional_text(args.note, "--note"))
    print(f"{args.id}: retracted")
    return 0


def cmd_run(args) -> int:
    from distributor.dispatch import Dispatcher
    from distributor.scheduler import Runner

    app = open_app(args)
    context = app.context()
    runner = Runner(Dispatcher(context, channel_registry.build(context)))
    return runner.run(exit_when_idle=args.exit_when_idle)


ATTEMPT_FIELDS = ["at", "statement", "channel", "target", "worker", "outcome", "reply"]


def print_attempts(conn, args) -> None:
    """``log ID --attempts``: every attempt of every row, when, by which worker, its outcome and the reply."""
    channels = channel_registry.expand(args.channel) if args.channel else None
    items = [{"at": iso_z(a["at"]), "statement": args.id, "channel": a["channel"], "target": a["target"],
              "worker": a["worker"], "outcome": a["outcome"], "reply": a["detail"]}
             for a in deliveries.attempt_rows(conn, args.id)
             if (not channels or a["channel"] in channels) and (not args.status or a["status"] == args.status)]
    if args.format == "json":
        print(json.dumps(items, ensure_ascii=False, indent=2))
    elif args.format == "csv":
        csvout.write(sys.stdout, ATTEMPT_FIELDS, items)
    else:
        table(["at", "channel", "target", "worker", "outcome", "reply"],
              [[i["at"], i["channel"], i["target"], i["worker"], i["outcome"], cut(i["reply"] or "", 70)]
               for i in items])
        print()
        print(f"{len(items)} attempts" if items else "no attempts")


def cmd_log(args) -> int:
    app = open_app(args)
    with reading(app.engine) as conn:
        if args.id:
            workflow.get(conn, args.id)
        if args.attempts:
            if not args.id:
                raise InputError("--attempts needs a statement ID", where="--attempts")
            print_attempts(conn, args)
            return 0
        channels = channel_registry.expand(args.channel) if args.channel else None
        since, until = parse_time(args.since, "--since"), parse_time(args.until, "--until")
        records = (operations.log_record(r) for r in deliveries.log_rows(conn, args.id, since, until)
                   if (not args.status or r["status"] == args.status) and (not channels or r["channel"] in channels))
        if args.format == "json":
            print(json.dumps(list(records), ensure_ascii=False, indent=2))
        elif args.format == "csv":
            csvout.write(sys.stdout, [*operations.LOG_FIELDS, "after_lift"], records)
        else:
            counts: dict[str, int] = {}
            rows = []
            for r in records:
                counts[r["status"]] = counts.get(r["status"], 0) + 1
                note = r["error"] or ("after the lift, as released" if r["variant"] == Variant.RELEASED.value
                                      and r["channel"] == "email" else "")
                rows.append([r["statement"], r["channel"], r["kind"], r["target"], r["status"], str(r["attempts"]),
                             r["sent_at"] or "-", cut(note or "", 70)])
            table(["statement", "channel", "kind", "target", "status", "tries", "sent_at", "note"], rows)
            print()
            print("total " + str(sum(counts.values())) + ": "
                  + ", ".join(f"{status} {counts[status]}" for status in sorted(counts)) if counts else "no deliveries")
    return 0


def cmd_report(args) -> int:
    app = open_app(args)
    with reading(app.engine) as conn:
        row = workflow.get(conn, args.id)
        rows = [operations.log_record(r) for r in deliveries.log_rows(conn, args.id)]
    title = f"{args.id}: {row['status']}, revision {row['published_revision'] or row['revision']}"
    print(title + (f"; embargo {when(row['embargo'])}" if row["embargo"] else ""))
    print()
    by_channel: dict[str, list[dict]] = {}
    for r in rows:
        by_channel.setdefault(r["channel"], []).append(r)
    lines = []
    for channel, items in sorted(by_channel.items()):
        counts = {s: sum(1 for r in items if r["status"] == s) for s in ("sent", "pending", "sending", "retrying",
                                                                          "failed", "cancelled")}
        sent = sorted(r["sent_at"] for r in items if r["sent_at"])
        late = sorted(r["late_seconds"] for r in items if r["late_seconds"] is not None)
        lines.append([channel, *(str(counts[s]) for s in counts), sent[0] if sent else "-", sent[-1] if sent else "-",
                      f"{late[len(late) // 2]:.1f}" if late else "-", f"{late[-1]:.1f}" if late else "-"])
    table(["channel", "sent", "pending", "sending", "retrying", "failed", "cancelled", "first sent", "last sent",
           "late p50 s", "late max s"], lines)
    slowest = sorted((r for r in rows if r["late_seconds"] is not None), key=lambda r: -r["late_seconds"])[:5]
    if slowest:
        print("\nSlowest (seconds after due):")
        table(["channel", "kind", "target", "late s", "sent_at"],
              [[r["channel"], r["kind"], r["target"], f"{r['late_seconds']:.1f}", r["sent_at"]] for r in slowest])
    failed = [r for r in rows if r["status"] == "failed"]
    print(f"\nFailed ({len(failed)}):" if failed else "\nFailed: none")
    if failed:
        table(["channel", "kind", "target", "reason"],
              [[r["channel"], r["kind"], r["target"], cut(r["error"] or "", 70)] for r in failed[:20]])
    return 0


def cmd_audit(args) -> int:
    app = open_app(args)
    with reading(app.engine) as conn:
        events = workflow.audit_trail(conn, args.id)
    items = [{"at": iso_z(e["at"]), "actor": e["actor"], "action": e["action"], "statement": e["statement_id"],
              "revision": e["revision"], "detail": json.loads(e["detail"]) if e["detail"] else {}} for e in events]
    if args.format == "json":
        print(json.dumps(items, ensure_ascii=False, indent=2))
    else:
        table(["at", "actor", "action", "statement", "detail"],
              [[i["at"], i["actor"], i["action"], i["statement"] or "-",
                cut(", ".join(f"{k}={v}" for k, v in i["detail"].items()), 80)] for i in items])
    return 0


def cmd_status(args) -> int:
    """Exit 0 when nothing needs attention, 1 when something does (for cron and monitoring)."""
    app = open_app(args)
    with reading(app.engine) as conn:
        found = status_module.report(conn, app.clock.now(), app.config.delivery)
    if args.format == "json":
        print(json.dumps(found, ensure_ascii=False, indent=2, default=lambda v: iso_z(v)))
        return 1 if found["needs_attention"] else 0
    office = app.config.office
    verdict = "needs attention: " + "; ".join(found["reasons"]) if found["needs_attention"] else "all well"
    print(f"distributor status at {when(found['at'])}: {verdict}")
    print(f"\nOpen alerts ({len(found['alerts'])})")
    for a in found["alerts"]:
        print(f"  {iso_z(a['raised_at'])}  {visible(a['text'])}")
    for title, section in (("Failed deliveries, last 7 days", "failed"), ("Overdue deliveries", "overdue")):
        part = found[section]
        print(f"\n{title} ({part['count']})")
        if part["rows"]:
            table(["statement", "channel", "kind", "target", "due_at", "note"],
                  [[r["statement_id"], r["channel"], r["kind"], r["target"], iso_z(r["due_at"]) or "-",
                    cut(r["last_error"] or "", 60)] for r in part["rows"]])
    print(f"\nScheduled in the next 24 hours ({len(found['scheduled'])})")
    for s in found["scheduled"]:
        print(f"  {s['id']}: " + "; ".join(f"{d['what']} {when(d['at'], office.timezone)}" for d in s["due"]))
    print(f"\nWorkers running: {found['workers_running']}")
    return 1 if found["needs_attention"] else 0


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


def serve_options(args, config) -> dict:
    """waitress's settings: many idle or slow connections may wait without keeping anyone else out, and a request
    still unfinished after 30 s is dropped; the app lives at the path of ``office.base_url``."""
    from distributor.web import root_path

    prefix = root_path(config)
    return {"host": args.host, "port": args.port, "threads": args.threads, "ident": "distributor",
            "connection_limit": 1000, "channel_timeout": 30, "url_prefix": "" if prefix == "/" else prefix}


def cmd_serve(args) -> int:
    from waitress import serve

    from distributor.web import create_app

    app = open_app(args)
    web = create_app(app.config, app.engine, app.clock)
    options = serve_options(args, app.config)
    print(f"serving on http://{args.host}:{args.port}{options['url_prefix']}/ "
          f"(office.base_url: {app.config.office.base_url or 'not set'})", file=sys.stderr)
    serve(web, **options)
    return 0


def cmd_workers(args) -> int:
    app = open_app(args)
    timeout = app.config.delivery.worker_timeout_seconds
    with reading(app.engine) as conn:
        now, rows = workers_module.listing(conn)
    items = []
    for r in rows:
        ago = (now - r["last_seen"]).total_seconds()
        state = "stopped" if r["stopped_at"] else ("running" if ago <= timeout else "gone (heartbeat stale)")
        items.append({"id": r["id"], "host": r["host"], "pid": r["pid"], "started": iso_z(r["started_at"]),
                      "last_seen": iso_z(r["last_seen"]), "seconds_ago": round(ago, 1), "state": state})
    if args.format == "json":
        print(json.dumps(items, ensure_ascii=False, indent=2))
    elif not items:
        print("no workers have run against this database")
    else:
        table(["worker", "host", "pid", "started", "last seen", "state"],
              [[i["id"], i["host"], str(i["pid"]), i["started"], f"{i['seconds_ago']:.1f}s ago", i["state"]]
               for i in items])
    return 0


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


def cmd_recipients_unsubscribe(args) -> int:
    app = open_app(args)
    with app.engine.begin() as conn:
        changed = recipients.unsubscribe(conn, args.email, actor(args), app.clock.now())
        if changed:
            workflow.record(conn, workflow.Action.UNSUBSCRIBED, actor(args), app.clock.now(), email=args.email)
    print(f"{args.email}: " + ("suppressed for all future mail" if changed else "was already suppressed"))
    return 0


def cmd_recipients_remove(args) -> int:
    app = open_app(args)
    with app.engine.begin() as conn:
        removed = recipients.remove(conn, args.list, args.email)
        if not removed:
            raise InputError(f"{args.email} is not on the list {args.list!r}", where="EMAIL")
        workflow.record(conn, workflow.Action.RECIPIENT_REMOVED, actor(args), app.clock.now(), email=args.email,
                        list=args.list)
    print(f"{args.email}: removed from the list {args.list}; embargoed copies not yet sent to it will not go out")
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


def build_parser() -> Parser:
    parser = Parser(prog="distributor", description="Embargoed press-release distribution.")
    parser.add_argument("--config", help="config file (default: $DISTRIBUTOR_CONFIG or config/distributor.toml)")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    parser.add_argument("-q", "--quiet", action="count", default=0, help="less log output")
    parser.add_argument("--version", action="version", version=f"distributor {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    p = sub.add_parser("new", help="write a new office folder: config, templates, an example list and statement")
    p.add_argument("dir", metavar="DIR", help="the folder to create (new or empty)")
    p.set_defaults(func=cmd_new)

    p = sub.add_parser("init", help="create or upgrade the database schema (safe to repeat)")
    p.set_defaults(func=cmd_init)

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
    p.add_argument("--by", help="who schedules (default: the login name)")
    p.add_argument("--reason", metavar="TEXT",
                   help="for a corrected revision: what changed, when the import gave no --note")
    p.set_defaults(func=cmd_schedule)

    p = sub.add_parser("reschedule", help="move the embargo of a scheduled statement; every holder is told")
    p.add_argument("id", help="the statement's id (see 'distributor list')")
    p.add_argument("--embargo", metavar="TIME", required=True, help="the new embargo (any form 'schedule' takes)")
    p.add_argument("--by", required=True, help="who moves it (required)")
    p.add_argument("--reason", required=True, metavar="TEXT", help="why, for the audit trail (required)")
    p.add_argument("--note", metavar="TEXT", help="a note for the journalists, printed in the notice")
    p.set_defaults(func=cmd_reschedule)

    p = sub.add_parser("correct", help="publish the approved new revision of a released statement, everywhere")
    p.add_argument("id", help="the statement's id (see 'distributor list')")
    p.add_argument("--by", required=True, help="who corrects it (required)")
    p.add_argument("--reason", required=True, metavar="TEXT", help="why, for the audit trail (required)")
    p.add_argument("--note", metavar="TEXT", help="what changed, for the journalists (default: the import's --note)")
    p.set_defaults(func=cmd_correct)

    p = sub.add_parser("retract", help="withdraw a released statement from publication (a kill), everywhere")
    p.add_argument("id", help="the statement's id (see 'distributor list')")
    p.add_argument("--by", required=True, help="who retracts it (required)")
    p.add_argument("--reason", required=True, metavar="TEXT", help="why, for the audit trail (required)")
    p.add_argument("--note", metavar="TEXT", help="a note for the journalists, printed in the notice")
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
    p.add_argument("--by", required=True, help="who withdraws (required)")
    p.add_argument("--reason", required=True, metavar="TEXT", help="why, for the audit trail (required)")
    p.add_argument("--note", metavar="TEXT", help="a note for the journalists, printed in the notice")
    p.set_defaults(func=cmd_withdraw)

    p = sub.add_parser("run", help="run the scheduler: deliver what is due, lift embargoes")
    p.add_argument("--exit-when-idle", action="store_true",
                   help="exit once nothing is pending, sending, retrying or scheduled")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("log", help="the delivery log: one row per channel and target")
    p.add_argument("id", nargs="?", help="one statement's id (default: every statement)")
    p.add_argument("--format", choices=("table", "json", "csv"), default="table")
    p.add_argument("--status", choices=[s.value for s in deliveries.DeliveryStatus], help="only rows in this status")
    p.add_argument("--channel", help="only rows of this channel (email, wire, feed, mastodon, bluesky, or social for both)")
    p.add_argument("--attempts", action="store_true",
                   help="list every attempt (when, worker, outcome, the relay's reply) instead of one row per target")
    p.add_argument("--since", metavar="TIME", help="only deliveries sent (or, not sent, due) at or after TIME")
    p.add_argument("--until", metavar="TIME", help="only deliveries sent (or, not sent, due) before TIME")
    p.set_defaults(func=cmd_log)

    p = sub.add_parser("report", help="one screen on a statement: per channel, first and last send, lateness, "
                                      "the slowest and the failed")
    p.add_argument("id", help="the statement's id (see 'distributor list')")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("audit", help="the audit trail: who imported, approved, scheduled, withdrew what")
    p.add_argument("id", nargs="?", help="one statement's id (default: the whole trail)")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.set_defaults(func=cmd_audit)

    p = sub.add_parser("status", help="what needs attention: open alerts, failed and overdue deliveries, what is "
                                      "due in 24 hours; exits 1 when something needs attention")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("workers", help="the `run` processes seen by this database, and how long ago each beat")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.set_defaults(func=cmd_workers)

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
    p = r.add_parser("remove", help="take one address off a list; its embargoed copies not yet sent are stopped")
    p.add_argument("email", help="the member's address")
    p.add_argument("--list", required=True, help="the list's name")
    p.add_argument("--by", help="who removes (default: the login name)")
    p.set_defaults(func=cmd_recipients_remove)
    p = r.add_parser("unsubscribe", help="suppress an address for all future mail")
    p.add_argument("email", help="the address to suppress")
    p.add_argument("--by", help="who unsubscribes it (default: the login name)")
    p.set_defaults(func=cmd_recipients_unsubscribe)
    p = r.add_parser("list", help="list recipients")
    p.add_argument("--list")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.set_defaults(func=cmd_recipients_list)
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

    p = sub.add_parser("serve", help="serve the web app (waitress); it does not deliver: run 'distributor run' beside it")
    p.add_argument("--host", default="127.0.0.1", help="the address to listen on (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=8080, help="the port (default: 8080)")
    p.add_argument("--threads", type=int, default=8, help="worker threads (default: 8)")
    p.set_defaults(func=cmd_serve)

    nested = {"recipients": r, "users": u}
    for command, examples in EXAMPLES.items():
        words = command.split()
        target = sub.choices[words[0]]
        if len(words) > 1:
            target = nested[words[0]].choices[words[1]]
        target.epilog = "examples:\n" + "\n".join(f"  {line}" for line in examples)
        target.formatter_class = argparse.RawDescriptionHelpFormatter
    return parser


EXAMPLES: dict[str, tuple[str, ...]] = {
    "new": ("distributor new press-office", "distributor new /srv/press-office"),
    "init": ("distributor init", "distributor --config /etc/distributor/distributor.toml init"),
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
    "run": ("distributor run", "distributor run --exit-when-idle"),
    "log": ("distributor log tro-01-001-2026 --status failed", "distributor log tro-01-001-2026 --attempts",
            "distributor log --channel social --format csv > deliveries.csv",
            "distributor log --since '2026-12-14 00:00 Europe/London' --until '2026-12-15 00:00 Europe/London'"),
    "report": ("distributor report tro-01-001-2026",),
    "audit": ("distributor audit tro-01-001-2026",),
    "workers": ("distributor workers",),
    "status": ("distributor status", "distributor status --format json || notify-the-duty-officer"),
    "recipients import": ("distributor recipients import recipients/journalists.csv --list embargo",
                          "distributor recipients import journalists.csv --list embargo --replace --by 'Kim Ahn'"),
    "recipients remove": ("distributor recipients remove ana@paper.example.com --list embargo --by 'Kim Ahn'",),
    "recipients unsubscribe": ("distributor recipients unsubscribe ana@paper.example.com",),
    "recipients list": ("distributor recipients list --list embargo",),
    "users add": ("printf '%s' \"$PASSWORD\" | distributor users add kim --role manager --password-stdin",
                  "distributor users add maya --role editor"),
    "users passwd": ("distributor users passwd maya",),
    "users remove": ("distributor users remove kim",),
    "users list": ("distributor users list",),
    "serve": ("distributor serve", "distributor serve --host 0.0.0.0 --port 8080"),
}


def setup_logging(level: int) -> None:
    levels = {-1: logging.WARNING, 0: logging.INFO, 1: logging.DEBUG}
    logging.basicConfig(level=levels[max(-1, min(1, level))], stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%Y-%m-%dT%H:%M:%S%z")
    for noisy in ("apscheduler", "alembic"):
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


if __name__ == "__main__":
    raise SystemExit(main())
