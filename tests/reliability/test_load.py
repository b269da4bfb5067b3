"""Backups taken while four writers run: the restored copy is one consistent moment.

The writers keep three invariants across six tables (see :mod:`tests.reliability._load`):
money moved between accounts in three tables, every transfer in a ledger, items moved
between two tables. The backup is made to wait, between tables and inside the large
ones, until the writers have committed more transactions, so a backup that read each
table at its own moment would restore a bank whose books do not balance.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy
from sqlalchemy import text
from sqlalchemy.engine import URL

from airflow_provider_zenmigrate.core.utils import MigrationUtils
from tests.reliability._load import bank_engine, check_bank, create_bank, running_writers
from tests.support.servers import database_url

CHUNK_ROWS = 40  # 30 data records for the items, 4 per account table, more for the ledger
#: Transactions the writers must commit before each table is read, and every few records.
COMMITS_PER_TABLE = 8
COMMITS_EVERY_RECORDS = 6


@pytest.fixture
def target(dialect: str, tmp_path: Path) -> Iterator[MigrationUtils]:
    """A second, empty database to restore into."""
    (tmp_path / "target").mkdir()
    mu = MigrationUtils(
        url=database_url(dialect, tmp_path / "target"), connect_args={}, engine_args={}
    )
    mu.create_database()
    try:
        yield mu
    finally:
        mu.drop_database()
        mu.dispose()


def test_backup_under_four_writers_restores_a_consistent_bank(
    dialect: str, utils: MigrationUtils, target: MigrationUtils, tmp_path: Path
) -> None:
    engine = bank_engine(utils.url)
    try:
        create_bank(engine)
        utils.chunk_rows = CHUNK_ROWS
        dump = tmp_path / "bank.jsonl"
        window: dict[str, float] = {}
        kinds: list[str] = []
        with running_writers(engine) as writers:
            writers.wait_for(50)  # the ledger is not empty in the snapshot

            def on_record(record: dict[str, Any], _line: bytes) -> None:
                # Called before the engine reads on: the writers commit while it waits.
                kinds.append(record["kind"])
                window.setdefault("first", time.monotonic())
                if record["kind"] == "table":
                    writers.wait_for(COMMITS_PER_TABLE)
                elif record["kind"] == "data" and len(kinds) % COMMITS_EVERY_RECORDS == 0:
                    writers.wait_for(1)
                window["last"] = time.monotonic()

            result = utils.backup_database_to_file(str(dump), on_record=on_record)
            during = writers.committed_between(window["first"], window["last"])
        total_commits, retries = len(writers.commits), writers.retries
    finally:
        engine.dispose()

    assert kinds.count("table") == 6 and kinds.count("data") >= 42, kinds.count("data")
    # Not vacuous: the writers committed while the backup was reading the tables.
    assert during >= 6 * COMMITS_PER_TABLE, f"only {during} commits during the backup"
    final_ledger = check_bank(utils.url)  # the writers themselves keep the invariants

    target.restore_database_from_file(str(dump))
    restored_ledger = check_bank(target.url)
    assert restored_ledger == result.tables["ledger"]
    # An intermediate moment: after the first 50 commits, before the last ones.
    assert 0 < restored_ledger < final_ledger
    print(
        f"{dialect}: {during} commits during the backup ({total_commits} in all, "
        f"{retries} retried), snapshot has {restored_ledger} of {final_ledger} ledger rows"
    )

    # The restored ledger's id generator is past every restored id: the bank runs on.
    with target.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO ledger (src_table, src_id, dst_table, dst_id, amount, writer) "
                "VALUES ('acct_a', 0, 'acct_b', 0, 0, 9)"
            )
        )
        top = conn.execute(text("SELECT max(id), count(*) FROM ledger")).one()
    assert top[1] == restored_ledger + 1


def _journal_mode(url: URL) -> str:
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.connect() as conn:
            return str(conn.exec_driver_sql("PRAGMA journal_mode").scalar())
    finally:
        engine.dispose()


def test_sqlite_restore_keeps_wal_so_writers_can_commit_during_backups(tmp_path: Path) -> None:
    """A restore into a WAL database leaves it in WAL mode.

    Regression: the staging file was built without a journal and renamed over the
    target, so a restored database silently fell back to a rollback journal; from then
    on every backup's read transaction blocked every writer's commit.
    """
    url = URL.create("sqlite", database=str(tmp_path / "app.db"))
    with MigrationUtils(url=url, connect_args={}, engine_args={}) as mu:
        mu.create_database()
        with mu.engine.begin() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode = WAL").scalar() == "wal"
            conn.exec_driver_sql("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
            conn.exec_driver_sql("INSERT INTO t (id, v) VALUES (1, 'a'), (2, 'b')")
        dump = tmp_path / "app.jsonl"
        mu.backup_database_to_file(str(dump))
        mu.restore_database_from_file(str(dump))
        assert _journal_mode(url) == "wal"

        committed: list[int] = []

        def write_during_backup(record: dict[str, Any], _line: bytes) -> None:
            if record["kind"] == "data":
                # A writer that waits at most 0.2 s for the write lock, as a busy app would.
                with sqlite3.connect(tmp_path / "app.db", timeout=0.2) as writer:
                    writer.execute("INSERT INTO t (v) VALUES ('during')")
                committed.append(1)

        mu.backup_database_to_file(str(tmp_path / "again.jsonl"), on_record=write_during_backup)
    assert committed == [1]
    assert sorted(p.name for p in tmp_path.iterdir() if "zm-" in p.name) == []
