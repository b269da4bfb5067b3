"""The example DAGs: they import cleanly, touch no connection while parsed, and work."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

import pytest
from airflow.dag_processing.dagbag import DagBag
from airflow.sdk import BaseHook
from sqlalchemy import text

from airflow_provider_zenmigrate.core.alembic import Alembic
from airflow_provider_zenmigrate.core.utils import MigrationUtils
from tests.conftest import EXAMPLE_MIGRATIONS, REPO
from tests.identity import fingerprint

EXAMPLE_DAGS = REPO / "example_dags"
FAILING = REPO / "example_dags" / "migrations_failing"
DAG_IDS = {"zenmigrate_backup_then_migrate", "zenmigrate_nightly_backup", "zenmigrate_restore"}


def _bag() -> DagBag:
    if str(EXAMPLE_DAGS) not in sys.path:
        sys.path.insert(0, str(EXAMPLE_DAGS))
    return DagBag(dag_folder=str(EXAMPLE_DAGS), safe_mode=False)


def test_dags_import_without_touching_a_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    touched: list[str] = []

    def refuse(cls: Any, conn_id: str) -> Any:
        touched.append(conn_id)
        raise AssertionError(f"connection {conn_id!r} read while parsing")

    monkeypatch.setattr(BaseHook, "get_connection", classmethod(refuse))
    bag = _bag()
    assert bag.import_errors == {}
    assert set(bag.dag_ids) == DAG_IDS
    assert touched == []


def _demo_database(utils: MigrationUtils) -> None:
    utils.create_database()
    Alembic(utils.engine, script_location=EXAMPLE_MIGRATIONS).upgrade("0002a")
    with utils.engine.begin() as conn:
        conn.execute(text("INSERT INTO author (id, name) VALUES (1, 'Ada'), (2, 'Grace')"))
        conn.execute(text("INSERT INTO book (id, author_id, title) VALUES (1, 1, 'Notes')"))


def _connection_json(utils: MigrationUtils) -> str:
    url = utils.url
    if url.get_backend_name() == "sqlite":
        return json.dumps({"conn_type": "sqlite", "host": url.database})
    return json.dumps(
        {
            "conn_type": "mysql" if url.get_backend_name() == "mysql" else "postgres",
            "host": url.host,
            "port": url.port,
            "login": url.username,
            "password": url.password,
            "schema": url.database,
        }
    )


def _states(run: Any) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in run.get_task_instances()}


def test_backup_then_migrate_success_and_failure(
    airflow_db: Path,
    utils: MigrationUtils,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    _demo_database(utils)
    monkeypatch.setenv("AIRFLOW_CONN_ZM_TARGET", _connection_json(utils))
    dag = _bag().get_dag("zenmigrate_backup_then_migrate")
    assert dag is not None
    conf = {"conn_id": "zm_target", "backup_prefix": str(tmp_path / "backups")}

    before_failure = fingerprint(utils.url)
    utils.dispose()
    failed = dag.test(run_conf={**conf, "script_location": str(FAILING)})
    states = _states(failed)
    assert str(failed.state) == "failed", states
    assert states["upgrade"] == "failed"
    assert states["restore_on_failure"] == "success"
    assert states["fail_run"] == "failed"
    utils.dispose()
    assert fingerprint(utils.url) == before_failure
    assert "upgrade failed at revision 0004" in caplog.text

    succeeded = dag.test(run_conf={**conf, "script_location": str(EXAMPLE_MIGRATIONS)})
    states = _states(succeeded)
    assert str(succeeded.state) == "success", states
    assert states["upgrade"] == "success"
    assert states["restore_on_failure"] == "skipped"
    utils.dispose()
    assert Alembic(utils.engine, script_location=EXAMPLE_MIGRATIONS).current_revisions() == ["0003"]
    backups = sorted((tmp_path / "backups").rglob("*.jsonl.zst"))
    assert len(backups) == 2  # one per run, both kept

    nothing = dag.test(run_conf={**conf, "script_location": str(EXAMPLE_MIGRATIONS)})
    assert str(nothing.state) == "success"
    assert _states(nothing)["check_pending"] == "skipped"
    assert len(sorted((tmp_path / "backups").rglob("*.jsonl.zst"))) == 2
