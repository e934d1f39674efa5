"""Lift latency: how long after the embargo instant the wire request arrives, and the newsroom's page is on disk,
idle and under a concurrent send.

    python bench/lift_latency.py [--statements 100] [--spacing 0.3] [--concurrent-send 60000]

Runs `distributor run` as its own process (logging at its default level, to a file) with a wire endpoint on
loopback. --statements wire statements are lifted --spacing seconds apart with nothing else to do (idle). With
--concurrent-send N, the same number of lifts follows while the same worker sends an embargoed email to N
recipients through a loopback SMTP sink in its own process (the send starts one second after the idle lifts; the
loaded lifts start --settle seconds after the send does, so planning the send is part of the load). Statements are
scheduled while the scheduler is already running, as in production.

Every statement goes to the wire and to the newsroom (a static site in the run's folder, as every release goes to
it when one is configured): a thread of this process looks for each statement's page (<id>/index.html) every 2 ms
from a second before its embargo, and notes when it first exists.

Prints p50/p99/max of (time of first request - embargo) for each phase, of (page first seen - embargo) beside it,
how many loaded lifts fell while the send was still going, and how long after the embargo the statement was marked
released (from the log; the request does not wait for it: the wire item is prepared ahead and held until the
instant). Fails if any request arrives or any page exists before its embargo, or one is missing. Targets: idle p99
< 20 ms; loaded p99 <= idle p99 + 10 ms; every newsroom page within 1 s of its lift.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, Sink, bulk_recipients, percentile, stop  # noqa: E402

BIN = Path(sys.executable).parent / "distributor"
IDLE_P99_TARGET_MS = 20.0
LOADED_EXTRA_TARGET_MS = 10.0
PAGE_TARGET_MS = 1000.0
PAGE_POLL_SECONDS = 0.002

CONFIG = """
[office]
name = "Bench Office"
timezone = "Europe/London"
from = "press@bench.example.org"

[database]
url = "sqlite:///{db}"

[paths]
templates = "{templates}"

[channels.email]
{email}

[[channels.wire]]
name = "loopback"
url = "http://127.0.0.1:{port}/ingest"

[channels.newsroom]
directory = "{folder}/news"
url = "https://press.bench.example.org/news/"
"""
EMAIL_FILE = 'transport = "file"\n\n[channels.email.file]\ndirectory = "{folder}/outbox"'
EMAIL_SMTP = 'transport = "smtp"\n\n[channels.email.smtp]\nhost = "127.0.0.1"\nport = {port}\nconnections = 4'

STATEMENT = """Press Release

1 December 2026

Index: BENCH 01/{n:03d}/2026

Bench statement number {n}

