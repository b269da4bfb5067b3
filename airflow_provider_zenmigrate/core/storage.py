"""Opening dump locations for streaming: local files and S3, GCS and Azure Blob objects.

Every location is a URI (or a plain local path): ``/path``, ``file:///path``,
``s3://bucket/key``, ``gs://bucket/key`` (or ``gcs://``) and ``azure://container/blob``.
Compression is chosen by the suffix (``.gz``, ``.zst``, anything else is stored as is).
Bytes go through smart_open in both directions, so memory stays bounded by the part size.

Published only when complete
    :func:`open_for_write` makes the object visible at its final name only when the block
    finished without error. Local files are written to a temporary name beside the final
    one, fsynced and renamed. S3 uses a multipart upload that is completed on success and
    explicitly aborted on error (we call ``terminate()`` ourselves rather than trusting a
    context manager); GCS uses a resumable upload that is finalised only by its last chunk
    (cancelled on error); Azure stages blocks that become the blob only when the block list
    is committed (dropped on error). A process killed with SIGKILL therefore never commits:
    it leaves an incomplete multipart upload, resumable session or uncommitted blocks, all
    invisible to readers and expired by the store (configure a bucket lifecycle rule
    ``AbortIncompleteMultipartUpload`` on S3 to reclaim the space).

Clients and credentials, in this order
    1. ``transport_params["client"]`` given by the caller (a boto3 S3 client, a
       ``google.cloud.storage.Client``, an Azure ``BlobServiceClient`` or
       ``ContainerClient``); for S3 also credentials in the URI (``s3://KEY:SECRET@bucket/k``).
    2. The provider's standard environment and default chains: boto3's chain with the
       endpoint from ``AWS_ENDPOINT_URL_S3`` or ``AWS_ENDPOINT_URL`` (MinIO, Ceph, ...);
       google-auth's application default credentials (``STORAGE_EMULATOR_HOST`` is honoured
       by the client library); for Azure ``AZURE_STORAGE_CONNECTION_STRING``, else
       ``AZURE_STORAGE_ACCOUNT_URL`` (or ``AZURE_STORAGE_ACCOUNT``) with
       ``AZURE_STORAGE_KEY`` / ``AZURE_STORAGE_SAS_TOKEN`` or ``DefaultAzureCredential``.

    Other ``transport_params`` keys go to smart_open unchanged; ``min_part_size`` sets the
    multipart part size (default :data:`DEFAULT_PART_SIZE`; S3 needs at least 5 MiB, GCS a
    multiple of 256 KiB, which we round up to). GCS reads 8 MiB windows (the client's
    default is 40 MiB; ``blob_open_kwargs={"chunk_size": ...}`` changes it).

Errors name the location through :func:`safe_uri` (no user information, no query) and carry
a scrubbed message of the cause, never the cause itself, so no secret reaches a log line.
"""

from __future__ import annotations

import datetime as dt
import io
import logging
import os
import re
import sys
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, NamedTuple, cast
from urllib.parse import unquote, urlsplit

from .errors import DumpIntegrityError, ZenMigrateError

if TYPE_CHECKING:
    from types import ModuleType


def _smart_open() -> ModuleType:
    """smart_open, imported on first use: it costs about half a second of start-up (cloud
    SDK probing), which commands that never touch a dump should not pay."""
    import smart_open

    return smart_open


def compression_wrapper(stream: IO[bytes], mode: str, compression: str) -> Any:
    """The codec of ``compression`` (a suffix of :data:`COMPRESSIONS`) around a raw stream,
    buffered as smart_open's own wrapper does; written here so that a local ``.zst`` or
    ``.gz`` dump does not import smart_open."""
    if compression == ".gz":
        import gzip

        codec: Any = gzip.open(stream, mode)  # noqa: SIM115 - the caller closes it
    else:
        codec = _zstd().open(stream, mode)
    return io.BufferedWriter(codec) if "w" in mode else io.BufferedReader(codec)


