"""MySQLProbe on a real MariaDB database: a rebuild changes a table's InnoDB id and an instant
change does not; partitions fold into their table; the watcher sees a long ALTER that another
connection runs."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from airflow_provider_zenmigrate.core.rehearsal.probes import probe_for
from airflow_provider_zenmigrate.core.rehearsal.probes.base import rewritten, strongest
from airflow_provider_zenmigrate.core.rehearsal.probes.mysql import (
    MySQLProbe,
    inferred_lock,
    lock_seen,
)
from airflow_provider_zenmigrate.core.sql_lexer import LexerRules
from airflow_provider_zenmigrate.core.utils import MigrationUtils
from tests.support.servers import database_url


@pytest.fixture
def maria(tmp_path: Path) -> Iterator[MigrationUtils]:
    """A fresh MariaDB database with ``t`` (1000 rows), ``other`` and a partitioned ``parts``."""
    mu = MigrationUtils(url=database_url("mysql", tmp_path), connect_args={}, engine_args={})
    mu.create_database()
    try:
        with mu.engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE t (id INT PRIMARY KEY, c INT NOT NULL)")
            conn.exec_driver_sql("INSERT INTO t SELECT seq, seq FROM seq_1_to_1000")
            conn.exec_driver_sql("CREATE TABLE other (id INT PRIMARY KEY)")
            conn.exec_driver_sql(
                "CREATE TABLE parts (id INT PRIMARY KEY) PARTITION BY RANGE (id) "
                "(PARTITION p0 VALUES LESS THAN (100), PARTITION p1 VALUES LESS THAN (200))"
            )
        yield mu
    finally:
        mu.dispose()
        mu.drop_database()


def _identities(mu: MigrationUtils) -> dict[str, object]:
    with mu.engine.connect() as conn:
        return MySQLProbe().table_identities(conn)


def _run(mu: MigrationUtils, *statements: str) -> None:
    with mu.engine.begin() as conn:
        for statement in statements:
            conn.exec_driver_sql(statement)


def test_probe_for_mysql_and_mariadb_is_this_probe() -> None:
    assert isinstance(probe_for("mysql"), MySQLProbe)
    assert isinstance(probe_for("mariadb"), MySQLProbe)
    assert "TABLE_ID" in MySQLProbe.observability and "PROCESSLIST" in MySQLProbe.observability


def test_identities_name_each_table_once_partitions_folded(maria: MigrationUtils) -> None:
    assert set(_identities(maria)) == {"t", "other", "parts"}


@pytest.mark.parametrize(
    "statement",
    [
        "ALTER TABLE t MODIFY c BIGINT NOT NULL",
        "ALTER TABLE t FORCE",
        "ALTER TABLE t DROP PRIMARY KEY, ADD PRIMARY KEY (id, c)",
        "ALTER TABLE t MODIFY c INT NULL, ALGORITHM=COPY",
    ],
)
def test_a_rebuild_changes_the_identity_of_that_table_only(
    maria: MigrationUtils, statement: str
) -> None:
    before = _identities(maria)
    _run(maria, statement)
    assert rewritten(before, _identities(maria)) == ["t"]


def test_instant_and_in_place_changes_rebuild_nothing(maria: MigrationUtils) -> None:
    before = _identities(maria)
    _run(
        maria,
        "ALTER TABLE t ADD COLUMN x INT",  # instant (10.3+)
        "ALTER TABLE t ADD COLUMN y INT NOT NULL DEFAULT 7",  # instant as well
        "CREATE INDEX ix_t_c ON t (c)",  # in place: builds the index, keeps the table
        "ALTER TABLE t DROP COLUMN x",  # instant (10.4+)
        "ALTER TABLE t RENAME COLUMN y TO z",
    )
    assert rewritten(before, _identities(maria)) == []


def test_a_partition_added_is_not_a_rebuild_but_a_rebuilt_partitioned_table_is(
    maria: MigrationUtils,
) -> None:
    before = _identities(maria)
    _run(maria, "ALTER TABLE parts ADD PARTITION (PARTITION p2 VALUES LESS THAN (300))")
    middle = _identities(maria)
    assert rewritten(before, middle) == []
    _run(maria, "ALTER TABLE parts FORCE")
    assert rewritten(middle, _identities(maria)) == ["parts"]


def test_a_non_innodb_table_falls_back_to_its_creation_time(maria: MigrationUtils) -> None:
    _run(maria, "CREATE TABLE legacy (id INT) ENGINE=Aria")
    probe = MySQLProbe()
    with maria.engine.connect() as conn:
        identities = probe.table_identities(conn)
    assert identities["legacy"][0] == "Aria"
    assert "legacy" in probe.observability and "CREATE_TIME" in probe.observability


def test_locks_held_is_empty_without_a_lock_table(maria: MigrationUtils) -> None:
    # performance_schema is off here and METADATA_LOCK_INFO is not loaded: nothing to read,
    # and the probe says so rather than inventing locks.
    with maria.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE t SET c = c + 1 WHERE id = 1")
        assert MySQLProbe().locks_held(conn) == []


def test_watching_sees_a_long_copy_alter_run_by_another_connection(
    maria: MigrationUtils,
) -> None:
    _run(
        maria,
        "CREATE TABLE big (id INT PRIMARY KEY, c INT, s VARCHAR(60))",
        "INSERT INTO big SELECT seq, seq, CONCAT('row ', seq, REPEAT('x', 40)) "
        "FROM seq_1_to_200000",
    )
    probe = MySQLProbe()
    errors: list[BaseException] = []

    def alter() -> None:
        try:
            _run(maria, "ALTER TABLE big ALGORITHM=COPY, MODIFY c BIGINT")
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    with probe.watching(maria.engine) as seen:
        worker = threading.Thread(target=alter)
        worker.start()
        worker.join(timeout=120)
    assert not worker.is_alive() and errors == []
    assert "inferred" in probe.observability and "PROCESSLIST" in probe.observability
    tables = {lock.table for lock in seen}
    assert tables == {"big"}
    modes = {lock.mode.split(" ")[0] for lock in seen}
    assert "MDL_SHARED_NO_WRITE" in modes
    best = strongest(seen)
    assert best is not None and best.blocks in ("writes", "reads and writes")
    assert best.strength >= 3


def test_watching_sees_nothing_when_nothing_runs(maria: MigrationUtils) -> None:
    with MySQLProbe().watching(maria.engine) as seen:
        _run(maria, "SELECT 1")  # its own engine, but far shorter than a sample
    assert seen == []


@pytest.mark.parametrize(
    ("statement", "state", "mode", "blocks"),
    [
        ("ALTER TABLE `big` MODIFY c BIGINT", "copy to tmp table", "SHARED_NO_WRITE", "writes"),
        ("ALTER TABLE big FORCE", "Rename result table", "EXCLUSIVE", "reads and writes"),
        ("CREATE INDEX ix ON big (c)", "altering table", "SHARED_UPGRADABLE", "nothing"),
        ("ALTER TABLE big ADD INDEX i (c), LOCK=SHARED", "altering table", "SHARED_NO_WRITE",
         "writes"),
        ("CREATE FULLTEXT INDEX f ON big (s)", "altering table", "SHARED_NO_WRITE", "writes"),
        ("UPDATE big SET c = 1", "Updating", "SHARED_WRITE", "nothing"),
    ],
)  # fmt: skip
def test_inferred_locks_follow_the_documented_phases(
    statement: str, state: str, mode: str, blocks: str
) -> None:
    lock = inferred_lock(statement, state, LexerRules.mysql(""))
    assert lock is not None
    assert (lock.table, lock.mode.split(" ")[0], lock.blocks) == ("big", f"MDL_{mode}", blocks)
    assert state in lock.mode  # the mode says it was inferred, and from what


def test_a_session_waiting_for_a_lock_is_not_a_lock_held() -> None:
    rules = LexerRules.mysql("")
    assert inferred_lock("ALTER TABLE big FORCE", "Waiting for table metadata lock", rules) is None
    assert (
        inferred_lock("ALTER TABLE big MODIFY s 'unterminated", "copy to tmp table", rules) is None
    )


@pytest.mark.parametrize(
    ("lock_type", "blocks", "strength"),
    [
        ("SHARED_READ", "nothing", 1),  # performance_schema's spelling
        ("MDL_SHARED_WRITE", "nothing", 1),  # METADATA_LOCK_INFO's spelling
        ("SHARED_UPGRADABLE", "nothing", 2),
        ("SHARED_NO_WRITE", "writes", 3),
        ("MDL_SHARED_NO_READ_WRITE", "reads and writes", 4),
        ("EXCLUSIVE", "reads and writes", 5),
    ],
)
def test_observed_lock_types_are_graded_by_what_they_block(
    lock_type: str, blocks: str, strength: int
) -> None:
    # Not reachable on this server (performance_schema off, no METADATA_LOCK_INFO plugin):
    # the mapping is checked on both spellings the servers use.
    lock = lock_seen("t", lock_type)
    assert lock.mode == "MDL_" + lock_type.removeprefix("MDL_")
    assert (lock.blocks, lock.strength) == (blocks, strength)
