"""Images on the social channels, against loopback servers that check what Mastodon and a Bluesky PDS check: the
bearer token, the multipart fields of an upload, the size limits, processing (202, then 206 until done), media ids
and blob references that name what was uploaded. Every server notes when each request reached it, by the test's
clock, so that a test can say that nothing arrived before the lift."""

import base64
import hashlib
import io
import json
import re
import time
from datetime import timedelta

import pytest
from PIL import Image
from werkzeug import Response

from distributor.channels import mastodon as mastodon_module
from distributor.channels.social import count_graphemes, count_mastodon
from distributor.clock import FixedClock, utcnow
from tests import mediafiles
from tests.channels.conftest import SID, bluesky, by_channel, mastodon
from tests.channels.test_social import PDS, MastodonServer

LINK = f"https://office.example.org/press/{SID}"
TOKEN = "Bearer mastodon-token-123"
FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}


def sniffed(data: bytes) -> str | None:
    """The type of an image read from its bytes, as the services read it."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            return FORMATS.get(image.format or "")
    except Exception:
        return None


def cid(data: bytes) -> str:
    """A blob's CID as a PDS makes it: CIDv1, raw codec, sha2-256, base32."""
    raw = bytes([0x01, 0x55, 0x12, 0x20]) + hashlib.sha256(data).digest()
    return "b" + base64.b32encode(raw).decode().lower().rstrip("=")


class Noting:
    """Notes each request: (the test clock's time, the wall clock's monotonic time, method, path)."""

    clock = None

    def noted(self, handler):
        def handle(request):
            self.requests.append((self.clock.now() if self.clock else None, time.monotonic(), request.method,
                                  request.path))
            return handler(request)
        return handle

    def paths(self, method: str | None = None) -> list[str]:
        return [path for _, _, m, path in self.requests if method in (None, m)]


