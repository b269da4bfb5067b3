"""The keys of encrypted dumps, from an Airflow connection (``encryption_conn_id``).

A connection of any type (``generic`` is the usual) whose

* password is a 32-byte key, base64: a local key-encryption key (Airflow masks a
  connection's password in task logs, and this module never logs or returns it);
* extra holds ``{"kms_key_id": "arn:aws:kms:..."}``: an AWS KMS key (``region_name`` and
  ``endpoint_url`` extras optional; credentials from the environment's AWS chain);
* extra ``"require_encryption": true`` refuses to restore a plaintext dump.

Both a password and a KMS key may be given: new dumps are wrapped by the local key, and
either may unwrap (a rotation between the two). The connection says nothing else: only its
id is ever in a template field, XCom or the UI.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import Connection

from ..core.crypto import AwsKmsKey, Encryption, KeyProvider, LocalKey
from ..core.errors import EncryptionKeyError


def encryption_from_connection(connection: Connection, conn_id: str) -> Encryption:
    """The :class:`Encryption` a key connection describes.

    Raises:
        EncryptionKeyError: Naming the connection (never its password) when it holds no
            key, a key that is not base64 or not 32 bytes, or a malformed extra.
    """
    source = f"the Airflow connection {conn_id!r} (its password)"
    keys: list[KeyProvider] = []
    if connection.password:
        keys.append(LocalKey.from_base64(connection.password.strip(), source=source))
    extra = _extra(connection, conn_id)
    kms = extra.get("kms_key_id")
    if kms is not None:
        if not isinstance(kms, str) or not kms:
            raise EncryptionKeyError(f"the Airflow connection {conn_id!r}: kms_key_id is empty")
        keys.append(
            AwsKmsKey(
                kms,
                region=_text(extra.get("region_name")),
                endpoint_url=_text(extra.get("endpoint_url")),
            )
        )
    if not keys:
        raise EncryptionKeyError(
            f"the Airflow connection {conn_id!r} holds no key: put a base64 32-byte key in "
            'its password, or {"kms_key_id": "arn:aws:kms:..."} in its extra'
        )
    return Encryption(keys, require=bool(extra.get("require_encryption", False)))


def _extra(connection: Connection, conn_id: str) -> dict[str, Any]:
    try:
        extra = connection.extra_dejson
    except ValueError:
        extra = None
    if not isinstance(extra, dict):
        raise EncryptionKeyError(
            f"the Airflow connection {conn_id!r}: its extra is not a JSON object"
        )
    return extra


def _text(value: Any) -> str | None:
    return str(value) if value else None
