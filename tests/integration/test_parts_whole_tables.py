"""A table read whole, on one session, is read whole: by a worker of a parallel backup (a
table too small to cut, larger than PostgreSQL's block ranges) and by a single-stream
backup that gets no second session. The bench's 50 tables of 100,000 rows once lost all
but their first block range this way."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy
from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.pool import NullPool

from airflow_provider_zenmigrate.core.dialects.postgresql.reader import (
    RANGE_BLOCKS,
    PostgreSQLBackupReader,
)
from airflow_provider_zenmigrate.core.utils import MigrationUtils
from tests.support.identity import fingerprint
from tests.support.servers import database_url

ROWS = 60_000  # about 8 MB: several block ranges of RANGE_BLOCKS pages


@pytest.fixture
def pg_source(tmp_path: Path) -> Iterator[URL]:
    url = database_url("postgresql", tmp_path)
    with MigrationUtils(url=url, connect_args={}, engine_args={}) as mu:
        mu.create_database()
        engine = sqlalchemy.create_engine(url, poolclass=NullPool)
        try:
            with engine.begin() as conn:
                for name in ("a", "b"):
                    conn.execute(text(f"CREATE TABLE {name} (id int PRIMARY KEY, v text)"))
                    conn.execute(
                        text(
                            f"INSERT INTO {name} SELECT g, repeat(md5(g::text), 3) "
                            f"FROM generate_series(1, {ROWS}) g"
                        )
                    )
                blocks = conn.execute(text("SELECT pg_relation_size('a') / 8192")).scalar()
            assert int(blocks or 0) > 3 * RANGE_BLOCKS  # the table has several block ranges
        finally:
            engine.dispose()
        yield url
        mu.drop_database()


def _restored(source: URL, dump: str, tmp_path: Path, jobs: int) -> dict[str, object]:
    target = database_url("postgresql", tmp_path)
    with MigrationUtils(url=target, connect_args={}, engine_args={}) as mu:
        summary = mu.restore_database_from_file(dump, jobs=jobs)
        try:
            assert summary.tables == {"a": ROWS, "b": ROWS}
            return fingerprint(target)
        finally:
            mu.drop_database()


def test_a_worker_reads_a_whole_table_part_whole(pg_source: URL, tmp_path: Path) -> None:
    dump = str(tmp_path / "parts")
    with MigrationUtils(url=pg_source, connect_args={}, engine_args={}) as mu:
        result = mu.backup_database_to_file(dump, jobs=2)
    assert result.extra["jobs"] == 2 and result.extra["parts"] == 3  # schema + one per table
    assert result.tables == {"a": ROWS, "b": ROWS}
    assert _restored(pg_source, dump, tmp_path, jobs=2) == fingerprint(pg_source)


def test_one_stream_without_a_second_session_reads_every_range(
    pg_source: URL, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(PostgreSQLBackupReader, "_second_connection", lambda self: None)
    dump = str(tmp_path / "one.jsonl")
    with MigrationUtils(url=pg_source, connect_args={}, engine_args={}) as mu:
        result = mu.backup_database_to_file(dump)
    assert result.tables == {"a": ROWS, "b": ROWS}
    assert _restored(pg_source, dump, tmp_path, jobs=1) == fingerprint(pg_source)
