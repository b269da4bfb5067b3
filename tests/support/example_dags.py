"""The example DAGs as the Airflow tests load and run them."""

from __future__ import annotations

import json
import sys
from typing import Any

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
