"""A rehearsal report beside its backup on every store (local, S3, GCS, Azure servers): stored,
read back, never listed as a backup, pruned with it, and no credential in it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import text
from sqlalchemy.engine import URL

from airflow_provider_zenmigrate.core.catalog import SIDECAR_SUFFIXES, list_backups, prune_backups
from airflow_provider_zenmigrate.core.rehearsal import load_report, render_markdown, store_report
from airflow_provider_zenmigrate.core.rehearsal.model import (
    LockSeen,
    RehearsalReport,
    RevisionResult,
)
from airflow_provider_zenmigrate.core.utils import MigrationUtils

if TYPE_CHECKING:
    from tests.support.object_stores import Store

pytest_plugins = ["tests.support.object_stores"]


def _report() -> RehearsalReport:
    lock = LockSeen("item", "AccessExclusiveLock", "reads and writes", 8)
    return RehearsalReport(
        database="postgresql+psycopg://app:***@db/shop",
        dialect="postgresql",
        from_revisions=["c1"],
        to_revisions=["c2"],
        revisions=[
            RevisionResult(
                revision="c2",
                description="price and an index",
                status="ok",
                seconds=0.42,
                rewritten=["item"],
                strongest_lock=lock,
                locks=[lock],
                offline_sql="ALTER TABLE item ADD COLUMN price INTEGER DEFAULT 0 NOT NULL;",
            )
        ],
        estimated_seconds=0.5,
    )


def _sqlite_backups(tmp_path: Path, store: Store, count: int) -> list[str]:
    """``count`` complete backups of a small SQLite database under ``store``'s prefix."""
    url = URL.create("sqlite", database=str(tmp_path / "app.db"))
    uris = [store.uri(f"nightly/app-{i}.jsonl.gz") for i in range(count)]
    with MigrationUtils(url=url, connect_args={}, engine_args={}) as utils:
        utils.create_database()
        utils.transport_params = store.transport_params
        with utils.engine.begin() as conn:
            conn.execute(text("CREATE TABLE item (id INTEGER PRIMARY KEY, code TEXT)"))
            conn.execute(text("INSERT INTO item (id, code) VALUES (1, 'a'), (2, 'b')"))
        for uri in uris:
            utils.backup_database_to_file(uri)
    return uris


def test_store_and_load_on_every_store(store: Store, tmp_path: Path) -> None:
    (backup,) = _sqlite_backups(tmp_path, store, 1)
    report = _report()

    stored = store_report(report, backup, store.transport_params)

    assert stored == {
        "json": backup + ".rehearsal.json",
        "markdown": backup + ".rehearsal.md",
        "sql": backup + ".upgrade.sql",
    }
    assert set(stored.values()) < set(store.objects())
    assert load_report(backup, store.transport_params) == report
    assert load_report(stored["json"], store.transport_params).revisions[0].seconds == 0.42
    assert store.get(stored["markdown"]).decode() == render_markdown(report)
    assert b"-- revision c2: price and an index\nALTER TABLE item" in store.get(stored["sql"])
    # The sidecars are no backups: the listing still holds exactly the one backup.
    assert [b.uri for b in list_backups(store.uri("nightly/"), store.transport_params)] == [backup]


def test_prune_deletes_the_sidecars_of_a_pruned_backup(store: Store, tmp_path: Path) -> None:
    old, new = _sqlite_backups(tmp_path, store, 2)
    params = store.transport_params
    store_report(_report(), old, params)
    store_report(_report(), new, params)
    # A sidecar without its backup is never touched (it is not a listed backup).
    store.put(store.uri("nightly/gone.jsonl.gz.rehearsal.md"), b"orphan")

    deleted = prune_backups(store.uri("nightly/"), keep_last=1, transport_params=params)

    assert [b.uri for b in deleted] == [old]
    assert set(store.objects()) == {
        new,
        new + ".manifest.json",
        *(new + suffix for suffix in SIDECAR_SUFFIXES),
        store.uri("nightly/gone.jsonl.gz.rehearsal.md"),
    }
    # A backup that never had a report is pruned as before.
    assert prune_backups(store.uri("nightly/"), keep_last=0, transport_params=params)
    assert set(store.objects()) == {store.uri("nightly/gone.jsonl.gz.rehearsal.md")}


def test_credentials_in_an_s3_uri_never_reach_the_report(
    s3_store: Store, store_secrets: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_store.env["AWS_ENDPOINT_URL_S3"])
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    key, secret = store_secrets["s3_access_key"], store_secrets["s3_secret_key"]
    plain = s3_store.uri("report-only/run")
    with_credentials = plain.replace("s3://", f"s3://{key}:{secret}@", 1)

    stored = store_report(_report(), with_credentials)

    assert stored["json"] == plain + ".rehearsal.json"
    loaded = load_report(with_credentials)
    assert loaded.stored == stored
    for uri in stored.values():
        body = s3_store.get(uri).decode()
        assert key not in body and secret not in body
