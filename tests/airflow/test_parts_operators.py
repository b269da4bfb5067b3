"""BackupToStorageOperator(jobs) and RestoreOperator(jobs, fresh) in a real DAG run on a real
metadata database: a multi-part backup whose XCom manifest says so, restored exactly, and
jobs below 1 refused when the DAG is built."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from airflow.sdk import DAG, Param

from airflow_provider_zenmigrate.core.catalog import find_backup
from airflow_provider_zenmigrate.core.utils import MigrationUtils
from airflow_provider_zenmigrate.operators import BackupToStorageOperator, RestoreOperator
from tests.support.engine_support import populate_library
from tests.support.example_dags import connection_json, register_dag, task_states, xcom
from tests.support.identity import fingerprint
from tests.support.servers import created_databases, unique_name


@pytest.mark.parametrize("value", [0, -2, "0", "two", True, None])
def test_jobs_below_one_is_refused_when_the_dag_is_built(value: object) -> None:
    with pytest.raises(ValueError, match="BackupToStorageOperator: jobs must be"):
        BackupToStorageOperator(task_id="b", conn_id="c", uri="/x", jobs=value)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="RestoreOperator: jobs must be"):
        RestoreOperator(task_id="r", conn_id="c", uri="/x", jobs=value)  # type: ignore[arg-type]
    # A template is checked once rendered, not before.
    assert BackupToStorageOperator(task_id="t", conn_id="c", uri="/x", jobs="{{ params.j }}")


@pytest.fixture
def databases(tmp_path: Path) -> Iterator[tuple[MigrationUtils, MigrationUtils]]:
    """A MariaDB source with the example library, and an empty target database."""
    with created_databases("mysql", tmp_path, 2, "zmint") as (source, target):
        populate_library(source)
        yield source, target


def test_multipart_backup_and_restore_in_a_dag(
    airflow_db: Path,
    databases: tuple[MigrationUtils, MigrationUtils],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    source, target = databases
    monkeypatch.setenv("AIRFLOW_CONN_ZMINT_SRC", connection_json(source))
    monkeypatch.setenv("AIRFLOW_CONN_ZMINT_DST", connection_json(target))
    uri = str(tmp_path / "backups" / "{{ run_id | replace(':', '_') }}.jsonl.zst")
    with DAG(
        dag_id=unique_name("zmint_parts"),
        schedule=None,
        catchup=False,
        params={"jobs": Param(2, type="integer"), "fresh": Param(True, type="boolean")},
    ) as dag:
        backup = BackupToStorageOperator(
            task_id="backup", conn_id="zmint_src", uri=uri, jobs="{{ params.jobs }}"
        )
        restore = RestoreOperator(
            task_id="restore",
            conn_id="zmint_dst",
            backup_task_id="backup",
            jobs="{{ params.jobs }}",
            fresh="{{ params.fresh }}",
        )
        backup >> restore
    register_dag(dag)
    source.dispose()
    run = dag.test()
    assert task_states(run) == {"backup": "success", "restore": "success"}

    manifest = xcom(airflow_db, run, "backup", "return_value")
    assert manifest["layout"] == "parts" and manifest["jobs"] >= 1 and manifest["parts"] >= 4
    listed = find_backup(manifest["uri"])
    assert listed is not None and listed.parts == manifest["parts"]
    assert listed.digest == manifest["checksum"] and Path(manifest["uri"]).is_dir()
    stored = json.loads((Path(manifest["uri"]) / "manifest.json").read_text())
    assert stored["digest"] == manifest["checksum"]

    restored = xcom(airflow_db, run, "restore", "return_value")
    assert restored["source"] == manifest["uri"] and restored["jobs"] == 2
    assert restored["parts"] == manifest["parts"] and restored["resumed_parts"] == 0
    assert restored["rows"] == manifest["rows"]
    assert fingerprint(target.url) == fingerprint(source.url)
