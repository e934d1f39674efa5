"""Email throughput: the SMTP sink's ceiling, the distributor end to end, and a naive loop.

    python bench/email_throughput.py [--recipients 20000] [--runs 3] [--memory-recipients 100000]

All three talk to the same aiosmtpd sink, in its own process on loopback:
  1. ceiling:     one pre-built message of the same size, over one reused connection;
  2. distributor: plan, render, MIME, SMTP and status recorded (SQLite, WAL), as `distributor run` does it;
  3. naive:       EmailMessage built per recipient, a new SMTP connection per message, one commit per status row.
Each figure is the median of --runs runs. Targets: (2) >= 0.75 x (1) and (2) >= 3 x (3).
With --memory-recipients, the distributor also sends to that many recipients in a child process and reports its
peak resident memory (target: under 200 MB at 100,000).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import smtplib
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

STATEMENT = ROOT / "examples" / "statements" / "nhrn-12-004-2026.txt"
CONFIG = """
[office]
name = "Northfield Human Rights Network"
timezone = "Europe/London"
also_show = ["America/New_York", "Europe/Paris", "Asia/Tokyo"]
from = "press@nhrn.example.org"

[paths]
templates = "{templates}"

[database]
url = "sqlite:///{db}"

[channels.email]
transport = "smtp"

