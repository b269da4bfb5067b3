"""Opening dump locations for streaming, with compression by suffix and atomic publishing.

Local paths and ``file://`` URIs are written to a temporary name beside the final one and
renamed into place only when the writer finished without error, so a backup that fails or
is killed never leaves a complete-looking file at the final name.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

import smart_open

from .errors import ZenMigrateError

#: Suffixes that select a compression codec; anything else is stored as is.
COMPRESSIONS = (".gz", ".zst")


class StorageNotFoundError(ZenMigrateError, FileNotFoundError):
    """The dump location does not exist."""


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


@contextmanager
def open_for_write(uri: str, transport_params: dict[str, Any] | None = None) -> Iterator[IO[bytes]]:
    """A binary stream whose contents appear at ``uri`` only if the block succeeds."""
    path = local_path(uri)
    if path is None:
        raise NotImplementedError(f"remote storage is not supported yet: {safe_uri(uri)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.partial")
    try:
        with smart_open.open(
            str(temporary),
            "wb",
            compression=compression_for(uri),
            transport_params=transport_params,
        ) as stream:
            yield stream
        with temporary.open("rb+") as done:
            os.fsync(done.fileno())
        os.replace(temporary, path)
        _fsync_folder(path.parent)
    finally:
        temporary.unlink(missing_ok=True)


@contextmanager
def open_for_read(uri: str, transport_params: dict[str, Any] | None = None) -> Iterator[IO[bytes]]:
    path = local_path(uri)
    if path is not None and not path.is_file():
        raise StorageNotFoundError(f"backup not found: {safe_uri(uri)}")
    with smart_open.open(
        uri if path is None else str(path),
        "rb",
        compression=compression_for(uri),
        transport_params=transport_params,
    ) as stream:
        yield stream


def safe_uri(uri: str) -> str:
    """The URI without any user information or query (where credentials hide)."""
    if "://" not in uri:
        return uri
    parts = urlsplit(uri)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return f"{parts.scheme}://{host}{parts.path}"


def _fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
