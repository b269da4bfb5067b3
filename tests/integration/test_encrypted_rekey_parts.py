"""``rekey`` of encrypted multi-part dumps (issue 26) on PostgreSQL and MariaDB, on a local
folder and on S3 (moto's server): every part and the manifest end under the new key with
the same segments, the old key opens nothing, verify / inspect / list / restore work with
the new key alone; a tampered part is refused with the dump left as it was; a rekey stopped
before and after its switch leaves a dump that restores with the old key or the new one,
and a rerun finishes it (keeping the parts already written, also under AWS KMS)."""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

import airflow_provider_zenmigrate.core.parts.backup as parts_backup
import airflow_provider_zenmigrate.core.rekey as rekey_module
from airflow_provider_zenmigrate.core.catalog import list_backups, verify_backup
from airflow_provider_zenmigrate.core.crypto import AwsKmsKey, Encryption, LocalKey
from airflow_provider_zenmigrate.core.crypto.policy import sniff
from airflow_provider_zenmigrate.core.errors import (
    DumpAuthenticationError,
    DumpFormatError,
    EncryptionKeyError,
    StorageError,
)
from airflow_provider_zenmigrate.core.inspection import inspect_backup
from airflow_provider_zenmigrate.core.parts import layout
from airflow_provider_zenmigrate.core.parts.layout import PART_NAME
from airflow_provider_zenmigrate.core.parts.reading import load_manifest, manifest_envelope
from airflow_provider_zenmigrate.core.rekey import rekey_backup
from airflow_provider_zenmigrate.core.utils import MigrationUtils
from tests.support.identity import fingerprint
from tests.support.servers import database_url, unique_name

if TYPE_CHECKING:
    from tests.support.object_stores import Store

pytest_plugins = ["tests.support.object_stores"]

ROWS = 8_000
#: Small segments, so every part spans several.
SEGMENT = 4096
SETUP = {
    "mysql": [
        "CREATE TABLE t (id BIGINT PRIMARY KEY, a VARCHAR(40), c BLOB)",
        f"INSERT INTO t SELECT seq, CONCAT('secretrow', seq), RANDOM_BYTES(16) "
        f"FROM seq_1_to_{ROWS}",
        "CREATE TABLE small (id INT PRIMARY KEY, v TEXT)",
        "INSERT INTO small VALUES (1, 'x'), (2, 'y')",
        "ANALYZE TABLE t",
    ],
    "postgresql": [
        "CREATE TABLE t (id bigint PRIMARY KEY, a text, c bytea)",
        f"INSERT INTO t SELECT g, 'secretrow' || g, decode(md5(g::text), 'hex') "
        f"FROM generate_series(1, {ROWS}) g",
        "CREATE TABLE small (id int PRIMARY KEY, v text)",
        "INSERT INTO small VALUES (1, 'x'), (2, 'y')",
        "ANALYZE t",
    ],
}


class Killed(BaseException):
    """Stands for the process being killed: no ``except Exception`` catches it."""


