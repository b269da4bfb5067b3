"""The rehearsal as a task: run the pending migration on a scratch copy before production.

A kill of the task: Airflow 3's task runner (``_run_task_and_map_outcome``) answers SIGTERM
by calling ``on_kill()`` and returning, so the task would go on running until the
supervisor's SIGKILL five seconds later, and ``rehearse()``'s ``finally`` (which drops the
scratch copy) would never run. :meth:`RehearseMigrationOperator.on_kill` therefore raises
``AirflowTaskTerminated`` (a ``BaseException``, which no ``except Exception`` swallows)
while ``execute()`` runs: the signal handler runs in the main thread, so the exception
unwinds ``rehearse()`` and its ``finally`` drops the copy. A SIGKILL leaves the copy
behind; the next rehearsal removes it.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from typing import Any

from airflow.sdk import Context
from airflow.sdk.exceptions import AirflowFailException, AirflowTaskTerminated

from ..core.errors import RehearsalError
from ..core.rehearsal import RehearsalReport
from ..core.rehearsal.gate import check_gates
from ..core.utils import MigrationUtils
from ..hooks.zenmigrate import ZenMigrateHook
from ..links import RehearsalReportLink
from .base import ZenMigrateBaseOperator, backup_uri, flag, names, unset

#: The XCom key the report is pushed under whether the rehearsal passed or not (the return
#: value is not pushed when execute() raises).
REPORT_KEY = "rehearsal_report"


class RehearseMigrationOperator(ZenMigrateBaseOperator):
    """Rehearse the pending migration on a scratch copy of the database; production is
    never touched.

    The copy is made from the backup ``uri`` (or ``backup_task_id``'s), or fresh from the
    database, on the same server under a unique name or on ``rehearsal_conn_id``'s server.
    Every pending revision runs there, timed, with the tables it rewrote, the locks it held,
    its offline SQL and lint findings; drift and (optionally) the way back are checked. The
    copy is always dropped. The report goes to the task log as Markdown, to XCom (the
    return value, and the key ``rehearsal_report`` whether or not the rehearsal passed) and,
    when there is a backup, beside it as JSON, Markdown and SQL, with the "Rehearsal report"
    link. A failed gate fails the task (not retried) with a one-line reason.

    :param conn_id: The Airflow connection of the production database (templated).
    :param script_location: The folder of the migration scripts, or ``package:dir``
        (templated).
    :param config_file: The ``alembic.ini`` of a full Alembic project whose ``env.py``
        should run (templated).
    :param revision: The target revision (templated; default ``"heads"``).
    :param uri: The backup to copy from (templated); without it (and without
        ``backup_task_id``) the copy is made fresh from the database.
    :param backup_task_id: The :class:`BackupToStorageOperator` task of this run whose
        manifest names the backup to copy from (templated).
    :param rehearsal_conn_id: A connection to another server to make the copy on
        (templated); by default the copy goes on production's server.
    :param storage_conn_id: The Airflow connection of the object store holding the backup
        (templated); without it the cloud SDKs' own environment and credentials apply.
    :param encryption_conn_id: The Airflow connection holding the key of an encrypted
        backup (templated); see :class:`ZenMigrateBaseOperator`.
    :param check_drift: Compare production's schema with the one its scripts give at its
        recorded revision (templated; a bool or "True"/"False").
    :param check_downgrade: After the upgrade, downgrade the copy back to the starting
        revision and compare (templated; a bool or "True"/"False").
    :param fail_on: The gates that fail the task, any of ``error``, ``drift``, ``lint``,
        ``downgrade`` (templated; a list or "error, drift"; empty: report only).
    :param max_duration: Fail when the estimated duration on production exceeds this many
        seconds (templated; a number, a ``datetime.timedelta`` or None).
    :param lint_ignore: Lint rule names to ignore (templated; a list or "a, b").
    :param allow_routines: Accept functions, procedures or events in the backup restored
        into the copy (templated; a bool or "True"/"False").
    """

    template_fields: Sequence[str] = (
        "conn_id",
        "storage_conn_id",
        "script_location",
        "config_file",
        "revision",
        "uri",
        "backup_task_id",
        "rehearsal_conn_id",
        "check_drift",
        "check_downgrade",
        "fail_on",
        "max_duration",
        "lint_ignore",
        "allow_routines",
        "encryption_conn_id",
    )
    ui_color = "#fee391"
    operator_extra_links = (RehearsalReportLink(),)

    def __init__(
        self,
        *,
        conn_id: str,
        script_location: str,
        config_file: str | None = None,
        revision: str = "heads",
        uri: str | None = None,
        backup_task_id: str | None = None,
        rehearsal_conn_id: str | None = None,
        storage_conn_id: str | None = None,
        encryption_conn_id: str | None = None,
        check_drift: bool | str = True,
        check_downgrade: bool | str = False,
        fail_on: Sequence[str] | str = ("error",),
        max_duration: float | str | datetime.timedelta | None = None,
        lint_ignore: Sequence[str] | str = (),
        allow_routines: bool | str = False,
        **kwargs: Any,
    ) -> None:
        # A rehearsal that failed will fail again on the same data: no retry.
        kwargs.setdefault("retries", 0)
        super().__init__(
            conn_id=conn_id,
            storage_conn_id=storage_conn_id,
            encryption_conn_id=encryption_conn_id,
            **kwargs,
        )
        self.script_location = script_location
        self.config_file = config_file
        self.revision = revision
        self.uri = uri
        self.backup_task_id = backup_task_id
        self.rehearsal_conn_id = rehearsal_conn_id
        self.check_drift = check_drift
        self.check_downgrade = check_downgrade
        self.fail_on = fail_on
        self.max_duration = max_duration
        self.lint_ignore = lint_ignore
        self.allow_routines = allow_routines
        # Checked now so a typo fails when the DAG is parsed, not at run time.
        if not _is_template(fail_on):
            gates(fail_on)
        self._running = False

    def execute(self, context: Context) -> dict[str, Any]:
        from ..core.rehearsal import render_markdown

        try:
            fail_on = gates(self.fail_on)
            max_duration = seconds(self.max_duration)
        except ValueError as exc:
            raise AirflowFailException(str(exc)) from exc
        uri = unset(self.uri)
        if unset(self.backup_task_id):
            if uri:
                raise AirflowFailException("give uri or backup_task_id, not both")
            uri = self._backup_uri(context, str(self.backup_task_id))
        self._running = True
        try:
            with self.open_hook() as hook:
                production = hook.get_migration_utils()
                report = self._rehearse(production, uri, fail_on, max_duration)
                if uri:
                    self._store(context, report, uri, production.transport_params)
        except RehearsalError as exc:
            raise AirflowFailException(f"the rehearsal could not run: {exc}") from exc
        finally:
            self._running = False
        self.log.info("rehearsal report:\n%s", render_markdown(report))
        data = report.to_dict()
        context["ti"].xcom_push(key=REPORT_KEY, value=data)
        if not report.passed:
            raise AirflowFailException(str(report.reason))
        return data

    def _rehearse(
        self,
        production: MigrationUtils,
        uri: str | None,
        fail_on: list[str],
        max_duration: float | None,
    ) -> RehearsalReport:
        """Run the core's rehearsal, on the rehearsal server's connection when one is given."""
        from ..core.rehearsal import rehearse  # the runner loads only when a task runs

        server_hook = None
        server: MigrationUtils | None = None
        if unset(self.rehearsal_conn_id):
            server_hook = ZenMigrateHook(conn_id=str(self.rehearsal_conn_id))
            server = server_hook.get_migration_utils()
        try:
            return rehearse(
                production,
                script_location=self.script_location,
                config_file=unset(self.config_file),
                revision=self.revision or "heads",
                source_uri=uri,
                transport_params=production.transport_params,
                rehearsal_server=server,
                check_drift=flag(self.check_drift),
                check_downgrade=flag(self.check_downgrade),
                fail_on=fail_on,
                max_duration=max_duration,
                lint_ignore=names(self.lint_ignore),
                allow_routines=flag(self.allow_routines),
                log=self.log.info,
            )
        finally:
            if server_hook is not None:
                server_hook.close()

    def _store(
        self,
        context: Context,
        report: RehearsalReport,
        uri: str,
        params: dict[str, Any] | None,
    ) -> None:
        """Write the report beside the backup and point the extra link at its Markdown."""
        from ..core.rehearsal import store_report

        stored = store_report(report, uri, params)
        report.stored = dict(stored)
        self.log.info("rehearsal report stored: %s", ", ".join(stored.values()))
        RehearsalReportLink.persist(context, stored["markdown"])

    def _backup_uri(self, context: Context, task_id: str) -> str:
        """The URI the backup task of this run returned; without one there is nothing to
        copy from, and rehearsing a fresh copy instead would hide that the backup failed."""
        uri = backup_uri(context, task_id)
        if uri is None:
            raise AirflowFailException(
                f"no backup to rehearse on: task {task_id!r} returned none in this run"
            )
        return uri

    def on_kill(self) -> None:
        """Unwind a running rehearsal so its ``finally`` drops the scratch copy (see the
        module docstring for why raising is needed under Airflow 3)."""
        if self._running:
            self._running = False
            raise AirflowTaskTerminated("rehearsal killed; the scratch copy is being dropped")


def gates(value: Any) -> list[str]:
    """The ``fail_on`` gates from a list or a comma-separated string, in the given order;
    the core's check (``ValueError`` here, so a DAG with a wrong name fails to parse)."""
    try:
        given = names(value)
    except TypeError:
        given = [repr(value)]
    try:
        check_gates(given)
    except RehearsalError as exc:
        raise ValueError(f"{exc}; an empty fail_on only reports") from None
    return given


def seconds(value: Any) -> float | None:
    """``max_duration`` as seconds: a number, a timedelta, its rendered string, or None."""
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if value is None or (isinstance(value, str) and unset(value.strip()) is None):
        return None
    try:
        result = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"max_duration must be seconds or a timedelta, got {value!r}") from None
    if result <= 0:
        raise ValueError(f"max_duration must be positive, got {value!r}")
    return result


def _is_template(value: Any) -> bool:
    return isinstance(value, str) and "{{" in value
