"""A parallel backup (``jobs=2``) taken while four writers move money: the parts, written by
two worker processes while the writers commit between them, restore one consistent moment
of the bank (see :mod:`tests.reliability._load`). Parts read at their own moments would
restore books that do not balance.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_zenmigrate.core.parts import backup as parts_backup
from airflow_provider_zenmigrate.core.utils import MigrationUtils
from tests.reliability._load import bank_engine, check_bank, create_bank, running_writers
from tests.reliability._outage import analyze, manifest_of, parts_per_table, rel_database

#: Tiny parts: the bank's account tables (16 KB on MariaDB) and item tables are cut too.
PART_BYTES = 4096
#: Transactions the writers must commit after each part the backup finished.
COMMITS_PER_PART = 2


@pytest.fixture
def bank(dialect: str, tmp_path: Path) -> Iterator[MigrationUtils]:
    with rel_database(dialect, tmp_path) as mu:
        yield mu


@pytest.fixture
def target(dialect: str, tmp_path: Path) -> Iterator[MigrationUtils]:
    with rel_database(dialect, tmp_path) as mu:
        yield mu


@pytest.mark.parametrize("dialect", ["mysql", "postgresql"])
def test_parallel_backup_under_four_writers_restores_a_consistent_bank(
    dialect: str,
    bank: MigrationUtils,
    target: MigrationUtils,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(parts_backup, "PART_BYTES", PART_BYTES)
    monkeypatch.setattr(parts_backup, "PART_SECONDS", 0.01)
    engine = bank_engine(bank.url)
    dump = tmp_path / "bank"
    window: dict[str, float] = {}
    parts_seen: list[str] = []
    try:
        create_bank(engine)
        with running_writers(engine) as writers:
            writers.wait_for(200)  # the ledger and the tables' bloat grow before the backup
            with engine.begin() as conn:
                analyze(conn)  # parts are sized from the server's statistics

            def on_record(record: dict[str, Any], _line: bytes) -> None:
                # Called in this process as each part is done, while no new part is handed
                # out: the writers commit between the parts the workers read.
                window.setdefault("first", time.monotonic())
                if record["kind"] == "data":
                    parts_seen.append(str(record["table"]))
                    writers.wait_for(COMMITS_PER_PART)
                window["last"] = time.monotonic()

            result = bank.backup_database_to_file(str(dump), on_record=on_record, jobs=2)
            during = writers.committed_between(window["first"], window["last"])
    finally:
        engine.dispose()

    assert result.extra["jobs"] == 2, result.extra
    split = {t: n for t, n in parts_per_table(manifest_of(dump)).items() if n > 1}
    assert len(split) >= 2, f"too few tables cut into parts: {parts_per_table(manifest_of(dump))}"
    assert during >= COMMITS_PER_PART * len(parts_seen), f"only {during} commits during it"
    final_ledger = check_bank(bank.url)

    summary = target.restore_database_from_file(str(dump), jobs=2)
    restored_ledger = check_bank(target.url)
    assert restored_ledger == result.tables["ledger"] == summary.tables["ledger"]
    assert 0 < restored_ledger < final_ledger
    print(
        f"{dialect}: {len(parts_seen)} data parts ({split} cut), {during} commits during the "
        f"backup, snapshot has {restored_ledger} of {final_ledger} ledger rows"
    )
