"""RehearseMigrationOperator on real databases through a real Airflow metadata database:
production untouched, the report in XCom and stored beside the backup, a failed gate a red
task with the reason, a kill that still drops the scratch copy."""

from __future__ import annotations

import datetime
import inspect
import json
import os
import re
import signal
import threading
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk import DAG, chain
from airflow.sdk.exceptions import AirflowTaskTerminated
from sqlalchemy import text

from airflow_provider_zenmigrate.core.alembic import Alembic
from airflow_provider_zenmigrate.core.rehearsal.scratch import list_scratch, source_key
from airflow_provider_zenmigrate.core.utils import MigrationUtils
from airflow_provider_zenmigrate.get_provider_info import get_provider_info
from airflow_provider_zenmigrate.links import RehearsalReportLink
from airflow_provider_zenmigrate.operators import BackupToStorageOperator, RehearseMigrationOperator
from airflow_provider_zenmigrate.operators.rehearse import gates, seconds
from tests.support.example_dags import connection_json, register_dag, task_states, xcom
from tests.support.identity import fingerprint
from tests.support.paths import EXAMPLE_MIGRATIONS
from tests.support.servers import server_url, unique_name

HERE = Path(__file__).resolve().parent
DATA_FAILS = HERE / "migrations_data_fails"
SLOW = HERE / "migrations_slow"


def _run(dag: DAG, **kwargs: Any) -> Any:
    """``dag.test()`` for a DAG built in a test (serialized first, as the DAG processor would)."""
    register_dag(dag)
    return dag.test(**kwargs)


def _library(utils: MigrationUtils, *names: str) -> None:
    """Production at 0002a with authors (and one book)."""
    Alembic(utils.engine, script_location=EXAMPLE_MIGRATIONS).upgrade("0002a")
    with utils.engine.begin() as conn:
        for i, name in enumerate(names, start=1):
            conn.execute(text("INSERT INTO author (id, name) VALUES (:i, :n)"), {"i": i, "n": name})
        conn.execute(text("INSERT INTO book (id, author_id, title) VALUES (1, 1, 'Notes')"))


def _no_scratch_left(utils: MigrationUtils) -> None:
    assert list_scratch(utils, source_key(utils)) == {}


# -- arguments ---------------------------------------------------------------------------------
def test_arguments_documented_templated_and_registered() -> None:
    doc = inspect.getdoc(RehearseMigrationOperator) or ""
    found = dict(re.findall(r":param (\w+):(.*?)(?=\n\s*:param |\Z)", doc, flags=re.S))
    params = {
        n
        for n, p in inspect.signature(RehearseMigrationOperator.__init__).parameters.items()
        if n != "self" and p.kind is not p.VAR_KEYWORD
    }
    assert set(found) == params
    for name in RehearseMigrationOperator.template_fields:
        assert "(templated" in found[name], name
    assert {"uri", "fail_on", "max_duration"} <= set(RehearseMigrationOperator.template_fields)
    info = get_provider_info()
    assert "airflow_provider_zenmigrate.links.RehearsalReportLink" in info["extra-links"]
    modules = info["operators"][0]["python-modules"]
    assert "airflow_provider_zenmigrate.operators.rehearse" in modules
    assert RehearsalReportLink.name == "Rehearsal report"
    op = RehearseMigrationOperator(task_id="r", conn_id="c", script_location="s")
    assert op.retries == 0


def test_fail_on_and_max_duration_are_checked() -> None:
    assert gates("error, drift") == ["error", "drift"]
    assert gates(["lint", "downgrade"]) == ["lint", "downgrade"]
    assert gates("") == []
    with pytest.raises(ValueError, match=r"fail_on names 'errors', which is not a gate"):
        RehearseMigrationOperator(task_id="r", conn_id="c", script_location="s", fail_on="errors")
    # A template is checked once rendered, not while the DAG is parsed.
    RehearseMigrationOperator(
        task_id="r", conn_id="c", script_location="s", fail_on="{{ params.fail_on }}"
    )
    assert seconds(datetime.timedelta(minutes=2)) == 120.0
    assert seconds("90") == 90.0
    assert seconds("None") is None and seconds(None) is None and seconds("") is None
    with pytest.raises(ValueError, match="max_duration must be seconds"):
        seconds("ten minutes")


