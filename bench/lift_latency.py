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

    python bench/lift_latency.py --media 4 [--statements 5] [--spacing 4] [--processing 0.5]

With --media N, each statement carries N photos (the first a 1.3 MB photo of noise, over Bluesky's 1,000,000 bytes
a blob, so that it is re-encoded; the others 1600×1200) and goes to one Mastodon and one Bluesky account, both on one
loopback server that checks what the services check: Mastodon's uploads (multipart, alt text) answered 202 and
processed after --processing seconds (206 until then), a status naming only processed uploads; Bluesky's blobs at
most 1,000,000 bytes, embedded by the CID they were given. Prints, per network, p50/max of (first upload - embargo)
and of (post created - embargo). Fails if any request reaches the server before the first embargo or any upload
before its own statement's, or a post is missing. Target: every post with its images within 5 s of its lift.
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
    parser.add_argument("--statements", type=int, default=None,
                        help="lifts per phase (idle, and loaded); default 100, with --media 5")
    parser.add_argument("--spacing", type=float, default=None, help="seconds between embargoes; default 0.3, "
                                                                     "with --media 4")
    parser.add_argument("--media", type=int, default=0, metavar="N",
                        help="photos per statement, posted to Mastodon and Bluesky on loopback (1 to 4; 0: the wire)")
    parser.add_argument("--processing", type=float, default=0.5,
                        help="with --media: seconds the loopback Mastodon takes to process an upload")
    parser.add_argument("--concurrent-send", type=int, default=0, metavar="N",
                        help="recipients of an email send that runs during the loaded lifts (0: idle only)")
    parser.add_argument("--settle", type=float, default=0.5,
                        help="seconds between the start of the send and the first loaded lift")
    parser.add_argument("--lead", type=float, default=5.0, help="seconds from scheduling to the first embargo")
    parser.add_argument("--keep-log", type=Path, help="copy the scheduler's log here")
    args = parser.parse_args()
    if args.statements is None:
        args.statements = 5 if args.media else 100
    if args.spacing is None:
        args.spacing = 4.0 if args.media else 0.3
    if args.statements < 1:
        parser.error("--statements must be at least 1")
    if args.media:
        if not 1 <= args.media <= 4 or args.concurrent_send:
            parser.error("--media takes 1 to 4 photos, and no --concurrent-send")
        return media_main(args)

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


# -- --media: the lift of a post with photos, on Mastodon and Bluesky ---------------------------------------------

MEDIA_TARGET_S = 5.0
MASTODON_TOKEN = "bench-mastodon-token"
BLUESKY_PASSWORD = "bench-app-password"
MEDIA_CONFIG = """
[office]
name = "Bench Office"
timezone = "Europe/London"
from = "press@bench.example.org"
public_url = "https://press.bench.example.org/news/{{id}}/"

[database]
url = "sqlite:///{db}"

[paths]
templates = "{templates}"
media = "{folder}/media"

[channels.email]
transport = "file"

[channels.email.file]
directory = "{folder}/outbox"

[[channels.social]]
network = "mastodon"
name = "loopback"
base_url = "http://127.0.0.1:{port}"
token_env = "BENCH_MASTODON_TOKEN"

[[channels.social]]
network = "bluesky"
name = "loopback"
service = "http://127.0.0.1:{port}"
handle = "press.bench.example.org"
password_env = "BENCH_BLUESKY_PASSWORD"
"""
LINKED = re.compile(r"/news/([^/\s]+)/")


def blob_cid(data: bytes) -> str:
    """CIDv1, raw codec, sha2-256, base32: as a PDS names a blob."""
    import base64
    import hashlib

    raw = bytes([0x01, 0x55, 0x12, 0x20]) + hashlib.sha256(data).digest()
    return "b" + base64.b32encode(raw).decode().lower().rstrip("=")


