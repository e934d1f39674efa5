"""Email throughput: the SMTP sink's ceiling, the distributor end to end, and a naive loop; and peak memory.

    python bench/email_throughput.py [--recipients 20000] [--runs 3] [--memory-recipients 10000,1000000]
                                     [--tracemalloc-recipients 10000,100000] [--overlapping-lists 4x5000]
                                     [--attachment-bytes 1000000] [--portal]

All three throughput figures talk to the same aiosmtpd sink, in its own process on loopback. The sink offers
PIPELINING (RFC 2920), as Postfix and Exim do:
  1. ceiling:     as many connections as the distributor's pool (`connections` in its config), each from its own
                  process, each sending one pre-built message of the same size over one reused connection in the
                  distributor's dialogue (MAIL, RCPT and DATA in one write, then the message, dot-stuffed once);
                  all start together and the figure is total sent / wall time from the common start to the last
                  finish;
  2. distributor: plan, render, MIME, SMTP over the pool and every status recorded (SQLite, WAL), as
                  `distributor run` does it;
  3. naive:       EmailMessage built per recipient, a new SMTP connection per message, one commit per status row.
Each figure is the median of --runs runs, in messages and in megabytes (of the whole message as it goes on the wire)
per second. Targets: (2) >= 0.9 x (1) and (2) >= 3 x (3). For comparison, (1) is
also measured with its connections as threads of one process, as the distributor's are: the most that one Python
process, with nothing else to do, gets from this sink.

--memory-recipients N[,M...] measures the peak resident memory of one send only: the database is prepared in this
process (recipients bulk-inserted as the CSV importer writes them, statement imported, approved and scheduled),
then a fresh child process plans, claims, renders, sends, records and logs, and its peak RSS (VmHWM, the peak
since exec) is read from /proc. --memory-timeout bounds each send; a send stopped by it is reported as incomplete
with the peak seen so far, and fails the benchmark.
Targets: under 120 MB at the largest size, and within 1.25 x of the peak at the smallest.

--attachment-bytes N gives the statement a PDF of about N bytes, which every copy carries as an attachment (base64,
about 1.37 N on the wire); the ceiling and the naive loop send the same message, attachment included.

--portal turns the journalists' portal on: each copy carries its journalist's own link, written into the body that
is encoded once per revision, so that every message differs; the ceiling sends one message of the same size.

--overlapping-lists KxN compares, in alternating runs (--runs of each), the distributor end to end to one list of
--recipients with the same statement scheduled to K lists of N members, each overlapping the one before it by half
(so (K + 1) x N / 2 people, each sent one copy): the medians of both in messages per second, and their ratio.

--tracemalloc-recipients N,M runs the same child under tracemalloc at both sizes, keeps a snapshot near each peak
and prints the allocation sites (by traceback) that grew most from N to M.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import os
import queue
import re
import smtplib
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, Sink, address, bulk_recipients, check_bulk_matches_importer, smtp_config  # noqa: E402

STATEMENT = ROOT / "examples" / "statements" / "nhrn-12-004-2026.txt"
MEMORY_TARGET_MB = 120
MEMORY_GROWTH_TARGET = 1.25


CONNECTIONS = 4  # the pool's size in the benchmark's config (--connections)
ATTACHMENT_BYTES = 0  # a PDF of about this many bytes goes with every copy (--attachment-bytes); 0: none
PORTAL = False  # each copy carries its journalist's own portal link, put into the shared body per message (--portal)
PORTAL_CONFIG = """
[web]
secret_env = "BENCH_WEB_SECRET"

