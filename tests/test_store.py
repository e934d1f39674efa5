"""The store on every configured database: aware UTC round trips and atomic claims."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import insert, select

from distributor import deliveries
from distributor.store.schema import deliveries as deliveries_table
from distributor.store.schema import statements, workers


def add_statement(conn, now, status="scheduled"):
    conn.execute(insert(statements).values(id="s1", status=status, revision=1, approved_revision=1, created_at=now,
                                           updated_at=now, embargo=now + timedelta(hours=1)))


def test_instants_read_back_aware_utc(engine):
    local = datetime(2026, 10, 25, 1, 30, tzinfo=ZoneInfo("Europe/London"), fold=1)  # the second 01:30, GMT
    with engine.begin() as conn:
        add_statement(conn, local)
    with engine.connect() as conn:
        created = conn.execute(select(statements.c.created_at)).scalar_one()
    assert created.tzinfo is not None and created.utcoffset() == timedelta(0)
    assert created == datetime(2026, 10, 25, 1, 30, tzinfo=UTC)


def test_naive_instants_are_refused(engine):
    with pytest.raises(Exception, match="naive datetime"):
        with engine.begin() as conn:
            add_statement(conn, datetime(2026, 1, 1))


def add_workers(conn, now, *names, seen_ago: float = 0):
    conn.execute(insert(workers), [{"id": n, "host": "h", "pid": 1, "started_at": now,
                                    "last_seen": now - timedelta(seconds=seen_ago)} for n in names])


def claim(conn, now, worker, limit=100, lease=60):
    return deliveries.claim(conn, "email", now, worker, limit, lease, cutoff=now - timedelta(seconds=15))


def test_claims_never_overlap(engine):
    now = datetime.now(UTC)
    with engine.begin() as conn:
        add_statement(conn, now)
        add_workers(conn, now, "a", "b", "c")
        deliveries.plan(conn, "s1", 1, "email", (f"r{i}@x.example.com" for i in range(25)), now, now)
    with engine.begin() as conn:
        first = claim(conn, now, "a", 10)
    with engine.begin() as conn:
        second = claim(conn, now, "b")
    assert len(first.rows) == 10 and len(second.rows) == 15
    assert not {r.id for r in first.rows} & {r.id for r in second.rows}
    with engine.begin() as conn:
        assert claim(conn, now, "c").rows == []
        # past the lease, the rows are taken over
        assert len(claim(conn, now + timedelta(seconds=61), "c").rows) == 25


def test_rows_of_a_worker_whose_heartbeat_stopped_are_taken_over(engine):
    now = datetime.now(UTC)
    with engine.begin() as conn:
        add_statement(conn, now)
        add_workers(conn, now, "live", "taker")
        add_workers(conn, now, "dead", seen_ago=16)
        deliveries.plan(conn, "s1", 1, "email", (f"r{i}@x.example.com" for i in range(6)), now, now)
    with engine.begin() as conn:
        held = claim(conn, now, "live", 3, lease=3600)
        lost = claim(conn, now, "dead", 3, lease=3600)
    with engine.begin() as conn:
        taken = claim(conn, now, "taker")
    assert {r.id for r in taken.rows} == {r.id for r in lost.rows}  # within the lease, by the heartbeat alone
    with engine.connect() as conn:
        holders = dict(conn.execute(select(deliveries_table.c.id, deliveries_table.c.worker_id)).all())
    assert {holders[r.id] for r in held.rows} == {"live"} and {holders[r.id] for r in taken.rows} == {"taker"}


def test_release_gives_back_unattempted_rows_at_once(engine):
    now = datetime.now(UTC)
    with engine.begin() as conn:
        add_statement(conn, now)
        add_workers(conn, now, "a", "b")
        deliveries.plan(conn, "s1", 1, "email", (f"r{i}@x.example.com" for i in range(4)), now, now)
    with engine.begin() as conn:
        batch = claim(conn, now, "a", lease=3600)
        assert deliveries.release(conn, batch, now) == 4
    with engine.begin() as conn:
        assert len(claim(conn, now, "b").rows) == 4


def test_plan_is_once_per_revision_and_channel(engine):
    now = datetime.now(UTC)
    with engine.begin() as conn:
        add_statement(conn, now)
        assert deliveries.plan(conn, "s1", 1, "email", ["a@x.example.com", "a@x.example.com"], now, now) == 1
        assert deliveries.plan(conn, "s1", 1, "email", ["b@x.example.com"], now, now) is None
        assert conn.execute(select(deliveries_table.c.target)).scalars().all() == ["a@x.example.com"]


def test_unapproved_or_withdrawn_statements_are_never_claimed(engine):
    now = datetime.now(UTC)
    with engine.begin() as conn:
        add_statement(conn, now, status="withdrawn")
        deliveries.plan(conn, "s1", 1, "email", ["a@x.example.com"], now, now)
    with engine.begin() as conn:
        assert claim(conn, now, "a", 10).rows == []


def test_reads_do_not_wait_for_a_writer(engine):
    """A long write (a big plan, a batch being recorded) never holds up a reader such as `distributor log`."""
    import time

    from distributor.store import reading

    now = datetime.now(UTC)
    with engine.begin() as conn:
        add_statement(conn, now)
    with engine.begin() as writer:
        writer.execute(statements.update().values(updated_at=now + timedelta(seconds=1)))
        started = time.monotonic()
        with reading(engine) as reader:
            assert reader.execute(select(statements.c.id)).scalars().all() == ["s1"]
        assert time.monotonic() - started < 1.0


def test_sqlite_writers_in_one_process_take_turns_and_give_them_back_on_commit_and_rollback(tmp_path):
    import threading

    from distributor.store.engine import HOLDS_WRITER, connect, reading
    engine = connect(f"sqlite:///{tmp_path / 'turns.db'}")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
        assert conn.info[HOLDS_WRITER] is True
    with pytest.raises(RuntimeError):
        with engine.begin() as conn:
            conn.exec_driver_sql("INSERT INTO t VALUES (1)")
            raise RuntimeError("rolled back")
    with reading(engine) as conn:  # a reader takes no turn
        conn.exec_driver_sql("SELECT count(*) FROM t").scalar()
        assert HOLDS_WRITER not in conn.info
    written = threading.Event()

    def other_writer():
        with engine.begin() as conn:
            conn.exec_driver_sql("INSERT INTO t VALUES (2)")
        written.set()

    thread = threading.Thread(target=other_writer)
    thread.start()
    assert written.wait(10)  # the turns of the commit and of the rollback above were given back
    thread.join()
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT x FROM t").scalars().all() == [2]
    engine.dispose()