def _zstd() -> ModuleType:
    if sys.version_info >= (3, 14):
        from compression import zstd
    else:
        from backports import zstd
    return zstd


logger = logging.getLogger(__name__)

#: Suffixes that select a compression codec; anything else is stored as is.
COMPRESSIONS = (".gz", ".zst")
#: Part size of multipart uploads unless ``transport_params["min_part_size"]`` says otherwise.
DEFAULT_PART_SIZE = 16 * 1024 * 1024
_GCS_CHUNK = 256 * 1024
_GCS_READ_CHUNK = 8 * 1024 * 1024
_LOCAL_READ_BUFFER = 1024 * 1024
_SCHEMES = {"file": "file", "s3": "s3", "gs": "gs", "gcs": "gs", "azure": "azure"}


class StorageError(ZenMigrateError, OSError):
    """A storage operation failed; the message names the location without credentials."""


class StorageNotFoundError(StorageError, FileNotFoundError):
    """The dump location does not exist."""


class ObjectInfo(NamedTuple):
    """One stored object: its key (a path for local files), size and modification time."""

    key: str
    size: int
    modified: dt.datetime | None


@dataclass(frozen=True)
class Location:
    """A parsed URI: ``scheme`` is ``file``, ``s3``, ``gs`` or ``azure``."""

    scheme: str
    bucket: str
    key: str
    original: str
    credentials: tuple[str, str] | None = None

    @property
    def safe(self) -> str:
        return safe_uri(self.original)

    def with_key(self, key: str) -> str:
        """The URI of another object in the same bucket (credentials dropped)."""
        if self.scheme == "file":
            return f"file://{key}" if self.original.startswith("file://") else key
        return f"{self.scheme}://{self.bucket}/{key}"

    @property
    def uri(self) -> str:
        return self.with_key(self.key)


def parse_location(uri: str) -> Location:
    if "://" not in uri:
        return Location("file", "", str(Path(uri).absolute()), uri)
    parts = urlsplit(uri)
    scheme = _SCHEMES.get(parts.scheme.lower())
    if scheme is None:
        raise StorageError(f"unsupported storage scheme {parts.scheme!r}: {safe_uri(uri)}")
    if scheme == "file":
        return Location("file", "", unquote(parts.path), uri)
    bucket = parts.hostname or ""
    credentials = None
    if parts.username is not None and parts.password is not None:
        credentials = (unquote(parts.username), unquote(parts.password))
    if not bucket:
        raise StorageError(f"no bucket in {safe_uri(uri)}")
    return Location(scheme, bucket, parts.path.lstrip("/"), uri, credentials)


def compression_for(uri: str) -> str:
    """The smart_open compression for a location, chosen by its suffix."""
    path = urlsplit(uri).path if "://" in uri else uri
    for suffix in COMPRESSIONS:
        if path.endswith(suffix):
            return suffix
    return "disable"


def local_path(uri: str) -> Path | None:
    """The file behind a local path or ``file://`` URI; ``None`` for remote URIs."""
    if uri.startswith("file://"):
        return Path(urlsplit(uri).path)
    if "://" in uri:
        return None
    return Path(uri)


def safe_uri(uri: str) -> str:
    """The URI without any user information or query (where credentials hide)."""
    if "://" not in uri:
        return uri
    parts = urlsplit(uri)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return f"{parts.scheme}://{host}{parts.path}"


_SECRETS = [
    (re.compile(r"([a-zA-Z][\w+.-]*://)[^/\s@]*@"), r"\1"),
    (re.compile(r"\?[^\s'\"<>]*"), ""),
    (
        re.compile(
            r"(?i)\b(AccountKey|SharedAccessSignature|sig|signature|secret|password|token|"
            r"credential|X-Amz-[\w-]+)=[^;&\s'\"]*"
        ),
        r"\1=***",
    ),
]


def scrub(text: str) -> str:
    """``text`` with URL user information, query strings and key=value secrets removed."""
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text[:500]


