"""The fleet DAG: one mapped task group per database, through real ``dag.test()`` runs."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import URL

from airflow_provider_zenmigrate.core.alembic import Alembic
from airflow_provider_zenmigrate.core.utils import MigrationUtils
from tests.support.example_dags import (
    connection_json,
    parsed_without_connections,
    run_example_dag,
)
from tests.support.identity import fingerprint
from tests.support.paths import EXAMPLE_MIGRATIONS
from tests.support.servers import unique_name

FLEET = "zenmigrate_fleet_backup_then_migrate"
# 0004 indexes author names uniquely: it fails only where two authors share a name.
DATA_FAILS = Path(__file__).resolve().parent / "migrations_data_fails"
STEPS = ["check_pending", "backup", "rehearse", "upgrade", "restore_needed", "restore_on_failure"]


def _database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, conn_id: str, *authors: str) -> URL:
    """A SQLite demo database at 0002a holding ``authors``, behind connection ``conn_id``."""
    url = URL.create("sqlite", database=str(tmp_path / f"{conn_id}.db"))
    utils = MigrationUtils(url=url, connect_args={}, engine_args={})
    try:
        utils.create_database()
        Alembic(utils.engine, script_location=EXAMPLE_MIGRATIONS).upgrade("0002a")
        with utils.engine.begin() as conn:
            for n, name in enumerate(authors, start=1):
                conn.execute(
                    text("INSERT INTO author (id, name) VALUES (:id, :name)"),
                    {"id": n, "name": name},
                )
            conn.execute(text("INSERT INTO book (id, author_id, title) VALUES (1, 1, 'Notes')"))
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", connection_json(utils))
    finally:
        utils.dispose()
    return url


def _revisions(url: URL) -> list[str]:
    utils = MigrationUtils(url=url, connect_args={}, engine_args={})
    try:
        return Alembic(utils.engine, script_location=DATA_FAILS).current_revisions()
    finally:
        utils.dispose()


def _task_instances(airflow_home: Path, run: Any) -> dict[tuple[str, int], tuple[str, str]]:
    """(task_id, map_index) -> (state, rendered_map_index) of a run, from the metadata DB."""
    with sqlite3.connect(airflow_home / "airflow.db") as conn:
        rows = conn.execute(
            "SELECT task_id, map_index, state, rendered_map_index FROM task_instance "
            "WHERE dag_id = ? AND run_id = ?",
            (run.dag_id, run.run_id),
        ).fetchall()
    return {(t, m): (str(s), str(label)) for t, m, s, label in rows}


def test_fleet_dag_imports_without_touching_a_connection(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bag, touched = parsed_without_connections(monkeypatch)
    assert bag.import_errors == {}
    dag = bag.dags[FLEET]
    assert touched == []
    group = dag.task_group_dict["database"]
    tasks = list(group.iter_tasks())
    assert sorted(t.task_id for t in tasks) == sorted(f"database.{s}" for s in STEPS)
    # Concurrency is bounded on every step of the group, by the max_parallel param's value.
    assert {t.max_active_tis_per_dagrun for t in tasks} == {dag.params["max_parallel"]}
    assert "max_map_length" in (dag.doc_md or "")


def test_one_failing_database_is_restored_the_others_upgraded(
    airflow_db: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Three databases; the second holds two authors named alike, so 0004 fails there: only
    it is restored (to its content before the run), the others end at head, the run is red
    and fleet_report names the failed connection."""
    caplog.set_level(logging.INFO)
    names = ["hfl_alpha", "hfl_bravo", "hfl_charlie"]
    urls = {
        "hfl_alpha": _database(tmp_path, monkeypatch, "hfl_alpha", "Ada", "Grace"),
        "hfl_bravo": _database(tmp_path, monkeypatch, "hfl_bravo", "Ada", "Ada"),
        "hfl_charlie": _database(tmp_path, monkeypatch, "hfl_charlie", "Edsger"),
    }
    before = {name: fingerprint(url) for name, url in urls.items()}
    conf = {
        "conn_ids": names,
        "backup_prefix": str(tmp_path / "backups"),
        "script_location": str(DATA_FAILS),
        "fail_on": "",  # the rehearsal only reports: bravo's upgrade runs and fails
    }
    run, _ = run_example_dag(FLEET, conf, capfd)
    assert str(run.state) == "failed"
    tis = _task_instances(airflow_db, run)
    states = {(t, m): s for (t, m), (s, _) in tis.items()}
    assert states[("conn_ids", -1)] == "success"
    assert states[("fleet_report", -1)] == "failed"
    for index in (0, 2):  # alpha, charlie
        got = [states[(f"database.{s}", index)] for s in STEPS]
        assert got == ["success"] * 4 + ["skipped", "skipped"], (index, tis)
    got = [states[(f"database.{s}", 1)] for s in STEPS]
    assert got == ["success", "success", "success", "failed", "success", "success"], tis

    # Map indexes are labelled by connection id, on every task that ran (4 steps each,
    # and bravo's restore_needed and restore_on_failure).
    labels = {
        (task_id, index): label
        for (task_id, index), (state, label) in tis.items()
        if task_id.startswith("database.") and state != "skipped"
    }
    assert len(labels) == 14, tis
    assert all(label == names[index] for (_, index), label in labels.items()), labels

    assert _revisions(urls["hfl_alpha"]) == _revisions(urls["hfl_charlie"]) == ["0004"]
    assert fingerprint(urls["hfl_bravo"]) == before["hfl_bravo"]
    assert fingerprint(urls["hfl_alpha"]) != before["hfl_alpha"]
    backups = sorted(p.name for p in (tmp_path / "backups").rglob("*.jsonl.zst"))
    assert backups == [f"{n}.jsonl.zst" for n in names]

    output = "".join(capfd.readouterr()) + caplog.text
    assert "upgrade failed at revision 0004" in output
    assert (
        "1 of 3 databases failed: hfl_bravo (the upgrade failed; restored from the backup "
        "taken before it)"
    ) in output
    assert "hfl_alpha: upgraded" in output and "hfl_charlie: upgraded" in output


