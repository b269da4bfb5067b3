"""What every zenmigrate operator shares: its connections, its hook, and its clean-up."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import cached_property
from typing import Any

from airflow.sdk import BaseOperator, Context
from airflow.sdk.exceptions import AirflowFailException

from ..core.errors import EncryptionKeyError
from ..hooks.zenmigrate import ZenMigrateHook


class ZenMigrateBaseOperator(BaseOperator):
    """Holds the connection ids; the hook (and any connection) is only made in execute().

    :param conn_id: The Airflow connection of the database (templated).
    :param storage_conn_id: The Airflow connection of the object store (``aws``,
        ``google_cloud_platform`` or ``wasb``) that holds the backups (templated); without
        it the cloud SDKs' own environment and default credentials apply.
    :param encryption_conn_id: The Airflow connection holding the key of encrypted dumps
        (templated, like the other connection ids): a base64 32-byte key as its password, or
        ``{"kms_key_id": "arn:aws:kms:..."}`` in its extra. Backups are then encrypted and
        authenticated, and restores read encrypted dumps with it (and trust their routines:
        the trust rule). Only the id is ever in a template field, XCom, a log line or the UI.
        A key that is missing, wrong or refused fails the task without retries: another try
        would meet the same key.
    """

    template_fields: Sequence[str] = ("conn_id", "storage_conn_id", "encryption_conn_id")

    def __init__(
        self,
        *,
        conn_id: str,
        storage_conn_id: str | None = None,
        encryption_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.conn_id = conn_id
        self.storage_conn_id = storage_conn_id
        self.encryption_conn_id = encryption_conn_id

    @cached_property
    def hook(self) -> ZenMigrateHook:
        return ZenMigrateHook(
            conn_id=self.conn_id,
            storage_conn_id=unset(self.storage_conn_id),
            # A native render turns an all-digit id into an int.
            encryption_conn_id=unset(
                None if self.encryption_conn_id is None else str(self.encryption_conn_id)
            ),
        )

    @contextmanager
    def open_hook(self) -> Iterator[ZenMigrateHook]:
        """The hook for one execute(); its engines are disposed when the block ends, whether
        the task succeeded or not, so no pooled connection outlives the task on the worker."""
        try:
            yield self.hook
        except EncryptionKeyError as exc:
            raise AirflowFailException(
                f"{exc} (the key comes from encryption_conn_id="
                f"{unset(str(self.encryption_conn_id)) or 'not set'})"
            ) from exc
        finally:
            self.hook.close()


def unset(value: str | None) -> str | None:
    """None for an optional argument left out, or rendered from a template as "" or "None"."""
    return None if value in (None, "", "None") else value


def names(value: Any) -> list[str]:
    """A list of names from an argument or its rendered template: a list, or one string of
    comma-separated names ("app, audit"); empty for None or ""."""
    if value is None:
        return []
    if isinstance(value, str):
        return [n.strip() for n in value.split(",") if n.strip()]
    if isinstance(value, list | tuple) and all(isinstance(n, str) for n in value):
        return [n for n in value if n]
    raise TypeError(f"expected schema names (a list or a comma-separated string), got {value!r}")


def jobs_count(value: Any, operator: str) -> int:
    """``jobs`` as an int of at least 1, from an int or its rendered template ("4").

    Raises:
        ValueError: Naming the operator, for anything else (a DAG error, not a task's).
    """
    try:
        jobs = int(str(value).strip()) if not isinstance(value, bool) else 0
    except ValueError:
        jobs = 0
    if jobs < 1:
        raise ValueError(
            f"{operator}: jobs must be a whole number of worker processes, 1 or more; got {value!r}"
        )
    return jobs


def check_jobs(value: Any, operator: str) -> None:
    """:func:`jobs_count` at construction, unless ``value`` is a template still to render
    (it is checked again in execute())."""
    if not (isinstance(value, str) and "{{" in value):
        jobs_count(value, operator)


def flag(value: Any) -> bool:
    """A bool, or a rendered template of one ("True", "false", "1")."""
    return str(value).strip().lower() in ("true", "1", "yes")


def pull_from_run(context: Context, task_id: str, key: str = "return_value") -> Any:
    """What ``task_id`` pushed under ``key`` in this run. In a mapped task group, a task of
    the same group is read at this task's own map index: Airflow 3's ``xcom_pull`` without
    ``map_indexes`` returns every expansion's value, and a restore must take its own
    database's backup, not a list of all of them."""
    ti = context["ti"]
    task = context["task"]
    group = task.get_closest_mapped_task_group()
    other = task.dag.get_task(task_id) if task.dag and task.dag.has_task(task_id) else None
    if (
        group is not None
        and other is not None
        and other.get_closest_mapped_task_group() is group
        and ti.map_index is not None
        and ti.map_index >= 0
    ):
        return ti.xcom_pull(task_ids=task_id, key=key, map_indexes=ti.map_index)
    return ti.xcom_pull(task_ids=task_id, key=key)


def backup_uri(context: Context, task_id: str) -> str | None:
    """The URI the backup task ``task_id`` returned in this run; None when it returned none
    (it failed, was skipped or did not run): each caller decides what no backup means."""
    result = pull_from_run(context, task_id)
    if result is None:
        return None
    if isinstance(result, dict) and result.get("uri"):
        return str(result["uri"])
    raise AirflowFailException(
        f"task {task_id!r} returned a {type(result).__name__} without a 'uri': "
        "backup_task_id must name a BackupToStorageOperator task"
    )