class Social(BaseHTTPRequestHandler):
    """Mastodon and a Bluesky PDS on one loopback port, checking what they check, noting when each request came."""

    processing = 0.5
    lock = threading.Lock()
    requests: list[tuple[float, str, str]] = []          # (arrival, method, path)
    media: dict[str, dict] = {}                          # Mastodon upload id -> description, arrival, done at
    blobs: dict[str, float] = {}                         # CID -> arrival of its upload
    posts: dict[str, dict[str, tuple[float, list[float]]]] = {"mastodon": {}, "bluesky": {}}  # id -> (at, uploads)
    refused: list[str] = []

    def reply(self, status: int, data: dict | None = None) -> None:
        body = json.dumps(data or {}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def refuse(self, why: str, status: int = 400) -> None:
        with self.lock:
            self.refused.append(f"{self.command} {self.path}: {why}")
        self.reply(status, {"error": why})

    def body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length", 0)))

    def note(self) -> float:
        arrived = time.time()
        with self.lock:
            self.requests.append((arrived, self.command, self.path))
        return arrived

    def authorised(self) -> bool:
        header = self.headers.get("Authorization", "")
        return header in (f"Bearer {MASTODON_TOKEN}", "Bearer bench-access")

    def do_GET(self):
        arrived = self.note()
        if self.path == "/api/v2/instance":
            return self.reply(200, {"configuration": {"statuses": {"max_characters": 500, "max_media_attachments": 4},
                                                      "media_attachments": {"image_size_limit": 16_777_216,
                                                                            "description_limit": 1500}}})
        if not self.authorised():
            return self.refuse("unauthorised", 401)
        if self.path.startswith("/api/v1/media/"):
            item = self.media.get(self.path.rsplit("/", 1)[-1])
            if item is None:
                return self.refuse("Record not found", 404)
            done = arrived >= item["done"]
            return self.reply(200 if done else 206, {"id": item["id"], "url": "https://files/x.jpg" if done else None})
        if self.path.startswith("/xrpc/com.atproto.repo.getRecord"):
            return self.reply(400, {"error": "RecordNotFound"})
        return self.refuse("no such route", 404)

    def do_POST(self):
        arrived = self.note()
        data = self.body()
        if self.path == "/xrpc/com.atproto.server.createSession":
            return self.reply(200, {"accessJwt": "bench-access", "refreshJwt": "bench-refresh", "did": "did:plc:bench"})
        if not self.authorised():
            return self.refuse("unauthorised", 401)
        if self.path == "/api/v2/media":
            return self.mastodon_upload(data, arrived)
        if self.path == "/api/v1/statuses":
            return self.mastodon_status(json.loads(data), arrived)
        if self.path == "/xrpc/com.atproto.repo.uploadBlob":
            if len(data) > 1_000_000 or not self.headers.get("Content-Type", "").startswith("image/"):
                return self.refuse("BlobTooLarge or not an image")
            cid = blob_cid(data)
            with self.lock:
                self.blobs[cid] = arrived
            return self.reply(200, {"blob": {"$type": "blob", "ref": {"$link": cid},
                                             "mimeType": self.headers["Content-Type"], "size": len(data)}})
        if self.path == "/xrpc/com.atproto.repo.createRecord":
            record = json.loads(data)["record"]
            refs = [i["image"]["ref"]["$link"] for i in record.get("embed", {}).get("images", [])]
            if any(ref not in self.blobs for ref in refs):
                return self.refuse("Could not find blob")
            self.posted("bluesky", record["text"], arrived, [self.blobs[ref] for ref in refs])
            return self.reply(200, {"uri": "at://did:plc:bench/app.bsky.feed.post/x", "cid": "bafyrei"})
        return self.refuse("no such route", 404)

    def mastodon_upload(self, data: bytes, arrived: float) -> None:
        from email.parser import BytesParser
        from email.policy import HTTP

        form = BytesParser(policy=HTTP).parsebytes(
            b"Content-Type: " + self.headers["Content-Type"].encode() + b"\r\n\r\n" + data)
        parts = {part.get_param("name", header="content-disposition"): part for part in form.iter_parts()}
        file = parts.get("file")
        if file is None or not file.get_filename() or not file.get_content_type().startswith("image/"):
            return self.refuse("Validation failed: File can't be blank", 422)
        description = parts["description"].get_content() if "description" in parts else ""
        if len(description) > 1500:
            return self.refuse("Validation failed: Description is too long", 422)
        with self.lock:
            media_id = str(len(self.media) + 1)
            self.media[media_id] = {"id": media_id, "at": arrived, "done": arrived + self.processing}
        return self.reply(202, {"id": media_id, "url": None})

    def mastodon_status(self, body: dict, arrived: float) -> None:
        items = [self.media.get(str(i)) for i in body.get("media_ids", [])]
        if any(item is None or arrived < item["done"] for item in items):
            return self.refuse("Cannot attach files that have not finished processing", 422)
        self.posted("mastodon", body["status"], arrived, [item["at"] for item in items if item])
        return self.reply(200, {"id": str(len(self.posts["mastodon"])), "url": "https://social/x"})

    def posted(self, network: str, text: str, arrived: float, uploads: list[float]) -> None:
        found = LINKED.search(text)
        with self.lock:
            self.posts[network][found.group(1) if found else "?"] = (arrived, uploads)

    def log_message(self, *args):
        pass


def bench_photos(n: int, count: int) -> list[tuple[str, bytes]]:
    """Statement n's photos: the first a JPEG of noise of about 1.3 MB, the others 1600×1200 gradients."""
    import io

    from PIL import Image

    photos = []
    for i in range(count):
        out = io.BytesIO()
        if i == 0:
            edge = 1090
            Image.frombytes("L", (edge, edge), os.urandom(edge * edge)).convert("RGB").save(out, "JPEG", quality=95)
        else:
            image = Image.linear_gradient("L").resize((1600, 1200)).convert("RGB")
            image.paste(((n * 37 + i * 71) % 256, 90, 160), (0, 0, 400 + 100 * i, 300))
            image.save(out, "JPEG", quality=90)
        photos.append((f"photo-{i + 1}.jpg", out.getvalue()))
    return photos


def media_main(args) -> int:
    from dataclasses import replace

    from distributor import media as media_library
    from distributor import workflow
    from distributor.channels import REGISTRY, load_config
    from distributor.statements import parse_file
    from distributor.store import connect, init_schema

    Social.processing = args.processing
    server = ThreadingHTTPServer(("127.0.0.1", 0), Social)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        config_path = folder / "distributor.toml"
        config_path.write_text(MEDIA_CONFIG.format(db=folder / "d.db", templates=ROOT / "templates", folder=folder,
                                                   port=server.server_address[1]))
        config = load_config(config_path)
        engine = connect(config.database_url)
        init_schema(engine)
        library = media_library.Library.of(config)
        now = datetime.now(UTC)
        sids = []
        with engine.begin() as conn:
            for n in range(args.statements):
                path = folder / f"s{n}.txt"
                path.write_text(STATEMENT.format(n=n))
                items: tuple = ()
                for name, data in bench_photos(n, args.media):
                    items += (library.take(data, name, name, {"alt": f"Bench photo {name} of statement {n}"}, items),)
                statement = replace(parse_file(path), media=items)
                sid = workflow.import_statement(conn, statement, str(path), "bench", now).id
                workflow.approve(conn, sid, "bench", now)
                sids.append(sid)

        env = {**os.environ, "DISTRIBUTOR_CONFIG": str(config_path), "BENCH_MASTODON_TOKEN": MASTODON_TOKEN,
               "BENCH_BLUESKY_PASSWORD": BLUESKY_PASSWORD}
        log_path = folder / "run.log"
        with log_path.open("w") as log_file:
            runner = subprocess.Popen([str(BIN), "run"], env=env, stderr=log_file, stdout=subprocess.DEVNULL)
        try:
            while "scheduler running" not in log_path.read_text():
                if runner.poll() is not None:
                    raise SystemExit(f"distributor run exited:\n{log_path.read_text()}")
                time.sleep(0.05)
            first = datetime.now(UTC) + timedelta(seconds=args.lead)
            embargoes: dict[str, float] = {}
            social = {"mastodon": REGISTRY["mastodon"], "bluesky": REGISTRY["bluesky"]}
            with engine.begin() as conn:
                at = datetime.now(UTC)
                for n, sid in enumerate(sids):
                    embargo = first + timedelta(seconds=n * args.spacing)
                    workflow.schedule(conn, sid, "bench", at, override_embargo=True, embargo=embargo,
                                      send_embargoed_at=None, channels=social)
                    embargoes[sid] = embargo.timestamp()
            if datetime.now(UTC) >= first:
                raise SystemExit("scheduling took longer than the lead time; raise --lead")
            deadline = max(embargoes.values()) + MEDIA_TARGET_S + 30
            while time.time() < deadline and any(len(Social.posts[net]) < len(sids) for net in Social.posts):
                time.sleep(0.1)
        finally:
            stop(runner)
            engine.dispose()
        log_text = log_path.read_text()
        if args.keep_log:
            args.keep_log.write_text(log_text)
    server.shutdown()

    first_lift = min(embargoes.values())
    early = [f"{method} {path}" for at, method, path in Social.requests if at < first_lift]
    print(f"lifts: {len(sids)}, {args.spacing}s apart, {args.media} photos each (the first {len(bench_photos(0, 1)[0][1]):,} "
          f"bytes, over Bluesky's 1,000,000), Mastodon processing each upload for {args.processing}s; "
          f"requests received: {len(Social.requests)}")
    ok = True
    for network, posts in Social.posts.items():
        missing = [sid for sid in sids if sid not in posts]
        late_uploads = [sid for sid in sids if sid in posts and any(u < embargoes[sid] for u in posts[sid][1])]
        counts = {len(posts[sid][1]) for sid in sids if sid in posts}
        uploads = [(min(posts[s][1]) - embargoes[s]) * 1000 for s in sids if s in posts and posts[s][1]]
        created = [(posts[s][0] - embargoes[s]) * 1000 for s in sids if s in posts]
        print(f"{network:9s} first upload - embargo: {summary(uploads)}")
        print(f"{'':9s} post with {'/'.join(map(str, sorted(counts))) or 0} images created - embargo: {summary(created)}")
        worst = max(created, default=float("inf")) / 1000
        met = not missing and worst <= MEDIA_TARGET_S and counts == {args.media}
        print(f"{'':9s} target: every post with its {args.media} images within {MEDIA_TARGET_S:.0f} s of its lift "
              f"(max {worst:.2f} s): {'met' if met else 'NOT met'}")
        if missing:
            print(f"FAIL: no {network} post for {', '.join(missing)}")
        if late_uploads:
            print(f"FAIL: {network} uploads before the lift of {', '.join(late_uploads)}")
        ok = ok and met and not missing and not late_uploads
    if Social.refused:
        print(f"the server refused {len(Social.refused)} requests: " + "; ".join(Social.refused[:5]))
    if early:
        print(f"FAIL: {len(early)} requests reached the network before the first lift: {', '.join(early[:5])}")
        return 1
    print("nothing reached the network before the first lift")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
