"""Real object-store servers on 127.0.0.1, started and stopped by the test session.

S3 is moto's server (``moto[server]``), GCS ``gcp-storage-emulator``, Azure Blob azurite
(``azurite-blob``, installed into ``.azurite/`` by ``make azurite``). Each server runs on a
free port for the whole session; a server that cannot start fails the tests that need it
with the command that gets it, never skips them.

The ``store`` fixture yields one :class:`Store` per backend (``local``, ``s3``, ``gcs``,
``azure``) with a fresh prefix, the ``transport_params`` that reach it and the environment
variables that reach it through the default credential chains (for child processes).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_zenmigrate.core.storage import backend_for, parse_location
from tests.support.paths import REPO

BACKENDS = ["local", "s3", "gcs", "azure"]
BUCKET = "zenmigrate-test"

AZURITE = REPO / ".azurite" / "node_modules" / ".bin" / "azurite-blob"
AZURITE_ACCOUNT = "devstoreaccount1"
# Azurite's well-known development key (public; a test still checks it never leaks).
AZURITE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
# moto accepts any credentials: unique ones make a leak detectable.
S3_ACCESS_KEY = "AKIAZM" + secrets.token_hex(7).upper()
S3_SECRET_KEY = "zmsecret" + secrets.token_hex(16)

HOW_TO_GET = {
    "s3": "pip install 'moto[server]' (it is in the test extra: pip install -e '.[test]')",
    "gcs": "pip install gcp-storage-emulator (it is in the test extra: pip install -e '.[test]')",
    "azure": "make azurite (npm install --prefix .azurite azurite; needs Node.js and npm)",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float) -> str | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return f"it exited with code {process.returncode}"
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return None
        time.sleep(0.1)
    return f"it did not listen on port {port} within {timeout:.0f}s"


@contextlib.contextmanager
def _server(
    backend: str, command: list[str], port: int, log: Path, timeout: float = 30
) -> Iterator[None]:
    """Run ``command`` (in the log's folder) until the block ends; fail loudly if it cannot."""
    if not Path(command[0]).exists():
        pytest.fail(f"{backend} server {command[0]} is missing; get it with: {HOW_TO_GET[backend]}")
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=log.parent)
    problem = _wait_for_port(port, process, timeout)
    try:
        if problem is not None:
            tail = log.read_text(errors="replace")[-2000:]
            pytest.fail(
                f"the {backend} server ({' '.join(command)}) could not start: {problem}.\n"
                f"{tail}\nGet it with: {HOW_TO_GET[backend]}",
                pytrace=False,
            )
        yield
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _tool(name: str) -> str:
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.exists() else shutil.which(name) or str(beside)


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The endpoint URL of a moto S3 server with the test bucket."""
    try:
        import moto.server  # noqa: F401
    except ImportError:
        pytest.fail(f"moto's server is not installed; get it with: {HOW_TO_GET['s3']}")
    port = free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    with _server("s3", command, port, log):
        endpoint = f"http://127.0.0.1:{port}"
        s3_client(endpoint).create_bucket(Bucket=BUCKET)
        yield endpoint


@pytest.fixture(scope="session")
def gcs_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The endpoint URL of a gcp-storage-emulator with the test bucket."""
    port = free_port()
    log = tmp_path_factory.mktemp("gcs") / "gcs.log"
    command = [
        _tool("gcp-storage-emulator"),
        "start",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--in-memory",
        "--default-bucket",
        BUCKET,
    ]
    with _server("gcs", command, port, log):
        yield f"http://127.0.0.1:{port}"


