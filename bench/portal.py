"""The journalists' portal in the rush after a release: `distributor serve` (waitress) on SQLite, open-loop load.

    .venv/bin/python bench/portal.py --journalists 1000 --rate 200 --duration 20

Sets up an office in a temporary folder (--keep keeps it): office.base_url on loopback, web.secret_env, a
`[portal]` table with terms, --journalists vetted journalists on the list `embargo`, and one statement with a photo
of about 1,000,000 bytes (random pixels, JPEG, made with Pillow and added by `distributor media add`), approved and
scheduled with an embargo an hour ahead. `distributor run` sends the embargoed copies now (file transport: one .eml
each) and is stopped once every copy is sent; each copy's delivery id gives that journalist's link
(`portal.link_token`). Then `distributor serve` is started on its own, and:

1. the journalists redeem their links, --redeem-clients at a time, each as a browser does: GET the link's page,
   POST its button with the CSRF token, GET the terms, POST "I agree", GET the statement page it leads to. Reports
   the time all of them took, each journalist's time (p50, p99) and every error;
2. an open-loop load: --rate requests a second for --duration seconds, each from a session chosen at random among
   those redeemed: the statement page, and one request in ten (at random) a download of the photo's original. Each
   request has its instant on a fixed schedule and is sent then, whatever the answers before it take: --processes
   client processes, each with --threads threads that take the next instant in turn, one new connection a request
   (each journalist their own browser). Latency counts from the scheduled instant to the whole answer read, so a
   client that falls behind its schedule adds to it rather than hiding it; how far the clients fell behind is
   reported too.

Reports p50/p99 of pages and of downloads, requests scheduled, sent and answered, errors (any answer other than 200
with the right body, or an exception), the CPU of the server, of the clients and of every other process on the
machine meanwhile, and the views the server recorded. Exits 1 when the statement page's p99 is not under 200 ms, or
on any error. --profile then times the page's handler in-process with cProfile against the same database (also done
when the target is missed). --server-timing serves the same app with the same waitress settings from this script
instead of `distributor serve`, each request timed inside the server (before the app, in it and its CPU, after it),
with the server's garbage collections and the recorder's writes: a diagnosis of the tail, not the figure. --keep
keeps the folder, with each request's timing in requests.csv.

The machine's cores are shared by the server, the clients and whatever else runs on it: the tail follows the last.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from http.client import HTTPConnection
from pathlib import Path
from urllib.parse import urljoin

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, free_port, percentile, statement_text, stop, write_recipients_csv  # noqa: E402
from newsroom import cpu_seconds, wait_for_port  # noqa: E402

BIN = Path(sys.executable).parent / "distributor"
P99_TARGET_MS = 200.0
SECRET_ENV = "DISTRIBUTOR_BENCH_WEB_SECRET"
SECRET = "a benchmark secret of more than thirty-two characters"
COOKIE = "distributor_portal"
PHOTO_BYTES = 1_000_000
PHOTO = "riverbank.jpg"

CONFIG = """
[office]
name = "Bench Office"
timezone = "Europe/London"
also_show = ["America/New_York", "Europe/Paris", "Asia/Tokyo"]
from = "press@bench.example.org"
base_url = "http://127.0.0.1:{port}"

[database]
url = "sqlite:///{folder}/d.db"

[paths]
templates = "{templates}"
media = "{folder}/media"

[channels.email]
transport = "file"

[channels.email.file]
directory = "{folder}/outbox"

[web]
secret_env = "{secret_env}"

[portal]
terms = \"\"\"Embargoed material is for your preparation only. Do not publish, broadcast or share it before the
embargo lifts.\"\"\"
"""



# -- the office ------------------------------------------------------------------------------------------------
def photo(path: Path, target: int = PHOTO_BYTES) -> int:
    """A JPEG of random pixels of about ``target`` bytes (random pixels hardly compress: the size follows the
    area); its size."""
    from PIL import Image

    rng = random.Random(7)
    side = 600
    for _ in range(8):
        image = Image.frombytes("RGB", (side, side * 3 // 4), rng.randbytes(side * (side * 3 // 4) * 3))
        image.save(path, "JPEG", quality=85)
        size = path.stat().st_size
        if abs(size - target) <= target * 0.02:
            break
        side = max(64, round(side * (target / size) ** 0.5))
    return path.stat().st_size


def cli(env: dict, folder: Path, *args: str) -> str:
    """One `distributor` command; its output. Fails the benchmark with the command's own words if it fails."""
    done = subprocess.run([str(BIN), *args], env=env, capture_output=True, text=True, timeout=300, cwd=folder)
    if done.returncode != 0:
        raise SystemExit(f"distributor {' '.join(args)} failed ({done.returncode}):\n{done.stderr}{done.stdout}")
    return done.stdout


