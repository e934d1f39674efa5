"""What the benchmarks share: the SMTP sink process, free ports, percentiles, and bulk recipient lists."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


# One office sending to one loopback SMTP sink (over 4 connections unless told): what every email benchmark uses.
SMTP_CONFIG = """
[office]
name = "Northfield Human Rights Network"
timezone = "Europe/London"
also_show = {also_show}
from = "press@nhrn.example.org"

[paths]
templates = "{templates}"

[database]
url = "{url}"

[channels.email]
transport = "smtp"

[channels.email.smtp]
host = "127.0.0.1"
port = {port}
connections = {connections}
"""


def smtp_config(url: str, port: int, also_show: tuple[str, ...] = ("America/New_York", "Europe/Paris", "Asia/Tokyo"),
                connections: int = 4) -> str:
    zones = "[" + ", ".join(f'"{z}"' for z in also_show) + "]"
    return SMTP_CONFIG.format(templates=ROOT / "templates", url=url, port=port, also_show=zones,
                              connections=connections)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Sink:
    """bench/sink.py in its own process. ``summary`` (count, first, last) is set once the block exits."""

    def __init__(self, record: Path | None = None):
        self.record = record
        self.summary: dict | None = None

    def __enter__(self) -> Sink:
        self.port = free_port()
        extra = ["--record", str(self.record)] if self.record else []
        self.process = subprocess.Popen([sys.executable, str(ROOT / "bench" / "sink.py"), str(self.port), *extra],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        line = self.process.stdout.readline().strip()
        if line != "ready":
            self.process.kill()
            raise RuntimeError(f"the SMTP sink did not start (said {line!r})")
        return self

    def __exit__(self, *exc) -> None:
        self.process.stdin.close()
        out = self.process.stdout.read()
        self.process.wait(timeout=60)
        lines = out.strip().splitlines()
        self.summary = json.loads(lines[-1]) if lines else None


def stop(process: subprocess.Popen, grace: float = 10) -> None:
    """Ask a process to stop (SIGTERM), and kill it if it has not within ``grace`` seconds."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


def address(i: int) -> str:
    return f"journalist{i}@outlet{i % 97}.example.com"


def write_recipients_csv(path: Path, start: int, n: int) -> None:
    with path.open("w", encoding="utf-8") as handle:
        handle.write("email,name,outlet,embargo_ok\n")
        for i in range(start, start + n):
            handle.write(f"{address(i)},Journalist {i},Outlet {i % 97},yes\n")


def recipient_rows(start: int, n: int, list_name: str, now: datetime):
    """The rows ``recipients.import_csv`` writes for write_recipients_csv(start, n): the addresses are already in
    email-validator's normal form and lower case, so ``email`` and ``email_key`` are the address itself."""
    for i in range(start, start + n):
        email = address(i)
        yield {"list_name": list_name, "email": email, "email_key": email.lower(), "name": f"Journalist {i}",
               "outlet": f"Outlet {i % 97}", "embargo_ok": True, "language": "", "tags": "",
               "created_at": now, "updated_at": now}


def bulk_recipients(engine, n: int, list_name: str = "embargo", start: int = 0, chunk: int = 20000) -> None:
    """Insert n recipients straight into the recipients table, as the CSV importer would write them.

    On SQLite this goes through the sqlite3 module (one transaction, executemany), storing booleans and UTC
    datetimes exactly as SQLAlchemy's SQLite dialect does; elsewhere through SQLAlchemy Core in chunks."""
    from sqlalchemy import insert

    from distributor.store.schema import recipients

    now = datetime.now(UTC)
    if engine.dialect.name == "sqlite":
        stamp = now.replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")
        columns = ("list_name", "email", "email_key", "name", "outlet", "embargo_ok", "language", "tags",
                   "created_at", "updated_at")
        sql = f"INSERT INTO recipients ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
        raw = engine.raw_connection()
        try:
            cursor = raw.cursor()
            cursor.execute("BEGIN IMMEDIATE")
            cursor.executemany(sql, ((r["list_name"], r["email"], r["email_key"], r["name"], r["outlet"], 1, "", "",
                                      stamp, stamp) for r in recipient_rows(start, n, list_name, now)))
            cursor.execute("COMMIT")
            cursor.close()
        finally:
            raw.close()
        return
    rows = recipient_rows(start, n, list_name, now)
    with engine.begin() as conn:
        while True:
            batch = [row for _, row in zip(range(chunk), rows, strict=False)]
            if not batch:
                break
            conn.execute(insert(recipients), batch)


def check_bulk_matches_importer(folder: Path, database_url_for, n: int = 200) -> None:
    """Import n recipients with the CSV importer into one database and bulk-insert them into another, and fail
    unless the rows are the same (ids and timestamps aside; timestamps must read back as aware UTC)."""
    from sqlalchemy import select

    from distributor import recipients as importer
    from distributor.store import connect, init_schema
    from distributor.store.schema import recipients

    csv = folder / "check.csv"
    write_recipients_csv(csv, 0, n)
    tables = []
    for how in ("importer", "bulk"):
        engine = connect(database_url_for(how))
        init_schema(engine)
        if how == "importer":
            with engine.begin() as conn:
                report = importer.import_csv(conn, csv, "embargo", datetime.now(UTC))
            assert report.added == n and not report.rejected, report
        else:
            bulk_recipients(engine, n)
        with engine.connect() as conn:
            rows = [dict(r) for r in conn.execute(select(recipients).order_by(recipients.c.id)).mappings()]
        engine.dispose()
        for row in rows:
            for stamp in ("created_at", "updated_at"):
                assert row.pop(stamp).tzinfo is not None
            row.pop("id")
        tables.append(rows)
    if tables[0] != tables[1]:
        raise SystemExit("bulk-inserted recipients differ from what the CSV importer writes")


# The statement the web benchmarks release; each gives its own number, so that their ids differ.
_STATEMENT = """Press Release

1 December 2026

Index: BENCH {number}/001/2026

Riverland: Flood maps must be published before the winter

The Bench Office said today that the river authority must publish its flood maps before the first storms of the
winter, so that the residents of the valley can see which streets are at risk.

Residents told researchers that nobody had listened when they asked for the maps, and that the last flood came
without a warning. The authority has had the maps since the spring.

"People have a right to know whether their homes are at risk," the office's director said.

For more information please call the press office on +44 20 7946 0000
"""


def statement_text(number: str) -> str:
    return _STATEMENT.replace("{number}", number)
