"""Backups and restores through every store: local, S3 (moto), GCS (emulator), Azure (azurite).

Every backend runs the same round-trip, abort, kill, tamper and not-found tests against
SQLite, MariaDB and PostgreSQL sources; throughput and memory are measured in child
processes (run with ``-s`` to see the numbers).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_zenmigrate.core.errors import DumpError
from airflow_provider_zenmigrate.core.storage import (
    StorageError,
    StorageNotFoundError,
    backend_for,
    open_for_read,
    open_for_write,
    safe_uri,
)
from airflow_provider_zenmigrate.core.utils import MigrationUtils
from tests.support.engine_support import populate_library
from tests.support.identity import fingerprint
from tests.support.memory import FILL_BIG, MAX_GROWTH_MB, measure_in_child
from tests.support.servers import database_url

if TYPE_CHECKING:
    from tests.support.object_stores import Store

pytest_plugins = ["tests.support.object_stores"]

PART_SIZE = 5 * 1024 * 1024
KILL_ROWS = 80_000
MAGIC = {".jsonl.gz": b"\x1f\x8b", ".jsonl.zst": b"\x28\xb5\x2f\xfd", ".jsonl": b'{"kind"'}


def _use(mu: MigrationUtils, store: Store) -> MigrationUtils:
    mu.transport_params = store.transport_params
    return mu


def test_round_trip(store: Store, source: MigrationUtils, target: MigrationUtils) -> None:
    uri = store.uri("nightly/library.jsonl.zst")
    _use(source, store).backup_database_to_file(uri)
    assert store.objects() == [uri, uri + ".manifest.json"]
    summary = _use(target, store).restore_database_from_file(uri)
    assert summary.tables["book"] == 150 and summary.tables["author"] == 50
    assert fingerprint(target.url) == fingerprint(source.url)


@pytest.mark.parametrize("suffix", [".jsonl", ".jsonl.gz", ".jsonl.zst"])
def test_compression_by_suffix(store: Store, suffix: str) -> None:
    uri = store.uri(f"lines{suffix}")
    lines = [b'{"kind":"x","n":%d}\n' % i for i in range(200_000)]
    with open_for_write(uri, store.transport_params) as stream:
        for line in lines:
            stream.write(line)
    assert store.get(uri).startswith(MAGIC[suffix])
    with open_for_read(uri, store.transport_params) as stream:
        assert stream.read() == b"".join(lines)


def test_failed_backup_publishes_nothing(store: Store) -> None:
    """An error mid-stream aborts the upload: no object, no pending multipart upload."""
    uri = store.uri("failed.jsonl")
    params = {**(store.transport_params or {}), "min_part_size": PART_SIZE}
    with pytest.raises(RuntimeError, match="database went away"):  # noqa: SIM117
        with open_for_write(uri, params) as stream:
            for _ in range(3 * PART_SIZE // 65536):
                stream.write(b"x" * 65535 + b"\n")
            raise RuntimeError("database went away")
    assert store.objects() == []
    if store.name == "s3":  # aborted, not merely left pending
        assert store.upload_in_progress(uri) is False
    # Azure keeps staged blocks until it collects them (7 days); they never form a blob.


def test_a_local_file_goes_to_disk_while_it_is_written(tmp_path: Path) -> None:
    """A local dump's pages are handed to the disk as it grows, so the fsync that publishes
    it waits for the last ones only; what is published is what was written."""
    path = tmp_path / "big.jsonl"
    block = os.urandom(1 << 20)
    backend = backend_for(str(path))
    with backend.upload(str(path)) as stream:
        for _ in range(80):
            stream.write(block)
        stream.flush()
        handed = stream.raw.handed  # type: ignore[attr-defined]
    assert handed >= 64 * 1024 * 1024, handed
    assert path.read_bytes() == block * 80
    assert list(tmp_path.iterdir()) == [path]  # no partial file left


_CHILD = """
import sys
from airflow_provider_zenmigrate.core.utils import MigrationUtils

written = reported = 0

def report(record, line):
    global written, reported
    written += len(line) + 1
    if written - reported > 1 << 20:
        print("progress", written, flush=True)
        reported = written

mu = MigrationUtils(url=sys.argv[1], connect_args={}, engine_args={},
                    transport_params={"min_part_size": int(sys.argv[3])})
