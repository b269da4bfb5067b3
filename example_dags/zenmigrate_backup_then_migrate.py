"""Back up, rehearse the migration on a copy, migrate, and put the database back exactly as it
was when the migration fails.

check_pending -> backup -> rehearse -> upgrade -> restore_on_failure -> fail_run
                 backup -> fail_run_without_backup
                           rehearse -> fail_run_after_rehearsal

- Nothing pending: check_pending is skipped and so is everything after it (green run).
- Rehearsal and upgrade succeed: the rehearsal report (per revision: duration, tables
  rewritten, strongest lock, offline SQL, lint; drift; the way back if asked) is in the
  rehearse task's log and XCom and stored beside the backup (``.rehearsal.json``,
  ``.rehearsal.md``, ``.upgrade.sql``, the "Rehearsal report" link); restore_on_failure and
  the fail tasks are skipped (green run, backup kept).
- Rehearsal fails (a revision fails on the copy of production's data, or another gate of
  ``fail_on`` / ``max_duration`` fails): production was never touched. The upgrade ends
  upstream_failed; restore_on_failure starts, sees that the upgrade never started ("the
  migration never ran; nothing to restore") and is skipped; fail_run_after_rehearsal fails
  the run with the rehearsal's one-line reason.
- Upgrade fails after a passing rehearsal (production differs from the backup, or
  ``fail_on`` is empty so the rehearsal only reports): restore_on_failure restores the
  backup just taken, then fail_run fails the run, so on-call sees a red run although the
  database is intact. If the restore fails too, fail_run ends upstream_failed and the run
  is red as well.
- Backup fails (or check_pending does, e.g. its connection is not defined): there is no
  backup, and neither the rehearsal nor the upgrade ran, so the database was never touched.
  restore_on_failure still starts (``one_failed`` counts the upgrade's ``upstream_failed``),
  finds no backup, says so in its log and is skipped; fail_run_after_rehearsal is skipped
  (the rehearsal did not run); fail_run_without_backup fails the run.

Params: ``fail_on`` (the rehearsal's gates, "error, drift, lint, downgrade"; empty: report
only), ``max_duration`` (seconds the upgrade may be estimated to take on production; null:
no limit), ``check_downgrade`` (also rehearse the way back).

Why three fail tasks: a run's state comes from its leaf tasks. fail_run runs only after a
restore that succeeded, which a trigger rule can say; "the backup failed" and "the
rehearsal stopped the run" are different facts, and only a task downstream of the backup,
or of the rehearsal, can see each.
"""

from __future__ import annotations

from typing import Any

from _defaults import DEFAULT_PARAMS
from airflow.sdk import DAG, Param, TriggerRule
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from airflow_provider_zenmigrate.operators import (
    BackupToStorageOperator,
    PendingMigrationsOperator,
    RehearseMigrationOperator,
    RestoreOperator,
    UpgradeOperator,
)

CONN = "{{ params.conn_id }}"
STORAGE = "{{ params.storage_conn_id }}"
SCRIPTS = "{{ params.script_location }}"
# One backup per run; run ids hold ':' which some stores dislike in keys.
BACKUP_URI = (
    "{{ params.backup_prefix }}/{{ dag.dag_id }}/{{ run_id | replace(':', '_') }}.jsonl.zst"
)


def _fail_run(**context: object) -> None:
    raise AirflowFailException(
        "the migration failed; the database was restored from the backup taken before it"
    )


def _fail_run_without_backup(**context: object) -> None:
    raise AirflowFailException(
        "no backup was taken (the backup task, or one before it, failed), so the upgrade "
        "did not run and the database was not touched"
    )