[portal]
terms = "Respect the embargo."
"""


def document_of(size: int) -> bytes:
    """A one-page PDF of about ``size`` bytes: a page-sized grey image of random pixels, which do not compress."""
    import io
    import random

    import pikepdf

    pdf = pikepdf.new()
    pdf.add_blank_page(page_size=(595, 842))
    edge = max(8, int(size ** 0.5))
    image = pikepdf.Stream(pdf, random.Random(1).randbytes(edge * edge))
    image.Type, image.Subtype = pikepdf.Name.XObject, pikepdf.Name.Image
    image.Width, image.Height, image.BitsPerComponent = edge, edge, 8
    image.ColorSpace = pikepdf.Name.DeviceGray
    page = pdf.pages[0]
    page.Resources = pikepdf.Dictionary(XObject=pikepdf.Dictionary(Im0=image))
    page.Contents = pdf.make_stream(b"q 595 0 0 842 0 0 cm /Im0 Do Q")
    out = io.BytesIO()
    pdf.save(out)
    return out.getvalue()


def installation(folder: Path, port: int, n: int, schedule: bool = False):
    """A configured database with n vetted recipients and one approved (optionally scheduled) statement."""
    from distributor import media, workflow
    from distributor.channels import REGISTRY, load_config
    from distributor.statements import parse_file
    from distributor.store import connect, init_schema

    config_path = folder / "distributor.toml"
    text = smtp_config(f"sqlite:///{folder / 'd.db'}", port, connections=CONNECTIONS)
    text = text.replace("[paths]\n", f'[paths]\nmedia = "{folder / "media"}"\n', 1)
    if PORTAL:
        os.environ.setdefault("BENCH_WEB_SECRET", "a-benchmark-key-of-more-than-32-characters")
        text = text.replace("[office]\n", '[office]\nbase_url = "https://press.example.org/distributor"\n', 1)
        text += PORTAL_CONFIG
    config_path.write_text(text)
    config = load_config(config_path)
    engine = connect(config.database_url)
    init_schema(engine)
    bulk_recipients(engine, n)
    now = datetime.now(UTC)
    with engine.begin() as conn:
        sid = workflow.import_statement(conn, parse_file(STATEMENT), str(STATEMENT), "bench", now).id
        if ATTACHMENT_BYTES:
            library = media.Library.of(config)
            document = document_of(ATTACHMENT_BYTES)

            def add(items):
                item = library.take(document, "report.pdf", "bench", {"title": "The full report"}, items)
                return items + (item,), item
            workflow.change_media(conn, sid, add, "bench", now)
        workflow.approve(conn, sid, "bench", now)
        if schedule:
            workflow.schedule(conn, sid, "bench", now, override_embargo=True, embargo=now + timedelta(days=1),
                              send_embargoed_at=now, channels={"email": REGISTRY["email"]})
    return config_path, config, engine, sid


def send_scheduled(config, engine, sid: str, expected: int, lists: tuple[str, ...] | None = None):
    """Schedule the statement's email now (to ``lists``, else the configured list), then plan and send it as a
    worker does. Returns the seconds it took and the email channel (closed)."""
    from distributor import workflow
    from distributor.channels import Context, build
    from distributor.clock import Clock
    from distributor.dispatch import Dispatcher
    from distributor.outcomes import Result
    from distributor.render import Renderer

    context = Context(config, engine, Clock(), Renderer(config.paths.templates, config.office))
    channels = build(context)
    now = datetime.now(UTC)
    with engine.begin() as conn:
        workflow.schedule(conn, sid, "bench", now, override_embargo=True, embargo=now + timedelta(hours=1),
                          send_embargoed_at=now, channels={"email": channels["email"]},
                          **({"lists": lists} if lists else {}))
    dispatcher = Dispatcher(context, channels, worker="bench")
    start = time.perf_counter()
    dispatcher.advance()
    totals = dispatcher.deliver("email")
    elapsed = time.perf_counter() - start
    channels["email"].close()
    assert totals == {Result.SENT: expected}, totals
    return elapsed, channels["email"]


def run_distributor(folder: Path, port: int, n: int) -> tuple[float, bytes, int]:
    """Seconds for the distributor to plan and send to n recipients; a sample message; the pool's size."""
    from distributor import workflow
    from distributor.channels.base import EMBARGOED, Job

    _, config, engine, sid = installation(folder, port, n)
    elapsed, email = send_scheduled(config, engine, sid, n)
    # one message as the distributor made it, for the other two runs to match in size
    with engine.connect() as conn:
        row = workflow.get(conn, sid)
        job = Job(sid, row["revision"], workflow.content(conn, sid, row["revision"]), row["embargo"],
                  row["send_embargoed_at"])
    rendered = email.render(job, EMBARGOED)
    assert len(rendered.attached) == (1 if ATTACHMENT_BYTES else 0), rendered.listed
    sample = rendered.message(address(0), "Journalist 0", "<x@example.org>", datetime.now(UTC))
    engine.dispose()
    return elapsed, sample, email.settings.smtp.connections