# smart_open's last word on a store it could not reach: "<repr of its call> failed after N
# attempts" (the causes only went to its log).
_GAVE_UP = re.compile(r"failed after (\d+) attempts$")


def _failure(action: str, location: Location, exc: BaseException) -> StorageError:
    kind = StorageNotFoundError if _is_not_found(exc) else StorageError
    text = str(exc)
    gave_up = _GAVE_UP.search(text) if type(exc) is OSError else None
    if gave_up:
        text = f"the store did not answer (smart_open gave up after {gave_up[1]} attempts)"
    return kind(f"{action} {location.safe} failed: {type(exc).__name__}: {scrub(text)}")


def _is_not_found(exc: BaseException) -> bool:
    if isinstance(exc, FileNotFoundError):
        return True
    code = getattr(exc, "code", None) or getattr(exc, "status_code", None)
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        error = response.get("Error", {})
        code = error.get("Code", code)
    return str(code) in {"404", "NoSuchKey", "NoSuchBucket", "NotFound"} or type(exc).__name__ in {
        "NotFound",
        "ResourceNotFoundError",
        "NoSuchKey",
        "NoSuchBucket",
    }


@contextmanager
def translated_errors(action: str, location: Location) -> Iterator[None]:
    """Turn a backend's exception into a :class:`StorageError` (only around our own calls)."""
    try:
        yield
    except ZenMigrateError:
        raise
    except Exception as exc:  # noqa: BLE001 - every backend has its own exception types
        raise _failure(action, location, exc) from None


# -- backends --------------------------------------------------------------------------------
class Backend:
    """The few operations the dump engine and the catalog need from a store."""

    def __init__(self, location: Location, transport_params: dict[str, Any] | None) -> None:
        self.location = location
        params = dict(transport_params or {})
        self.client: Any = params.pop("client", None)
        self.part_size = int(params.pop("min_part_size", DEFAULT_PART_SIZE))
        self.extra = params

    def smart_open_params(self) -> dict[str, Any]:
        return {"client": self.client, "min_part_size": self.part_size, **self.extra}

    def open_writer(self, key: str) -> Any:
        """A smart_open writer for ``key`` that commits on ``close()``."""
        return _smart_open().open(
            self.location.with_key(key),
            "wb",
            compression="disable",
            transport_params=self.smart_open_params(),
        )

    @contextmanager
    def upload(self, key: str) -> Iterator[IO[bytes]]:
        """A raw stream committed at ``key`` on success, aborted on any error."""
        writer = self.open_writer(key)
        try:
            yield writer
            writer.close()
        except BaseException:
            try:
                writer.terminate()
            except Exception as exc:  # noqa: BLE001 - the original error matters more
                logger.warning(
                    "could not abort the upload to %s: %s",
                    self.location.with_key(key),
                    scrub(str(exc)),
                )
            raise

    def open_reader(self, key: str) -> IO[bytes]:
        params = {k: v for k, v in self.smart_open_params().items() if k != "min_part_size"}
        stream: IO[bytes] = _smart_open().open(
            self.location.with_key(key), "rb", compression="disable", transport_params=params
        )
        return stream

    def stat(self, key: str) -> ObjectInfo | None:
        raise NotImplementedError

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        raise NotImplementedError

    def delete(self, key: str) -> None:
        raise NotImplementedError

    def read_bytes(self, key: str) -> bytes:
        with self.open_reader(key) as stream:
            return stream.read()

    def write_bytes(self, key: str, data: bytes) -> None:
        with self.upload(key) as stream:
            stream.write(data)


#: Bytes of a new local file after which its pages are handed to the disk (see _WrittenBehind).
_WRITE_BEHIND_BYTES = 32 * 1024 * 1024
_CAN_WRITE_BEHIND = hasattr(os, "posix_fadvise")


