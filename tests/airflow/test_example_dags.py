"""The example DAGs: they import cleanly, touch no connection while parsed, and work."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from airflow_provider_zenmigrate.core.alembic import Alembic
from airflow_provider_zenmigrate.core.utils import MigrationUtils
from tests.support.example_dags import (
    connection_json,
    example_dag_bag,
    parsed_without_connections,
    run_example_dag,
    task_states,
    xcom,
)
from tests.support.identity import fingerprint
from tests.support.object_stores import Store
from tests.support.paths import EXAMPLE_MIGRATIONS, REPO
from tests.support.servers import SECRET, database_url, unique_name

FAILING = REPO / "example_dags" / "migrations_failing"
pytest_plugins = ["tests.support.object_stores"]

BACKUP_THEN_MIGRATE = "zenmigrate_backup_then_migrate"
DAG_IDS = {
    BACKUP_THEN_MIGRATE,
    "zenmigrate_nightly_backup",
    "zenmigrate_restore",
    "zenmigrate_fleet_backup_then_migrate",
}


def test_dags_import_without_touching_a_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    bag, touched = parsed_without_connections(monkeypatch)
    assert bag.import_errors == {}
    assert set(bag.dag_ids) == DAG_IDS
    assert touched == []


def _demo_database(utils: MigrationUtils) -> None:
    utils.create_database()
    Alembic(utils.engine, script_location=EXAMPLE_MIGRATIONS).upgrade("0002a")
    with utils.engine.begin() as conn:
        conn.execute(text("INSERT INTO author (id, name) VALUES (1, 'Ada'), (2, 'Grace')"))
        conn.execute(text("INSERT INTO book (id, author_id, title) VALUES (1, 1, 'Notes')"))


def _production(
    utils: MigrationUtils, monkeypatch: pytest.MonkeyPatch, conn_id: str, *sql: str
) -> dict[str, Any]:
    """The demo database (then ``sql`` run on it) behind Airflow connection ``conn_id``;
    returns its fingerprint before any run, its engine disposed for the run's own."""
    _demo_database(utils)
    with utils.engine.begin() as conn:
        for statement in sql:
            conn.exec_driver_sql(statement)
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", connection_json(utils))
    before = fingerprint(utils.url)
    utils.dispose()
    return before


