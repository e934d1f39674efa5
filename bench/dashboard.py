"""The web app's pages against a large delivery record, on SQLite.

    python bench/dashboard.py [--big 100000] [--statements 50] [--each 2000] [--runs 5]

Fills a fresh database with one statement of --big email deliveries and --statements statements of --each, then
times (server side, through the WSGI app, median of --runs) the statements page, the big statement's page, and a
filtered, paginated recipient page of it. Target: each under 300 ms, by indexes, not by a cache.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import address, bulk_recipients, smtp_config  # noqa: E402

from distributor import users  # noqa: E402
from distributor.channels import load_config  # noqa: E402
from distributor.clock import Clock  # noqa: E402
from distributor.statements.model import Statement  # noqa: E402
from distributor.store import connect, init_schema  # noqa: E402
from distributor.store.schema import deliveries, revisions, statements  # noqa: E402
from distributor.web import create_app  # noqa: E402

PASSWORD = "benchmark password"


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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--big", type=int, default=100_000)
    parser.add_argument("--statements", type=int, default=50)
    parser.add_argument("--each", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    os.environ["BENCH_WEB_SECRET"] = "a benchmark secret of more than thirty-two characters"
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{folder}/bench.db"
        config_path = Path(folder) / "distributor.toml"
        config_path.write_text(smtp_config(url, 25)
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
        results = {
            "statements page (/)": timed(client, "/", args.runs),
            f"statement page (/statements/{sid})": timed(client, f"/statements/{sid}", args.runs),
            "filtered recipient page (?status=failed&q=journalist1&page=3)": timed(
                client, f"/statements/{sid}?status=failed&q=journalist1&page=3", args.runs),
        }
        failed = False
        for name, ms in results.items():
            verdict = "ok" if ms < 300 else "OVER 300 ms"
            failed = failed or ms >= 300
            print(f"{name:64s} {ms:8.1f} ms  {verdict}")
        engine.dispose()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
