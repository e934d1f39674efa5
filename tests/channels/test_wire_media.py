"""A statement's photos and documents on the wire: one ninjs association each, its files in the newsroom, against
a real HTTP receiver on loopback and the ninjs 3.1 schema."""

import io
import json
from datetime import timedelta
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import select

from distributor import media
from distributor.clock import FixedClock, utcnow
from distributor.outcomes import Claimed, Result
from distributor.statements.model import Statement
from distributor.store.schema import revisions, statements
from tests import mediafiles
from tests.channels.conftest import SID, file_wire, wire
from tests.channels.test_wire import Receiver, validator

NEWSROOM_URL = "https://press.example.org/news/"
NEWSROOM = f'\n[channels.newsroom]\ndirectory = "out/news"\nurl = "{NEWSROOM_URL}"\n'
PHOTO = {"alt": "Volunteers fill sandbags outside a flooded house in Eastbrook", "caption": "Eastbrook, 3 December 2026",
         "credit": "Photo: A. Reporter / TRO", "licence": "CC BY 4.0"}
REPORT = {"title": "Flood maps: the full report", "caption": "Published 3 December 2026", "credit": "TRO research unit",
          "licence": "All rights reserved"}


@pytest.fixture
def receiver(httpserver):
    handler = Receiver(secret=None)
    httpserver.expect_request("/ingest", method="POST").respond_with_handler(handler)
    return handler


def add(system, path: Path, data: bytes, **described) -> str:
    path.write_bytes(data)
    args = ["media", "add", SID, path]
    for key, value in described.items():
        args += [f"--{key}", value]
    result = system.at(*args, "--by", "Sam")
    assert result.code == 0, result.err
    return result.out.strip()


def office(make_system, statement_file, tmp_path, extra: str, channels: str, newsroom: bool = True):
    """A statement with a photo and a PDF, approved and scheduled ten minutes ahead: (system, clock, embargo)."""
    clock = FixedClock(utcnow())
    system = make_system(clock=clock, extra=extra + (NEWSROOM if newsroom else ""))
    assert system.at("import", statement_file()).code == 0
    add(system, tmp_path / "Field Visit.jpg", mediafiles.jpeg(1600, 1200), **PHOTO)
    add(system, tmp_path / "report.pdf", mediafiles.pdf(), **REPORT)
    assert system.at("approve", SID, "--by", "Maya").code == 0
    embargo = clock.now() + timedelta(minutes=10)
    result = system.at("schedule", SID, "--embargo", embargo.isoformat(), "--channels", channels)
    assert result.code == 0, result.err
    return system, clock, embargo


def tick(system) -> None:
    system.dispatcher.advance()
    for name in system.channels:
        system.dispatcher.deliver(name)


def revision(system) -> int:
    with system.engine.connect() as conn:
        return conn.execute(select(statements.c.revision).where(statements.c.id == SID)).scalar_one()


def statement(system) -> Statement:
    """The statement's current revision as the database holds it."""
    with system.engine.connect() as conn:
        content = conn.execute(select(revisions.c.content).where(
            revisions.c.statement_id == SID, revisions.c.number == revision(system))).scalar_one()
    return Statement.from_dict(content)


def facts_of(path: Path) -> tuple[int, int | None, int | None]:
    data = path.read_bytes()
    if data.startswith(b"%PDF"):
        return len(data), None, None
    with Image.open(io.BytesIO(data)) as image:
        return len(data), image.width, image.height