def office(folder: Path, env: dict, journalists: int) -> tuple[str, dict[str, int], int, int, float]:
    """The office, its list and its statement, the embargoed copies sent. Returns the statement's id, each
    journalist's delivery id, the photo's size as made and as stored (its metadata stripped), and the seconds the
    sending took."""
    from sqlalchemy import func, select

    from distributor.channels import load_config
    from distributor.store import connect
    from distributor.store.schema import deliveries

    cli(env, folder, "init")
    listing = folder / "journalists.csv"
    write_recipients_csv(listing, 0, journalists)
    cli(env, folder, "recipients", "import", str(listing), "--list", "embargo", "--by", "Kim Ahn")
    source = folder / "statement.txt"
    source.write_text(statement_text("03"), encoding="utf-8")
    sid = cli(env, folder, "import", str(source), "--by", "Sam Lee").split()[0]
    uploaded = photo(folder / PHOTO)
    cli(env, folder, "media", "add", sid, str(folder / PHOTO), "--alt", "The river in flood below the town bridge",
        "--by", "Sam Lee")
    cli(env, folder, "approve", sid, "--by", "Maya Okafor")
    embargo = (datetime.now(UTC) + timedelta(hours=1)).replace(microsecond=0)
    cli(env, folder, "schedule", sid, "--embargo", embargo.isoformat(), "--override-embargo", "--channels", "email",
        "--by", "Maya Okafor")

    engine = connect(load_config(Path(env["DISTRIBUTOR_CONFIG"])).database_url)
    started = time.monotonic()
    with (folder / "run.log").open("w") as log_file:
        worker = subprocess.Popen([str(BIN), "run"], env=env, stdout=subprocess.DEVNULL, stderr=log_file, cwd=folder)
    try:
        while True:
            with engine.connect() as conn:
                sent = conn.execute(select(func.count()).select_from(deliveries).where(
                    deliveries.c.channel == "email", deliveries.c.status == "sent")).scalar()
            if sent >= journalists:
                break
            if worker.poll() is not None:
                raise SystemExit(f"distributor run exited ({worker.returncode}):\n{(folder / 'run.log').read_text()}")
            if time.monotonic() - started > 300:
                raise SystemExit(f"only {sent} of {journalists} copies sent after 300 s")
            time.sleep(0.2)
        sending = time.monotonic() - started
    finally:
        stop(worker)
    with engine.connect() as conn:
        links = dict(conn.execute(select(deliveries.c.target, deliveries.c.id).where(
            deliveries.c.channel == "email", deliveries.c.status == "sent", deliveries.c.statement_id == sid)).all())
    engine.dispose()
    emails = len(list((folder / "outbox").rglob("*.eml")))
    if len(links) != journalists or emails < journalists:
        raise SystemExit(f"{len(links)} copies on record and {emails} .eml files for {journalists} journalists")
    stored = (folder / "media").rglob(f"original.{PHOTO.rpartition('.')[2]}")
    return sid, links, uploaded, next(p.stat().st_size for p in stored), sending


