"""Alembic migrations as tasks: upgrade, downgrade, and "is anything pending?"."""

from __future__ import annotations

import time
from collections.abc import Sequence
from functools import partial
from typing import Any

from airflow.sdk import Context
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from ..core.errors import MigrationError
from ..lineage import (
    ReportsLineage,
    enabled,
    migration_lineage,
    schema_changes,
    schema_snapshot,
)
from .base import ZenMigrateBaseOperator, unset

#: The XCom key a migration task pushes just before it changes the database.
MIGRATION_STARTED = "migration_started"


class _MigrateOperator(ReportsLineage, ZenMigrateBaseOperator):
    """Upgrade or downgrade (``direction``) to ``revision``; the arguments are documented on
    :class:`UpgradeOperator`."""

    direction: str = ""
    template_fields: Sequence[str] = ("conn_id", "script_location", "revision", "config_file")
    ui_color = "#c7e9c0"

    def __init__(
        self,
        *,
        conn_id: str,
        script_location: str,
        revision: str,
        config_file: str | None = None,
        **kwargs: Any,
    ) -> None:
        # Retrying a half-applied migration is wrong: fail once, loudly.
        kwargs.setdefault("retries", 0)
        super().__init__(conn_id=conn_id, **kwargs)
        self.script_location = script_location
        self.revision = revision
        self.config_file = config_file

    def execute(self, context: Context) -> dict[str, Any]:
        applied: list[dict[str, Any]] = []
        last = time.monotonic()

        def on_version_apply(*, step: Any, **_: Any) -> None:
            nonlocal last
            now = time.monotonic()
            if step.is_upgrade:
                revision, script = step.up_revision_id, step.up_revision
            else:
                revision, script = ",".join(step.down_revision_ids) or "base", step.up_revision
            doc = getattr(script, "doc", "") or ""
            self.log.info("%s applied %s (%s) in %.3fs", self.direction, revision, doc, now - last)
            applied.append(
                {"revision": revision, "description": doc, "seconds": round(now - last, 3)}
            )
            last = now

        with self.open_hook() as hook:
            alembic = hook.get_alembic(
                self.script_location,
                config_file=unset(self.config_file),
                on_version_apply=on_version_apply,
            )
            before = alembic.current_revisions()
            self.log.info(
                "%s %s: at %s, target %s",
                self.direction,
                hook.conn_id,
                before or ["base"],
                self.revision,
            )
            # Before the database is touched: a rollback task reads it to know whether
            # there is anything to restore (RestoreOperator's migration_task_id).
            # An operator executed directly (no DAG run) has no task instance to push to.
            ti = context.get("ti")
            if ti is not None:
                ti.xcom_push(key=MIGRATION_STARTED, value=True)
            # The tables a migration changed are reported as lineage: the schema is read
            # before and after, only when the OpenLineage provider will emit it.
            schema = schema_snapshot(alembic.engine, alembic.version_table) if enabled() else None
            try:
                getattr(alembic, self.direction)(self.revision)
            except MigrationError as exc:
                raise AirflowFailException(
                    f"{self.direction} failed at revision {exc.revision}: {exc.cause}"
                ) from exc
            if schema is not None:
                changed = schema_snapshot(alembic.engine, alembic.version_table)
                if changed is not None:
                    url = alembic.engine.url.set(password=None)
                    self._lineage = partial(migration_lineage, url, schema_changes(schema, changed))
            if alembic.revisions_before is not None:  # read under the lock, after any wait
                before = alembic.revisions_before
            after = alembic.current_revisions()
        self.log.info("%s done: %s -> %s", self.direction, before or ["base"], after or ["base"])
        return {"before": before, "after": after, "applied": applied}


class UpgradeOperator(_MigrateOperator):
    """Upgrade the database to ``revision`` (default: every head).

    Returns ``{"before": [...], "after": [...], "applied": [...]}``; a failing migration
    raises ``AirflowFailException`` naming the revision, and the task is not retried
    (``retries`` defaults to 0).

    :param conn_id: The Airflow connection of the database to migrate (templated).
    :param script_location: The folder of the migration scripts, or ``package:dir``
        (templated).
    :param revision: The target revision (templated; default ``"heads"``).
    :param config_file: The ``alembic.ini`` of a full Alembic project whose ``env.py``
        should run (templated); without it the wrapper runs the scripts itself.
    """

    direction = "upgrade"

    def __init__(
        self, *, conn_id: str, script_location: str, revision: str = "heads", **kwargs: Any
    ) -> None:
        super().__init__(
            conn_id=conn_id, script_location=script_location, revision=revision, **kwargs
        )


class DowngradeOperator(_MigrateOperator):
    """Downgrade the database to ``revision``; like :class:`UpgradeOperator` otherwise.

    :param conn_id: The Airflow connection of the database to migrate (templated).
    :param script_location: The folder of the migration scripts, or ``package:dir``
        (templated).
    :param revision: The target revision, for example ``"-1"`` or ``"base"`` (templated).
    :param config_file: The ``alembic.ini`` of a full Alembic project whose ``env.py``
        should run (templated); without it the wrapper runs the scripts itself.
    """

    direction = "downgrade"
    ui_color = "#fdd0a2"


class PendingMigrationsOperator(ZenMigrateBaseOperator):
    """Whether the database is behind the migration heads.

    Returns the pending state (``{"current", "heads", "pending"}``). With
    ``skip_when_current`` (the default) the task is skipped when nothing is pending, which
    skips the default-trigger-rule tasks after it: no backup and no migration run.

    :param conn_id: The Airflow connection of the database (templated).
    :param script_location: The folder of the migration scripts, or ``package:dir``
        (templated).
    :param config_file: The ``alembic.ini`` of a full Alembic project (templated), as for
        :class:`UpgradeOperator`: its version table and script location then apply.
    :param skip_when_current: Skip the task (and so the tasks after it) when the database
        is at the heads; otherwise return ``pending=False``.
    """

    template_fields: Sequence[str] = ("conn_id", "script_location", "config_file")
    ui_color = "#deebf7"

    def __init__(
        self,
        *,
        conn_id: str,
        script_location: str,
        config_file: str | None = None,
        skip_when_current: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(conn_id=conn_id, **kwargs)
        self.script_location = script_location
        self.config_file = config_file
        self.skip_when_current = skip_when_current

    def execute(self, context: Context) -> dict[str, Any]:
        with self.open_hook() as hook:
            alembic = hook.get_alembic(self.script_location, config_file=unset(self.config_file))
            current = sorted(alembic.current_revisions())
            heads = sorted(alembic.head_revisions())
        pending = current != heads
        self.log.info(
            "database at %s, heads %s: %s",
            current or ["base"],
            heads,
            "migrations pending" if pending else "up to date",
        )
        if not pending and self.skip_when_current:
            raise AirflowSkipException("no migration pending")
        return {"current": current, "heads": heads, "pending": pending}
