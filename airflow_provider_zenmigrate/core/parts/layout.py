"""Where the pieces of a multi-part dump live, and how to tell one from a single stream."""

from __future__ import annotations

import re
from typing import Any

from ..storage import backend_for, compression_for, translated_errors
from ..storage.base import Backend

MANIFEST_NAME = "manifest.json"
#: Part names: the index, then the stream's own suffix (the compression of the dump's URI).
PART_NAME = re.compile(r"part-(\d{5,})\.jsonl(\.gz|\.zst)?")


def part_suffix(uri: str) -> str:
    """The suffix the parts of a dump at ``uri`` get: its compression's (``.gz``/``.zst``)."""
    compression = compression_for(uri.rstrip("/"))
    return "" if compression == "disable" else compression


def part_name(index: int, suffix: str) -> str:
    return f"part-{index:05d}.jsonl{suffix}"


def prefix_key(uri: str, transport_params: dict[str, Any] | None = None) -> tuple[Backend, str]:
    """The store of a multi-part dump at ``uri`` and the key prefix of its pieces (ends
    with ``/``)."""
    backend = backend_for(uri, transport_params)
    return backend, backend.location.key.rstrip("/") + "/"


def child_uri(uri: str, name: str) -> str:
    """The URI of the piece ``name`` of the dump at ``uri``."""
    return uri.rstrip("/") + "/" + name


def is_multipart(uri: str, transport_params: dict[str, Any] | None = None) -> bool:
    """Whether ``uri`` names a multi-part dump: no object there, a manifest under it."""
    backend, prefix = prefix_key(uri, transport_params)
    with translated_errors("describing", backend.location):
        if uri.endswith("/"):
            return backend.stat(prefix + MANIFEST_NAME) is not None
        if backend.stat(backend.location.key) is not None:
            return False
        return backend.stat(prefix + MANIFEST_NAME) is not None