# -- redeeming the links ---------------------------------------------------------------------------------------
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def redeem(base: str, token: str, sid: str) -> tuple[str, float]:
    """One journalist's browser: the link's page, its button, the terms agreed, the statement page it leads to.
    Returns the session's cookie and the seconds it all took; raises on anything unexpected."""
    import requests

    started = time.monotonic()
    with requests.Session() as browser:
        def expect(reply, status: int, what: str):
            if reply.status_code != status:
                raise RuntimeError(f"{what}: {reply.status_code}, expected {status}")
            return reply

        page = expect(browser.get(f"{base}/j/{token}", timeout=30), 200, "GET the link")
        reply = expect(browser.post(f"{base}/j/{token}", data={"csrf_token": CSRF.search(page.text).group(1)},
                                    allow_redirects=False, timeout=30), 302, "POST the link")
        terms_url = urljoin(reply.url, reply.headers["Location"])
        if "/portal/terms" not in terms_url:
            raise RuntimeError(f"POST the link: sent to {terms_url}, not to the terms")
        terms = expect(browser.get(terms_url, timeout=30), 200, "GET the terms")
        reply = expect(browser.post(terms.url, data={"csrf_token": CSRF.search(terms.text).group(1), "agree": "yes"},
                                    allow_redirects=False, timeout=30), 302, "agree to the terms")
        statement_url = urljoin(reply.url, reply.headers["Location"])
        if not statement_url.endswith(f"/portal/{sid}/"):
            raise RuntimeError(f"agree to the terms: sent to {statement_url}, not to the statement")
        page = expect(browser.get(statement_url, timeout=30), 200, "GET the statement")
        if "Riverland" not in page.text:
            raise RuntimeError("GET the statement: the page has not the statement's title")
        cookie = browser.cookies.get(COOKIE)
        if not cookie:
            raise RuntimeError(f"no {COOKIE} cookie after redeeming")
    return cookie, time.monotonic() - started


def redeem_all(base: str, tokens: list[str], sid: str, clients: int) -> tuple[list[str], list[float], list[str],
                                                                                float]:
    """Every link redeemed, ``clients`` at a time: (cookies, seconds each, errors, seconds in all)."""
    cookies, times, errors = [], [], []

    def one(token: str):
        try:
            return redeem(base, token, sid)
        except Exception as exc:  # noqa: BLE001 - every failure is counted and shown
            return exc

    started = time.monotonic()
    with ThreadPoolExecutor(clients) as pool:
        for result in pool.map(one, tokens):
            if isinstance(result, Exception):
                errors.append(f"{type(result).__name__}: {result}")
            else:
                cookies.append(result[0])
                times.append(result[1])
    return cookies, times, errors, time.monotonic() - started


# -- the open-loop load ----------------------------------------------------------------------------------------
PAGE, DOWNLOAD = "page", "download"


def plan(rate: float, duration: float, sessions: int, seed: int = 1) -> list[tuple[int, float, int, str]]:
    """The schedule: (number, seconds after the start, session index, page or download), one request every
    1/rate s."""
    rng = random.Random(seed)
    return [(i, i / rate, rng.randrange(sessions), DOWNLOAD if rng.random() < 0.1 else PAGE)
            for i in range(int(rate * duration))]


def ask(port: int, path: str, cookie: str, number: int) -> tuple[int, int]:
    """One request on a new connection, as one journalist's browser sends it: (status, body length)."""
    connection = HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("GET", path, headers={"Cookie": f"{COOKIE}={cookie}", "User-Agent": "bench/portal",
                                                 "X-Bench-Request": str(number)})
        reply = connection.getresponse()
        return reply.status, len(reply.read())
    finally:
        connection.close()


