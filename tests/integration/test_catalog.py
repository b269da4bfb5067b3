"""Listing, pruning and verifying backups on every store, from every dialect's source."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import pytest

from airflow_provider_zenmigrate.core.catalog import list_backups, prune_backups, verify_backup
from airflow_provider_zenmigrate.core.storage import StorageNotFoundError
from airflow_provider_zenmigrate.core.utils import MigrationUtils

if TYPE_CHECKING:
    from tests.support.object_stores import Store

pytest_plugins = ["tests.support.object_stores"]


def _backups(source: MigrationUtils, store: Store, count: int) -> list[str]:
    source.transport_params = store.transport_params
    uris = [store.uri(f"nightly/library-{i}.jsonl.zst") for i in range(count)]
    for uri in uris:
        source.backup_database_to_file(uri)
    return uris


def test_list_and_prune(store: Store, source: MigrationUtils, dialect: str) -> None:
    uris = _backups(source, store, 3)
    params = store.transport_params
    # Foreign and incomplete objects under the same prefix are never listed nor pruned.
    junk = {
        "nightly/notes.txt": b"not a backup",
        "nightly/partial.jsonl.zst": store.get(uris[0])[:1000],  # never got its manifest
        "nightly/foreign.jsonl": b'{"kind": "header"}\n',
        "nightly/foreign.jsonl.manifest.json": b"{not json",
        "nightly/replaced.jsonl.zst": b"replaced after its manifest was written",
        "nightly/replaced.jsonl.zst.manifest.json": store.get(uris[0] + ".manifest.json"),
        "nightly/orphan.jsonl.manifest.json": store.get(uris[1] + ".manifest.json"),
    }
    for name, data in junk.items():
        store.put(store.uri(name), data)

    backups = list_backups(store.uri("nightly/"), params)
    assert [b.uri for b in backups] == uris[::-1]  # newest first
    newest = backups[0]
    assert newest.dialect == dialect and newest.revision == "0003"
    assert newest.database and source.url.database and newest.database in source.url.database
    assert newest.tables["author"] == 50 and newest.tables["book"] == 150
    assert newest.created_at.tzinfo is not None
    assert newest.created_at > backups[1].created_at > backups[2].created_at
    assert dt.datetime.now(dt.UTC) - newest.created_at < dt.timedelta(minutes=5)
    assert newest.size == len(store.get(uris[2])) and newest.tool_version
    # A prefix that is not a folder works too.
    assert [b.uri for b in list_backups(store.uri("nightly/library-1"), params)] == [uris[1]]
    assert list_backups(store.uri("elsewhere/"), params) == []

    assert prune_backups(store.uri("nightly/"), keep_last=1, transport_params=params, dry_run=True)
    assert len(list_backups(store.uri("nightly/"), params)) == 3
    deleted = prune_backups(store.uri("nightly/"), keep_last=1, transport_params=params)
    assert [b.uri for b in deleted] == [uris[1], uris[0]]
    assert [b.uri for b in list_backups(store.uri("nightly/"), params)] == [uris[2]]
    remaining = set(store.objects())
    assert {uris[2], uris[2] + ".manifest.json"} | {store.uri(n) for n in junk} == remaining
    assert prune_backups(store.uri("nightly/"), keep_last=1, transport_params=params) == []


def test_verify_reports_what_it_found(store: Store, source: MigrationUtils, dialect: str) -> None:
    (uri,) = _backups(source, store, 1)
    params = store.transport_params
    report = verify_backup(uri, params)
    assert report.ok and report.trailer_ok and report.error is None, report
    assert report.manifest_ok is True
    assert report.header is not None and report.header["dialect"] == dialect
    assert report.tables["author"] == 50 and report.tables["book"] == 150
    assert report.records > 4 and report.size == len(store.get(uri))
    assert str(report).startswith(f"{uri}: OK")

    plain = store.uri("plain.jsonl")
    source.backup_database_to_file(plain)
    data = store.get(plain)
    index = data.index(b"Author 1")
    store.put(plain, data[:index] + b"Author 7" + data[index + 8 :])
    altered = verify_backup(plain, params)
    assert not altered.ok and not altered.trailer_ok and altered.manifest_ok is False
    assert altered.error and "author" in altered.error and altered.error_line

    truncated = store.uri("truncated.jsonl")
    store.put(truncated, data[: data.rindex(b"\n", 0, len(data) // 2) + 1])
    report = verify_backup(truncated, params)
    assert not report.ok and report.error and "truncated" in report.error
    assert report.manifest_ok is None and report.tables  # what it read before the end

    compressed = store.uri("cut.jsonl.zst")
    store.put(compressed, store.get(uri)[:-200])
    report = verify_backup(compressed, params)
    assert not report.ok and report.error and "truncated or corrupt" in report.error

    with pytest.raises(StorageNotFoundError, match="not found"):
        verify_backup(store.uri("missing.jsonl"), params)
