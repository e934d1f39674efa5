"""Scale-out on PostgreSQL: one send through 1, 2 and 3 `distributor run --exit-when-idle` processes.

    python bench/scale_out.py [--database-url URL] [--recipients 20000] [--workers 1,2,3]

The database URL comes from --database-url, else from DISTRIBUTOR_BENCH_DATABASE_URL; without one the benchmark
is skipped. THE DATABASE'S public SCHEMA IS DROPPED AND RECREATED before each run: give it a database of its own.

For each number of workers: reset the schema, `init` it, bulk-insert the recipients (as the CSV importer writes
them), import, approve and schedule one statement whose copies are due a few seconds ahead (once every worker is
up), start the workers together, all sending to one loopback SMTP sink in its own process, and wait for them to
exit. Throughput is recipients / (last message accepted by the sink - due time). The sink records every
recipient it accepted: duplicates and missing recipients must both be 0, or the benchmark exits non-zero.
"""

from __future__ import annotations

import argparse
import collections
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, Sink, address, bulk_recipients, smtp_config  # noqa: E402

BIN = Path(sys.executable).parent / "distributor"
STATEMENT = ROOT / "examples" / "statements" / "nhrn-12-004-2026.txt"


def reset_schema(engine) -> None:
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP SCHEMA IF EXISTS public CASCADE")
        conn.exec_driver_sql("CREATE SCHEMA public")


def one_run(url: str, n: int, workers: int, lead: float, timeout: float) -> dict:
    from sqlalchemy import func, select

    from distributor import workflow
    from distributor.channels import REGISTRY, load_config
    from distributor.statements import parse_file
    from distributor.store import connect, init_schema
    from distributor.store.schema import attempts, deliveries

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        record = folder / "received.txt"
        with Sink(record) as sink:
            config_path = folder / "distributor.toml"
            config_path.write_text(smtp_config(url, sink.port, also_show=()))
            config = load_config(config_path)
            engine = connect(config.database_url)
            reset_schema(engine)
            init_schema(engine)
            bulk_recipients(engine, n)
            now = datetime.now(UTC)
            due = now + timedelta(seconds=lead)
            with engine.begin() as conn:
                sid = workflow.import_statement(conn, parse_file(STATEMENT), str(STATEMENT), "bench", now).id
                workflow.approve(conn, sid, "bench", now)
                # copies due at `due`; the embargo follows a second later so the workers can go idle and exit
                workflow.schedule(conn, sid, "bench", now, override_embargo=True, embargo=due + timedelta(seconds=1),
                                  send_embargoed_at=due, channels={"email": REGISTRY["email"]})
            env = {**os.environ, "DISTRIBUTOR_CONFIG": str(config_path)}
            logs = [folder / f"worker{i}.log" for i in range(workers)]
            processes = []
            for log in logs:
                with log.open("w") as handle:
                    processes.append(subprocess.Popen([str(BIN), "run", "--exit-when-idle"], env=env,
                                                      stdout=subprocess.DEVNULL, stderr=handle))
            while not all("scheduler running" in log.read_text() for log in logs):
                if any(p.poll() is not None for p in processes):
                    break
                time.sleep(0.05)
            late_start = datetime.now(UTC) > due
            deadline = time.time() + timeout
            codes = []
            for p in processes:
                try:
                    codes.append(p.wait(timeout=max(1, deadline - time.time())))
                except subprocess.TimeoutExpired:
                    p.terminate()
                    codes.append(p.wait(timeout=60))
            exited = time.time()
            with engine.connect() as conn:
                statuses = dict(conn.execute(select(deliveries.c.status, func.count()).group_by(
                    deliveries.c.status)).all())
                per_worker = dict(conn.execute(select(attempts.c.worker, func.count()).where(
                    attempts.c.outcome == "sent").group_by(attempts.c.worker)).all())
            engine.dispose()
            failures = [log.read_text()[-2000:] for log, code in zip(logs, codes, strict=True) if code != 0]
        received = record.read_text().split()
    counts = collections.Counter(received)
    expected = {address(i) for i in range(n)}
    last = sink.summary["last"] or due.timestamp()
    return {
        "workers": workers, "codes": codes, "failures": failures, "late_start": late_start,
        "throughput": n / (last - due.timestamp()), "seconds": last - due.timestamp(),
        "exit_after": exited - due.timestamp(),
        "accepted": len(received),
        "duplicates": sum(c - 1 for c in counts.values() if c > 1),
        "missing": len(expected - set(counts)), "unexpected": len(set(counts) - expected),
        "statuses": statuses, "per_worker": sorted(per_worker.values(), reverse=True),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=os.environ.get("DISTRIBUTOR_BENCH_DATABASE_URL"),
                        help="postgresql+psycopg://... (default: $DISTRIBUTOR_BENCH_DATABASE_URL)")
    parser.add_argument("--recipients", type=int, default=20000)
    parser.add_argument("--workers", default="1,2,3", help="comma-separated numbers of worker processes")
    parser.add_argument("--lead", type=float, default=10.0, help="seconds from scheduling to the copies being due")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for the workers of one run")
    args = parser.parse_args()
    if not args.database_url:
        print("scale_out: skipped: no PostgreSQL database given (set DISTRIBUTOR_BENCH_DATABASE_URL or pass "
              "--database-url postgresql+psycopg://user@host/dbname; its public schema is dropped and recreated)")
        return 0
    if not args.database_url.startswith("postgresql"):
        parser.error("--database-url must be a PostgreSQL URL (postgresql+psycopg://...)")

    ok = True
    print(f"recipients: {args.recipients}, one loopback SMTP sink, 4 SMTP connections per worker, PostgreSQL")
    for workers in (int(w) for w in args.workers.split(",")):
        r = one_run(args.database_url, args.recipients, workers, args.lead, args.timeout)
        print(f"{workers} worker{'s' if workers > 1 else ' '}: {r['throughput']:6.0f} messages/s "
              f"({r['seconds']:.1f} s from due to last message; all exited {r['exit_after']:.1f} s after due), "
              f"duplicates {r['duplicates']}, missing {r['missing']}; sent per worker {r['per_worker']}; "
              f"statuses {r['statuses']}", flush=True)
        if r["late_start"]:
            print("   note: not every worker was up when the copies fell due; raise --lead")
        if r["duplicates"] or r["missing"] or r["unexpected"]:
            print(f"FAIL: {r['duplicates']} duplicates, {r['missing']} missing, {r['unexpected']} unexpected")
            ok = False
        if any(r["codes"]):
            print(f"FAIL: worker exit codes {r['codes']}")
            for text in r["failures"]:
                print(text)
            ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
