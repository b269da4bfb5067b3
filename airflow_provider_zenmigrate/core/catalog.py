"""The backups under a prefix: list them, prune old ones, verify one end to end.

How a complete backup is known cheaply
    A dump's own proof of completeness is its trailer, at the very end of the object:
    checking it means reading (and decompressing) every byte, which is far too expensive
    for a listing of many large backups. So :func:`write_manifest` puts a small
    ``<dump>.manifest.json`` beside each dump *after* the dump was committed (published
    only when complete, see :mod:`.storage`). The manifest repeats the header and the
    trailer's row counts and digest, and records the committed size of the dump.

    :func:`list_backups` lists the prefix once and reads only the manifests: a dump is
    listed when its manifest is ours and the dump exists with exactly the recorded size.
    Anything else is skipped: partial files, objects of other tools, dumps whose process
    died between commit and manifest (complete but unproven: :func:`verify_backup` reads
    them and a new backup replaces them), dumps replaced after their manifest was written.
    The order is newest first by the header's creation time, which comes from the
    database snapshot, not from the store's clock.

:func:`verify_backup` is the expensive, exact check: it streams the whole dump through the
rules a restore applies (:mod:`.preflight`: trailer, per-table checksums and row counts,
overall digest, routines, each statement's safety; a target server's roles and extensions
when given one) without running any of it, and reports what it found.

:func:`find_backup` reads what the manifest of one dump says (cheap: sizes for progress);
:func:`.inspection.inspect_backup` reads the dump itself and describes it.

Multi-part dumps (:mod:`.parts`)
    A multi-part dump at ``U`` is the prefix ``U/`` with its parts and ``U/manifest.json``,
    written last; every function here treats it as one backup at ``U``. The listing finds
    its manifest (``/manifest.json``, never confused with a single dump's
    ``.manifest.json``) and lists it when the manifest checks out and every part it names is
    stored with the size it records; a prefix with parts and no manifest is an unfinished
    backup and is not listed. Pruning deletes it whole; :func:`verify_backup` hands it to
    :func:`.parts.verify.verify_parts`, which applies the same rules to every part.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from contextlib import suppress
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import DumpAuthenticationError, DumpError, EncryptionError
from .storage import (
    Backend,
    Location,
    ObjectInfo,
    StorageError,
    StorageNotFoundError,
    authenticated,
    backend_for,
    open_for_read,
    parse_location,
    safe_uri,
    scrub,
    translated_errors,
)

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from .crypto import Encryption, Envelope
    from .dump.model import RestoreOptions
    from .dump.records import Record
    from .parts.manifest import PartsManifest, PublicParts

# Every backup imports this module for write_manifest; listing, verifying and multi-part
# dumps import what they need (the crypto stack, the dump reader, the restore's rules,
# core.parts) where they run, so that an unencrypted single-stream backup imports none of
# it (issue 27).

logger = logging.getLogger(__name__)

MANIFEST_SUFFIX = ".manifest.json"
#: What a rehearsal stores beside a backup (:mod:`.rehearsal.report`): never listed as a
#: backup (only manifests are read), pruned with its backup.
REHEARSAL_JSON_SUFFIX = ".rehearsal.json"
REHEARSAL_MARKDOWN_SUFFIX = ".rehearsal.md"
UPGRADE_SQL_SUFFIX = ".upgrade.sql"
SIDECAR_SUFFIXES = (REHEARSAL_JSON_SUFFIX, REHEARSAL_MARKDOWN_SUFFIX, UPGRADE_SQL_SUFFIX)
MANIFEST_FORMAT = "zenmigrate-manifest"
MANIFEST_VERSION = 1


@dataclass(frozen=True)
class BackupInfo:
    """A complete backup found under a prefix."""

    uri: str
    size: int
    created_at: dt.datetime
    database: str | None
    dialect: str | None
    revisions: list[str]
    server_version: str | None
    tool_version: str | None
    tables: dict[str, int]
    digest: str | None
    #: A multi-part dump: how many parts it has (``None`` for a single stream).
    parts: int | None = None
    #: An encrypted backup, and the id of the key its data key is wrapped by. Its manifest
    #: seals the database, revisions, tables, rows and digest: without a key that unwraps
    #: it they are empty (``None``, ``[]``, ``{}``) and ``created_at`` is the envelope's.
    encrypted: bool = False
    key_id: str | None = None

    @property
    def revision(self) -> str | None:
        """The Alembic revision at backup time (heads joined by ``+`` when several)."""
        return "+".join(self.revisions) if self.revisions else None


@dataclass
class VerifyReport:
    """What :func:`verify_backup` found; ``ok`` only when a restore would accept the dump:
    the trailer matched everything (or the dump has none, and that was allowed) and no rule
    of the restore refused a record."""

    uri: str
    ok: bool = False
    error: str | None = None
    error_line: int | None = None
    header: Record | None = None
    tables: dict[str, int] = field(default_factory=dict)
    records: int = 0
    trailer_ok: bool = False
    size: int | None = None
    manifest_ok: bool | None = None
    #: The dump has no header or trailer (the legacy (unverified) format), accepted as such.
    unverified: bool = False
    #: Whether a target server's rules (roles, extensions) were applied.
    target_checked: bool = False
    #: Roles the dump's records name and extensions they create.
    roles: list[str] = field(default_factory=list)
    extensions: list[str] = field(default_factory=list)
    #: A multi-part dump: how many parts its manifest names (``None`` for a single stream),
    #: and the part a problem was found in.
    parts: int | None = None
    error_part: str | None = None

    def __str__(self) -> str:
        if self.ok:
            rows = sum(self.tables.values())
            found = f"{len(self.tables)} tables, {rows} rows, {self.records} records"
            if self.parts is not None:
                found += f" in {self.parts} parts"
            if self.unverified:
                return f"{self.uri}: OK but UNVERIFIED (no header or trailer), {found}"
            return f"{self.uri}: OK, {found}"
        return f"{self.uri}: FAILED: {self.error}"


def manifest_key(key: str) -> str:
    return key + MANIFEST_SUFFIX


def _stat_dump(backend: Backend) -> ObjectInfo:
    """The object at the backend's location; a :class:`StorageNotFoundError` if none."""
    location = backend.location
    with translated_errors("describing", location):
        info = backend.stat(location.key)
    if info is None:
        raise StorageNotFoundError(f"backup not found: {location.safe}")
    return info


