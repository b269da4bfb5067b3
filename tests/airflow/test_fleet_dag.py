"""The fleet DAG: one mapped task group per database, through real ``dag.test()`` runs."""

from __future__ import annotations

import logging
import sqlite3
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk import BaseSensorOperator
from airflow.sdk.exceptions import ParamValidationError
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
STEPS = [
    "wait_turn",
    "check_pending",
    "backup",
    "rehearse",
    "upgrade",
    "restore_needed",
    "restore_on_failure",
]


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


def _spans(airflow_home: Path, run: Any, count: int) -> list[tuple[datetime, datetime]]:
    """Each database's time in flight, by map index, from the metadata DB: from its
    wait_turn's end (its turn came) to the end of its upgrade or, when that failed, of its
    restore. (Restore tasks skipped after a good upgrade did nothing; Airflow skips them
    only once every upgrade of the run is done, see unfinished_before in the DAG.)"""
    with sqlite3.connect(airflow_home / "airflow.db") as conn:
        rows = conn.execute(
            "SELECT task_id, map_index, end_date, state FROM task_instance "
            "WHERE dag_id = ? AND run_id = ? AND task_id LIKE 'database.%'",
            (run.dag_id, run.run_id),
        ).fetchall()
    ends: dict[tuple[str, int], datetime] = {
        (t, m): datetime.fromisoformat(str(e)) for t, m, e, _ in rows if e is not None
    }
    upgrade_failed = {m: s == "failed" for t, m, _, s in rows if t == "database.upgrade"}
    spans = []
    for index in range(count):
        start = ends[("database.wait_turn", index)]
        last = "restore_on_failure" if upgrade_failed[index] else "upgrade"
        end = max(ends[(f"database.{s}", index)] for s in STEPS[: STEPS.index(last) + 1])
        assert start <= end, (index, ends)
        spans.append((start, end))
    return spans


def _most_in_flight(spans: list[tuple[datetime, datetime]]) -> int:
    """The most spans holding one moment (a span ending as another starts does not count)."""
    return max(sum(1 for s, e in spans if s <= at < e) for at, _ in spans)


def _reschedules(airflow_home: Path, run: Any, task_id: str) -> dict[int, int]:
    """How many times each map index of ``task_id`` was rescheduled in the run."""
    with sqlite3.connect(airflow_home / "airflow.db") as conn:
        rows = conn.execute(
            "SELECT ti.map_index, COUNT(tr.id) FROM task_instance ti "
            "LEFT JOIN task_reschedule tr ON tr.ti_id = ti.id "
            "WHERE ti.dag_id = ? AND ti.run_id = ? AND ti.task_id = ? GROUP BY ti.map_index",
            (run.dag_id, run.run_id, task_id),
        ).fetchall()
    return {int(m): int(n) for m, n in rows}


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
    # The run's param bounds the databases in flight, through wait_turn, first in the group
    # and in reschedule mode (a waiting database holds no worker slot); no parse-time bound.
    wait_turn = dag.get_task("database.wait_turn")
    assert isinstance(wait_turn, BaseSensorOperator) and wait_turn.mode == "reschedule"
    assert [t.task_id for t in wait_turn.downstream_list] == ["database.check_pending"]
    assert {t.max_active_tis_per_dagrun for t in tasks} == {None}
    assert dag.params["max_parallel"] == 4 and dag.params["poke_interval"] == 30
    assert "max_map_length" in (dag.doc_md or "")
    assert "max_parallel" in (dag.doc_md or "") and "reschedule" in (dag.doc_md or "")