class MediaMastodon(Noting, MastodonServer):
    """Mastodon with media: POST /api/v2/media (multipart ``file`` and ``description``), GET /api/v1/media/:id (206
    while processing), statuses whose ``media_ids`` must name this account's processed uploads not attached
    elsewhere, GET of a status with its attachments, and an edit that sets the attachments to its ``media_ids``
    (none named: none kept, as Mastodon does). Idempotency-Key honoured for an hour, as Mastodon does."""

    def __init__(self, processing: float = 0.0, image_bytes: int = 16_777_216, image_pixels: int = 33_177_600):
        super().__init__(limit=500)
        self.requests = []
        self.processing = processing       # seconds an upload takes to process; 0: processed at once (200)
        self.image_bytes = image_bytes
        self.image_pixels = image_pixels
        self.media: dict[str, dict] = {}
        self.uploads: list[dict] = []
        self.by_key: dict[str, str] = {}
        self.lose_reply = False
        self.max_attachments = 4

    def instance(self, request):
        return Response(json.dumps({"configuration": {
            "statuses": {"max_characters": self.limit, "characters_reserved_per_url": 23,
                         "max_media_attachments": self.max_attachments},
            "media_attachments": {"supported_mime_types": list(FORMATS.values()), "image_size_limit": self.image_bytes,
                                  "image_matrix_limit": self.image_pixels, "description_limit": 1500}}}),
            content_type="application/json")

    def error(self, message, status=422):
        return Response(json.dumps({"error": message}), status=status, content_type="application/json")

    def upload(self, request):
        if request.headers.get("Authorization") != TOKEN:
            return self.error("The access token is invalid", 401)
        if not request.content_type.startswith("multipart/form-data"):
            return self.error("Validation failed: File can't be blank")
        file = request.files.get("file")
        if file is None or not file.filename:
            return self.error("Validation failed: File can't be blank")
        data = file.read()
        if file.mimetype not in FORMATS.values() or sniffed(data) != file.mimetype:
            return self.error("Validation failed: File has contents that are not what they are reported to be")
        if len(data) > self.image_bytes:
            return self.error(f"Validation failed: File file size must be less than {self.image_bytes} Bytes")
        with Image.open(io.BytesIO(data)) as image:
            if image.width * image.height > self.image_pixels:
                return self.error("Validation failed: File dimensions are too large")
            size = image.size
        description = request.form.get("description", "")
        if len(description) > 1500:
            return self.error("Validation failed: Description is too long (maximum is 1500 characters)")
        media_id = str(20000 + len(self.uploads))
        item = {"id": media_id, "filename": file.filename, "content_type": file.mimetype, "data": data, "size": size,
                "description": description, "done_at": time.monotonic() + self.processing, "status": None}
        self.media[media_id] = item
        self.uploads.append(item)
        return Response(json.dumps(self.attachment(item)), status=200 if self.processed(item) else 202,
                        content_type="application/json")

    @staticmethod
    def processed(item) -> bool:
        return time.monotonic() >= item["done_at"]

    def attachment(self, item) -> dict:
        url = f"https://files.social.example/{item['id']}.jpg" if self.processed(item) else None
        return {"id": item["id"], "type": "image", "url": url, "preview_url": url, "description": item["description"],
                "meta": {"original": {"width": item["size"][0], "height": item["size"][1]}}}

    def media_status(self, request):
        if request.headers.get("Authorization") != TOKEN:
            return self.error("The access token is invalid", 401)
        item = self.media.get(request.path.rsplit("/", 1)[-1])
        if item is None:
            return self.error("Record not found", 404)
        return Response(json.dumps(self.attachment(item)), status=200 if self.processed(item) else 206,
                        content_type="application/json")

    def attachable(self, ids, status_id=None) -> str | None:
        """Why these media ids cannot be attached (None: they can), as Mastodon refuses them."""
        if not isinstance(ids, list) or len(ids) > self.max_attachments:
            return f"Validation failed: You can attach at most {self.max_attachments} images"
        for media_id in ids:
            item = self.media.get(str(media_id))
            if item is None or item["status"] not in (None, status_id):
                return "Validation failed: media not found"
            if not self.processed(item):
                return "Cannot attach files that have not finished processing. Try again in a moment!"
        return None

    def statuses(self, request):
        if request.headers.get("Authorization") != TOKEN:
            return self.error("The access token is invalid", 401)
        key = request.headers.get("Idempotency-Key")
        if key in self.by_key:  # Mastodon answers a key it remembers with the status it made
            status_id = self.by_key[key]
            return Response(json.dumps({"id": status_id, "url": f"https://social.example/@press/{status_id}"}),
                            content_type="application/json")
        body = request.get_json()
        if count_mastodon(body["status"]) > self.limit:
            return self.error("Validation failed: Text character limit exceeded")
        refused = self.attachable(body.get("media_ids", []))
        if refused:
            return self.error(refused)
        self.posts.append(body)
        status_id = f"1100{len(self.posts)}"
        self.statuses_by_id[status_id] = body
        self.by_key[key] = status_id
        for media_id in body.get("media_ids", []):
            self.media[str(media_id)]["status"] = status_id
        if self.lose_reply:
            self.lose_reply = False
            return Response("bad gateway", status=502)
        return Response(json.dumps({"id": status_id, "url": f"https://social.example/@press/{status_id}"}),
                        content_type="application/json")

    def status(self, request):
        if request.headers.get("Authorization") != TOKEN:
            return self.error("The access token is invalid", 401)
        status_id = request.path.rsplit("/", 1)[-1]
        if status_id not in self.statuses_by_id:
            return self.error("Record not found", 404)
        status = self.statuses_by_id[status_id]
        if request.method == "GET":
            return Response(json.dumps({"id": status_id, "content": f"<p>{status['status']}</p>", "media_attachments": [
                self.attachment(self.media[str(i)]) for i in status.get("media_ids", [])]}),
                content_type="application/json")
        if request.method == "DELETE":
            self.deleted.append(status_id)
            del self.statuses_by_id[status_id]
            return Response(json.dumps({"id": status_id}), content_type="application/json")
        body = request.get_json()
        ids = [str(i) for i in body.get("media_ids") or []]  # an edit naming none leaves none, as on Mastodon
        refused = self.attachable(ids, status_id)
        if refused:
            return self.error(refused)
        for attributes in body.get("media_attributes") or []:
            if str(attributes["id"]) not in ids:
                return self.error("Validation failed: media not found")
            self.media[str(attributes["id"])]["description"] = attributes["description"]
        for media_id in status.get("media_ids", []):
            if str(media_id) not in ids:
                self.media[str(media_id)]["status"] = "detached"
        for media_id in ids:
            self.media[media_id]["status"] = status_id
        self.edits.append((status_id, body))
        self.statuses_by_id[status_id] = {**status, "status": body["status"], "media_ids": ids}
        return Response(json.dumps({"id": status_id}), content_type="application/json")

    def shown(self, status_id: str = "11001") -> list[dict]:
        """The attachments the status shows now."""
        return [self.media[str(i)] for i in self.statuses_by_id[status_id].get("media_ids", [])]


