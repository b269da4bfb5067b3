"""Local keys for the encryption tests: a new random key each call."""

from __future__ import annotations

import base64
import os

from airflow_provider_zenmigrate.core.crypto import LocalKey


def new_key_b64() -> tuple[str, str]:
    """(a new 32-byte key in base64, as ``--key-env`` reads it; its key id)."""
    raw = os.urandom(32)
    return base64.b64encode(raw).decode(), LocalKey(raw).key_id
