"""The operators as a provider's users meet them: documented arguments, templated fields,
engines released after every task, and pruning with no database connection."""

from __future__ import annotations

import inspect
import json
import re
from pathlib import Path
from typing import Any

import psutil
import pytest
from airflow.sdk import DAG, BaseHook, Param, chain, task_group
from sqlalchemy import inspect as sa_inspect
from sqlalchemy import text
from sqlalchemy.engine import URL

from airflow_provider_zenmigrate.core.alembic import Alembic
from airflow_provider_zenmigrate.core.catalog import list_backups
from airflow_provider_zenmigrate.core.utils import MigrationUtils
from airflow_provider_zenmigrate.operators import (
    BackupToDatabaseOperator,
    BackupToStorageOperator,
    DowngradeOperator,
    PendingMigrationsOperator,
    PruneBackupsOperator,
    RestoreOperator,
    UpgradeOperator,
)
from airflow_provider_zenmigrate.operators.base import ZenMigrateBaseOperator
from tests.support.example_dags import connection_json, example_dag_bag, register_dag, task_states
from tests.support.identity import fingerprint
from tests.support.paths import EXAMPLE_MIGRATIONS, FIXTURES, REPO
from tests.support.servers import server_url, unique_name

OPERATORS: list[type[ZenMigrateBaseOperator]] = [
    BackupToDatabaseOperator,
    BackupToStorageOperator,
    DowngradeOperator,
    PendingMigrationsOperator,
    PruneBackupsOperator,
    RestoreOperator,
    UpgradeOperator,
]
FAILING = REPO / "example_dags" / "migrations_failing"


def _run(dag: DAG, **kwargs: Any) -> Any:
    """``dag.test()`` for a DAG built in a test: Airflow runs only DAGs it has serialized, so
    the DAG is written to the metadata database first, as the DAG processor would."""
    register_dag(dag)
    return dag.test(**kwargs)


# -- documentation ---------------------------------------------------------------------------
def _parameters(operator: type[ZenMigrateBaseOperator]) -> set[str]:
    """Every keyword argument the operator itself takes, through its own base classes."""
    names: set[str] = set()
    for cls in operator.__mro__:
        if cls is ZenMigrateBaseOperator or not issubclass(cls, ZenMigrateBaseOperator):
            continue
        for name, param in inspect.signature(cls.__init__).parameters.items():
            if name != "self" and param.kind is not param.VAR_KEYWORD:
                names.add(name)
    return names


def _documented(operator: type[ZenMigrateBaseOperator]) -> dict[str, str]:
    """Each ``:param name: text`` of the class docstring, text unwrapped."""
    doc = inspect.getdoc(operator) or ""
    found = re.findall(r":param (\w+):(.*?)(?=\n\s*:param |\Z)", doc, flags=re.S)
    return {name: " ".join(text.split()) for name, text in found}


@pytest.mark.parametrize("operator", OPERATORS, ids=lambda o: o.__name__)
def test_every_argument_is_documented_and_templated_ones_say_so(
    operator: type[ZenMigrateBaseOperator],
) -> None:
    documented = _documented(operator)
    assert set(documented) == _parameters(operator), operator.__name__
    for name, description in documented.items():
        templated = name in operator.template_fields
        assert ("(templated" in description) == templated, (operator.__name__, name)
    # And nothing is templated that is not an argument (a typo would template nothing).
    assert set(operator.template_fields) <= set(documented)


@pytest.mark.parametrize(
    "operator", [o for o in OPERATORS if "script_location" in o.template_fields]
)
def test_config_file_is_templated_wherever_script_location_is(
    operator: type[ZenMigrateBaseOperator],
) -> None:
    assert "config_file" in operator.template_fields


# -- engines released --------------------------------------------------------------------------
def _server_connections() -> int:
    """TCP connections this process holds to the MariaDB and PostgreSQL servers."""
    ports = {server_url(d).port or p for d, p in (("mysql", 3306), ("postgresql", 5432))}
    return sum(
        1
        for c in psutil.Process().net_connections(kind="tcp")
        if c.raddr and c.raddr.port in ports and c.status == psutil.CONN_ESTABLISHED
    )