def client(port: int, paths: dict[str, str], cookies: list[str], schedule: list[tuple[int, float, int, str]],
           begin: float, threads: int, lengths: dict[str, int | None], out) -> None:
    """One client process: ``threads`` threads, each taking the next scheduled request, waiting for its instant
    and sending it. Sends back one row a request: (number, kind, scheduled, sent, done, status, error) in monotonic
    seconds, and its CPU seconds; a thread still busy when its request's instant comes makes it late (``sent`` >
    ``scheduled``)."""
    lock = threading.Lock()
    upcoming = iter(schedule)
    rows: list[tuple] = []

    def work() -> None:
        while True:
            with lock:
                entry = next(upcoming, None)
            if entry is None:
                return
            number, offset, session, kind = entry
            due = begin + offset
            time.sleep(max(0.0, due - time.monotonic()))
            sent = time.monotonic()
            status, error = 0, None
            try:
                status, length = ask(port, paths[kind], cookies[session], number)
                wanted = lengths[kind]
                if status == 200 and wanted is not None and length != wanted:
                    error = f"{kind}: {length} bytes, expected {wanted}"
            except Exception as exc:  # noqa: BLE001 - every failure is counted and shown
                error = f"{kind}: {type(exc).__name__}: {exc}"
            done = time.monotonic()
            with lock:
                rows.append((number, kind, due, sent, done, status, error))

    pool = [threading.Thread(target=work, daemon=True) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    out.send((rows, usage.ru_utime + usage.ru_stime))
    out.close()


def machine_busy() -> float:
    """CPU seconds the whole machine has spent busy (all cores, every process), from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def load(port: int, pid: int, paths: dict[str, str], cookies: list[str], rate: float, duration: float,
         processes: int, threads: int, lengths: dict[str, int | None]) -> dict:
    """The schedule shared among the client processes by turns; every row back, and the CPU of the server, of
    the clients and of everything else on the machine meanwhile (in cores)."""
    context = multiprocessing.get_context("fork")
    schedule = plan(rate, duration, len(cookies))
    begin = time.monotonic() + 1.0
    pipes, workers = [], []
    for p in range(processes):
        receive, send = context.Pipe(duplex=False)
        worker = context.Process(target=client, args=(port, paths, cookies, schedule[p::processes], begin, threads,
                                                      lengths, send), daemon=True)
        worker.start()
        send.close()
        pipes.append(receive)
        workers.append(worker)
    time.sleep(max(0.0, begin - time.monotonic()))
    server_cpu, busy = cpu_seconds(pid), machine_busy()
    rows: list[tuple] = []
    client_cpu = 0.0
    for receive, worker in zip(pipes, workers, strict=True):
        if not receive.poll(duration + 120):
            worker.kill()
            raise SystemExit("a client process did not report within 120 s of the end")
        try:
            mine, cpu = receive.recv()
        except EOFError:
            raise SystemExit(f"a client process failed (exit code {worker.exitcode})") from None
        rows.extend(mine)
        client_cpu += cpu
        worker.join(timeout=10)
    server_cpu, busy = cpu_seconds(pid) - server_cpu, machine_busy() - busy
    elapsed = max(time.monotonic() - begin, 1e-9)
    return {"rows": rows, "scheduled": len(schedule), "elapsed": elapsed, "server_cpu": server_cpu / elapsed,
            "client_cpu": client_cpu / elapsed, "other_cpu": max(0.0, busy - server_cpu - client_cpu) / elapsed}


def spread(values: list[float]) -> str:
    if not values:
        return "none"
    return (f"p50 {statistics.median(values):.1f} ms, p99 {percentile(values, 99):.1f} ms, max {max(values):.1f} ms "
            f"({len(values)})")


# -- where the page's time goes --------------------------------------------------------------------------------
def profile_page(config_path: Path, sid: str, cookie: str, calls: int = 300) -> None:
    """The statement page's own cost, without waitress or the network: the app `serve` runs, called in this
    process against the same database with one journalist's cookie; then where its time goes (cProfile)."""
    import cProfile
    import io
    import pstats

    from distributor.channels import load_config
    from distributor.clock import Clock
    from distributor.store import connect
    from distributor.web import create_app

    config = load_config(config_path)
    engine = connect(config.database_url)
    app = create_app(config, engine, Clock())
    web = app.test_client()
    web.set_cookie(COOKIE, cookie)
    path = f"/portal/{sid}/"

    def run() -> None:
        for _ in range(calls):
            reply = web.get(path)
            if reply.status_code != 200:
                raise SystemExit(f"profile: {path} answered {reply.status_code}")

    run()  # warm
    started = time.perf_counter()
    run()
    print(f"profile: the statement page takes {(time.perf_counter() - started) / calls * 1000:.2f} ms an answer "
          f"(in-process, one thread, {calls} calls, no waitress)")
    profiler = cProfile.Profile()
    profiler.runcall(run)
    for order in ("tottime", "cumulative"):
        report = io.StringIO()
        pstats.Stats(profiler, stream=report).sort_stats(order).print_stats(18)
        print(f"profile: the statement page, by {'own' if order == 'tottime' else 'cumulative'} time:\n" + "\n".join(
            text for text in report.getvalue().splitlines() if text.strip() and "Ordered by" not in text
            and "List reduced" not in text))
    app.extensions["portal_recorder"].close()
    engine.dispose()


def recorded(config_path: Path, sid: str) -> Counter:
    from sqlalchemy import func, select

    from distributor.channels import load_config
    from distributor.store import connect
    from distributor.store.schema import portal_events

    engine = connect(load_config(config_path).database_url)
    with engine.connect() as conn:
        found = Counter(dict(conn.execute(select(portal_events.c.kind, func.count()).where(
            portal_events.c.statement_id == sid).group_by(portal_events.c.kind)).all()))
    engine.dispose()
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--journalists", type=int, default=1000, help="vetted journalists, each redeeming their "
                                                                      "link (default: 1000)")
    parser.add_argument("--rate", type=float, default=200.0, help="requests a second, on schedule (default: 200)")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of load (default: 20)")
    parser.add_argument("--processes", type=int, default=2, help="client processes (default: 2)")
    parser.add_argument("--threads", type=int, default=64, help="threads of each client process (default: 64)")
    parser.add_argument("--redeem-clients", type=int, default=16,
                        help="journalists redeeming at the same time (default: 16)")
    parser.add_argument("--server-threads", type=int, default=8, help="waitress threads (serve's default: 8)")
    parser.add_argument("--profile", action="store_true",
                        help="time the statement page in-process with cProfile afterwards (also when the target "
                             "is missed)")
    parser.add_argument("--server-timing", action="store_true",
                        help="serve `distributor serve`'s app with the same waitress settings from this script, each "
                             "request timed inside the server, and show where the time goes (a diagnosis, not the "
                             "figure: the figure is `distributor serve`'s)")
    parser.add_argument("--timed-server", nargs=4, metavar=("CONFIG", "PORT", "THREADS", "OUT"), help=argparse.SUPPRESS)
    parser.add_argument("--keep", action="store_true",
                        help="keep the office's folder, with each request's timing in requests.csv")
    args = parser.parse_args()
    if args.timed_server:
        config_path, port, threads, out = args.timed_server
        serve_timed(Path(config_path), int(port), int(threads), Path(out))
        return 0
    if args.journalists < 1 or args.rate <= 0 or args.duration <= 0 or args.processes < 1 or args.threads < 1 \
            or args.redeem_clients < 1:
        parser.error("--journalists, --rate, --duration, --processes, --threads and --redeem-clients must be "
                     "positive")

    folder = Path(tempfile.mkdtemp(prefix="bench-portal-"))
    try:
        return run(args, folder)
    finally:
        if args.keep:
            print(f"kept: {folder} (config {folder / 'distributor.toml'}, server log {folder / 'serve.log'})")
        else:
            shutil.rmtree(folder, ignore_errors=True)


