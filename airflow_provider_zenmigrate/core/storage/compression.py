"""Compression chosen by a location's suffix: ``.gz``, ``.zst``, anything else stored as is.

The codecs are wrapped here rather than by smart_open so that a local ``.zst`` or ``.gz``
dump never imports smart_open (see :mod:`.sdks`).
"""

from __future__ import annotations

import io
import sys
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from types import ModuleType

#: Suffixes that select a compression codec; anything else is stored as is.
COMPRESSIONS = (".gz", ".zst")


def compression_for(uri: str) -> str:
    """The compression for a location, chosen by its suffix (``"disable"`` for none)."""
    path = urlsplit(uri).path if "://" in uri else uri
    for suffix in COMPRESSIONS:
        if path.endswith(suffix):
            return suffix
    return "disable"


def compression_wrapper(stream: IO[bytes], mode: str, compression: str) -> Any:
    """The codec of ``compression`` (a suffix of :data:`COMPRESSIONS`) around a raw stream,
    buffered as smart_open's own wrapper does."""
    if compression == ".gz":
        import gzip

        codec: Any = gzip.open(stream, mode)  # noqa: SIM115 - the caller closes it
    else:
        codec = zstd().open(stream, mode)
    return io.BufferedWriter(codec) if "w" in mode else io.BufferedReader(codec)


def zstd() -> ModuleType:
    """Zstandard from the standard library (3.14+) or its backport."""
    if sys.version_info >= (3, 14):
        from compression import zstd
    else:
        from backports import zstd
    return zstd


def decompression_errors() -> tuple[type[BaseException], ...]:
    """What a codec raises on a truncated or corrupt compressed stream."""
    import gzip
    import zlib

    return (EOFError, gzip.BadGzipFile, zlib.error, zstd().ZstdError)
