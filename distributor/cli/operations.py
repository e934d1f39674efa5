"""Commands on the installation and its watch: new, init, run, workers, status, and what happened: log, report,
audit."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from sqlalchemy.exc import OperationalError, ProgrammingError

from distributor import channels as channel_registry
from distributor import csvout, deliveries, operations, workflow
from distributor import status as status_module
from distributor import workers as workers_module
from distributor.cli.common import Parser, add_examples, cannot_open, cut, open_app, parse_time, table, visible
from distributor.clock import iso_z
from distributor.errors import InputError
from distributor.outcomes import Variant
from distributor.render import when
from distributor.store import init_schema, reading

SCAFFOLD = Path(__file__).parent.parent / "scaffold"


def cmd_new(args) -> int:
    """A new office folder: a documented config, templates to edit, an example list and statement."""
    import shutil

    from distributor.render import DEFAULT_TEMPLATES

    target = Path(args.dir)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise InputError("exists and is not an empty folder; choose a new one", where=str(target))
    shutil.copytree(SCAFFOLD, target, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
    # the web app's pages are part of the program, not the office's to edit: they are not copied
    shutil.copytree(DEFAULT_TEMPLATES, target / "templates", ignore=shutil.ignore_patterns("__pycache__", "web"))
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
        if getattr(args, "views", False):
            if not args.id:
                raise InputError("--views needs a statement ID", where="--views")
            print_views(conn, args)
            return 0
        channels = channel_registry.expand(args.channel) if args.channel else None
        since, until = parse_time(args.since, "--since"), parse_time(args.until, "--until")
        lists = ListsOf(app, conn)
        records = (lists.added(operations.log_record(r)) for r in deliveries.log_rows(conn, args.id, since, until)
                   if (not args.status or r["status"] == args.status) and (not channels or r["channel"] in channels))
        if args.format == "json":
            print(json.dumps(list(records), ensure_ascii=False, indent=2))
        elif args.format == "csv":
            csvout.write(sys.stdout, [*operations.LOG_FIELDS, "after_lift", "lists"],
                         ({**r, "lists": ", ".join(r["lists"])} for r in records))
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


def print_views(conn, args) -> None:
    """Who opened the statement in the journalists' portal: first and last view, views and downloads."""
    from distributor import portal

    rows = [{**r, "first_view": iso_z(r["first_view"]), "last_view": iso_z(r["last_view"])}
            for r in portal.opened_by(conn, args.id)]
    if args.format == "json":
        print(json.dumps(rows, ensure_ascii=False, indent=2))
    elif args.format == "csv":
        csvout.write(sys.stdout, list(portal.VIEW_COLUMNS), rows)
    else:
        table(list(portal.VIEW_COLUMNS), [[r["journalist"], r["first_view"] or "-", r["last_view"] or "-",
                                           str(r["views"]), str(r["downloads"])] for r in rows])
        print()
        print(f"opened by {len(rows)} journalist{'' if len(rows) == 1 else 's'}")


class ListsOf:
    """The recipient lists of each statement's email, read once per statement: ``lists`` of a log record (none for
    the other channels)."""

    def __init__(self, app, conn):
        self.app, self.conn = app, conn
        self.found: dict[str, list[str]] = {}

    @staticmethod
    def chosen(app, row: dict) -> list[str]:
        email = app.config.channels.get("email")
        return list(row["lists"] or ([email.list] if email else []))

    def added(self, record: dict) -> dict:
        sid = record["statement"]
        if record["channel"] != "email":
            return {**record, "lists": []}
        if sid not in self.found:
            self.found[sid] = self.chosen(self.app, workflow.get(self.conn, sid))
        return {**record, "lists": self.found[sid]}


def cmd_report(args) -> int:
    app = open_app(args)
    with reading(app.engine) as conn:
        row = workflow.get(conn, args.id)
        rows = [operations.log_record(r) for r in deliveries.log_rows(conn, args.id)]
    title = f"{args.id}: {row['status']}, revision {row['published_revision'] or row['revision']}"
    print(title + (f"; embargo {when(row['embargo'])}" if row["embargo"] else ""))
    if "email" in (row["channels"] or []):
        print(f"lists: {', '.join(ListsOf.chosen(app, row))}")
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


def add_parsers(sub: argparse._SubParsersAction[Parser]) -> None:
    p = sub.add_parser("new", help="write a new office folder: config, templates, an example list and statement")
    p.add_argument("dir", metavar="DIR", help="the folder to create (new or empty)")
    p.set_defaults(func=cmd_new)

    p = sub.add_parser("init", help="create or upgrade the database schema (safe to repeat)")
    p.set_defaults(func=cmd_init)

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
    p.add_argument("--views", action="store_true",
                   help="who opened the statement in the journalists' portal: journalist, first_view, last_view, "
                        "views, downloads")
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

    add_examples(sub, EXAMPLES)


EXAMPLES: dict[str, tuple[str, ...]] = {
    "new": ("distributor new press-office", "distributor new /srv/press-office"),
    "init": ("distributor init", "distributor --config /etc/distributor/distributor.toml init"),
    "run": ("distributor run", "distributor run --exit-when-idle"),
    "log": ("distributor log tro-01-001-2026 --status failed", "distributor log tro-01-001-2026 --attempts",
            "distributor log --channel social --format csv > deliveries.csv",
            "distributor log --since '2026-12-14 00:00 Europe/London' --until '2026-12-15 00:00 Europe/London'"),
    "report": ("distributor report tro-01-001-2026",),
    "audit": ("distributor audit tro-01-001-2026",),
    "workers": ("distributor workers",),
    "status": ("distributor status", "distributor status --format json || notify-the-duty-officer"),
}
