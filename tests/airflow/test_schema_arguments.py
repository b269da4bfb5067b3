"""The operators' PostgreSQL schema and ownership arguments, templated from the example DAGs'
params, in real DAG runs."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import URL

from airflow_provider_zenmigrate.core.utils import MigrationUtils
from tests.support.example_dags import connection_json, example_dag_bag, task_states
from tests.support.servers import pg_script


def test_schema_arguments_are_templated(
    airflow_db: Path, two_schemas: URL, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    utils = MigrationUtils(url=two_schemas, connect_args={}, engine_args={})
    libpq = two_schemas.set(drivername="postgresql").render_as_string(hide_password=False)
    monkeypatch.setenv("AIRFLOW_CONN_ZM_SCHEMAS", connection_json(utils))
    prefix = str(tmp_path / "backups")
    nightly, restore = (
        example_dag_bag().get_dag("zenmigrate_nightly_backup"),
        example_dag_bag().get_dag("zenmigrate_restore"),
    )
    assert nightly is not None and restore is not None
    try:
        conf = {"conn_id": "zm_schemas", "backup_prefix": prefix, "exclude_schemas": "scratch"}
        assert str(nightly.test(run_conf=conf).state) == "success"
        (dump,) = sorted((tmp_path / "backups" / "nightly").glob("*.jsonl.zst"))
        manifest = json.loads(Path(str(dump) + ".manifest.json").read_text())
        assert manifest["header"]["schemas"] == ["app", "public"]
        assert manifest["header"]["excluded_schemas"] == [
            {"schema": "scratch", "reason": "named by exclude_schemas"}
        ]

        pg_script(two_schemas, "INSERT INTO app.t VALUES (3)")
        run_conf = {"conn_id": "zm_schemas", "uri": str(dump), "latest_under": ""}
        # Told to leave app alone, the restore refuses the dump that holds it: nothing changes.
        refused = restore.test(run_conf={**run_conf, "exclude_schemas": "app"})
        assert task_states(refused) == {"restore": "failed"}
        with psycopg.connect(libpq) as conn:
            assert conn.execute(b"SELECT count(*) FROM app.t").fetchone() == (3,)
        restore = example_dag_bag().get_dag(
            "zenmigrate_restore"
        )  # a test run renders its tasks in place
        assert restore is not None
        restored = restore.test(run_conf={**run_conf, "no_owner": True})
        assert task_states(restored) == {"restore": "success"}
        with psycopg.connect(libpq) as conn:
            assert conn.execute(b"SELECT count(*) FROM app.t").fetchone() == (2,)
            # scratch was not in the dump: left alone.
            assert conn.execute(b"SELECT id FROM scratch.x").fetchall() == [(7,)]
    finally:
        utils.dispose()