def test_an_unknown_connection_is_named_and_nothing_is_touched(
    airflow_db: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The list comes from the Variable; one connection in it does not exist: the run fails
    at conn_ids naming it, before any database is backed up or migrated."""
    caplog.set_level(logging.INFO)
    known = _database(tmp_path, monkeypatch, "hfl_known", "Ada")
    before = fingerprint(known)
    missing = unique_name("hfl_missing")
    monkeypatch.setenv("AIRFLOW_VAR_ZENMIGRATE_FLEET_CONN_IDS", f'["hfl_known", "{missing}"]')
    conf = {"backup_prefix": str(tmp_path / "backups"), "script_location": str(DATA_FAILS)}
    run, states = run_example_dag(FLEET, conf, capfd)
    assert str(run.state) == "failed", states
    assert states["conn_ids"] == "failed"
    assert states["fleet_report"] == "failed"
    assert {states[f"database.{s}"] for s in STEPS} == {"upstream_failed"}
    output = "".join(capfd.readouterr()) + caplog.text
    assert (
        f"1 of the 2 connections in the Variable zenmigrate_fleet_conn_ids is not defined: "
        f"'{missing}'; no database was touched"
    ) in output
    assert f"AIRFLOW_CONN_{missing.upper()}" in output
    assert "the list of connections was refused" in output
    assert fingerprint(known) == before
    assert not (tmp_path / "backups").exists()

    # max_parallel is fixed when the DAG is parsed: a run asking for another is refused.
    run, states = run_example_dag(FLEET, {**conf, "conn_ids": ["hfl_known"], "max_parallel": 1})
    assert str(run.state) == "failed", states
    assert states["conn_ids"] == "failed"
    output = "".join(capfd.readouterr()) + caplog.text
    assert "max_parallel is 4 in this DAG and cannot change per run" in output
    assert fingerprint(known) == before