@pytest.fixture(scope="session")
def azure_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The connection string of an azurite blob server with the test container."""
    port = free_port()
    workspace = tmp_path_factory.mktemp("azurite")
    command = [
        str(AZURITE),
        "--blobHost",
        "127.0.0.1",
        "--blobPort",
        str(port),
        "--skipApiVersionCheck",
        "--inMemoryPersistence",
        "--disableTelemetry",
        "--silent",
    ]
    with _server("azure", command, port, workspace / "azurite.log"):
        connection = azure_connection_string(port)
        from azure.storage.blob import BlobServiceClient

        BlobServiceClient.from_connection_string(connection).create_container(BUCKET)
        yield connection


def s3_client(endpoint: str) -> Any:
    import boto3

    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=S3_ACCESS_KEY,
        aws_secret_access_key=S3_SECRET_KEY,
        region_name="us-east-1",
    )


def gcs_client(endpoint: str) -> Any:
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    return storage.Client(
        project="zenmigrate-test",
        credentials=AnonymousCredentials(),
        client_options={"api_endpoint": endpoint},
    )


def azure_connection_string(port: int) -> str:
    return (
        f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
        f"BlobEndpoint=http://127.0.0.1:{port}/{AZURITE_ACCOUNT};"
    )


@dataclass
class Store:
    """One backend as a test sees it."""

    name: str
    prefix: str
    transport_params: dict[str, Any] | None
    env: dict[str, str] = field(default_factory=dict)
    client: Any = None
    bucket: str = BUCKET

    def environment(self) -> dict[str, str]:
        """``os.environ`` plus what reaches this store through the default chains."""
        return {**os.environ, **self.env}

    def uri(self, name: str) -> str:
        return self.prefix + name

    def objects(self) -> list[str]:
        """Every object under the prefix, as URIs (what the store really holds)."""
        backend = backend_for(self.prefix, self.transport_params)
        location = backend.location
        return sorted(location.with_key(o.key) for o in backend.list(location.key))

    def get(self, uri: str) -> bytes:
        return backend_for(uri, self.transport_params).read_bytes(parse_location(uri).key)

    def put(self, uri: str, data: bytes) -> None:
        backend_for(uri, self.transport_params).write_bytes(parse_location(uri).key, data)

    def upload_in_progress(self, uri: str) -> bool | None:
        """Whether an uncommitted upload to ``uri`` exists (``None``: the store cannot tell)."""
        key = parse_location(uri).key
        if self.name == "local":
            path = Path(key)
            return any(path.parent.glob(f".{path.name}.*.partial"))
        if self.name == "s3":
            uploads = self.client.list_multipart_uploads(Bucket=self.bucket, Prefix=key)
            return bool(uploads.get("Uploads"))
        if self.name == "azure":
            blob = self.client.get_container_client(BUCKET).get_blob_client(key)
            _committed, uncommitted = blob.get_block_list("uncommitted")
            return bool(uncommitted)
        return None


def make_store(name: str, request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    """A fresh, empty prefix on backend ``name`` (starting its server if needed)."""
    unique = uuid.uuid4().hex[:10]
    if name == "local":
        folder = tmp_path / f"store-{unique}"
        folder.mkdir()
        return Store(name, f"{folder}/", None)
    if name == "s3":
        endpoint = request.getfixturevalue("s3_server")
        client = s3_client(endpoint)
        env = {
            "AWS_ENDPOINT_URL_S3": endpoint,
            "AWS_ACCESS_KEY_ID": S3_ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": S3_SECRET_KEY,
            "AWS_DEFAULT_REGION": "us-east-1",
        }
        return Store(name, f"s3://{BUCKET}/{unique}/", {"client": client}, env, client)
    if name == "gcs":
        endpoint = request.getfixturevalue("gcs_server")
        client = gcs_client(endpoint)
        env = {"STORAGE_EMULATOR_HOST": endpoint, "GOOGLE_CLOUD_PROJECT": "zenmigrate-test"}
        return Store(name, f"gs://{BUCKET}/{unique}/", {"client": client}, env, client)
    connection = request.getfixturevalue("azure_server")
    from azure.storage.blob import BlobServiceClient

    client = BlobServiceClient.from_connection_string(connection)
    env = {"AZURE_STORAGE_CONNECTION_STRING": connection}
    return Store(name, f"azure://{BUCKET}/{unique}/", {"client": client}, env, client)


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    """A fresh, empty prefix on each backend in turn."""
    return make_store(str(request.param), request, tmp_path)


@pytest.fixture
def s3_store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    return make_store("s3", request, tmp_path)


@pytest.fixture
def azure_store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    return make_store("azure", request, tmp_path)


@pytest.fixture
def store_secrets() -> dict[str, str]:
    """The credentials the stores are reached with: none may reach a log or an error."""
    return {"s3_access_key": S3_ACCESS_KEY, "s3_secret_key": S3_SECRET_KEY, "azure": AZURITE_KEY}
