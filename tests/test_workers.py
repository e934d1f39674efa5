"""Several workers on one database: every recipient is delivered exactly once."""

import threading
from collections import Counter

from distributor.dispatch import Dispatcher
from tests.conftest import soon

SID = "tro-01-001-2026"


def test_two_workers_share_the_work_without_overlap(make_system, smtp_sink, tmp_path, statement_file):
    system = make_system(transport="smtp", smtp_port=smtp_sink.port, batch_size=7)
    csv = tmp_path / "r.csv"
    csv.write_text("email,name,embargo_ok\n" + "".join(f"j{i}@paper{i % 5}.example.com,J {i},yes\n" for i in range(120)))
    system.cli("recipients", "import", csv, "--list", "embargo")
    system.cli("import", statement_file())
    system.cli("approve", SID, "--by", "Maya")
    system.cli("schedule", SID, "--embargo", soon())
    other = make_system(transport="smtp", smtp_port=smtp_sink.port, batch_size=7)  # same database, own engine
    workers = [Dispatcher(s.context, s.channels, worker=f"worker-{i}") for i, s in enumerate((system, other))]
    for worker in workers:
        worker.open()

    barrier = threading.Barrier(2)
    errors = []

    def work(dispatcher):
        try:
            barrier.wait()
            dispatcher.advance()
            dispatcher.deliver("email")
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    for worker in workers:
        worker.close()
    assert errors == []
    received = Counter(m.rcpt_tos[0] for m in smtp_sink.messages)
    assert len(received) == 120 and set(received.values()) == {1}
    import json
    rows = json.loads(system.cli("log", "--format", "json").out)
    assert len(rows) == 120 and {r["status"] for r in rows} == {"sent"}
    from sqlalchemy import func, select

    from distributor.store.schema import attempts
    with system.engine.connect() as conn:
        per_worker = dict(conn.execute(select(attempts.c.worker, func.count()).group_by(attempts.c.worker)).all())
    assert sum(per_worker.values()) == 120 and set(per_worker) <= {"worker-0", "worker-1"}
    audit = [e["action"] for e in json.loads(system.cli("audit", SID, "--format", "json").out)]
    assert audit.count("planned") == 1 and audit.count("delivered") == 1


def test_the_embargo_is_also_judged_by_postgresqls_clock_and_sqlite_shares_the_workers(engine):
    from distributor.clock import utcnow
    from distributor.workers import DatabaseClock, database_clock
    clock = database_clock(engine)
    if engine.dialect.name == "sqlite":
        assert clock is None
    else:
        assert isinstance(clock, DatabaseClock)
    now = DatabaseClock(engine).now()
    assert now.tzinfo is not None and abs((now - utcnow()).total_seconds()) < 5
