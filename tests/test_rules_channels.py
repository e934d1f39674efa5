"""The channel base, rule by rule: the embargo guard, one outcome per row, variants, due times, keys and tables."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import delete, insert

from distributor.channels.base import EMBARGOED, RELEASED, Channel, Context, Job, idempotency_key, tables_of
from distributor.clock import FixedClock
from distributor.config import Table
from distributor.outcomes import RECORDED, Claimed, Kind, Outcome, Result, Variant
from distributor.statements.model import Statement
from distributor.store import connect, init_schema
from distributor.store.schema import statements

# The guard reads each statement's embargo and status from the database: a real one, empty unless a test adds a row.
ENGINE = connect(f"sqlite:///{tempfile.mkdtemp(prefix='rules-channels-')}/distributor.db")
init_schema(ENGINE)
NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
EMBARGO = NOW + timedelta(hours=1)
DOC = Statement(title="T", body=("B.",), reference="TRO 01/001/2030")


class Plain(Channel):
    name = "plain"
    public = True

    def __init__(self, clock, behaviour=None):
        super().__init__("settings", Context(None, ENGINE, clock, None))
        self.behaviour = behaviour or (lambda rows, report: [report(Outcome(r.id, Result.SENT)) for r in rows])
        self.delivered: list = []

    @classmethod
    def configure(cls, channels, config_so_far):
        return None

    def targets(self, conn, job):
        return []

    def render(self, job, variant):
        return variant

    def deliver(self, job, rendered, rows, report):
        self.delivered.append((job, rendered, [r.id for r in rows]))
        self.behaviour(rows, report)


class Private(Plain):
    name = "private"
    public = False


def job(embargo=EMBARGO, send_at=NOW):
    return Job("tro-01-001-2030", 2, DOC, embargo, send_at)


def claimed(*ids):
    return [Claimed(i, "tro-01-001-2030", 2, "plain", f"t{i}", 0, NOW) for i in ids]


def collect():
    outcomes: list[Outcome] = []

    def report(outcome):
        outcomes.append(outcome)
        return RECORDED
    return outcomes, report


def test_base_keeps_settings_context_and_clock():
    clock = FixedClock(NOW)
    channel = Plain(clock)
    assert channel.settings == "settings" and channel.clock is clock and channel.context.clock is clock
    assert (Channel.name, Channel.public) == ("", True)
    assert channel.open() is None and channel.close() is None


# -- the embargo guard ---------------------------------------------------------------------------------------------------
def test_public_channel_refuses_every_row_before_the_embargo(caplog):
    channel = Plain(FixedClock(EMBARGO - timedelta(microseconds=1)))
    outcomes, report = collect()
    with caplog.at_level(logging.WARNING, logger="distributor.channels"):
        channel.send(job(), "r", claimed(1, 2), report)
    assert channel.delivered == []
    assert outcomes == [Outcome(1, Result.REFUSED, "refused: embargo", not_before=EMBARGO),
                        Outcome(2, Result.REFUSED, "refused: embargo", not_before=EMBARGO)]
    assert [r.levelno for r in caplog.records] == [logging.WARNING]
    assert caplog.records[0].getMessage() == (f"plain: refused 2 deliveries of tro-01-001-2030: embargo until {EMBARGO} "
                                              f"(now {EMBARGO - timedelta(microseconds=1)})")


@pytest.fixture
def stored():
    """The statement as the database holds it: stored(embargo=..., status=...)."""
    def store(embargo, status="scheduled"):
        with ENGINE.begin() as conn:
            conn.execute(delete(statements))
            conn.execute(insert(statements).values(id="tro-01-001-2030", status=status, revision=2, embargo=embargo,
                                                   created_at=NOW, updated_at=NOW))
    yield store
    with ENGINE.begin() as conn:
        conn.execute(delete(statements))


def test_the_guard_follows_the_embargo_in_the_database_not_the_one_in_the_job(stored):
    stored(EMBARGO + timedelta(days=1))  # moved a day later after the job was read
    channel = Plain(FixedClock(EMBARGO))
    outcomes, report = collect()
    channel.send(job(), "r", claimed(1), report)
    assert outcomes == [Outcome(1, Result.REFUSED, "refused: embargo", not_before=EMBARGO + timedelta(days=1))]
    stored(EMBARGO - timedelta(minutes=5), status="released")  # moved earlier, and lifted
    outcomes, report = collect()
    Plain(FixedClock(EMBARGO - timedelta(minutes=1))).send(job(), "r", claimed(2), report)
    assert outcomes == [Outcome(2, Result.SENT)]


def test_the_guard_cancels_what_a_withdrawal_left_in_flight(stored):
    stored(EMBARGO - timedelta(minutes=5), status="withdrawn")
    channel = Plain(FixedClock(EMBARGO))
    outcomes, report = collect()
    channel.send(job(), "r", claimed(1, 2), report)
    assert channel.delivered == [] and outcomes == [Outcome(1, Result.CANCELLED, "withdrawn"),
                                                    Outcome(2, Result.CANCELLED, "withdrawn")]


@pytest.mark.parametrize("status, kind, expected", [
    ("retracted", Kind.STATEMENT, "retracted"), ("retracted", Kind.CORRECTION, "retracted"),
    ("retracted", Kind.RETRACTION, None), ("draft", Kind.STATEMENT, "the statement is draft now"),
    ("released", Kind.STATEMENT, None),
])
def test_the_guard_cancels_what_a_retraction_or_a_new_schedule_overtook(stored, status, kind, expected):
    stored(EMBARGO - timedelta(minutes=5), status=status)
    outcomes, report = collect()
    Plain(FixedClock(EMBARGO)).send(dataclasses.replace(job(), kind=kind), "r", claimed(1), report)
    assert outcomes == ([Outcome(1, Result.SENT)] if expected is None else [Outcome(1, Result.CANCELLED, expected)])


def test_the_guard_cancels_a_copy_of_an_earlier_schedule(stored):
    stored(EMBARGO - timedelta(minutes=5), status="released")
    outcomes, report = collect()
    Plain(FixedClock(EMBARGO)).send(dataclasses.replace(job(), generation=0), "r", claimed(1), report)
    assert outcomes == [Outcome(1, Result.CANCELLED, "overtaken by a new schedule")]


def test_public_channel_acts_at_the_embargo_instant():
    channel = Plain(FixedClock(EMBARGO))
    outcomes, report = collect()
    channel.send(job(), "r", claimed(1), report)
    assert outcomes == [Outcome(1, Result.SENT)]
    assert channel.delivered == [(job(), "r", [1])]
    assert channel.embargo_refusal(job(), claimed(1)) is None


def test_public_channel_refuses_a_statement_without_an_embargo():
    channel = Plain(FixedClock(NOW))
    outcomes, report = collect()
    channel.send(job(embargo=None), "r", claimed(1), report)
    assert outcomes == [Outcome(1, Result.REFUSED, "refused: embargo", not_before=None)]


def test_private_channel_is_never_refused():
    channel = Private(FixedClock(NOW))
    assert channel.embargo_refusal(job(), claimed(1)) is None
    outcomes, report = collect()
    channel.send(job(), "r", claimed(1), report)
    assert outcomes == [Outcome(1, Result.SENT)]


# -- one outcome per row ------------------------------------------------------------------------------------------------
def test_rows_without_an_outcome_are_retried():
    channel = Private(FixedClock(NOW), behaviour=lambda rows, report: report(Outcome(rows[0].id, Result.FAILED, "x")))
    outcomes, report = collect()
    channel.send(job(), "r", claimed(1, 2, 3), report)
    assert outcomes == [Outcome(1, Result.FAILED, "x"), Outcome(2, Result.RETRY, "private: no outcome reported"),
                        Outcome(3, Result.RETRY, "private: no outcome reported")]


def test_a_channel_that_raises_gives_the_unreported_rows_a_retry(caplog):
    def behaviour(rows, report):
        report(Outcome(rows[0].id, Result.SENT))
        raise KeyError("boom")

    channel = Private(FixedClock(NOW), behaviour=behaviour)
    outcomes, report = collect()
    with caplog.at_level(logging.ERROR, logger="distributor.channels"):
        channel.send(job(), "r", claimed(1, 2), report)
    assert outcomes == [Outcome(1, Result.SENT), Outcome(2, Result.RETRY, "internal error: KeyError: 'boom'")]
    assert [r.getMessage() for r in caplog.records] == ["private: delivery of tro-01-001-2030 r2 failed"]


def test_an_error_preparing_one_target_fails_that_target_alone(caplog):
    channel = Private(FixedClock(NOW))

    def handle(row):
        if row.target == "t2":
            raise UnicodeError("label too long")
        return None if row.target == "t3" else Outcome(row.id, Result.SENT)

    outcomes, report = collect()
    with caplog.at_level(logging.ERROR, logger="distributor.channels"):
        channel.each_target(claimed(1, 2, 3, 4), report, handle)
    assert outcomes == [Outcome(1, Result.SENT),
                        Outcome(2, Result.FAILED, "cannot prepare this target: UnicodeError: label too long"),
                        Outcome(4, Result.SENT)]
    assert [r.getMessage() for r in caplog.records] == ["private: cannot prepare tro-01-001-2030 for 't2'"]


def test_send_returns_the_receipts_of_the_reporter():
    channel = Private(FixedClock(NOW), behaviour=lambda rows, report: seen.append(report(Outcome(rows[0].id,
                                                                                                Result.SENT))))
    seen: list = []
    channel.send(job(), "r", claimed(1), lambda outcome: RECORDED)
    assert seen == [RECORDED]


# -- variants and due times ---------------------------------------------------------------------------------------------
def test_variant_of_a_private_channel_is_embargoed_until_the_lift():
    channel = Private(FixedClock(NOW))
    assert channel.variant(job(), NOW) is EMBARGOED is Variant.EMBARGOED
    assert channel.variant(job(), EMBARGO - timedelta(microseconds=1)) is EMBARGOED
    assert channel.variant(job(), EMBARGO) is RELEASED is Variant.RELEASED
    assert channel.variant(job(embargo=None), NOW) is RELEASED


def test_variant_of_a_public_channel_is_always_released():
    assert Plain(FixedClock(NOW)).variant(job(), NOW) is RELEASED


def test_due_at():
    assert Plain.due_at(EMBARGO, NOW) == EMBARGO
    assert Private.due_at(EMBARGO, NOW) == NOW
    assert Private.due_at(EMBARGO, None) == EMBARGO


# -- keys and tables ----------------------------------------------------------------------------------------------------
def test_idempotency_key_is_stable_per_revision_and_target():
    key = idempotency_key(job(), "newswire")
    assert key == hashlib.sha256(b"tro-01-001-2030/r2/newswire").hexdigest()[:32]
    assert idempotency_key(claimed(9)[0], "newswire") == key
    assert idempotency_key(job(), "other") != key


def test_tables_of_filters_by_network():
    channels = Table({"social": [{"network": "mastodon", "name": "m"}, {"network": "bluesky", "name": "b"},
                                 {"name": "none"}]}, "channels", Path("distributor.toml"))
    assert [t.data["name"] for t in tables_of(channels, "social")] == ["m", "b", "none"]
    assert [t.data["name"] for t in tables_of(channels, "social", "bluesky")] == ["b"]
    assert tables_of(channels, "wire") == []


def test_job_defaults():
    j = job()
    assert (j.first_created, j.version_created) == (None, None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        j.revision = 3  # type: ignore[misc]
