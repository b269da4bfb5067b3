"""The unencrypted envelope header at the start of an encrypted dump.

Layout: :data:`MAGIC` (8 bytes), the envelope version (2 bytes, big-endian), the length of
the JSON that follows (4 bytes, big-endian) and that JSON. The JSON says how the segments
were sealed (algorithm, segment size, per-stream id and nonce prefix), when, and how the
data key is wrapped (``key``: provider kind, key id, wrapping, wrapped key). It says nothing
about the data: no database, table or row count.

Everything but ``key`` is bound into every segment's associated data (:meth:`Envelope.binding`),
so a changed algorithm, segment size, stream id or creation time makes every segment fail;
``key`` is left out so that ``rekey`` can replace it and keep the segments.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
import struct
from dataclasses import dataclass
from typing import Any

from ..errors import DumpFormatError

#: First bytes of an encrypted dump: a non-ASCII byte first, so no JSON Lines dump, gzip
#: (1f 8b) or zstd (28 b5 2f fd) stream starts with it.
MAGIC = b"\x93ZMENC\r\n"
#: The one envelope version this package writes and reads.
VERSION = 1
ALGORITHM = "AES-256-GCM-STREAM"
DEFAULT_SEGMENT_SIZE = 1024 * 1024
#: Segment sizes a reader accepts: a forged header cannot make it allocate more.
MIN_SEGMENT_SIZE = 4 * 1024
MAX_SEGMENT_SIZE = 16 * 1024 * 1024
#: The envelope's JSON is small; anything larger is not ours.
MAX_JSON_BYTES = 64 * 1024
STREAM_ID_BYTES = 16
NONCE_PREFIX_BYTES = 7
_FIXED = struct.Struct(">HI")
PREAMBLE_BYTES = len(MAGIC) + _FIXED.size


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(value: Any, what: str) -> bytes:
    try:
        return base64.b64decode(str(value), validate=True)
    except ValueError:
        raise DumpFormatError(f"encrypted dump: envelope field {what!r} is not base64") from None


@dataclass(frozen=True)
class WrappedKey:
    """A data key as a key provider wrapped it: the provider's kind, the key-encryption
    key's id (a fingerprint or a KMS key ARN, never key material), the wrapping and the
    wrapped bytes."""

    provider: str
    key_id: str
    wrap: str
    wrapped: bytes

    def to_json(self) -> dict[str, str]:
        return {
            "provider": self.provider,
            "key_id": self.key_id,
            "wrap": self.wrap,
            "wrapped": _b64(self.wrapped),
        }

    @classmethod
    def from_json(cls, data: Any) -> WrappedKey:
        if not isinstance(data, dict):
            raise DumpFormatError("encrypted dump: the envelope's 'key' is not an object")
        try:
            return cls(
                provider=str(data["provider"]),
                key_id=str(data["key_id"]),
                wrap=str(data["wrap"]),
                wrapped=_unb64(data["wrapped"], "key.wrapped"),
            )
        except KeyError as exc:
            raise DumpFormatError(f"encrypted dump: the envelope's key lacks {exc}") from None


@dataclass(frozen=True)
class Envelope:
    """The public header of one encrypted dump."""

    key: WrappedKey
    stream_id: bytes
    nonce_prefix: bytes
    segment_size: int = DEFAULT_SEGMENT_SIZE
    created_at: str = ""
    algorithm: str = ALGORITHM
    version: int = VERSION

    @classmethod
    def new(cls, key: WrappedKey, segment_size: int = DEFAULT_SEGMENT_SIZE) -> Envelope:
        """A fresh envelope: random stream id and nonce prefix, the current time."""
        check_segment_size(segment_size)
        return cls(
            key=key,
            stream_id=os.urandom(STREAM_ID_BYTES),
            nonce_prefix=os.urandom(NONCE_PREFIX_BYTES),
            segment_size=segment_size,
            created_at=dt.datetime.now(dt.UTC).isoformat(),
        )

    def _bound_fields(self) -> dict[str, Any]:
        return {
            "algorithm": self.algorithm,
            "segment_size": self.segment_size,
            "stream_id": _b64(self.stream_id),
            "nonce_prefix": _b64(self.nonce_prefix),
            "created_at": self.created_at,
        }

    def public(self) -> dict[str, Any]:
        """The envelope as ``inspect`` shows it (no key material is in it)."""
        return {"version": self.version, **self._bound_fields(), "key": self.key.to_json()}

    def binding(self) -> bytes:
        """What every segment's associated data starts with: a digest of the envelope
        without its ``key``, so the segments stay valid when only the key is re-wrapped."""
        canonical = json.dumps(self._bound_fields(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(b"zenmigrate-envelope\x00" + canonical.encode()).digest()

    def encode(self) -> bytes:
        body = json.dumps(self.public(), sort_keys=True, separators=(",", ":")).encode()
        return MAGIC + _FIXED.pack(self.version, len(body)) + body

    def rewrapped(self, key: WrappedKey) -> Envelope:
        """The same envelope with another wrapped key (``rekey``)."""
        return Envelope(
            key=key,
            stream_id=self.stream_id,
            nonce_prefix=self.nonce_prefix,
            segment_size=self.segment_size,
            created_at=self.created_at,
            algorithm=self.algorithm,
            version=self.version,
        )


def check_segment_size(size: int) -> None:
    if not isinstance(size, int) or not MIN_SEGMENT_SIZE <= size <= MAX_SEGMENT_SIZE:
        raise ValueError(
            f"segment size must be a whole number of bytes from {MIN_SEGMENT_SIZE} to "
            f"{MAX_SEGMENT_SIZE}, not {size!r}"
        )


def read_exactly(stream: Any, size: int) -> bytes:
    """``size`` bytes, fewer only at the end of the stream (a store may return short reads)."""
    pieces: list[bytes] = []
    wanted = size
    while wanted > 0:
        piece = stream.read(wanted)
        if not piece:
            break
        pieces.append(piece)
        wanted -= len(piece)
    return pieces[0] if len(pieces) == 1 else b"".join(pieces)


def parse_envelope(preamble: bytes, stream: Any, where: str) -> Envelope:
    """The envelope whose first :data:`PREAMBLE_BYTES` are ``preamble`` (starting with
    :data:`MAGIC`); the rest of its JSON is read from ``stream``."""
    if len(preamble) < PREAMBLE_BYTES:
        raise DumpFormatError(f"{where}: encrypted dump cut off inside its envelope")
    version, length = _FIXED.unpack(preamble[len(MAGIC) :])
    if version != VERSION:
        raise DumpFormatError(
            f"{where}: encrypted dump of envelope version {version}; this package reads "
            f"version {VERSION} (a newer zenmigrate wrote it?)"
        )
    if length > MAX_JSON_BYTES:
        raise DumpFormatError(f"{where}: encrypted dump with an envelope of {length} bytes")
    body = read_exactly(stream, length)
    if len(body) < length:
        raise DumpFormatError(f"{where}: encrypted dump cut off inside its envelope")
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise DumpFormatError(
            f"{where}: encrypted dump with a malformed envelope ({exc})"
        ) from None
    return envelope_from_json(data, where, version)


def envelope_from_json(data: Any, where: str, version: int = VERSION) -> Envelope:
    """The envelope whose public JSON (:meth:`Envelope.public`) is ``data``, checked as a
    dump's is (a multi-part dump's manifest carries one)."""
    if version != VERSION or (isinstance(data, dict) and data.get("version", VERSION) != VERSION):
        raise DumpFormatError(
            f"{where}: an envelope of an unknown version; this package reads {VERSION}"
        )
    try:
        if data["algorithm"] != ALGORITHM:
            raise DumpFormatError(
                f"{where}: encrypted with {data['algorithm']!r}; this package reads {ALGORITHM}"
            )
        size = data["segment_size"]
        check_segment_size(size)
        envelope = Envelope(
            key=WrappedKey.from_json(data["key"]),
            stream_id=_unb64(data["stream_id"], "stream_id"),
            nonce_prefix=_unb64(data["nonce_prefix"], "nonce_prefix"),
            segment_size=size,
            created_at=str(data["created_at"]),
            version=version,
        )
    except DumpFormatError:
        raise
    except (ValueError, KeyError, TypeError) as exc:
        raise DumpFormatError(
            f"{where}: encrypted dump with a malformed envelope ({type(exc).__name__}: {exc})"
        ) from None
    if (
        len(envelope.stream_id) != STREAM_ID_BYTES
        or len(envelope.nonce_prefix) != NONCE_PREFIX_BYTES
    ):
        raise DumpFormatError(f"{where}: encrypted dump with a malformed stream id or nonce")
    return envelope