class MediaPDS(Noting, PDS):
    """A PDS with blobs: uploadBlob takes the raw bytes (at most 1,000,000, the Content-Type the image's own) and
    answers the blob's CID; a post's embed must name blobs uploaded, with their mimeType and size."""

    def __init__(self):
        super().__init__()
        self.requests = []
        self.blobs: dict[str, dict] = {}
        self.uploads: list[bytes] = []

    def upload_blob(self, request):
        refused = self.refusal(request)
        if refused is not None:
            return refused
        data = request.get_data()
        if len(data) > 1_000_000:
            return self.json({"error": "BlobTooLarge", "message": "This file is too large"}, 400)
        declared = request.headers.get("Content-Type", "")
        if not declared.startswith("image/") or sniffed(data) != declared:
            return self.json({"error": "InvalidRequest", "message": "the Content-Type is not the blob's type"}, 400)
        blob = {"$type": "blob", "ref": {"$link": cid(data)}, "mimeType": declared, "size": len(data)}
        self.blobs[cid(data)] = {**blob, "data": data}
        self.uploads.append(data)
        return self.json({"blob": blob})

    def create_record(self, request):
        refused = self.refusal(request)
        if refused is not None:
            return refused
        embed = request.get_json()["record"].get("embed")
        if embed is not None:
            problem = self.invalid(embed)
            if problem:
                return self.json({"error": "InvalidRequest", "message": problem}, 400)
        return super().create_record(request)

    def invalid(self, embed: dict) -> str | None:
        if embed.get("$type") == "app.bsky.embed.external":
            external = embed.get("external", {})
            if not all(isinstance(external.get(k), str) for k in ("uri", "title", "description")):
                return "Record/embed/external must have uri, title and description"
            return None
        if embed.get("$type") != "app.bsky.embed.images":
            return f"unknown embed {embed.get('$type')!r}"
        images = embed.get("images", [])
        if not 1 <= len(images) <= 4:
            return "Record/embed/images must have 1 to 4 items"
        for image in images:
            blob = image.get("image", {})
            stored = self.blobs.get(blob.get("ref", {}).get("$link"))
            if stored is None or blob.get("$type") != "blob":
                return "Could not find blob"
            if (blob.get("mimeType"), blob.get("size")) != (stored["mimeType"], stored["size"]):
                return "the blob's mimeType or size is not the uploaded one's"
            if not isinstance(image.get("alt"), str):
                return "Record/embed/images/0 must have the property \"alt\""
            ratio = image.get("aspectRatio", {})
            if not (isinstance(ratio.get("width"), int) and isinstance(ratio.get("height"), int)
                    and ratio["width"] > 0 and ratio["height"] > 0):
                return "aspectRatio must have positive integer width and height"
        return None

    def post(self) -> dict:
        [record] = [r["value"] for r in self.records.values() if "reply" not in r["value"]]
        return record


@pytest.fixture
def masto(httpserver):
    server = MediaMastodon()
    routes = [("/api/v2/instance", "GET", server.instance), ("/api/v2/media", "POST", server.upload),
              (re.compile(r"/api/v1/media/\w+"), "GET", server.media_status),
              ("/api/v1/statuses", "POST", server.statuses),
              ("/api/v1/accounts/verify_credentials", "GET", server.me),
              (re.compile(r"/api/v1/accounts/\w+/statuses"), "GET", server.account_statuses)]
    routes += [(re.compile(r"/api/v1/statuses/\w+"), method, server.status) for method in ("GET", "PUT", "DELETE")]
    for uri, method, handler in routes:
        httpserver.expect_request(uri, method=method).respond_with_handler(server.noted(handler))
    return server