def write_manifest(
    uri: str,
    header: Record,
    trailer: Record,
    transport_params: dict[str, Any] | None = None,
    *,
    encryption: Encryption | None = None,
) -> dict[str, Any]:
    """Record a committed dump at ``uri`` as complete (call only after it was published).
    Beside an encrypted dump (``encryption`` wrote it), what the manifest says of the data
    is sealed under the dump's data key (:mod:`.sealed_manifests`).

    Returns the manifest written.
    """
    backend = backend_for(uri, transport_params)
    location = backend.location
    info = _stat_dump(backend)
    private = {
        "header": {k: v for k, v in header.items() if k != "kind"},
        "tables": {name: t["rows"] for name, t in trailer["tables"].items()},
        "records": trailer["records"],
        "digest": trailer["digest"],
    }
    with translated_errors("describing", location):
        sealing = encryption is not None and encryption.encrypts
        envelope = _envelope(backend, location.key) if sealing else None
        fields = private
        if envelope is not None and encryption is not None:
            from .sealed_manifests import seal_fields

            fields = seal_fields(private, envelope, encryption, location.safe)
        manifest = {
            "format": MANIFEST_FORMAT,
            "version": MANIFEST_VERSION,
            "dump": location.key.rsplit("/", 1)[-1],
            "size": info.size,
            **fields,
        }
        backend.write_bytes(manifest_key(location.key), json.dumps(manifest).encode())
    return manifest


def _envelope(backend: Backend, key: str) -> Envelope | None:
    """The envelope at the start of the stored object ``key``; ``None`` for plaintext."""
    from .crypto.policy import sniff

    with backend.open_reader(key) as raw:
        return sniff(raw, safe_uri(backend.location.with_key(key)))[1]


def _read_manifest(backend: Backend, key: str) -> dict[str, Any] | None:
    try:
        manifest = json.loads(backend.read_bytes(key))
    except Exception as exc:  # noqa: BLE001 - a foreign or damaged object: not ours
        logger.debug("skipping %s: %s", key, type(exc).__name__)
        return None
    if (
        not isinstance(manifest, dict)
        or manifest.get("format") != MANIFEST_FORMAT
        or manifest.get("version") != MANIFEST_VERSION
        or not isinstance(manifest.get("header"), dict)
        or not isinstance(manifest.get("size"), int)
    ):
        return None
    return manifest


def _created(header: dict[str, Any], fallback: dt.datetime | None) -> dt.datetime:
    try:
        return dt.datetime.fromisoformat(str(header["created_at"]))
    except (KeyError, ValueError):
        return fallback or dt.datetime.min.replace(tzinfo=dt.UTC)


