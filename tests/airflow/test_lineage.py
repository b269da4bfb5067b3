"""OpenLineage: the events our operators' tasks emit through the OpenLineage provider, and
operators that import and change nothing when the provider is absent.

Each DAG runs in a child process: the provider decides at import whether its listener is
on (from ``[openlineage] transport``), so a process of its own is the only way to switch it
on for one test and off for another. The child runs ``dag.test()``, which executes the
tasks in process through the task runner, calling the plugin listeners as a worker does;
the provider's file transport writes each event as one JSON line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from openlineage.client.naming import dataset as naming
from sqlalchemy import text
from sqlalchemy.engine import URL, make_url

from airflow_provider_zenmigrate.core.alembic import Alembic
from airflow_provider_zenmigrate.core.utils import MigrationUtils
from airflow_provider_zenmigrate.lineage import (
    ALTER,
    CREATE,
    DROP,
    DatasetId,
    azure_account,
    schema_changes,
    storage_dataset,
    table_dataset,
)
from tests.support.example_dags import connection_json
from tests.support.paths import EXAMPLE_MIGRATIONS, REPO
from tests.support.servers import database_url, unique_name

#: The child process: build the DAG, write it to the metadata database as the DAG processor
#: would, run it with dag.test(), and print the task states and the modules it holds.
_CHILD = r"""
import importlib.abc
import json
import os
import sys

spec = json.loads(os.environ["HOL_SPEC"])
REFUSED = ("openlineage", "airflow.providers.openlineage")


def refused(name):
    return any(name == r or name.startswith(r + ".") for r in REFUSED)


class Refuse(importlib.abc.MetaPathFinder):
    # The OpenLineage provider and client as if not installed.
    def find_spec(self, name, path=None, target=None):
        if refused(name):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


def hidden(dist):
    name = (dist.metadata["Name"] or "").lower().replace("_", "-")
    return name.startswith("openlineage") or name == "apache-airflow-providers-openlineage"


def hide_distributions(finder):
    # Their package metadata too, so that Airflow finds no provider entry point to load.
    find = finder.find_distributions

    def find_distributions(*args, **kwargs):
        return (d for d in find(*args, **kwargs) if not hidden(d))

    finder.find_distributions = find_distributions


if spec["refuse"]:
    import importlib_metadata  # the backport Airflow reads; it installs its finder

    for finder in list(sys.meta_path):
        if hasattr(finder, "find_distributions"):
            hide_distributions(finder)
    sys.meta_path.insert(0, Refuse())

from airflow.dag_processing.bundles.manager import DagBundlesManager
from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db
from airflow.sdk import DAG, chain

from airflow_provider_zenmigrate import lineage
from airflow_provider_zenmigrate.operators import (
    BackupToStorageOperator,
    DowngradeOperator,
    RestoreOperator,
    UpgradeOperator,
)

with DAG(dag_id=spec["dag_id"], schedule=None, catchup=False) as dag:
    chain(
        BackupToStorageOperator(task_id="backup", conn_id="hol_db", uri=spec["uri"]),
        UpgradeOperator(task_id="upgrade", conn_id="hol_db", script_location=spec["scripts"]),
        DowngradeOperator(
            task_id="downgrade", conn_id="hol_db", script_location=spec["scripts"], revision="0001"
        ),
        RestoreOperator(task_id="restore", conn_id="hol_db", backup_task_id="backup"),
    )