def run(args, folder: Path) -> int:
    port = free_port()
    config_path = folder / "distributor.toml"
    config_path.write_text(CONFIG.format(port=port, folder=folder, templates=ROOT / "templates",
                                         secret_env=SECRET_ENV), encoding="utf-8")
    os.environ[SECRET_ENV] = SECRET
    env = {**os.environ, "DISTRIBUTOR_CONFIG": str(config_path)}
    set_up = time.monotonic()
    sid, links, uploaded, size, sending = office(folder, env, args.journalists)
    print(f"office: {args.journalists} vetted journalists, statement {sid} with a photo of {uploaded:,} bytes "
          f"({size:,} as stored and downloaded); embargoed copies sent in {sending:.1f} s (set up in "
          f"{time.monotonic() - set_up:.1f} s); {os.cpu_count()} cores shared by the server, the clients and whatever "
          f"else runs (load average {os.getloadavg()[0]:.2f})")

    from distributor import portal

    tokens = [portal.link_token(SECRET, delivery_id) for _, delivery_id in sorted(links.items())]
    base = f"http://127.0.0.1:{port}"
    log_path = folder / "serve.log"
    timings = folder / "server-timing.json"
    command = [sys.executable, __file__, "--timed-server", str(config_path), str(port), str(args.server_threads),
               str(timings)] if args.server_timing else \
        [str(BIN), "serve", "--port", str(port), "--threads", str(args.server_threads)]
    with log_path.open("w") as log_file:
        server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=log_file, cwd=folder)
    try:
        wait_for_port(port, server, log_path)
        server_cpu, own_cpu = cpu_seconds(server.pid), cpu_seconds(os.getpid())
        cookies, times, redeem_errors, took = redeem_all(base, tokens, sid, args.redeem_clients)
        server_cpu, own_cpu = cpu_seconds(server.pid) - server_cpu, cpu_seconds(os.getpid()) - own_cpu
        print(f"redeemed: {len(cookies)} of {len(tokens)} links in {took:.1f} s ({len(cookies) / took:.0f} a second, "
              f"{args.redeem_clients} at a time; each: link page, button, terms, agree, statement page); "
              f"each journalist {spread([t * 1000 for t in times])}; errors {len(redeem_errors)}; server CPU "
              f"{server_cpu / took:.2f} cores ({server_cpu / max(1, len(cookies)) * 1000:.1f} ms a journalist), "
              f"the browsers' {own_cpu / took:.2f} cores")
        for text, n in Counter(redeem_errors).most_common(5):
            print(f"  redeem error x{n}: {text}")
        if not cookies:
            raise SystemExit("no link was redeemed: nothing to load")

        paths = {PAGE: f"/portal/{sid}/", DOWNLOAD: f"/portal/{sid}/media/{PHOTO}/original"}
        measured = load(port, server.pid, paths, cookies, args.rate, args.duration, args.processes, args.threads,
                        {PAGE: None, DOWNLOAD: size})
        time.sleep(2.5)  # the recorder writes its views once a second
    finally:
        stop(server)

    rows = measured["rows"]  # (number, kind, scheduled, sent, done, status, error)
    if args.keep:
        with (folder / "requests.csv").open("w", encoding="utf-8") as handle:
            handle.write("number,kind,scheduled_s,sent_late_ms,latency_ms,status,error\n")
            begin = min(r[2] for r in rows)
            for r in sorted(rows):
                handle.write(f"{r[0]},{r[1]},{r[2] - begin:.4f},{(r[3] - r[2]) * 1000:.2f},{(r[4] - r[2]) * 1000:.2f},"
                             f"{r[5]},{(r[6] or '').replace(',', ';')}\n")
    answered = [r for r in rows if r[5] == 200 and r[6] is None]
    errors = [r for r in rows if r[5] != 200 or r[6] is not None]
    print(f"load: {measured['scheduled']} requests scheduled at {args.rate:g} a second for {args.duration:g} s over "
          f"{len(cookies)} sessions ({args.processes} client processes x {args.threads} threads, a new connection "
          f"each); {len(rows)} sent, {len(answered)} answered 200, {len(errors)} errors")
    print(f"CPU during the load: server {measured['server_cpu']:.2f} cores, clients {measured['client_cpu']:.2f}, "
          f"other processes on the machine {measured['other_cpu']:.2f}")
    print(f"clients behind schedule (sent - scheduled): {spread([(r[3] - r[2]) * 1000 for r in rows])}")
    for kind in (PAGE, DOWNLOAD):
        mine = [(r[4] - r[2]) * 1000 for r in answered if r[1] == kind]
        print(f"{kind + 's':9} (scheduled instant to whole answer): {spread(mine)}")
    for text, n in Counter(f"{r[1]}: status {r[5]}" if r[6] is None else r[6] for r in errors).most_common(5):
        print(f"  error x{n}: {text}")
    events = recorded(config_path, sid)
    print(f"recorded by the server for {sid}: {events.get('view', 0)} views, {events.get('download', 0)} downloads, "
          f"{events.get('redeemed', 0)} redemptions (answered: {len(cookies) + sum(r[1] == PAGE for r in answered)} "
          f"pages, {sum(r[1] == DOWNLOAD for r in answered)} downloads)")
    if args.server_timing:
        inside(timings, answered)

    pages = [(r[4] - r[2]) * 1000 for r in answered if r[1] == PAGE]
    p99 = percentile(pages, 99) if pages else float("inf")
    met = p99 < P99_TARGET_MS
    failures = len(errors) + len(redeem_errors)
    print(f"verdict: statement page p99 {p99:.1f} ms (target < {P99_TARGET_MS:.0f} ms): {'met' if met else 'NOT met'};"
          f" errors {failures} (target 0): {'met' if not failures else 'NOT met'}")
    if args.profile or not met:
        profile_page(config_path, sid, cookies[0])
    return 0 if met and not failures else 1