def _backup_info(
    backend: Backend,
    dump_key: str,
    dump: ObjectInfo,
    manifest: dict[str, Any],
    modified: dt.datetime | None,
    encryption: Encryption | None,
) -> BackupInfo:
    from .sealed_manifests import is_sealed, opened_fields

    uri = backend.location.with_key(dump_key)
    if not is_sealed(manifest):
        return _info(
            uri,
            manifest["header"],
            dump.size,
            dict(manifest.get("tables") or {}),
            manifest.get("digest"),
            modified,
        )
    public = manifest["encryption"]
    envelope = _envelope(backend, dump_key) if encryption is not None and encryption.keys else None
    opened = opened_fields(manifest, envelope, encryption, safe_uri(uri)) or {}
    header = opened.get("header") or {"created_at": public.get("created_at")}
    info = _info(
        uri, header, dump.size, dict(opened.get("tables") or {}), opened.get("digest"), modified
    )
    return replace(info, encrypted=True, key_id=public.get("key_id"))


def _parts_info(
    location: Location,
    dump_key: str,
    manifest: PartsManifest | PublicParts,
    modified: dt.datetime | None,
) -> BackupInfo:
    from .parts.manifest import PublicParts

    uri = location.with_key(dump_key)
    if isinstance(manifest, PublicParts):  # encrypted, and no key given opens it
        envelope = manifest.envelope
        info = _info(uri, {"created_at": envelope.created_at}, manifest.size, {}, None, modified)
        return replace(info, parts=len(manifest.parts), encrypted=True, key_id=envelope.key.key_id)
    info = _info(
        uri,
        manifest.header,
        manifest.size,
        dict(manifest.tables),
        manifest.digest,
        modified,
        parts=len(manifest.parts),
    )
    if manifest.encryption is None:
        return info
    return replace(info, encrypted=True, key_id=manifest.encryption.wrapped.key_id)


def _info(
    uri: str,
    header: dict[str, Any],
    size: int,
    tables: dict[str, int],
    digest: str | None,
    modified: dt.datetime | None,
    parts: int | None = None,
) -> BackupInfo:
    """A listed backup, from what its manifest (either kind) says."""
    return BackupInfo(
        uri=uri,
        size=size,
        created_at=_created(header, modified),
        database=header.get("database"),
        dialect=header.get("dialect"),
        revisions=list(header.get("revisions") or []),
        server_version=header.get("server_version"),
        tool_version=header.get("tool_version"),
        tables=tables,
        digest=digest,
        parts=parts,
    )


def _parts_manifest(
    backend: Backend, dump_key: str, encryption: Encryption | None
) -> PartsManifest | PublicParts | None:
    """The checked manifest of the multi-part dump at ``dump_key``; ``None`` when it is not
    one of ours or does not check out (logged: a listing skips it). An encrypted one that
    no key of ``encryption`` opens: what it says in the clear (names and sizes of parts)."""
    from .parts.layout import MANIFEST_NAME
    from .parts.manifest import parse_manifest, public_parts

    where = safe_uri(backend.location.with_key(dump_key + "/" + MANIFEST_NAME))
    try:
        data = backend.read_bytes(dump_key + "/" + MANIFEST_NAME)
        public = public_parts(data, where)
        if public is not None and (encryption is None or not encryption.keys):
            return public
        try:
            return parse_manifest(data, where, encryption)
        except (EncryptionError, DumpAuthenticationError) as exc:
            if public is None:
                raise
            logger.warning("%s: its contents are not shown: %s", where, exc)
            return public
    except DumpError as exc:
        logger.warning("skipping %s: %s", where, exc)
    except Exception as exc:  # noqa: BLE001 - a foreign or unreadable object: not ours
        logger.debug("skipping %s: %s", where, type(exc).__name__)
    return None


def _listed_parts(
    backend: Backend,
    dump_key: str,
    objects: dict[str, ObjectInfo],
    encryption: Encryption | None = None,
) -> BackupInfo | None:
    """The multi-part dump at ``dump_key`` as a listing shows it, when its manifest checks
    out and ``objects`` (the listing) holds every part with the size the manifest records."""
    from .parts.layout import MANIFEST_NAME
    from .parts.manifest import PublicParts

    manifest = _parts_manifest(backend, dump_key, encryption)
    if manifest is None:
        return None
    sizes = (
        manifest.parts
        if isinstance(manifest, PublicParts)
        else [(p.name, p.bytes) for p in manifest.parts]
    )
    for name, size in sizes:
        stored = objects.get(dump_key + "/" + name)
        if stored is None or stored.size != size:
            logger.warning(
                "skipping %s: part %s is %s",
                safe_uri(backend.location.with_key(dump_key)),
                name,
                "missing" if stored is None else "not the size its manifest records",
            )
            return None
    modified = objects[dump_key + "/" + MANIFEST_NAME].modified
    return _parts_info(backend.location, dump_key, manifest, modified)