def test_backup_then_migrate_success_and_failure(
    airflow_db: Path,
    utils: MigrationUtils,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    before_failure = _production(utils, monkeypatch, "zm_target")
    conf = {"conn_id": "zm_target", "backup_prefix": str(tmp_path / "backups")}
    # fail_on "": the rehearsal only reports, so the upgrade runs, fails, and is rolled back.
    failing = {**conf, "script_location": str(FAILING), "fail_on": ""}
    failed, states = run_example_dag(BACKUP_THEN_MIGRATE, failing)
    assert str(failed.state) == "failed", states
    assert states["rehearse"] == "success"
    assert states["fail_run_after_rehearsal"] == "skipped"
    assert states["upgrade"] == "failed"
    assert states["restore_on_failure"] == "success"
    assert states["fail_run"] == "failed"
    assert states["fail_run_without_backup"] == "skipped"
    utils.dispose()
    assert fingerprint(utils.url) == before_failure
    assert "upgrade failed at revision 0004" in "".join(capfd.readouterr()) + caplog.text

    conf["script_location"] = str(EXAMPLE_MIGRATIONS)
    succeeded, states = run_example_dag(BACKUP_THEN_MIGRATE, conf)
    assert str(succeeded.state) == "success", states
    assert states["rehearse"] == states["upgrade"] == "success"
    assert states["restore_on_failure"] == "skipped"
    assert states["fail_run"] == states["fail_run_without_backup"] == "skipped"
    assert states["fail_run_after_rehearsal"] == "skipped"
    utils.dispose()
    assert Alembic(utils.engine, script_location=EXAMPLE_MIGRATIONS).current_revisions() == ["0003"]
    backups = sorted((tmp_path / "backups").rglob("*.jsonl.zst"))
    assert len(backups) == 2  # one per run, both kept

    nothing, states = run_example_dag(BACKUP_THEN_MIGRATE, conf)
    assert str(nothing.state) == "success"
    assert states["check_pending"] == "skipped"
    assert {states[t] for t in ("backup", "rehearse", "upgrade", "restore_on_failure")} == {
        "skipped"
    }
    assert states["fail_run"] == states["fail_run_without_backup"] == "skipped"
    assert len(sorted((tmp_path / "backups").rglob("*.jsonl.zst"))) == 2


def _xcom_values(airflow_home: Path, dag_id: str) -> list[str]:
    import sqlite3

    with sqlite3.connect(airflow_home / "airflow.db") as conn:
        return [
            str(value)
            for (value,) in conn.execute("SELECT value FROM xcom WHERE dag_id = ?", (dag_id,))
        ]


@pytest.mark.parametrize("dialect", ["mysql", "postgresql"])
def test_s3_backups_and_no_secret_in_logs_or_xcom(
    airflow_db: Path,
    dialect: str,
    secret_user: str,
    tmp_path: Path,
    s3_store: Store,
    store_secrets: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    url = database_url(dialect, tmp_path).set(username=secret_user, password=SECRET)
    utils = MigrationUtils(url=url, connect_args={}, engine_args={})
    try:
        _demo_database(utils)
        monkeypatch.setenv("AIRFLOW_CONN_ZM_SECRET_DB", connection_json(utils))
        assert s3_store.client is not None
        endpoint = s3_store.client.meta.endpoint_url
        monkeypatch.setenv(
            "AIRFLOW_CONN_ZM_S3",
            json.dumps(
                {
                    "conn_type": "aws",
                    "login": store_secrets["s3_access_key"],
                    "password": store_secrets["s3_secret_key"],
                    "extra": {"endpoint_url": endpoint, "region_name": "us-east-1"},
                }
            ),
        )
        before = fingerprint(utils.url)
        utils.dispose()
        conf = {
            "conn_id": "zm_secret_db",
            "storage_conn_id": "zm_s3",
            "backup_prefix": s3_store.prefix.rstrip("/"),
            "script_location": str(FAILING),
            "fail_on": "",  # the rehearsal reports; the upgrade runs and is rolled back
        }
        run, states = run_example_dag(BACKUP_THEN_MIGRATE, conf)
        assert str(run.state) == "failed", states
        assert states["restore_on_failure"] == "success"
        utils.dispose()
        assert fingerprint(utils.url) == before
        dumps = [o for o in s3_store.objects() if o.endswith(".jsonl.zst")]
        assert len(dumps) == 1 and dumps[0].startswith(s3_store.prefix)
        stored = {o for o in s3_store.objects() if o.startswith(dumps[0] + ".")}
        assert {dumps[0] + s for s in (".rehearsal.json", ".rehearsal.md", ".upgrade.sql")} <= (
            stored
        )

        # Task logs reach both the process's streams and Python logging; search both.
        output = "".join(capfd.readouterr()) + caplog.text
        xcoms = _xcom_values(airflow_db, "zenmigrate_backup_then_migrate")
        assert any(dumps[0].split("/")[-1] in x for x in xcoms), xcoms
        assert any("s3.console.aws.amazon.com" in x for x in xcoms), "no Backup link"
        assert "backup progress:" in output, output[-3000:]
        for secret in (SECRET, store_secrets["s3_secret_key"]):
            assert secret not in output
            assert not any(secret in x for x in xcoms)
    finally:
        utils.drop_database()
        utils.dispose()


def test_nightly_backup_prunes_and_restore_dag_restores_latest(
    airflow_db: Path, utils: MigrationUtils, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _demo_database(utils)
    monkeypatch.setenv("AIRFLOW_CONN_ZM_NIGHTLY", connection_json(utils))
    prefix = str(tmp_path / "backups")
    nightly = example_dag_bag().get_dag("zenmigrate_nightly_backup")
    assert nightly is not None
    conf = {"conn_id": "zm_nightly", "backup_prefix": prefix, "keep_last": 2}
    for _ in range(3):
        assert str(nightly.test(run_conf=conf).state) == "success"
    kept = sorted((tmp_path / "backups" / "nightly").glob("*.jsonl.zst"))
    assert len(kept) == 2

    expected = fingerprint(utils.url)
    with utils.engine.begin() as conn:
        conn.execute(text("DELETE FROM book"))
        conn.execute(text("UPDATE author SET name = 'changed'"))
    utils.dispose()
    restore = example_dag_bag().get_dag("zenmigrate_restore")
    assert restore is not None
    run = restore.test(
        run_conf={"conn_id": "zm_nightly", "uri": "", "latest_under": prefix + "/nightly/"}
    )
    assert str(run.state) == "success", task_states(run)
    utils.dispose()
    assert fingerprint(utils.url) == expected


# A PostgreSQL trigger and its trigger function: a dump of them holds a routine.
ROUTINE = [
    "CREATE FUNCTION title_trim() RETURNS trigger LANGUAGE plpgsql "
    "AS $$ BEGIN NEW.title := btrim(NEW.title); RETURN NEW; END $$",
    "CREATE TRIGGER title_trim BEFORE INSERT ON book FOR EACH ROW EXECUTE FUNCTION title_trim()",
]


@pytest.mark.parametrize("dialect", ["postgresql"])
def test_dags_restore_routines_only_when_allowed(
    airflow_db: Path,
    utils: MigrationUtils,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The rollback restores the backup it has just taken, routines included; the restore DAG
    creates a dump's routines only when its run asks for them (a templated parameter)."""
    before = _production(utils, monkeypatch, "zm_routines", *ROUTINE)
    prefix = str(tmp_path / "backups")
    migrate = example_dag_bag().get_dag("zenmigrate_backup_then_migrate")
    assert migrate is not None
    conf = {
        "conn_id": "zm_routines",
        "backup_prefix": prefix,
        "script_location": str(FAILING),
        "fail_on": "",  # the rehearsal (on a copy, routines included) only reports
    }
    run = migrate.test(run_conf=conf)
    assert task_states(run)["restore_on_failure"] == "success", task_states(run)
    utils.dispose()
    assert fingerprint(utils.url) == before

    (dump,) = (tmp_path / "backups").rglob("*.jsonl.zst")
    with utils.engine.begin() as conn:
        conn.execute(text("DELETE FROM book"))
    utils.dispose()
    changed = fingerprint(utils.url)
    restore = example_dag_bag().get_dag("zenmigrate_restore")
    assert restore is not None
    conf = {"conn_id": "zm_routines", "uri": str(dump), "latest_under": ""}
    caplog.set_level(logging.INFO)
    capfd.readouterr()
    refused = restore.test(run_conf=conf)
    assert str(refused.state) == "failed", task_states(refused)
    output = "".join(capfd.readouterr()) + caplog.text
    assert "function 'title_trim'" in output and "allow_routines=True" in output
    utils.dispose()
    assert fingerprint(utils.url) == changed
    allowed = restore.test(run_conf={**conf, "allow_routines": True})
    assert str(allowed.state) == "success", task_states(allowed)
    utils.dispose()
    assert fingerprint(utils.url) == before


# -- the rollback never misfires (issue 21, point 6) ------------------------------------------


@pytest.mark.parametrize("dialect", ["sqlite"])
def test_backup_fails_nothing_restored_run_fails(
    airflow_db: Path,
    utils: MigrationUtils,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """No backup: the upgrade never ran, the restore is skipped saying why, the run is red."""
    caplog.set_level(logging.INFO)
    before = _production(utils, monkeypatch, "zm_no_backup")
    blocker = tmp_path / "a_file"  # a regular file: no folder can be made below it
    blocker.write_text("not a folder")
    conf = {
        "conn_id": "zm_no_backup",
        "backup_prefix": str(blocker / "backups"),
        # Were the upgrade to run, 0004 would change the database and fail.
        "script_location": str(FAILING),
    }
    run, states = run_example_dag(BACKUP_THEN_MIGRATE, conf, capfd)
    assert str(run.state) == "failed", states
    assert states["check_pending"] == "success"
    assert states["backup"] == "failed"
    assert states["rehearse"] == states["upgrade"] == "upstream_failed"
    assert states["restore_on_failure"] == "skipped"
    assert states["fail_run"] == states["fail_run_after_rehearsal"] == "skipped"
    assert states["fail_run_without_backup"] == "failed"
    output = "".join(capfd.readouterr()) + caplog.text
    assert "no backup exists: task 'backup' returned none in this run" in output
    assert "the upgrade did not run and the database was not touched" in output
    assert "UndefinedError" not in output and "NoneType" not in output
    utils.dispose()
    assert fingerprint(utils.url) == before
    assert not list(tmp_path.rglob("*.jsonl.zst"))


def test_undefined_connection_says_how_to_create_it(
    airflow_db: Path,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A DAG copied where its connection does not exist fails naming the connection to add."""
    caplog.set_level(logging.INFO)
    conn_id = unique_name("zm_undefined")
    conf = {"conn_id": conn_id, "backup_prefix": str(tmp_path / "backups")}
    run, states = run_example_dag(BACKUP_THEN_MIGRATE, conf, capfd)
    assert str(run.state) == "failed", states
    assert states["check_pending"] == "failed"
    assert states["backup"] == states["rehearse"] == states["upgrade"] == "upstream_failed"
    assert states["restore_on_failure"] == "skipped"  # no backup: not a template error
    assert states["fail_run_without_backup"] == "failed"
    output = "".join(capfd.readouterr()) + caplog.text
    assert f"the Airflow connection '{conn_id}' (database connection) is not defined" in output
    assert f"airflow connections add {conn_id} --conn-uri 'postgres://" in output
    assert f"AIRFLOW_CONN_{conn_id.upper()}" in output
    assert not (tmp_path / "backups").exists()


FIRST_FAILS = Path(__file__).resolve().parent / "migrations_first_fails"


@pytest.mark.parametrize("dialect", ["postgresql"])
def test_restore_runs_after_a_first_revision_rolled_back(
    airflow_db: Path,
    utils: MigrationUtils,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Revision 1 fails inside its transaction: nothing changed, the restore still runs and
    succeeds, and the run is red."""
    caplog.set_level(logging.INFO)
    with utils.engine.begin() as conn:
        conn.execute(text("CREATE TABLE note (id integer PRIMARY KEY, body text NOT NULL)"))
        conn.execute(text("INSERT INTO note VALUES (1, 'kept'), (2, 'also kept')"))
    monkeypatch.setenv("AIRFLOW_CONN_ZM_FIRST_FAILS", connection_json(utils))
    before = fingerprint(utils.url)
    utils.dispose()
    conf = {
        "conn_id": "zm_first_fails",
        "backup_prefix": str(tmp_path / "backups"),
        "script_location": str(FIRST_FAILS),
        "fail_on": "",  # the rehearsal only reports: the upgrade runs on production
    }
    run, states = run_example_dag(BACKUP_THEN_MIGRATE, conf)
    assert str(run.state) == "failed", states
    assert states["upgrade"] == "failed"
    assert states["restore_on_failure"] == "success"
    assert states["fail_run"] == "failed"
    assert states["fail_run_without_backup"] == "skipped"
    output = "".join(capfd.readouterr()) + caplog.text
    assert "upgrade failed at revision 0001" in output
    assert "restored 1 tables, 2 rows from" in output
    utils.dispose()
    assert fingerprint(utils.url) == before
    assert Alembic(utils.engine, script_location=FIRST_FAILS).current_revisions() == []
    utils.dispose()


# -- the rehearsal (issue 23, points 5 and 7) --------------------------------------------------
DATA_FAILS = Path(__file__).resolve().parent / "migrations_data_fails"


def _stored_beside(backup: Path) -> list[str]:
    return sorted(p.name[len(backup.name) :] for p in backup.parent.glob(backup.name + ".*"))


REPORT_FILES = [".manifest.json", ".rehearsal.json", ".rehearsal.md", ".upgrade.sql"]


@pytest.mark.parametrize("dialect", ["mysql", "postgresql", "sqlite"])
def test_a_migration_failing_on_production_data_stops_at_the_rehearsal(
    airflow_db: Path,
    utils: MigrationUtils,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """0004 indexes author names uniquely: fine on an empty database, failing on production's
    duplicates. The rehearsal fails on the copy; the upgrade never runs; nothing is restored;
    the run is red with the rehearsal's reason; the report is stored beside the backup."""
    caplog.set_level(logging.INFO)
    duplicate = "INSERT INTO author (id, name) VALUES (3, 'Ada')"
    before = _production(utils, monkeypatch, "zm_data_fails", duplicate)
    conf = {
        "conn_id": "zm_data_fails",
        "backup_prefix": str(tmp_path / "backups"),
        "script_location": str(DATA_FAILS),
    }
    run, states = run_example_dag(BACKUP_THEN_MIGRATE, conf, capfd)
    assert str(run.state) == "failed", states
    assert states["check_pending"] == states["backup"] == "success"
    assert states["rehearse"] == "failed"
    assert states["upgrade"] == "upstream_failed"
    assert states["restore_on_failure"] == "skipped"
    assert states["fail_run"] == states["fail_run_without_backup"] == "skipped"
    assert states["fail_run_after_rehearsal"] == "failed"
    output = "".join(capfd.readouterr()) + caplog.text
    assert "the migration never ran; nothing to restore" in output
    report = xcom(airflow_db, run, "rehearse", "rehearsal_report")
    assert report["passed"] is False and report["reason"].startswith("revision 0004")
    assert (
        f"the rehearsal stopped the run before production was touched: {report['reason']}" in output
    )
    assert xcom(airflow_db, run, "upgrade", "migration_started") is None
    utils.dispose()
    assert fingerprint(utils.url) == before
    (backup,) = (tmp_path / "backups").rglob("*.jsonl.zst")
    assert _stored_beside(backup) == REPORT_FILES
    assert "FAILED" in Path(f"{backup}.rehearsal.md").read_text()


@pytest.mark.parametrize("dialect", ["mysql", "postgresql", "sqlite"])
def test_a_clean_rehearsal_lets_the_upgrade_run(
    airflow_db: Path,
    utils: MigrationUtils,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """All green: the report (with timings per revision and an estimate for production) is
    in XCom and stored beside the backup, and production is upgraded once, by the upgrade."""
    _demo_database(utils)
    monkeypatch.setenv("AIRFLOW_CONN_ZM_CLEAN", connection_json(utils))
    utils.dispose()
    conf = {
        "conn_id": "zm_clean",
        "backup_prefix": str(tmp_path / "backups"),
        "script_location": str(EXAMPLE_MIGRATIONS),
        "fail_on": "error",
        "max_duration": 3600,
        "check_downgrade": True,
    }
    run, states = run_example_dag(BACKUP_THEN_MIGRATE, conf)
    assert str(run.state) == "success", states
    assert {states[t] for t in ("check_pending", "backup", "rehearse", "upgrade")} == {"success"}
    assert {
        states[t]
        for t in (
            "restore_on_failure",
            "fail_run",
            "fail_run_without_backup",
            "fail_run_after_rehearsal",
        )
    } == {"skipped"}
    report = xcom(airflow_db, run, "rehearse", "return_value")
    assert report == xcom(airflow_db, run, "rehearse", "rehearsal_report")
    assert report["passed"] is True and report["fail_on"] == ["error"]
    assert report["max_duration"] == 3600 and report["downgrade"]["ok"] is True
    assert report["from_revisions"] == ["0002a"] and report["to_revisions"] == ["0003"]
    assert [r["revision"] for r in report["revisions"]] == ["0002b", "0003"]
    for revision in report["revisions"]:
        assert revision["status"] == "ok" and revision["seconds"] >= 0, revision
    assert report["estimated_seconds"] is not None and report["estimated_seconds"] >= 0
    assert xcom(airflow_db, run, "upgrade", "migration_started") is True
    (backup,) = (tmp_path / "backups").rglob("*.jsonl.zst")
    assert report["source_uri"] == str(backup)
    assert _stored_beside(backup) == REPORT_FILES
    assert "0002b" in Path(f"{backup}.upgrade.sql").read_text()
    utils.dispose()
    assert Alembic(utils.engine, script_location=EXAMPLE_MIGRATIONS).current_revisions() == ["0003"]