mu.backup_database_to_file(sys.argv[2], on_record=report)
print("done", flush=True)
"""


def _fill_big(mu: MigrationUtils, dialect: str, rows: int) -> None:
    with mu.engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE big (id INTEGER PRIMARY KEY, payload TEXT NOT NULL)")
        conn.exec_driver_sql(FILL_BIG[dialect].format(n=rows))


def test_killed_backup_leaves_no_object(
    store: Store,
    utils: MigrationUtils,
    target: MigrationUtils,
    dialect: str,
) -> None:
    """SIGKILL mid-stream: nothing at the final key, and restoring it says "not found"."""
    _fill_big(utils, dialect, KILL_ROWS)  # ~85 MB of JSON Lines
    uri = store.uri("killed/backup.jsonl")
    url = utils.url.render_as_string(hide_password=False)
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, url, uri, str(PART_SIZE)],
        env=store.environment(),  # the child reaches the store through the environment
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert child.stdout is not None
    written = 0
    in_progress: bool | None = None
    try:
        for raw in child.stdout:
            words = raw.decode().split()
            assert words[0] == "progress", f"the backup finished before the kill: {words}"
            written = int(words[1])
            if written > 4 * PART_SIZE:  # at least three parts have gone to the store
                in_progress = store.upload_in_progress(uri)
                break
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        _out, err = child.communicate(timeout=60)
    assert child.returncode == -signal.SIGKILL, err.decode()[-3000:]
    assert written > 4 * PART_SIZE, f"the child never got going: {err.decode()[-3000:]}"
    assert in_progress in (True, None), "no upload was in progress when the child was killed"

    assert uri not in store.objects()
    assert not [k for k in store.objects() if not Path(k).name.startswith(".")]
    before = fingerprint(target.url)
    with pytest.raises(StorageNotFoundError, match="not found") as caught:
        _use(target, store).restore_database_from_file(uri)
    assert safe_uri(uri) in str(caught.value) and isinstance(caught.value, FileNotFoundError)
    assert fingerprint(target.url) == before
    state = {True: "upload pending", None: "store cannot show pending uploads"}[in_progress]
    print(f"{store.name}/{dialect}: killed after {written / 2**20:.0f} MiB, {state}")


def _altered(data: bytes) -> bytes:
    index = data.index(b"Author 1")
    return data[:index] + b"Author 7" + data[index + 8 :]


def _cut_in_line(data: bytes) -> bytes:
    return data[: len(data) // 2]


def _cut_at_line(data: bytes) -> bytes:
    return data[: data.rindex(b"\n", 0, len(data) // 2) + 1]


@pytest.mark.parametrize("tamper", [_altered, _cut_in_line, _cut_at_line])
def test_tampered_object_fails_before_the_target_is_touched(
    store: Store,
    source: MigrationUtils,
    target: MigrationUtils,
    tamper: Any,
) -> None:
    uri = store.uri("good.jsonl")
    _use(source, store).backup_database_to_file(uri)
    bad = store.uri("bad.jsonl")
    store.put(bad, tamper(store.get(uri)))
    before = fingerprint(target.url)
    with pytest.raises(DumpError) as caught:
        _use(target, store).restore_database_from_file(bad)
    assert (
        "truncated" in str(caught.value)
        or "book" in str(caught.value)
        or "author" in str(caught.value)
    )
    assert fingerprint(target.url) == before


def test_tampered_compressed_object_fails(
    store: Store,
    source: MigrationUtils,
    target: MigrationUtils,
) -> None:
    uri = store.uri("good.jsonl.gz")
    _use(source, store).backup_database_to_file(uri)
    data = store.get(uri)
    before = fingerprint(target.url)
    for name, bad_bytes in [("cut", data[: len(data) // 2]), ("flip", _flip(data))]:
        bad = store.uri(f"bad-{name}.jsonl.gz")
        store.put(bad, bad_bytes)
        with pytest.raises(DumpError):
            _use(target, store).restore_database_from_file(bad)
    assert fingerprint(target.url) == before


def _flip(data: bytes) -> bytes:
    middle = len(data) // 2
    return data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1 :]


def test_missing_object_is_not_found(store: Store, target: MigrationUtils) -> None:
    uri = store.uri("never-written.jsonl.zst")
    with pytest.raises(StorageNotFoundError) as caught:
        _use(target, store).restore_database_from_file(uri)
    assert str(caught.value) == f"backup not found: {safe_uri(uri)}"


def test_explicit_client_wins_over_environment(
    s3_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in s3_store.env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9")  # nothing listens there
    uri = s3_store.uri("explicit.jsonl")
    with open_for_write(uri, s3_store.transport_params) as stream:
        stream.write(b"{}\n")
    with pytest.raises(StorageError, match=uri):  # noqa: SIM117
        with open_for_read(uri):
            pass
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_store.env["AWS_ENDPOINT_URL_S3"])
    with open_for_read(uri) as stream:  # the environment chain, once it points somewhere
        assert stream.read() == b"{}\n"


def test_no_secret_in_logs_or_errors(
    s3_store: Store,
    azure_store: Store,
    store_secrets: dict[str, str],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.DEBUG)
    for name, value in {**s3_store.env, **azure_store.env}.items():
        monkeypatch.setenv(name, value)
    # Credentials only in the URI: the environment has none.
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    access, secret = store_secrets["s3_access_key"], store_secrets["s3_secret_key"]
    bucket = s3_store.bucket
    mu = MigrationUtils(url=database_url("sqlite", tmp_path), connect_args={}, engine_args={})
    mu.create_database()
    populate_library(mu, authors=5)
    with_credentials = s3_store.uri("backup.jsonl").replace("s3://", f"s3://{access}:{secret}@")
    mu.backup_database_to_file(with_credentials)
    mu.restore_database_from_file(with_credentials)
    no_bucket = with_credentials.replace(bucket, "no-such-bucket")
    failing: list[tuple[Callable[[str], object], str]] = [
        (mu.backup_database_to_file, no_bucket),
        (mu.restore_database_from_file, no_bucket),
        (mu.restore_database_from_file, with_credentials.replace("backup", "missing")),
        (mu.backup_database_to_file, "azure://no-such-container/backup.jsonl"),
        (mu.restore_database_from_file, azure_store.uri("m.jsonl?sig=") + secret),
    ]
    messages: list[str] = []
    for action, uri in failing:
        with pytest.raises(StorageError) as caught:
            action(uri)
        error = caught.value
        messages.append(f"{type(error).__name__}: {error}")
        shown = error.__cause__ or (None if error.__suppress_context__ else error.__context__)
        assert shown is None, messages[-1]  # a store's own error text is never chained
    mu.dispose()
    assert "no-such-bucket" in messages[0] and "no-such-container" in messages[3], messages
    text = "\n".join(messages + [r.getMessage() for r in caplog.records] + [caplog.text])
    assert "backing up" in text  # our own log lines were captured
    for name, value in store_secrets.items():
        leaks = [line for line in text.splitlines() if value in line]
        if name == "s3_access_key":
            # botocore's own DEBUG lines name the access key id of the signed request
            # (an identifier, not a secret); none of ours does.
            leaks = [line for line in leaks if "Credential=" not in line]
        assert not leaks, f"{name} leaked: {leaks[:3]}"


# -- without the cloud SDKs ------------------------------------------------------------------
# A child process in which the SDKs cannot be imported, as where the package was installed
# without its [s3], [gcs] or [azure] extra (None in sys.modules makes an import fail).
_WITHOUT_SDKS = """
import sys
for name in ("boto3", "botocore", "google.cloud.storage", "azure.storage.blob"):
    sys.modules[name] = None