@pytest.fixture(params=["postgresql", "mysql"])
def dialect(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def databases(dialect: str, tmp_path: Path) -> Iterator[Callable[[], MigrationUtils]]:
    """Makes empty databases named ``zmrk_...`` on ``dialect``; drops them all after."""
    made: list[MigrationUtils] = []

    def make() -> MigrationUtils:
        url = database_url(dialect, tmp_path, unique_name("zmrk"))
        utils = MigrationUtils(url=url, connect_args={}, engine_args={})
        utils.create_database()
        made.append(utils)
        return utils

    try:
        yield make
    finally:
        for utils in made:
            utils.drop_database()
            utils.dispose()


@pytest.fixture
def source(
    dialect: str, databases: Callable[[], MigrationUtils], monkeypatch: pytest.MonkeyPatch
) -> MigrationUtils:
    """Table ``t`` cut into several parts (parts made small here) and a small table."""
    monkeypatch.setattr(parts_backup, "PART_BYTES", 64 * 1024)
    utils = databases()
    with utils.engine.begin() as conn:
        for statement in SETUP[dialect]:
            conn.exec_driver_sql(statement)
    return utils


def _target(databases: Callable[[], MigrationUtils]) -> MigrationUtils:
    utils = databases()
    with utils.engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE previous (id INT PRIMARY KEY)")
        conn.exec_driver_sql("INSERT INTO previous VALUES (1)")
    return utils


def _backup(source: MigrationUtils, store: Store, name: str, key: LocalKey) -> str:
    uri = store.uri(name)
    source.transport_params = store.transport_params
    source.encryption = Encryption(key, segment_size=SEGMENT)
    result = source.backup_database_to_file(uri, jobs=2)
    source.dispose()
    assert result.extra["parts"] >= 4, result.extra
    return uri


def _restore(target: MigrationUtils, store: Store, uri: str, *keys: Any) -> None:
    target.transport_params = store.transport_params
    target.encryption = Encryption(list(keys))
    try:
        target.restore_database_from_file(uri, jobs=2)
    finally:
        target.dispose()


def _stored(store: Store, uri: str) -> dict[str, bytes]:
    """Every object under the dump, by name, with its bytes."""
    prefix = uri.rstrip("/") + "/"
    return {o[len(prefix) :]: store.get(o) for o in store.objects() if o.startswith(prefix)}


def _split(data: bytes) -> tuple[bytes, bytes]:
    """(envelope, segments) of one stored part."""
    raw = io.BytesIO(data)
    _stream, envelope = sniff(raw, "part")
    assert envelope is not None
    head = raw.tell()
    return data[:head], data[head:]


def _wrapped_keys(objects: dict[str, bytes]) -> set[tuple[str, str]]:
    found = set()
    for name, data in objects.items():
        if PART_NAME.fullmatch(name):
            envelope = sniff(io.BytesIO(data), name)[1]
            assert envelope is not None
            found.add((envelope.key.provider, envelope.key.key_id))
    return found


@pytest.mark.parametrize("store_name", ["local", "s3"])
def test_rekey_parts_then_restore_with_the_new_key_only(
    store_name: str,
    source: MigrationUtils,
    databases: Callable[[], MigrationUtils],
    request: pytest.FixtureRequest,
    tmp_path: Path,
) -> None:
    from tests.support.object_stores import make_store

    store = make_store(store_name, request, tmp_path)
    old, new = LocalKey(os.urandom(32)), LocalKey(os.urandom(32))
    uri = _backup(source, store, "nightly.jsonl.zst", old)
    before = _stored(store, uri)
    manifest_before = load_manifest(uri, store.transport_params, Encryption(old))
    old_parts = [p.name for p in manifest_before.parts]

    result = rekey_backup(uri, Encryption(old), Encryption(new), store.transport_params)

    assert (result.old_key_id, result.new_key_id) == (old.key_id, new.key_id)
    assert (result.parts, result.objects, result.reused) == (len(old_parts), len(old_parts) + 1, 0)
    assert result.removed == len(old_parts)
    after = _stored(store, uri)
    manifest = load_manifest(uri, store.transport_params, Encryption(new))
    new_parts = [p.name for p in manifest.parts]
    # The dump is exactly the manifest and the new parts; none of the old names is left.
    assert set(after) == {"manifest.json", *new_parts}
    assert not set(new_parts) & set(old_parts)
    assert _wrapped_keys(after) == {("local", new.key_id)}
    envelope = manifest_envelope(uri, store.transport_params)
    assert envelope is not None and envelope.key.key_id == new.key_id
    # Same segments, byte for byte (the data is not re-encrypted); same part digests, rows,
    # tables and order; the sizes the manifest records are the stored ones.
    for was, now in zip(manifest_before.parts, manifest.parts, strict=True):
        head_before, segments_before = _split(before[was.name])
        head_after, segments_after = _split(after[now.name])
        assert segments_after == segments_before and head_after != head_before
        assert (now.kind, now.digest, now.rows, now.table, now.span) == (
            was.kind,
            was.digest,
            was.rows,
            was.table,
            was.span,
        )
        assert now.bytes == len(after[now.name])
    assert manifest.tables == manifest_before.tables == {"t": ROWS, "small": 2}
    assert result.size == manifest.size
    assert result.segments >= 2 * len(new_parts)

    # Verify, inspect and list with the new key; the old key opens nothing.
    report = verify_backup(uri, store.transport_params, encryption=Encryption(new))
    assert report.ok and report.parts == len(new_parts), report.error
    assert report.tables == {"t": ROWS, "small": 2}
    inspected = inspect_backup(uri, store.transport_params, encryption=Encryption(new))
    assert inspected.verified and inspected.rows == ROWS + 2, inspected.error
    (listed,) = list_backups(store.prefix, store.transport_params, encryption=Encryption(new))
    assert (listed.key_id, listed.parts, listed.tables) == (
        new.key_id,
        len(new_parts),
        report.tables,
    )
    with pytest.raises(EncryptionKeyError, match=new.key_id):
        verify_backup(uri, store.transport_params, encryption=Encryption(old))

    target = _target(databases)
    untouched = fingerprint(target.url)
    with pytest.raises(EncryptionKeyError, match=new.key_id):
        _restore(target, store, uri, old)
    assert fingerprint(target.url) == untouched
    _restore(target, store, uri, new)
    assert fingerprint(target.url) == fingerprint(source.url)

    # Run again: the dump is under the new key already; nothing is written.
    again = rekey_backup(uri, Encryption(old), Encryption(new), store.transport_params)
    assert (again.old_key_id, again.new_key_id, again.segments) == (new.key_id, new.key_id, 0)
    assert (again.reused, again.removed) == (len(new_parts), 0)
    assert _stored(store, uri) == after


def test_rekey_refuses_a_tampered_part_and_leaves_the_dump(
    source: MigrationUtils,
    databases: Callable[[], MigrationUtils],
    request: pytest.FixtureRequest,
    tmp_path: Path,
) -> None:
    from tests.support.object_stores import make_store

    store = make_store("local", request, tmp_path)
    old, new = LocalKey(os.urandom(32)), LocalKey(os.urandom(32))
    uri = _backup(source, store, "tampered.jsonl", old)
    manifest = load_manifest(uri, store.transport_params, Encryption(old))
    last = store.uri("tampered.jsonl/" + manifest.parts[-1].name)
    original = store.get(last)
    flipped = bytearray(original)
    flipped[-30] ^= 0x01
    store.put(last, bytes(flipped))
    tampered = _stored(store, uri)

    # The last part fails: every part before it was copied, and is deleted again.
    with pytest.raises(DumpAuthenticationError, match=manifest.parts[-1].name):
        rekey_backup(uri, Encryption(old), Encryption(new), store.transport_params)
    assert _stored(store, uri) == tampered
    assert not list(Path(uri).glob(".*partial"))

    store.put(last, original)
    target = _target(databases)
    _restore(target, store, uri, old)
    assert fingerprint(target.url) == fingerprint(source.url)

    # A plaintext multi-part dump has no key to rewrap: refused, nothing written.
    source.encryption = None
    plain = store.uri("plain.jsonl")
    source.backup_database_to_file(plain, jobs=2)
    source.dispose()
    stored = _stored(store, plain)
    with pytest.raises(DumpFormatError, match="not encrypted"):
        rekey_backup(plain, Encryption(old), Encryption(new), store.transport_params)
    assert _stored(store, plain) == stored


@contextmanager
def _store_fails(
    monkeypatch: pytest.MonkeyPatch, *, upload: int | None = None, delete: int | None = None
) -> Iterator[None]:
    """The rekey's real backend, wrapped: the ``upload``-th upload dies after writing its
    envelope (a kill in the middle of a part), or the ``delete``-th delete dies."""
    real = layout.prefix_key
    calls = {"upload": 0, "delete": 0}

    class Dying:
        def __init__(self, backend: Any) -> None:
            self._backend = backend

        def __getattr__(self, name: str) -> Any:
            return getattr(self._backend, name)

        @contextmanager
        def upload(self, key: str) -> Iterator[Any]:
            calls["upload"] += 1
            with self._backend.upload(key) as out:
                if calls["upload"] == upload:

                    class Half:
                        def write(self, data: bytes) -> int:
                            out.write(data)
                            raise Killed("killed while writing a part")

                    yield Half()
                else:
                    yield out

        def delete(self, key: str) -> None:
            calls["delete"] += 1
            if calls["delete"] == delete:
                raise Killed("killed while deleting the old parts")
            self._backend.delete(key)

    def wrapped(uri: str, transport_params: dict[str, Any] | None = None) -> tuple[Any, str]:
        backend, prefix = real(uri, transport_params)
        return Dying(backend), prefix

    monkeypatch.setattr(rekey_module, "prefix_key", wrapped)
    try:
        yield
    finally:
        monkeypatch.setattr(rekey_module, "prefix_key", real)


@pytest.mark.parametrize("store_name", ["local", "s3"])
def test_interrupted_rekey_restores_with_either_key_and_a_rerun_finishes(
    store_name: str,
    source: MigrationUtils,
    databases: Callable[[], MigrationUtils],
    request: pytest.FixtureRequest,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tests.support.object_stores import make_store

    store = make_store(store_name, request, tmp_path)
    old, new = LocalKey(os.urandom(32)), LocalKey(os.urandom(32))
    uri = _backup(source, store, "killed.jsonl.gz", old)
    old_parts = [p.name for p in load_manifest(uri, store.transport_params, Encryption(old)).parts]
    expected = fingerprint(source.url)

    # 1. Killed in the middle of the second part: the first is published under its new
    # name, the second never is; the dump is the old one, under the old key.
    with _store_fails(monkeypatch, upload=2), pytest.raises(Killed):
        rekey_backup(uri, Encryption(old), Encryption(new), store.transport_params)
    stopped = _stored(store, uri)
    assert len([n for n in stopped if n not in old_parts and PART_NAME.fullmatch(n)]) == 1
    assert not store.upload_in_progress(uri) and not list(Path(uri).glob(".*partial"))
    assert verify_backup(uri, store.transport_params, encryption=Encryption(old)).ok
    with pytest.raises(EncryptionKeyError):
        verify_backup(uri, store.transport_params, encryption=Encryption(new))
    first = _target(databases)
    _restore(first, store, uri, old)
    assert fingerprint(first.url) == expected
    if store_name == "local":  # what a killed upload of a part leaves (SIGKILL: no cleanup)
        (Path(uri) / ".part-00099.jsonl.gz.0123abcd.partial").write_bytes(b"half")

    # 2. Rerun, killed after the switch, while deleting the old parts: the dump is the new
    # one, under the new key (a reader with both keys reads it at every step).
    with _store_fails(monkeypatch, delete=2), pytest.raises(Killed):
        rekey_backup(uri, Encryption(old), Encryption(new), store.transport_params)
    with pytest.raises(EncryptionKeyError):
        verify_backup(uri, store.transport_params, encryption=Encryption(old))
    report = verify_backup(uri, store.transport_params, encryption=Encryption(new))
    assert report.ok and report.tables == {"t": ROWS, "small": 2}, report.error
    assert verify_backup(uri, store.transport_params, encryption=Encryption([old, new])).ok
    new_parts = [p.name for p in load_manifest(uri, store.transport_params, Encryption(new)).parts]
    stale = set(_stored(store, uri)) - {"manifest.json", *new_parts}
    assert stale & set(old_parts)  # old parts are still there

    # 3. Rerun: only the cleanup was left.
    done = rekey_backup(uri, Encryption(old), Encryption(new), store.transport_params)
    assert (done.old_key_id, done.new_key_id, done.segments) == (new.key_id, new.key_id, 0)
    assert done.removed == len(stale)
    final = _stored(store, uri)
    assert set(final) == {"manifest.json", *new_parts}
    assert _wrapped_keys(final) == {("local", new.key_id)}
    second = _target(databases)
    with pytest.raises(EncryptionKeyError):
        _restore(second, store, uri, old)
    _restore(second, store, uri, new)
    assert fingerprint(second.url) == expected


def test_interrupted_rekey_to_kms_keeps_the_parts_written(
    s3_server: str,
    source: MigrationUtils,
    databases: Callable[[], MigrationUtils],
    request: pytest.FixtureRequest,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """KMS wraps a key differently each time: a rerun adopts the wrapped key of the parts
    the stopped run published (it unwraps to the backup's data key) and keeps them."""
    import boto3

    from tests.support.object_stores import S3_ACCESS_KEY, S3_SECRET_KEY, make_store

    kms = boto3.session.Session().client(
        "kms",
        endpoint_url=s3_server,
        aws_access_key_id=S3_ACCESS_KEY,
        aws_secret_access_key=S3_SECRET_KEY,
        region_name="us-east-1",
    )
    arn = kms.create_key(Description="zenmigrate rekey test")["KeyMetadata"]["Arn"]
    store = make_store("s3", request, tmp_path)
    old = LocalKey(os.urandom(32))
    uri = _backup(source, store, "kms.jsonl.zst", old)
    parts = len(load_manifest(uri, store.transport_params, Encryption(old)).parts)

    with _store_fails(monkeypatch, upload=3), pytest.raises(Killed):
        rekey_backup(
            uri, Encryption(old), Encryption(AwsKmsKey(arn, client=kms)), store.transport_params
        )
    result = rekey_backup(
        uri, Encryption(old), Encryption(AwsKmsKey(arn, client=kms)), store.transport_params
    )
    assert (result.old_key_id, result.new_key_id) == (old.key_id, arn)
    assert (result.parts, result.reused, result.removed) == (parts, 2, parts)
    assert _wrapped_keys(_stored(store, uri)) == {("aws-kms", arn)}
    target = _target(databases)
    with pytest.raises(EncryptionKeyError):
        _restore(target, store, uri, old)
    _restore(target, store, uri, AwsKmsKey("any", client=kms))
    assert fingerprint(target.url) == fingerprint(source.url)


def test_rekey_cleanup_failure_is_an_error(
    source: MigrationUtils,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An old part that cannot be deleted after the switch fails the rekey (the old key
    would still read it), naming no key; a rerun deletes it."""
    from tests.support.object_stores import make_store

    store = make_store("local", request, tmp_path)
    old, new = LocalKey(os.urandom(32)), LocalKey(os.urandom(32))
    uri = _backup(source, store, "stuck.jsonl", old)
    real = layout.prefix_key

    class Stuck:
        def __init__(self, backend: Any) -> None:
            self._backend = backend

        def __getattr__(self, name: str) -> Any:
            return getattr(self._backend, name)

        def delete(self, key: str) -> None:
            if key.endswith("part-00001.jsonl"):
                raise PermissionError(13, "Permission denied", key)
            self._backend.delete(key)

    monkeypatch.setattr(
        rekey_module, "prefix_key", lambda u, t=None: (Stuck(real(u, t)[0]), real(u, t)[1])
    )
    with pytest.raises(StorageError, match="run rekey again") as caught:
        rekey_backup(uri, Encryption(old), Encryption(new), store.transport_params)
    assert "part-00001.jsonl" in str(caught.value)
    assert verify_backup(uri, encryption=Encryption(new)).ok
    monkeypatch.setattr(rekey_module, "prefix_key", real)
    done = rekey_backup(uri, Encryption(old), Encryption(new), store.transport_params)
    assert done.removed == 1 and not (Path(uri) / "part-00001.jsonl").exists()
