"""The one place a location's scheme picks its :class:`Backend`."""

from __future__ import annotations

from typing import Any

from .base import Backend
from .clouds import AzureBackend, GCSBackend, S3Backend
from .failures import translated_errors
from .local import LocalBackend
from .locations import Location, parse_location
from .sdks import require_sdk

_BACKENDS: dict[str, type[Backend]] = {
    "file": LocalBackend,
    "s3": S3Backend,
    "gs": GCSBackend,
    "azure": AzureBackend,
}


def backend_for(uri: str | Location, transport_params: dict[str, Any] | None = None) -> Backend:
    """The backend for a location, with its client resolved (see the package docstring).

    Raises:
        StorageError: If the scheme is unknown, its SDK is not installed (the message names
            the extra to install) or its client cannot be built.
    """
    location = uri if isinstance(uri, Location) else parse_location(uri)
    require_sdk(location)
    with translated_errors("connecting to", location):
        return _BACKENDS[location.scheme](location, transport_params)