# -- timing inside the server (--server-timing) ----------------------------------------------------------------
def serve_timed(config_path: Path, port: int, threads: int, out: Path) -> None:
    """What `distributor serve` runs (the same app, the same waitress settings), each request timed inside it:
    when the app began and ended it, and its thread's CPU; with every garbage collection and every write of the
    portal's recorder. All written to ``out`` (JSON) at SIGTERM."""
    import gc
    import json
    import logging
    import signal

    from waitress import serve

    from distributor import portal
    from distributor.cli.common import open_app
    from distributor.cli.web import serve_options
    from distributor.web import create_app

    handled: list[tuple] = []
    collections: list[tuple] = []
    flushes: list[tuple] = []
    collecting: dict[str, float] = {}

    def collected(phase: str, info: dict) -> None:
        if phase == "start":
            collecting["at"] = time.monotonic()
        elif "at" in collecting:
            collections.append((info["generation"], collecting.pop("at"), time.monotonic()))

    original = portal.Recorder.flush

    def flush(self) -> int:
        started = time.monotonic()
        written = original(self)
        flushes.append((started, time.monotonic(), written))
        return written

    portal.Recorder.flush = flush
    gc.callbacks.append(collected)
    app = open_app(argparse.Namespace(config=str(config_path)))
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    web = create_app(app.config, app.engine, app.clock)

    def timed(environ, start_response):
        started, cpu = time.monotonic(), time.thread_time()
        result = web(environ, start_response)
        try:
            body = b"".join(result)
        finally:
            if hasattr(result, "close"):
                result.close()
        handled.append((environ.get("HTTP_X_BENCH_REQUEST"), started, time.monotonic(), time.thread_time() - cpu))
        return [body]

    def finish(*_) -> None:
        out.write_text(json.dumps({"requests": handled, "collections": collections, "flushes": flushes}))
        os._exit(0)

    signal.signal(signal.SIGTERM, finish)
    serve(timed, **serve_options(argparse.Namespace(host="127.0.0.1", port=port, threads=threads), app.config))


