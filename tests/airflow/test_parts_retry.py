"""A retried RestoreOperator resumes (MariaDB and PostgreSQL): its first try loses its
loading connection halfway through a multi-part dump (the server kills it), Airflow retries
the task, and the retry skips the parts the first try committed, then swaps in exactly the
source."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path

import pytest
import sqlalchemy
from airflow.sdk import DAG
from sqlalchemy import text
from sqlalchemy.pool import NullPool

import airflow_provider_zenmigrate.core.parts.backup as parts_backup
from airflow_provider_zenmigrate.core.utils import MigrationUtils
from airflow_provider_zenmigrate.operators import RestoreOperator
from tests.support.example_dags import connection_json, register_dag, task_states, xcom
from tests.support.identity import fingerprint
from tests.support.servers import created_databases, server_url, unique_name

ROWS = 200_000


@pytest.fixture(params=["mysql", "postgresql"])
def databases(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[MigrationUtils, MigrationUtils]]:
    """A source with one table of ROWS rows, and an empty target."""
    dialect = str(request.param)
    with created_databases(dialect, tmp_path, 2, "zmint") as (source, target):
        with source.engine.begin() as conn:
            conn.execute(text("CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(64))"))
            if dialect == "mysql":
                conn.execute(text(f"INSERT INTO t SELECT seq, MD5(seq) FROM seq_1_to_{ROWS}"))
                conn.execute(text("ANALYZE TABLE t"))
            else:
                conn.execute(
                    text(f"INSERT INTO t SELECT i, md5(i::text) FROM generate_series(1, {ROWS}) i")
                )
        yield source, target


#: Per server: the staging that holds the progress table (by a pattern of its name), the
#: count of committed parts in it, the sessions loading into it, and how to kill one.
_STAGING = {
    "mysql": (
        "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE :p",
        "SELECT COUNT(*) FROM `{s}`.`_zenmigrate_progress` WHERE LEFT(part, 1) <> '@'",
        "SELECT ID FROM information_schema.PROCESSLIST WHERE DB = :s",
        "KILL CONNECTION {id}",
    ),
    "postgresql": (
        "SELECT nspname FROM pg_namespace WHERE nspname ~ :p",
        "SELECT count(*) FROM \"{s}\"._zenmigrate_progress WHERE left(part, 1) <> '@'",
        "SELECT pid FROM pg_stat_activity WHERE datname = :d AND query LIKE 'COPY %'",
        "SELECT pg_terminate_backend({id})",
    ),
}


def _kill_loading_once(
    target: MigrationUtils,
    staging_prefix: str,
    after_parts: int,
    killed: threading.Event,
    stop: threading.Event,
) -> None:
    """Once ``after_parts`` parts are committed in the target's staging, kill the
    connection that is loading the next one (as a server restart or a network cut would
    end it)."""
    dialect = target.url.get_backend_name()
    find, count, loading_sql, kill = _STAGING[dialect]
    # Autocommit: each look sees what is committed now, and holds no lock on the progress
    # table (the restore drops it before or in its swap).
    engine = sqlalchemy.create_engine(
        server_url(dialect) if dialect == "mysql" else target.url,
        poolclass=NullPool,
        isolation_level="AUTOCOMMIT",
    )
    deadline = time.monotonic() + 60
    try:
        with engine.connect() as conn:
            while time.monotonic() < deadline and not stop.is_set():
                staging = conn.execute(text(find), {"p": staging_prefix}).scalar()
                committed = 0
                if staging:
                    try:
                        committed = int(conn.execute(text(count.format(s=staging))).scalar() or 0)
                    except sqlalchemy.exc.DBAPIError:  # not created yet
                        committed = 0
                if committed >= after_parts:
                    loading = (
                        conn.execute(text(loading_sql), {"s": staging, "d": target.url.database})
                        .scalars()
                        .all()
                    )
                    for session in loading:
                        with suppress(sqlalchemy.exc.DBAPIError):  # gone meanwhile
                            conn.execute(text(kill.format(id=int(session))))
                            killed.set()
                    if killed.is_set():
                        return
                time.sleep(0.01)
    finally:
        engine.dispose()


def test_a_retried_restore_operator_resumes(
    airflow_db: Path,
    databases: tuple[MigrationUtils, MigrationUtils],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    source, target = databases
    monkeypatch.setattr(parts_backup, "PART_BYTES", 64 * 1024)
    monkeypatch.setattr(parts_backup, "PART_SECONDS", 0.05)
    dump = str(tmp_path / "parts")
    result = source.backup_database_to_file(dump, jobs=2)
    parts = int(result.extra["parts"])
    assert parts >= 10, result.extra
    source.dispose()

    monkeypatch.setenv("AIRFLOW_CONN_ZMINT_DST", connection_json(target))
    with DAG(dag_id=unique_name("zmint_retry"), schedule=None, catchup=False) as dag:
        RestoreOperator(
            task_id="restore",
            conn_id="zmint_dst",
            uri=dump,
            jobs=1,
            retries=1,
            retry_delay=dt.timedelta(seconds=0),
        )
    register_dag(dag)

    killed, stop = threading.Event(), threading.Event()
    staging_prefix = (
        f"zmstage\\_%\\_{target.url.database}"
        if target.url.get_backend_name() == "mysql"
        else "^zm_stage_p[0-9a-f]{12}$"  # the progress table's (the staged ones end _<n>)
    )
    killer = threading.Thread(
        target=_kill_loading_once, args=(target, staging_prefix, 3, killed, stop), daemon=True
    )
    killer.start()
    run = dag.test()
    stop.set()
    killer.join(10)
    assert killed.is_set(), "the first try finished before its connection could be killed"

    assert task_states(run) == {"restore": "success"}
    restored = xcom(airflow_db, run, "restore", "return_value")
    # The first try committed at least three parts before its connection was killed; the
    # retry loaded only the others.
    assert 3 <= restored["resumed_parts"] < parts - 1, restored
    assert restored["rows"] == ROWS
    assert fingerprint(target.url) == fingerprint(source.url)