@pytest.fixture
def pds(httpserver):
    server = MediaPDS()
    for nsid, method, handler in [
        ("com.atproto.server.createSession", "POST", server.create_session),
        ("com.atproto.server.refreshSession", "POST", server.refresh_session),
        ("com.atproto.repo.uploadBlob", "POST", server.upload_blob),
        ("com.atproto.repo.createRecord", "POST", server.create_record),
        ("com.atproto.repo.getRecord", "GET", server.get_record),
        ("com.atproto.repo.deleteRecord", "POST", server.delete_record),
    ]:
        httpserver.expect_request(f"/xrpc/{nsid}", method=method).respond_with_handler(server.noted(handler))
    return server


def photo(tmp_path, name: str, data: bytes):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def with_media(system, statement_file, tmp_path, files: list[tuple[str, bytes, str | None]], channels: str,
               clock: FixedClock):
    """Imports the statement, adds each (name, bytes, alt) as a file, approves and schedules it; the embargo."""
    assert system.cli("import", statement_file()).code == 0
    for name, data, alt in files:
        args = ["--alt", alt] if alt else ["--title", f"About {name}"]
        result = system.cli("media", "add", SID, photo(tmp_path, name, data), *args, "--by", "Maya")
        assert result.code == 0, result.err
    assert system.cli("approve", SID, "--by", "Maya").code == 0
    embargo = clock.now() + timedelta(minutes=10)
    result = system.cli("schedule", SID, "--embargo", embargo.isoformat(), "--channels", channels)
    assert result.code == 0, result.err
    return embargo


@pytest.fixture
def released(make_system, statement_file, tmp_path, httpserver, masto, pds):
    """released(files, channels) → (system, clock, embargo): scheduled with the files, lifted, delivered."""

    def make(files, channels="social", deliver=True):
        clock = FixedClock(utcnow())
        base = httpserver.url_for("").rstrip("/")
        system = make_system(clock=clock, extra=mastodon(base) + bluesky(base))
        masto.clock = pds.clock = clock
        embargo = with_media(system, statement_file, tmp_path, files, channels, clock)
        clock.set(embargo)
        if deliver:
            system.dispatcher.advance()
            for name in ("mastodon", "bluesky"):
                if name in channels or channels == "social":
                    system.dispatcher.deliver(name)
        return system, clock, embargo
    return make


FIELD = ("field-visit.jpg", mediafiles.jpeg(1200, 800), "Volunteers fill sandbags outside a flooded house")
MAP = ("flood-map.png", mediafiles.png(640, 480), "A map of Eastbrook with the flooded streets in blue")
REPORT = ("report.pdf", mediafiles.pdf(), None)


# -- Mastodon ----------------------------------------------------------------------------------------------------

def test_mastodon_uploads_at_most_four_images_with_their_alt_text_then_posts_with_their_ids(released, masto, pds):
    photos = [FIELD, MAP, REPORT] + [(f"street-{n}.webp", mediafiles.webp(300 + n, 200), f"Street {n} under water")
                                     for n in range(3)]
    system, _, embargo = released(photos)
    assert [i["alt"] for i in pds.post()["embed"]["images"]] == [FIELD[2], MAP[2], "Street 0 under water",
                                                                "Street 1 under water"]  # Bluesky: the same four
    assert [u["filename"] for u in masto.uploads] == ["field-visit.jpg", "flood-map.png", "street-0.webp",
                                                      "street-1.webp"]  # the first four images; no document
    assert [u["description"] for u in masto.uploads] == [FIELD[2], MAP[2], "Street 0 under water",
                                                         "Street 1 under water"]
    assert [u["content_type"] for u in masto.uploads] == ["image/jpeg", "image/png", "image/webp", "image/webp"]
    for upload in masto.uploads:
        assert mediafiles.leaks(upload["data"]) == []  # the stripped copies, never the files as given
    [post] = masto.posts
    assert post["media_ids"] == [u["id"] for u in masto.uploads]
    assert post["status"].endswith(LINK)
    # the uploads come first, the status after them, all from the lift
    assert masto.paths("POST") == ["/api/v2/media"] * 4 + ["/api/v1/statuses"]
    assert all(at >= embargo for at, *_ in masto.requests)
    assert by_channel(system)["mastodon:masto"]["status"] == "sent"


