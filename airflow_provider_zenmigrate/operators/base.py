"""What every zenmigrate operator shares: its connections and its hook."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import Any

from airflow.sdk import BaseOperator

from ..hooks.zenmigrate import ZenMigrateHook


class ZenMigrateBaseOperator(BaseOperator):
    """Holds the connection ids; the hook (and any connection) is only made in execute()."""

    template_fields: Sequence[str] = ("conn_id", "storage_conn_id")

    def __init__(self, *, conn_id: str, storage_conn_id: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.conn_id = conn_id
        self.storage_conn_id = storage_conn_id

    @cached_property
    def hook(self) -> ZenMigrateHook:
        # A template may render an unset storage connection as "" or "None".
        storage = self.storage_conn_id if self.storage_conn_id not in ("", "None") else None
        return ZenMigrateHook(conn_id=self.conn_id, storage_conn_id=storage)


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