def test_one_failing_database_is_restored_the_others_upgraded(
    airflow_db: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Three databases, one at a time (max_parallel 1); the second holds two authors named
    alike, so 0004 fails there: only it is restored (to its content before the run), the
    others end at head, the run is red and fleet_report names the failed connection. No two
    databases were ever in flight at once."""
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
        "max_parallel": 1,
        "poke_interval": 1,
    }
    run, _ = run_example_dag(FLEET, conf, capfd)
    assert str(run.state) == "failed"
    tis = _task_instances(airflow_db, run)
    states = {(t, m): s for (t, m), (s, _) in tis.items()}
    assert states[("conn_ids", -1)] == "success"
    assert states[("fleet_report", -1)] == "failed"
    for index in (0, 2):  # alpha, charlie
        got = [states[(f"database.{s}", index)] for s in STEPS]
        assert got == ["success"] * 5 + ["skipped", "skipped"], (index, tis)
    got = [states[(f"database.{s}", 1)] for s in STEPS]
    assert got == ["success", "success", "success", "success", "failed", "success", "success"]

    # max_parallel 1: each database's span, from its turn to its group's last task, ends
    # before the next one's begins; the later ones waited (were rescheduled) for theirs.
    spans = _spans(airflow_db, run, 3)
    for a in range(3):
        for b in range(a + 1, 3):
            assert spans[a][1] <= spans[b][0] or spans[b][1] <= spans[a][0], spans
    waited = _reschedules(airflow_db, run, "database.wait_turn")
    assert waited[0] == 0 and waited[1] >= 1 and waited[2] >= 1, waited

    # Map indexes are labelled by connection id, on every task that ran (5 steps each,
    # and bravo's restore_needed and restore_on_failure).
    labels = {
        (task_id, index): label
        for (task_id, index), (state, label) in tis.items()
        if task_id.startswith("database.") and state != "skipped"
    }
    assert len(labels) == 17, tis
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


def test_max_parallel_bounds_the_databases_in_flight(
    airflow_db: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """max_parallel 2 over three databases: never more than two in flight, the first two
    start without waiting (fewer than two come before them), all three end upgraded."""
    names = ["hfp_one", "hfp_two", "hfp_three"]
    urls = {n: _database(tmp_path, monkeypatch, n, "Ada", n) for n in names}
    conf = {
        "conn_ids": names,
        "backup_prefix": str(tmp_path / "backups"),
        "script_location": str(DATA_FAILS),
        "max_parallel": 2,
        "poke_interval": 1,
    }
    run, states = run_example_dag(FLEET, conf, capfd)
    assert str(run.state) == "success", states
    assert all(_revisions(url) == ["0004"] for url in urls.values())
    assert _most_in_flight(_spans(airflow_db, run, 3)) <= 2
    waited = _reschedules(airflow_db, run, "database.wait_turn")
    assert waited[0] == waited[1] == 0, waited


def test_a_database_whose_turn_never_comes_is_named_untouched(
    airflow_db: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A sensor timeout of 0 s: the second database, waiting behind the first at max_parallel
    1, fails at wait_turn on its first check; it is not touched, the first one is upgraded
    and fleet_report fails the run naming it and why."""
    caplog.set_level(logging.INFO)
    # wait_turn reads [sensors] default_timeout when the DAG is parsed (here, in the test).
    monkeypatch.setenv("AIRFLOW__SENSORS__DEFAULT_TIMEOUT", "0")
    first = _database(tmp_path, monkeypatch, "hft_first", "Ada")
    second = _database(tmp_path, monkeypatch, "hft_second", "Grace")
    before = fingerprint(second)
    conf = {
        "conn_ids": ["hft_first", "hft_second"],
        "backup_prefix": str(tmp_path / "backups"),
        "script_location": str(DATA_FAILS),
        "max_parallel": 1,
        "poke_interval": 1,
    }
    run, _ = run_example_dag(FLEET, conf, capfd)
    assert str(run.state) == "failed"
    tis = _task_instances(airflow_db, run)
    assert tis[("database.wait_turn", 1)][0] == "failed", tis
    assert tis[("database.check_pending", 1)][0] == "upstream_failed", tis
    assert tis[("database.upgrade", 0)][0] == "success", tis
    assert _revisions(first) == ["0004"]
    assert fingerprint(second) == before
    assert [p.name for p in (tmp_path / "backups").rglob("*.jsonl.zst")] == ["hft_first.jsonl.zst"]
    output = "".join(capfd.readouterr()) + caplog.text
    assert "1 of 2 databases failed: hft_second (its turn never came" in output


def test_max_parallel_below_one_is_refused(
    airflow_db: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """The param's schema (minimum 1) refuses the run before it starts, naming the param."""
    conf = {"conn_ids": ["hfz_any"], "backup_prefix": str(tmp_path / "backups")}
    for name in ("max_parallel", "poke_interval"):
        with pytest.raises(
            ParamValidationError,
            match=f"Invalid input for param {name}: 0 is less than the minimum of 1",
        ):
            run_example_dag(FLEET, {**conf, name: 0}, capfd)
    assert not (tmp_path / "backups").exists()
