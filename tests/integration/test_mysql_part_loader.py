"""A parallel restore's part loader on MariaDB (core/dialects/mysql/parts.py): its chunks'
LOADs run on a thread while the next chunk is prepared, so what a load did (its rows, its
error) must still reach the part's commit or rollback; and its session keeps InnoDB's
unique checks on (MariaDB's bulk mode for empty tables is what they keep off)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from airflow_provider_zenmigrate.core.dialects.mysql import parts
from airflow_provider_zenmigrate.core.dialects.mysql.statements import LOAD_SQL_MODE
from airflow_provider_zenmigrate.core.dump.chunk import Chunk
from airflow_provider_zenmigrate.core.dump.model import ColumnSpec, TableSpec
from airflow_provider_zenmigrate.core.errors import DumpIntegrityError, ZenMigrateError
from airflow_provider_zenmigrate.core.utils import MigrationUtils
from tests.support.servers import database_url

TABLE = TableSpec(
    name="t",
    create_stmt="CREATE TABLE t (id BIGINT PRIMARY KEY, label VARCHAR(8) NOT NULL)",
    columns=(ColumnSpec("id", "native", "bigint"), ColumnSpec("label", "text", "varchar(8)")),
    key=("id",),
)


@pytest.fixture
def staging(tmp_path: Path) -> Iterator[MigrationUtils]:
    utils = MigrationUtils(url=database_url("mysql", tmp_path), connect_args={}, engine_args={})
    utils.create_database()
    with utils.engine.begin() as conn:
        conn.exec_driver_sql(TABLE.create_stmt)
        conn.exec_driver_sql(
            f"CREATE TABLE {parts.PROGRESS_TABLE} (part VARCHAR(255) PRIMARY KEY, "
            "digest CHAR(64) NOT NULL, `table` VARCHAR(255) NULL, `rows` BIGINT NOT NULL)"
        )
    yield utils
    utils.drop_database()
    utils.dispose()


def _settings(database: str) -> list[str]:
    return [
        f"USE `{database}`",
        "SET SESSION time_zone = '+00:00'",
        f"SET SESSION sql_mode = '{LOAD_SQL_MODE}'",
        "SET SESSION FOREIGN_KEY_CHECKS = 0, UNIQUE_CHECKS = 0",
    ]


def _chunk(first: int, count: int, label: str = "x") -> Chunk:
    rows = [{"id": i, "label": label} for i in range(first, first + count)]
    return Chunk(rows, ["id", "label"])


def _count(utils: MigrationUtils, sql: str) -> int:
    with utils.engine.connect() as conn:
        return int(conn.exec_driver_sql(sql).scalar() or 0)


def test_chunks_load_behind_and_commit_with_their_rows(staging: MigrationUtils) -> None:
    database = str(staging.url.database)
    with parts.part_loader(staging.engine, database, _settings(database)) as loader:
        checks = loader.session.query("SELECT @@unique_checks, @@foreign_key_checks")[0]
        assert tuple(int(v) for v in checks) == (1, 0)
        loader.begin()
        for n in range(5):
            loader.load(TABLE, _chunk(1 + n * 100, 100))
        loader.commit("part-00001.jsonl", "d" * 64, "t", 500)
        # A part whose rows the server did not all load is refused, and rolled back.
        loader.begin()
        loader.load(TABLE, _chunk(1001, 10))
        with pytest.raises(DumpIntegrityError, match="loaded 10 rows"):
            loader.commit("part-00002.jsonl", "e" * 64, "t", 11)
        loader.rollback()
    assert _count(staging, "SELECT COUNT(*) FROM t") == 500
    assert _count(staging, "SELECT SUM(id) FROM t") == sum(range(1, 501))
    assert _count(staging, f"SELECT COUNT(*) FROM {parts.PROGRESS_TABLE}") == 1


def test_a_failed_chunk_fails_its_part_and_leaves_nothing(staging: MigrationUtils) -> None:
    database = str(staging.url.database)
    with parts.part_loader(staging.engine, database, _settings(database)) as loader:
        loader.begin()
        loader.load(TABLE, _chunk(1, 100))
        loader.load(TABLE, _chunk(101, 100, "too long for varchar(8)"))  # loads behind
        with pytest.raises(ZenMigrateError, match="did not load a row as it is"):
            for n in range(2, 50):  # the failed load's error comes with a later call
                loader.load(TABLE, _chunk(1 + n * 100, 100))
            loader.commit("part-00001.jsonl", "d" * 64, "t", 5000)
        loader.rollback()
        # The connection goes on: the part loads again, whole.
        loader.begin()
        loader.load(TABLE, _chunk(1, 100))
        loader.commit("part-00001.jsonl", "d" * 64, "t", 100)
    assert _count(staging, "SELECT COUNT(*) FROM t") == 100
    assert _count(staging, f"SELECT COUNT(*) FROM {parts.PROGRESS_TABLE}") == 1
