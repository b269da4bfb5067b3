"""Multi-part dumps in the catalog, on a local folder and on S3 (moto's server): listed,
found, inspected and pruned as one backup beside single dumps, and verified part by part,
with a tampered, missing, duplicated or left-out part refused and named."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

import airflow_provider_zenmigrate.core.parts.backup as parts_backup
from airflow_provider_zenmigrate.core.catalog import (
    find_backup,
    list_backups,
    prune_backups,
    verify_backup,
)
from airflow_provider_zenmigrate.core.inspection import inspect_backup
from airflow_provider_zenmigrate.core.storage import StorageNotFoundError
from airflow_provider_zenmigrate.core.utils import MigrationUtils
from tests.support.object_stores import make_store
from tests.support.servers import database_url, unique_name

if TYPE_CHECKING:
    from tests.support.object_stores import Store

pytest_plugins = ["tests.support.object_stores"]

ROWS = 30_000


@pytest.fixture(params=["local", "s3"])
def parts_store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    return make_store(str(request.param), request, tmp_path)


@pytest.fixture
def mariadb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[MigrationUtils]:
    """A MariaDB database whose table ``t`` is cut into several key spans (parts are made
    small here), a small table, an empty one and a view."""
    monkeypatch.setattr(parts_backup, "PART_BYTES", 128 * 1024)
    url = database_url("mysql", tmp_path, unique_name("zmint"))
    utils = MigrationUtils(url=url, connect_args={}, engine_args={})
    utils.create_database()
    with utils.engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (id BIGINT PRIMARY KEY, a VARCHAR(40), c BLOB)")
        conn.exec_driver_sql(
            f"INSERT INTO t SELECT seq, CONCAT('row', seq), RANDOM_BYTES(16) FROM seq_1_to_{ROWS}"
        )
        conn.exec_driver_sql("CREATE TABLE small (id INT PRIMARY KEY, v TEXT)")
        conn.exec_driver_sql("INSERT INTO small VALUES (1, 'x'), (2, 'y')")
        conn.exec_driver_sql("CREATE TABLE empty_one (id INT PRIMARY KEY)")
        conn.exec_driver_sql("CREATE VIEW v AS SELECT id FROM small")
        conn.exec_driver_sql("ANALYZE TABLE t")
    try:
        yield utils
    finally:
        utils.drop_database()
        utils.dispose()


def _backup(utils: MigrationUtils, store: Store, name: str, jobs: int) -> str:
    utils.transport_params = store.transport_params
    uri = store.uri(name)
    result = utils.backup_database_to_file(uri, jobs=jobs)
    assert (result.extra.get("layout") == "parts") == (jobs > 1)
    return uri


def _manifest(store: Store, uri: str) -> dict[str, Any]:
    return dict(json.loads(store.get(uri + "/manifest.json")))


def _put_manifest(store: Store, uri: str, raw: dict[str, Any]) -> None:
    """Write an edited manifest whose rows and digest add up again, so only the check under
    test can refuse it (anyone can rewrite a manifest; its digest is no signature)."""
    tables: dict[str, int] = {}
    for part in raw["parts"][1:]:
        tables[part["table"]] = tables.get(part["table"], 0) + part["rows"]
    raw["tables"], raw["rows"] = tables, sum(tables.values())
    whole = hashlib.sha256()
    for part in raw["parts"]:
        whole.update(f"{part['name']}\t{part['digest']}\n".encode())
    raw["digest"] = whole.hexdigest()
    store.put(uri + "/manifest.json", json.dumps(raw).encode())


def test_list_find_inspect_prune_with_single_dumps(parts_store: Store, mariadb: MigrationUtils):
    store, params = parts_store, parts_store.transport_params
    oldest = _backup(mariadb, store, "nightly/a.jsonl.zst", 1)
    multi_old = _backup(mariadb, store, "nightly/b.jsonl.zst", 2)
    single = _backup(mariadb, store, "nightly/c.jsonl.gz", 1)
    multi_new = _backup(mariadb, store, "nightly/d.jsonl", 2)
    raw = _manifest(store, multi_old)
    assert len(raw["parts"]) >= 5  # t was cut into spans
    assert {p["name"] for p in raw["parts"]} == {
        uri.rsplit("/", 1)[-1] for uri in store.objects() if uri.startswith(multi_old + "/part-")
    }
    # Parts without a manifest are an unfinished backup: never listed, never pruned.
    for part in raw["parts"]:
        name = part["name"]
        store.put(
            store.uri(f"nightly/unfinished.jsonl.zst/{name}"), store.get(f"{multi_old}/{name}")
        )
    store.put(multi_old + ".rehearsal.json", b"{}")

    backups = list_backups(store.uri("nightly/"), params)
    assert [b.uri for b in backups] == [multi_new, single, multi_old, oldest]
    listed = backups[2]
    stored = sum(len(store.get(f"{multi_old}/{p['name']}")) for p in raw["parts"])
    assert listed.size == stored == raw["bytes"] and listed.parts == len(raw["parts"])
    assert listed.tables == {"t": ROWS, "small": 2, "empty_one": 0}
    assert listed.digest == raw["digest"] and listed.dialect == "mysql"
    assert listed.created_at.isoformat() == raw["header"]["created_at"]
    assert backups[1].parts is None and backups[0].parts is not None
    assert find_backup(multi_old, params) == listed
    assert find_backup(multi_old + "/", params) == listed
    with pytest.raises(StorageNotFoundError):  # parts without a manifest are no backup
        find_backup(store.uri("nightly/unfinished.jsonl.zst"), params)

    found = inspect_backup(multi_old, params)
    assert found.error is None and found.verified and found.parts == len(raw["parts"])
    assert found.uri == multi_old and found.size == stored and found.uncompressed is None
    assert {n: t.rows for n, t in found.tables.items()} == {"t": ROWS, "small": 2, "empty_one": 0}
    assert found.tables["t"].columns == 3 and found.objects == {"view": 1}
    assert "part" not in found.header and found.header["database"] == mariadb.url.database
    assert found.tables["t"].bytes == sum(p["bytes"] for p in raw["parts"] if p.get("table") == "t")

    deleted = prune_backups(store.uri("nightly/"), keep_last=2, transport_params=params)
    assert [b.uri for b in deleted] == [multi_old, oldest]
    assert [b.uri for b in list_backups(store.uri("nightly/"), params)] == [multi_new, single]
    remaining = store.objects()
    assert not [u for u in remaining if u.startswith((multi_old, oldest))]
    assert len([u for u in remaining if "/unfinished.jsonl.zst/" in u]) == len(raw["parts"])
    assert multi_new + "/manifest.json" in remaining and single + ".manifest.json" in remaining
    if store.name == "local":
        assert not Path(multi_old).exists()  # the emptied folder went too
    with pytest.raises(StorageNotFoundError):
        find_backup(multi_old, params)


def test_verify_reads_every_part(parts_store: Store, mariadb: MigrationUtils) -> None:
    store, params = parts_store, parts_store.transport_params
    uri = _backup(mariadb, store, "dump.jsonl", 2)
    raw = _manifest(store, uri)
    report = verify_backup(uri, params)
    assert report.ok and report.error is None and report.manifest_ok, report
    assert report.tables == {"t": ROWS, "small": 2, "empty_one": 0}
    assert report.parts == len(raw["parts"]) and report.size == raw["bytes"]
    assert report.header is not None and report.header["dialect"] == "mysql"
    assert str(report) == f"{uri}: OK, 3 tables, {ROWS + 2} rows, {report.records} records in " + (
        f"{len(raw['parts'])} parts"
    )

    spans = [p for p in raw["parts"] if p.get("table") == "t"]
    victim, other = spans[1]["name"], spans[2]["name"]
    original = store.get(f"{uri}/{victim}")

    # Bytes changed inside a row (same length): the part's own checksums refuse it.
    index = original.index(b'"row', original.index(b'"kind":"data"'))
    store.put(f"{uri}/{victim}", original[:index] + b'"rox' + original[index + 4 :])
    report = verify_backup(uri, params)
    assert not report.ok and report.error_part == victim and report.manifest_ok
    assert report.error and f"{uri}/{victim}" in report.error and "'t'" in report.error

    # Another part's bytes in its place: a complete stream, but not the part named.
    store.put(f"{uri}/{victim}", store.get(f"{uri}/{other}"))
    report = verify_backup(uri, params)
    assert not report.ok and report.error_part == victim
    assert report.error and "not the part the manifest names" in report.error

    # A headerless (legacy) part is refused even where single legacy dumps are allowed.
    store.put(f"{uri}/{victim}", b'{"table": "t", "data": [{"id": 1}]}\n')
    report = verify_backup(uri, params, allow_unverified=True)
    assert not report.ok and report.error_part == victim, report
    assert report.error and f"{uri}/{victim}: the part has no header" in report.error

    # Missing: named, and the dump is no longer listed.
    store.put(f"{uri}/{victim}", original)
    assert verify_backup(uri, params).ok
    backend_key = f"{uri}/{victim}"
    if store.name == "local":
        Path(backend_key).unlink()
    else:
        store.client.delete_object(Bucket=store.bucket, Key=backend_key.split("/", 3)[3])
    report = verify_backup(uri, params)
    assert not report.ok and report.error_part == victim
    assert report.error and f"part {victim} is missing" in report.error
    assert list_backups(store.prefix, params) == [] and find_backup(uri, params) is None
    store.put(f"{uri}/{victim}", original)
    assert [b.uri for b in list_backups(store.prefix, params)] == [uri]


def test_verify_refuses_duplicated_and_left_out_parts(
    parts_store: Store, mariadb: MigrationUtils
) -> None:
    store, params = parts_store, parts_store.transport_params
    uri = _backup(mariadb, store, "dump.jsonl.zst", 2)
    raw = _manifest(store, uri)
    spans = [i for i, p in enumerate(raw["parts"]) if p.get("table") == "t"]

    twice = json.loads(json.dumps(raw))
    twice["parts"].append(dict(raw["parts"][spans[1]]))
    _put_manifest(store, uri, twice)
    report = verify_backup(uri, params)
    assert not report.ok and report.manifest_ok is False
    assert report.error and f"part {raw['parts'][spans[1]]['name']} is listed twice" in report.error
    assert list_backups(store.prefix, params) == []  # not a backup while its manifest is bad

    # The same span again under a new name (its rows would load twice).
    copy = dict(raw["parts"][spans[1]], name="part-00999.jsonl.zst")
    store.put(f"{uri}/part-00999.jsonl.zst", store.get(f"{uri}/{raw['parts'][spans[1]]['name']}"))
    overlapping = json.loads(json.dumps(raw))
    overlapping["parts"].append(copy)
    _put_manifest(store, uri, overlapping)
    report = verify_backup(uri, params)
    assert not report.ok and report.error and "part-00999.jsonl.zst" in report.error
    assert "overlap" in report.error

    # A span left out of the manifest, rows and digest made to add up: a gap.
    gap = json.loads(json.dumps(raw))
    left_out = gap["parts"].pop(spans[1])
    _put_manifest(store, uri, gap)
    report = verify_backup(uri, params)
    assert not report.ok and report.error and "'t' miss the span" in report.error
    assert str(left_out["span"][0]) in report.error

    # A table's only part left out: the schema part still declares it.
    orphan = json.loads(json.dumps(raw))
    orphan["parts"] = [p for p in orphan["parts"] if p.get("table") != "small"]
    _put_manifest(store, uri, orphan)
    report = verify_backup(uri, params)
    assert not report.ok and report.error and "table 'small' has no data part" in report.error

    store.put(uri + "/manifest.json", json.dumps(raw, indent=1).encode())
    assert verify_backup(uri, params).ok
