"""The object store dies in the middle of an upload (backup) or a download (restore).

Each test starts its own moto S3 server process and SIGKILLs it at a known moment, chosen
with the boto3 client's own event hooks (the client is real, the hook only blocks): the
second UploadPart, once the first 5 MiB part is on the server, or the second ranged
GetObject, once the restore has loaded the first 256 KiB into staging. moto keeps objects
in memory, so what the dead server held cannot be listed afterwards; its access log can be
read, and it proves that no upload was ever completed and no manifest written. The error
the user gets must name the location and the storage problem, without credentials.
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import smart_open.s3

from airflow_provider_zenmigrate.core.storage import StorageError
from airflow_provider_zenmigrate.core.utils import MigrationUtils
from tests.reliability._outage import BUCKET, WAIT, MotoServer, fill_big, moto, side_objects
from tests.support.engine_support import populate_library
from tests.support.identity import fingerprint
from tests.support.object_stores import S3_ACCESS_KEY, S3_SECRET_KEY
from tests.support.servers import database_url

PART = 5 * 1024 * 1024  # S3's smallest part (smart_open raises anything smaller to it)
UPLOAD_ROWS = 10_600  # x ~1 KiB: a dump of about 11 MB, so part 2 goes out mid-stream
DOWNLOAD_ROWS = 600  # about 650 KB (350 KB compressed): two or three 256 KiB ranges
RANGE = 256 * 1024
UNREACHABLE = re.compile(r"Could not connect to the endpoint URL|store did not answer")


class Gate:
    """Blocks the ``nth`` call of a boto3 operation until the test opens the gate."""

    def __init__(self, client: Any, operation: str, nth: int) -> None:
        self.calls = 0
        self.nth = nth
        self.reached = threading.Event()
        self.open = threading.Event()
        client.meta.events.register(f"before-call.s3.{operation}", self._hook)

    def _hook(self, **_kwargs: Any) -> None:
        self.calls += 1
        if self.calls == self.nth:
            self.reached.set()
            if not self.open.wait(WAIT):
                raise RuntimeError("the test never opened the gate")

    def wait(self, future: Future[Any]) -> None:
        deadline = time.monotonic() + WAIT
        while not self.reached.wait(0.05):
            if future.done():
                future.result()  # raises what ended the work before it got here
            if future.done() or time.monotonic() > deadline:
                pytest.fail(f"the gate was never reached ({self.calls} calls)")


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[MotoServer]:
    # smart_open retries an unreachable endpoint 6 times, 10 s apart, before it gives up
    # (a minute: worth it for a blip in production); the attempts stay, the pauses go.
    monkeypatch.setattr(smart_open.s3.RETRY, "sleep_seconds", 0)
    with moto(tmp_path) as running:
        yield running


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    """Runs the backup or restore, so the test thread is free to kill the server."""
    executor = ThreadPoolExecutor(1)
    yield executor
    executor.shutdown(wait=False)  # a failed test may leave the work at a closed gate


def _assert_storage_error(future: Future[Any], uri: str) -> str:
    with pytest.raises(StorageError) as caught:
        future.result(WAIT)
    message = str(caught.value)
    assert uri in message and UNREACHABLE.search(message), message
    assert S3_ACCESS_KEY not in message and S3_SECRET_KEY not in message
    return message


def test_store_killed_mid_upload(
    dialect: str, utils: MigrationUtils, server: MotoServer, pool: ThreadPoolExecutor
) -> None:
    """The server dies with part 1 stored and part 2 on its way: the backup fails with a
    storage error and the server never received a completion or a manifest."""
    fill_big(utils, UPLOAD_ROWS)
    before = fingerprint(utils.url)
    key = f"{uuid.uuid4().hex[:8]}/nightly.jsonl"
    uri = f"s3://{BUCKET}/{key}"
    client = server.client()
    utils.transport_params = {"client": client, "min_part_size": PART}
    gate = Gate(client, "UploadPart", nth=2)
    future = pool.submit(utils.backup_database_to_file, uri)
    gate.wait(future)

    uploads = client.list_multipart_uploads(Bucket=BUCKET, Prefix=key)["Uploads"]
    assert len(uploads) == 1, "no multipart upload in progress"
    parts = client.list_parts(Bucket=BUCKET, Key=key, UploadId=uploads[0]["UploadId"])
    assert [(p["PartNumber"], p["Size"]) for p in parts["Parts"]] == [(1, PART)]
    assert "Contents" not in client.list_objects_v2(Bucket=BUCKET, Prefix=key)
    server.kill()
    gate.open.set()

    _assert_storage_error(future, uri)
    requests = [(method, path) for method, path, _status in server.requests() if key in path]
    assert ("POST", f"/{BUCKET}/{key}?uploads") in requests
    completed = [r for r in requests if r[0] == "POST" and "uploadId=" in r[1]]
    whole = [r for r in requests if r[0] == "PUT" and "partNumber=" not in r[1]]
    assert completed == [] and whole == [], requests  # never published, no manifest
    assert fingerprint(utils.url) == before


@pytest.fixture
def target(dialect: str, tmp_path: Path) -> Iterator[MigrationUtils]:
    folder = tmp_path / "target"
    folder.mkdir()
    mu = MigrationUtils(url=database_url(dialect, folder), connect_args={}, engine_args={})
    mu.create_database()
    populate_library(mu, authors=7)
    mu.dispose()
    try:
        yield mu
    finally:
        mu.drop_database()
        mu.dispose()


@pytest.mark.parametrize(
    ("dialect", "suffix"),
    [("sqlite", ".jsonl"), ("mysql", ".jsonl"), ("postgresql", ".jsonl"), ("sqlite", ".jsonl.zst")],
)
def test_store_killed_mid_download(
    dialect: str,
    suffix: str,
    utils: MigrationUtils,
    target: MigrationUtils,
    server: MotoServer,
    pool: ThreadPoolExecutor,
    tmp_path: Path,
) -> None:
    """The server dies while the restore streams the dump: a storage error, the target
    untouched, no staging left; with the store back, the same restore succeeds."""
    populate_library(utils)
    fill_big(utils, DOWNLOAD_ROWS)
    local = tmp_path / f"source{suffix}"
    utils.backup_database_to_file(str(local))
    key = f"{uuid.uuid4().hex[:8]}/nightly{suffix}"
    uri = f"s3://{BUCKET}/{key}"
    server.client().upload_file(str(local), BUCKET, key)
    before = fingerprint(target.url)
    client = server.client()
    target.transport_params = {"client": client, "range_chunk_size": RANGE}
    gate = Gate(client, "GetObject", nth=2)
    future = pool.submit(target.restore_database_from_file, uri)
    gate.wait(future)
    if dialect != "postgresql":  # (PostgreSQL's staging schema is not committed: invisible)
        assert side_objects(dialect, target.url), "the restore was not loading"
    server.kill()
    gate.open.set()

    _assert_storage_error(future, uri)
    assert fingerprint(target.url) == before
    assert side_objects(dialect, target.url) == set()

    with moto(tmp_path) as again:  # the store is back (empty: moto keeps nothing)
        client = again.client()
        client.upload_file(str(local), BUCKET, key)
        target.transport_params = {"client": client, "range_chunk_size": RANGE}
        target.restore_database_from_file(uri)
    assert fingerprint(target.url) == fingerprint(utils.url)
    assert side_objects(dialect, target.url) == set()