def test_mastodon_waits_for_processing_backing_off(released, masto):
    masto.processing = 0.6  # answered 202; 206 to each look until then
    system, _, _ = released([FIELD, MAP], "mastodon")
    assert by_channel(system)["mastodon:masto"]["status"] == "sent"
    looks = [(at, path) for _, at, method, path in masto.requests if path.startswith("/api/v1/media/")]
    assert 2 <= len(looks) <= 8  # a bounded number of looks, not a busy loop
    first = [at for at, path in looks if path.endswith(masto.uploads[0]["id"])]
    gaps = [b - a for a, b in zip(first, first[1:], strict=False)]
    assert gaps == sorted(gaps) and gaps[-1] > gaps[0]  # each wait longer than the one before
    [post] = masto.posts  # the server refuses media not processed yet: the status came after
    assert post["media_ids"] == [u["id"] for u in masto.uploads]
    assert masto.requests[-1][3] == "/api/v1/statuses"


def test_mastodon_stops_waiting_and_the_retry_looks_at_the_same_uploads(released, masto, monkeypatch):
    monkeypatch.setattr(mastodon_module, "PROCESSING_WAIT", 0.3)
    masto.processing = 3600
    system, clock, _ = released([FIELD], "mastodon")
    row = by_channel(system)["mastodon:masto"]
    assert row["status"] == "retrying" and "still being processed" in row["error"]
    assert masto.posts == [] and len(masto.uploads) == 1
    masto.uploads[0]["done_at"] = 0  # processed meanwhile
    clock.advance(31)
    system.dispatcher.deliver("mastodon")
    assert by_channel(system)["mastodon:masto"]["status"] == "sent"
    assert len(masto.uploads) == 1  # not uploaded again
    assert masto.posts[0]["media_ids"] == [masto.uploads[0]["id"]]


def test_mastodon_retry_after_a_lost_reply_uploads_nothing_again(released, masto, make_system, httpserver):
    masto.lose_reply = True  # the status is made, the answer lost
    system, clock, _ = released([FIELD, MAP], "mastodon")
    assert by_channel(system)["mastodon:masto"]["status"] == "retrying"
    # another worker, which never saw the uploads, takes the retry
    base = httpserver.url_for("").rstrip("/")
    other = make_system(clock=clock, extra=mastodon(base) + bluesky(base))
    clock.advance(31)
    other.dispatcher.deliver("mastodon")
    row = by_channel(other)["mastodon:masto"]
    assert row["status"] == "sent" and row["remote_id"].startswith("11001 ")
    assert len(masto.uploads) == 2 and len(masto.posts) == 1


def test_mastodon_keeps_to_the_instance_limits_sending_a_smaller_copy_of_a_large_original(released, masto):
    masto.image_pixels, masto.max_attachments = 4_000_000, 1
    released([("wide.jpg", mediafiles.jpeg(3000, 2000), "A wide view of the river"), FIELD], "mastodon")
    [upload] = masto.uploads  # one image: all this instance takes
    assert upload["size"] == (2048, 1365) and len(masto.posts) == 1  # the large rendition


def correct(system, statement_file, tmp_path, change, note="Corrected.") -> None:
    """A new revision (``change``: media add, a re-import), approved and published as a correction, delivered."""
    assert change().code == 0
    assert system.at("approve", SID, "--by", "Maya").code == 0
    result = system.at("correct", SID, "--by", "Maya", "--reason", "fix", "--note", note)
    assert result.code == 0, result.err
    system.dispatcher.advance()
    for name in system.channels:
        system.dispatcher.deliver(name)


def test_a_correction_edits_the_mastodon_status_keeping_or_replacing_its_images(released, masto, pds,
                                                                                statement_file, tmp_path):
    system, clock, _ = released([FIELD])
    [first] = masto.uploads
    assert masto.shown() == [first]

    clock.advance(600)  # the text changes, the image does not: it stays, not uploaded again
    correct(system, statement_file, tmp_path,
            lambda: system.at("import", statement_file(body_extra="The maps cover 1,200 homes.")))
    [(status_id, edit)] = masto.edits
    assert status_id == "11001" and edit["media_ids"] == [first["id"]] and edit["status"].endswith(LINK)
    assert masto.shown() == [first] and len(masto.uploads) == 1

    clock.advance(600)  # a photo added: the edit names the new revision's images, uploaded for it
    correct(system, statement_file, tmp_path,
            lambda: system.at("media", "add", SID, photo(tmp_path, MAP[0], MAP[1]), "--alt", MAP[2], "--by", "Maya"))
    status_id, edit = masto.edits[-1]
    uploaded = masto.uploads[1:]
    assert [u["filename"] for u in uploaded] == ["field-visit.jpg", "flood-map.png"]
    assert status_id == "11001" and edit["media_ids"] == [u["id"] for u in uploaded]
    assert [m["description"] for m in masto.shown()] == [FIELD[2], MAP[2]]
    corrections = [r for r in json.loads(system.cli("log", SID, "--format", "json").out)
                   if r["channel"] == "mastodon" and r["kind"] == "correction"]
    assert [r["status"] for r in corrections] == ["sent", "sent"]


