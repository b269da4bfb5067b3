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

from importlib import import_module
from typing import TYPE_CHECKING, Any

# The envelope is plain bytes and JSON (no cryptography): imported at once.
from .envelope import (
    DEFAULT_SEGMENT_SIZE,
    MAGIC,
    VERSION,
    Envelope,
    WrappedKey,
    envelope_from_json,
)

if TYPE_CHECKING:
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

# Each name whose module imports ``cryptography`` (~30 ms), and that module: imported on
# first use (PEP 562), so that importing this package, as storage and the catalog do for
# every dump, costs an unencrypted backup nothing (issue 27).
_LAZY_MODULES = {
    "AwsKmsKey": ".keys",
    "AzureKeyVaultKey": ".keys",
    "GcpKmsKey": ".keys",
    "KeyProvider": ".keys",
    "LocalKey": ".keys",
    "Encryption": ".policy",
    "SharedKey": ".policy",
    "missing_key": ".policy",
    "read_envelope": ".policy",
    "sniff": ".policy",
    "DecryptingReader": ".segments",
    "EncryptingWriter": ".segments",
}


def __getattr__(name: str) -> Any:
    """Import a lazily exported name on first use, then keep it as a module attribute."""
    module = _LAZY_MODULES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
