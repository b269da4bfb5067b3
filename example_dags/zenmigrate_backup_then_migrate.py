"""Back up, migrate, and put the database back exactly as it was when the migration fails.

check_pending -> backup -> upgrade -> restore_on_failure -> fail_run
                 backup -> fail_run_without_backup

- Nothing pending: check_pending is skipped and so is everything after it (green run).
- Upgrade succeeds: restore_on_failure and both fail tasks are skipped (green run, backup
  kept).
- Upgrade fails: restore_on_failure restores the backup just taken, then fail_run fails the
  run, so on-call sees a red run although the database is intact. If the restore fails too,
  fail_run ends upstream_failed and the run is red as well.
- Backup fails (or check_pending does, e.g. its connection is not defined): there is no
  backup and the upgrade never ran, so the database was never touched.
  restore_on_failure still starts (``one_failed`` counts the upgrade's ``upstream_failed``),
  finds no backup, says so in its log and is skipped; fail_run_without_backup fails the run.

Why two fail tasks: a run's state comes from its leaf tasks. fail_run runs only after a
restore that succeeded, which a trigger rule can say; "the backup failed" is a different
fact, and only a task downstream of the backup can see it.
"""

from __future__ import annotations

from _defaults import DEFAULT_PARAMS
from airflow.sdk import DAG, Param, TriggerRule
from airflow.sdk.exceptions import AirflowFailException

from airflow_provider_zenmigrate.operators import (
    BackupToStorageOperator,
    PendingMigrationsOperator,
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
    upgrade = UpgradeOperator(task_id="upgrade", conn_id=CONN, script_location=SCRIPTS)
    restore = RestoreOperator(
        task_id="restore_on_failure",
        conn_id=CONN,
        storage_conn_id=STORAGE,
        # The URI the backup task returned; when it returned none (it failed or never ran),
        # no backup exists and the restore is skipped instead of failing on a missing URI.
        backup_task_id=backup.task_id,
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

    check_pending >> backup >> upgrade >> restore >> fail_run
    backup >> fail_run_without_backup
