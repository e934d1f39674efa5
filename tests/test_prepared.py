"""Statements compiled once and run through the driver: each row's parameters processed as SQLAlchemy would."""

from __future__ import annotations

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, TypeDecorator, bindparam, create_engine, insert, select

from distributor.store.prepared import Prepared


class Shouted(TypeDecorator):
    """Stored upper-cased; counts its calls."""

    impl = String
    cache_ok = True
    calls = 0

    def process_bind_param(self, value, dialect):
        Shouted.calls += 1
        return value.upper()


metadata = MetaData()
labels = Table("labels", metadata, Column("id", Integer, primary_key=True), Column("label", Shouted()),
               Column("note", String))
INSERT = Prepared(insert(labels).values(id=bindparam("id"), label=bindparam("label"), note=bindparam("note")))


def test_each_value_is_processed_as_its_type_says_and_a_repeated_one_only_once(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'p.db'}")
    metadata.create_all(engine)
    Shouted.calls = 0
    with engine.begin() as conn:  # a chunk of rows sharing one value, as a plan's rows share their due time
        INSERT.execute_many(conn, [{"id": i, "label": label, "note": None if i % 2 else "n"}
                                   for i, label in enumerate(["due", "due", "other", "due"])])
    with engine.connect() as conn:
        assert conn.execute(select(labels.c.label, labels.c.note).order_by(labels.c.id)).all() == [
            ("DUE", "n"), ("DUE", None), ("OTHER", "n"), ("DUE", None)]
    assert Shouted.calls == 2
    engine.dispose()


def test_an_error_of_the_driver_is_raised_as_sqlalchemys(tmp_path):
    from sqlalchemy.exc import IntegrityError
    engine = create_engine(f"sqlite:///{tmp_path / 'p.db'}")
    metadata.create_all(engine)
    with engine.begin() as conn:
        INSERT.execute_many(conn, [{"id": 1, "label": "a", "note": None}])
    with pytest.raises(IntegrityError, match="UNIQUE"), engine.begin() as conn:
        INSERT.execute_many(conn, [{"id": 2, "label": "b", "note": None}, {"id": 1, "label": "c", "note": None}])
    with engine.connect() as conn:  # nothing of the failed transaction stayed
        assert conn.execute(select(labels.c.id)).scalars().all() == [1]
    engine.dispose()
