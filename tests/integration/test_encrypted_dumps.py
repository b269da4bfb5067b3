"""Encrypted dumps on real databases and stores: round trips (SQLite, MariaDB, PostgreSQL on
a local folder and on S3 through moto), every kind of tampering refused before any record
reaches the staging area with the target untouched, wrong, missing and revoked keys, AWS
KMS through moto's server, rekey then restore, and the key material nowhere it may leak."""

from __future__ import annotations

import base64
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_zenmigrate.core.crypto import AwsKmsKey, Encryption, LocalKey
from airflow_provider_zenmigrate.core.crypto.envelope import MAGIC, PREAMBLE_BYTES
from airflow_provider_zenmigrate.core.crypto.segments import TAG_BYTES
from airflow_provider_zenmigrate.core.dump.records import Record
from airflow_provider_zenmigrate.core.errors import (
    DumpAuthenticationError,
    EncryptionKeyError,
    EncryptionRequiredError,
    KeyServiceError,
    MissingKeyError,
)
from airflow_provider_zenmigrate.core.rekey import rekey_backup
from airflow_provider_zenmigrate.core.storage import open_for_read
from airflow_provider_zenmigrate.core.utils import MigrationUtils
from tests.support.identity import fingerprint

if TYPE_CHECKING:
    from tests.support.object_stores import Store

pytest_plugins = ["tests.support.object_stores"]

#: Small segments, so the library dump spans many of them.
SEGMENT = 4096


def _local() -> tuple[LocalKey, bytes]:
    raw = os.urandom(32)
    return LocalKey(raw), raw


def _use(mu: MigrationUtils, store: Store, encryption: Encryption | None) -> MigrationUtils:
    mu.transport_params = store.transport_params
    mu.encryption = encryption
    return mu


class _Applied:
    """Records every record a restore applied: none may be applied from a refused dump."""

    def __init__(self) -> None:
        self.records: list[str] = []

    def __call__(self, record: Record, _raw: bytes | None) -> None:
        self.records.append(str(record.get("kind")))


@pytest.fixture
def local_store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    from tests.support.object_stores import make_store

    return make_store("local", request, tmp_path)


@pytest.mark.parametrize("suffix", [".jsonl", ".jsonl.zst", ".jsonl.gz"])
def test_round_trip_every_dialect_local(
    local_store: Store, source: MigrationUtils, target: MigrationUtils, suffix: str
) -> None:
    key, raw = _local()
    uri = local_store.uri(f"library{suffix}")
    _use(source, local_store, Encryption(key, segment_size=SEGMENT)).backup_database_to_file(uri)
    stored = local_store.get(uri)
    assert stored.startswith(MAGIC)
    assert b"Author 1" not in stored and b"author" not in stored
    assert raw not in stored and base64.b64encode(raw) not in stored
    summary = _use(target, local_store, Encryption(key)).restore_database_from_file(uri)
    assert summary.tables["book"] == 150 and summary.tables["author"] == 50
    assert fingerprint(target.url) == fingerprint(source.url)


def test_round_trip_every_dialect_s3(
    s3_store: Store, source: MigrationUtils, target: MigrationUtils
) -> None:
    key, _raw = _local()
    uri = s3_store.uri("nightly/library.jsonl.zst")
    _use(source, s3_store, Encryption(key)).backup_database_to_file(uri)
    assert s3_store.objects() == [uri, uri + ".manifest.json"]
    assert s3_store.get(uri).startswith(MAGIC)
    summary = _use(target, s3_store, Encryption(key, require=True)).restore_database_from_file(uri)
    assert summary.tables["book"] == 150
    assert fingerprint(target.url) == fingerprint(source.url)


