"""The sealed segments after the envelope: a STREAM construction over AES-256-GCM.

The plaintext is cut into segments of the envelope's ``segment_size`` (the last one shorter,
possibly empty). Segment ``i`` is sealed with AES-256-GCM (``cryptography``'s AESGCM) under
the dump's data key with

* nonce = the stream's random 7-byte prefix || ``i`` (4 bytes, big-endian) || final flag
  (1 byte: 1 for the last segment, else 0);
* associated data = the envelope binding (:meth:`.Envelope.binding`) || ``i`` (8 bytes) ||
  final flag.

This is the STREAM construction of Hoang, Reyhanitabar, Rogaway and Vizár, "Online
Authenticated-Encryption and its Nonce-Reuse Misuse-Resistance" (CRYPTO 2015), as Tink's
AES-GCM streaming AEAD and age use it: a segment moved to another place fails (its index is
in its nonce), a stream cut at a segment boundary fails (its last segment was not sealed as
final), a stream with anything after the final segment fails, and a segment of another dump
fails (another data key, another binding). Nonces never repeat: the data key is new for
each dump and the counter grows; 2**32 segments is the limit per dump.

Memory is bounded by one segment in each direction.
"""

from __future__ import annotations

import io
import struct
from typing import IO, Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..errors import DumpAuthenticationError
from .envelope import Envelope

TAG_BYTES = 16
MAX_SEGMENTS = 2**32
_NONCE_TAIL = struct.Struct(">IB")
_AAD_TAIL = struct.Struct(">QB")


class _Sealer:
    """Nonces and associated data of one stream's segments."""

    def __init__(self, envelope: Envelope, data_key: bytes) -> None:
        self._aead = AESGCM(data_key)
        self._prefix = envelope.nonce_prefix
        self._binding = envelope.binding()

    def _nonce_aad(self, index: int, final: bool) -> tuple[bytes, bytes]:
        if index >= MAX_SEGMENTS:
            raise ValueError("an encrypted dump holds at most 2**32 segments")
        flag = 1 if final else 0
        return (
            self._prefix + _NONCE_TAIL.pack(index, flag),
            self._binding + _AAD_TAIL.pack(index, flag),
        )

    def seal(self, index: int, final: bool, plaintext: bytes | memoryview) -> bytes:
        nonce, aad = self._nonce_aad(index, final)
        return self._aead.encrypt(nonce, plaintext, aad)

    def open(self, index: int, final: bool, ciphertext: bytes | memoryview) -> bytes:
        nonce, aad = self._nonce_aad(index, final)
        return self._aead.decrypt(nonce, ciphertext, aad)


class EncryptingWriter(io.RawIOBase):
    """Writes the envelope, then seals what it is given segment by segment into ``sink``.

    :meth:`finish` seals the final segment: a writer abandoned without it leaves a stream
    every reader refuses. ``close()`` does not finish (an error path closes too).
    """

    def __init__(self, sink: IO[bytes], envelope: Envelope, data_key: bytes) -> None:
        self._sink = sink
        self._sealer = _Sealer(envelope, data_key)
        self._size = envelope.segment_size
        # One segment's plaintext, filled in place and sealed straight from a view of it:
        # each byte is copied once on its way in (concatenating and slicing a growing
        # buffer copied it three times, most of encryption's cost on a fast dump).
        self._segment = bytearray(self._size)
        self._view = memoryview(self._segment)
        self._filled = 0
        self._index = 0
        self.finished = False
        sink.write(envelope.encode())

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        if self.finished:
            raise ValueError("write to a finished encrypted stream")
        incoming = memoryview(data).cast("B")
        size = len(incoming)
        taken = 0
        while taken < size:
            # A full segment is sealed only once more data comes: the final segment is
            # known only at finish().
            if self._filled == self._size:
                self._emit(self._view, final=False)
                self._filled = 0
            step = min(size - taken, self._size - self._filled)
            self._view[self._filled : self._filled + step] = incoming[taken : taken + step]
            self._filled += step
            taken += step
        return size

    def _emit(self, plaintext: memoryview, final: bool) -> None:
        self._sink.write(self._sealer.seal(self._index, final, plaintext))
        self._index += 1

    def finish(self) -> None:
        """Seal the rest as the final segment (once)."""
        if not self.finished:
            self._emit(self._view[: self._filled], final=True)
            self._filled = 0
            self.finished = True


class DecryptingReader(io.RawIOBase):
    """The plaintext of the segments read from ``raw`` (positioned after the envelope),
    each authenticated before any of its bytes is handed on."""

    def __init__(self, raw: IO[bytes], envelope: Envelope, data_key: bytes, where: str) -> None:
        self._raw = raw
        self._sealer = _Sealer(envelope, data_key)
        self._chunk = envelope.segment_size + TAG_BYTES
        self._where = where
        self._index = 0
        # One sealed segment and the first byte after it (which tells whether the segment
        # is the final one), read into place: no segment is copied before it is opened.
        self._sealed = bytearray(self._chunk + 1)
        self._held = 0  # bytes of the next segment already read (0 or 1)
        self._plain = memoryview(b"")
        self._done = False

    def readable(self) -> bool:
        return True

    def _fail(self, why: str) -> DumpAuthenticationError:
        return DumpAuthenticationError(
            f"{self._where}: encrypted dump refused at segment {self._index}: {why}"
        )

    def _next_segment(self) -> bool:
        """Decrypt the next segment into the plaintext buffer; False at the end."""
        if self._done:
            return False
        filled = self._fill()
        if filled < TAG_BYTES:
            raise self._fail("the dump ends before its final segment (truncated)")
        final = filled <= self._chunk
        sealed = memoryview(self._sealed)[: min(filled, self._chunk)]
        try:
            plain = self._sealer.open(self._index, final, sealed)
        except InvalidTag:
            raise self._fail(
                "it does not authenticate (altered, reordered, truncated or extended, or "
                "sealed under another envelope)"
            ) from None
        finally:
            sealed.release()
        if not final:
            self._sealed[0] = self._sealed[self._chunk]
            self._held = 1
        self._index += 1
        self._done = final
        self._plain = memoryview(plain)
        return True

    def _fill(self) -> int:
        """Read up to one sealed segment and one byte more after the held byte; returns how
        many bytes the buffer holds (fewer only at the end of the stream)."""
        view = memoryview(self._sealed)
        filled, self._held = self._held, 0
        readinto = getattr(self._raw, "readinto", None)
        try:
            while filled < len(view):
                if readinto is not None:
                    got = readinto(view[filled:]) or 0
                else:  # a store stream with read() only
                    piece = self._raw.read(len(view) - filled)
                    got = len(piece)
                    view[filled : filled + got] = piece
                if not got:
                    break
                filled += got
        finally:
            view.release()
        return filled

    def readinto(self, buffer: Any) -> int:
        while not self._plain:
            if not self._next_segment():
                return 0
        size = min(len(buffer), len(self._plain))
        buffer[:size] = self._plain[:size]
        self._plain = self._plain[size:]
        return size

    def drain(self) -> int:
        """Authenticate every remaining segment, keeping none; returns the plaintext bytes."""
        total = len(self._plain)
        self._plain = memoryview(b"")
        while self._next_segment():
            total += len(self._plain)
            self._plain = memoryview(b"")
        return total

    @property
    def segments(self) -> int:
        return self._index