def test_each_photo_and_document_is_an_association_with_every_file_as_stored(
        make_system, statement_file, tmp_path, receiver, httpserver):
    system, clock, embargo = office(make_system, statement_file, tmp_path, wire(httpserver.url_for("/ingest")),
                                    "wire,newsroom")
    clock.set(embargo)
    tick(system)
    [request] = receiver.requests
    item = json.loads(request["body"])
    validator().validate(item)
    photo, report = statement(system).media
    assert [a["name"] for a in item["associations"]] == [photo.name, report.name] == ["field-visit.jpg", "report.pdf"]
    store = media.store_of(system.config)
    for association, kept in zip(item["associations"], (photo, report), strict=True):
        assert association["uri"].startswith(item["uri"] + "/media/")
        stored = store.renditions(kept)
        assert [r["name"] for r in association["renditions"]] == [r.name for r in stored]
        for rendition, file in zip(association["renditions"], stored, strict=True):
            # the ninjs facts are those of the file kept (and, read from its bytes, of the file itself)
            assert (rendition["sizeInBytes"], rendition.get("width"), rendition.get("height")) == (
                file.size, file.width, file.height) == facts_of(file.path)
            assert rendition["contentType"] == file.content_type == kept.content_type
            # each file as the newsroom serves it, under the statement's page
            assert rendition["href"] == media.public_url(system.config, SID, kept, file.name)
            assert rendition["href"].startswith(f"{NEWSROOM_URL}{SID}/media/")
            assert rendition["href"].endswith(kept.name)
    pictured, document = item["associations"]
    assert [r["name"] for r in pictured["renditions"]] == ["original", "large", "medium", "thumb"]
    assert pictured["renditions"][0]["width"] == 1600 and pictured["renditions"][2]["width"] == 1024
    assert pictured["type"] == "picture" and document["type"] == "text"
    assert pictured["descriptions"] == [
        {"role": "caption", "contentType": "text/plain", "value": PHOTO["caption"]},
        {"role": "alt", "contentType": "text/plain", "value": PHOTO["alt"]}]
    assert (pictured["copyrightHolder"], pictured["usageTerms"]) == (PHOTO["credit"], PHOTO["licence"])
    assert "title" not in pictured
    assert document["title"] == REPORT["title"]
    assert document["descriptions"] == [{"role": "caption", "contentType": "text/plain", "value": REPORT["caption"]}]
    assert (document["copyrightHolder"], document["usageTerms"]) == (REPORT["credit"], REPORT["licence"])
    assert [r["contentType"] for r in document["renditions"]] == ["application/pdf"]
    assert "width" not in document["renditions"][0] and "height" not in document["renditions"][0]


def test_a_photo_without_caption_credit_or_licence_carries_its_alt_text_alone(
        make_system, statement_file, tmp_path, receiver, httpserver):
    clock = FixedClock(utcnow())
    system = make_system(clock=clock, extra=wire(httpserver.url_for("/ingest")) + NEWSROOM)
    assert system.at("import", statement_file()).code == 0
    add(system, tmp_path / "plain.png", mediafiles.png(), alt="A blue square")
    assert system.at("approve", SID, "--by", "Maya").code == 0
    embargo = clock.now() + timedelta(minutes=10)
    assert system.at("schedule", SID, "--embargo", embargo.isoformat(), "--channels", "wire").code == 0
    clock.set(embargo)
    tick(system)
    [association] = json.loads(receiver.requests[0]["body"])["associations"]
    validator().validate(json.loads(receiver.requests[0]["body"]))
    assert association["descriptions"] == [{"role": "alt", "contentType": "text/plain", "value": "A blue square"}]
    assert not {"copyrightHolder", "usageTerms", "title"} & set(association)
    assert {r["contentType"] for r in association["renditions"]} == {"image/png"}


def test_the_hrefs_are_files_in_the_newsroom_after_the_lift(make_system, statement_file, tmp_path, receiver,
                                                            httpserver):
    system, clock, embargo = office(make_system, statement_file, tmp_path, wire(httpserver.url_for("/ingest")),
                                    "wire,newsroom")
    clock.set(embargo)
    tick(system)
    item = json.loads(receiver.requests[0]["body"])
    site = system.config.channels["newsroom"].directory
    store = media.store_of(system.config)
    photo, report = statement(system).media
    for association, kept in zip(item["associations"], (photo, report), strict=True):
        for rendition in association["renditions"]:
            served = site / rendition["href"].removeprefix(NEWSROOM_URL)
            assert served.is_file(), rendition["href"]
            assert served.read_bytes() == store.read(kept, rendition["name"])


