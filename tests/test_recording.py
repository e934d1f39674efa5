"""The recorder: outcomes committed as they arrive, in groups, on a real database."""

from __future__ import annotations

import threading
from contextlib import contextmanager
from datetime import timedelta

import pytest
from sqlalchemy import select

from distributor.outcomes import Outcome, Result
from distributor.recording import CHECKPOINT_PAGES, Recorder
from distributor.store.schema import attempts, deliveries
from tests.test_rules_deliveries import NOW, POLICY, claim, planned  # noqa: F401 - planned is a fixture


class Ticking:
    """A clock a second further on at each reading: each commit gets an instant of its own."""

    def __init__(self):
        self.at = NOW

    def now(self):
        self.at += timedelta(seconds=1)
        return self.at


def committed_at(engine) -> dict[int, object]:
    with engine.connect() as conn:
        return dict(conn.execute(select(attempts.c.delivery_id, attempts.c.at)).all())


@contextmanager
def recording(engine, lanes: int, linger: float):
    """The claimed rows, and the ``report`` of a running recorder."""
    with engine.begin() as conn:
        batch = claim(conn)
    with Recorder(engine, POLICY, Ticking(), "w1", lanes=lanes, linger=linger) as recorder:
        yield batch.rows, recorder.reporter(batch, threading.Event())


def test_with_several_lanes_one_commit_serves_the_outcomes_of_as_many_lanes(planned):  # noqa: F811
    with recording(planned, lanes=2, linger=30) as ((a, b, _), report):
        first = report(Outcome(a.id, Result.SENT))
        assert not first.wait(timeout=0.2)  # waiting for the other lane
        second = report(Outcome(b.id, Result.SENT))
        # two lanes, two outcomes: committed at once, not at the end of the linger
        assert first.wait(timeout=10) and second.wait(timeout=10)
    at = committed_at(planned)
    assert at[a.id] == at[b.id]


def test_with_one_lane_each_outcome_is_committed_without_waiting(planned):  # noqa: F811
    with recording(planned, lanes=1, linger=30) as ((a, b, _), report):
        assert report(Outcome(a.id, Result.SENT)).wait(timeout=10)
        assert report(Outcome(b.id, Result.SENT)).wait(timeout=10)
    at = committed_at(planned)
    assert at[a.id] < at[b.id]
    with planned.connect() as conn:
        assert conn.execute(select(deliveries.c.status).where(deliveries.c.id == b.id)).scalar_one() == "sent"


def test_a_lone_outcome_is_committed_once_the_linger_is_over(planned):  # noqa: F811
    with recording(planned, lanes=4, linger=0.05) as ((a, _, _), report):
        receipt = report(Outcome(a.id, Result.SENT))
        assert receipt.wait(timeout=10)
    assert a.id in committed_at(planned)



def test_on_sqlite_the_recorder_leaves_checkpoints_to_other_commits_and_its_setting_to_itself(planned):  # noqa: F811
    if planned.dialect.name != "sqlite":
        pytest.skip("SQLite's WAL only")

    def checkpoint_pages(conn) -> int:
        return conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar_one()

    with planned.connect() as pooled:
        default = checkpoint_pages(pooled)
    with planned.begin() as conn:
        batch = claim(conn)
    with Recorder(planned, POLICY, Ticking(), "w1") as recorder:
        assert recorder.reporter(batch, threading.Event())(Outcome(batch.rows[0].id, Result.SENT)).wait(timeout=10)
        assert recorder._conn is not None
        assert checkpoint_pages(recorder._conn) == CHECKPOINT_PAGES > default
    assert batch.rows[0].id in committed_at(planned)
    with planned.connect() as pooled:  # the recorder's connection was its own
        assert checkpoint_pages(pooled) == default