def run_lists(folder: Path, port: int, count: int, size: int) -> tuple[float, int]:
    """Seconds for the distributor to plan and send a statement scheduled to ``count`` lists of ``size`` members,
    each overlapping the one before it by half; and how many people that is (each sent one copy)."""
    _, config, engine, sid = installation(folder, port, 0)
    names = tuple(f"list{i}" for i in range(count))
    for i, name in enumerate(names):
        bulk_recipients(engine, size, list_name=name, start=i * size // 2)
    people = (count - 1) * size // 2 + size
    elapsed, _ = send_scheduled(config, engine, sid, people, lists=names)
    engine.dispose()
    return elapsed, people


def lists_report(port: int, n: int, count: int, size: int, runs: int) -> None:
    """One list of n against ``count`` overlapping lists of ``size``, alternating, ``runs`` of each."""
    single: list[float] = []
    several: list[float] = []
    for run in range(runs):
        with tempfile.TemporaryDirectory() as tmp:
            elapsed, _, _ = run_distributor(Path(tmp), port, n)
            single.append(n / elapsed)
        with tempfile.TemporaryDirectory() as tmp:
            elapsed, people = run_lists(Path(tmp), port, count, size)
            several.append(people / elapsed)
        print(f"run {run + 1}: one list of {n}: {single[-1]:.0f}/s; {count} lists of {size} overlapping by half "
              f"({people} people): {several[-1]:.0f}/s", flush=True)
    one, many = statistics.median(single), statistics.median(several)
    print(f"\nmedians of {runs} alternating runs: one list of {n}: {one:.0f} messages/s; {count} lists of {size}: "
          f"{many:.0f} messages/s; ratio {many / one:.2f} (spread of the single list's runs: "
          f"{min(single):.0f} to {max(single):.0f}/s)", flush=True)


# -- 1. the ceiling: one process per connection ---------------------------------------------------------------
def _ceiling_lane(port: int, start: int, count: int, message: bytes, ready, go, results) -> None:
    conn = smtplib.SMTP("127.0.0.1", port)
    conn.ehlo()
    pipelining = conn.has_extn("pipelining")
    data = re.sub(rb"(?m)^\.", b"..", message) + (b".\r\n" if message.endswith(b"\r\n") else b"\r\n.\r\n")
    ready.put(os.getpid())
    go.wait()
    sent = 0
    for i in range(start, start + count):
        if pipelining:  # the distributor's dialogue: MAIL, RCPT and DATA in one group, then the message
            conn.send(f"MAIL FROM:<press@nhrn.example.org>\r\nRCPT TO:<{address(i)}>\r\nDATA\r\n".encode())
            replies = [conn.getreply()[0] for _ in range(3)]
            assert replies == [250, 250, 354], replies
            conn.send(data)
            code = conn.getreply()[0]
            assert code == 250, code
        else:
            conn.sendmail("press@nhrn.example.org", [address(i)], message)
        sent += 1
    finished = time.monotonic()  # CLOCK_MONOTONIC: one clock for every process on the machine
    conn.quit()
    results.put((sent, finished))


def run_ceiling(port: int, n: int, message: bytes, connections: int, threads: bool = False) -> float:
    """Messages per second over ``connections`` connections, each from its own process (or, with ``threads``,
    each a thread of this one process), started together."""
    ctx = multiprocessing.get_context("spawn")
    ready, results, go = (queue.Queue(), queue.Queue(), threading.Event()) if threads else \
        (ctx.Queue(), ctx.Queue(), ctx.Event())
    share = [n // connections + (1 if i < n % connections else 0) for i in range(connections)]
    make = threading.Thread if threads else ctx.Process
    lanes = [make(target=_ceiling_lane, args=(port, sum(share[:i]), share[i], message, ready, go, results))
             for i in range(connections)]
    for lane in lanes:
        lane.start()
    for _ in lanes:
        ready.get(timeout=60)  # every lane connected and waiting
    start = time.monotonic()
    go.set()
    done = [results.get(timeout=600) for _ in lanes]
    for lane in lanes:
        lane.join(timeout=60)
        assert threads or lane.exitcode == 0, lane.exitcode
    sent = sum(s for s, _ in done)
    assert sent == n, (sent, n)
    return sent / (max(f for _, f in done) - start)


# -- 3. the naive loop ----------------------------------------------------------------------------------------
def run_naive(folder: Path, port: int, n: int, sample: bytes) -> float:
    import email
    import email.policy

    parsed = email.message_from_bytes(sample, policy=email.policy.default)
    text = parsed.get_body(("plain",)).get_content()
    html = parsed.get_body(("html",)).get_content()
    files = [(part.get_content(), part.get_content_type(), part.get_filename()) for part in parsed.iter_attachments()]
    db = sqlite3.connect(folder / "naive.db")
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE status (recipient TEXT, status TEXT, at TEXT)")
    db.commit()
    start = time.perf_counter()
    for i in range(n):
        to = address(i)
        msg = EmailMessage()
        msg["From"] = "Northfield Human Rights Network <press@nhrn.example.org>"
        msg["To"] = f"Journalist {i} <{to}>"
        msg["Subject"] = str(parsed["Subject"])
        msg.set_content(text)
        msg.add_alternative(html, subtype="html")
        for data, content_type, filename in files:
            maintype, _, subtype = content_type.partition("/")
            msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
        with smtplib.SMTP("127.0.0.1", port) as conn:
            conn.send_message(msg)
        db.execute("INSERT INTO status VALUES (?, 'sent', ?)", (to, datetime.now(UTC).isoformat()))
        db.commit()
    elapsed = time.perf_counter() - start
    db.close()
    return n / elapsed


# -- memory: one send in a fresh child process ----------------------------------------------------------------
def vm_hwm_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


class PeakSnapshots:
    """Under tracemalloc: every 0.25 s, if traced memory is 10% above the last snapshot, keep a snapshot."""

    def __init__(self):
        import tracemalloc

        self.tracemalloc = tracemalloc
        self.best = 0
        self.snapshot = None
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self):
        while not self.stop.wait(0.25):
            self.check()

    def check(self):
        current, _ = self.tracemalloc.get_traced_memory()
        if current > self.best * 1.10:
            self.best = current
            self.snapshot = self.tracemalloc.take_snapshot()


def memory_child(config_path: str, n: int, snapshot_file: str | None) -> None:
    """The send only, as `distributor run` does it: advance (plan), deliver (claim, render, send, record), log."""
    from distributor.channels import Context, build, load_config
    from distributor.cli import setup_logging
    from distributor.clock import Clock
    from distributor.dispatch import Dispatcher
    from distributor.outcomes import Result
    from distributor.render import Renderer
    from distributor.store import connect

    setup_logging(0)  # INFO lines to stderr, as `distributor run` writes them
    watcher = None
    if snapshot_file:
        import tracemalloc

        tracemalloc.start(25)
        watcher = PeakSnapshots()
        watcher.thread.start()
    config = load_config(Path(config_path))
    engine = connect(config.database_url)
    context = Context(config, engine, Clock(), Renderer(config.paths.templates, config.office))
    channels = build(context)
    dispatcher = Dispatcher(context, channels)
    start = time.perf_counter()
    dispatcher.advance()
    totals = dispatcher.deliver("email")
    elapsed = time.perf_counter() - start
    for channel in channels.values():
        channel.close()
    if watcher:
        watcher.stop.set()
        watcher.thread.join()
        watcher.check()
        watcher.snapshot.dump(snapshot_file)
        logging.info("tracemalloc peak %.1f MB", watcher.tracemalloc.get_traced_memory()[1] / 2**20)
    assert totals == {Result.SENT: n}, totals
    print(json.dumps({"recipients": n, "seconds": elapsed, "vm_hwm_mb": vm_hwm_mb()}))


def hwm_of(pid: int) -> float:
    """VmHWM of a running process (its peak RSS since exec), in MB; 0 if it has gone."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def measure_send(n: int, snapshot_file: Path | None = None, timeout: float = 0) -> dict:
    """Prepare a database for n recipients here, then send in a fresh child.

    The peak is the child's VmHWM (its own peak RSS since exec), as it reports it at the end or as last read from
    /proc while it ran; wait4()'s ru_maxrss is kept too (on Linux it also counts the pre-exec image of this
    process). With ``timeout`` the send is stopped after that many seconds and reported as incomplete."""
    with tempfile.TemporaryDirectory() as tmp, Sink() as sink:
        folder = Path(tmp)
        prepared = time.perf_counter()
        config_path, _, engine, _ = installation(folder, sink.port, n, schedule=True)
        engine.dispose()
        prepared = time.perf_counter() - prepared
        command = [sys.executable, __file__, "--memory-child", str(config_path), "--expect", str(n)]
        if snapshot_file:
            command += ["--snapshot", str(snapshot_file)]
        started = time.perf_counter()
        seen_hwm = 0.0
        with (folder / "send.log").open("w") as log_file, (folder / "child.out").open("w+") as out_file:
            child = subprocess.Popen(command, stdout=out_file, stderr=log_file, text=True)
            incomplete = False
            while True:
                pid, status, usage = os.wait4(child.pid, os.WNOHANG)
                if pid:
                    break
                seen_hwm = max(seen_hwm, hwm_of(child.pid))
                if timeout and time.perf_counter() - started > timeout:
                    incomplete = True
                    seen_hwm = max(seen_hwm, hwm_of(child.pid))
                    child.kill()
                    _, status, usage = os.wait4(child.pid, 0)
                    break
                time.sleep(0.2)
            child.returncode = os.waitstatus_to_exitcode(status)
            out_file.seek(0)
            out = out_file.read()
        log_lines = sum(1 for _ in (folder / "send.log").open())
        if child.returncode != 0 and not incomplete:
            sys.stderr.write((folder / "send.log").read_text()[-4000:])
            raise SystemExit(f"the send to {n} recipients failed (exit {child.returncode})")
        lines = out.strip().splitlines()
        result = json.loads(lines[-1]) if lines and not incomplete else {
            "recipients": n, "seconds": time.perf_counter() - started, "vm_hwm_mb": seen_hwm}
        result["vm_hwm_mb"] = max(result["vm_hwm_mb"], seen_hwm)
        result["peak_mb"] = result["vm_hwm_mb"]
        result["ru_maxrss_mb"] = usage.ru_maxrss / 1024  # kilobytes on Linux
        result["prepare_seconds"] = prepared
        result["log_lines"] = log_lines
        result["incomplete"] = incomplete
    result["sent"] = sink.summary["count"]
    if not incomplete:
        assert result["sent"] == n, sink.summary
    return result


def memory_report(sizes: list[int], timeout: float) -> bool:
    figures = []
    for n in sizes:
        m = measure_send(n, timeout=timeout)
        figures.append(m)
        if m["incomplete"]:
            print(f"peak memory of one send to {n} recipients: at least {m['peak_mb']:.1f} MB: INCOMPLETE, stopped "
                  f"after {m['seconds']:.0f} s (--memory-timeout) with {m['sent']} of {n} sent "
                  f"({m['sent'] / m['seconds']:.0f} messages/s including planning; {m['log_lines']} log lines; "
                  f"database prepared in {m['prepare_seconds']:.1f} s)", flush=True)
            continue
        print(f"peak memory of one send to {n} recipients: {m['peak_mb']:.1f} MB (wait4 ru_maxrss "
              f"{m['ru_maxrss_mb']:.1f} MB; {n / m['seconds']:.0f} messages/s; {m['log_lines']} log lines; "
              f"database prepared in {m['prepare_seconds']:.1f} s)", flush=True)
    largest = max(figures, key=lambda m: m["recipients"])
    ok = largest["peak_mb"] < MEMORY_TARGET_MB and not any(m["incomplete"] for m in figures)
    print(f"peak at {largest['recipients']}: {largest['peak_mb']:.1f} MB (target < {MEMORY_TARGET_MB} MB)")
    if len(figures) > 1:
        smallest = min(figures, key=lambda m: m["recipients"])
        ratio = largest["peak_mb"] / smallest["peak_mb"]
        print(f"peak at {largest['recipients']} / peak at {smallest['recipients']} = {ratio:.2f} "
              f"(target <= {MEMORY_GROWTH_TARGET})")
        ok = ok and ratio <= MEMORY_GROWTH_TARGET
    return ok


def tracemalloc_report(sizes: list[int], top: int = 12) -> None:
    import tracemalloc

    small, large = sorted(sizes)[:2]
    with tempfile.TemporaryDirectory() as tmp:
        snaps = {}
        for n in (small, large):
            path = Path(tmp) / f"{n}.snapshot"
            m = measure_send(n, path)
            snaps[n] = tracemalloc.Snapshot.load(str(path)).filter_traces(
                [tracemalloc.Filter(False, tracemalloc.__file__)])
            total = sum(s.size for s in snaps[n].statistics("filename"))
            print(f"tracemalloc at {n}: {total / 2**20:.1f} MB traced near the peak (RSS peak {m['peak_mb']:.1f} MB)")
    print(f"\nallocation sites that grew most from {small} to {large} recipients (traced memory near the peak):")
    for stat in snaps[large].compare_to(snaps[small], "traceback")[:top]:
        print(f"\n  {stat.size_diff / 2**20:+8.2f} MB ({stat.count_diff:+d} blocks), {stat.size / 2**20:.2f} MB now")
        frames = [f for f in stat.traceback if "/distributor/" in f.filename and "/bench/" not in f.filename]
        for frame in (frames or list(stat.traceback))[-6:]:
            print(f"      {os.path.relpath(frame.filename, ROOT)}:{frame.lineno}")
        print(f"      allocated at {os.path.relpath(stat.traceback[0].filename, ROOT)}:{stat.traceback[0].lineno}")


def sizes_of(text: str) -> list[int]:
    return [int(s) for s in text.split(",") if s.strip()]


def main() -> int:
    global CONNECTIONS, ATTACHMENT_BYTES, PORTAL
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipients", type=int, default=20000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--connections", type=int, default=CONNECTIONS,
                        help="the distributor's SMTP connections, and so the ceiling's (default 4)")
    parser.add_argument("--attachment-bytes", type=int, default=0,
                        help="give the statement a PDF of about this many bytes, attached to every copy (default: none)")
    parser.add_argument("--portal", action="store_true",
                        help="each copy carries its journalist's own portal link (the body differs per message)")
    parser.add_argument("--memory-recipients", type=sizes_of, default=[],
                        help="one size or several, comma-separated (e.g. 10000,1000000)")
    parser.add_argument("--tracemalloc-recipients", type=sizes_of, default=[],
                        help="two sizes, e.g. 10000,100000: what grows with the list")
    parser.add_argument("--memory-timeout", type=float, default=0,
                        help="stop a memory send after this many seconds and report it as incomplete (0: no limit)")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--overlapping-lists", metavar="KxN",
                        help="K lists of N members overlapping by half against one list of --recipients, "
                             "alternating (e.g. 4x5000 with --recipients 15000)")
    parser.add_argument("--memory-child", help=argparse.SUPPRESS)
    parser.add_argument("--expect", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--snapshot", help=argparse.SUPPRESS)
    args = parser.parse_args()
    CONNECTIONS = args.connections  # the config installation() writes
    ATTACHMENT_BYTES = args.attachment_bytes
    PORTAL = args.portal
    if args.memory_child:
        memory_child(args.memory_child, args.expect, args.snapshot)
        return 0

    with tempfile.TemporaryDirectory() as tmp:  # the bulk insert writes what the importer writes
        check_bulk_matches_importer(Path(tmp), lambda how: f"sqlite:///{tmp}/{how}.db")

    ok = True
    if args.overlapping_lists:
        count, _, size = args.overlapping_lists.partition("x")
        with Sink() as sink:
            lists_report(sink.port, args.recipients, int(count), int(size), args.runs)
        return 0
    if not args.skip_throughput:
        n = args.recipients
        results: dict[str, list[float]] = {"ceiling": [], "distributor": [], "naive": [], "threads": []}
        with Sink() as sink:
            for run in range(args.runs):
                with tempfile.TemporaryDirectory() as tmp:
                    elapsed, sample, connections = run_distributor(Path(tmp), sink.port, n)
                    results["distributor"].append(n / elapsed)
                    results["ceiling"].append(run_ceiling(sink.port, n, sample, connections))
                    results["threads"].append(run_ceiling(sink.port, n, sample, connections, threads=True))
                    results["naive"].append(run_naive(Path(tmp), sink.port, n, sample))
                print(f"run {run + 1}: " + ", ".join(f"{k} {v[-1]:.0f}/s" for k, v in results.items())
                      + f"; (2)/(1) in this run {results['distributor'][-1] / results['ceiling'][-1]:.2f}", flush=True)
        median = {k: statistics.median(v) for k, v in results.items()}
        mb = len(sample) / 1e6  # megabytes a message, as it goes on the wire

        def rate(key: str) -> str:
            return f"{median[key]:8.0f} messages/s {median[key] * mb:8.1f} MB/s"
        attachment = f", attachment: {ATTACHMENT_BYTES} bytes" if ATTACHMENT_BYTES else ""
        print(f"\nrecipients: {n}, runs: {args.runs}, message size: {len(sample)} bytes{attachment}, "
              f"connections: {connections}")
        print(f"1. sink ceiling ({connections} connections, one process each): {rate('ceiling')}")
        print(f"2. distributor end to end ({connections}-connection pool):  {rate('distributor')}")
        print(f"3. naive loop:                                      {rate('naive')}")
        print(f"for comparison, (1) from {connections} threads of one process:   {rate('threads')} "
              f"(the most one Python process can ask of this sink; (2) / it = "
              f"{median['distributor'] / median['threads']:.2f})")
        ratio_ceiling = median["distributor"] / median["ceiling"]
        ratio_naive = median["distributor"] / median["naive"]
        paired = statistics.median(d / c for d, c in zip(results["distributor"], results["ceiling"], strict=True))
        print(f"(2)/(1) = {ratio_ceiling:.2f} (target >= 0.9); (2)/(3) = {ratio_naive:.1f} (target >= 3); "
              f"median of each run's own (2)/(1): {paired:.2f}", flush=True)
        ok = ratio_ceiling >= 0.9 and ratio_naive >= 3
    if args.memory_recipients:
        ok = memory_report(args.memory_recipients, args.memory_timeout) and ok
    if args.tracemalloc_recipients:
        tracemalloc_report(args.tracemalloc_recipients)
    return 0 if ok else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    raise SystemExit(main())