from airflow_provider_zenmigrate.core.catalog import list_backups
from airflow_provider_zenmigrate.core.storage import StorageError
from airflow_provider_zenmigrate.core.utils import MigrationUtils

folder = sys.argv[1]
mu = MigrationUtils(url=f"sqlite:///{folder}/app.db", connect_args={}, engine_args={})
with mu.engine.begin() as conn:
    conn.exec_driver_sql("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT)")
    conn.exec_driver_sql("INSERT INTO t VALUES (1, 'local files need no SDK')")
mu.backup_database_to_file(f"{folder}/app.jsonl.zst")
print("restored", mu.restore_database_from_file(f"{folder}/app.jsonl.zst").tables)
for uri in sys.argv[2:]:
    for action in (mu.backup_database_to_file, list_backups):
        try:
            action(uri)
        except StorageError as error:
            print("refused", error)
mu.dispose()

from types import SimpleNamespace
from airflow_provider_zenmigrate.hooks.storage_params import transport_params
for conn_type in ("aws", "google_cloud_platform", "wasb"):
    conn = SimpleNamespace(conn_type=conn_type, extra_dejson={}, login="KEY", password="SECRET")
    try:
        transport_params(conn)
    except StorageError as error:
        print("refused", error)
"""


def test_a_store_without_its_sdk_names_the_extra(tmp_path: Path) -> None:
    uris = {
        "s3": "s3://KEY:SECRET@bucket/app/1.jsonl",
        "gcs": "gs://bucket/app/1.jsonl",
        "azure": "azure://container/app/1.jsonl?sig=SECRET",
    }
    done = subprocess.run(
        [sys.executable, "-c", _WITHOUT_SDKS, str(tmp_path), *uris.values()],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "restored {'t': 1}"
    names = {"s3": "the AWS SDK (boto3)", "gcs": "the Google Cloud Storage SDK"}
    names["azure"] = "the Azure Blob Storage SDK"
    expected = []
    for extra, uri in uris.items():
        message = (
            f"refused {safe_uri(uri)} needs {names[extra]}, which is not installed: "
            f"pip install 'airflow-provider-zenmigrate[{extra}]'"
        )
        expected += [message, message]  # the backup and the listing alike
    for conn_type, extra in (("aws", "s3"), ("google_cloud_platform", "gcs"), ("wasb", "azure")):
        expected.append(  # an Airflow storage connection whose SDK is missing
            f"refused a storage connection of type {conn_type!r} needs {names[extra]}, "
            f"which is not installed: pip install 'airflow-provider-zenmigrate[{extra}]'"
        )
    assert lines[1:] == expected
    assert "SECRET" not in done.stdout + done.stderr


# -- throughput and memory -------------------------------------------------------------------
# 1M rows on SQLite; 300k on the servers keeps the suite short (set the variable for 1M there).
THROUGHPUT_ROWS = os.environ.get("ZENMIGRATE_THROUGHPUT_ROWS")
BIG_ROWS = 300_000
_FILL_NARROW = {
    "sqlite": "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < {n}) "
    "INSERT INTO narrow (id, n, label) SELECT i, i * 7, hex(randomblob(24)) FROM s",
    "mysql": "INSERT INTO narrow (id, n, label) SELECT seq, seq * 7, SHA1(seq) FROM seq_1_to_{n}",
    "postgresql": "INSERT INTO narrow (id, n, label) "
    "SELECT i, i * 7, md5(i::text) || 'abcdefgh' FROM generate_series(1, {n}) i",
}


def _measure_round_trip(
    store: Store, source: MigrationUtils, dialect: str, tmp_path: Path, uri: str
) -> tuple[float, float, float, float, float]:
    """(MB of dump, backup s, backup +MB RSS, restore s, restore +MB RSS) in child processes."""
    growth_b, seconds_b, _ = measure_in_child("backup", source.url.render_as_string(False), uri)
    mb = json.loads(store.get(uri + ".manifest.json"))["size"] / 1e6
    folder = tmp_path / f"restore-{store.name}"
    folder.mkdir()
    target_url = database_url(dialect, folder)
    restored = MigrationUtils(url=target_url, connect_args={}, engine_args={})
    restored.create_database()
    try:
        growth_r, seconds_r, _ = measure_in_child(
            "restore", target_url.render_as_string(False), uri
        )
    finally:
        restored.drop_database()
        restored.dispose()
    return mb, seconds_b, growth_b, seconds_r, growth_r


def test_throughput(
    store: Store,
    utils: MigrationUtils,
    dialect: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A quick figure by default; ZENMIGRATE_THROUGHPUT_ROWS=1000000 for the full measurement.
    rows = int(THROUGHPUT_ROWS or 200_000)
    with utils.engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TABLE narrow (id INTEGER PRIMARY KEY, n BIGINT NOT NULL, label TEXT)"
        )
        conn.exec_driver_sql(_FILL_NARROW[dialect].format(n=rows))
    for name, value in store.env.items():
        monkeypatch.setenv(name, value)
    uri = store.uri("narrow.jsonl")
    started = time.monotonic()
    mb, sb, gb, sr, gr = _measure_round_trip(store, utils, dialect, tmp_path, uri)
    print(
        f"\nTHROUGHPUT {store.name:5} {dialect:10} {rows} rows, {mb:.0f} MB dump: "
        f"backup {mb / sb:.1f} MB/s ({sb:.1f}s, +{gb:.0f} MB RSS), "
        f"restore {mb / sr:.1f} MB/s ({sr:.1f}s, +{gr:.0f} MB RSS); "
        f"{time.monotonic() - started:.0f}s in all"
    )
    assert gb < MAX_GROWTH_MB and gr < MAX_GROWTH_MB


def test_memory_bounded_backup_to_s3(
    s3_store: Store,
    utils: MigrationUtils,
    dialect: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A 300,000-row, ~300 MB table to S3 (uncompressed) grows peak RSS by < 150 MB."""
    _fill_big(utils, dialect, BIG_ROWS)
    for name, value in s3_store.env.items():
        monkeypatch.setenv(name, value)
    uri = s3_store.uri("big.jsonl")
    mb, sb, gb, sr, gr = _measure_round_trip(s3_store, utils, dialect, tmp_path, uri)
    print(
        f"\nMEMORY s3 {dialect:10} {BIG_ROWS} x 1 KiB, {mb:.0f} MB object: "
        f"backup {mb / sb:.1f} MB/s +{gb:.0f} MB peak RSS, "
        f"restore {mb / sr:.1f} MB/s +{gr:.0f} MB peak RSS"
    )
    assert mb > 250
    assert gb < MAX_GROWTH_MB, f"backup to S3 grew peak RSS by {gb:.0f} MB"
    assert gr < MAX_GROWTH_MB, f"restore from S3 grew peak RSS by {gr:.0f} MB"
