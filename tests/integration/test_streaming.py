"""Streaming and snapshot properties: bounded memory, one consistent snapshot."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from sqlalchemy import text

from airflow_provider_zenmigrate.core.utils import MigrationUtils
from tests.support.memory import FILL_BIG, MAX_GROWTH_MB, measure_in_child
from tests.support.servers import database_url

BIG_ROWS = 300_000


def test_memory_stays_bounded_for_a_large_table(
    dialect: str, utils: MigrationUtils, tmp_path: Path
) -> None:
    with utils.engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE big (id INTEGER PRIMARY KEY, payload TEXT NOT NULL)")
        conn.exec_driver_sql(FILL_BIG[dialect].format(n=BIG_ROWS))
    dump = tmp_path / "big.jsonl.zst"
    url = utils.url.render_as_string(hide_password=False)
    growth, seconds, base = measure_in_child("backup", url, str(dump))
    print(
        f"{dialect} backup of {BIG_ROWS} x 1 KiB: +{growth:.0f} MB peak RSS over {base:.0f} MB, "
        f"{seconds:.1f}s"
    )
    assert growth < MAX_GROWTH_MB

    target = database_url(dialect, tmp_path / "restore")
    (tmp_path / "restore").mkdir()
    MigrationUtils(url=target, connect_args={}, engine_args={}).create_database()
    try:
        target_url = target.render_as_string(hide_password=False)
        growth, seconds, base = measure_in_child("restore", target_url, str(dump))
        print(
            f"{dialect} restore of {BIG_ROWS} x 1 KiB: +{growth:.0f} MB peak RSS over "
            f"{base:.0f} MB, {seconds:.1f}s"
        )
        assert growth < MAX_GROWTH_MB
        restored = MigrationUtils(url=target, connect_args={}, engine_args={})
        with restored, restored.engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT count(*) FROM big").scalar_one() == BIG_ROWS
    finally:
        MigrationUtils(url=target, connect_args={}, engine_args={}).drop_database()


_FILL_WIDE = {
    "sqlite": "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < {n}) "
    "INSERT INTO wide (id, payload) SELECT i, hex(randomblob(10240)) FROM s",
    "mysql": "INSERT INTO wide (id, payload) SELECT seq, REPEAT(MD5(seq), 640) FROM seq_1_to_{n}",
    "postgresql": "INSERT INTO wide (id, payload) "
    "SELECT i, repeat(md5(i::text), 640) FROM generate_series(1, {n}) i",
}
MAX_WIDE_GROWTH_MB = 80


def test_wide_rows_do_not_make_records_grow(
    dialect: str, utils: MigrationUtils, tmp_path: Path
) -> None:
    """20 KiB rows: records are capped by bytes too, so memory stays as for narrow rows."""
    with utils.engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE wide (id INTEGER PRIMARY KEY, payload TEXT NOT NULL)")
        conn.exec_driver_sql(_FILL_WIDE[dialect].format(n=10_000))
    dump = tmp_path / "wide.jsonl"
    url = utils.url.render_as_string(hide_password=False)
    growth, seconds, base = measure_in_child("backup", url, str(dump))
    print(f"{dialect} backup of 10,000 x 20 KiB: +{growth:.0f} MB over {base:.0f} MB")
    assert growth < MAX_WIDE_GROWTH_MB
    longest = max(len(line) for line in dump.read_bytes().splitlines())
    assert longest < 8 * 1024 * 1024, f"a {longest / 1e6:.0f} MB record"
    growth, seconds, base = measure_in_child("restore", url, str(dump))
    print(f"{dialect} restore of 10,000 x 20 KiB: +{growth:.0f} MB over {base:.0f} MB")
    assert growth < MAX_WIDE_GROWTH_MB


ACCOUNTS = 100
START = 1_000


def test_backup_is_one_consistent_snapshot(
    dialect: str, utils: MigrationUtils, tmp_path: Path
) -> None:
    """A writer moves money from a_acct to z_acct while the backup runs between them."""
    with utils.engine.begin() as conn:
        if dialect == "sqlite":
            conn.exec_driver_sql("PRAGMA journal_mode = WAL")
        for name in ("a_acct", "z_acct"):
            conn.exec_driver_sql(f"CREATE TABLE {name} (id INTEGER PRIMARY KEY, amount INTEGER)")
            conn.execute(
                text(f"INSERT INTO {name} (id, amount) VALUES (:id, :amount)"),
                [{"id": i, "amount": START} for i in range(ACCOUNTS)],
            )
        # Between the two account tables in backup order, and slow enough to read.
        conn.exec_driver_sql("CREATE TABLE m_filler (id INTEGER PRIMARY KEY, payload TEXT)")
        conn.exec_driver_sql(FILL_BIG[dialect].replace("big", "m_filler").format(n=100_000))
    total = 2 * ACCOUNTS * START
    stop = threading.Event()
    moves = 0

    def writer() -> None:
        nonlocal moves
        i = 0
        while not stop.is_set():
            i += 1
            with utils.engine.begin() as conn:
                conn.execute(
                    text("UPDATE a_acct SET amount = amount - 1 WHERE id = :i"), {"i": i % ACCOUNTS}
                )
                conn.execute(
                    text("UPDATE z_acct SET amount = amount + 1 WHERE id = :i"),
                    {"i": (i * 7) % ACCOUNTS},
                )
            moves += 1

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        time.sleep(0.2)
        moves_before = moves
        records = utils.backup_database_to_memory()
        moves_during = moves - moves_before
    finally:
        stop.set()
        thread.join()
    assert moves_during > 0, "the writer made no move during the backup: nothing was tested"

    target = database_url(dialect, tmp_path / "copy")
    (tmp_path / "copy").mkdir()
    copy = MigrationUtils(url=target, connect_args={}, engine_args={})
    copy.create_database()
    try:
        copy.restore_database_from_memory(records)
        with copy.engine.connect() as conn:
            restored = conn.exec_driver_sql(
                "SELECT (SELECT sum(amount) FROM a_acct) + (SELECT sum(amount) FROM z_acct)"
            ).scalar_one()
        assert restored == total, f"torn backup: {moves_during} moves during it"
    finally:
        copy.drop_database()
        copy.dispose()