@pytest.mark.parametrize("dialect", ["sqlite"], indirect=True)
def test_round_trip_every_store(
    store: Store, source: MigrationUtils, target: MigrationUtils
) -> None:
    key, _raw = _local()
    uri = store.uri("library.jsonl")
    _use(source, store, Encryption(key, segment_size=SEGMENT)).backup_database_to_file(uri)
    assert store.get(uri).startswith(MAGIC) and len(_segments(store.get(uri))[1]) >= 4
    _use(target, store, Encryption(key)).restore_database_from_file(uri)
    assert fingerprint(target.url) == fingerprint(source.url)
    # Tampered on the store itself: refused before any record is applied.
    before_tables = fingerprint(target.url)
    store.put(uri, _swap(store.get(uri)))
    applied = _Applied()
    with pytest.raises(DumpAuthenticationError):
        _use(target, store, Encryption(key)).restore_database_from_file(uri, on_record=applied)
    assert applied.records == [] and fingerprint(target.url) == before_tables


@pytest.mark.parametrize("dialect", ["sqlite"], indirect=True)
def test_required_encryption_without_a_key_writes_nothing(
    local_store: Store, source: MigrationUtils
) -> None:
    uri = local_store.uri("library.jsonl")
    with pytest.raises(EncryptionKeyError, match="required, and no key"):
        _use(source, local_store, Encryption(require=True)).backup_database_to_file(uri)
    assert local_store.objects() == []


def _segments(data: bytes) -> tuple[bytes, list[bytes]]:
    length = int.from_bytes(data[len(MAGIC) + 2 : PREAMBLE_BYTES], "big")
    head = data[: PREAMBLE_BYTES + length]
    body = data[len(head) :]
    step = SEGMENT + TAG_BYTES
    return head, [body[i : i + step] for i in range(0, len(body), step)]


def _flip_last(data: bytes) -> bytes:
    return data[:-3] + bytes([data[-3] ^ 0x01]) + data[-2:]


def _swap(data: bytes) -> bytes:
    head, segments = _segments(data)
    return head + b"".join([*segments[:1], segments[2], segments[1], *segments[3:]])


def _truncate(data: bytes) -> bytes:
    head, segments = _segments(data)
    return head + b"".join(segments[:-1])


def _extend(data: bytes) -> bytes:
    return data + os.urandom(SEGMENT + TAG_BYTES)


@pytest.mark.parametrize("tamper", [_flip_last, _swap, _truncate, _extend])
@pytest.mark.parametrize("dialect", ["sqlite", "mysql", "postgresql"], indirect=True)
def test_tampered_dump_refused_before_any_record_is_applied(
    local_store: Store, source: MigrationUtils, target: MigrationUtils, tamper: Any
) -> None:
    key, _raw = _local()
    uri = local_store.uri("good.jsonl")
    _use(source, local_store, Encryption(key, segment_size=SEGMENT)).backup_database_to_file(uri)
    good = local_store.get(uri)
    assert len(_segments(good)[1]) >= 4  # enough segments for every tamper to mean something
    bad = local_store.uri("bad.jsonl")
    local_store.put(bad, tamper(good))
    before = fingerprint(target.url)
    applied = _Applied()
    with pytest.raises(DumpAuthenticationError, match="refused at segment"):
        _use(target, local_store, Encryption(key)).restore_database_from_file(
            bad, on_record=applied
        )
    assert applied.records == []
    assert fingerprint(target.url) == before
    # The untampered dump still restores: the refusal was the tampering's.
    _use(target, local_store, Encryption(key)).restore_database_from_file(uri)
    assert fingerprint(target.url) == fingerprint(source.url)


