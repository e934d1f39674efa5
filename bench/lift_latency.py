"""Lift latency: how long after the embargo instant the wire request arrives.

    python bench/lift_latency.py [--statements 20] [--spacing 0.7]

Schedules N statements with embargoes a few seconds apart, runs `distributor run` as its own process and a wire
endpoint on loopback, and prints p50, p99 and max of (time of first request - embargo). It fails if any request
arrives before its embargo. Targets: p99 under 1 s at the very least; aim for under 100 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent / "distributor"

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
transport = "file"

[channels.email.file]
directory = "{folder}/outbox"

[[channels.wire]]
name = "loopback"
url = "http://127.0.0.1:{port}/ingest"
"""

STATEMENT = """Press Release

1 December 2026

Index: BENCH 01/{n:03d}/2026

Bench statement number {n}

A paragraph of the statement body, long enough to look like a real one, about the latency of a lift.
"""


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


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--statements", type=int, default=20)
    parser.add_argument("--spacing", type=float, default=0.7, help="seconds between embargoes")
    args = parser.parse_args()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Arrivals)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        config = folder / "distributor.toml"
        config.write_text(CONFIG.format(db=folder / "d.db", templates=ROOT / "templates", folder=folder,
                                        port=server.server_address[1]))
        env = {**os.environ, "DISTRIBUTOR_CONFIG": str(config)}

        def cli(*a: str) -> str:
            return subprocess.run([str(BIN), "-q", *a], env=env, check=True, capture_output=True, text=True).stdout

        cli("init")
        ids = []
        for n in range(args.statements):
            path = folder / f"s{n}.txt"
            path.write_text(STATEMENT.format(n=n))
            ids.append(cli("import", str(path)).strip())
            cli("approve", ids[-1], "--by", "bench")
        # the scheduler is already running when statements are scheduled, as in production
        runner = subprocess.Popen([str(BIN), *([] if os.environ.get("BENCH_VERBOSE") else ["-q"]), "run"], env=env)
        try:
            first = datetime.now(UTC) + timedelta(seconds=3 + args.statements * 1.0)
            embargoes = {}
            for n, sid in enumerate(ids):
                embargo = first + timedelta(seconds=n * args.spacing)
                cli("schedule", sid, "--embargo", embargo.isoformat(), "--channels", "wire")
                embargoes[sid] = embargo.timestamp()
            deadline = time.time() + (max(embargoes.values()) - time.time()) + 10
            while time.time() < deadline and len(Arrivals.first) < len(embargoes):
                time.sleep(0.1)
        finally:
            runner.terminate()
            runner.wait(timeout=30)
    server.shutdown()

    missing = sorted(set(embargoes) - set(Arrivals.first))
    latencies = [(Arrivals.first[sid] - embargoes[sid]) * 1000 for sid in embargoes if sid in Arrivals.first]
    early = [sid for sid in embargoes if sid in Arrivals.first and Arrivals.first[sid] < embargoes[sid]]
    print(f"statements: {len(embargoes)}, spacing {args.spacing}s, requests received: {len(latencies)}")
    print(f"lift latency (first request - embargo): p50 {statistics.median(latencies):.1f} ms, "
          f"p99 {percentile(latencies, 99):.1f} ms, max {max(latencies):.1f} ms, min {min(latencies):.1f} ms")
    if early:
        print(f"FAIL: {len(early)} requests arrived before their embargo: {', '.join(early)}")
        return 1
    if missing:
        print(f"FAIL: no request for {', '.join(missing)}")
        return 1
    return 0 if percentile(latencies, 99) < 1000 else 1


if __name__ == "__main__":
    raise SystemExit(main())
