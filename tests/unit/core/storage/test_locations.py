"""Locations (core/storage/locations.py): URIs and plain paths parse into the store, bucket
and key they name; what is shown of a location or an error never carries a secret."""

from __future__ import annotations

from pathlib import Path

import pytest

from airflow_provider_zenmigrate.core.errors import StorageError
from airflow_provider_zenmigrate.core.storage import (
    Location,
    compression_for,
    parse_location,
    safe_uri,
    scrub,
)


@pytest.mark.parametrize(
    ("uri", "scheme", "bucket", "key", "credentials"),
    [
        ("s3://bucket/nightly/db.jsonl.zst", "s3", "bucket", "nightly/db.jsonl.zst", None),
        ("S3://bucket/k", "s3", "bucket", "k", None),
        ("s3://AKIA:se%2Fcret@bucket/k", "s3", "bucket", "k", ("AKIA", "se/cret")),
        ("s3://only-user@bucket/k", "s3", "bucket", "k", None),
        ("gs://b/a/b/c.jsonl", "gs", "b", "a/b/c.jsonl", None),
        ("gcs://b/c.jsonl", "gs", "b", "c.jsonl", None),
        ("azure://container/blob.jsonl.gz", "azure", "container", "blob.jsonl.gz", None),
        ("s3://bucket", "s3", "bucket", "", None),
        ("file:///var/backups/a%20b.jsonl", "file", "", "/var/backups/a b.jsonl", None),
    ],
)
def test_uris_name_their_store_bucket_and_key(
    uri: str, scheme: str, bucket: str, key: str, credentials: tuple[str, str] | None
) -> None:
    location = parse_location(uri)
    assert (location.scheme, location.bucket, location.key) == (scheme, bucket, key)
    assert location.credentials == credentials
    assert location.original == uri


def test_a_plain_path_is_a_local_file_made_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    location = parse_location("backups/db.jsonl")
    assert location.scheme == "file" and location.bucket == ""
    assert location.key == str(tmp_path / "backups" / "db.jsonl")
    assert location.uri == location.key  # a plain path stays a plain path


@pytest.mark.parametrize(
    ("uri", "words"),
    [
        ("ftp://host/x.jsonl", "unsupported storage scheme 'ftp'"),
        ("http://user:pw@host/x", "unsupported storage scheme 'http'"),
        ("s3:///key-without-bucket", "no bucket in s3:///key-without-bucket"),
        ("azure://:pw@/blob", "no bucket"),
    ],
)
def test_unusable_uris_are_refused_without_their_secrets(uri: str, words: str) -> None:
    with pytest.raises(StorageError, match=words) as caught:
        parse_location(uri)
    assert "pw" not in str(caught.value)


@pytest.mark.parametrize(
    ("uri", "other", "expected"),
    [
        ("s3://KEY:SECRET@bucket/a.jsonl", "b.jsonl", "s3://bucket/b.jsonl"),
        ("gcs://bucket/x/a.jsonl", "x/b.jsonl", "gs://bucket/x/b.jsonl"),
        ("file:///d/a.jsonl", "/d/b.jsonl", "file:///d/b.jsonl"),
        ("/d/a.jsonl", "/d/b.jsonl", "/d/b.jsonl"),
    ],
)
def test_other_objects_of_a_bucket_drop_the_credentials(
    uri: str, other: str, expected: str
) -> None:
    location = parse_location(uri)
    assert location.with_key(other) == expected
    assert "SECRET" not in location.uri and "SECRET" not in location.safe


@pytest.mark.parametrize(
    ("uri", "safe"),
    [
        ("s3://AKIA:secret@bucket/k.jsonl", "s3://bucket/k.jsonl"),
        ("azure://c/b.jsonl?sig=abc&se=2030", "azure://c/b.jsonl"),
        ("https://user:pw@host:8443/p?token=t#frag", "https://host:8443/p"),
        ("gs://b/k", "gs://b/k"),
        ("/plain/path?not-a-query", "/plain/path?not-a-query"),  # no scheme: a file name
    ],
)
def test_safe_uri_keeps_no_user_information_or_query(uri: str, safe: str) -> None:
    assert safe_uri(uri) == safe
    assert Location("s3", "", "", uri).safe == safe


@pytest.mark.parametrize(
    ("text", "scrubbed"),
    [
        (
            "connect to s3://AKIA:topsecret@bucket/k failed",
            "connect to s3://bucket/k failed",
        ),
        ("mysql+pymysql://root:hunter2@db:3306/app refused", "mysql+pymysql://db:3306/app refused"),
        (
            "GET https://acct.blob.core.windows.net/c/b?sv=1&sig=S1GN4TURE HTTP 403",
            "GET https://acct.blob.core.windows.net/c/b HTTP 403",
        ),
        (
            "DefaultEndpointsProtocol=https;AccountName=a;AccountKey=K3Y==;",
            "DefaultEndpointsProtocol=https;AccountName=a;AccountKey=***;",
        ),
        ("SharedAccessSignature=sv=2020&sig=abc", "SharedAccessSignature=***&sig=***"),
        ("password=pw123 user=x", "password=*** user=x"),
        ("Token=tok456, retrying", "Token=*** retrying"),  # the value ends at a space
        (
            "X-Amz-Signature=deadbeef&X-Amz-Credential=AKIA/2024",
            "X-Amz-Signature=***&X-Amz-Credential=***",
        ),
    ],
)
def test_scrub_removes_secrets_from_error_text(text: str, scrubbed: str) -> None:
    assert scrub(text) == scrubbed


def test_scrub_keeps_the_useful_part_and_bounds_the_length() -> None:
    assert scrub("s3://k:s@bucket/key not found") == "s3://bucket/key not found"
    assert scrub("password=x") == "password=***"
    assert len(scrub("x" * 10_000)) == 500


@pytest.mark.parametrize(
    ("uri", "compression"),
    [
        ("/b/db.jsonl", "disable"),
        ("/b/db.jsonl.gz", ".gz"),
        ("s3://b/db.jsonl.zst", ".zst"),
        ("s3://b/db.jsonl.zst?versionId=3", ".zst"),  # the query is not the suffix
        ("gs://b/db.gz.jsonl", "disable"),
        ("/b/db.ZST", "disable"),  # suffixes are exact
    ],
)
def test_compression_is_chosen_by_the_suffix(uri: str, compression: str) -> None:
    assert compression_for(uri) == compression