def test_a_correction_of_the_alt_text_alone_updates_the_description_of_the_image_it_keeps(released, masto,
                                                                                     statement_file, tmp_path):
    system, clock, _ = released([FIELD], "mastodon")
    [first] = masto.uploads
    better = "Volunteers from the Eastbrook tenants' association fill sandbags outside number 12"
    assert system.at("media", "remove", SID, FIELD[0], "--by", "Maya").code == 0
    clock.advance(600)
    correct(system, statement_file, tmp_path, lambda: system.at(
        "media", "add", SID, photo(tmp_path, FIELD[0], FIELD[1]), "--alt", better, "--by", "Maya"))
    [(_, edit)] = masto.edits
    assert edit["media_ids"] == [first["id"]]
    assert edit["media_attributes"] == [{"id": first["id"], "description": better}]
    assert masto.shown() == [first] and first["description"] == better and len(masto.uploads) == 1


# -- Bluesky -----------------------------------------------------------------------------------------------------

def test_bluesky_embeds_its_images_with_alt_text_and_aspect_ratio_re_encoding_one_over_a_megabyte(released, pds):
    big = ("night.jpg", mediafiles.noise_jpeg(1_500_000), "The river at night from the Eastbrook bridge")
    assert len(big[1]) > 1_000_000
    system, _, embargo = released([FIELD, big, REPORT], "bluesky")
    assert by_channel(system)["bluesky:sky"]["status"] == "sent"
    record = pds.post()
    embed = record["embed"]
    assert embed["$type"] == "app.bsky.embed.images"
    assert [i["alt"] for i in embed["images"]] == [FIELD[2], big[2]]
    assert len(pds.uploads) == 2
    for image, data in zip(embed["images"], pds.uploads, strict=True):
        assert image["image"]["ref"]["$link"] == cid(data) and image["image"]["size"] == len(data)
        assert len(data) <= 1_000_000 and mediafiles.leaks(data) == []
        with Image.open(io.BytesIO(data)) as uploaded:
            assert image["aspectRatio"] == {"width": uploaded.width, "height": uploaded.height}
            assert image["image"]["mimeType"] == "image/jpeg" and uploaded.format == "JPEG"
    assert embed["images"][0]["aspectRatio"] == {"width": 1200, "height": 800}
    assert count_graphemes(record["text"]) <= 300
    assert pds.paths("POST")[-3:] == ["/xrpc/com.atproto.repo.uploadBlob"] * 2 + ["/xrpc/com.atproto.repo.createRecord"]
    assert all(at >= embargo for at, *_ in pds.requests)


def test_bluesky_without_images_carries_a_link_card(released, pds):
    system, _, _ = released([REPORT], "bluesky")
    assert by_channel(system)["bluesky:sky"]["status"] == "sent"
    embed = pds.post()["embed"]
    assert embed == {"$type": "app.bsky.embed.external", "external": {
        "uri": LINK, "title": "Riverland: Flood maps must be published",
        "description": "The Test Rights Office said today that a fictional river authority must publish its flood "
                       "maps."}}
    assert pds.uploads == []


def test_bluesky_retry_after_a_lost_reply_uploads_nothing_again(released, pds):
    pds.fail_after_store = True  # the post is stored, the answer lost
    system, clock, _ = released([FIELD, MAP], "bluesky")
    assert by_channel(system)["bluesky:sky"]["status"] == "retrying"
    clock.advance(31)
    system.dispatcher.deliver("bluesky")
    row = by_channel(system)["bluesky:sky"]
    assert row["status"] == "sent" and row["attempts"] == 2
    assert len(pds.uploads) == 2 and pds.creates == 1  # the record found by its key, before any upload


# -- the lift ----------------------------------------------------------------------------------------------------

