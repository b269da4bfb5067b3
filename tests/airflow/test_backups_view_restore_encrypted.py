"""Restoring an encrypted backup from the "Backups" view: "Restore…" gives the run of
``zenmigrate_restore`` the database's ``encryption_conn_id`` (the connection's id, never the
key), and the DAG renders it into its ``RestoreOperator``.

Through Airflow's own API server app and metadata database (tests/support/backups_view.py),
with a real encrypted dump of a MariaDB database (a function included) on disk; the DAG run
is a real ``dag.test()`` with the conf the view wrote to the triggered run:

- with the key connection: an exact restore (fingerprint), the function restored without
  ``allow_routines`` (the dump authenticated under the key);
- the same conf without it: the run fails naming the dump's key id and the param, and the
  target is left as it was;
- a restore that would fail for want of its key (none configured, a missing key connection,
  another key) is refused by the view, and no run is made;
- the key (raw, hex, base64) and the dump's data key are in no conf, answer, XCom value,
  rendered field or log line.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import URL

from airflow_provider_zenmigrate.core.crypto import Encryption, LocalKey
from airflow_provider_zenmigrate.core.storage import envelope_at
from airflow_provider_zenmigrate.core.utils import MigrationUtils
from tests.support.backups_view import (
    SIMPLE_AUTH_MANAGER,
    ViewClient,
    environment,
    restore_runs,
    sync_example_dags,
    view_client,
)
from tests.support.engine_support import populate_library
from tests.support.example_dags import connection_json, run_example_dag
from tests.support.identity import fingerprint
from tests.support.servers import database_url, unique_name

RESTORE_DAG = "zenmigrate_restore"
KEYED, NO_KEY, BROKEN_KEY, WRONG_KEY = "zmvr_keyed", "zmvr_nokey", "zmvr_brokenkey", "zmvr_wrongkey"
TARGET = "zmvr_target"


@dataclass
class Setup:
    view: ViewClient
    source: URL
    target: URL
    encrypted: str
    plain: str
    key_id: str
    #: What must appear nowhere: the keys and the dump's data key, raw, hex and base64.
    secrets: list[bytes]


def _forms(raw: bytes) -> list[bytes]:
    encoded = base64.b64encode(raw)
    return [raw, raw.hex().encode(), encoded, encoded.rstrip(b"="), base64.urlsafe_b64encode(raw)]


def _leaks(s: Setup, text: str | bytes) -> list[bytes]:
    data = text.encode() if isinstance(text, str) else text
    return [secret for secret in s.secrets if secret in data]


@pytest.fixture(scope="module")
def setup(airflow_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    folder = tmp_path_factory.mktemp("zmvr_view")
    source = MigrationUtils(
        url=database_url("mysql", folder, unique_name("zmvr")), connect_args={}, engine_args={}
    )
    target = MigrationUtils(
        url=database_url("mysql", folder, unique_name("zmvr")), connect_args={}, engine_args={}
    )
    source.create_database()
    target.create_database()
    try:
        populate_library(source, authors=20)
        with source.engine.begin() as conn:
            # Code the server runs: restored without allow_routines only from an authentic dump.
            conn.exec_driver_sql(
                "CREATE FUNCTION f_double(x INT) RETURNS INT DETERMINISTIC RETURN x * 2"
            )
        key, other_key = os.urandom(32), os.urandom(32)
        backups = folder / "backups"
        encrypted, plain = str(backups / "sealed.jsonl.zst"), str(backups / "plain.jsonl.zst")
        with MigrationUtils(
            url=source.url, connect_args={}, engine_args={}, encryption=Encryption(LocalKey(key))
        ) as keyed:
            keyed.backup_database_to_file(encrypted)
        source.backup_database_to_file(plain)
        source.dispose()
        envelope = envelope_at(encrypted)
        assert envelope is not None
        data_key = LocalKey(key).unwrap(envelope.key)
        prefixes = [str(backups) + "/"]
        config = {
            KEYED: {"encryption_conn_id": "zmvr_key", "prefixes": prefixes},
            NO_KEY: prefixes,
            BROKEN_KEY: {"encryption_conn_id": "zmvr_no_such_key", "prefixes": prefixes},
            WRONG_KEY: {"encryption_conn_id": "zmvr_other_key", "prefixes": prefixes},
        }
        env = {
            "AIRFLOW_VAR_ZENMIGRATE_BACKUP_PREFIXES": json.dumps(config),
            **{f"AIRFLOW_CONN_{c.upper()}": connection_json(source) for c in config},
            f"AIRFLOW_CONN_{TARGET.upper()}": connection_json(target),
            "AIRFLOW_CONN_ZMVR_KEY": json.dumps(
                {"conn_type": "generic", "password": base64.b64encode(key).decode()}
            ),
            "AIRFLOW_CONN_ZMVR_OTHER_KEY": json.dumps(
                {"conn_type": "generic", "password": base64.b64encode(other_key).decode()}
            ),
            "AIRFLOW__CORE__AUTH_MANAGER": SIMPLE_AUTH_MANAGER,
        }
        with environment(env):
            sync_example_dags()
            with view_client("zmvr") as view:
                yield Setup(
                    view=view,
                    source=source.url,
                    target=target.url,
                    encrypted=encrypted,
                    plain=plain,
                    key_id=LocalKey(key).key_id,
                    secrets=[f for raw in (key, other_key, data_key) for f in _forms(raw)],
                )
    finally:
        for utils in (source, target):
            utils.drop_database()
            utils.dispose()


def _trigger(s: Setup, conn_id: str, uri: str) -> Any:
    body = {"conn_id": conn_id, "uri": uri, "target_conn_id": TARGET}
    return s.view.post("/api/restore", body, "user")


def _conf_of_triggered_run(s: Setup, conn_id: str, uri: str) -> dict[str, Any]:
    """Restore… as a user; the conf Airflow stored for the run it created."""
    response = _trigger(s, conn_id, uri)
    assert response.status_code == 200, response.text
    assert not _leaks(s, response.text)
    (conf,) = [c for run_id, c, _ in restore_runs() if run_id == response.json()["run_id"]]
    return conf


def _stored_for_run(airflow_home: Path, run: Any) -> tuple[list[str], list[str]]:
    """Every XCom value and rendered template field of a run, as stored."""
    with sqlite3.connect(airflow_home / "airflow.db") as conn:
        xcoms = conn.execute(
            "SELECT value FROM xcom WHERE dag_id = ? AND run_id = ?", (run.dag_id, run.run_id)
        ).fetchall()
        rendered = conn.execute(
            "SELECT rendered_fields FROM rendered_task_instance_fields "
            "WHERE dag_id = ? AND run_id = ?",
            (run.dag_id, run.run_id),
        ).fetchall()
    return [str(v) for (v,) in xcoms], [str(v) for (v,) in rendered]


def test_restore_of_an_encrypted_backup_from_the_view_is_exact(
    setup: Setup,
    airflow_db: Path,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    conf = _conf_of_triggered_run(setup, KEYED, setup.encrypted)
    assert conf == {
        "conn_id": TARGET,
        "storage_conn_id": "",
        "uri": setup.encrypted,
        "encryption_conn_id": "zmvr_key",
    }
    assert not _leaks(setup, json.dumps(conf))

    run, states = run_example_dag(RESTORE_DAG, conf, capfd)
    assert states == {"restore": "success"}, states
    assert fingerprint(setup.target) == fingerprint(setup.source)
    # Restored without allow_routines: the dump authenticated under the key.
    with (
        MigrationUtils(url=setup.target, connect_args={}, engine_args={}) as target,
        target.engine.connect() as conn,
    ):
        assert conn.exec_driver_sql("SELECT f_double(21)").scalar() == 42

    xcoms, rendered = _stored_for_run(airflow_db, run)
    assert any(setup.encrypted in x for x in xcoms), xcoms
    assert len(rendered) == 1 and '"encryption_conn_id": "zmvr_key"' in rendered[0], rendered
    output = "".join(capfd.readouterr()) + caplog.text
    assert "restored" in output, output[-3000:]
    for stored in (*xcoms, *rendered, output):
        assert not _leaks(setup, stored)


def test_without_the_key_connection_the_run_fails_naming_the_key(
    setup: Setup,
    airflow_db: Path,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    conf = _conf_of_triggered_run(setup, KEYED, setup.encrypted)
    del conf["encryption_conn_id"]
    before = fingerprint(setup.target)
    run, states = run_example_dag(RESTORE_DAG, conf, capfd)
    assert states == {"restore": "failed"}, states
    output = "".join(capfd.readouterr()) + caplog.text
    assert f"is encrypted (local key {setup.key_id})" in output, output[-3000:]
    assert "encryption_conn_id=not set" in output, output[-3000:]
    assert fingerprint(setup.target) == before
    xcoms, rendered = _stored_for_run(airflow_db, run)
    for stored in (*xcoms, *rendered, output):
        assert not _leaks(setup, stored)


def test_a_restore_that_would_fail_for_want_of_its_key_is_refused(setup: Setup) -> None:
    runs = len(restore_runs())
    no_key = _trigger(setup, NO_KEY, setup.encrypted)
    assert no_key.status_code == 400
    detail = no_key.json()["detail"]
    assert f"local key {setup.key_id}" in detail and "cannot be restored without its key" in detail
    assert '"encryption_conn_id" of' in detail
    broken = _trigger(setup, BROKEN_KEY, setup.plain)
    assert broken.status_code == 400 and "'zmvr_no_such_key'" in broken.json()["detail"]
    wrong = _trigger(setup, WRONG_KEY, setup.encrypted)
    assert wrong.status_code == 400 and wrong.json()["detail"].startswith("wrong key")
    assert setup.key_id in wrong.json()["detail"]
    for response in (no_key, broken, wrong):
        assert not _leaks(setup, response.text)
    assert len(restore_runs()) == runs


def test_a_plaintext_backup_of_a_database_without_a_key_gets_no_key_param(setup: Setup) -> None:
    conf = _conf_of_triggered_run(setup, NO_KEY, setup.plain)
    assert conf == {"conn_id": TARGET, "storage_conn_id": "", "uri": setup.plain}
    keyed = _conf_of_triggered_run(setup, KEYED, setup.plain)
    assert keyed["encryption_conn_id"] == "zmvr_key"
