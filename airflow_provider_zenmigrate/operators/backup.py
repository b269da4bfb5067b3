"""Backups as tasks: to any storage URI, or to another database on the same server."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any

from airflow.sdk import Asset, Context

from ..core.catalog import prune_backups
from ..lineage import ReportsLineage, azure_account, backup_lineage
from ..links import BackupLink
from .base import ZenMigrateBaseOperator, check_jobs, jobs_count, names


def backups_asset(conn_id: Any) -> Asset:
    """The Asset every backup of a connection updates (one per database connection).

    A templated or mapped connection id (a template, or an argument of ``expand``) has no
    name yet when the DAG is parsed; its backups update the shared ``zenmigrate_backups``
    Asset, and each event names the backup's URI.
    """
    if not isinstance(conn_id, str) or "{{" in conn_id:
        return Asset(name="zenmigrate_backups", uri="zenmigrate://backups")
    return Asset(name=f"zenmigrate_backups_{conn_id}", uri=f"zenmigrate://backups/{conn_id}")


class BackupToStorageOperator(ReportsLineage, ZenMigrateBaseOperator):
    """Back the database up to ``uri`` (local path, file://, s3://, gs://, azure://).

    The object appears only once the backup is complete. Returns the manifest (uri, bytes,
    tables, rows, checksum, revision, duration; for PostgreSQL also the schemas it holds and
    those it left out, with why), pushes the "Backup" link and updates the connection's
    backups Asset (see :func:`backups_asset`).

    :param conn_id: The Airflow connection of the database to back up (templated).
    :param uri: Where to write the backup (templated), for example
        ``s3://backups/{{ dag.dag_id }}/{{ run_id }}.jsonl.zst``; a ``.gz`` or ``.zst``
        suffix compresses.
    :param storage_conn_id: The Airflow connection of the object store (templated); without
        it the cloud SDKs' own environment and default credentials apply.
    :param encryption_conn_id: The Airflow connection holding the key (templated): the
        backup is then encrypted and authenticated; see :class:`ZenMigrateBaseOperator`.
    :param schemas: PostgreSQL: back up only these schemas (templated; a list or
        "a, b"); by default every schema but the system ones, as ``pg_dump``.
    :param exclude_schemas: PostgreSQL: leave these schemas out (templated; a list or
        "a, b").
    :param jobs: Worker processes reading one snapshot (templated; an int or its rendered
        string, 1 or more). Above 1, ``uri`` is the prefix of a multi-part dump (its parts
        and ``manifest.json``), which the catalog, restore and prune treat as one backup;
        the manifest returned then also says ``layout``, ``parts`` and ``jobs``.
    """

    template_fields: Sequence[str] = (
        "conn_id",
        "storage_conn_id",
        "uri",
        "schemas",
        "exclude_schemas",
        "jobs",
        "encryption_conn_id",
    )
    ui_color = "#9ecae1"
    operator_extra_links = (BackupLink(),)

    def __init__(
        self,
        *,
        conn_id: str,
        uri: str,
        storage_conn_id: str | None = None,
        encryption_conn_id: str | None = None,
        schemas: list[str] | str | None = None,
        exclude_schemas: list[str] | str | None = None,
        jobs: int | str = 1,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("outlets", [backups_asset(conn_id)])
        check_jobs(jobs, type(self).__name__)
        super().__init__(
            conn_id=conn_id,
            storage_conn_id=storage_conn_id,
            encryption_conn_id=encryption_conn_id,
            **kwargs,
        )
        self.uri = uri
        self.schemas = schemas
        self.exclude_schemas = exclude_schemas
        self.jobs = jobs

    def execute(self, context: Context) -> dict[str, Any]:
        with self.open_hook() as hook:
            utils = hook.get_migration_utils()
            utils.schemas = names(self.schemas)
            utils.exclude_schemas = names(self.exclude_schemas)
            jobs = jobs_count(self.jobs, type(self).__name__)
            result = utils.backup_database_to_file(self.uri, jobs=jobs)
            url, azure = utils.url.set(password=None), azure_account(utils.transport_params)
            self._lineage = partial(backup_lineage, url, result, azure)
        manifest = result.manifest()
        self.log.info(
            "backup complete: %s, %d tables, %d rows, %d bytes, %.1fs",
            manifest["uri"],
            manifest["tables"],
            manifest["rows"],
            manifest["bytes"],
            manifest["duration"],
        )
        BackupLink.persist(context, self.uri)
        for outlet in self.outlets:
            if isinstance(outlet, Asset):
                context["outlet_events"][outlet].extra = {"uri": manifest["uri"]}
        return manifest


class BackupToDatabaseOperator(ZenMigrateBaseOperator):
    """Copy the database to ``backup_db_name`` on the same server, replacing its contents.

    The task form of ``MigrationUtils.backup_database_to_db`` (the CLI's ``backup-to-db``);
    :class:`RestoreOperator` with ``backup_db_name`` copies it back. Returns
    ``{"backup_db_name": ...}``.

    :param conn_id: The Airflow connection of the database to copy (templated).
    :param backup_db_name: The database to copy it to, on the same server (templated); it
        must differ from the database itself.
    """

    template_fields: Sequence[str] = ("conn_id", "backup_db_name")
    ui_color = "#9ecae1"

    def __init__(self, *, conn_id: str, backup_db_name: str, **kwargs: Any) -> None:
        super().__init__(conn_id=conn_id, **kwargs)
        self.backup_db_name = backup_db_name

    def execute(self, context: Context) -> dict[str, Any]:
        with self.open_hook() as hook:
            utils = hook.get_migration_utils()
            utils.backup_database_to_db(self.backup_db_name)
            self.log.info("copied %s to database %r", utils.safe_url, self.backup_db_name)
        return {"backup_db_name": self.backup_db_name}


class PruneBackupsOperator(ZenMigrateBaseOperator):
    """Delete all but the newest ``keep_last`` complete backups under ``prefix``.

    Needs no database connection: it lists and deletes objects in storage only. Returns
    ``{"prefix", "kept", "deleted"}`` (the URIs it deleted).

    :param prefix: The folder or object-store prefix the backups are under (templated).
    :param keep_last: How many of the newest complete backups to keep (templated; an int
        or its rendered string).
    :param storage_conn_id: The Airflow connection of the object store (templated); without
        it the cloud SDKs' own environment and default credentials apply.
    :param conn_id: Not used (pruning touches storage only); accepted so that DAGs passing
        it keep working.
    """

    template_fields: Sequence[str] = (
        "storage_conn_id",
        "prefix",
        "keep_last",
    )
    ui_color = "#bdbdbd"

    def __init__(
        self,
        *,
        prefix: str,
        keep_last: int | str,
        storage_conn_id: str | None = None,
        conn_id: str = "",
        **kwargs: Any,
    ) -> None:
        super().__init__(conn_id=conn_id, storage_conn_id=storage_conn_id, **kwargs)
        self.prefix = prefix
        self.keep_last = keep_last

    def execute(self, context: Context) -> dict[str, Any]:
        keep = int(self.keep_last)
        with self.open_hook() as hook:  # only its storage connection is ever read
            params = hook.get_transport_params()
            deleted = prune_backups(self.prefix, keep_last=keep, transport_params=params)
        self.log.info(
            "kept the newest %d backups under %s, deleted %d", keep, self.prefix, len(deleted)
        )
        return {"prefix": self.prefix, "kept": keep, "deleted": [d.uri for d in deleted]}
