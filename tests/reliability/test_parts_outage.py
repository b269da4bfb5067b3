"""The object store goes away during a parallel multi-part backup to S3 (moto).

Between the workers and moto sits a TCP proxy of the test's own. When a worker starts
uploading a chosen part, the proxy resets that request and every open connection, and
resets each new one for the length of the outage: to the client, the store is gone. A short
outage is survived by writing that part again (and only that part: the parts done before
it are uploaded once); the backup then restores exactly. A long one fails the backup, and
no manifest is ever published.
"""

from __future__ import annotations

import dataclasses
import math
import socket
import struct
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import smart_open.s3

from airflow_provider_zenmigrate.core.parts import backup as parts_backup
from airflow_provider_zenmigrate.core.storage import StorageError
from airflow_provider_zenmigrate.core.utils import MigrationUtils
from tests.reliability._outage import (
    BUCKET,
    WAIT,
    MotoServer,
    fill_parts_source,
    moto,
    rel_database,
    split_into_parts,
)
from tests.support.identity import fingerprint
from tests.support.object_stores import S3_ACCESS_KEY, S3_SECRET_KEY

TRIGGER_PART = "part-00003.jsonl"


class OutageProxy:
    """Forwards TCP to moto until a request for ``trigger`` passes; then resets every
    connection, and each new one, for ``seconds``."""

    def __init__(self, upstream: int, trigger: bytes, seconds: float) -> None:
        self.upstream = upstream
        self.trigger = trigger
        self.seconds = seconds
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.down_until = 0.0
        self.outages = 0
        self.refused = 0
        #: Requests answered by the store (their response relayed to the client), in all
        #: and before the outage; the request awaiting its answer on each connection.
        self.answered: list[str] = []
        self.before_outage: list[str] = []
        self._pending: dict[int, str] = {}
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def down(self) -> bool:
        return time.monotonic() < self.down_until

    def end(self) -> None:
        self.down_until = 0.0

    def close(self) -> None:
        self._closed = True
        self.listener.close()
        self._reset_all()

    @staticmethod
    def _reset(sock: socket.socket) -> None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()
        except OSError:
            pass

    def _reset_all(self) -> None:
        with self._lock:
            open_now, self._open = list(self._open), set()
        for sock in open_now:
            self._reset(sock)

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.down():
                self.refused += 1
                self._reset(client)
                continue
            try:
                server = socket.create_connection(("127.0.0.1", self.upstream))
            except OSError:
                self._reset(client)
                continue
            with self._lock:
                self._open |= {client, server}
            for args in ((client, server, True, client), (server, client, False, client)):
                threading.Thread(target=self._pump, args=args, daemon=True).start()

    def _pump(
        self, src: socket.socket, dst: socket.socket, upstream: bool, key: socket.socket
    ) -> None:
        try:
            while data := src.recv(65536):
                if upstream and self.down():
                    break
                if upstream and self.trigger in data and not self.outages:
                    self.outages += 1
                    self.before_outage = list(self.answered)
                    self.down_until = time.monotonic() + self.seconds
                    self._reset_all()  # this request never reaches the store
                    return
                if upstream and data[:1].isupper():
                    self._pending[id(key)] = data.split(b"\r\n", 1)[0].decode("latin-1")
                dst.sendall(data)
                if not upstream and id(key) in self._pending:
                    self.answered.append(self._pending.pop(id(key)))
        except OSError:
            pass
        self._reset(src)
        self._reset(dst)


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[MotoServer]:
    # smart_open's own retries of an unreachable endpoint stay; their 10 s pauses go.
    monkeypatch.setattr(smart_open.s3.RETRY, "sleep_seconds", 0)
    with moto(tmp_path) as running:
        yield running


@pytest.fixture
def source(dialect: str, tmp_path: Path) -> Iterator[MigrationUtils]:
    with rel_database(dialect, tmp_path) as mu:
        fill_parts_source(mu)
        yield mu


@pytest.fixture
def target(dialect: str, tmp_path: Path) -> Iterator[MigrationUtils]:
    with rel_database(dialect, tmp_path) as mu:
        yield mu


@pytest.fixture
def prefix() -> str:
    return f"{uuid.uuid4().hex[:8]}/nightly"


