"""Encrypted dumps through Airflow (issue 26): the operators take the key from a connection
(``encryption_conn_id``: a base64 key as its password), back up encrypted, restore it (its
function trusted: the dump is authentic) in a real ``dag.test()`` run, and the key is in no
task log, XCom value or rendered template field."""

from __future__ import annotations

import base64
import json
import logging
import os
import sqlite3
from pathlib import Path

import pytest
from airflow.sdk import DAG, Connection

from airflow_provider_zenmigrate.core.catalog import list_backups
from airflow_provider_zenmigrate.core.crypto import MAGIC, Encryption, LocalKey
from airflow_provider_zenmigrate.core.errors import EncryptionKeyError
from airflow_provider_zenmigrate.core.utils import MigrationUtils
from airflow_provider_zenmigrate.hooks.encryption import encryption_from_connection
from airflow_provider_zenmigrate.operators import BackupToStorageOperator, RestoreOperator
from tests.support.engine_support import populate_library
from tests.support.example_dags import connection_json, register_dag, task_states
from tests.support.identity import fingerprint
from tests.support.servers import database_url, unique_name

DAG_ID = "zm_encrypted_backup_restore"


def _rows(airflow_home: Path, sql: str) -> list[str]:
    with sqlite3.connect(airflow_home / "airflow.db") as conn:
        return [str(value) for (value,) in conn.execute(sql, (DAG_ID,))]


@pytest.mark.parametrize("dialect", ["mysql"], indirect=True)
def test_backup_and_restore_encrypted_with_the_key_from_a_connection(
    airflow_db: Path,
    utils: MigrationUtils,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    populate_library(utils)
    with utils.engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE FUNCTION f_double(x INT) RETURNS INT DETERMINISTIC RETURN x * 2"
        )
    utils.dispose()
    raw = os.urandom(32)
    key = base64.b64encode(raw).decode()
    target = MigrationUtils(
        url=database_url("mysql", tmp_path, unique_name("zmencair")),
        connect_args={},
        engine_args={},
    )
    target.create_database()
    try:
        monkeypatch.setenv("AIRFLOW_CONN_ZM_ENC_SOURCE", connection_json(utils))
        monkeypatch.setenv("AIRFLOW_CONN_ZM_ENC_TARGET", connection_json(target))
        monkeypatch.setenv(
            "AIRFLOW_CONN_ZM_ENC_KEY", json.dumps({"conn_type": "generic", "password": key})
        )
        dump = tmp_path / "backups" / "library.jsonl.zst"
        with DAG(DAG_ID, schedule=None) as dag:
            backup = BackupToStorageOperator(
                task_id="backup",
                conn_id="zm_enc_source",
                uri=str(dump),
                encryption_conn_id="zm_enc_key",
            )
            restore = RestoreOperator(
                task_id="restore",
                conn_id="zm_enc_target",
                backup_task_id="backup",
                encryption_conn_id="zm_enc_key",
            )
            backup >> restore
        register_dag(dag)
        capfd.readouterr()
        run = dag.test()
        states = task_states(run)
        assert states == {"backup": "success", "restore": "success"}, states

        stored = dump.read_bytes()
        assert stored.startswith(MAGIC) and b"author" not in stored
        target.dispose()
        assert fingerprint(target.url) == fingerprint(utils.url)
        with target.engine.connect() as conn:  # restored without allow_routines
            assert conn.exec_driver_sql("SELECT f_double(21)").scalar() == 42
        target.dispose()
        (listed,) = list_backups(str(dump.parent) + "/", encryption=Encryption(LocalKey(raw)))
        assert listed.encrypted and listed.key_id == LocalKey(raw).key_id

        output = "".join(capfd.readouterr()) + caplog.text
        xcoms = _rows(airflow_db, "SELECT value FROM xcom WHERE dag_id = ?")
        rendered = _rows(
            airflow_db, "SELECT rendered_fields FROM rendered_task_instance_fields WHERE dag_id = ?"
        )
        assert any("library.jsonl.zst" in x for x in xcoms), xcoms
        assert len(rendered) == 2 and all("zm_enc_" in r for r in rendered), rendered
        assert "backup complete" in output, output[-3000:]
        for secret in (key, raw.hex(), key.rstrip("=")):
            assert secret not in output
            assert not any(secret in x for x in xcoms)
            assert not any(secret in r for r in rendered)
    finally:
        target.drop_database()
        target.dispose()


def test_key_connection_errors_name_the_connection_never_the_key() -> None:
    short = base64.b64encode(os.urandom(16)).decode()
    cases = [
        (Connection(conn_id="k", conn_type="generic"), "holds no key"),
        (Connection(conn_id="k", conn_type="generic", password=short), "holds 16 bytes"),
        (Connection(conn_id="k", conn_type="generic", password="%%not"), "is not base64"),
        (
            Connection(conn_id="k", conn_type="generic", extra=json.dumps({"kms_key_id": ""})),
            "kms_key_id is empty",
        ),
    ]
    for connection, message in cases:
        with pytest.raises(EncryptionKeyError) as refused:
            encryption_from_connection(connection, "k")
        assert message in str(refused.value) and "'k'" in str(refused.value)
        assert short not in str(refused.value)
    kms = encryption_from_connection(
        Connection(
            conn_id="k",
            conn_type="generic",
            extra=json.dumps(
                {
                    "kms_key_id": "arn:aws:kms:us-east-1:1:key/x",
                    "region_name": "us-east-1",
                    "require_encryption": True,
                }
            ),
        ),
        "k",
    )
    assert [p.kind for p in kms.keys] == ["aws-kms"] and kms.require
