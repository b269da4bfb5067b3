"""What Airflow's metadata database knows about backups, read (and written) for the view.

- The run that took a backup: the asset event its ``BackupToStorageOperator`` emitted
  (``zenmigrate_backups*`` assets; the event's ``extra`` holds the backup's URI), which
  Airflow keeps with the source DAG, run and task.
- Verifications: each "Verify" of the view is an entry of Airflow's audit log (event
  ``zenmigrate.verify``, its ``extra`` the URI and the outcome, its owner the user), so it
  shows in Browse > Audit Log too and needs no table of our own.
- A database's migration history: the task instances of the backup, rehearsal and upgrade
  operators whose rendered ``conn_id`` is the connection (Airflow's rendered template
  fields), with their runs' states.

Only runs of DAGs the user may read are returned.
"""

from __future__ import annotations

import json
from typing import Any

from airflow.models.asset import AssetEvent, AssetModel
from airflow.models.dagrun import DagRun
from airflow.models.log import Log
from airflow.models.renderedtifields import RenderedTaskInstanceFields as Rendered
from airflow.models.taskinstance import TaskInstance
from sqlalchemy import select
from sqlalchemy.orm import Session

from ..core.storage import StorageError
from .listing import location_key

VERIFY_EVENT = "zenmigrate.verify"
RESTORE_EVENT = "zenmigrate.restore"
#: How far back the view looks for events and task instances (newest first).
LOOKBACK = 2000
#: The operators whose runs make a database's migration history, by the name Airflow
#: records for a task instance.
HISTORY_OPERATORS = {
    "backup": "BackupToStorageOperator",
    "rehearsal": "RehearseMigrationOperator",
    "upgrade": "UpgradeOperator",
}


def _key(uri: Any) -> tuple[str, str, str] | None:
    try:
        return location_key(str(uri))
    except StorageError:
        return None


def run_link(dag_id: str, run_id: str, task_id: str | None = None) -> str:
    """The run's page in Airflow's UI (relative to the UI's root)."""
    from urllib.parse import quote

    link = f"dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}"
    return f"{link}/tasks/{quote(task_id, safe='')}" if task_id else link


def backup_runs(
    session: Session, uris: list[str], readable: set[str]
) -> dict[tuple[str, str, str], dict[str, Any]]:
    """The run that took each backup in ``uris`` (by :func:`location_key`), when known."""
    wanted = {k for k in map(_key, uris) if k is not None}
    if not wanted:
        return {}
    rows = session.execute(
        select(AssetEvent, DagRun.state)
        .join(AssetModel, AssetModel.id == AssetEvent.asset_id)
        .outerjoin(
            DagRun,
            (DagRun.dag_id == AssetEvent.source_dag_id)
            & (DagRun.run_id == AssetEvent.source_run_id),
        )
        .where(AssetModel.name.like("zenmigrate\\_backups%", escape="\\"))
        .order_by(AssetEvent.timestamp.desc())
        .limit(LOOKBACK)
    ).all()
    found: dict[tuple[str, str, str], dict[str, Any]] = {}
    for event, state in rows:
        key = _key((event.extra or {}).get("uri"))
        if key not in wanted or key in found or event.source_dag_id not in readable:
            continue
        assert key is not None
        found[key] = {
            "dag_id": event.source_dag_id,
            "run_id": event.source_run_id,
            "task_id": event.source_task_id,
            "state": str(state) if state is not None else None,
            "at": event.timestamp.isoformat(),
            "link": run_link(str(event.source_dag_id), str(event.source_run_id)),
        }
    return found


def verifications(session: Session, uris: list[str]) -> dict[tuple[str, str, str], dict[str, Any]]:
    """The last verification of each backup in ``uris`` (by :func:`location_key`)."""
    wanted = {k for k in map(_key, uris) if k is not None}
    if not wanted:
        return {}
    rows = session.scalars(
        select(Log).where(Log.event == VERIFY_EVENT).order_by(Log.dttm.desc()).limit(LOOKBACK)
    ).all()
    found: dict[tuple[str, str, str], dict[str, Any]] = {}
    for log in rows:
        try:
            extra = json.loads(log.extra or "{}")
        except ValueError:
            continue
        key = _key(extra.get("uri"))
        if key not in wanted or key in found:
            continue
        assert key is not None
        found[key] = {
            "state": "ok" if extra.get("ok") else "failed",
            "ok": bool(extra.get("ok")),
            "error": extra.get("error"),
            "summary": extra.get("summary"),
            "at": log.dttm.isoformat() if log.dttm else None,
            "by": log.owner_display_name or log.owner,
        }
    return found


def record(session: Session, event: str, user: str, extra: dict[str, Any]) -> None:
    """An entry of Airflow's audit log for an action of the view."""
    session.add(Log(event=event, owner=user, owner_display_name=user, extra=json.dumps(extra)))


def history(session: Session, conn_id: str, readable: set[str]) -> dict[str, Any]:
    """The last backup, rehearsal and upgrade task instance run on ``conn_id``, each with
    its run's state and link (``None`` when there was none)."""
    names = {operator: kind for kind, operator in HISTORY_OPERATORS.items()}
    rows = session.execute(
        select(TaskInstance, Rendered.rendered_fields, DagRun.state)
        .join(
            Rendered,
            (Rendered.dag_id == TaskInstance.dag_id)
            & (Rendered.task_id == TaskInstance.task_id)
            & (Rendered.run_id == TaskInstance.run_id)
            & (Rendered.map_index == TaskInstance.map_index),
        )
        .join(
            DagRun,
            (DagRun.dag_id == TaskInstance.dag_id) & (DagRun.run_id == TaskInstance.run_id),
        )
        .where(TaskInstance.operator.in_(list(names)))
        .order_by(DagRun.run_after.desc(), TaskInstance.start_date.desc())
        .limit(LOOKBACK)
    ).all()
    found: dict[str, Any] = dict.fromkeys(HISTORY_OPERATORS)
    for ti, fields, run_state in rows:
        kind = names[str(ti.operator)]
        if found[kind] is not None or ti.dag_id not in readable:
            continue
        if str((fields or {}).get("conn_id")) != conn_id:
            continue
        found[kind] = {
            "dag_id": ti.dag_id,
            "run_id": ti.run_id,
            "task_id": ti.task_id,
            "task_state": str(ti.state) if ti.state is not None else None,
            "run_state": str(run_state) if run_state is not None else None,
            "at": (ti.end_date or ti.start_date).isoformat()
            if (ti.end_date or ti.start_date)
            else None,
            "link": run_link(ti.dag_id, ti.run_id),
        }
        if all(v is not None for v in found.values()):
            break
    return found