# -- the operator on real databases ------------------------------------------------------------
def test_clean_rehearsal_from_the_backup_stores_the_report(
    airflow_db: Path, utils: MigrationUtils, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Backup, then a rehearsal copied from it: green, production untouched, the report (with
    timings per revision) in XCom, stored beside the backup, and linked."""
    _library(utils, "Ada", "Grace")
    conn_id = unique_name("zm_rehearse")
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", connection_json(utils))
    before = fingerprint(utils.url)
    utils.dispose()
    uri = str(tmp_path / "backups" / "one.jsonl.gz")
    with DAG(dag_id=conn_id, schedule=None, catchup=False) as dag:
        chain(
            BackupToStorageOperator(task_id="backup", conn_id=conn_id, uri=uri),
            RehearseMigrationOperator(
                task_id="rehearse",
                conn_id=conn_id,
                script_location=str(EXAMPLE_MIGRATIONS),
                backup_task_id="backup",
                check_downgrade=True,
                fail_on="error",
                max_duration=datetime.timedelta(hours=1),
            ),
        )
    run = _run(dag)
    assert task_states(run) == {"backup": "success", "rehearse": "success"}
    report = xcom(airflow_db, run, "rehearse", "return_value")
    assert report == xcom(airflow_db, run, "rehearse", "rehearsal_report")
    assert report["passed"] is True and report["reason"] is None
    assert report["copied_from"] == "backup" and report["source_uri"] == uri
    ran = {r["revision"]: r for r in report["revisions"]}
    assert set(ran) == {"0002b", "0003"}
    assert all(r["status"] == "ok" and r["seconds"] >= 0 for r in ran.values()), ran
    assert report["downgrade"]["ok"] is True, report["downgrade"]  # 0003, then 0002b unapplied
    assert report["stored"]["markdown"] == uri + ".rehearsal.md"
    for suffix in (".rehearsal.json", ".rehearsal.md", ".upgrade.sql"):
        assert Path(uri + suffix).stat().st_size > 0, suffix
    assert "0003" in Path(uri + ".rehearsal.md").read_text()
    link = xcom(airflow_db, run, "rehearse", RehearsalReportLink().xcom_key)
    assert link == f"file://{uri}.rehearsal.md"
    assert fingerprint(utils.url) == before
    assert Alembic(utils.engine, script_location=EXAMPLE_MIGRATIONS).current_revisions() == [
        "0002a"
    ]
    _no_scratch_left(utils)


@pytest.mark.parametrize("dialect", ["mysql", "postgresql", "sqlite"])
def test_failing_on_production_data_fails_the_task_with_the_reason(
    airflow_db: Path, utils: MigrationUtils, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A unique index over production's duplicate names: the fresh copy fails at 0004, the
    task is red with the reason, the report is in XCom, and production is untouched."""
    _library(utils, "Ada", "Ada")
    conn_id = unique_name("zm_rfail")
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", connection_json(utils))
    before = fingerprint(utils.url)
    utils.dispose()
    with DAG(dag_id=conn_id, schedule=None, catchup=False) as dag:
        RehearseMigrationOperator(
            task_id="rehearse", conn_id=conn_id, script_location=str(DATA_FAILS)
        )
    run = _run(dag)
    assert task_states(run) == {"rehearse": "failed"}
    assert xcom(airflow_db, run, "rehearse", "return_value") is None
    report = xcom(airflow_db, run, "rehearse", "rehearsal_report")
    assert report["passed"] is False
    assert report["reason"].startswith("revision 0004"), report["reason"]
    assert report["copied_from"] == "fresh copy" and report["stored"] == {}
    assert [r["status"] for r in report["revisions"]][-1] == "failed"
    assert fingerprint(utils.url) == before
    _no_scratch_left(utils)

    # Report only: the same rehearsal with no gate passes, the failure still reported.
    with DAG(dag_id=conn_id + "_report", schedule=None, catchup=False) as only:
        RehearseMigrationOperator(
            task_id="rehearse", conn_id=conn_id, script_location=str(DATA_FAILS), fail_on=""
        )
    run = _run(only)
    assert task_states(run) == {"rehearse": "success"}
    report = xcom(airflow_db, run, "rehearse", "return_value")
    assert report["passed"] is True and report["revisions"][-1]["status"] == "failed"
    assert fingerprint(utils.url) == before


@pytest.mark.parametrize("dialect", ["postgresql"])
def test_rehearsal_server_connection(
    airflow_db: Path,
    utils: MigrationUtils,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """The copy goes on rehearsal_conn_id's server; one that cannot be reached is a clear
    failure before anything is copied."""
    _library(utils, "Ada")
    conn_id = unique_name("zm_rserver")
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", connection_json(utils))
    server = json.loads(connection_json(utils))
    monkeypatch.setenv(
        "AIRFLOW_CONN_ZM_REHEARSAL_SERVER", json.dumps({**server, "schema": "postgres"})
    )
    monkeypatch.setenv("AIRFLOW_CONN_ZM_NO_SERVER", json.dumps({**server, "port": 1}))
    utils.dispose()
    with DAG(dag_id=conn_id, schedule=None, catchup=False) as dag:
        for task_id, rehearsal_conn_id in (
            ("good", "zm_rehearsal_server"),
            ("bad", "zm_no_server"),
        ):
            RehearseMigrationOperator(
                task_id=task_id,
                conn_id=conn_id,
                script_location=str(EXAMPLE_MIGRATIONS),
                rehearsal_conn_id=rehearsal_conn_id,
            )
    capfd.readouterr()
    run = _run(dag)
    assert task_states(run) == {"good": "success", "bad": "failed"}
    report = xcom(airflow_db, run, "good", "return_value")
    assert report["passed"] is True
    assert report["scratch_server"].endswith(f":{server_url('postgresql').port or 5432}/postgres")
    output = "".join(capfd.readouterr())
    assert "the rehearsal could not run: the rehearsal server" in output
    assert "cannot be reached" in output
    _no_scratch_left(utils)


@pytest.mark.parametrize("dialect", ["postgresql", "mysql"])
def test_sigterm_unwinds_the_rehearsal_and_drops_the_copy(
    airflow_db: Path, utils: MigrationUtils, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What Airflow 3's task runner does on a kill: its SIGTERM handler calls on_kill() and
    returns. The operator's on_kill raises, so rehearse()'s finally drops the scratch copy
    while a revision is still running."""
    _library(utils, "Ada")
    conn_id = unique_name("zm_rkill")
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", connection_json(utils))
    before = fingerprint(utils.url)
    utils.dispose()
    op = RehearseMigrationOperator(task_id="rehearse", conn_id=conn_id, script_location=str(SLOW))
    seen: list[dict[str, bool]] = []

    def on_term(signum: int, frame: Any) -> None:  # the task runner's _on_term, verbatim
        op.on_kill()

    def kill_when_copied() -> None:
        for _ in range(300):
            found = list_scratch(utils, source_key(utils))
            if found:
                seen.append(found)
                break
            threading.Event().wait(0.1)
        os.kill(os.getpid(), signal.SIGTERM)

    previous = signal.signal(signal.SIGTERM, on_term)
    killer = threading.Thread(target=kill_when_copied)
    try:
        killer.start()
        with pytest.raises(AirflowTaskTerminated):
            op.execute(context={})
    finally:
        killer.join()
        signal.signal(signal.SIGTERM, previous)
    assert seen, "the scratch copy was never seen"
    _no_scratch_left(utils)
    assert fingerprint(utils.url) == before
    op.on_kill()  # after execute() returned: nothing to unwind, no raise
