"""Restore a chosen backup (``uri``) or the newest one under a prefix (``latest_under``).

An encrypted backup needs ``encryption_conn_id``: the id of the Airflow connection holding
its key (a base64 32-byte key as its password, or a KMS key in its extra), never the key
itself. The Backups view's "Restore…" fills it in from the database's entry of the Variable
``zenmigrate_backup_prefixes``. Without it, a run restoring an encrypted backup fails at
once (no retries), naming the dump's key id and encryption_conn_id; a plaintext backup needs
none (a key connection with ``require_encryption`` refuses it). A dump that authenticates
under the key restores its routines without ``allow_routines``: its writer held the key.
"""

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
        "encryption_conn_id": Param(
            "",
            type="string",
            description="The Airflow connection holding the key of an encrypted backup (its "
            "id, not the key); empty: none",
        ),
    },
    doc_md=__doc__,
) as dag:
    RestoreOperator(
        task_id="restore",
        conn_id="{{ params.conn_id }}",
        storage_conn_id="{{ params.storage_conn_id }}",
        encryption_conn_id="{{ params.encryption_conn_id }}",
        uri="{{ params.uri }}",
        latest_under="{{ params.latest_under if not params.uri else '' }}",
        allow_unverified="{{ params.allow_unverified }}",
        allow_routines="{{ params.allow_routines }}",
        no_owner="{{ params.no_owner }}",
        skip_missing_roles="{{ params.skip_missing_roles }}",
        exclude_schemas="{{ params.exclude_schemas }}",
    )
