"""OpenLineage for the operators: which datasets a backup, restore or migration touched.

The OpenLineage provider is optional. Nothing here imports it, or the ``openlineage``
client, until one of the ``*_lineage`` functions is called, and only the provider's listener
calls those (through the operators' ``get_openlineage_facets_on_complete``): without the
provider no lineage code runs and nothing of it is imported.

Dataset names follow OpenLineage's naming conventions (https://openlineage.io/docs/spec/naming):

- MySQL/MariaDB ``mysql://{host}:{port}``, ``{database}.{table}``;
- PostgreSQL ``postgres://{host}:{port}``, ``{database}.{schema}.{table}``;
- S3 ``s3://{bucket}``, GCS ``gs://{bucket}``, each named by the object key;
- Azure Blob Storage ``wasbs://{container}@{account}.dfs.core.windows.net`` (as the spec and
  the client's ``naming.WASBS`` write it), named by the blob key;
- local files ``file``, named by the absolute path.

The spec names no SQLite form; a table of an SQLite file is ``sqlite``,
``{absolute file path}.{table}`` (the file is the database, as ``{database}.{table}`` for
MySQL; no host, as for local files, since the path is only meaningful on the worker).

Names come from what the operators already hold: the database URL (its password is never
read), the table names and row counts of a backup or restore, and the dump URI reduced to
bucket and key (user information and query, where credentials hide, are dropped).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from sqlalchemy.engine import URL, Engine

from .core.storage.locations import parse_location

if TYPE_CHECKING:
    from airflow.providers.openlineage.extractors import OperatorLineage

    from .core.backup import BackupResult
    from .core.restore import RestoreSummary

logger = logging.getLogger(__name__)
_T = TypeVar("_T")

_DEFAULT_PORTS = {"mysql": 3306, "mariadb": 3306, "postgresql": 5432}

#: How a migration changed a table: OpenLineage's lifecycle state changes.
CREATE, ALTER, DROP = "CREATE", "ALTER", "DROP"


@dataclass(frozen=True)
class DatasetId:
    """An OpenLineage dataset's identity: its datasource (namespace) and its name in it."""

    namespace: str
    name: str


class ReportsLineage:
    """Mixin of the operators that report lineage: ``execute()`` records in ``_lineage`` how
    to build it, from what the task did, and the OpenLineage listener calls
    :meth:`get_openlineage_facets_on_complete` once the task succeeded.

    Nothing is recorded when the task failed before it changed anything, or when there is
    nothing to name (a restore from a database copy); the provider then reports no datasets.
    """

    _lineage: Callable[[], OperatorLineage] | None = None

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> OperatorLineage | None:
        """The datasets the task read and wrote (the OpenLineage provider calls this)."""
        return self._lineage() if self._lineage is not None else None


# -- naming -------------------------------------------------------------------------------------
def table_dataset(url: URL, table: str) -> DatasetId:
    """The dataset of ``table`` in the database of ``url`` (a name as backups record it:
    PostgreSQL tables outside ``public`` are ``schema.table``)."""
    backend = url.get_backend_name()
    if backend == "sqlite":
        return DatasetId("sqlite", f"{os.path.abspath(url.database or '')}.{table}")
    host = url.host or "localhost"
    port = url.port or _DEFAULT_PORTS.get(backend)
    authority = f"{host}:{port}" if port else host
    if backend == "postgresql":
        schema, _, name = table.partition(".") if "." in table else ("public", "", table)
        return DatasetId(f"postgres://{authority}", f"{url.database}.{schema}.{name}")
    if backend in ("mysql", "mariadb"):
        return DatasetId(f"mysql://{authority}", f"{url.database}.{table}")
    return DatasetId(f"{backend}://{authority}", f"{url.database}.{table}")


def storage_dataset(uri: str, azure_account: str | None = None) -> DatasetId:
    """The dataset of a dump (an object, a file, or a multi-part dump's prefix).

    ``azure_account`` is the storage account of an ``azure://`` URI, which the URI does not
    hold (see :func:`azure_account`); without it the namespace is ``wasbs://{container}``.
    """
    location = parse_location(uri)
    if location.scheme == "file":
        return DatasetId("file", os.path.abspath(location.key))
    if location.scheme == "azure":
        service = f"@{azure_account}.dfs.core.windows.net" if azure_account else ""
        return DatasetId(f"wasbs://{location.bucket}{service}", location.key)
    return DatasetId(f"{location.scheme}://{location.bucket}", location.key)


def azure_account(transport_params: Mapping[str, Any] | None) -> str | None:
    """The Azure storage account name: from the storage connection's client, else from the
    environment the client would be built from (see ``core.storage.clouds``); None if
    neither names one. Only the name is read, never a key or token."""
    client = (transport_params or {}).get("client")
    name = getattr(client, "account_name", None)
    if isinstance(name, str) and name:
        return name
    if os.environ.get("AZURE_STORAGE_ACCOUNT"):
        return os.environ["AZURE_STORAGE_ACCOUNT"]
    url = os.environ.get("AZURE_STORAGE_ACCOUNT_URL")
    if url and urlsplit(url).hostname:
        return str(urlsplit(url).hostname).split(".", 1)[0]
    found = re.search(
        r"(?i)AccountName=([^;]+)", os.environ.get("AZURE_STORAGE_CONNECTION_STRING", "")
    )
    return found.group(1) if found else None


