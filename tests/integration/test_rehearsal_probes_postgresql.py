"""PostgreSQLProbe on a real PostgreSQL database: rewrites seen through file nodes, the locks a
transaction holds, and the locks another session holds, sampled by the watcher."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from airflow_provider_zenmigrate.core.rehearsal.probes import probe_for
from airflow_provider_zenmigrate.core.rehearsal.probes.base import rewritten, strongest
from airflow_provider_zenmigrate.core.rehearsal.probes.postgresql import (
    LOCK_MODES,
    PostgreSQLProbe,
    lock_seen,
)
from airflow_provider_zenmigrate.core.utils import MigrationUtils
from tests.support.servers import database_url


@pytest.fixture
def pg(tmp_path: Path) -> Iterator[MigrationUtils]:
    """A fresh PostgreSQL database with ``t`` (an int column, a primary key, 1000 rows)."""
    mu = MigrationUtils(url=database_url("postgresql", tmp_path), connect_args={}, engine_args={})
    mu.create_database()
    try:
        with mu.engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE t (id int PRIMARY KEY, c int NOT NULL)")
            conn.exec_driver_sql("CREATE INDEX ix_t_c ON t (c)")
            conn.exec_driver_sql("INSERT INTO t SELECT g, g FROM generate_series(1, 1000) g")
            conn.exec_driver_sql("CREATE TABLE other (id int PRIMARY KEY)")
        yield mu
    finally:
        mu.dispose()
        mu.drop_database()


def _identities(probe: PostgreSQLProbe, mu: MigrationUtils) -> dict[str, object]:
    with mu.engine.connect() as conn:
        return probe.table_identities(conn)


def test_probe_for_postgresql_is_this_probe() -> None:
    probe = probe_for("postgresql")
    assert isinstance(probe, PostgreSQLProbe)
    assert "10 ms" in probe.observability and "file node" in probe.observability


def test_identities_cover_tables_and_indexes_and_skip_the_catalog(pg: MigrationUtils) -> None:
    names = set(_identities(PostgreSQLProbe(), pg))
    assert {"public.t", "public.t_pkey (index)", "public.ix_t_c (index)", "public.other"} <= names
    assert not any(n.startswith(("pg_catalog.", "information_schema.", "pg_toast")) for n in names)


def test_a_column_type_change_rewrites_the_table_and_its_indexes(pg: MigrationUtils) -> None:
    probe = PostgreSQLProbe()
    before = _identities(probe, pg)
    with pg.engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE t ALTER COLUMN c TYPE bigint")
    after = _identities(probe, pg)
    assert rewritten(before, after) == [
        "public.ix_t_c (index)",
        "public.t",
        "public.t_pkey (index)",
    ]


def test_adding_a_nullable_column_rewrites_nothing(pg: MigrationUtils) -> None:
    probe = PostgreSQLProbe()
    before = _identities(probe, pg)
    with pg.engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE t ADD COLUMN x int")
        conn.exec_driver_sql("ALTER TABLE t ADD COLUMN y int NOT NULL DEFAULT 7")  # PG 11+
    after = _identities(probe, pg)
    assert rewritten(before, after) == []
    # a volatile default does rewrite: the probe measures, it does not guess
    with pg.engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE t ADD COLUMN z float8 NOT NULL DEFAULT random()")
    assert "public.t" in rewritten(after, _identities(probe, pg))


def test_locks_held_inside_the_transaction_show_access_exclusive(pg: MigrationUtils) -> None:
    probe = PostgreSQLProbe()
    _identities(probe, pg)  # what existed before the "revision"
    with pg.engine.connect() as conn:
        conn.exec_driver_sql("ALTER TABLE t ALTER COLUMN c TYPE bigint")
        conn.exec_driver_sql("CREATE TABLE brand_new (id int)")
        conn.exec_driver_sql("SELECT count(*) FROM other").scalar()
        locks = probe.locks_held(conn)
        conn.rollback()
    by_table = {(lock.table, lock.mode) for lock in locks}
    assert ("public.t", "AccessExclusiveLock") in by_table
    assert ("public.other", "AccessShareLock") in by_table
    assert not any(lock.table.startswith("pg_catalog.") for lock in locks)
    # a table the revision created is invisible to everyone else: its lock is left out
    assert not any("brand_new" in lock.table for lock in locks)
    top = strongest(locks)
    assert top is not None
    assert (top.table, top.mode, top.blocks, top.strength) == (
        "public.t",
        "AccessExclusiveLock",
        "reads and writes",
        8,
    )


def test_lock_grades_follow_the_conflict_table() -> None:
    assert [lock_seen("x", m).strength for m in LOCK_MODES] == list(range(1, 9))
    grades = {m: lock_seen("x", m).blocks for m in LOCK_MODES}
    assert grades["AccessExclusiveLock"] == "reads and writes"
    assert grades["ShareLock"] == "writes"  # CREATE INDEX
    assert grades["ShareRowExclusiveLock"] == "writes"  # ADD FOREIGN KEY, CREATE TRIGGER
    assert grades["ShareUpdateExclusiveLock"] == "nothing"  # CREATE INDEX CONCURRENTLY
    assert grades["RowExclusiveLock"] == "nothing"


def test_watching_sees_a_lock_another_session_holds_for_200_ms(pg: MigrationUtils) -> None:
    probe = PostgreSQLProbe()
    holding = threading.Event()

    def hold() -> None:
        with pg.engine.connect() as conn:
            conn.exec_driver_sql("LOCK TABLE other IN SHARE ROW EXCLUSIVE MODE")
            holding.set()
            time.sleep(0.2)
            conn.rollback()

    with probe.watching(pg.engine) as seen:
        worker = threading.Thread(target=hold)
        worker.start()
        assert holding.wait(5)
        worker.join()
        time.sleep(0.05)
    snapshot = list(seen)
    assert ("public.other", "ShareRowExclusiveLock") in {(x.table, x.mode) for x in snapshot}
    lock = next(x for x in snapshot if x.mode == "ShareRowExclusiveLock")
    assert lock.blocks == "writes" and lock.strength == 6
    # the watcher's thread has stopped: the list no longer grows
    with pg.engine.connect() as conn:
        conn.exec_driver_sql("LOCK TABLE t IN ACCESS EXCLUSIVE MODE")
        time.sleep(0.1)
        conn.rollback()
    assert seen == snapshot
    assert not [t for t in threading.enumerate() if t.name == "zenmigrate-pg-locks"]


def test_watching_never_raises_into_the_block(tmp_path: Path) -> None:
    gone = MigrationUtils(url=database_url("postgresql", tmp_path), connect_args={}, engine_args={})
    try:
        with PostgreSQLProbe().watching(gone.engine) as seen:  # the database does not exist
            ran = True
        assert ran and seen == []
    finally:
        gone.dispose()
