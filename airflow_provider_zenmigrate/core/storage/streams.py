"""Opening a dump as a stream: written so that it appears at its final name only when the
block finished without error, read with its codec's and its store's errors named after the
dump. Memory stays bounded by the part size in both directions.

Encryption (:mod:`..crypto`) sits between the codec and the store: written, a dump is
compressed, then encrypted; read, it is decrypted, then decompressed. An encrypted dump is
recognised by its first bytes, whatever its name; a plaintext dump read with keys is read
as plaintext unless the encryption requires otherwise."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from typing import IO, TYPE_CHECKING, Any, cast

from ..errors import DumpIntegrityError, EncryptionKeyError, StorageNotFoundError
from .backends import backend_for
from .base import Backend, logger
from .compression import compression_for, compression_wrapper, decompression_errors
from .failures import translated_errors
from .locations import Location, scrub

if TYPE_CHECKING:
    # Imported where a dump is sealed or read: the crypto stack imports ``cryptography``,
    # which an unencrypted backup never needs (issue 27).
    from ..crypto import DecryptingReader, Encryption, Envelope


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
def open_for_write(
    uri: str,
    transport_params: dict[str, Any] | None = None,
    *,
    encryption: Encryption | None = None,
) -> Iterator[IO[bytes]]:
    """A binary stream whose contents appear at ``uri`` only if the block succeeds;
    encrypted when ``encryption`` has a key (its data key is wrapped, and a key service
    that cannot be reached fails, before anything is opened at ``uri``)."""
    if encryption is not None and encryption.require and not encryption.encrypts:
        raise EncryptionKeyError("encryption is required, and no key to encrypt with was given")
    sealing = encryption.seal_new() if encryption is not None and encryption.encrypts else None
    backend = backend_for(uri, transport_params)
    location = backend.location
    with translated_errors("opening for writing", location):
        upload = backend.upload(location.key)
        raw = upload.__enter__()
    compression = compression_for(uri)
    sink = _Sink(raw, location)
    sealed = None
    if sealing is not None:
        from ..crypto.segments import EncryptingWriter

        sealed = EncryptingWriter(cast(IO[bytes], sink), *sealing)
    below = cast(IO[bytes], sealed if sealed is not None else sink)
    stream: IO[bytes] = below
    try:
        if compression != "disable":
            stream = compression_wrapper(below, "wb", compression)
        yield stream
        stream.close()  # the compressor's last frame goes in; closing the sink commits nothing
        if sealed is not None:
            sealed.finish()  # the final segment: only a stream that ends here is whole
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
def open_for_read(
    uri: str,
    transport_params: dict[str, Any] | None = None,
    *,
    encryption: Encryption | None = None,
    authenticate_first: bool = False,
) -> Iterator[IO[bytes]]:
    """A binary stream of the (decrypted, decompressed) contents at ``uri``.

    An encrypted dump needs a key of ``encryption`` that unwraps its data key. With
    ``authenticate_first``, every segment of an encrypted dump is decrypted and
    authenticated (and dropped) before the stream is handed out, so a reader that acts on
    the contents as they come (a restore) sees none of a dump that would later fail; the
    second read must find the same stream (its stream id).

    Raises:
        StorageNotFoundError: If nothing (complete) exists at ``uri``.
        MissingKeyError: If the dump is encrypted and ``encryption`` has no keys.
        EncryptionRequiredError: If it is plaintext and ``encryption.require`` is set.
    """
    backend = backend_for(uri, transport_params)
    location = backend.location
    with translated_errors("opening", location):
        if backend.stat(location.key) is None:
            raise StorageNotFoundError(f"backup not found: {location.safe}")
    with ExitStack() as opened:
        raw, envelope, reader = opened.enter_context(_opened(backend, location, encryption))
        if authenticate_first and envelope is not None and reader is not None:
            with translated_errors("reading", location):
                reader.drain()
            first = envelope.stream_id
            opened.close()
            raw, envelope, reader = opened.enter_context(_opened(backend, location, encryption))
            if envelope is None or envelope.stream_id != first:
                raise DumpIntegrityError(f"{location.safe}: the dump changed while it was read")
        compression = compression_for(uri)
        sealed = envelope is not None
        if compression == "disable":
            yield cast(IO[bytes], _Decompressed(raw, location, sealed))
        else:
            with compression_wrapper(raw, "rb", compression) as stream:
                yield cast(IO[bytes], _Decompressed(stream, location, sealed))


def authenticated(stream: IO[bytes]) -> bool:
    """Whether ``stream`` (from :func:`open_for_read`) is an encrypted dump read under a key
    the caller gave: its segments authenticate under that key (the last one by the time
    the stream was read to its end, all of them first with ``authenticate_first``)."""
    return isinstance(stream, _Decompressed) and stream.authenticated


def envelope_at(uri: str, transport_params: dict[str, Any] | None = None) -> Envelope | None:
    """The public envelope of the encrypted dump at ``uri`` (its first bytes only);
    ``None`` for a plaintext dump. What ``inspect`` shows without the key."""
    from ..crypto.policy import sniff

    backend = backend_for(uri, transport_params)
    location = backend.location
    with translated_errors("opening", location):
        if backend.stat(location.key) is None:
            raise StorageNotFoundError(f"backup not found: {location.safe}")
        raw = backend.open_reader(location.key)
    with raw, translated_errors("reading", location):
        return sniff(raw, location.safe)[1]


@contextmanager
def _opened(
    backend: Backend, location: Location, encryption: Encryption | None
) -> Iterator[tuple[IO[bytes], Envelope | None, DecryptingReader | None]]:
    """The stored bytes at ``location`` as the codec reads them, with the envelope and
    the decrypting reader when they start with an envelope (decrypted, behind a buffer)."""
    from ..crypto.policy import check_plaintext_allowed, missing_key, sniff

    with translated_errors("opening", location):
        raw = backend.open_reader(location.key)
    with raw:
        with translated_errors("reading", location):
            stream, envelope = sniff(raw, location.safe)
        if envelope is None:
            check_plaintext_allowed(encryption, location.safe)
            yield stream, None, None
            return
        if encryption is None:
            raise missing_key(envelope, location.safe)
        from ..crypto.segments import DecryptingReader

        data_key = encryption.unwrap(envelope, location.safe)
        reader = DecryptingReader(stream, envelope, data_key, location.safe)
        buffered = io.BufferedReader(reader, envelope.segment_size)
        yield cast(IO[bytes], buffered), envelope, reader


class _Decompressed:
    """A (decompressing) reader whose codec errors are the engine's integrity errors and
    whose transport errors (store gone mid-stream) are storage errors naming the location."""

    def __init__(self, stream: IO[bytes], location: Location, authenticated: bool) -> None:
        self._stream = stream
        self.authenticated = authenticated
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
