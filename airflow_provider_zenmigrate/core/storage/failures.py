"""A backend's own exception turned into a :class:`StorageError` that names the location and
carries a scrubbed message of the cause, never the cause itself, so no secret reaches a log
line (each SDK has its own exception types, and some put credentials in their text)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

from ..errors import StorageError, StorageNotFoundError, ZenMigrateError
from .locations import Location, scrub

# smart_open's last word on a store it could not reach: "<repr of its call> failed after N
# attempts" (the causes only went to its log).
_GAVE_UP = re.compile(r"failed after (\d+) attempts$")

_NOT_FOUND_CODES = {"404", "NoSuchKey", "NoSuchBucket", "NotFound"}
_NOT_FOUND_TYPES = {"NotFound", "ResourceNotFoundError", "NoSuchKey", "NoSuchBucket"}


def is_not_found(exc: BaseException) -> bool:
    """Whether a backend's exception says the object (or its bucket) does not exist."""
    if isinstance(exc, FileNotFoundError):
        return True
    code = getattr(exc, "code", None) or getattr(exc, "status_code", None)
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        error = response.get("Error", {})
        code = error.get("Code", code)
    return str(code) in _NOT_FOUND_CODES or type(exc).__name__ in _NOT_FOUND_TYPES


def _storage_error(action: str, location: Location, exc: BaseException) -> StorageError:
    kind = StorageNotFoundError if is_not_found(exc) else StorageError
    text = str(exc)
    gave_up = _GAVE_UP.search(text) if type(exc) is OSError else None
    if gave_up:
        text = f"the store did not answer (smart_open gave up after {gave_up[1]} attempts)"
    return kind(f"{action} {location.safe} failed: {type(exc).__name__}: {scrub(text)}")


@contextmanager
def translated_errors(action: str, location: Location) -> Iterator[None]:
    """Turn a backend's exception into a :class:`StorageError` (only around our own calls)."""
    try:
        yield
    except ZenMigrateError:
        raise
    except Exception as exc:  # noqa: BLE001 - every backend has its own exception types
        raise _storage_error(action, location, exc) from None