[channels.email.smtp]
host = "127.0.0.1"
port = {port}
connections = 4
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Sink:
    def __enter__(self):
        self.port = free_port()
        self.process = subprocess.Popen([sys.executable, str(ROOT / "bench" / "sink.py"), str(self.port)],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout.readline().strip() == "ready"
        return self

    def __exit__(self, *exc):
        self.process.stdin.close()
        self.process.wait(timeout=10)


def write_recipients(path: Path, n: int) -> None:
    with path.open("w", encoding="utf-8") as handle:
        handle.write("email,name,outlet,embargo_ok\n")
        for i in range(n):
            handle.write(f"journalist{i}@outlet{i % 97}.example.com,Journalist {i},Outlet {i % 97},yes\n")


def installation(folder: Path, port: int, n: int):
    """A configured database with n vetted recipients and one approved statement."""
    from distributor import recipients, workflow
    from distributor.channels import load_config as load
    from distributor.statements import parse_file
    from distributor.store import connect, init_schema

    config_path = folder / "distributor.toml"
    config_path.write_text(CONFIG.format(db=folder / "d.db", port=port, templates=ROOT / "templates"))
    config = load(config_path)
    engine = connect(config.database_url)
    init_schema(engine)
    csv = folder / "r.csv"
    write_recipients(csv, n)
    now = datetime.now(UTC)
    with engine.begin() as conn:
        recipients.import_csv(conn, csv, "embargo", now)
        sid = workflow.import_statement(conn, parse_file(STATEMENT), str(STATEMENT), "bench", now).id
        workflow.approve(conn, sid, "bench", now)
    return config, engine, sid


def run_distributor(folder: Path, port: int, n: int) -> tuple[float, bytes]:
    from distributor import workflow
    from distributor.channels import Context, build
    from distributor.clock import Clock
    from distributor.dispatch import Dispatcher
    from distributor.outcomes import Result
    from distributor.render import Renderer

    config, engine, sid = installation(folder, port, n)
    context = Context(config, engine, Clock(), Renderer(config.paths.templates, config.office))
    channels = build(context)
    now = datetime.now(UTC)
    with engine.begin() as conn:
        workflow.schedule(conn, sid, "bench", now, embargo=now + timedelta(hours=1), send_embargoed_at=now,
                          channels={"email": channels["email"]})
    dispatcher = Dispatcher(context, channels, worker="bench")
    start = time.perf_counter()
    dispatcher.advance()
    totals = dispatcher.deliver("email")
    elapsed = time.perf_counter() - start
    channels["email"].close()
    assert totals == {Result.SENT: n}, totals
    # one message as the distributor made it, for the other two runs to match in size
    from distributor.channels.base import EMBARGOED, Job
    with engine.connect() as conn:
        row = workflow.scheduled(conn) or workflow.listing(conn)
        sid = row[0]["id"]
        job = Job(sid, 1, workflow.content(conn, sid, 1), row[0]["embargo"], row[0]["send_embargoed_at"])
    rendered = channels["email"].render(job, EMBARGOED)
    sample = rendered.message("journalist0@outlet0.example.com", "Journalist 0", "<x@example.org>",
                              datetime.now(UTC))
    engine.dispose()
    return elapsed, sample


def run_ceiling(port: int, n: int, message: bytes) -> float:
    conn = smtplib.SMTP("127.0.0.1", port)
    start = time.perf_counter()
    for i in range(n):
        conn.sendmail("press@nhrn.example.org", [f"journalist{i}@outlet{i % 97}.example.com"], message)
    elapsed = time.perf_counter() - start
    conn.quit()
    return elapsed


def run_naive(folder: Path, port: int, n: int, sample: bytes) -> float:
    import email
    import email.policy

    parsed = email.message_from_bytes(sample, policy=email.policy.default)
    text = parsed.get_body(("plain",)).get_content()
    html = parsed.get_body(("html",)).get_content()
    db = sqlite3.connect(folder / "naive.db")
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE status (recipient TEXT, status TEXT, at TEXT)")
    db.commit()
    start = time.perf_counter()
    for i in range(n):
        to = f"journalist{i}@outlet{i % 97}.example.com"
        msg = EmailMessage()
        msg["From"] = "Northfield Human Rights Network <press@nhrn.example.org>"
        msg["To"] = f"Journalist {i} <{to}>"
        msg["Subject"] = str(parsed["Subject"])
        msg.set_content(text)
        msg.add_alternative(html, subtype="html")
        with smtplib.SMTP("127.0.0.1", port) as conn:
            conn.send_message(msg)
        db.execute("INSERT INTO status VALUES (?, 'sent', ?)", (to, datetime.now(UTC).isoformat()))
        db.commit()
    elapsed = time.perf_counter() - start
    db.close()
    return elapsed


def memory_child(n: int) -> None:
    with Sink() as sink, tempfile.TemporaryDirectory() as tmp:
        elapsed, _ = run_distributor(Path(tmp), sink.port, n)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"recipients": n, "seconds": elapsed, "peak_mb": peak_mb}))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipients", type=int, default=20000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--memory-recipients", type=int, default=0)
    parser.add_argument("--memory-child", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        memory_child(args.memory_child)
        return 0

    n = args.recipients
    results: dict[str, list[float]] = {"ceiling": [], "distributor": [], "naive": []}
    with Sink() as sink:
        for run in range(args.runs):
            with tempfile.TemporaryDirectory() as tmp:
                elapsed, sample = run_distributor(Path(tmp), sink.port, n)
                results["distributor"].append(n / elapsed)
                results["ceiling"].append(n / run_ceiling(sink.port, n, sample))
                results["naive"].append(n / run_naive(Path(tmp), sink.port, n, sample))
            print(f"run {run + 1}: " + ", ".join(f"{k} {v[-1]:.0f}/s" for k, v in results.items()), flush=True)
    median = {k: statistics.median(v) for k, v in results.items()}
    print(f"\nrecipients: {n}, runs: {args.runs}, message size: {len(sample)} bytes")
    print(f"1. sink ceiling (one connection, pre-built message): {median['ceiling']:8.0f} messages/s")
    print(f"2. distributor end to end:                          {median['distributor']:8.0f} messages/s")
    print(f"3. naive loop:                                      {median['naive']:8.0f} messages/s")
    ratio_ceiling = median["distributor"] / median["ceiling"]
    ratio_naive = median["distributor"] / median["naive"]
    print(f"(2)/(1) = {ratio_ceiling:.2f} (target >= 0.75); (2)/(3) = {ratio_naive:.1f} (target >= 3)")
    ok = ratio_ceiling >= 0.75 and ratio_naive >= 3
    if args.memory_recipients:
        child = subprocess.run([sys.executable, __file__, "--memory-child", str(args.memory_recipients)],
                               capture_output=True, text=True, check=True)
        memory = json.loads(child.stdout.strip().splitlines()[-1])
        print(f"peak memory at {memory['recipients']} recipients: {memory['peak_mb']:.0f} MB "
              f"({memory['recipients'] / memory['seconds']:.0f} messages/s) (target < 200 MB)")
        ok = ok and memory["peak_mb"] < 200
    return 0 if ok else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    raise SystemExit(main())