def list_backups(
    prefix_uri: str,
    transport_params: dict[str, Any] | None = None,
    *,
    encryption: Encryption | None = None,
) -> list[BackupInfo]:
    """The complete backups under ``prefix_uri``, newest first (see the module docstring).

    ``prefix_uri`` is a key prefix (``s3://bucket/backups/`` or ``.../nightly-``) or a local
    folder or path prefix. Encrypted backups are listed as such; their database, tables,
    rows and revisions only when a key of ``encryption`` unwraps their data key.
    """
    from .parts.layout import MANIFEST_NAME

    backend = backend_for(prefix_uri, transport_params)
    location = backend.location
    with translated_errors("listing", location):
        objects: dict[str, ObjectInfo] = {o.key: o for o in backend.list(location.key)}
        found: list[BackupInfo] = []
        for key, info in objects.items():
            if key.endswith("/" + MANIFEST_NAME):
                multi = _listed_parts(backend, key[: -len(MANIFEST_NAME) - 1], objects, encryption)
                if multi is not None:
                    found.append(multi)
                continue
            if not key.endswith(MANIFEST_SUFFIX):
                continue
            dump_key = key[: -len(MANIFEST_SUFFIX)]
            dump = objects.get(dump_key)
            if dump is None:
                logger.debug("skipping %s: its dump is gone", location.with_key(key))
                continue
            manifest = _read_manifest(backend, key)
            if manifest is None:
                continue
            if manifest["size"] != dump.size:
                logger.warning(
                    "skipping %s: it was replaced after its manifest was written",
                    safe_uri(location.with_key(dump_key)),
                )
                continue
            found.append(_backup_info(backend, dump_key, dump, manifest, info.modified, encryption))
    found.sort(key=lambda b: (b.created_at, b.uri), reverse=True)
    return found


def prune_backups(
    prefix_uri: str,
    keep_last: int,
    transport_params: dict[str, Any] | None = None,
    dry_run: bool = False,
) -> list[BackupInfo]:
    """Delete all but the ``keep_last`` newest complete backups; returns the deleted ones.

    Only listed (complete) backups are touched, with their rehearsal sidecars (see
    :data:`SIDECAR_SUFFIXES`). The sidecars and then the manifest go first, so an
    interrupted prune never leaves a listed backup without its dump, nor a sidecar that no
    later prune would find. A multi-part dump goes whole (:func:`_delete_parts`).
    """
    from .parts.layout import MANIFEST_NAME

    if keep_last < 0:
        raise ValueError("keep_last must be 0 or more")
    backups = list_backups(prefix_uri, transport_params)
    doomed = backups[keep_last:]
    if dry_run or not doomed:
        return doomed
    backend = backend_for(prefix_uri, transport_params)
    for backup in doomed:
        key = parse_location(backup.uri).key
        with translated_errors("deleting", parse_location(backup.uri)):
            for sidecar in (key + suffix for suffix in SIDECAR_SUFFIXES):
                if backend.stat(sidecar) is not None:
                    backend.delete(sidecar)
            if backend.stat(key) is None and backend.stat(key + "/" + MANIFEST_NAME):
                _delete_parts(backend, key)
            else:
                backend.delete(manifest_key(key))
                backend.delete(key)
        logger.info("pruned backup %s", safe_uri(backup.uri))
    return doomed


def _delete_parts(backend: Backend, dump_key: str) -> None:
    """Delete a multi-part dump whole: its manifest first (from then on it is no backup,
    so an interrupted prune never leaves a listed dump with parts missing), then every
    part under its prefix, those of an earlier attempt too."""
    from .parts.layout import MANIFEST_NAME, PART_NAME

    prefix = dump_key + "/"
    backend.delete(prefix + MANIFEST_NAME)
    for info in list(backend.list(prefix)):
        if PART_NAME.fullmatch(info.key[len(prefix) :]):
            backend.delete(info.key)
    if backend.location.scheme == "file":
        with suppress(OSError):  # the folder is left when something else is in it
            Path(prefix).rmdir()