def _split(monkeypatch: pytest.MonkeyPatch) -> None:
    """Small parts, but sized for a store that takes a few round trips per part (with the
    local folder's target time, each part would shrink to a few rows)."""
    split_into_parts(monkeypatch)
    monkeypatch.setattr(parts_backup, "PART_SECONDS", 1.0)


def _proxied(server: MotoServer, prefix: str, seconds: float) -> OutageProxy:
    return OutageProxy(server.port, f"/{prefix}/{TRIGGER_PART}".encode(), seconds)


def _name(request_line: str, prefix: str) -> str:
    return request_line.split(f"/{prefix}/", 1)[-1].split("?", 1)[0].split(" ", 1)[0]


def _completes(request_line: str) -> bool:
    """Whether the request is the last one of a part's upload: the look-up of its size
    that follows the publishing (a part whose look-up the outage cut is written again)."""
    return request_line.startswith("HEAD ") and "/part-" in request_line


def _initiations(server: MotoServer, prefix: str) -> dict[str, int]:
    """How many uploads of each part (and of the manifest) reached the store."""
    counts: dict[str, int] = {}
    for method, path, _status in server.requests():
        if f"/{prefix}/" not in path:
            continue
        name = path.split(f"/{prefix}/", 1)[1].split("?", 1)[0]
        if (method == "POST" and path.endswith("?uploads")) or (
            method == "PUT" and "partNumber=" not in path
        ):
            counts[name] = counts.get(name, 0) + 1
    return counts


@pytest.mark.parametrize("dialect", ["mysql", "postgresql"])
def test_short_store_outage_retries_the_part_only(
    source: MigrationUtils,
    target: MigrationUtils,
    server: MotoServer,
    prefix: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _split(monkeypatch)
    proxy = _proxied(server, prefix, seconds=0.4)
    try:
        source.transport_params = {"client": dataclasses.replace(server, port=proxy.port).client()}
        uri = f"s3://{BUCKET}/{prefix}"
        result = source.backup_database_to_file(uri, jobs=2)
    finally:
        proxy.close()
    assert proxy.outages == 1, "the outage never happened"
    uploads = _initiations(server, prefix)
    assert uploads.get(TRIGGER_PART, 0) >= 1, uploads  # written again after the outage
    # Parts the store had published (and said so) before the outage went up once: only the
    # parts the outage broke are written again.
    finished = {_name(line, prefix) for line in proxy.before_outage if _completes(line)}
    assert "part-00000.jsonl" in finished, proxy.before_outage
    assert {n: uploads.get(n) for n in finished} == dict.fromkeys(finished, 1), uploads
    assert uploads.get("manifest.json") == 1, uploads
    assert result.extra["parts"] == len([n for n in uploads if n.startswith("part-")]), uploads

    target.transport_params = {"client": server.client()}
    target.restore_database_from_file(uri, jobs=2)
    assert fingerprint(target.url) == fingerprint(source.url)


@pytest.mark.parametrize("dialect", ["mysql", "postgresql"])
def test_long_store_outage_fails_the_backup_without_a_manifest(
    source: MigrationUtils,
    server: MotoServer,
    prefix: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _split(monkeypatch)
    before = fingerprint(source.url)
    proxy = _proxied(server, prefix, seconds=math.inf)
    started = time.monotonic()
    try:
        source.transport_params = {"client": dataclasses.replace(server, port=proxy.port).client()}
        with pytest.raises(StorageError) as caught:
            source.backup_database_to_file(f"s3://{BUCKET}/{prefix}", jobs=2)
    finally:
        proxy.close()
    took = time.monotonic() - started
    message = str(caught.value)
    assert proxy.outages == 1 and proxy.refused > 0, "the outage never happened"
    assert S3_ACCESS_KEY not in message and S3_SECRET_KEY not in message
    assert took < WAIT, f"the backup took {took:.0f}s to give up"
    uploads = _initiations(server, prefix)
    assert "manifest.json" not in uploads, uploads
    listed = server.client().list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])
    assert not [o["Key"] for o in listed if o["Key"].endswith("manifest.json")]
    assert fingerprint(source.url) == before