# -- is anyone listening? -----------------------------------------------------------------------
def enabled() -> bool:
    """Whether the OpenLineage provider is installed and configured to emit, so that
    lineage worth extra work (a migration's schema snapshots) is collected only then.

    Without the provider nothing is imported; with it only its ``conf`` module is.
    """
    try:
        if importlib.util.find_spec("airflow.providers.openlineage") is None:
            return False
        from airflow.providers.openlineage import conf

        return not conf.is_disabled()
    except Exception:  # noqa: BLE001 - a broken or refused provider means no lineage
        return False


# -- migrations: which tables changed -----------------------------------------------------------
def schema_snapshot(engine: Engine, version_table: str) -> dict[str, Any] | None:
    """Each user table's definition (the rehearsal's schema snapshot), or None when it
    cannot be read: lineage must never fail a migration."""
    from .core.rehearsal.schema import snapshot

    try:
        tables: dict[str, Any] = snapshot(engine, exclude_tables=[version_table])["tables"]
        return tables
    except Exception as exc:  # noqa: BLE001 - lineage is best effort
        logger.warning("no lineage for this migration: the schema could not be read (%s)", exc)
        return None


def schema_changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, str]:
    """The tables a migration created, altered or dropped, each with its change."""
    changes = {name: CREATE for name in after if name not in before}
    changes.update({name: DROP for name in before if name not in after})
    changes.update({n: ALTER for n in before if n in after and before[n] != after[n]})
    return dict(sorted(changes.items()))


# -- OpenLineage objects (imported only here) ---------------------------------------------------
def backup_lineage(url: URL, result: BackupResult, azure: str | None) -> OperatorLineage:
    """A backup reads every table it holds and writes one dump (rows and bytes written)."""
    from airflow.providers.openlineage.extractors import OperatorLineage
    from openlineage.client.event_v2 import InputDataset, OutputDataset
    from openlineage.client.facet_v2 import (
        input_statistics_input_dataset,
        output_statistics_output_dataset,
    )

    inputs = [
        InputDataset(
            namespace=ds.namespace,
            name=ds.name,
            inputFacets={
                "inputStatistics": input_statistics_input_dataset.InputStatisticsInputDatasetFacet(
                    rowCount=rows
                )
            },
        )
        for ds, rows in _tables(url, result.tables.items())
    ]
    dump = storage_dataset(result.uri, azure)
    parts = result.extra.get("parts")
    statistics = output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet(
        rowCount=result.rows,
        size=result.bytes,
        fileCount=parts if isinstance(parts, int) else None,
    )
    output = OutputDataset(
        namespace=dump.namespace, name=dump.name, outputFacets={"outputStatistics": statistics}
    )
    return OperatorLineage(inputs=inputs, outputs=[output])


def restore_lineage(
    url: URL, uri: str, summary: RestoreSummary, azure: str | None
) -> OperatorLineage:
    """A restore reads one dump and overwrites every table it holds (rows written)."""
    from airflow.providers.openlineage.extractors import OperatorLineage
    from openlineage.client.event_v2 import InputDataset, OutputDataset
    from openlineage.client.facet_v2 import (
        input_statistics_input_dataset,
        lifecycle_state_change_dataset,
        output_statistics_output_dataset,
    )

    dump = storage_dataset(uri, azure)
    read = input_statistics_input_dataset.InputStatisticsInputDatasetFacet(rowCount=summary.rows)
    overwrite = lifecycle_state_change_dataset.LifecycleStateChange.OVERWRITE
    outputs = [
        OutputDataset(
            namespace=ds.namespace,
            name=ds.name,
            facets={
                "lifecycleStateChange": (
                    lifecycle_state_change_dataset.LifecycleStateChangeDatasetFacet(
                        lifecycleStateChange=overwrite
                    )
                )
            },
            outputFacets={
                "outputStatistics": (
                    output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet(
                        rowCount=rows
                    )
                )
            },
        )
        for ds, rows in _tables(url, summary.tables.items())
    ]
    source = InputDataset(
        namespace=dump.namespace, name=dump.name, inputFacets={"inputStatistics": read}
    )
    return OperatorLineage(inputs=[source], outputs=outputs)


def migration_lineage(url: URL, changes: Mapping[str, str]) -> OperatorLineage:
    """A migration's outputs: the tables it created, altered or dropped (lifecycle facet)."""
    from airflow.providers.openlineage.extractors import OperatorLineage
    from openlineage.client.event_v2 import OutputDataset
    from openlineage.client.facet_v2 import lifecycle_state_change_dataset as lifecycle

    outputs = [
        OutputDataset(
            namespace=ds.namespace,
            name=ds.name,
            facets={
                "lifecycleStateChange": lifecycle.LifecycleStateChangeDatasetFacet(
                    lifecycleStateChange=lifecycle.LifecycleStateChange(change)
                )
            },
        )
        for ds, change in _tables(url, changes.items())
    ]
    return OperatorLineage(outputs=outputs)


def _tables(url: URL, items: Iterable[tuple[str, _T]]) -> list[tuple[DatasetId, _T]]:
    return [(table_dataset(url, table), value) for table, value in items]
