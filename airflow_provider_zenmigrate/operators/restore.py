"""Restore as a task: from a URI, a backup database, or the newest backup under a prefix."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any

from airflow.sdk import Context
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from ..core.catalog import list_backups
from ..hooks.zenmigrate import ZenMigrateHook
from ..lineage import ReportsLineage, azure_account, restore_lineage
from ..links import BackupLink
from .base import (
    ZenMigrateBaseOperator,
    backup_uri,
    check_jobs,
    flag,
    jobs_count,
    names,
    pull_from_run,
)
from .migrate import MIGRATION_STARTED


class RestoreOperator(ReportsLineage, ZenMigrateBaseOperator):
    """Replace the database's contents with a backup, atomically.

    Give exactly one source: ``backup_task_id``, ``uri``, ``backup_db_name`` or
    ``latest_under``. With ``backup_task_id``, a backup task that returned nothing (it
    failed or never ran) means no backup exists: the task is skipped, touching no
    connection, instead of failing on a missing URI (the rollback of a run whose backup
    failed). Returns what was restored (source, kind, tables, rows, verified, revisions).

    :param conn_id: The Airflow connection of the database to replace (templated).
    :param backup_task_id: The :class:`BackupToStorageOperator` task of this run whose
        manifest names the backup (templated).
    :param uri: The backup to restore, any URI a backup can be written to (templated).
    :param backup_db_name: A database on the same server to copy back, as written by
        :class:`BackupToDatabaseOperator` (templated).
    :param latest_under: A prefix: the newest complete backup under it (templated).
    :param storage_conn_id: The Airflow connection of the object store (templated); without
        it the cloud SDKs' own environment and default credentials apply.
    :param encryption_conn_id: The Airflow connection holding the key of an encrypted
        dump (templated); see :class:`ZenMigrateBaseOperator`.
    :param allow_unverified: Accept a dump without header and trailer, the legacy
        (unverified) format (templated; a bool or "True"/"False"). Off by default: such a
        dump cannot be told from a truncated one.
    :param allow_routines: Accept a dump with functions, procedures, aggregates or events
        (templated; a bool or "True"/"False"). Their bodies are code the server runs: allow
        them for trusted dumps only.
    :param no_owner: PostgreSQL, as ``pg_restore --no-owner``: leave every object to the
        restoring role (templated).
    :param no_privileges: PostgreSQL: restore no GRANT or REVOKE (templated).
    :param skip_missing_roles: PostgreSQL: leave out, with a warning, owners and grants
        naming roles the target lacks; by default such a dump is refused before anything
        changes (templated).
    :param exclude_schemas: PostgreSQL: schemas the restore must leave alone; a dump holding
        one is refused (templated; a list or "a, b").
    :param migration_task_id: The :class:`UpgradeOperator` task of this run this restore
        rolls back (templated): when it never started changing the database (a rehearsal or
        a task before it failed), there is nothing to restore and the task is skipped.
    :param jobs: Worker processes loading the parts of a multi-part dump (templated; an int
        or its rendered string, 1 or more); a single stream is restored by one.
    :param fresh: Discard what an earlier, failed attempt at this restore left (templated).
        By default a retried task resumes a multi-part restore where it stopped (on
        MariaDB/MySQL), skipping the parts already loaded and verified; with ``fresh`` every
        try starts over.
    """

    template_fields: Sequence[str] = (
        "conn_id",
        "storage_conn_id",
        "backup_task_id",
        "uri",
        "backup_db_name",
        "latest_under",
        "allow_unverified",
        "allow_routines",
        "no_owner",
        "no_privileges",
        "skip_missing_roles",
        "exclude_schemas",
        "migration_task_id",
        "jobs",
        "fresh",
        "encryption_conn_id",
    )
    ui_color = "#fcbba1"
    operator_extra_links = (BackupLink(),)

    def __init__(
        self,
        *,
        conn_id: str,
        backup_task_id: str | None = None,
        uri: str | None = None,
        backup_db_name: str | None = None,
        latest_under: str | None = None,
        storage_conn_id: str | None = None,
        encryption_conn_id: str | None = None,
        allow_unverified: bool = False,
        allow_routines: bool = False,
        no_owner: bool | str = False,
        no_privileges: bool | str = False,
        skip_missing_roles: bool | str = False,
        exclude_schemas: list[str] | str | None = None,
        migration_task_id: str | None = None,
        jobs: int | str = 1,
        fresh: bool | str = False,
        **kwargs: Any,
    ) -> None:
        check_jobs(jobs, type(self).__name__)
        super().__init__(
            conn_id=conn_id,
            storage_conn_id=storage_conn_id,
            encryption_conn_id=encryption_conn_id,
            **kwargs,
        )
        self.jobs = jobs
        self.fresh = fresh
        self.migration_task_id = migration_task_id
        self.backup_task_id = backup_task_id
        self.uri = uri
        self.backup_db_name = backup_db_name
        self.latest_under = latest_under
        self.allow_unverified = allow_unverified
        self.allow_routines = allow_routines
        self.no_owner = no_owner
        self.no_privileges = no_privileges
        self.skip_missing_roles = skip_missing_roles
        self.exclude_schemas = exclude_schemas

    def execute(self, context: Context) -> dict[str, Any]:
        # Checked after rendering: templates may leave some sources empty.
        sources = (self.backup_task_id, self.uri, self.backup_db_name, self.latest_under)
        given = [s for s in sources if s]
        if len(given) != 1:
            raise AirflowFailException(
                "RestoreOperator needs exactly one of backup_task_id, uri, backup_db_name, "
                f"latest_under; got {len(given)}"
            )
        if self.backup_task_id:
            self.uri = self._backup_uri(context, self.backup_task_id)
        if self.migration_task_id:
            self._migration_started(context, self.migration_task_id)
        with self.open_hook() as hook:
            return self._restore(context, hook)

    def _restore(self, context: Context, hook: ZenMigrateHook) -> dict[str, Any]:
        """Restore from the one source given (the backup task's URI already resolved)."""
        allow_unverified = flag(self.allow_unverified)
        allow_routines = flag(self.allow_routines)
        jobs = jobs_count(self.jobs, type(self).__name__)
        utils = hook.get_migration_utils()
        utils.no_owner = flag(self.no_owner)
        utils.no_privileges = flag(self.no_privileges)
        utils.skip_missing_roles = flag(self.skip_missing_roles)
        utils.exclude_schemas = names(self.exclude_schemas)
        if self.backup_db_name:
            utils.restore_database_from_db(self.backup_db_name)
            self.log.info("restored %s from database %r", utils.safe_url, self.backup_db_name)
            return {"source": self.backup_db_name, "kind": "database"}
        uri = self.uri
        if self.latest_under:
            found = list_backups(
                self.latest_under,
                transport_params=utils.transport_params,
                encryption=utils.encryption,
            )
            if not found:
                raise AirflowFailException(f"no complete backup under {self.latest_under}")
            uri = found[0].uri
        assert uri is not None
        BackupLink.persist(context, uri)
        summary = utils.restore_database_from_file(
            uri,
            allow_unverified=allow_unverified,
            allow_routines=allow_routines,
            jobs=jobs,
            fresh=flag(self.fresh),
        )
        self.log.info("restored %d tables, %d rows from %s", len(summary.tables), summary.rows, uri)
        url, azure = utils.url.set(password=None), azure_account(utils.transport_params)
        self._lineage = partial(restore_lineage, url, uri, summary, azure)
        parts = {"parts": summary.parts, "resumed_parts": summary.resumed_parts, "jobs": jobs}
        return {
            **(parts if summary.parts else {}),
            "source": uri,
            "kind": "uri",
            "tables": len(summary.tables),
            "rows": summary.rows,
            "verified": summary.verified,
            "revisions": (summary.header or {}).get("revisions", []),
        }

    def _migration_started(self, context: Context, task_id: str) -> None:
        """Skip the restore when the migration task never began changing the database."""
        if pull_from_run(context, task_id, MIGRATION_STARTED):
            return
        self.log.info(
            "the migration never ran; nothing to restore: task %r did not start changing "
            "the database in this run (a rehearsal or a task before it failed), so the "
            "restore is skipped and the database is left as it is",
            task_id,
        )
        raise AirflowSkipException(f"the migration never ran: task {task_id!r} did not start")

    def _backup_uri(self, context: Context, task_id: str) -> str:
        """The URI the backup task of this run returned; skip the restore without one."""
        uri = backup_uri(context, task_id)
        if uri is None:
            self.log.info(
                "no backup exists: task %r returned none in this run (it failed, was skipped "
                "or did not run), so there is nothing to restore; the restore is skipped and "
                "the database is left as it is",
                task_id,
            )
            raise AirflowSkipException(f"no backup: task {task_id!r} returned none in this run")
        return uri
