"""A scheduled backup that keeps the last N backups under its prefix."""

from __future__ import annotations

from _defaults import DEFAULT_PARAMS
from airflow.sdk import DAG, Param

from airflow_provider_zenmigrate.operators import BackupToStorageOperator, PruneBackupsOperator

with DAG(
    dag_id="zenmigrate_nightly_backup",
    schedule="@daily",
    catchup=False,
    tags=["zenmigrate"],
    render_template_as_native_obj=True,
    params={
        "conn_id": Param(DEFAULT_PARAMS["conn_id"], type="string"),
        "storage_conn_id": Param(DEFAULT_PARAMS["storage_conn_id"], type="string"),
        "backup_prefix": Param(DEFAULT_PARAMS["backup_prefix"], type="string"),
        "keep_last": Param(7, type="integer", minimum=1),
        # PostgreSQL: schemas to leave out, comma-separated (the dump records which, and why).
        "exclude_schemas": Param("", type="string"),
    },
    doc_md=__doc__,
) as dag:
    backup = BackupToStorageOperator(
        task_id="backup",
        conn_id="{{ params.conn_id }}",
        storage_conn_id="{{ params.storage_conn_id }}",
        uri="{{ params.backup_prefix }}/nightly/{{ run_id | replace(':', '_') }}.jsonl.zst",
        exclude_schemas="{{ params.exclude_schemas }}",
    )
    prune = PruneBackupsOperator(
        task_id="prune",
        prefix="{{ params.backup_prefix }}/nightly/",
        keep_last="{{ params.keep_last }}",
        storage_conn_id="{{ params.storage_conn_id }}",
    )
    backup >> prune
