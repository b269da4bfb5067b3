"""The example DAGs as the Airflow tests load and run them."""

from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path
from typing import Any

import pytest
from airflow.dag_processing.dagbag import DagBag

from airflow_provider_zenmigrate.core.utils import MigrationUtils
from tests.support.paths import REPO

EXAMPLE_DAGS = REPO / "example_dags"


def example_dag_bag() -> DagBag:
    """The example DAGs parsed as Airflow's DAG processor parses them (their folder on the
    path, as Airflow puts the DAGs folder there)."""
    if str(EXAMPLE_DAGS) not in sys.path:
        sys.path.insert(0, str(EXAMPLE_DAGS))
    return DagBag(dag_folder=str(EXAMPLE_DAGS), safe_mode=False)


def register_dag(dag: Any) -> None:
    """Write a DAG built in a test to the metadata database, as the DAG processor would:
    Airflow runs (``dag.test()``) only DAGs it has serialized."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import sync_bag_to_db

    DagBundlesManager().sync_bundles_to_db()
    bag = DagBag(dag_folder=str(EXAMPLE_DAGS), collect_dags=False)
    bag.dags[dag.dag_id] = dag
    sync_bag_to_db(bag, "dags-folder", None)


def parsed_without_connections(monkeypatch: pytest.MonkeyPatch) -> tuple[DagBag, list[str]]:
    """The example DAGs parsed with every connection lookup refused (parsing a DAG must not
    read a connection), and the connection ids that were asked for anyway."""
    from airflow.sdk import BaseHook

    touched: list[str] = []

    def refuse(cls: Any, conn_id: str) -> Any:
        touched.append(conn_id)
        raise AssertionError(f"connection {conn_id!r} read while parsing")

    monkeypatch.setattr(BaseHook, "get_connection", classmethod(refuse))
    return example_dag_bag(), touched


def connection_json(utils: MigrationUtils) -> str:
    """An Airflow connection (``AIRFLOW_CONN_<ID>`` JSON) to ``utils``' database."""
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


def task_states(run: Any) -> dict[str, str]:
    """Each task of a DAG run and the state it ended in."""
    return {ti.task_id: str(ti.state) for ti in run.get_task_instances()}


def run_example_dag(
    dag_id: str, conf: dict[str, Any], capfd: pytest.CaptureFixture[str] | None = None
) -> tuple[Any, dict[str, str]]:
    """One ``dag.test()`` run of example DAG ``dag_id`` with ``conf`` as its run's conf; the
    run and its task states. With ``capfd``, the output so far is dropped just before the
    run, so what the test reads afterwards is the run's own."""
    dag = example_dag_bag().get_dag(dag_id)
    assert dag is not None
    if capfd is not None:
        capfd.readouterr()
    run = dag.test(run_conf=conf)
    return run, task_states(run)


def xcom(airflow_home: Path, run: Any, task_id: str, key: str) -> Any:
    """One XCom value of a run, decoded, read from the metadata database."""
    with sqlite3.connect(airflow_home / "airflow.db") as conn:
        row = conn.execute(
            "SELECT value FROM xcom WHERE dag_id = ? AND run_id = ? AND task_id = ? AND key = ?",
            (run.dag_id, run.run_id, task_id, key),
        ).fetchone()
    if row is None:
        return None
    value = json.loads(row[0]) if isinstance(row[0], str | bytes) else row[0]
    if isinstance(value, str) and value[:1] in ("{", "["):  # stored JSON-encoded twice
        return json.loads(value)
    return value
