"""A page of the backups under a prefix, in bounded time, for the "Backups" view.

:func:`..core.catalog.list_backups` reads every manifest under a prefix, which is right for
pruning but not for a web page over a prefix of thousands of backups. Here the prefix is
listed once (object names and sizes only, stopped after :data:`MAX_OBJECTS` objects or
``list_seconds``), the manifests found are ordered newest first by their stored time, and
only the requested page of them is read, each through :func:`..core.catalog.find_backup`
(the catalog's own rules: manifest ours, dump stored at the recorded size, every part of a
multi-part dump stored). A manifest that does not check out is shown as damaged with the
reason, never dropped silently and never an error of the page. No Airflow import here.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.catalog import MANIFEST_SUFFIX, BackupInfo, find_backup
from ..core.parts.layout import MANIFEST_NAME
from ..core.storage import StorageError, backend_for, parse_location, safe_uri, scrub

#: A listing stops after this many objects (a prefix that large wants narrowing).
MAX_OBJECTS = 100_000
MAX_PAGE = 100


@dataclass(frozen=True)
class Candidate:
    """A manifest found in the listing: the backup it stands for, and what the listing
    says about it."""

    uri: str
    modified: dt.datetime | None
    multipart: bool
    dump_listed: bool


@dataclass
class Page:
    """One page of backups under a prefix, as the view shows it."""

    prefix: str
    backups: list[dict[str, Any]] = field(default_factory=list)
    #: Manifests found by the listing (complete, damaged or not yet read).
    found: int = 0
    #: Where the next page starts; ``None`` on the last page.
    next_offset: int | None = None
    #: The listing stopped early (object count or time); the reason, for the page.
    truncated: str | None = None
    error: str | None = None


def message(exc: BaseException) -> str:
    """An exception as the page shows it: its type and text, credentials scrubbed."""
    text = str(exc) or type(exc).__name__
    if not isinstance(exc, StorageError):
        text = f"{type(exc).__name__}: {text}"
    return scrub(text)


def _candidates(
    prefix: str, transport_params: dict[str, Any] | None, deadline: float
) -> tuple[list[Candidate], str | None]:
    """The manifests under ``prefix`` (newest first) and why the listing stopped early."""
    backend = backend_for(prefix, transport_params)
    location = backend.location
    keys: set[str] = set()
    manifests: list[tuple[str, dt.datetime | None, bool]] = []
    truncated = None
    if location.scheme == "file" and not _local_parent_exists(location.key, prefix.endswith("/")):
        raise StorageError(f"cannot list {safe_uri(prefix)}: no such folder on the API server")
    try:
        for count, info in enumerate(backend.list(location.key), start=1):
            keys.add(info.key)
            if info.key.endswith("/" + MANIFEST_NAME):
                manifests.append((info.key[: -len(MANIFEST_NAME) - 1], info.modified, True))
            elif info.key.endswith(MANIFEST_SUFFIX):
                manifests.append((info.key[: -len(MANIFEST_SUFFIX)], info.modified, False))
            if count >= MAX_OBJECTS:
                truncated = f"the listing stopped after {MAX_OBJECTS} objects"
                break
            if time.monotonic() > deadline:
                truncated = f"the listing stopped after {count} objects (time limit)"
                break
    except StorageError:
        raise
    except Exception as exc:  # noqa: BLE001 - an SDK's own error: shown, scrubbed
        raise StorageError(f"cannot list {safe_uri(prefix)}: {message(exc)}") from exc
    oldest = dt.datetime.min.replace(tzinfo=dt.UTC)
    manifests.sort(key=lambda m: (m[1] or oldest, m[0]), reverse=True)
    return [
        Candidate(location.with_key(key), modified, multi, multi or key in keys)
        for key, modified, multi in manifests
    ], truncated


def _local_parent_exists(key: str, folder: bool) -> bool:
    """A folder prefix (``.../backups/``) must exist; a name prefix (``.../nightly-``) needs
    its folder."""
    root = Path(key)
    return root.is_dir() if folder else root.is_dir() or root.parent.is_dir()


def backup_row(info: BackupInfo) -> dict[str, Any]:
    """What the view shows of a complete backup (nothing secret: no credentials in URIs)."""
    return {
        "uri": safe_uri(info.uri),
        "state": "complete",
        "problem": None,
        "created_at": info.created_at.isoformat(),
        "size": info.size,
        "tables": len(info.tables),
        "rows": sum(info.tables.values()),
        "revision": info.revision,
        "database": info.database,
        "dialect": info.dialect,
        "parts": info.parts,
        "digest": info.digest,
        "encrypted": info.encrypted,
    }


def damaged_row(candidate: Candidate, problem: str) -> dict[str, Any]:
    """A manifest that does not stand for a complete backup, with the reason."""
    return {
        "uri": safe_uri(candidate.uri),
        "state": "damaged",
        "problem": problem,
        "created_at": candidate.modified.isoformat() if candidate.modified else None,
        "size": None,
        "tables": None,
        "rows": None,
        "revision": None,
        "database": None,
        "dialect": None,
        "parts": None,
        "digest": None,
    }


def describe(candidate: Candidate, transport_params: dict[str, Any] | None) -> dict[str, Any]:
    """The row of one manifest found by the listing."""
    if not candidate.dump_listed:
        return damaged_row(candidate, "its manifest is there but the dump is missing")
    try:
        info = find_backup(candidate.uri, transport_params)
    except StorageError as exc:
        return damaged_row(candidate, message(exc))
    except Exception as exc:  # noqa: BLE001 - a damaged object must not break the page
        return damaged_row(candidate, f"its manifest cannot be read: {message(exc)}")
    if info is None:
        what = "multi-part dump" if candidate.multipart else "dump"
        return damaged_row(
            candidate,
            f"corrupted or incomplete: the manifest is not a valid zenmigrate manifest, or the "
            f"{what} is not what it records (size, parts); verify it before trusting it",
        )
    return backup_row(info)


def list_page(
    prefix: str,
    transport_params: dict[str, Any] | None,
    offset: int = 0,
    limit: int = 25,
    seconds: float = 10.0,
) -> Page:
    """The ``limit`` newest backups under ``prefix`` from ``offset``, within about
    ``seconds`` (listing and reading together); a page cut short by time says where the
    next one starts. A prefix that cannot be listed is the page's ``error``."""
    deadline = time.monotonic() + seconds
    limit = max(1, min(limit, MAX_PAGE))
    offset = max(0, offset)
    page = Page(prefix=safe_uri(prefix))
    try:
        candidates, page.truncated = _candidates(prefix, transport_params, deadline)
    except StorageError as exc:
        page.error = message(exc)
        return page
    page.found = len(candidates)
    end = min(offset + limit, len(candidates))
    index = offset
    while index < end:
        page.backups.append(describe(candidates[index], transport_params))
        index += 1
        if time.monotonic() > deadline and index < end:
            break
    page.next_offset = index if index < len(candidates) else None
    return page


def location_key(uri: str) -> tuple[str, str, str]:
    """A location without credentials or scheme spelling, to match URIs written differently
    (``/path`` and ``file:///path``; ``gcs://`` and ``gs://``)."""
    location = parse_location(uri)
    return (location.scheme, location.bucket, location.key.rstrip("/"))
