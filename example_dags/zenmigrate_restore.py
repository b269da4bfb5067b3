"""Restore a chosen backup (``uri``) or the newest one under a prefix (``latest_under``)."""

from __future__ import annotations

from _defaults import DEFAULT_PARAMS
from airflow.sdk import DAG, Param

from airflow_provider_zenmigrate.operators import RestoreOperator

with DAG(
    dag_id="zenmigrate_restore",
    schedule=None,
    catchup=False,
    tags=["zenmigrate"],
    render_template_as_native_obj=True,
    params={
        "conn_id": Param(DEFAULT_PARAMS["conn_id"], type="string"),
        "storage_conn_id": Param(DEFAULT_PARAMS["storage_conn_id"], type="string"),
        "uri": Param("", type="string", description="A backup to restore; empty: latest_under"),
        "latest_under": Param(
            DEFAULT_PARAMS["backup_prefix"] + "/zenmigrate_backup_then_migrate/", type="string"
        ),
        "allow_unverified": Param(False, type="boolean"),
        # Routines' bodies are code the server runs: allow them for dumps you trust.
        "allow_routines": Param(False, type="boolean"),
        # PostgreSQL, as pg_restore's options: leave objects to the restoring role; leave
        # out (with a warning) owners and grants naming roles this server lacks; refuse a
        # dump holding one of these schemas (comma-separated).
        "no_owner": Param(False, type="boolean"),
        "skip_missing_roles": Param(False, type="boolean"),
        "exclude_schemas": Param("", type="string"),
    },
    doc_md=__doc__,
) as dag:
    RestoreOperator(
        task_id="restore",
        conn_id="{{ params.conn_id }}",
        storage_conn_id="{{ params.storage_conn_id }}",
        uri="{{ params.uri }}",
        latest_under="{{ params.latest_under if not params.uri else '' }}",
        allow_unverified="{{ params.allow_unverified }}",
        allow_routines="{{ params.allow_routines }}",
        no_owner="{{ params.no_owner }}",
        skip_missing_roles="{{ params.skip_missing_roles }}",
        exclude_schemas="{{ params.exclude_schemas }}",
    )
