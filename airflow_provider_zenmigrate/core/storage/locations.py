"""Where a dump lives: parsing a URI into a :class:`Location`, and keeping secrets out of
what we show of it.

Every location is a URI (or a plain local path): ``/path``, ``file:///path``,
``s3://bucket/key``, ``gs://bucket/key`` (or ``gcs://``) and ``azure://container/blob``.
Credentials can hide in a URI's user information and query, and in a backend's error
text, so every message shows a location through :func:`safe_uri` and a cause through
:func:`scrub`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from ..errors import StorageError

_SCHEMES = {"file": "file", "s3": "s3", "gs": "gs", "gcs": "gs", "azure": "azure"}


@dataclass(frozen=True)
class Location:
    """A parsed URI: ``scheme`` is ``file``, ``s3``, ``gs`` or ``azure``."""

    scheme: str
    bucket: str
    key: str
    original: str
    credentials: tuple[str, str] | None = None

    @property
    def safe(self) -> str:
        return safe_uri(self.original)

    def with_key(self, key: str) -> str:
        """The URI of another object in the same bucket (credentials dropped)."""
        if self.scheme == "file":
            return f"file://{key}" if self.original.startswith("file://") else key
        return f"{self.scheme}://{self.bucket}/{key}"

    @property
    def uri(self) -> str:
        return self.with_key(self.key)


def parse_location(uri: str) -> Location:
    """The location a URI or plain path names; an unknown scheme or a missing bucket is a
    :class:`StorageError`."""
    if "://" not in uri:
        return Location("file", "", str(Path(uri).absolute()), uri)
    parts = urlsplit(uri)
    scheme = _SCHEMES.get(parts.scheme.lower())
    if scheme is None:
        raise StorageError(f"unsupported storage scheme {parts.scheme!r}: {safe_uri(uri)}")
    if scheme == "file":
        return Location("file", "", unquote(parts.path), uri)
    bucket = parts.hostname or ""
    credentials = None
    if parts.username is not None and parts.password is not None:
        credentials = (unquote(parts.username), unquote(parts.password))
    if not bucket:
        raise StorageError(f"no bucket in {safe_uri(uri)}")
    return Location(scheme, bucket, parts.path.lstrip("/"), uri, credentials)


def safe_uri(uri: str) -> str:
    """The URI without any user information or query (where credentials hide)."""
    if "://" not in uri:
        return uri
    parts = urlsplit(uri)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return f"{parts.scheme}://{host}{parts.path}"


_SECRETS = [
    (re.compile(r"([a-zA-Z][\w+.-]*://)[^/\s@]*@"), r"\1"),
    (re.compile(r"\?[^\s'\"<>]*"), ""),
    (
        re.compile(
            r"(?i)\b(AccountKey|SharedAccessSignature|sig|signature|secret|password|token|"
            r"credential|X-Amz-[\w-]+)=[^;&\s'\"]*"
        ),
        r"\1=***",
    ),
]


def scrub(text: str) -> str:
    """``text`` with URL user information, query strings and key=value secrets removed."""
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text[:500]