class _WrittenBehind(io.FileIO):
    """A new file whose pages start going to disk while it is still being written, so the
    fsync that publishes it waits for the last few only: for the 309 MB dump of 1M rows,
    5 ms instead of 90 ms on this machine's disk. POSIX_FADV_DONTNEED starts the writeback
    of the dirty pages in its range and returns; where the call is missing (macOS), the
    fsync does it all."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, "xb")
        self.written = 0
        self.handed = 0  # bytes whose writeback has started

    def write(self, data: Any) -> int:
        written = super().write(data) or 0
        self.written += written
        if _CAN_WRITE_BEHIND and self.written - self.handed >= _WRITE_BEHIND_BYTES:
            os.posix_fadvise(
                self.fileno(), self.handed, self.written - self.handed, os.POSIX_FADV_DONTNEED
            )
            self.handed = self.written
        return written


class LocalBackend(Backend):
    @contextmanager
    def upload(self, key: str) -> Iterator[IO[bytes]]:
        path = Path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.partial")
        try:
            # A local file is what smart_open would open with io.open anyway; opening it
            # directly spares a local backup or restore smart_open's import of every cloud
            # SDK it can find (about 0.3 s of start-up).
            with io.BufferedWriter(_WrittenBehind(temporary)) as stream:
                yield stream
                stream.flush()
                os.fsync(stream.fileno())
            os.replace(temporary, path)
            fsync_path(path.parent)
        finally:
            temporary.unlink(missing_ok=True)

    def open_reader(self, key: str) -> IO[bytes]:
        # Read a dump's long lines in 1 MiB pieces, not the default 8 KiB: 0.30 s against
        # 0.87 s for the 313 MB dump of 1M rows.
        return open(key, "rb", buffering=_LOCAL_READ_BUFFER)  # noqa: SIM115 - the caller closes it

    def stat(self, key: str) -> ObjectInfo | None:
        path = Path(key)
        if not path.is_file():
            return None
        st = path.stat()
        return ObjectInfo(key, st.st_size, dt.datetime.fromtimestamp(st.st_mtime, dt.UTC))

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        root = Path(prefix)
        if not (prefix.endswith("/") or root.is_dir()):
            root = root.parent
        if not root.is_dir():
            return
        for path in sorted(root.rglob("*")):
            if path.is_file() and str(path).startswith(prefix):
                info = self.stat(str(path))
                if info is not None:
                    yield info

    def delete(self, key: str) -> None:
        Path(key).unlink(missing_ok=True)


class S3Backend(Backend):
    def __init__(self, location: Location, transport_params: dict[str, Any] | None) -> None:
        super().__init__(location, transport_params)
        if self.client is None:
            import boto3

            endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
            kwargs: dict[str, Any] = {"endpoint_url": endpoint or None}
            if location.credentials is not None:
                kwargs["aws_access_key_id"], kwargs["aws_secret_access_key"] = location.credentials
            self.client = boto3.session.Session().client("s3", **kwargs)

    def stat(self, key: str) -> ObjectInfo | None:
        try:
            head = self.client.head_object(Bucket=self.location.bucket, Key=key)
        except Exception as exc:
            if _is_not_found(exc):
                return None
            raise
        return ObjectInfo(key, int(head["ContentLength"]), head.get("LastModified"))

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.location.bucket, Prefix=prefix
        )
        for page in pages:
            for item in page.get("Contents", []):
                yield ObjectInfo(item["Key"], int(item["Size"]), item.get("LastModified"))

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.location.bucket, Key=key)


class GCSBackend(Backend):
    def __init__(self, location: Location, transport_params: dict[str, Any] | None) -> None:
        super().__init__(location, transport_params)
        # Resumable uploads need chunks in multiples of 256 KiB.
        self.part_size = -(-self.part_size // _GCS_CHUNK) * _GCS_CHUNK
        if self.client is None:
            from google.cloud import storage

            self.client = storage.Client()

    def open_reader(self, key: str) -> IO[bytes]:
        # The client reads 40 MiB windows by default; a smaller one bounds memory.
        read_kwargs = {"chunk_size": _GCS_READ_CHUNK, **self.extra.get("blob_open_kwargs", {})}
        params = {"client": self.client, **self.extra, "blob_open_kwargs": read_kwargs}
        stream: IO[bytes] = _smart_open().open(
            self.location.with_key(key), "rb", compression="disable", transport_params=params
        )
        return stream

    def stat(self, key: str) -> ObjectInfo | None:
        blob = self.client.bucket(self.location.bucket).get_blob(key)
        if blob is None:
            return None
        return ObjectInfo(key, int(blob.size), blob.updated)

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        for blob in self.client.list_blobs(self.location.bucket, prefix=prefix):
            yield ObjectInfo(blob.name, int(blob.size), blob.updated)

    def delete(self, key: str) -> None:
        self.client.bucket(self.location.bucket).blob(key).delete()


class AzureBackend(Backend):
    def __init__(self, location: Location, transport_params: dict[str, Any] | None) -> None:
        super().__init__(location, transport_params)
        if self.client is None:
            self.client = _azure_client_from_environment()

    def open_writer(self, key: str) -> Any:
        params = self.smart_open_params()
        params["client"] = self._container()
        return _smart_open().open(
            self.location.with_key(key), "wb", compression="disable", transport_params=params
        )

    def _container(self) -> Any:
        if hasattr(self.client, "get_container_client"):
            return self.client.get_container_client(self.location.bucket)
        return self.client

    def stat(self, key: str) -> ObjectInfo | None:
        try:
            props = self._container().get_blob_client(key).get_blob_properties()
        except Exception as exc:
            if _is_not_found(exc):
                return None
            raise
        return ObjectInfo(key, int(props.size), props.last_modified)

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        for blob in self._container().list_blobs(name_starts_with=prefix):
            yield ObjectInfo(blob.name, int(blob.size), blob.last_modified)

    def delete(self, key: str) -> None:
        self._container().delete_blob(key)


def _azure_client_from_environment() -> Any:
    from azure.storage.blob import BlobServiceClient

    connection_string = os.environ.get("AZURE_STORAGE_CONNECTION_STRING")
    if connection_string:
        return BlobServiceClient.from_connection_string(connection_string)
    account = os.environ.get("AZURE_STORAGE_ACCOUNT")
    url = os.environ.get("AZURE_STORAGE_ACCOUNT_URL") or (
        f"https://{account}.blob.core.windows.net" if account else None
    )
    if not url:
        raise StorageError(
            "no Azure client: pass transport_params={'client': ...} or set "
            "AZURE_STORAGE_CONNECTION_STRING or AZURE_STORAGE_ACCOUNT_URL"
        )
    credential: Any = os.environ.get("AZURE_STORAGE_SAS_TOKEN")
    key = os.environ.get("AZURE_STORAGE_KEY")
    if key and account:
        credential = {"account_name": account, "account_key": key}
    if credential is None:
        try:
            from azure.identity import DefaultAzureCredential
        except ImportError:
            raise StorageError(
                "no Azure credential: set AZURE_STORAGE_KEY or AZURE_STORAGE_SAS_TOKEN, "
                "or install azure-identity for DefaultAzureCredential"
            ) from None
        credential = DefaultAzureCredential()
    return BlobServiceClient(account_url=url, credential=credential)


_BACKENDS: dict[str, type[Backend]] = {
    "file": LocalBackend,
    "s3": S3Backend,
    "gs": GCSBackend,
    "azure": AzureBackend,
}


def backend_for(uri: str | Location, transport_params: dict[str, Any] | None = None) -> Backend:
    """The backend for a location, with its client resolved (see the module docstring)."""
    location = uri if isinstance(uri, Location) else parse_location(uri)
    with translated_errors("connecting to", location):
        return _BACKENDS[location.scheme](location, transport_params)


# -- streaming -------------------------------------------------------------------------------
class _Sink(io.RawIOBase):
    """What the dump (or its compressor) writes into: forwards to the upload until the upload
    is abandoned, and turns the upload's errors (disk full, store gone) into storage errors
    that name the location."""

    def __init__(self, target: IO[bytes], location: Location) -> None:
        self.target = target
        self.location = location
        self.abandoned = False

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        size = len(data)
        if not self.abandoned:
            with translated_errors("writing", self.location):
                self.target.write(data)
        return size


@contextmanager
def open_for_write(uri: str, transport_params: dict[str, Any] | None = None) -> Iterator[IO[bytes]]:
    """A binary stream whose contents appear at ``uri`` only if the block succeeds."""
    backend = backend_for(uri, transport_params)
    location = backend.location
    with translated_errors("opening for writing", location):
        upload = backend.upload(location.key)
        raw = upload.__enter__()
    compression = compression_for(uri)
    sink = _Sink(raw, location)
    stream: IO[bytes] = (
        cast(IO[bytes], sink)
        if compression == "disable"
        else compression_wrapper(cast(IO[bytes], sink), "wb", compression)
    )
    try:
        yield stream
        stream.close()  # the compressor's last frame goes in; closing the sink commits nothing
    except BaseException as exc:
        sink.abandoned = True
        with suppress(Exception):
            stream.close()
        try:
            upload.__exit__(type(exc), exc, exc.__traceback__)
        except Exception as cleanup:  # noqa: BLE001 - e.g. a full disk again on close
            if cleanup is not exc:  # the first error says what went wrong; keep it
                logger.warning("abandoning %s: %s", location.safe, scrub(str(cleanup)))
        raise
    with translated_errors("publishing", location):
        upload.__exit__(None, None, None)
    logger.debug("published %s", location.safe)


@contextmanager
def open_for_read(uri: str, transport_params: dict[str, Any] | None = None) -> Iterator[IO[bytes]]:
    """A binary stream of the (decompressed) contents at ``uri``.

    Raises:
        StorageNotFoundError: If nothing (complete) exists at ``uri``.
    """
    backend = backend_for(uri, transport_params)
    location = backend.location
    with translated_errors("opening", location):
        if backend.stat(location.key) is None:
            raise StorageNotFoundError(f"backup not found: {location.safe}")
        raw = backend.open_reader(location.key)
    compression = compression_for(uri)
    with raw:
        if compression == "disable":
            yield cast(IO[bytes], _Decompressed(raw, location))
        else:
            with compression_wrapper(raw, "rb", compression) as stream:
                yield cast(IO[bytes], _Decompressed(stream, location))


def _decompression_errors() -> tuple[type[BaseException], ...]:
    import gzip
    import zlib

    return (EOFError, gzip.BadGzipFile, zlib.error, _zstd().ZstdError)


class _Decompressed:
    """A (decompressing) reader whose codec errors are the engine's integrity errors and
    whose transport errors (store gone mid-stream) are storage errors naming the location."""

    def __init__(self, stream: IO[bytes], location: Location) -> None:
        self._stream = stream
        self._location = location
        self._errors = _decompression_errors()

    def _fail(self, exc: BaseException) -> DumpIntegrityError:
        return DumpIntegrityError(
            f"{self._location.safe}: the compressed stream is truncated or corrupt "
            f"({type(exc).__name__}: {exc})"
        )

    def read(self, size: int = -1) -> bytes:
        return self._checked(self._stream.read, size)

    def readline(self, size: int = -1) -> bytes:
        return self._checked(self._stream.readline, size)

    def _checked(self, method: Callable[[int], bytes], size: int) -> bytes:
        """A read whose corrupt compression or backend failure names the dump."""
        with translated_errors("reading", self._location):
            try:
                return method(size)
            except self._errors as exc:
                raise self._fail(exc) from None


def fsync_path(path: Path) -> None:
    """Flush a file, or a folder's entries (after a rename), to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