def _fail_run_after_rehearsal(**context: Any) -> None:
    ti = context["ti"]
    report = ti.xcom_pull(task_ids="rehearse", key="rehearsal_report")
    if report and not report.get("passed"):
        raise AirflowFailException(
            f"the rehearsal stopped the run before production was touched: {report['reason']}"
        )
    failed = ti.get_ti_count(
        dag_id=ti.dag_id, task_ids=["rehearse"], run_ids=[ti.run_id], states=["failed"]
    )
    if failed:
        raise AirflowFailException(
            "the rehearsal could not run (see the rehearse task's log); the upgrade did not "
            "run and the database was not touched"
        )
    raise AirflowSkipException("the rehearsal did not run: a task before it failed")


with DAG(
    dag_id="zenmigrate_backup_then_migrate",
    schedule=None,
    catchup=False,
    tags=["zenmigrate"],
    params={
        "conn_id": Param(DEFAULT_PARAMS["conn_id"], type="string"),
        "storage_conn_id": Param(DEFAULT_PARAMS["storage_conn_id"], type="string"),
        "script_location": Param(DEFAULT_PARAMS["script_location"], type="string"),
        "backup_prefix": Param(DEFAULT_PARAMS["backup_prefix"], type="string"),
        "fail_on": Param("error", type="string"),
        "max_duration": Param(None, type=["null", "number"]),
        "check_downgrade": Param(False, type="boolean"),
    },
    doc_md=__doc__,
) as dag:
    from airflow.providers.standard.operators.python import PythonOperator

    check_pending = PendingMigrationsOperator(
        task_id="check_pending", conn_id=CONN, script_location=SCRIPTS
    )
    backup = BackupToStorageOperator(
        task_id="backup",
        conn_id=CONN,
        storage_conn_id=STORAGE,
        uri=BACKUP_URI,
    )
    rehearse = RehearseMigrationOperator(
        task_id="rehearse",
        conn_id=CONN,
        storage_conn_id=STORAGE,
        script_location=SCRIPTS,
        # The copy is made from the backup just taken; the report is stored beside it.
        backup_task_id=backup.task_id,
        fail_on="{{ params.fail_on }}",
        max_duration="{{ params.max_duration }}",
        check_downgrade="{{ params.check_downgrade }}",
        # The backup's routines are the database's own (see restore_on_failure).
        allow_routines=True,
    )
    upgrade = UpgradeOperator(task_id="upgrade", conn_id=CONN, script_location=SCRIPTS)
    restore = RestoreOperator(
        task_id="restore_on_failure",
        conn_id=CONN,
        storage_conn_id=STORAGE,
        # The URI the backup task returned; when it returned none (it failed or never ran),
        # no backup exists and the restore is skipped instead of failing on a missing URI.
        backup_task_id=backup.task_id,
        # When the upgrade never started (the rehearsal, or a task before it, failed), the
        # database was never touched: the restore is skipped.
        migration_task_id=upgrade.task_id,
        # The dump is the one this run has just taken of this very database: its routines
        # are the database's own, already running there. Refusing them would make the
        # rollback fail for any database with functions, procedures or events. Set it to
        # False if your backup store is writable by anyone you would not let run code on
        # the database.
        allow_routines=True,
        trigger_rule=TriggerRule.ONE_FAILED,
    )
    fail_run = PythonOperator(task_id="fail_run", python_callable=_fail_run)
    fail_run_without_backup = PythonOperator(
        task_id="fail_run_without_backup",
        python_callable=_fail_run_without_backup,
        # failed or upstream_failed: skipped when the backup succeeded or was skipped.
        trigger_rule=TriggerRule.ONE_FAILED,
    )

    fail_run_after_rehearsal = PythonOperator(
        task_id="fail_run_after_rehearsal",
        python_callable=_fail_run_after_rehearsal,
        # failed or upstream_failed: skipped when the rehearsal passed or was skipped.
        trigger_rule=TriggerRule.ONE_FAILED,
    )

    check_pending >> backup >> rehearse >> upgrade >> restore >> fail_run
    backup >> fail_run_without_backup
    rehearse >> fail_run_after_rehearsal
