"""The web app's pages against a large delivery record, on SQLite.

    python bench/dashboard.py [--big 100000] [--statements 50] [--each 2000] [--runs 5] [--concurrent-send N]

Fills a fresh database with one statement of --big email deliveries and --statements statements of --each, then
times (server side, through the WSGI app, median of --runs) every page: the statements list and its search, the big
statement's page and a filtered recipient page of it, the audit trail filtered, the alerts, the lists and a list,
the calendar and a recipient's history. Target: each under 300 ms, by indexes, not by a cache.

With --concurrent-send N, a worker (``distributor run``) then sends an embargoed statement to N recipients through a
loopback SMTP sink on the same database, and the same pages are timed in turn while it sends. Target: p99 of each
under 300 ms during the send.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, Sink, address, bulk_recipients, percentile, smtp_config, stop  # noqa: E402

from distributor import users  # noqa: E402
from distributor.channels import load_config  # noqa: E402
from distributor.clock import Clock  # noqa: E402
from distributor.statements.model import Statement  # noqa: E402
from distributor.store import connect, init_schema  # noqa: E402
from distributor.store.schema import deliveries, revisions, statements  # noqa: E402
from distributor.web import create_app  # noqa: E402

PASSWORD = "benchmark password"
BIN = Path(sys.executable).parent / "distributor"
TARGET_MS = 300.0


def fill(engine, big: int, count: int, each: int) -> str:
    """Statements with delivered email copies: most sent, some failed, a few retrying."""
    now = datetime.now(UTC)
    bulk_recipients(engine, big)
    document = Statement(title="A statement for the benchmark", body=("Its body.",)).to_dict()
    with engine.begin() as conn:
        users.add(conn, "bench", users.Role.MANAGER, PASSWORD, now)
    specs = [("big-statement", big)] + [(f"statement-{i:03d}", each) for i in range(count)]
    for n, (sid, size) in enumerate(specs):
        created = now - timedelta(hours=len(specs) - n)
        with engine.begin() as conn:
            conn.execute(statements.insert().values(
                id=sid, status="released", revision=1, approved_revision=1, published_revision=1,
                embargo=created + timedelta(minutes=30), send_embargoed_at=created, channels=["email"],
                released_at=created + timedelta(minutes=30), created_at=created, updated_at=created))
            conn.execute(revisions.insert().values(statement_id=sid, number=1, content_hash=sid, content=document,
                                                   source=f"{sid}.txt", imported_by="bench", imported_at=created))
            for start in range(0, size, 20000):
                rows = []
                for i in range(start, min(size, start + 20000)):
                    status = "failed" if i % 97 == 0 else "retrying" if i % 389 == 0 else "sent"
                    rows.append({
                        "statement_id": sid, "revision": 1, "channel": "email", "target": address(i),
                        "status": status, "attempts": 1, "due_at": created, "next_attempt_at": created,
                        "sent_at": created + timedelta(seconds=i / 1000) if status == "sent" else None,
                        "variant": "embargoed" if status == "sent" else None,
                        "last_error": "550 5.1.1 no such mailbox" if status == "failed" else None,
                        "remote_id": f"<{sid}.{i}@example.org>", "updated_at": created,
                        "kind": "statement", "generation": 1, "notice": 0})
                conn.execute(deliveries.insert(), rows)
    return "big-statement"


def timed(client, path: str, runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        reply = client.get(path)
        times.append((time.perf_counter() - started) * 1000)
        assert reply.status_code == 200, (path, reply.status_code)
    return statistics.median(times)


def pages(sid: str, recipient: str, sending: str | None = None) -> dict[str, str]:
    watched = {f"the statement being sent (/statements/{sending})": f"/statements/{sending}"} if sending else {}
    return {**watched,
        "statements page (/)": "/",
        "statements found by title (/?q=benchmark)": "/?q=benchmark",
        f"statement page (/statements/{sid})": f"/statements/{sid}",
        "filtered recipient page (?status=failed&q=journalist1&page=3)":
            f"/statements/{sid}?status=failed&q=journalist1&page=3",
        "audit trail (/audit)": "/audit",
        "audit trail filtered (/audit?action=approved)": "/audit?action=approved",
        "alerts (/status)": "/status",
        "lists (/lists)": "/lists",
        "one list (/lists/embargo?q=journalist1)": "/lists/embargo?q=journalist1",
        "calendar (/calendar)": "/calendar",
        "a recipient's history": f"/recipients/{recipient}",
    }


def concurrent_send(engine, config_path: Path, client, sid: str, n: int, big: int) -> dict[str, list[float]]:
    """Time every page in turn while a worker sends an embargoed statement to n recipients."""
    from sqlalchemy import func, select

    from distributor import workflow
    from distributor.channels import REGISTRY
    from distributor.statements import parse_file

    bulk_recipients(engine, n, list_name="sending", start=big)
    now = datetime.now(UTC)
    source = ROOT / "examples" / "statements" / "nhrn-12-004-2026.txt"
    with engine.begin() as conn:
        send_id = workflow.import_statement(conn, parse_file(source), str(source), "bench", now).id
        workflow.approve(conn, send_id, "bench", now)
        workflow.schedule(conn, send_id, "bench", now, override_embargo=True, embargo=now + timedelta(days=1),
                          send_embargoed_at=now + timedelta(seconds=3), channels={"email": REGISTRY["email"]})
    timings: dict[str, list[float]] = {name: [] for name in pages(sid, address(min(12345, big - 1)), send_id)}
    with Sink() as sink, tempfile.TemporaryFile("w+") as log_file:
        text = config_path.read_text(encoding="utf-8").replace("port = 25\n", f"port = {sink.port}\n")
        config_path.write_text(text, encoding="utf-8")
        runner = subprocess.Popen([str(BIN), "run"], env={**os.environ, "DISTRIBUTOR_CONFIG": str(config_path)},
                                  stdout=subprocess.DEVNULL, stderr=log_file)
        try:
            def sent() -> int:
                with engine.connect() as conn:
                    return conn.execute(select(func.count()).where(
                        deliveries.c.statement_id == send_id, deliveries.c.status == "sent")).scalar_one()
            deadline = time.monotonic() + 600
            while sent() == 0:
                if runner.poll() is not None or time.monotonic() > deadline:
                    log_file.seek(0)
                    raise SystemExit(f"the send did not start:\n{log_file.read()[-2000:]}")
                time.sleep(0.1)
            began = time.monotonic()
            while sent() < n and time.monotonic() < deadline:
                for name, path in pages(sid, address(min(12345, big - 1)), send_id).items():
                    started = time.perf_counter()
                    reply = client.get(path)
                    timings[name].append((time.perf_counter() - started) * 1000)
                    assert reply.status_code == 200, (path, reply.status_code)
            print(f"concurrent send: {sent():,} of {n:,} messages sent in {time.monotonic() - began:.1f} s while "
                  f"the pages were timed ({sum(len(v) for v in timings.values())} requests)")
        finally:
            stop(runner, grace=30)
    return timings


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--big", type=int, default=100_000)
    parser.add_argument("--statements", type=int, default=50)
    parser.add_argument("--each", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--concurrent-send", type=int, default=0, metavar="N",
                        help="then time the pages again while a worker sends to N recipients")
    args = parser.parse_args()
    os.environ["BENCH_WEB_SECRET"] = "a benchmark secret of more than thirty-two characters"
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{folder}/bench.db"
        config_path = Path(folder) / "distributor.toml"
        config_path.write_text(smtp_config(url, 25).replace('transport = "smtp"\n', 'transport = "smtp"\nlist = "sending"\n')
                               + '\n[web]\nsecret_env = "BENCH_WEB_SECRET"\n', encoding="utf-8")
        config = load_config(config_path)
        engine = connect(config.database_url)
        init_schema(engine)
        started = time.perf_counter()
        sid = fill(engine, args.big, args.statements, args.each)
        total = args.big + args.statements * args.each
        print(f"filled {total:,} deliveries in {time.perf_counter() - started:.1f} s")
        app = create_app(config, engine, Clock())
        client = app.test_client()
        page = client.get("/login").get_data(as_text=True)
        token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
        client.post("/login", data={"username": "bench", "password": PASSWORD, "csrf_token": token})
        failed = False
        print(f"idle, median of {args.runs}:")
        for name, path in pages(sid, address(min(12345, args.big - 1))).items():
            ms = timed(client, path, args.runs)
            failed = failed or ms >= TARGET_MS
            print(f"  {name:64s} {ms:8.1f} ms  {'ok' if ms < TARGET_MS else 'OVER 300 ms'}")
        if args.concurrent_send:
            timings = concurrent_send(engine, config_path, client, sid, args.concurrent_send, args.big)
            print("during the send, median and p99:")
            for name, values in timings.items():
                if not values:
                    continue
                p99 = percentile(values, 99)
                failed = failed or p99 >= TARGET_MS
                print(f"  {name:64s} {statistics.median(values):8.1f} {p99:8.1f} ms  "
                      f"{'ok' if p99 < TARGET_MS else 'OVER 300 ms'}")
        engine.dispose()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
