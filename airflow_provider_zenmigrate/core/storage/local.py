"""Local files: written under a temporary name beside the final one, fsynced and renamed, so
a dump appears only when complete; opened directly, never through smart_open."""

from __future__ import annotations

import datetime as dt
import io
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from .base import Backend, ObjectInfo

#: Bytes of a new local file after which its pages are handed to the disk (see _WrittenBehind).
_WRITE_BEHIND_BYTES = 32 * 1024 * 1024
_CAN_WRITE_BEHIND = hasattr(os, "posix_fadvise")
#: A dump's lines are long: read them in 1 MiB pieces, not the default 8 KiB (a third of the
#: time; see docs/performance.md).
_LOCAL_READ_BUFFER = 1024 * 1024


class _WrittenBehind(io.FileIO):
    """A new file whose pages start going to disk while it is still being written, so the
    fsync that publishes it waits for the last few only (see docs/performance.md).
    POSIX_FADV_DONTNEED starts the writeback of the dirty pages in its range and returns;
    where the call is missing (macOS), the fsync does it all."""

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
    """Files on a local (or mounted) file system; keys are absolute paths."""

    @contextmanager
    def upload(self, key: str) -> Iterator[IO[bytes]]:
        path = Path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.partial")
        try:
            # What smart_open would open with io.open anyway; opening it directly spares a
            # local backup or restore smart_open's import of every cloud SDK it can find.
            with io.BufferedWriter(_WrittenBehind(temporary)) as stream:
                yield stream
                stream.flush()
                os.fsync(stream.fileno())
            os.replace(temporary, path)
            fsync_path(path.parent)
        finally:
            temporary.unlink(missing_ok=True)

    def open_reader(self, key: str) -> IO[bytes]:
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


def fsync_path(path: Path) -> None:
    """Flush a file, or a folder's entries (after a rename), to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