@pytest.mark.parametrize("dialect", ["mysql", "postgresql"])
def test_every_operator_releases_its_connections(
    airflow_db: Path, utils: MigrationUtils, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker runs many tasks in one process: after each, success or failure, the task's
    engines are disposed and no pooled connection stays open on the server."""
    Alembic(utils.engine, script_location=EXAMPLE_MIGRATIONS).upgrade("0002a")
    with utils.engine.begin() as conn:
        conn.execute(text("INSERT INTO author (id, name) VALUES (1, 'Ada')"))
    expected = fingerprint(utils.url)
    copy_name = unique_name("zmcopy")
    monkeypatch.setenv("AIRFLOW_CONN_ZM_RELEASE", connection_json(utils))
    utils.dispose()
    baseline = _server_connections()
    backups = tmp_path / "backups"

    conn_id = "zm_release"
    with DAG(dag_id=unique_name("zm_release"), schedule=None, catchup=False) as dag:
        chain(
            PendingMigrationsOperator(
                task_id="pending",
                conn_id=conn_id,
                script_location=str(EXAMPLE_MIGRATIONS),
                skip_when_current=False,
            ),
            BackupToStorageOperator(
                task_id="backup", conn_id=conn_id, uri=str(backups / "one.jsonl.gz")
            ),
            BackupToDatabaseOperator(task_id="copy", conn_id=conn_id, backup_db_name=copy_name),
            UpgradeOperator(
                task_id="upgrade", conn_id=conn_id, script_location=str(EXAMPLE_MIGRATIONS)
            ),
            DowngradeOperator(
                task_id="downgrade",
                conn_id=conn_id,
                script_location=str(EXAMPLE_MIGRATIONS),
                revision="0002a",
            ),
            RestoreOperator(task_id="restore_db", conn_id=conn_id, backup_db_name=copy_name),
            RestoreOperator(task_id="restore", conn_id=conn_id, backup_task_id="backup"),
            PruneBackupsOperator(task_id="prune", prefix=str(backups), keep_last=1),
        )
    try:
        run = _run(dag)
        assert set(task_states(run).values()) == {"success"}, task_states(run)
        assert _server_connections() == baseline
        assert fingerprint(utils.url) == expected

        # A failing task releases its engines too: the example DAG's upgrade fails at 0004.
        migrate = example_dag_bag().get_dag("zenmigrate_backup_then_migrate")
        assert migrate is not None
        failed = migrate.test(
            run_conf={
                "conn_id": conn_id,
                "backup_prefix": str(tmp_path / "rollback"),
                "script_location": str(FAILING),
                "fail_on": "",  # the rehearsal only reports: the upgrade runs and fails
            }
        )
        states = task_states(failed)
        assert states["upgrade"] == "failed" and states["restore_on_failure"] == "success"
        assert _server_connections() == baseline
    finally:
        utils.drop_database(copy_name)
        utils.dispose()


# -- pruning needs storage only ----------------------------------------------------------------
def test_prune_needs_no_database_connection(
    airflow_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No connection is defined at all: the task reads none and prunes a real local folder."""
    source = MigrationUtils(url=URL.create("sqlite", database=str(tmp_path / "src.db")))
    source.create_database()
    with source.engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (id INTEGER PRIMARY KEY)")
    prefix = tmp_path / "backups"
    for name in ("a", "b", "c"):
        source.backup_database_to_file(str(prefix / f"{name}.jsonl"))
    source.dispose()
    newest = list_backups(str(prefix))[0].uri

    read: list[str] = []
    real = BaseHook.get_connection

    def recording(cls: Any, conn_id: str) -> Any:
        read.append(conn_id)
        return real(conn_id)

    monkeypatch.setattr(BaseHook, "get_connection", classmethod(recording))
    with DAG(dag_id=unique_name("zm_prune"), schedule=None, catchup=False) as dag:
        PruneBackupsOperator(task_id="prune", prefix=str(prefix) + "/", keep_last=1)
    run = _run(dag)
    assert task_states(run) == {"prune": "success"}
    assert read == []
    assert [b.uri for b in list_backups(str(prefix))] == [newest]
    assert sorted(p.name for p in prefix.iterdir()) == [
        Path(newest).name,
        Path(newest).name + ".manifest.json",
    ]


# -- in a mapped task group ------------------------------------------------------------------
def test_a_mapped_group_restores_each_database_from_its_own_backup(
    airflow_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """backup -> upgrade -> restore mapped over two databases by ``expand``: each restore
    reads its own expansion's backup (``backup_task_id``, ``migration_task_id``), and a
    mapped ``conn_id`` is accepted when the DAG is parsed."""
    expected: dict[str, dict[str, Any]] = {}
    for n, name in enumerate(("Ada", "Grace")):
        utils = MigrationUtils(url=URL.create("sqlite", database=str(tmp_path / f"db{n}.db")))
        utils.create_database()
        Alembic(utils.engine, script_location=EXAMPLE_MIGRATIONS).upgrade("0002a")
        with utils.engine.begin() as conn:
            conn.execute(text("INSERT INTO author (id, name) VALUES (:i, :n)"), {"i": n, "n": name})
        expected[f"zm_mapped_{n}"] = fingerprint(utils.url)
        monkeypatch.setenv(f"AIRFLOW_CONN_ZM_MAPPED_{n}", connection_json(utils))
        utils.dispose()
    backups = tmp_path / "backups"

    with DAG(dag_id=unique_name("zm_mapped"), schedule=None, catchup=False) as dag:

        @task_group(group_id="db")
        def one_database(conn_id: str) -> None:
            chain(
                BackupToStorageOperator(
                    task_id="backup",
                    conn_id=conn_id,
                    uri=str(backups) + "/{{ ti.map_index }}.jsonl",
                ),
                UpgradeOperator(
                    task_id="upgrade", conn_id=conn_id, script_location=str(EXAMPLE_MIGRATIONS)
                ),
                RestoreOperator(
                    task_id="restore",
                    conn_id=conn_id,
                    backup_task_id="db.backup",
                    migration_task_id="db.upgrade",
                ),
            )

        one_database.expand(conn_id=sorted(expected))
    run = _run(dag)
    states = {(ti.task_id, ti.map_index): str(ti.state) for ti in run.get_task_instances()}
    assert set(states.values()) == {"success"}, states
    assert {i for _, i in states} == {0, 1}
    for n, conn_id in enumerate(sorted(expected)):
        url = URL.create("sqlite", database=str(tmp_path / f"db{n}.db"))
        assert fingerprint(url) == expected[conn_id], conn_id


# -- config_file, templated ------------------------------------------------------------------
@pytest.mark.parametrize("dialect", ["sqlite"])
def test_config_file_renders_from_params(
    airflow_db: Path, utils: MigrationUtils, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full Alembic project (its env.py runs) chosen by a templated ``config_file``."""
    project = FIXTURES / "alembic_project"
    connection = json.loads(connection_json(utils))
    connection["extra"] = {"version_table": "project_version"}  # the project's env.py's
    monkeypatch.setenv("AIRFLOW_CONN_ZM_PROJECT", json.dumps(connection))
    ini = "{{ params.ini }}"
    with DAG(
        dag_id=unique_name("zm_project"),
        schedule=None,
        catchup=False,
        params={"ini": Param("", type="string")},
    ) as dag:
        chain(
            PendingMigrationsOperator(
                task_id="pending",
                conn_id="zm_project",
                script_location=str(project),
                config_file=ini,
            ),
            UpgradeOperator(
                task_id="upgrade",
                conn_id="zm_project",
                script_location=str(project),
                config_file=ini,
            ),
        )
    run = _run(dag, run_conf={"ini": str(project / "alembic.ini")})
    assert task_states(run) == {"pending": "success", "upgrade": "success"}
    utils.dispose()
    assert {"project_thing", "project_version"} <= set(sa_inspect(utils.engine).get_table_names())
    assert Alembic(
        utils.engine, config_file=project / "alembic.ini", version_table="project_version"
    ).current_revisions() == ["p1"]
    utils.dispose()