def verify_backup(
    uri: str,
    transport_params: dict[str, Any] | None = None,
    *,
    allow_unverified: bool = False,
    allow_routines: bool = False,
    target: Engine | None = None,
    options: RestoreOptions | None = None,
    encryption: Encryption | None = None,
) -> VerifyReport:
    """Read the whole dump at ``uri`` and check it as a restore would, without running it.

    Every rule the restore applies to the dump itself is applied (:mod:`.preflight`), with
    ``allow_unverified`` and ``allow_routines`` meaning what they mean for the restore.
    The rules of a target server (its roles and extensions) are applied only when
    ``target``, the engine of the database a restore would go into, is given (with the
    restore's ``options``, which decide whether a missing role refuses the dump): a dump
    verified without one may still lack something on the server it is restored to.

    A multi-part dump is checked by :func:`.parts.verify.verify_parts`: its manifest, then
    every part with the same rules (``allow_unverified`` does not apply to parts, which
    always have a header and trailer); the report names the part a problem is in.

    An encrypted dump is read with a key of ``encryption``; without one the report's
    ``error`` says it cannot be verified without its key.

    Raises:
        StorageNotFoundError: If nothing exists at ``uri``.
        StorageError: If the store cannot be read; problems of the dump itself are reported.
        EncryptionKeyError: If no key given unwraps the dump's data key.
    """
    from .dump.reader import entries_from_stream
    from .dump.safety import routines_trusted
    from .parts.layout import is_multipart
    from .parts.verify import verify_parts
    from .preflight import DumpRules
    from .sealed_manifests import is_sealed, opened_fields

    location = parse_location(uri)
    report = VerifyReport(uri=location.safe)
    if is_multipart(uri, transport_params):
        return verify_parts(
            uri,
            transport_params,
            report,
            allow_routines=allow_routines,
            target=target,
            options=options,
            encryption=encryption,
        )
    rules = DumpRules(
        allow_unverified=allow_unverified,
        allow_routines=allow_routines,
        target=target,
        options=options,
    )
    verifier = rules.verifier
    report.target_checked = rules.target_checked
    try:
        with open_for_read(uri, transport_params, encryption=encryption) as stream:
            # The restore's trust rule: routines of an authenticated dump are allowed.
            rules.allow_routines = routines_trusted(allow_routines, authenticated(stream))
            for line, record, raw in entries_from_stream(stream):
                rules.check(line, record, raw)
            rules.finish()
    except DumpError as exc:
        report.error, report.error_line = str(exc), exc.line
    except StorageError:
        raise
    except Exception as exc:  # noqa: BLE001 - a broken read or a corrupt compressed frame
        report.error = f"{type(exc).__name__}: {scrub(str(exc))}"
    report.header = verifier.header
    report.tables = dict(verifier.digest.rows)
    report.records = verifier.digest.records
    report.trailer_ok = verifier.trailer is not None
    report.unverified = verifier.legacy
    report.roles, report.extensions = sorted(rules.roles), sorted(rules.extensions)
    report.ok = (report.trailer_ok or verifier.legacy) and report.error is None
    backend = backend_for(uri, transport_params)
    with translated_errors("describing", location):
        info = backend.stat(location.key)
        report.size = info.size if info else None
        if backend.stat(manifest_key(location.key)) is not None:
            manifest = _read_manifest(backend, manifest_key(location.key))
            sealed = manifest is not None and is_sealed(manifest)
            envelope = _envelope(backend, location.key) if sealed else None
            opened = (
                opened_fields(manifest, envelope, encryption, location.safe)
                if manifest is not None
                else None
            )
            report.manifest_ok = (
                manifest is not None
                and opened is not None
                and manifest["size"] == report.size
                and verifier.trailer is not None
                and opened.get("digest") == verifier.trailer.get("digest")
            )
    return report


def find_backup(
    uri: str,
    transport_params: dict[str, Any] | None = None,
    *,
    encryption: Encryption | None = None,
) -> BackupInfo | None:
    """The backup at ``uri`` as :func:`list_backups` would list it, from its manifest alone;
    ``None`` when it has no manifest of ours that matches it (the dump may still be whole:
    only :func:`verify_backup` can tell).

    A multi-part dump is found when its manifest checks out and every part it names is
    stored with the size the manifest records.

    Raises:
        StorageNotFoundError: If nothing exists at ``uri``.
    """
    from .parts.layout import is_multipart, prefix_key

    backend = backend_for(uri, transport_params)
    location = backend.location
    if is_multipart(uri, transport_params):
        _, prefix = prefix_key(uri, transport_params)
        dump_key = prefix[:-1]
        with translated_errors("listing", location):
            objects = {o.key: o for o in backend.list(prefix)}
            return _listed_parts(backend, dump_key, objects, encryption)
    dump = _stat_dump(backend)
    manifest = _read_manifest(backend, manifest_key(location.key))
    if manifest is None or manifest["size"] != dump.size:
        return None
    return _backup_info(backend, location.key, dump, manifest, dump.modified, encryption)