@pytest.mark.parametrize("dialect", ["sqlite"], indirect=True)
def test_wrong_missing_and_required_keys(
    local_store: Store, source: MigrationUtils, target: MigrationUtils
) -> None:
    key, _raw = _local()
    other, _other_raw = _local()
    uri = local_store.uri("library.jsonl.zst")
    _use(source, local_store, Encryption(key)).backup_database_to_file(uri)
    before = fingerprint(target.url)
    with pytest.raises(EncryptionKeyError, match=f"wrapped by local key {key.key_id}") as wrong:
        _use(target, local_store, Encryption(other)).restore_database_from_file(uri)
    assert other.key_id in str(wrong.value)
    with pytest.raises(MissingKeyError, match="is encrypted .* without its key"):
        _use(target, local_store, None).restore_database_from_file(uri)
    assert fingerprint(target.url) == before

    plain = local_store.uri("plain.jsonl")
    _use(source, local_store, None).backup_database_to_file(plain)
    assert not local_store.get(plain).startswith(MAGIC)
    with pytest.raises(EncryptionRequiredError, match="not encrypted"):
        _use(target, local_store, Encryption(key, require=True)).restore_database_from_file(plain)
    assert fingerprint(target.url) == before
    # Keys without require: a plaintext dump is read as plaintext.
    _use(target, local_store, Encryption(key)).restore_database_from_file(plain)
    assert fingerprint(target.url) == fingerprint(source.url)


@pytest.mark.parametrize("dialect", ["postgresql"], indirect=True)
def test_rekey_then_restore(
    local_store: Store, source: MigrationUtils, target: MigrationUtils
) -> None:
    old, _ = _local()
    new, _ = _local()
    uri = local_store.uri("library.jsonl.zst")
    _use(source, local_store, Encryption(old, segment_size=SEGMENT)).backup_database_to_file(uri)
    before = local_store.get(uri)
    result = rekey_backup(uri, Encryption(old), Encryption(new), local_store.transport_params)
    after = local_store.get(uri)
    assert (result.old_key_id, result.new_key_id) == (old.key_id, new.key_id)
    head_before, segments_before = _segments(before)
    head_after, segments_after = _segments(after)
    assert segments_after == segments_before and head_after != head_before
    assert result.segments == len(segments_before)
    assert [Path(o).name for o in local_store.objects()] == [
        "library.jsonl.zst",
        "library.jsonl.zst.manifest.json",
    ]
    with pytest.raises(EncryptionKeyError, match=f"wrapped by local key {new.key_id}"):
        _use(target, local_store, Encryption(old)).restore_database_from_file(uri)
    _use(target, local_store, Encryption(new)).restore_database_from_file(uri)
    assert fingerprint(target.url) == fingerprint(source.url)


@pytest.mark.parametrize("dialect", ["sqlite"], indirect=True)
def test_rekey_refuses_a_tampered_dump_and_leaves_it(
    local_store: Store, source: MigrationUtils
) -> None:
    old, _ = _local()
    new, _ = _local()
    uri = local_store.uri("library.jsonl")
    _use(source, local_store, Encryption(old, segment_size=SEGMENT)).backup_database_to_file(uri)
    tampered = _swap(local_store.get(uri))
    local_store.put(uri, tampered)
    with pytest.raises(DumpAuthenticationError):
        rekey_backup(uri, Encryption(old), Encryption(new), local_store.transport_params)
    assert local_store.get(uri) == tampered
    assert not list(Path(local_store.prefix).glob(".*partial"))


# -- AWS KMS through moto's server -----------------------------------------------------------
def _kms_client(endpoint: str) -> Any:
    import boto3

    from tests.support.object_stores import S3_ACCESS_KEY, S3_SECRET_KEY

    return boto3.session.Session().client(
        "kms",
        endpoint_url=endpoint,
        aws_access_key_id=S3_ACCESS_KEY,
        aws_secret_access_key=S3_SECRET_KEY,
        region_name="us-east-1",
    )


