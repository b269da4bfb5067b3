"""Restore a chosen backup (``uri``) or the newest one under a prefix (``latest_under``).

An encrypted backup needs ``encryption_conn_id``: the id of the Airflow connection holding
its key (a base64 32-byte key as its password, or a KMS key in its extra), never the key
itself. The Backups view's "Restore…" fills it in from the database's entry of the Variable
``zenmigrate_backup_prefixes``. Without it, a run restoring an encrypted backup fails at
once, naming the dump's key id and this param; a plaintext backup needs none (a key
connection with ``require_encryption`` refuses it). A dump that authenticates under the key
restores its routines without ``allow_routines``: its writer held the key.
"""

from __future__ import annotations

from typing import Any

from _defaults import DEFAULT_PARAMS
from airflow.sdk import DAG, Context, Param
from airflow.sdk.exceptions import AirflowFailException

from airflow_provider_zenmigrate.core.errors import MissingKeyError
from airflow_provider_zenmigrate.operators import RestoreOperator


class RestoreWithKeyParam(RestoreOperator):
    """:class:`RestoreOperator` whose ``encryption_conn_id`` is rendered from the run's
    params: the operators keep it out of their template fields, and this DAG is the one
    place a run chooses the key connection (only its id: rendered fields hold no key).
    A missing key fails the task without retries and says which param gives it."""

    template_fields = (*RestoreOperator.template_fields, "encryption_conn_id")

    def execute(self, context: Context) -> dict[str, Any]:
        if self.encryption_conn_id is not None:
            # A native render turns an all-digit id into an int.
            self.encryption_conn_id = str(self.encryption_conn_id)
        try:
            return super().execute(context)
        except MissingKeyError as exc:
            raise AirflowFailException(
                f"{exc}. Run {context['dag'].dag_id} with the param encryption_conn_id: the "
                "Airflow connection holding that key"
            ) from exc


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
    RestoreWithKeyParam(
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