A paragraph of the statement body, long enough to look like a real one, about the latency of a lift.
"""
LIFTED = re.compile(r"distributor\.run: (\S+): embargo lifted at \S+ \(([-\d.]+)s after")


class Arrivals(BaseHTTPRequestHandler):
    first: dict[str, float] = {}
    lock = threading.Lock()

    def do_POST(self):
        arrived = time.time()
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        item = json.loads(body)
        with self.lock:
            self.first.setdefault(item["slugline"], arrived)
        self.send_response(201)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"id": "ok"}')

    def log_message(self, *args):
        pass


def summary(values: list[float]) -> str:
    if not values:
        return "none"
    return (f"p50 {statistics.median(values):.1f} ms, p99 {percentile(values, 99):.1f} ms, max {max(values):.1f} ms, "
            f"min {min(values):.1f} ms")


class Pages(threading.Thread):
    """Notes when each statement's newsroom page first exists, looking every 2 ms from a second before its
    embargo (a page that exists earlier is still seen then, before its embargo, and counted as early)."""

    def __init__(self, directory: Path, embargoes: dict[str, float]):
        super().__init__(daemon=True)
        self.directory = directory
        self.embargoes = embargoes
        self.first: dict[str, float] = {}
        self.done = threading.Event()

    def run(self) -> None:
        waiting = sorted(self.embargoes, key=self.embargoes.__getitem__)
        while waiting and not self.done.is_set():
            now = time.time()
            for sid in [s for s in waiting if self.embargoes[s] - now < 1.0]:
                if (self.directory / sid / "index.html").exists():
                    self.first[sid] = time.time()
                    waiting.remove(sid)
            time.sleep(PAGE_POLL_SECONDS)


class NoSink:
    port = 0
    summary = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--statements", type=int, default=100, help="lifts per phase (idle, and loaded)")
    parser.add_argument("--spacing", type=float, default=0.3, help="seconds between embargoes")
    parser.add_argument("--concurrent-send", type=int, default=0, metavar="N",
                        help="recipients of an email send that runs during the loaded lifts (0: idle only)")
    parser.add_argument("--settle", type=float, default=0.5,
                        help="seconds between the start of the send and the first loaded lift")
    parser.add_argument("--lead", type=float, default=5.0, help="seconds from scheduling to the first embargo")
    parser.add_argument("--keep-log", type=Path, help="copy the scheduler's log here")
    args = parser.parse_args()
    if args.statements < 1:
        parser.error("--statements must be at least 1")

    from distributor import workflow
    from distributor.channels import REGISTRY, load_config
    from distributor.statements import parse_file
    from distributor.store import connect, init_schema

    loaded = args.concurrent_send > 0
    server = ThreadingHTTPServer(("127.0.0.1", 0), Arrivals)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    with tempfile.TemporaryDirectory() as tmp, (Sink() if loaded else NoSink()) as sink:
        folder = Path(tmp)
        config_path = folder / "distributor.toml"
        email = EMAIL_SMTP.format(port=sink.port) if loaded else EMAIL_FILE.format(folder=folder)
        config_path.write_text(CONFIG.format(db=folder / "d.db", templates=ROOT / "templates", email=email,
                                             port=server.server_address[1], folder=folder))
        config = load_config(config_path)
        engine = connect(config.database_url)
        init_schema(engine)
        now = datetime.now(UTC)
        phases = {"idle": [], "loaded": []}
        with engine.begin() as conn:
            for n in range(args.statements * (2 if loaded else 1)):
                path = folder / f"s{n}.txt"
                path.write_text(STATEMENT.format(n=n))
                sid = workflow.import_statement(conn, parse_file(path), str(path), "bench", now).id
                workflow.approve(conn, sid, "bench", now)
                phases["idle" if n < args.statements else "loaded"].append(sid)
            if loaded:
                source = ROOT / "examples" / "statements" / "nhrn-12-004-2026.txt"
                email_id = workflow.import_statement(conn, parse_file(source), str(source), "bench", now).id
                workflow.approve(conn, email_id, "bench", now)
        if loaded:
            bulk_recipients(engine, args.concurrent_send)

        env = {**os.environ, "DISTRIBUTOR_CONFIG": str(config_path)}
        log_path = folder / "run.log"
        with log_path.open("w") as log_file:
            runner = subprocess.Popen([str(BIN), "run"], env=env, stderr=log_file, stdout=subprocess.DEVNULL)
        try:
            # the scheduler is already running when statements are scheduled, as in production
            while "scheduler running" not in log_path.read_text():
                if runner.poll() is not None:
                    raise SystemExit(f"distributor run exited:\n{log_path.read_text()}")
                time.sleep(0.05)
            first = datetime.now(UTC) + timedelta(seconds=args.lead)
            embargoes: dict[str, float] = {}
            send_at = None
            with engine.begin() as conn:
                at = datetime.now(UTC)
                for n, sid in enumerate(phases["idle"]):
                    embargo = first + timedelta(seconds=n * args.spacing)
                    workflow.schedule(conn, sid, "bench", at, override_embargo=True, embargo=embargo, send_embargoed_at=None,
                                      channels={"wire": REGISTRY["wire"], "newsroom": REGISTRY["newsroom"]})
                    embargoes[sid] = embargo.timestamp()
                if loaded:
                    send_at = first + timedelta(seconds=args.statements * args.spacing + 1)
                    workflow.schedule(conn, email_id, "bench", at, override_embargo=True, embargo=at + timedelta(days=1),
                                      send_embargoed_at=send_at, channels={"email": REGISTRY["email"]})
                    for n, sid in enumerate(phases["loaded"]):
                        embargo = send_at + timedelta(seconds=args.settle + n * args.spacing)
                        workflow.schedule(conn, sid, "bench", at, override_embargo=True, embargo=embargo, send_embargoed_at=None,
                                          channels={"wire": REGISTRY["wire"], "newsroom": REGISTRY["newsroom"]})
                        embargoes[sid] = embargo.timestamp()
            if datetime.now(UTC) >= first:
                raise SystemExit("scheduling took longer than the lead time; raise --lead")
            pages = Pages(folder / "news", embargoes)
            pages.start()
            deadline = max(embargoes.values()) + 15
            while time.time() < deadline and (len(Arrivals.first) < len(embargoes) or pages.is_alive()):
                time.sleep(0.1)
            pages.done.set()
            pages.join(timeout=5)
        finally:
            stop(runner)  # a send in progress is drained before the scheduler exits: do not wait for it
            engine.dispose()
        log_text = log_path.read_text()
        if args.keep_log:
            args.keep_log.write_text(log_text)
    server.shutdown()

    started = {m.group(1): float(m.group(2)) * 1000 for m in LIFTED.finditer(log_text)}
    missing = sorted(set(embargoes) - set(Arrivals.first))
    early = [sid for sid in embargoes if sid in Arrivals.first and Arrivals.first[sid] < embargoes[sid]]
    latency = {phase: [(Arrivals.first[s] - embargoes[s]) * 1000 for s in sids if s in Arrivals.first]
               for phase, sids in phases.items()}
    on_disk = {phase: [(pages.first[s] - embargoes[s]) * 1000 for s in sids if s in pages.first]
               for phase, sids in phases.items()}
    early_pages = [sid for sid in embargoes if sid in pages.first and pages.first[sid] < embargoes[sid]]
    missing_pages = sorted(set(embargoes) - set(pages.first))
    print(f"lifts per phase: {args.statements}, spacing {args.spacing}s, requests received: "
          f"{len(Arrivals.first)} of {len(embargoes)}, newsroom pages written: {len(pages.first)} of {len(embargoes)}")
    ok = True
    print(f"idle lift latency (first request - embargo):   {summary(latency['idle'])}")
    print(f"      newsroom page on disk (first seen - embargo): {summary(on_disk['idle'])}")
    print(f"      status set to released (log, after embargo): "
          f"{summary([started[s] for s in phases['idle'] if s in started])}")
    idle_p99 = percentile(latency["idle"], 99) if latency["idle"] else float("inf")
    if loaded:
        sent, last = sink.summary["count"], sink.summary["last"] or 0
        during = sum(1 for s in phases["loaded"] if embargoes[s] <= last)
        print(f"concurrent send: {args.concurrent_send} recipients from {send_at:%H:%M:%S.%f}"[:-3]
              + f", {sent} messages accepted by the sink, last {last - send_at.timestamp():.1f}s after the send began; "
              f"{during} of {len(phases['loaded'])} loaded lifts fell during the send")
        print(f"loaded lift latency (first request - embargo): {summary(latency['loaded'])}")
        print(f"      newsroom page on disk (first seen - embargo): {summary(on_disk['loaded'])}")
        print(f"      status set to released (log, after embargo): "
              f"{summary([started[s] for s in phases['loaded'] if s in started])}")
        loaded_p99 = percentile(latency["loaded"], 99) if latency["loaded"] else float("inf")
        print(f"targets: idle p99 {idle_p99:.1f} ms (< {IDLE_P99_TARGET_MS:.0f} ms): "
              f"{'met' if idle_p99 < IDLE_P99_TARGET_MS else 'NOT met'}; loaded p99 {loaded_p99:.1f} ms "
              f"(<= idle p99 + {LOADED_EXTRA_TARGET_MS:.0f} = {idle_p99 + LOADED_EXTRA_TARGET_MS:.1f} ms): "
              f"{'met' if loaded_p99 <= idle_p99 + LOADED_EXTRA_TARGET_MS else 'NOT met'}")
        ok = idle_p99 < IDLE_P99_TARGET_MS and loaded_p99 <= idle_p99 + LOADED_EXTRA_TARGET_MS
        if during < len(phases["loaded"]):
            print(f"WARNING: the send ended before {len(phases['loaded']) - during} loaded lifts; "
                  f"raise --concurrent-send")
    else:
        print(f"target: idle p99 {idle_p99:.1f} ms (< {IDLE_P99_TARGET_MS:.0f} ms): "
              f"{'met' if idle_p99 < IDLE_P99_TARGET_MS else 'NOT met'}")
        ok = idle_p99 < IDLE_P99_TARGET_MS
    page_max = max((v for values in on_disk.values() for v in values), default=float("inf"))
    page_p99 = {phase: percentile(values, 99) for phase, values in on_disk.items() if values}
    print(f"target: every newsroom page on disk within {PAGE_TARGET_MS:.0f} ms of its lift (p99 "
          + ", ".join(f"{phase} {value:.1f} ms" for phase, value in page_p99.items())
          + f"; max {page_max:.1f} ms): {'met' if page_max < PAGE_TARGET_MS else 'NOT met'}")
    ok = ok and page_max < PAGE_TARGET_MS
    if early:
        print(f"FAIL: {len(early)} requests arrived before their embargo: {', '.join(early)}")
        return 1
    if early_pages:
        print(f"FAIL: {len(early_pages)} newsroom pages existed before their embargo: {', '.join(early_pages)}")
        return 1
    if missing_pages:
        print(f"FAIL: no newsroom page for {', '.join(missing_pages)}")
        return 1
    if missing:
        print(f"FAIL: no request for {', '.join(missing)}")
        return 1
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
