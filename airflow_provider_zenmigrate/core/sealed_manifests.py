"""What a catalog manifest says about an encrypted backup, and who may read it.

The manifest beside a plaintext dump repeats its header and row counts in the clear. Beside
an encrypted dump that would leak what the dump hides (database, revisions, tables, rows),
so such a manifest carries in the clear only what the dump's envelope already shows (key
provider and id, algorithm, stream id, creation time) and the stored size; the rest (the
``header``, ``tables``, ``records`` and ``digest`` a plaintext manifest holds) is sealed
under the backup's data key (:mod:`.crypto.metadata`) in ``sealed``. A reader given a key
that unwraps the data key sees the manifest as if it were plaintext; any other reader sees
an encrypted backup of that size and time.
"""

from __future__ import annotations

import base64
import logging
from typing import Any

from .crypto import Encryption, Envelope
from .crypto.metadata import open_json, seal_json
from .errors import DumpError, EncryptionError

logger = logging.getLogger(__name__)

#: The fields a plaintext manifest holds about the data; sealed in an encrypted one.
PRIVATE_FIELDS = ("header", "tables", "records", "digest")
PURPOSE = "manifest"


def public_encryption(envelope: Envelope) -> dict[str, Any]:
    """What a manifest shows in the clear of an encrypted backup (all of it is in the
    dump's envelope too; no key material)."""
    return {
        "provider": envelope.key.provider,
        "key_id": envelope.key.key_id,
        "algorithm": envelope.algorithm,
        "stream_id": base64.b64encode(envelope.stream_id).decode("ascii"),
        "created_at": envelope.created_at,
    }


def seal_fields(
    private: dict[str, Any], envelope: Envelope, encryption: Encryption, where: str
) -> dict[str, Any]:
    """The manifest fields that stand for ``private`` beside the encrypted dump whose
    envelope is ``envelope`` (its data key unwrapped by ``encryption``)."""
    data_key = encryption.unwrap(envelope, where)
    return {
        "header": {},
        "encryption": public_encryption(envelope),
        "sealed": seal_json(data_key, envelope.stream_id, PURPOSE, private),
    }


def is_sealed(manifest: dict[str, Any]) -> bool:
    return isinstance(manifest.get("encryption"), dict) and "sealed" in manifest


def opened_fields(
    manifest: dict[str, Any],
    envelope: Envelope | None,
    encryption: Encryption | None,
    where: str,
) -> dict[str, Any] | None:
    """The private fields of ``manifest``: its own for a plaintext one; for a sealed one,
    opened with a key of ``encryption`` under the data key of ``envelope`` (the dump's), or
    ``None`` when there is no key that can, or the seal does not open (logged, without
    secrets: a listing then shows the backup as encrypted, without its contents)."""
    if not is_sealed(manifest):
        return {name: manifest.get(name) for name in PRIVATE_FIELDS}
    if encryption is None or not encryption.keys or envelope is None:
        return None
    stream_id = base64.b64encode(envelope.stream_id).decode("ascii")
    if manifest["encryption"].get("stream_id") != stream_id:
        logger.warning("%s: its manifest belongs to another encrypted stream", where)
        return None
    try:
        data_key = encryption.unwrap(envelope, where)
        return open_json(data_key, envelope.stream_id, PURPOSE, str(manifest["sealed"]), where)
    except (EncryptionError, DumpError) as exc:
        logger.warning("%s: its manifest's contents are not shown: %s", where, exc)
        return None
