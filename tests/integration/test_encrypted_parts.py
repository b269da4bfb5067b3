"""Encrypted multi-part dumps (issue 26) on MariaDB and PostgreSQL, jobs=2, a local folder:
one data key per backup wrapped once in the manifest, every part sealed under it, the
manifest's description of the data sealed; verify, list, restore and resume with the key;
nothing readable without it; a flipped byte in a part, a part swapped for another and a
manifest edited in the clear are refused before any row of them is loaded, the target
untouched; the trust rule holds for parts too."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

import airflow_provider_zenmigrate.core.parts.backup as parts_backup
from airflow_provider_zenmigrate.core.catalog import list_backups, verify_backup
from airflow_provider_zenmigrate.core.crypto import MAGIC, Encryption, LocalKey
from airflow_provider_zenmigrate.core.errors import (
    DumpAuthenticationError,
    DumpIntegrityError,
    EncryptionRequiredError,
    MissingKeyError,
)
from airflow_provider_zenmigrate.core.inspection import inspect_backup
from airflow_provider_zenmigrate.core.utils import MigrationUtils
from tests.support.identity import fingerprint
from tests.support.servers import database_url, unique_name

ROWS = 20_000
SETUP = {
    "mysql": [
        "CREATE TABLE t (id BIGINT PRIMARY KEY, a VARCHAR(40), c BLOB)",
        f"INSERT INTO t SELECT seq, CONCAT('secretrow', seq), RANDOM_BYTES(16) "
        f"FROM seq_1_to_{ROWS}",
        "CREATE TABLE small (id INT PRIMARY KEY, v TEXT)",
        "INSERT INTO small VALUES (1, 'x'), (2, 'y')",
        "CREATE VIEW v AS SELECT id FROM small",
        "CREATE FUNCTION f_double(x INT) RETURNS INT DETERMINISTIC RETURN x * 2",
        "ANALYZE TABLE t",
    ],
    "postgresql": [
        "CREATE TABLE t (id bigint PRIMARY KEY, a text, c bytea)",
        f"INSERT INTO t SELECT g, 'secretrow' || g, decode(md5(g::text), 'hex') "
        f"FROM generate_series(1, {ROWS}) g",
        "CREATE TABLE small (id int PRIMARY KEY, v text)",
        "INSERT INTO small VALUES (1, 'x'), (2, 'y')",
        "CREATE VIEW v AS SELECT id FROM small",
        "CREATE FUNCTION f_double(x int) RETURNS int LANGUAGE sql IMMUTABLE AS $$ SELECT x * 2 $$",
        "ANALYZE t",
    ],
}


@pytest.fixture(params=["mysql", "postgresql"])
def dialect(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _database(dialect: str, tmp_path: Path, prefix: str) -> MigrationUtils:
    url = database_url(dialect, tmp_path, unique_name(prefix))
    utils = MigrationUtils(url=url, connect_args={}, engine_args={})
    utils.create_database()
    return utils


@pytest.fixture
def source(
    dialect: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[MigrationUtils]:
    """Table ``t`` cut into several parts (parts made small here), a small table, a view
    and a function."""
    monkeypatch.setattr(parts_backup, "PART_BYTES", 128 * 1024)
    utils = _database(dialect, tmp_path, "zmencp")
    with utils.engine.begin() as conn:
        for statement in SETUP[dialect]:
            conn.exec_driver_sql(statement)
    try:
        yield utils
    finally:
        utils.drop_database()
        utils.dispose()


@pytest.fixture
def target(dialect: str, tmp_path: Path) -> Iterator[MigrationUtils]:
    utils = _database(dialect, tmp_path, "zmenct")
    with utils.engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE previous (id INT PRIMARY KEY)")
        conn.exec_driver_sql("INSERT INTO previous VALUES (1)")
    try:
        yield utils
    finally:
        utils.drop_database()
        utils.dispose()


def _parts(dump: Path) -> list[Path]:
    return sorted(dump.glob("part-*.jsonl*"))


def test_encrypted_parts_backup_verify_list_restore_resume(
    source: MigrationUtils, target: MigrationUtils, tmp_path: Path
) -> None:
    key = LocalKey(os.urandom(32))
    dump = tmp_path / "backups" / "nightly.jsonl.zst"
    dump.parent.mkdir()
    source.encryption = Encryption(key)
    result = source.backup_database_to_file(str(dump), jobs=2)
    source.dispose()
    parts = _parts(dump)
    assert len(parts) >= 4 and result.extra["parts"] == len(parts)
    for part in parts:
        stored = part.read_bytes()
        assert stored.startswith(MAGIC)
        assert b"secretrow" not in stored and b"small" not in stored
    manifest_text = (dump / "manifest.json").read_text()
    for secret in ["small", '"t"', str(source.url.database), "secretrow", "f_double"]:
        assert secret not in manifest_text, secret
    manifest = json.loads(manifest_text)
    assert set(manifest) == {"format", "version", "encryption", "parts", "bytes", "sealed"}
    wrapped = {json.dumps(manifest["encryption"]["key"])}
    assert manifest["encryption"]["key"]["key_id"] == key.key_id

    # Verify: with the key every part; without it, a clear refusal.
    report = verify_backup(str(dump), encryption=Encryption(key))
    assert report.ok and report.parts == len(parts), report.error
    assert report.tables == {"t": ROWS, "small": 2}
    blind = verify_backup(str(dump))
    assert not blind.ok and blind.error is not None and "without its key" in blind.error
    inspected = inspect_backup(str(dump), encryption=Encryption(key))
    assert inspected.verified and inspected.rows == ROWS + 2, inspected.error

    # Listed without the key (as encrypted, no contents) and with it.
    (listed,) = list_backups(str(dump.parent) + "/")
    assert (listed.encrypted, listed.key_id, listed.parts) == (True, key.key_id, len(parts))
    assert listed.tables == {} and listed.database is None
    (keyed,) = list_backups(str(dump.parent) + "/", encryption=Encryption(key))
    assert keyed.tables == result.tables and keyed.encrypted

    # No key, or a plaintext part required: refused, the target untouched.
    before = fingerprint(target.url)
    with pytest.raises(MissingKeyError):
        target.restore_database_from_file(str(dump), jobs=2)
    target.dispose()
    assert fingerprint(target.url) == before

    # A flipped byte in the last data part: the restore fails on that part without loading
    # any of its rows, the target untouched; mended, the restore resumes and completes.
    last = parts[-1]
    original = last.read_bytes()
    flipped = bytearray(original)
    flipped[-20] ^= 0x01
    last.write_bytes(bytes(flipped))
    target.encryption = Encryption(key)
    with pytest.raises(DumpAuthenticationError, match=last.name):
        target.restore_database_from_file(str(dump), jobs=2)
    target.dispose()
    assert fingerprint(target.url) == before
    last.write_bytes(original)
    # Without allow_routines: the dump is authentic, so its function is trusted.
    summary = target.restore_database_from_file(str(dump), jobs=2)
    target.dispose()
    assert summary.tables == {"t": ROWS, "small": 2}
    assert fingerprint(target.url) == fingerprint(source.url)
    assert 1 <= summary.resumed_parts < len(parts) - 1, summary
    assert wrapped == {
        json.dumps(json.loads((dump / "manifest.json").read_text())["encryption"]["key"])
    }


def test_swapped_part_and_edited_manifest_are_refused(
    source: MigrationUtils, target: MigrationUtils, tmp_path: Path
) -> None:
    key = LocalKey(os.urandom(32))
    dump = tmp_path / "swap.jsonl"
    source.encryption = Encryption(key)
    source.backup_database_to_file(str(dump), jobs=2)
    other = tmp_path / "other.jsonl"
    source.backup_database_to_file(str(other), jobs=2)
    source.dispose()
    target.encryption = Encryption(key)
    before = fingerprint(target.url)
    parts = _parts(dump)

    # A part of the same backup under another part's name.
    first, second = parts[1].read_bytes(), parts[2].read_bytes()
    parts[1].write_bytes(second)
    with pytest.raises(DumpIntegrityError, match=parts[1].name):
        target.restore_database_from_file(str(dump), jobs=2)
    target.dispose()
    assert fingerprint(target.url) == before
    parts[1].write_bytes(first)

    # The same part of another backup under the same key: another data key.
    parts[1].write_bytes((other / parts[1].name).read_bytes())
    with pytest.raises(DumpAuthenticationError, match="another backup"):
        target.restore_database_from_file(str(dump), jobs=2, fresh=True)
    target.dispose()
    assert fingerprint(target.url) == before
    parts[1].write_bytes(first)

    # The manifest's clear part edited (a part left out): refused before anything is read.
    path = dump / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["parts"] = manifest["parts"][:-1]
    path.write_text(json.dumps(manifest))
    with pytest.raises(DumpIntegrityError, match="not its sealed parts"):
        target.restore_database_from_file(str(dump), jobs=2, fresh=True)
    target.dispose()
    assert fingerprint(target.url) == before


def test_plaintext_parts_refused_when_encryption_is_required(
    source: MigrationUtils, target: MigrationUtils, tmp_path: Path
) -> None:
    dump = tmp_path / "plain.jsonl"
    source.backup_database_to_file(str(dump), jobs=2)
    source.dispose()
    before = fingerprint(target.url)
    target.encryption = Encryption(LocalKey(os.urandom(32)), require=True)
    with pytest.raises(EncryptionRequiredError):
        target.restore_database_from_file(str(dump), jobs=2)
    target.dispose()
    assert fingerprint(target.url) == before