@pytest.mark.parametrize("dialect", ["mysql"], indirect=True)
def test_kms_round_trip_then_revoked_key(
    s3_server: str, s3_store: Store, source: MigrationUtils, target: MigrationUtils
) -> None:
    kms = _kms_client(s3_server)
    created = kms.create_key(Description="zenmigrate test")["KeyMetadata"]
    arn = created["Arn"]
    provider = AwsKmsKey(arn, client=kms)
    uri = s3_store.uri("kms/library.jsonl.zst")
    _use(source, s3_store, Encryption(provider)).backup_database_to_file(uri)
    stored = s3_store.get(uri)
    assert stored.startswith(MAGIC) and arn.encode() in stored[:2048]
    _use(target, s3_store, Encryption(AwsKmsKey("any", client=kms))).restore_database_from_file(uri)
    assert fingerprint(target.url) == fingerprint(source.url)

    kms.disable_key(KeyId=created["KeyId"])  # moto's server takes the id, not the ARN
    with pytest.raises(EncryptionKeyError, match="disabled or pending deletion"):
        _use(target, s3_store, Encryption(provider)).restore_database_from_file(uri)
    with pytest.raises(EncryptionKeyError, match="disabled"):
        _use(source, s3_store, Encryption(provider)).backup_database_to_file(
            s3_store.uri("kms/never.jsonl")
        )
    assert s3_store.uri("kms/never.jsonl") not in s3_store.objects()


@pytest.mark.parametrize("dialect", ["sqlite"], indirect=True)
def test_kms_rekey_from_local_and_unreachable_kms(
    s3_server: str,
    local_store: Store,
    source: MigrationUtils,
    target: MigrationUtils,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    kms = _kms_client(s3_server)
    arn = kms.create_key()["KeyMetadata"]["Arn"]
    local, _ = _local()
    uri = local_store.uri("library.jsonl.gz")
    _use(source, local_store, Encryption(local)).backup_database_to_file(uri)
    rekey_backup(uri, Encryption(local), Encryption(AwsKmsKey(arn, client=kms)), None)
    _use(target, local_store, Encryption(AwsKmsKey(arn, client=kms))).restore_database_from_file(
        uri
    )
    assert fingerprint(target.url) == fingerprint(source.url)

    from tests.support.object_stores import S3_ACCESS_KEY, S3_SECRET_KEY, free_port

    nowhere = AwsKmsKey(arn, endpoint_url=f"http://127.0.0.1:{free_port()}", region="us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", S3_ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", S3_SECRET_KEY)
    never = local_store.uri("never.jsonl")
    with pytest.raises(KeyServiceError, match="could not be reached"):
        _use(source, local_store, Encryption(nowhere)).backup_database_to_file(never)
    assert not Path(never).exists()
    assert not list(Path(local_store.prefix).glob(".*partial"))


# -- the key never leaks ---------------------------------------------------------------------
@pytest.mark.parametrize("dialect", ["sqlite"], indirect=True)
def test_key_material_in_no_log_error_header_or_manifest(
    local_store: Store,
    source: MigrationUtils,
    target: MigrationUtils,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    raw = os.urandom(32)
    encoded = base64.b64encode(raw).decode()
    monkeypatch.setenv("ZM_TEST_DUMP_KEY", encoded)
    key = LocalKey.from_env("ZM_TEST_DUMP_KEY")
    other = LocalKey(os.urandom(32))
    caplog.set_level(logging.DEBUG)
    uri = local_store.uri("library.jsonl.zst")
    _use(source, local_store, Encryption(key)).backup_database_to_file(uri)
    errors: list[str] = []
    for encryption in (Encryption(other), None):
        try:
            _use(target, local_store, encryption).restore_database_from_file(uri)
        except Exception as exc:  # noqa: BLE001 - every error's text is scanned
            errors.append(f"{exc!r} {exc}")
    assert len(errors) == 2
    _use(target, local_store, Encryption(key)).restore_database_from_file(uri)
    with open_for_read(uri, encryption=Encryption(key)) as stream:
        assert stream.readline().startswith(b'{"kind":"header"')
    seen = [
        caplog.text,
        *errors,
        repr(source),
        repr(Encryption(key)),
        local_store.get(uri)[:4096].decode("latin-1"),
        local_store.get(uri + ".manifest.json").decode(),
    ]
    forms = [encoded, raw.hex(), raw.decode("latin-1"), base64.urlsafe_b64encode(raw).decode()]
    for text in seen:
        for form in forms:
            assert form not in text
    assert key.key_id in local_store.get(uri)[:4096].decode("latin-1")