DagBundlesManager().sync_bundles_to_db()
bag = DagBag(dag_folder=spec["dags_folder"], collect_dags=False)
bag.dags[dag.dag_id] = dag
sync_bag_to_db(bag, "dags-folder", None)
run = dag.test()
result = {
    "states": {ti.task_id: str(ti.state) for ti in run.get_task_instances()},
    "xcom": {t: run.get_task_instance(t).xcom_pull(task_ids=t) for t in ("backup", "restore")},
    "refused_loaded": sorted(m for m in sys.modules if refused(m)),
    "enabled": lineage.enabled(),
}
print("HOL_RESULT " + json.dumps(result, default=str))
"""


def _run_child(
    tmp_path: Path, url: URL, *, refuse: bool, events: Path
) -> tuple[dict[str, Any], str]:
    """Run the DAG in a child process with the OpenLineage file transport configured;
    ``refuse`` makes the provider and the client unimportable there."""
    dag_id = unique_name("hol_lineage")
    spec = {
        "refuse": refuse,
        "dag_id": dag_id,
        "uri": str(tmp_path / "backups" / "one.jsonl.gz"),
        "scripts": str(EXAMPLE_MIGRATIONS),
        "dags_folder": str(REPO / "example_dags"),
    }
    utils = MigrationUtils(url=url, connect_args={}, engine_args={})
    env = {
        **os.environ,
        "HOL_SPEC": json.dumps(spec),
        "AIRFLOW_CONN_HOL_DB": connection_json(utils),
        "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(
            {"type": "file", "log_file_path": str(events), "append": True}
        ),
        "AIRFLOW__OPENLINEAGE__NAMESPACE": "hol_tests",
    }
    utils.dispose()
    child = subprocess.run(
        [sys.executable, "-c", _CHILD],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = [line for line in child.stdout.splitlines() if line.startswith("HOL_RESULT ")]
    assert child.returncode == 0 and lines, child.stderr[-4000:]
    return json.loads(lines[-1].removeprefix("HOL_RESULT ")), dag_id


def _complete_events(events: Path, dag_id: str) -> dict[str, dict[str, Any]]:
    """Each task's COMPLETE event from the transport's file, by task id."""
    found: dict[str, dict[str, Any]] = {}
    for line in events.read_text().splitlines():
        event = json.loads(line)
        name = event["job"]["name"]
        if event["eventType"] == "COMPLETE" and name.startswith(f"{dag_id}."):
            found[name.removeprefix(f"{dag_id}.")] = event
    return found


@pytest.fixture(params=["sqlite", "postgresql"])
def seeded(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[URL]:
    """A database at revision 0001 with three authors (``hol_`` names on the servers)."""
    url = database_url(str(request.param), tmp_path, unique_name("hol"))
    utils = MigrationUtils(url=url, connect_args={}, engine_args={})
    utils.create_database()
    try:
        Alembic(utils.engine, script_location=EXAMPLE_MIGRATIONS).upgrade("0001")
        with utils.engine.begin() as conn:
            conn.execute(
                text("INSERT INTO author (id, name) VALUES (1, 'Ada'), (2, 'Bo'), (3, 'Cy')")
            )
        utils.dispose()
        yield url
    finally:
        utils.drop_database()
        utils.dispose()


def _datasets(items: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(d["namespace"], d["name"]): d for d in items}


def test_backup_migrations_and_restore_report_their_datasets(
    airflow_db: Path, seeded: URL, tmp_path: Path
) -> None:
    """The COMPLETE event of each task names the datasets it read and wrote, as OpenLineage
    names them, with rows, bytes and the lifecycle changes of the migrations."""
    events = tmp_path / "events.jsonl"
    result, dag_id = _run_child(tmp_path, seeded, refuse=False, events=events)
    assert set(result["states"].values()) == {"success"}, result["states"]
    assert result["enabled"] is True
    emitted = _complete_events(events, dag_id)
    assert set(emitted) == {"backup", "upgrade", "downgrade", "restore"}, list(emitted)

    author, book = table_dataset(seeded, "author"), table_dataset(seeded, "book")
    version = table_dataset(seeded, "alembic_version")
    backend = seeded.get_backend_name()
    expected_author = {
        "sqlite": DatasetId("sqlite", f"{seeded.database}.author"),
        "postgresql": DatasetId(
            f"postgres://{seeded.host}:{seeded.port or 5432}", f"{seeded.database}.public.author"
        ),
        "mysql": DatasetId(
            f"mysql://{seeded.host}:{seeded.port or 3306}", f"{seeded.database}.author"
        ),
    }[backend]
    assert author == expected_author

    # Backup: the tables in (rows read), the dump out (rows and bytes written).
    manifest = result["xcom"]["backup"]
    dump_path = tmp_path / "backups" / "one.jsonl.gz"
    backup = emitted["backup"]
    inputs = _datasets(backup["inputs"])
    assert set(inputs) == {(author.namespace, author.name), (version.namespace, version.name)}
    stats = inputs[(author.namespace, author.name)]["inputFacets"]["inputStatistics"]
    assert stats["rowCount"] == 3
    [dump] = backup["outputs"]
    assert (dump["namespace"], dump["name"]) == ("file", str(dump_path))
    written = dump["outputFacets"]["outputStatistics"]
    assert written["rowCount"] == manifest["rows"] == 4  # three authors, one version row
    assert written["size"] == manifest["bytes"] == dump_path.stat().st_size

    # Upgrade to the heads: book created, author altered (a column added).
    def changes(task: str) -> dict[str, str]:
        return {
            d["name"]: d["facets"]["lifecycleStateChange"]["lifecycleStateChange"]
            for d in emitted[task]["outputs"]
            if d["namespace"] == author.namespace
        }

    assert emitted["upgrade"]["inputs"] == []
    assert changes("upgrade") == {book.name: "CREATE", author.name: "ALTER"}
    assert changes("downgrade") == {book.name: "DROP", author.name: "ALTER"}

    # Restore: the dump in, the tables overwritten with the rows restored.
    restore = emitted["restore"]
    [source] = restore["inputs"]
    assert (source["namespace"], source["name"]) == ("file", str(dump_path))
    assert source["inputFacets"]["inputStatistics"]["rowCount"] == 4
    outputs = _datasets(restore["outputs"])
    assert set(outputs) == {(author.namespace, author.name), (version.namespace, version.name)}
    restored = outputs[(author.namespace, author.name)]
    assert restored["facets"]["lifecycleStateChange"]["lifecycleStateChange"] == "OVERWRITE"
    assert restored["outputFacets"]["outputStatistics"]["rowCount"] == 3
    assert result["xcom"]["restore"]["rows"] == 4

    # The job is the task; the producer is the provider.
    assert backup["job"]["namespace"] == "hol_tests"
    assert "openlineage" in backup["producer"]
    if backend == "sqlite":
        print("one COMPLETE event as emitted:", json.dumps(backup))


def test_without_the_provider_nothing_is_imported_and_the_tasks_run(
    airflow_db: Path, tmp_path: Path
) -> None:
    """With the OpenLineage provider and client unimportable, the same DAG runs, returns
    what it returns with them, imports nothing of them and emits nothing."""
    url = database_url("sqlite", tmp_path, unique_name("hol"))
    utils = MigrationUtils(url=url, connect_args={}, engine_args={})
    Alembic(utils.engine, script_location=EXAMPLE_MIGRATIONS).upgrade("0001")
    with utils.engine.begin() as conn:
        conn.execute(text("INSERT INTO author (id, name) VALUES (1, 'Ada')"))
    utils.dispose()
    events = tmp_path / "events.jsonl"
    result, _ = _run_child(tmp_path, url, refuse=True, events=events)
    assert result["states"] == dict.fromkeys(
        ("backup", "upgrade", "downgrade", "restore"), "success"
    )
    assert result["refused_loaded"] == []
    assert result["enabled"] is False
    assert result["xcom"]["backup"]["rows"] == 2
    assert result["xcom"]["restore"]["rows"] == 2
    assert not events.exists()


# -- naming, against the OpenLineage client's own naming helpers ---------------------------------
@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        (
            "s3://AKIAKEY:s3cr3t@backups/db/one.jsonl.zst?X-Amz-Signature=s3cr3t",
            naming.S3(bucket_name="backups", object_key="db/one.jsonl.zst"),
        ),
        (
            "gs://backups/db/one.jsonl.zst",
            naming.GCS(bucket_name="backups", object_key="db/one.jsonl.zst"),
        ),
        (
            "gcs://backups/db/one.jsonl.zst",
            naming.GCS(bucket_name="backups", object_key="db/one.jsonl.zst"),
        ),
        (
            "azure://dumps/db/one.jsonl.zst?sig=s3cr3t",
            naming.WASBS(container="dumps", service_name="hol", object_key="db/one.jsonl.zst"),
        ),
        ("/var/backups/one.jsonl", naming.LocalFileSystem(path="/var/backups/one.jsonl")),
        ("file:///var/backups/one.jsonl", naming.LocalFileSystem(path="/var/backups/one.jsonl")),
    ],
)
def test_storage_names_follow_openlineage(uri: str, expected: Any) -> None:
    found = storage_dataset(uri, azure_account=None if "azure" not in uri else "hol")
    assert found == DatasetId(expected.get_namespace(), expected.get_name())
    assert "s3cr3t" not in found.namespace + found.name


def test_table_names_follow_openlineage_and_hold_no_password() -> None:
    mysql = make_url("mysql+pymysql://app:s3cr3t@db.example:3307/shop")
    assert table_dataset(mysql, "orders") == DatasetId(
        naming.MySQL(
            host="db.example", port="3307", database="shop", table="orders"
        ).get_namespace(),
        "shop.orders",
    )
    pg = make_url("postgresql+psycopg://app:s3cr3t@pg.example/shop")
    expected = naming.Postgres(
        host="pg.example", port="5432", database="shop", schema="sales", table="orders"
    )
    found = table_dataset(pg, "sales.orders")
    assert found == DatasetId(expected.get_namespace(), expected.get_name())
    assert table_dataset(pg, "orders").name == "shop.public.orders"
    assert "s3cr3t" not in str(found)


def test_azure_account_comes_from_the_client_or_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in (
        "AZURE_STORAGE_ACCOUNT",
        "AZURE_STORAGE_ACCOUNT_URL",
        "AZURE_STORAGE_CONNECTION_STRING",
    ):
        monkeypatch.delenv(name, raising=False)
    assert azure_account(None) is None
    monkeypatch.setenv(
        "AZURE_STORAGE_CONNECTION_STRING",
        "DefaultEndpointsProtocol=https;AccountName=holacct;AccountKey=s3cr3t",
    )
    assert azure_account(None) == "holacct"
    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT_URL", "https://holurl.blob.core.windows.net")
    assert azure_account(None) == "holurl"

    class Client:
        account_name = "holclient"

    assert azure_account({"client": Client()}) == "holclient"


def test_schema_changes_name_each_table_once() -> None:
    before = {"a": {"columns": {"id": 1}}, "b": {"columns": {"id": 1}}, "c": {}}
    after = {"a": {"columns": {"id": 1, "x": 2}}, "c": {}, "d": {}}
    assert schema_changes(before, after) == {"a": ALTER, "b": DROP, "d": CREATE}
