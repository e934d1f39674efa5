"""The newsroom under load: `distributor serve` answering /news/<id>/ for a released statement, against a ceiling.

    python bench/newsroom.py [--clients 50] [--duration 20] [--slices 5] [--processes 2] [--threads 8] [--profile]

Releases one statement the way an office does (imported, approved, scheduled a couple of seconds ahead, lifted by
`distributor run --exit-when-idle`, which writes its page), then starts two servers on loopback, each its own
process:

1. `distributor serve` (waitress in front of the Flask app; the newsroom is answered before the app, from the
   page file and the database's record of the release);
2. the ceiling: waitress with the same settings (threads, connection_limit, channel_timeout, as `serve` gives
   them) and a minimal WSGI app that answers the same bytes with the same headers from memory.

Each is loaded by the same client: --clients keep-alive HTTP/1.1 connections spread over --processes client
processes, each a selector loop sending a request as soon as the previous answer is whole (a closed loop). Each
server is loaded for --duration seconds in all, in --slices slices taken in turn (ceiling, serve, serve, ceiling,
...), each slice counted after --warmup seconds of its own, so that whatever else the machine does weighs on both
alike. Per slice: requests per second, latency percentiles, the server's CPU (from /proc) and the clients'.

Targets: distributor serve >= 0.8 of the ceiling's requests per second (the median of the slices' own ratios, each
of two slices back to back), and its p99 (over all its answers) under 100 ms. Prints a verdict line; exits 1 if a
target is missed or any answer is not the page (status, length). When a target is missed, or with --profile, it then
times both apps in-process (no waitress, no network) and shows where serve's app spends its time (cProfile).

The client and the servers share the machine's cores: the client's own CPU is part of what limits both figures,
alike for both.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import selectors
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from array import array
from collections import Counter
from datetime import UTC, datetime, timedelta
from http.client import HTTPConnection
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, free_port, percentile, statement_text, stop  # noqa: E402

BIN = Path(sys.executable).parent / "distributor"
RATIO_TARGET = 0.8
P99_TARGET_MS = 100.0
SECRET_ENV = "DISTRIBUTOR_BENCH_WEB_SECRET"
SECRET = "a benchmark secret of more than thirty-two characters"

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

[channels.newsroom]
directory = "{folder}/news"
url = "http://127.0.0.1:{port}/news/"

[web]
secret_env = "{secret_env}"
"""



# -- the servers -----------------------------------------------------------------------------------------------
def waitress_options(config_path: Path, port: int, threads: int) -> dict:
    """What `distributor serve --port PORT --threads THREADS` gives waitress for this config."""
    from distributor.channels import load_config
    from distributor.cli.web import serve_options

    return serve_options(argparse.Namespace(host="127.0.0.1", port=port, threads=threads), load_config(config_path))


def ceiling_app(body: bytes, page: Path | None = None):
    """A WSGI app answering ``body`` with the headers the newsroom sends with a page, from memory; given ``page``,
    it reads that file at each answer, as `serve` does, and answers what it read (the same bytes)."""
    from distributor.web.newsroom import CACHED, SECURITY

    headers = [("Content-Type", "text/html; charset=utf-8"), ("Cache-Control", CACHED), *SECURITY,
               ("Content-Length", str(len(body)))]

    def app(environ, start_response):
        start_response("200 OK", headers)
        return [body if page is None else page.read_bytes()]

    return app


def serve_ceiling(config_path: Path, page: Path, port: int, threads: int, read_each_time: bool = False) -> None:
    """The ceiling: waitress as `serve` sets it up, answering the page's bytes, with its headers, from memory (or
    read from the file at each answer)."""
    from waitress import serve

    serve(ceiling_app(page.read_bytes(), page if read_each_time else None),
          **waitress_options(config_path, port, threads))


def py_spy() -> str | None:
    """py-spy, if it is installed (pip install py-spy): it samples a running Python process from outside."""
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


def sampled(raw: Path, top: int = 10) -> str:
    """py-spy's raw (collapsed) stacks: the frames with the most samples of their own, and the share of samples
    under each of the newsroom's own functions."""
    own: Counter[str] = Counter()
    under: Counter[str] = Counter()
    total = 0
    for text in raw.read_text().splitlines():
        stack, _, count = text.rpartition(" ")
        frames, n = stack.split(";"), int(count)
        total += n
        own[frames[-1]] += n
        for frame in set(frames):
            if "newsroom.py" in frame:
                under[frame] += n
    if not total:
        return "no samples"
    lines = [f"{100 * n / total:5.1f}%  {frame}" for frame, n in own.most_common(top)]
    lines += [f"{100 * n / total:5.1f}%  under {frame}" for frame, n in under.most_common(4)]
    return f"{total} samples of every thread; by own samples, then under the newsroom's code:\n" + "\n".join(lines)


