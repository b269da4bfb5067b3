"""A parallel backup or restore asked for more workers than the server would accept
connections for runs fewer, says so, and still gives the exact database (an account whose
connection limit is small stands in for a busy server)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy
from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.pool import NullPool

import airflow_provider_zenmigrate.core.parts.backup as parts_backup
from airflow_provider_zenmigrate.core.utils import MigrationUtils
from tests.support.servers import database_url, server_url

ROWS = 20_000


def _admin(dialect: str, statements: list[str]) -> None:
    engine = sqlalchemy.create_engine(
        server_url(dialect), poolclass=NullPool, isolation_level="AUTOCOMMIT"
    )
    try:
        with engine.connect() as conn:
            for statement in statements:
                conn.execute(text(statement))
    finally:
        engine.dispose()


@pytest.fixture(params=["mysql", "postgresql"])
def limited(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, URL, URL]]:
    """(dialect, source URL, target URL), both as an account allowed 5 connections."""
    dialect = str(request.param)
    source = database_url(dialect, tmp_path)
    target = database_url(dialect, tmp_path)
    user = f"zmconn_{uuid.uuid4().hex[:8]}"
    if dialect == "mysql":
        setup = [
            f"CREATE DATABASE {source.database}",
            f"CREATE DATABASE {target.database}",
            f"CREATE USER '{user}'@'%' IDENTIFIED BY 'pw' WITH MAX_USER_CONNECTIONS 5",
            f"GRANT ALL ON *.* TO '{user}'@'%'",
        ]
        teardown = [
            f"DROP DATABASE IF EXISTS {source.database}",
            f"DROP DATABASE IF EXISTS {target.database}",
            f"DROP USER IF EXISTS '{user}'@'%'",
        ]
    else:
        setup = [
            f"CREATE ROLE {user} LOGIN SUPERUSER PASSWORD 'pw' CONNECTION LIMIT 5",
            f"CREATE DATABASE {source.database} OWNER {user}",
            f"CREATE DATABASE {target.database} OWNER {user}",
        ]
        teardown = [
            f"DROP DATABASE IF EXISTS {source.database} WITH (FORCE)",
            f"DROP DATABASE IF EXISTS {target.database} WITH (FORCE)",
            f"DROP ROLE IF EXISTS {user}",
        ]
    _admin(dialect, setup)
    source = source._replace(username=user, password="pw")
    target = target._replace(username=user, password="pw")
    engine = sqlalchemy.create_engine(source, poolclass=NullPool)
    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, v VARCHAR(40))"))
            series = (
                f"SELECT seq, CONCAT('v', seq) FROM seq_1_to_{ROWS}"
                if dialect == "mysql"
                else f"SELECT g, 'v' || g FROM generate_series(1, {ROWS}) g"
            )
            conn.execute(text(f"INSERT INTO t {series}"))
            conn.execute(text("ANALYZE TABLE t" if dialect == "mysql" else "ANALYZE t"))
    finally:
        engine.dispose()
    try:
        yield dialect, source, target
    finally:
        _admin(dialect, teardown)


def _rows(url: URL) -> list[tuple[object, ...]]:
    engine = sqlalchemy.create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text("SELECT id, v FROM t ORDER BY id"))]
    finally:
        engine.dispose()


def test_more_jobs_than_connections_fall_back_and_say_so(
    limited: tuple[str, URL, URL],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    dialect, source, target = limited
    monkeypatch.setattr(parts_backup, "PART_BYTES", 64 * 1024)  # several parts
    dump = str(tmp_path / "parts.zst")
    caplog.set_level(logging.WARNING, logger="airflow_provider_zenmigrate")
    with MigrationUtils(url=source, connect_args={}, engine_args={}) as mu:
        result = mu.backup_database_to_file(dump, jobs=8)
    assert result.extra["parts"] > 2
    assert 1 <= result.extra["jobs"] < 8
    said = [r.getMessage() for r in caplog.records if "worker process(es), not 8" in r.getMessage()]
    assert said and "accepts only" in said[0]
    caplog.clear()
    with MigrationUtils(url=target, connect_args={}, engine_args={}) as mu:
        summary = mu.restore_database_from_file(dump, jobs=8)
    assert summary.rows == ROWS
    if dialect == "mysql":  # PostgreSQL loads parts in its one transaction: no workers
        assert any("not 8" in r.getMessage() for r in caplog.records)
    assert _rows(target) == _rows(source)
