"""Dataset (g): a real application's database, Airflow's own metadata database.

Built the way an Airflow deployment builds it: ``airflow db migrate`` (Airflow's Alembic
migrations: 58 tables with their keys, indexes and enums), then ``airflow dags test`` of a
few of Airflow's example DAGs, which parse and serialise every example DAG and record runs,
task instances, logs and XComs. Many small tables of many shapes, as issue 27 asks.

Airflow runs here in the project's venv, pointed at the bench's source database by
``AIRFLOW__DATABASE__SQL_ALCHEMY_CONN`` in a throw-away ``AIRFLOW_HOME``. On MariaDB/MySQL
Airflow 3 also needs ``mysqlclient`` and ``aiomysql`` (its settings import ``MySQLdb``; its
async engine uses aiomysql); ``make bench`` installs both into the venv.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from sqlalchemy.engine import Engine

#: The example DAGs run once each (all of them ship with Airflow 3's core).
DAGS = ("example_bash_operator", "example_python_operator", "tutorial")
#: What MariaDB/MySQL needs beyond the project's own dependencies.
MYSQL_EXTRAS = ("MySQLdb", "aiomysql")


def _airflow() -> str:
    return str(Path(sys.executable).with_name("airflow"))


def missing_for(engine: Engine) -> str | None:
    """Why (g) cannot be built on ``engine``'s server here, or None."""
    if engine.dialect.name != "mysql":
        return None
    absent = []
    for module in MYSQL_EXTRAS:
        found = subprocess.run(
            [sys.executable, "-c", f"import {module}"], capture_output=True, check=False
        )
        if found.returncode != 0:
            absent.append(module)
    if absent:
        return (
            f"Airflow on MariaDB needs {' and '.join(absent)} "
            "(pip install mysqlclient aiomysql; make bench does)"
        )
    return None


def create_airflow_metadata(engine: Engine, dags: tuple[str, ...] = DAGS) -> None:
    """Fill ``engine``'s (empty) database with Airflow's schema and a few DAG runs."""
    why = missing_for(engine)
    if why:
        raise RuntimeError(f"dataset (g): {why}")
    url = engine.url.render_as_string(hide_password=False)
    with tempfile.TemporaryDirectory(prefix="zm-bench-airflow-") as home:
        env = {
            **os.environ,
            "AIRFLOW_HOME": home,
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": url,
            "AIRFLOW__CORE__LOAD_EXAMPLES": "True",
            "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        }
        steps = [["db", "migrate"], *(["dags", "test", dag] for dag in dags)]
        for step in steps:
            done = subprocess.run(
                [_airflow(), *step], env=env, capture_output=True, text=True, check=False
            )
            if done.returncode != 0:
                tail = "\n".join((done.stdout + done.stderr).splitlines()[-15:])
                raise RuntimeError(f"dataset (g): airflow {' '.join(step)} failed:\n{tail}")
    engine.dispose()
