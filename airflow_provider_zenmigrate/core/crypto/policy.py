"""What a caller asks of encryption (:class:`Encryption`), and the steps storage takes with it:
wrap a new data key before anything is written, recognise an encrypted dump by its first
bytes, unwrap its key with a provider that can, and refuse plaintext when asked to."""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from typing import IO, Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ..errors import (
    DumpAuthenticationError,
    DumpFormatError,
    EncryptionKeyError,
    EncryptionRequiredError,
    MissingKeyError,
)
from .envelope import (
    DEFAULT_SEGMENT_SIZE,
    MAGIC,
    PREAMBLE_BYTES,
    Envelope,
    WrappedKey,
    check_segment_size,
    parse_envelope,
    read_exactly,
)
from .keys import KeyProvider, new_data_key


class Encryption:
    """Keys and rules for the dumps one caller writes and reads.

    ``keys``: the first wraps the data keys of new dumps; any of them may unwrap a dump's
    (a local key by its id, KMS by its service), so an old key can be listed during a
    rotation. ``require``: refuse to read a plaintext dump (by default a plaintext dump is
    read as such, with or without keys). ``segment_size``: plaintext bytes per sealed
    segment, the memory bound of reading and writing.
    """

    def __init__(
        self,
        keys: KeyProvider | Iterable[KeyProvider] = (),
        *,
        require: bool = False,
        segment_size: int = DEFAULT_SEGMENT_SIZE,
    ) -> None:
        listed: Sequence[KeyProvider] = (keys,) if isinstance(keys, KeyProvider) else tuple(keys)
        for key in listed:
            if not isinstance(key, KeyProvider):
                raise TypeError(f"encryption keys are key providers, not {type(key).__name__}")
        check_segment_size(segment_size)
        self.keys: tuple[KeyProvider, ...] = tuple(listed)
        self.require = require
        self.segment_size = segment_size

    def __repr__(self) -> str:
        return f"Encryption(keys={list(self.keys)!r}, require={self.require})"

    @property
    def encrypts(self) -> bool:
        """Whether new dumps are encrypted (a key is given)."""
        return bool(self.keys)

    def seal_new(self) -> tuple[Envelope, bytes]:
        """A new data key and the envelope carrying it wrapped by the first key (the key
        service is called here, before anything is written)."""
        if not self.keys:
            raise EncryptionKeyError("no key to encrypt with: give a local key or a KMS key")
        data_key = new_data_key()
        return Envelope.new(self.keys[0].wrap(data_key), self.segment_size), data_key

    def unwrap(self, envelope: Envelope, where: str) -> bytes:
        """The data key of ``envelope``, from the first provider that can unwrap it."""
        wrapped = envelope.key
        for key in self.keys:
            if key.can_unwrap(wrapped):
                return key.unwrap(wrapped)
        if not self.keys:
            raise missing_key(envelope, where)
        ids = ", ".join(f"{k.kind} {k.key_id}" for k in self.keys)
        raise EncryptionKeyError(
            f"{where}: its data key is wrapped by {wrapped.provider} key {wrapped.key_id}, "
            f"which is not among the keys given ({ids})"
        )

    def share(self) -> SharedKey:
        """One new data key for every stream of one backup (the parts of a multi-part
        dump), wrapped once by the first key (the key service is called here)."""
        envelope, data_key = self.seal_new()
        return SharedKey(envelope.key, data_key, segment_size=self.segment_size)

    def shared(self, envelope: Envelope, where: str) -> SharedKey:
        """The data key ``envelope`` wraps, unwrapped once, for every stream of its backup."""
        data_key = self.unwrap(envelope, where)
        return SharedKey(envelope.key, data_key, segment_size=envelope.segment_size)


class SharedKey(Encryption):
    """The one data key of a multi-part backup, already unwrapped. Each part has an
    envelope of its own (its own random stream id and nonce prefix, the same wrapped key)
    and is sealed under a key of its own, HKDF-SHA-256(data key, info "zenmigrate part v1"
    || its stream id), so no two parts share a segment key and nonces cannot repeat across
    parts. A part is read only when its envelope carries the backup's wrapped key;
    plaintext parts are refused. The key is never in ``repr``."""

    def __init__(
        self, wrapped: WrappedKey, data_key: bytes, *, segment_size: int = DEFAULT_SEGMENT_SIZE
    ) -> None:
        super().__init__((), require=True, segment_size=segment_size)
        self.wrapped = wrapped
        self._data_key = data_key

    def __repr__(self) -> str:
        return f"SharedKey({self.wrapped.provider} key {self.wrapped.key_id})"

    @property
    def encrypts(self) -> bool:
        return True

    @property
    def data_key(self) -> bytes:
        return self._data_key

    def seal_new(self) -> tuple[Envelope, bytes]:
        envelope = Envelope.new(self.wrapped, self.segment_size)
        return envelope, self._stream_key(envelope)

    def unwrap(self, envelope: Envelope, where: str) -> bytes:
        if envelope.key != self.wrapped:
            raise DumpAuthenticationError(
                f"{where}: its data key is not its backup's (a part of another backup?)"
            )
        return self._stream_key(envelope)

    def _stream_key(self, envelope: Envelope) -> bytes:
        return HKDF(
            algorithm=hashes.SHA256(),
            length=len(self._data_key),
            salt=None,
            info=b"zenmigrate part v1" + envelope.stream_id,
        ).derive(self._data_key)


def missing_key(envelope: Envelope, where: str) -> MissingKeyError:
    wrapped = envelope.key
    return MissingKeyError(
        f"{where} is encrypted ({wrapped.provider} key {wrapped.key_id}): it cannot be read "
        "or verified without its key (--key-env / --kms-key-id, or encryption=...)",
        envelope.public(),
    )


class _Replayed(io.RawIOBase):
    """A stream whose first bytes were already read: gives them back, then the rest."""

    def __init__(self, head: bytes, rest: IO[bytes]) -> None:
        self._head = memoryview(head)
        self._rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._head:
            size = min(len(buffer), len(self._head))
            buffer[:size] = self._head[:size]
            self._head = self._head[size:]
            return size
        data = self._rest.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def sniff(raw: IO[bytes], where: str) -> tuple[IO[bytes], Envelope | None]:
    """``raw`` as it should be read on, and its envelope if it is an encrypted dump (the
    stream is then positioned after the envelope)."""
    peek = getattr(raw, "peek", None)
    if peek is not None:  # a buffered local file: look without consuming (no extra copy)
        seen = peek(len(MAGIC))[: len(MAGIC)]
        if len(seen) == len(MAGIC) and seen != MAGIC:
            return raw, None
    head = read_exactly(raw, len(MAGIC))
    if head != MAGIC:
        return io.BufferedReader(_Replayed(head, raw), 1024 * 1024), None
    preamble = head + read_exactly(raw, PREAMBLE_BYTES - len(MAGIC))
    return raw, parse_envelope(preamble, raw, where)


def check_plaintext_allowed(encryption: Encryption | None, where: str) -> None:
    if encryption is not None and encryption.require:
        raise EncryptionRequiredError(
            f"{where} is not encrypted, and an encrypted dump is required"
        )


def read_envelope(raw: IO[bytes], where: str) -> Envelope:
    """The envelope at the start of ``raw``; a plaintext dump is a format error."""
    _stream, envelope = sniff(raw, where)
    if envelope is None:
        raise DumpFormatError(f"{where} is not an encrypted dump")
    return envelope
