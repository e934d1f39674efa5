"""One contract, every channel: public channels never act before the embargo; every channel records its outcome."""

import json
from datetime import timedelta

import pytest
from sqlalchemy import select

from distributor.channels import REGISTRY
from distributor.channels.base import Job
from distributor.outcomes import RECORDED, Claimed, Result
from distributor.store.schema import attempts, deliveries
from tests.channels.conftest import SID, bluesky, by_channel, feed, file_wire, fixed_now, mastodon

OFFLINE = file_wire() + feed() + mastodon("", transport="file") + bluesky("", transport="file")
NEWSROOM = '\n[channels.newsroom]\ndirectory = "out/news"\nurl = "https://press.example.org/news/"\n'
CHANNELS = sorted(REGISTRY)


def offline(name: str) -> str:
    """Every channel offline; the newsroom only when it is the one tested (with it, every release goes there)."""
    return OFFLINE + (NEWSROOM if name == "newsroom" else "")


def test_every_registered_channel_is_covered():
    assert CHANNELS == ["bluesky", "email", "feed", "mastodon", "newsroom", "wire"]


@pytest.mark.parametrize("name", CHANNELS)
def test_channel_contract(name, make_system, scheduled, tmp_path):
    clock = fixed_now()
    system = make_system(clock=clock, extra=offline(name))
    csv = tmp_path / "r.csv"
    csv.write_text("email,name,embargo_ok\nana@paper.example.com,Ana,yes\n")
    system.cli("recipients", "import", csv, "--list", "embargo")
    embargo = scheduled(system, channels=name)
    channel = system.channels[name]

    system.dispatcher.advance()
    system.dispatcher.deliver(name)
    rows = by_channel(system)
    if channel.public:
        assert rows == {}  # nothing public exists before the embargo, not even a planned row
    else:
        assert {r["status"] for r in rows.values()} == {"sent"}

    clock.set(embargo + timedelta(milliseconds=1))
    system.dispatcher.advance()
    system.dispatcher.deliver(name)
    rows = log_rows = by_channel(system)
    assert rows and {r["status"] for r in rows.values()} == {"sent"}
    for row in log_rows.values():
        assert row["channel"] == name
        assert row["due_at"] and row["sent_at"] and row["attempts"] == 1
        assert row["remote_id"]
        if channel.public:
            assert row["due_at"] == embargo.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert json.loads(system.cli("show", SID, "--format", "json").out)["status"] == "released"


@pytest.mark.parametrize("name", [n for n in CHANNELS if REGISTRY[n].public])
def test_embargo_guard_in_the_channel_layer(name, make_system, scheduled):
    """Called directly, past the scheduler, a public channel still refuses before the embargo."""
    clock = fixed_now()
    system = make_system(clock=clock, extra=offline(name))
    embargo = scheduled(system, channels=name)
    channel = system.channels[name]
    with system.engine.connect() as conn:
        job = system.dispatcher.job(conn, SID, 1)
    rows = [Claimed(1, SID, 1, name, "any-target", 0, embargo)]
    for before in (timedelta(minutes=10), timedelta(seconds=1), timedelta(microseconds=1)):
        clock.set(embargo - before)
        outcomes = []
        channel.send(job, channel.render(job, "released"), rows, lambda o, outcomes=outcomes: outcomes.append(o) or RECORDED)
        assert [(o.result, o.detail, o.not_before) for o in outcomes] == [(Result.REFUSED, "refused: embargo", embargo)]
    assert not list((system.config_path.parent / "out").rglob("*.json"))
    assert not (system.config_path.parent / "out" / "feed.atom").exists()
    assert not (system.config_path.parent / "out" / "news").exists()


def test_refusal_is_recorded_and_retried_at_the_embargo(make_system, scheduled):
    """A row that reaches a public channel early stays pending, due at the embargo, with a 'refused' attempt."""
    clock = fixed_now()
    system = make_system(clock=clock, extra=OFFLINE)
    embargo = scheduled(system, channels="wire")
    with system.engine.begin() as conn:
        from distributor import deliveries as d
        d.plan(conn, SID, 1, "wire", ["filewire"], clock.now(), clock.now())  # a bug plans it early
    system.dispatcher.deliver("wire")
    with system.engine.connect() as conn:
        row = conn.execute(select(deliveries)).mappings().one()
        attempt = conn.execute(select(attempts)).mappings().one()
    assert row["status"] == "pending" and row["attempts"] == 0
    assert row["next_attempt_at"] == embargo
    assert attempt["outcome"] == "refused" and attempt["detail"] == "refused: embargo"
    clock.set(embargo)
    system.dispatcher.advance()
    system.dispatcher.deliver("wire")
    assert by_channel(system)["wire:filewire"]["status"] == "sent"


def test_job_is_complete(make_system, scheduled):
    system = make_system(clock=fixed_now(), extra=OFFLINE)
    scheduled(system)
    with system.engine.connect() as conn:
        job = system.dispatcher.job(conn, SID, 1)
    assert isinstance(job, Job) and job.first_created and job.version_created and job.embargo