def test_a_correction_that_changes_the_media_is_a_new_version_with_new_associations(
        make_system, statement_file, tmp_path, receiver, httpserver):
    system, clock, embargo = office(make_system, statement_file, tmp_path, wire(httpserver.url_for("/ingest")),
                                    "wire,newsroom")
    clock.set(embargo)
    tick(system)
    clock.advance(3600)
    assert system.at("media", "remove", SID, "report.pdf", "--by", "Sam").code == 0
    add(system, tmp_path / "second.webp", mediafiles.webp(), alt="Sandbags stacked at a door", credit="Photo: TRO")
    assert system.at("approve", SID, "--by", "Maya").code == 0
    result = system.at("correct", SID, "--by", "Maya", "--reason", "the report was the draft")
    assert result.code == 0, result.err
    tick(system)
    first, second = (json.loads(r["body"]) for r in receiver.requests)
    validator().validate(second)
    assert second["uri"] == first["uri"] and (first["version"], second["version"]) == ("1", "2")
    assert [a["name"] for a in first["associations"]] == ["field-visit.jpg", "report.pdf"]
    assert [a["name"] for a in second["associations"]] == ["field-visit.jpg", "second.webp"]
    assert second["associations"][0] == first["associations"][0]  # the photo kept is the same object
    assert second["associations"][1]["copyrightHolder"] == "Photo: TRO"
    assert {r["contentType"] for r in second["associations"][1]["renditions"]} == {"image/webp"}


def test_a_retraction_carries_no_associations(make_system, statement_file, tmp_path, receiver, httpserver):
    system, clock, embargo = office(make_system, statement_file, tmp_path, wire(httpserver.url_for("/ingest")),
                                    "wire,newsroom")
    clock.set(embargo)
    tick(system)
    clock.advance(60)
    assert system.at("retract", SID, "--by", "Maya", "--reason", "published in error").code == 0
    tick(system)
    released, retracted = (json.loads(r["body"]) for r in receiver.requests)
    validator().validate(retracted)
    assert len(released["associations"]) == 2
    assert retracted["pubStatus"] == "canceled" and "associations" not in retracted


def test_without_a_newsroom_the_item_has_no_associations(make_system, statement_file, tmp_path, receiver,
                                                        httpserver):
    system, clock, embargo = office(make_system, statement_file, tmp_path, wire(httpserver.url_for("/ingest")),
                                    "wire", newsroom=False)
    clock.set(embargo)
    tick(system)
    item = json.loads(receiver.requests[0]["body"])
    validator().validate(item)
    assert len(statement(system).media) == 2 and "associations" not in item


def test_a_statement_without_media_has_no_associations(make_system, scheduled, receiver, httpserver):
    clock = FixedClock(utcnow())
    system = make_system(clock=clock, extra=wire(httpserver.url_for("/ingest")) + NEWSROOM)
    embargo = scheduled(system, channels="wire")
    clock.set(embargo)
    tick(system)
    assert "associations" not in json.loads(receiver.requests[0]["body"])


def test_preview_shows_the_associations(make_system, statement_file, tmp_path):
    system, clock, embargo = office(make_system, statement_file, tmp_path, file_wire(), "wire,newsroom")
    result = system.cli("preview", SID, "--channel", "wire")
    assert result.code == 0, result.err
    item = json.loads(result.out)
    validator().validate(item)
    assert [a["name"] for a in item["associations"]] == ["field-visit.jpg", "report.pdf"]
    assert item["associations"][0]["descriptions"][1]["value"] == PHOTO["alt"]
    assert not (system.config_path.parent / "out" / "wire").exists()  # a preview sends nothing


def test_a_refused_attempt_before_the_lift_sends_and_writes_nothing(make_system, statement_file, tmp_path, receiver,
                                                                    httpserver):
    system, clock, embargo = office(make_system, statement_file, tmp_path,
                                    wire(httpserver.url_for("/ingest")) + file_wire(), "wire,newsroom")
    clock.set(embargo - timedelta(seconds=1))
    channel = system.channels["wire"]
    with system.engine.connect() as conn:
        job = system.dispatcher.job(conn, SID, revision(system))
    rendered = channel.render(job, channel.variant(job, clock.now()))
    assert len(rendered["associations"]) == 2  # what would leak, were it sent
    outcomes = []
    rows = [Claimed(n, SID, job.revision, "wire", target, 0, embargo)
            for n, target in enumerate(("newswire", "filewire"), 1)]
    channel.send(job, rendered, rows, outcomes.append)
    assert [(o.result, o.detail) for o in outcomes] == [(Result.REFUSED, "refused: embargo")] * 2
    assert receiver.requests == []
    assert not (system.config_path.parent / "out" / "wire").exists()
    tick(system)  # the scheduler a second early: nothing either
    assert receiver.requests == [] and not (system.config_path.parent / "out" / "wire").exists()
    assert not (system.config.channels["newsroom"].directory / SID).exists()