def wait_for_port(port: int, process: subprocess.Popen, log_path: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server exited ({process.returncode}):\n{log_path.read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on port {port} after {timeout:.0f} s:\n{log_path.read_text()}")


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process so far (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# -- the client ------------------------------------------------------------------------------------------------
def client(port: int, path: str, connections: int, begin: float, counted_from: float, end: float, out) -> None:
    """``connections`` keep-alive connections in one selector loop, each sending its next request as soon as the
    answer to the last is whole. Answers completed between ``counted_from`` and ``end`` (time.monotonic) count.
    Sends (latencies in ms as bytes of array('d'), statuses, errors, CPU seconds while counting) on ``out``."""
    request = (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: distributor-bench\r\n"
               f"Accept: */*\r\n\r\n").encode("ascii")
    latencies = array("d")
    statuses: Counter[int] = Counter()
    lengths: Counter[int] = Counter()
    errors: list[str] = []
    selector = selectors.DefaultSelector()
    state: dict[socket.socket, list] = {}  # socket -> [buffer, sent_at]

    def send(sock: socket.socket) -> None:
        state[sock][1] = time.monotonic()
        sock.sendall(request)  # a few dozen bytes: the socket's buffer always takes them

    def connect() -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setblocking(False)
        state[sock] = [bytearray(), 0.0]
        selector.register(sock, selectors.EVENT_READ)
        return sock

    def drop(sock: socket.socket) -> None:
        selector.unregister(sock)
        state.pop(sock)
        sock.close()

    time.sleep(max(0.0, begin - time.monotonic()))
    for _ in range(connections):
        send(connect())
    counted_cpu = None
    while True:
        now = time.monotonic()
        if counted_cpu is None and now >= counted_from:
            usage = resource.getrusage(resource.RUSAGE_SELF)
            counted_cpu = usage.ru_utime + usage.ru_stime
        if now >= end:
            break
        events = selector.select(timeout=min(1.0, end - now))
        if not events and time.monotonic() < end and all(s[1] < time.monotonic() - 10 for s in state.values()):
            errors.append("no answer for 10 s")
            break
        for key, _ in events:
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            buffer = state[sock][0]
            try:
                chunk = sock.recv(262144)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError as exc:
                chunk, reason = b"", str(exc)
            else:
                reason = "closed by the server"
            if not chunk:
                errors.append(reason)
                drop(sock)
                if time.monotonic() < end:
                    send(connect())
                continue
            buffer += chunk
            head_end = buffer.find(b"\r\n\r\n")
            if head_end < 0:
                continue
            head = bytes(buffer[:head_end]).lower() + b"\r\n"
            found = head.find(b"\r\ncontent-length:")
            length = int(head[found + 17:head.index(b"\r\n", found + 2)]) if found >= 0 else 0
            if len(buffer) < head_end + 4 + length:
                continue
            done = time.monotonic()
            if counted_from <= done <= end:
                latencies.append((done - state[sock][1]) * 1000)
                statuses[int(buffer[9:12])] += 1
                lengths[length] += 1
            del buffer[:head_end + 4 + length]
            if b"\r\nconnection: close" in head:
                drop(sock)
                if done < end:
                    send(connect())
            elif done < end:
                send(sock)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    for sock in list(state):
        drop(sock)
    out.send({"latencies": latencies.tobytes(), "statuses": dict(statuses), "lengths": dict(lengths),
              "errors": errors[:20], "error_count": len(errors),
              "cpu": usage.ru_utime + usage.ru_stime - (counted_cpu or 0.0)})
    out.close()


def load(port: int, path: str, pid: int, clients: int, processes: int, warmup: float, duration: float) -> dict:
    """One measurement: the clients against the server on ``port`` (process ``pid``)."""
    context = multiprocessing.get_context("fork")
    begin = time.monotonic() + 0.5
    counted_from = begin + warmup
    end = counted_from + duration
    per = [clients // processes + (1 if i < clients % processes else 0) for i in range(processes)]
    pipes, workers = [], []
    for n in per:
        receive, send = context.Pipe(duplex=False)
        worker = context.Process(target=client, args=(port, path, n, begin, counted_from, end, send), daemon=True)
        worker.start()
        send.close()
        pipes.append(receive)
        workers.append(worker)
    time.sleep(max(0.0, counted_from - time.monotonic()))
    server_cpu = cpu_seconds(pid)
    time.sleep(max(0.0, end - time.monotonic()))
    server_cpu = cpu_seconds(pid) - server_cpu
    results = []
    for receive, worker in zip(pipes, workers, strict=True):
        if not receive.poll(30):
            worker.kill()
            raise SystemExit("a client process did not report within 30 s of the end")
        try:
            results.append(receive.recv())
        except EOFError:
            raise SystemExit(f"a client process failed (exit code {worker.exitcode})") from None
        worker.join(timeout=10)
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    lengths: Counter[int] = Counter()
    errors: list[str] = []
    for result in results:
        values = array("d")
        values.frombytes(result["latencies"])
        latencies.extend(values)
        statuses.update(result["statuses"])
        lengths.update(result["lengths"])
        errors.extend(result["errors"])
    return {"rps": len(latencies) / duration, "count": len(latencies), "latencies": latencies,
            "statuses": statuses, "lengths": lengths, "errors": errors,
            "error_count": sum(r["error_count"] for r in results),
            "server_cpu": server_cpu / duration,
            "client_cpu": sum(r["cpu"] for r in results) / duration}


def line(name: str, m: dict) -> str:
    values = m["latencies"]
    if not values:
        return f"{name}: no answers"
    return (f"{name}: {m['rps']:7.0f} requests/s, latency p50 {statistics.median(values):.1f} ms, "
            f"p99 {percentile(values, 99):.1f} ms, max {max(values):.1f} ms; CPU: server {m['server_cpu']:.2f} "
            f"cores, clients {m['client_cpu']:.2f} cores")


# -- the release -----------------------------------------------------------------------------------------------
def release(folder: Path, config_path: Path, env: dict) -> str:
    """One statement, released as an office releases one: its id, once the lift has written its page."""
    from distributor import workflow
    from distributor.channels import REGISTRY, load_config
    from distributor.statements import parse_file
    from distributor.store import connect, init_schema

    config = load_config(config_path)
    engine = connect(config.database_url)
    init_schema(engine)
    source = folder / "statement.txt"
    source.write_text(statement_text("02"), encoding="utf-8")
    now = datetime.now(UTC)
    with engine.begin() as conn:
        sid = workflow.import_statement(conn, parse_file(source), str(source), "bench", now).id
        workflow.approve(conn, sid, "bench", now)
        workflow.schedule(conn, sid, "bench", now, override_embargo=True, embargo=now + timedelta(seconds=2),
                          send_embargoed_at=None, channels={"newsroom": REGISTRY["newsroom"]})
    engine.dispose()
    with (folder / "run.log").open("w") as log_file:
        subprocess.run([str(BIN), "run", "--exit-when-idle"], env=env, stderr=log_file, stdout=subprocess.DEVNULL,
                       timeout=120, check=True)
    if not (folder / "news" / sid / "index.html").is_file():
        raise SystemExit(f"the lift wrote no page for {sid}:\n{(folder / 'run.log').read_text()}")
    return sid


def profile_apps(config_path: Path, path: str, body: bytes, calls: int = 50000) -> None:
    """The app's own cost of one answer, without waitress or the network: the ceiling's app and the one `serve`
    runs, each called ``calls`` times in this process; then where the time of the second goes (cProfile)."""
    import cProfile
    import io
    import pstats

    from distributor.channels import load_config
    from distributor.clock import Clock
    from distributor.store import connect
    from distributor.web import create_app

    config = load_config(config_path)
    engine = connect(config.database_url)
    apps = {"ceiling's app": ceiling_app(body), "serve's app": create_app(config, engine, Clock())}
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": path, "SCRIPT_NAME": "", "QUERY_STRING": "",
               "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "80", "HTTP_HOST": "127.0.0.1", "wsgi.url_scheme": "http"}

    def start_response(status, headers, exc_info=None):
        return None

    def run(app) -> None:
        for _ in range(calls):
            b"".join(app(dict(environ), start_response))

    for name, app in apps.items():
        run(app)  # warm
        started = time.perf_counter()
        run(app)
        print(f"profile: {name} takes {(time.perf_counter() - started) / calls * 1e6:.1f} µs of CPU an answer "
              f"(in-process, {calls} calls, no waitress)")
    profiler = cProfile.Profile()
    profiler.runcall(run, apps["serve's app"])
    report = io.StringIO()
    pstats.Stats(profiler, stream=report).sort_stats("tottime").print_stats(12)
    print("profile: serve's app, by own time:\n" + "\n".join(
        text for text in report.getvalue().splitlines() if text.strip() and "Ordered by" not in text
        and "List reduced" not in text))
    engine.dispose()


def fetch(port: int, path: str) -> tuple[int, bytes]:
    connection = HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", path)
        reply = connection.getresponse()
        return reply.status, reply.read()
    finally:
        connection.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=50, help="concurrent keep-alive connections (default: 50)")
    parser.add_argument("--duration", type=float, default=20.0,
                        help="seconds counted for each server in all (default: 20)")
    parser.add_argument("--slices", type=int, default=5, help="slices the duration is taken in, the two servers in "
                                                               "turn (default: 5)")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds before each slice is counted (default: 1)")
    parser.add_argument("--processes", type=int, default=2, help="client processes sharing the connections")
    parser.add_argument("--threads", type=int, default=8, help="waitress threads of both servers (serve's default)")
    parser.add_argument("--keep-logs", type=Path, help="copy the servers' and the worker's logs into this folder")
    parser.add_argument("--profile", action="store_true",
                        help="also load a third server, the ceiling reading the page file at each answer as serve "
                             "does; sample serve's last slice with py-spy if it is installed; and time both apps "
                             "in-process with cProfile")
    parser.add_argument("--ceiling-server", nargs=5, metavar=("CONFIG", "PAGE", "PORT", "THREADS", "READ"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.ceiling_server:
        config_path, page, port, threads, read = args.ceiling_server
        serve_ceiling(Path(config_path), Path(page), int(port), int(threads), read == "read")
        return 0
    if args.clients < 1 or not 1 <= args.processes <= args.clients or args.duration <= 0 or args.slices < 1:
        parser.error("--clients, --processes, --duration and --slices must be positive, and processes <= clients")
    if args.duration > 600 or args.slices > 100 or args.clients > 900:
        parser.error("at most 600 s, 100 slices and 900 clients")

    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        serve_port = free_port()
        config_path = folder / "distributor.toml"
        config_path.write_text(CONFIG.format(db=folder / "d.db", templates=ROOT / "templates", folder=folder,
                                             port=serve_port, secret_env=SECRET_ENV), encoding="utf-8")
        os.environ[SECRET_ENV] = SECRET
        env = {**os.environ, "DISTRIBUTOR_CONFIG": str(config_path)}
        sid = release(folder, config_path, env)
        page = folder / "news" / sid / "index.html"
        path = f"/news/{sid}/"
        names = ("ceiling", "serve", "ceiling-read") if args.profile else ("ceiling", "serve")
        logs = {name: folder / f"{name}.log" for name in names}
        servers: dict[str, tuple[subprocess.Popen, int]] = {}
        try:
            with logs["serve"].open("w") as log_file:
                servers["serve"] = (subprocess.Popen(
                    [str(BIN), "serve", "--port", str(serve_port), "--threads", str(args.threads)], env=env,
                    stdout=subprocess.DEVNULL, stderr=log_file), serve_port)
            for name in names[::2]:
                port = free_port()
                with logs[name].open("w") as log_file:
                    servers[name] = (subprocess.Popen(
                        [sys.executable, __file__, "--ceiling-server", str(config_path), str(page), str(port),
                         str(args.threads), "read" if name == "ceiling-read" else "memory"], env=env,
                        stdout=subprocess.DEVNULL, stderr=log_file), port)
            for name, (process, port) in servers.items():
                wait_for_port(port, process, logs[name])
            body = page.read_bytes()
            for name, (_, port) in servers.items():
                status, got = fetch(port, path)
                if status != 200 or got != body:
                    raise SystemExit(f"{name} answers {path} with {status} and {len(got)} bytes, not the page "
                                     f"({len(body)} bytes)")
            options = waitress_options(config_path, serve_port, args.threads)
            print(f"machine: {cores} cores, shared by the server under test and the {args.processes} client "
                  f"processes (the client's CPU counts against both servers alike)")
            print(f"page: {path} ({len(body)} bytes); {args.clients} keep-alive clients in {args.processes} "
                  f"processes; {args.duration:g} s counted for each server in {args.slices} slices, each after "
                  f"{args.warmup:g} s of warm-up; waitress threads "
                  f"{options['threads']}, connection_limit {options['connection_limit']}, channel_timeout "
                  f"{options['channel_timeout']}")
            measured: dict[str, list[dict]] = {name: [] for name in names}
            labels = {"ceiling": "ceiling (waitress, minimal app, same bytes)",
                      "serve": "distributor serve (/news/<id>/)           ",
                      "ceiling-read": "ceiling reading the file at each answer   "}
            spy, raw = py_spy() if args.profile else None, folder / "py-spy.txt"
            sampler = None
            for number in range(args.slices):
                for name in names if number % 2 == 0 else names[::-1]:
                    process, port = servers[name]
                    if spy and name == "serve" and number == args.slices - 1:
                        sampler = subprocess.Popen(
                            [spy, "record", "--pid", str(process.pid), "--format", "raw", "--rate", "200",
                             "--duration", str(max(1, int(args.warmup + args.duration / args.slices))),
                             "--output", str(raw)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                    result = load(port, path, process.pid, args.clients, args.processes, args.warmup,
                                  args.duration / args.slices)
                    measured[name].append(result)
                    print(line(f"slice {number + 1} {labels[name]}", result), flush=True)
            if sampler is not None:
                sampler.wait(timeout=60)
        finally:
            for process, _ in servers.values():
                stop(process)
            if args.keep_logs:
                args.keep_logs.mkdir(parents=True, exist_ok=True)
                for name, log_path in [*logs.items(), ("run", folder / "run.log")]:
                    if log_path.exists():
                        (args.keep_logs / f"newsroom-{name}.log").write_text(log_path.read_text())

        ok, met = verdict(measured, len(body), cores)
        if "ceiling-read" in measured:
            read = pooled(measured["ceiling-read"])
            ratios = [r["rps"] / c["rps"] if c["rps"] else 0.0
                      for r, c in zip(measured["ceiling-read"], measured["ceiling"], strict=True)]
            print(line("all slices: ceiling reading the file", read))
            print(f"profile: reading the page's file at each answer, and nothing else, gives "
                  f"{statistics.median(ratios):.2f} of the ceiling (median of the slices' ratios)")
        if args.profile and raw.exists():
            print("profile: py-spy on distributor serve, its last slice: " + sampled(raw))
        elif args.profile:
            print("profile: py-spy is not installed (pip install py-spy) or could not sample; skipped")
        if args.profile or not met:
            profile_apps(config_path, path, body)
            if not args.profile:
                print("profile: for where serve's time goes under load, run again with --profile")
    return 0 if ok and met else 1


def pooled(results: list[dict]) -> dict:
    """The slices of one server as one measurement."""
    seconds = sum(r["count"] / r["rps"] for r in results if r["rps"])
    return {"rps": sum(r["count"] for r in results) / seconds if seconds else 0.0,
            "latencies": [v for r in results for v in r["latencies"]],
            "server_cpu": statistics.fmean(r["server_cpu"] for r in results),
            "client_cpu": statistics.fmean(r["client_cpu"] for r in results)}


def verdict(measured: dict[str, list[dict]], length: int, cores: int) -> tuple[bool, bool]:
    """Prints both servers over all their slices, each slice's ratio and the verdict; returns (every answer was
    the page, the targets are met)."""
    ok = True
    for name, results in measured.items():
        bad = sum(n for r in results for status, n in r["statuses"].items() if status != 200)
        wrong_length = sum(n for r in results for size, n in r["lengths"].items() if size != length)
        error_count = sum(r["error_count"] for r in results)
        if bad or wrong_length or error_count:
            ok = False
            errors = [e for r in results for e in r["errors"]][:5]
            print(f"FAIL: {name}: {bad} answers not 200, {wrong_length} of another length, {error_count} connection "
                  f"errors {errors}")
    ceiling, serve = pooled(measured["ceiling"]), pooled(measured["serve"])
    print(line("all slices: ceiling          ", ceiling))
    print(line("all slices: distributor serve", serve))
    ratios = [s["rps"] / c["rps"] if c["rps"] else 0.0 for s, c in zip(measured["serve"], measured["ceiling"],
                                                                          strict=True)]
    print("each slice's ratio (serve / the ceiling's slice beside it): " + ", ".join(f"{r:.2f}" for r in ratios))
    ratio = statistics.median(ratios)
    p99 = percentile(serve["latencies"], 99) if serve["latencies"] else float("inf")
    print(f"verdict: distributor serve {serve['rps']:.0f} requests/s against the ceiling's {ceiling['rps']:.0f}, "
          f"median ratio {ratio:.2f} (target >= {RATIO_TARGET}): {'met' if ratio >= RATIO_TARGET else 'NOT met'}; "
          f"p99 {p99:.1f} ms (target < {P99_TARGET_MS:.0f} ms): {'met' if p99 < P99_TARGET_MS else 'NOT met'}; "
          f"{cores} cores shared by the server and the client")
    return ok, ratio >= RATIO_TARGET and p99 < P99_TARGET_MS


if __name__ == "__main__":
    raise SystemExit(main())
