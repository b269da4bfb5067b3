"""The manifest beside an encrypted dump (issue 26): it says nothing of the data in the
clear (no database, table, row count or revision), yet list / find / verify / prune work,
show the backup as encrypted, and show its contents only when given the key; rekey keeps
the sealed contents readable under the new key, and a sealed block copied from another
backup does not open."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_zenmigrate.core.catalog import (
    find_backup,
    list_backups,
    prune_backups,
    verify_backup,
)
from airflow_provider_zenmigrate.core.crypto import Encryption, LocalKey
from airflow_provider_zenmigrate.core.rekey import rekey_backup
from airflow_provider_zenmigrate.core.utils import MigrationUtils


@pytest.fixture(params=["sqlite", "postgresql"])
def dialect(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _numbers(value: Any) -> list[int]:
    """Every integer anywhere in a JSON document."""
    if isinstance(value, bool):
        return []
    if isinstance(value, int):
        return [value]
    if isinstance(value, dict):
        return [n for v in value.values() for n in _numbers(v)]
    if isinstance(value, list):
        return [n for v in value for n in _numbers(v)]
    return []


def test_sealed_manifest_hides_the_data_and_the_catalog_still_works(
    source: MigrationUtils, tmp_path: Path
) -> None:
    key, other = LocalKey(os.urandom(32)), LocalKey(os.urandom(32))
    folder = tmp_path / "backups"
    folder.mkdir()
    plain_uri, sealed_uri = str(folder / "a-plain.jsonl"), str(folder / "b-sealed.jsonl.zst")
    plain = source.backup_database_to_file(plain_uri)
    source.encryption = Encryption(key)
    sealed = source.backup_database_to_file(sealed_uri)
    source.dispose()
    header = json.loads(Path(plain_uri + ".manifest.json").read_text())["header"]
    assert header["database"] and header["revisions"] and sealed.tables == plain.tables

    text = Path(sealed_uri + ".manifest.json").read_text()
    manifest = json.loads(text)
    assert set(manifest) == {"format", "version", "dump", "size", "header", "encryption", "sealed"}
    assert manifest["header"] == {}
    for secret in [header["database"], *header["revisions"], *sealed.tables]:
        # A short one ("0003") turns up by chance in a timestamp's microseconds or in the
        # sealed base64 (it did, in CI); as a JSON string, which neither can hold, it cannot.
        assert (secret if len(secret) >= 8 else json.dumps(secret)) not in text, secret
    # The only numbers in the clear: the manifest version and the stored size.
    assert sorted(_numbers(manifest)) == sorted([1, manifest["size"]])
    assert manifest["encryption"]["key_id"] == key.key_id

    # Without the key: listed, as encrypted, with nothing of the data.
    listed = {b.uri: b for b in list_backups(str(folder) + "/")}
    assert set(listed) == {plain_uri, sealed_uri}
    blind = listed[sealed_uri]
    assert (blind.encrypted, blind.key_id) == (True, key.key_id)
    assert (blind.database, blind.revisions, blind.tables, blind.digest) == (None, [], {}, None)
    assert blind.size == manifest["size"] and blind.created_at.tzinfo is not None
    assert not listed[plain_uri].encrypted and listed[plain_uri].tables == plain.tables
    # A key that is not the backup's shows nothing more, and does not fail the listing.
    wrong = {b.uri: b for b in list_backups(str(folder), encryption=Encryption(other))}
    assert wrong[sealed_uri].tables == {}

    # With the key: as a plaintext backup's.
    keyed = find_backup(sealed_uri, encryption=Encryption(key))
    assert keyed is not None and keyed.encrypted
    assert keyed.database == header["database"] and keyed.revisions == header["revisions"]
    assert keyed.tables == sealed.tables and keyed.digest == sealed.checksum
    report = verify_backup(sealed_uri, encryption=Encryption(key))
    assert report.ok and report.manifest_ok, report.error

    # Rekey: the sealed contents open under the new key; the key id in the clear follows.
    rekey_backup(sealed_uri, Encryption(key), Encryption(other))
    after = find_backup(sealed_uri, encryption=Encryption(other))
    assert after is not None and after.key_id == other.key_id and after.tables == sealed.tables

    # A sealed block copied from another backup does not open (bound to its stream).
    third_uri = str(folder / "c-sealed.jsonl")
    source.encryption = Encryption(other)
    source.backup_database_to_file(third_uri)
    source.dispose()
    moved = json.loads(Path(third_uri + ".manifest.json").read_text())
    moved["sealed"] = json.loads(Path(sealed_uri + ".manifest.json").read_text())["sealed"]
    Path(third_uri + ".manifest.json").write_text(json.dumps(moved))
    forged = find_backup(third_uri, encryption=Encryption(other))
    assert forged is not None and forged.encrypted and forged.tables == {}
    assert verify_backup(third_uri, encryption=Encryption(other)).manifest_ok is False

    # Pruning needs no key: the newest (by the envelope's or header's time) are kept.
    doomed = prune_backups(str(folder) + "/", keep_last=1)
    assert [b.uri for b in doomed] == [sealed_uri, plain_uri]
    assert sorted(p.name for p in folder.iterdir()) == [
        "c-sealed.jsonl",
        "c-sealed.jsonl.manifest.json",
    ]
