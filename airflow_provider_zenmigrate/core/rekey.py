"""``rekey``: wrap an encrypted dump's data key under another key-encryption key.

The data is not re-encrypted: a new object is written with the new envelope (same stream
id, nonce prefix, segment size and creation time; another wrapped key) followed by the
same sealed segments, and published in place of the old one only once complete (the
store's "published only when complete" rule). The segments are authenticated as they are
copied, so a dump that was altered is refused and left as it was. A manifest beside the
dump gets the new size, so listings keep finding it.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import IO, Any, cast

from .catalog import MANIFEST_FORMAT, manifest_key
from .crypto import DecryptingReader, Encryption, Envelope, sniff
from .errors import DumpFormatError, EncryptionKeyError, StorageNotFoundError
from .parts.layout import is_multipart
from .sealed_manifests import is_sealed, public_encryption
from .storage import backend_for, translated_errors

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RekeyResult:
    """What ``rekey`` did: the dump, the key ids before and after, its new size."""

    uri: str
    old_key_id: str
    new_key_id: str
    size: int
    segments: int


class _Copied:
    """A reader that writes every byte it reads to ``out`` (the new object)."""

    def __init__(self, source: IO[bytes], out: IO[bytes]) -> None:
        self._source = source
        self._out = out

    def read(self, size: int = -1) -> bytes:
        data = self._source.read(size)
        if data:
            self._out.write(data)
        return data


def rekey_backup(
    uri: str,
    old: Encryption,
    new: Encryption,
    transport_params: dict[str, Any] | None = None,
) -> RekeyResult:
    """Re-wrap the data key of the encrypted dump at ``uri``: unwrapped with a key of
    ``old``, wrapped with the first key of ``new`` (its key service is called before
    anything is written).

    Raises:
        StorageNotFoundError: If nothing exists at ``uri``.
        DumpFormatError: If the dump is not encrypted (or is a multi-part dump).
        EncryptionKeyError: If ``old`` cannot unwrap it or ``new`` has no key.
        DumpAuthenticationError: If a segment does not authenticate (nothing changed).
    """
    if not new.encrypts:
        raise EncryptionKeyError("rekey needs a new key to wrap the data key with")
    if is_multipart(uri, transport_params):
        raise DumpFormatError(
            "multi-part dumps cannot be rekeyed yet (every part's envelope would be rewritten)"
        )
    backend = backend_for(uri, transport_params)
    location = backend.location
    with translated_errors("opening", location):
        if backend.stat(location.key) is None:
            raise StorageNotFoundError(f"backup not found: {location.safe}")
        raw = backend.open_reader(location.key)
    with raw:
        with translated_errors("reading", location):
            stream, envelope = sniff(raw, location.safe)
        if envelope is None:
            raise DumpFormatError(f"{location.safe} is not encrypted: there is no key to rewrap")
        data_key = old.unwrap(envelope, location.safe)
        rewrapped = envelope.rewrapped(new.keys[0].wrap(data_key))
        with translated_errors("opening for writing", location):
            upload = backend.upload(location.key)
        with upload as out:
            out.write(rewrapped.encode())
            copied = cast(IO[bytes], _Copied(stream, out))
            reader = DecryptingReader(copied, envelope, data_key, location.safe)
            with translated_errors("reading", location):
                reader.drain()
    with translated_errors("describing", location):
        info = backend.stat(location.key)
        size = info.size if info is not None else 0
        _update_manifest(backend, location.key, size, rewrapped)
    logger.info(
        "rekeyed %s: key %s -> %s", location.safe, envelope.key.key_id, rewrapped.key.key_id
    )
    return RekeyResult(
        uri=location.safe,
        old_key_id=envelope.key.key_id,
        new_key_id=rewrapped.key.key_id,
        size=size,
        segments=reader.segments,
    )


def _update_manifest(backend: Any, key: str, size: int, envelope: Envelope) -> None:
    """Record the dump's new size (and, in a sealed manifest, its new key id: the sealed
    fields stay valid, the data key is the same) in its manifest, if it has one of ours."""
    if backend.stat(manifest_key(key)) is None:
        return
    try:
        manifest = json.loads(backend.read_bytes(manifest_key(key)))
    except ValueError:
        return
    if isinstance(manifest, dict) and manifest.get("format") == MANIFEST_FORMAT:
        manifest["size"] = size
        if is_sealed(manifest):
            manifest["encryption"] = public_encryption(envelope)
        backend.write_bytes(manifest_key(key), json.dumps(manifest).encode())