def inside(timings: Path, answered: list[tuple]) -> None:
    """Each answered request cut into: before the app (connecting, waitress reading it, waiting for a thread),
    in the app (and of that, its thread's CPU), after the app (waitress writing it, the client reading it); for
    all pages and for the slowest 1%; and the server's garbage collections and recorder writes."""
    import json

    if not timings.exists():
        print("server timing: the server wrote no timings")
        return
    found = json.loads(timings.read_text())
    inside_app = {int(n): (start, end, cpu) for n, start, end, cpu in found["requests"] if n is not None}
    for kind in (PAGE, DOWNLOAD):
        joined = [(r, inside_app[r[0]]) for r in answered if r[1] == kind and r[0] in inside_app]
        if not joined:
            continue
        joined.sort(key=lambda pair: pair[0][4] - pair[0][2])
        slowest = joined[-max(1, len(joined) // 100):]
        for label, chosen in ((f"{kind}s, all {len(joined)}", joined), (f"{kind}s, slowest {len(slowest)}", slowest)):
            parts = {"client late": [(r[3] - r[2]) * 1000 for r, _ in chosen],
                     "before the app": [(a[0] - r[3]) * 1000 for r, a in chosen],
                     "in the app": [(a[1] - a[0]) * 1000 for _, a in chosen],
                     "its CPU": [a[2] * 1000 for _, a in chosen],
                     "after the app": [(r[4] - a[1]) * 1000 for r, a in chosen]}
            print(f"server timing, {label} (median / p99 ms): " + "; ".join(
                f"{name} {statistics.median(v):.1f} / {percentile(v, 99):.1f}" for name, v in parts.items()))
    collections = found["collections"]
    for generation in (0, 1, 2):
        pauses = [(end - start) * 1000 for g, start, end in collections if g == generation]
        if pauses:
            print(f"server timing: garbage collections of generation {generation}: {len(pauses)}, "
                  f"{sum(pauses):.0f} ms in all, median {statistics.median(pauses):.1f} ms, max {max(pauses):.1f} ms")
    writes = [(end - start) * 1000 for start, end, n in found["flushes"] if n]
    if writes:
        print(f"server timing: recorder writes: {len(writes)}, median {statistics.median(writes):.1f} ms, max "
              f"{max(writes):.1f} ms, {sum(n for *_, n in found['flushes'])} events")
    pages = sorted(((r[4] - r[2]) * 1000, r) for r in answered if r[1] == PAGE and r[0] in inside_app)
    slow = [r for _, r in pages[-max(1, len(pages) // 100):]]
    full = [(start, end) for g, start, end in collections if g == 2]
    overlaps = sum(any(s < r[4] and e > r[2] for s, e in full) for r in slow)
    flushing = sum(any(s < r[4] and e > r[2] for s, e, n in found["flushes"] if n) for r in slow)
    print(f"server timing: of the slowest {len(slow)} pages, {overlaps} overlapped a full garbage collection and "
          f"{flushing} a recorder write")


if __name__ == "__main__":
    raise SystemExit(main())
