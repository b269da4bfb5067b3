"""Opening a dump as a stream: written so that it appears at its final name only when the
block finished without error, read with its codec's and its store's errors named after the
dump. Memory stays bounded by the part size in both directions."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import IO, Any, cast

from ..errors import DumpIntegrityError, StorageNotFoundError
from .backends import backend_for
from .base import logger
from .compression import compression_for, compression_wrapper, decompression_errors
from .failures import translated_errors
from .locations import Location, scrub


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


class _Decompressed:
    """A (decompressing) reader whose codec errors are the engine's integrity errors and
    whose transport errors (store gone mid-stream) are storage errors naming the location."""

    def __init__(self, stream: IO[bytes], location: Location) -> None:
        self._stream = stream
        self._location = location
        self._errors = decompression_errors()

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
