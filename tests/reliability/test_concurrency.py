"""Two restores of one database at once, and two UpgradeOperators at once.

Each race runs in two long-lived worker processes that wait on a barrier, so both jobs
start at the same moment. Restores race five rounds per dialect; in every other round
each swap also waits for the other restore to reach its swap, the worst interleaving
(two swaps renaming the same tables), on purpose rather than by luck.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
import sqlalchemy
from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.pool import NullPool

from airflow_provider_zenmigrate.core.alembic import Alembic
from airflow_provider_zenmigrate.core.dialects.base import DialectOps
from airflow_provider_zenmigrate.core.utils import MigrationUtils
from tests.reliability._load import (
    REVISIONS,
    WorkerPair,
    connection_json,
    restore_worker,
    upgrade_worker,
    write_migrations,
)
from tests.support.engine_support import restore_side_objects
from tests.support.identity import fingerprint
from tests.support.paths import FIXTURES
from tests.support.servers import database_url, unique_name

ROUNDS = 5
#: Rows of the shared table in the dumps O (the target's start), A and B.
CONTENT = {"o": 900, "a": 1_100, "b": 1_300}
CHUNK_ROWS = 100


@pytest.fixture(scope="module")
def restore_workers() -> Iterator[WorkerPair]:
    pair = WorkerPair(restore_worker)
    yield pair
    pair.close()


@pytest.fixture(scope="module")
def upgrade_workers() -> Iterator[WorkerPair]:
    pair = WorkerPair(upgrade_worker)
    yield pair
    pair.close()


def _make_dumps(dialect: str, folder: Path) -> dict[str, Path]:
    """Dumps O, A and B of one database in three states, with different table sets.

    Each has the table ``shared`` (different rows), a table only it has and a view only it
    has, so a restore mixed from two dumps shows in the fingerprint.
    """
    url = database_url(dialect, folder)
    dumps: dict[str, Path] = {}
    with MigrationUtils(url=url, connect_args={}, engine_args={}, chunk_rows=CHUNK_ROWS) as mu:
        mu.create_database()
        try:
            previous = None
            for name, rows in CONTENT.items():
                with mu.engine.begin() as conn:
                    if previous is not None:
                        conn.exec_driver_sql(f"DROP VIEW v_{previous}")
                        conn.exec_driver_sql(f"DROP TABLE only_{previous}")
                        conn.exec_driver_sql("DELETE FROM shared")
                    else:
                        conn.exec_driver_sql(
                            "CREATE TABLE shared (id INTEGER PRIMARY KEY, "
                            "dump VARCHAR(4) NOT NULL, payload VARCHAR(60) NOT NULL)"
                        )
                    conn.exec_driver_sql(
                        f"CREATE TABLE only_{name} (id INTEGER PRIMARY KEY, note VARCHAR(20))"
                    )
                    conn.exec_driver_sql(f"INSERT INTO only_{name} (id, note) VALUES (1, '{name}')")
                    conn.exec_driver_sql(
                        f"CREATE VIEW v_{name} AS SELECT count(*) AS n FROM shared "
                        f"WHERE dump = '{name}'"
                    )
                    conn.execute(
                        text("INSERT INTO shared (id, dump, payload) VALUES (:id, :d, :p)"),
                        [
                            {"id": i, "d": name, "p": f"{name} row {i} · {'x' * (i % 30)}"}
                            for i in range(rows)
                        ],
                    )
                dumps[name] = folder / f"{name}.jsonl"
                mu.backup_database_to_file(str(dumps[name]))
                previous = name
        finally:
            mu.drop_database()
    return dumps


def _restore(url: URL, dump: Path) -> dict[str, Any]:
    with MigrationUtils(url=url, connect_args={}, engine_args={}) as mu:
        mu.restore_database_from_file(str(dump))
    return fingerprint(url)


def test_two_restores_at_once_give_one_complete_restore(
    dialect: str, restore_workers: WorkerPair, tmp_path: Path
) -> None:
    dumps = _make_dumps(dialect, tmp_path)
    (tmp_path / "target").mkdir()
    url = database_url(dialect, tmp_path / "target")
    mu = MigrationUtils(url=url, connect_args={}, engine_args={})
    mu.create_database()
    try:
        expected = {name: _restore(url, dump) for name, dump in dumps.items()}
        assert len({repr(fp) for fp in expected.values()}) == 3
        leftovers = restore_side_objects(url, tmp_path / "target")
        by_dump = {str(dumps["a"]): "a", str(dumps["b"]): "b"}
        contended = 0
        for number in range(1, ROUNDS + 1):
            assert _restore(url, dumps["o"]) == expected["o"]
            # Worker 0 restores A in odd rounds and B in even ones; worker 1 the other.
            order = ["a", "b"] if number % 2 else ["b", "a"]
            rendezvous = number % 2 == 0
            jobs = [
                (number, url.render_as_string(hide_password=False), str(dumps[d]), rendezvous)
                for d in order
            ]
            results = restore_workers.run(jobs)
            print(
                f"{dialect} round {number}: "
                + "; ".join(
                    f"{by_dump[r['dump']]} {'ok' if r['ok'] else r['error_type']}" for r in results
                )
            )
            winners = [r for r in results if r["ok"]]
            losers = [r for r in results if not r["ok"]]
            assert winners, f"both restores failed: {[r['error'] for r in losers]}"
            for loser in losers:
                # A clean refusal naming the reason, from the restore lock; not a server error.
                assert loser["error_type"] == "RestoreInProgressError", loser
                assert "another restore" in loser["error"] and "running" in loser["error"]
                assert url.database is not None and Path(url.database).name in loser["error"]
            # The last restore to swap is the one in place, whole: never a mixture.
            last = max(winners, key=lambda r: float(r["swap"][1]))
            assert fingerprint(url) == expected[by_dump[last["dump"]]], f"round {number}"
            if len(winners) == 2:  # they took turns: one swap ended before the other began
                first, second = sorted(winners, key=lambda r: float(r["swap"][1]))
                assert first["swap"][1] <= second["swap"][0], "two swaps overlapped"
            contended += bool(losers)
            assert restore_side_objects(url, tmp_path / "target") == leftovers
        # The race was real: at least one round had a restore refused while the other ran.
        assert contended >= 1
        # The loser's lock is gone with it: restoring again just works.
        assert _restore(url, dumps["b"]) == expected["b"]
    finally:
        mu.drop_database()
        mu.dispose()


def test_two_upgrade_operators_at_once_apply_each_migration_once(
    dialect: str, upgrade_workers: WorkerPair, utils: MigrationUtils, tmp_path: Path
) -> None:
    scripts = str(write_migrations(tmp_path / "migrations"))
    conn_id = unique_name("zm_up")
    jobs = [(conn_id, connection_json(utils.url), scripts)] * 2
    results = upgrade_workers.run(jobs)
    assert all(r["ok"] for r in results), [r.get("error") for r in results]

    with utils.engine.connect() as conn:
        log = conn.execute(text("SELECT revision, pid, at_us FROM upgrade_log ORDER BY id")).all()
    assert [row.revision for row in log] == REVISIONS, "a migration ran twice, or not at all"
    assert len({row.pid for row in log}) == 1
    winner = next(r for r in results if r["pid"] == log[0].pid)
    loser = next(r for r in results if r["pid"] != log[0].pid)

    assert winner["value"]["before"] == [] and winner["value"]["after"] == ["r3"]
    assert [a["revision"] for a in winner["value"]["applied"]] == REVISIONS
    # The loser waited for the winner and found nothing left to do, and says so.
    assert loser["value"]["applied"] == []
    assert loser["value"]["before"] == loser["value"]["after"] == ["r3"], loser["value"]
    assert loser["started"] * 1e6 < log[0].at_us, "the loser started after the winner's work"
    assert loser["finished"] * 1e6 >= log[-1].at_us
    current = Alembic(utils.engine, script_location=scripts).current_revisions()
    assert current == ["r3"]


def _kill_lock_session(url: URL, scope: str) -> int | None:
    """Kill, server-side, the session holding zenmigrate's lock on ``scope`` in ``url``'s
    database (what a server's idle-session timeout or a DBA does to an idle session).

    Returns the killed session's id, ``None`` when nobody holds the lock.
    """
    engine = sqlalchemy.create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            if url.get_backend_name() == "mysql":
                key = "zenmigrate:" + DialectOps.lock_digest(engine, scope).hex()[:40]
                holder = conn.execute(text("SELECT IS_USED_LOCK(:k)"), {"k": key}).scalar()
                if holder is None:
                    return None
                conn.exec_driver_sql(f"KILL CONNECTION {int(holder)}")
            else:
                holder = conn.execute(
                    text(
                        "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted "
                        "AND database = (SELECT oid FROM pg_database WHERE datname = :d)"
                    ),
                    {"d": url.database},
                ).scalar()
                if holder is None:
                    return None
                assert conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": holder}).scalar()
            return int(holder)
    finally:
        engine.dispose()


@pytest.mark.parametrize("dialect", ["mysql", "postgresql"])
def test_restore_finishes_when_its_lock_session_is_killed(
    dialect: str, utils: MigrationUtils
) -> None:
    """The lock's session, idle all through a long restore, may be ended by the server.

    Regression: releasing the lock on that dead session raised after the swap, so a
    restore that had replaced the database reported failure.
    """
    with utils.engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (id INTEGER PRIMARY KEY, v VARCHAR(10))")
        conn.execute(text("INSERT INTO t (id, v) VALUES (:i, 'x')"), [{"i": i} for i in range(50)])
    utils.chunk_rows = 10
    records = utils.backup_database_to_memory()
    expected = fingerprint(utils.url)
    with utils.engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM t WHERE id > 5")
    killed: list[int | None] = []

    def load() -> Iterator[dict[str, Any]]:
        for number, record in enumerate(records):
            if number == len(records) // 2:
                killed.append(_kill_lock_session(utils.url, "restore"))
            yield record

    summary = utils.restore_database_from_storage(load)
    assert killed[0] is not None and summary.rows == 50
    assert fingerprint(utils.url) == expected


@pytest.mark.parametrize("dialect", ["mysql", "postgresql"])
def test_upgrade_operator_succeeds_when_its_lock_session_is_killed(
    dialect: str, utils: MigrationUtils, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression: the migration lock's idle session ended by the server made a finished
    upgrade fail on release, and a backup-then-migrate DAG would then restore the backup
    over the successful migration."""
    from airflow_provider_zenmigrate.operators.migrate import UpgradeOperator

    monkeypatch.setenv("ZM_SLOW_MIGRATION_SECONDS", "0.5")
    conn_id = unique_name("zm_lock")
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", connection_json(utils.url))
    operator = UpgradeOperator(
        task_id="upgrade", conn_id=conn_id, script_location=str(FIXTURES / "slow_migrations")
    )
    outcome: dict[str, Any] = {}

    def upgrade() -> None:
        try:
            outcome["value"] = operator.execute(cast(Any, {}))
        except Exception as exc:  # noqa: BLE001 - asserted below
            outcome["error"] = exc
        finally:
            operator.hook.close()

    thread = threading.Thread(target=upgrade)
    thread.start()
    killed = None
    deadline = time.monotonic() + 30
    while killed is None and thread.is_alive() and time.monotonic() < deadline:
        killed = _kill_lock_session(utils.url, "alembic_version")
        time.sleep(0.01)
    thread.join(timeout=60)
    assert killed is not None, "the lock was never seen held"
    assert "error" not in outcome, repr(outcome.get("error"))
    assert [a["revision"] for a in outcome["value"]["applied"]] == ["s1"]
    with utils.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM migration_runs")).scalar_one() == 1
