"""Encrypted, authenticated dumps: an envelope header, then AES-256-GCM sealed segments.

An encrypted dump is the (compressed) dump stream, encrypted: storage compresses first,
then encrypts, so the object is ``envelope || segment 0 || ... || final segment``.

* :mod:`.envelope`: the unencrypted header (format version, algorithm, segment size,
  per-stream id and nonce prefix, creation time, the wrapped data key and its key id).
* :mod:`.segments`: the STREAM construction over AES-256-GCM, streamed both ways with
  memory bounded by one segment.
* :mod:`.keys`: key-encryption keys (a local 32-byte key, AWS KMS) that wrap each
  dump's own random data key.
* :mod:`.policy`: :class:`Encryption`, what a caller gives (keys, ``require``).
Re-wrapping a stored dump's data key (``rekey``) is :mod:`..rekey`.

No module here imports Airflow.
"""

from __future__ import annotations

from .envelope import (
    DEFAULT_SEGMENT_SIZE,
    MAGIC,
    VERSION,
    Envelope,
    WrappedKey,
    envelope_from_json,
)
from .keys import AwsKmsKey, AzureKeyVaultKey, GcpKmsKey, KeyProvider, LocalKey
from .policy import Encryption, SharedKey, missing_key, read_envelope, sniff
from .segments import DecryptingReader, EncryptingWriter

__all__ = [
    "DEFAULT_SEGMENT_SIZE",
    "MAGIC",
    "VERSION",
    "AwsKmsKey",
    "AzureKeyVaultKey",
    "DecryptingReader",
    "EncryptingWriter",
    "Encryption",
    "Envelope",
    "GcpKmsKey",
    "KeyProvider",
    "LocalKey",
    "SharedKey",
    "WrappedKey",
    "envelope_from_json",
    "missing_key",
    "read_envelope",
    "sniff",
]