def test_nothing_reaches_either_network_before_the_lift_and_the_uploads_come_first(released, masto, pds,
                                                                                   httpserver):
    system, clock, embargo = released([FIELD, MAP], deliver=False)
    clock.set(embargo - timedelta(milliseconds=500))  # close enough to be claimed and rendered ahead
    system.dispatcher.advance()
    for name in ("mastodon", "bluesky"):
        system.dispatcher.deliver(name)
    assert httpserver.log == [] and masto.requests == [] and pds.requests == []
    assert {r["status"] for r in by_channel(system).values()} <= {"pending"}

    clock.set(embargo)
    system.dispatcher.advance()
    for name in ("mastodon", "bluesky"):
        system.dispatcher.deliver(name)
    assert {r["status"] for r in by_channel(system).values()} == {"sent"}
    assert all(at >= embargo for at, *_ in masto.requests + pds.requests)
    assert masto.paths("POST") == ["/api/v2/media"] * 2 + ["/api/v1/statuses"]
    assert pds.paths("POST") == ["/xrpc/com.atproto.server.createSession"] + [
        "/xrpc/com.atproto.repo.uploadBlob"] * 2 + ["/xrpc/com.atproto.repo.createRecord"]


# -- preview -----------------------------------------------------------------------------------------------------

def test_preview_names_the_images_and_their_alt_text(make_system, statement_file, tmp_path):
    system = make_system(extra=mastodon("https://m.example", transport="file")
                         + bluesky("https://b.example", transport="file"))
    assert system.cli("import", statement_file()).code == 0
    card = system.cli("preview", SID, "--channel", "bluesky")
    assert card.code == 0 and f"no images: a link card to {LINK}" in card.out
    for name, data, alt in (FIELD, ("night.jpg", mediafiles.noise_jpeg(1_500_000), "The river at night")):
        assert system.cli("media", "add", SID, photo(tmp_path, name, data), "--alt", alt, "--by", "Maya").code == 0
    toot = system.cli("preview", SID, "--channel", "mastodon").out
    assert "2 images attached:" in toot
    assert f'1. field-visit.jpg (1200×800, image/jpeg): alt "{FIELD[2]}"' in toot
    assert '2. night.jpg' in toot and 'alt "The river at night"' in toot
    post = system.cli("preview", SID, "--channel", "bluesky").out
    assert "2 images attached:" in post and "night.jpg is re-encoded to fit Bluesky's 1,000,000 bytes" in post
    assert "link card" not in post


def test_the_file_transports_write_the_images_a_post_would_carry(make_system, statement_file, tmp_path):
    clock = FixedClock(utcnow())
    system = make_system(clock=clock, extra=mastodon("", transport="file") + bluesky("", transport="file"))
    clock.set(with_media(system, statement_file, tmp_path, [FIELD, REPORT], "social", clock))
    system.dispatcher.advance()
    for name in ("mastodon", "bluesky"):
        system.dispatcher.deliver(name)
    out = system.config_path.parent / "out"
    [toot] = [json.loads(p.read_text()) for p in (out / "mastodon").glob("*.json")]
    assert toot["media"] == [{"file": FIELD[0], "description": FIELD[2]}]
    [post] = [json.loads(p.read_text()) for p in (out / "bluesky").glob("*.json")]
    assert post["images"] == [{"file": FIELD[0], "alt": FIELD[2], "mimeType": "image/jpeg",
                               "size": post["images"][0]["size"], "aspectRatio": {"width": 1200, "height": 800}}]
    assert "embed" not in post["record"]


def test_a_photo_missing_from_the_store_holds_the_post_back_rather_than_posting_without_it(released, masto, pds):
    import shutil

    from distributor.media import store_of

    system, clock, embargo = released([FIELD], deliver=False)
    shutil.move(store_of(system.config).folder(mediafiles_sha(FIELD[1])), system.config_path.parent / "moved")
    system.dispatcher.advance()
    for name in ("mastodon", "bluesky"):
        system.dispatcher.deliver(name)
    rows = by_channel(system)
    for key in ("mastodon:masto", "bluesky:sky"):
        assert rows[key]["status"] == "retrying" and "media missing from paths.media" in rows[key]["error"]
        assert FIELD[0] in rows[key]["error"]
    assert masto.posts == [] and pds.records == {} and masto.uploads == [] and pds.uploads == []


def mediafiles_sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
