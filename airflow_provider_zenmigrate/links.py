"""The extra links: "Backup" (to the backup object) and "Rehearsal report" (to the stored
Markdown report of a rehearsal, beside the backup)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from airflow.sdk import BaseOperatorLink

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator
    from airflow.sdk.types import TaskInstanceKey


def console_url(uri: str) -> str:
    """Where a person looks at a backup: the cloud console, or the local path."""
    parts = urlsplit(uri)
    bucket, key = parts.netloc, parts.path.lstrip("/")
    if parts.scheme == "s3":
        return f"https://s3.console.aws.amazon.com/s3/object/{bucket}?prefix={quote(key)}"
    if parts.scheme in ("gs", "gcs"):
        return f"https://console.cloud.google.com/storage/browser/_details/{bucket}/{quote(key)}"
    if parts.scheme == "azure":
        return (
            "https://portal.azure.com/#view/Microsoft_Azure_Storage/ContainerMenuBlade"
            f"/~/overview/path/{quote(bucket)}/prefix/{quote(key)}"
        )
    if parts.scheme == "file":
        return uri
    return f"file://{quote(uri)}" if uri.startswith("/") else uri


class _StoredLink(BaseOperatorLink):
    """A link whose target the task pushes to XCom while it runs (:meth:`persist`)."""

    @classmethod
    def persist(cls, context: Any, uri: str) -> None:
        context["ti"].xcom_push(key=cls().xcom_key, value=console_url(uri))

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        from airflow.sdk.execution_time.xcom import XCom

        value = XCom.get_value(ti_key=ti_key, key=self.xcom_key)
        return str(value) if value else ""


class BackupLink(_StoredLink):
    """Points at the backup the task wrote or restored from."""

    name = "Backup"


class RehearsalReportLink(_StoredLink):
    """Points at the rehearsal's Markdown report, stored beside the backup."""

    name = "Rehearsal report"
