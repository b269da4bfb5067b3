"""A page of the backups under a prefix, in bounded time, for the "Backups" view.

:func:`..core.catalog.list_backups` reads every manifest under a prefix, which is right for
pruning but not for a web page over a prefix of thousands of backups. Here the prefix is
listed once (object names and sizes only, stopped after :data:`MAX_OBJECTS` objects or
``list_seconds``), the manifests found are ordered newest first by their stored time, and
only the requested page of them is read, each through :func:`..core.catalog.find_backup`
(the catalog's own rules: manifest ours, dump stored at the recorded size, every part of a
multi-part dump stored). A manifest that does not check out is shown as damaged with the
reason, never dropped silently and never an error of the page. No Airflow import here.

An encrypted backup is read with the database's key when the Variable names one
(:class:`.encrypted.Keys`): its row then shows tables, rows and digest as a plaintext one
does. Otherwise the row shows what the manifest says in the clear (time, size, key id) and
why it shows no more (``key_problem``).
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
from .encrypted import Keys, envelope_of

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


def opened(info: BackupInfo) -> bool:
    """Whether the manifest's contents are known: always for a plaintext backup; for an
    encrypted one only when a key opened its sealed fields (then its header names the
    dialect and its trailer's digest is there; see :class:`..core.catalog.BackupInfo`)."""
    return not info.encrypted or info.dialect is not None or info.digest is not None


def backup_row(info: BackupInfo, key_problem: str | None = None) -> dict[str, Any]:
    """What the view shows of a complete backup (nothing secret: no credentials in URIs,
    of an encrypted one its key's id only). An encrypted backup whose contents are not
    known has ``None`` for its tables and rows, and ``key_problem`` says why."""
    shown = opened(info)
    return {
        "uri": safe_uri(info.uri),
        "state": "complete",
        "problem": None,
        "created_at": info.created_at.isoformat(),
        "size": info.size,
        "tables": len(info.tables) if shown else None,
        "rows": sum(info.tables.values()) if shown else None,
        "revision": info.revision,
        "database": info.database,
        "dialect": info.dialect,
        "parts": info.parts,
        "digest": info.digest,
        "encrypted": info.encrypted,
        "key_id": info.key_id,
        "locked": not shown,
        "key_problem": None if shown else key_problem,
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
        "encrypted": None,
        "key_id": None,
        "locked": False,
        "key_problem": None,
    }


def why_locked(
    info: BackupInfo, transport_params: dict[str, Any] | None, keys: Keys | None
) -> str | None:
    """Why the contents of ``info`` are not shown (``None`` when they are). With a key
    configured, the dump's envelope (its first bytes) tells a wrong key from others."""
    if opened(info):
        return None
    keys = keys or Keys(conn_id="")
    if keys.encryption is not None:
        try:
            envelope = envelope_of(info.uri, transport_params)
        except Exception as exc:  # noqa: BLE001 - shown in the row, scrubbed
            return f"{keys.unopened(info.key_id)} ({message(exc)})"
        if envelope is not None:
            return keys.problem(envelope, safe_uri(info.uri)) or keys.unopened(info.key_id)
    return keys.unopened(info.key_id)


def describe(
    candidate: Candidate, transport_params: dict[str, Any] | None, keys: Keys | None = None
) -> dict[str, Any]:
    """The row of one manifest found by the listing (an encrypted one opened with ``keys``
    when they hold its key)."""
    if not candidate.dump_listed:
        return damaged_row(candidate, "its manifest is there but the dump is missing")
    try:
        info = find_backup(
            candidate.uri, transport_params, encryption=keys.reading if keys else None
        )
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
    return backup_row(info, why_locked(info, transport_params, keys))


def list_page(
    prefix: str,
    transport_params: dict[str, Any] | None,
    offset: int = 0,
    limit: int = 25,
    seconds: float = 10.0,
    keys: Keys | None = None,
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
        page.backups.append(describe(candidates[index], transport_params, keys))
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
