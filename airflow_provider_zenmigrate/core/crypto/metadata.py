"""Small JSON documents sealed under a backup's data key: what the catalog's manifests say
about an encrypted backup's data (database, revisions, tables, row counts, digest).

A manifest beside an encrypted dump must not repeat in plaintext what the dump hides, yet a
listing given the key should show it without reading the dump. So those fields are sealed
with AES-256-GCM under a key derived from the backup's data key (HKDF-SHA-256, its own
``info``, so the sealing key is never the segments' key), with a random 96-bit nonce and
associated data naming what the document is (``purpose``) and the stream it belongs to
(its ``stream_id``): a sealed document moved to another backup, or used for another
purpose, does not open.

Sealed text: base64 of nonce (12 bytes) || ciphertext and tag.
"""

from __future__ import annotations

import base64
import json
import os
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ..errors import DumpAuthenticationError

_INFO = b"zenmigrate metadata v1"
_NONCE_BYTES = 12


def _sealing_key(data_key: bytes) -> AESGCM:
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(data_key)
    return AESGCM(derived)


def _aad(purpose: str, stream_id: bytes) -> bytes:
    return b"zenmigrate-metadata\x00" + purpose.encode() + b"\x00" + stream_id


def seal_json(data_key: bytes, stream_id: bytes, purpose: str, document: dict[str, Any]) -> str:
    """``document`` sealed for the backup whose data key and stream id are given."""
    nonce = os.urandom(_NONCE_BYTES)
    plain = json.dumps(document, sort_keys=True, separators=(",", ":")).encode()
    sealed = _sealing_key(data_key).encrypt(nonce, plain, _aad(purpose, stream_id))
    return base64.b64encode(nonce + sealed).decode("ascii")


def open_json(
    data_key: bytes, stream_id: bytes, purpose: str, sealed: str, where: str
) -> dict[str, Any]:
    """The document :func:`seal_json` sealed; a :class:`DumpAuthenticationError` naming
    ``where`` when it was altered, belongs to another backup or is not sealed text."""
    try:
        raw = base64.b64decode(sealed, validate=True)
        plain = _sealing_key(data_key).decrypt(
            raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], _aad(purpose, stream_id)
        )
        document = json.loads(plain)
    except (ValueError, InvalidTag, TypeError):
        raise DumpAuthenticationError(
            f"{where}: its sealed {purpose} does not authenticate under the backup's key "
            "(altered, or copied from another backup)"
        ) from None
    if not isinstance(document, dict):
        raise DumpAuthenticationError(f"{where}: its sealed {purpose} is not a JSON object")
    return document
