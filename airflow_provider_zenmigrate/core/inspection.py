"""Describing one dump by reading it: its header, tables with their columns, rows and bytes,
and objects by kind, as far as it can be read (``zenmigrate inspect``, the Backups view's
backup page). Unlike :func:`.catalog.verify_backup` it checks no statement."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .crypto import Encryption
from .dump.reader import DumpVerifier, entries_from_stream
from .dump.records import Record
from .errors import DumpError
from .parts.layout import child_uri, is_multipart
from .parts.reading import load_manifest, missing_parts
from .storage import backend_for, open_for_read, safe_uri


@dataclass
class TableContents:
    """One table of a dump, as :func:`inspect_backup` counted it."""

    rows: int = 0
    #: Bytes of its lines in the dump, uncompressed (its table record and data records); of
    #: a multi-part dump, the stored bytes of its data parts.
    bytes: int = 0
    columns: int = 0


@dataclass
class BackupInspection:
    """What :func:`inspect_backup` read in a dump; ``error`` says where it stopped reading."""

    uri: str
    #: The stored (possibly compressed) size; ``None`` when the store does not say.
    size: int | None
    #: Bytes of its lines; ``None`` for a multi-part dump (only its schema part is read).
    uncompressed: int | None
    #: The header without its ``kind`` (empty for the legacy (unverified) format).
    header: dict[str, Any]
    tables: dict[str, TableContents]
    #: How many objects of each kind (``view``, ``trigger``, ...) the dump holds.
    objects: dict[str, int]
    #: Complete and matching its trailer.
    verified: bool
    #: The legacy (unverified) format: no header and no trailer.
    legacy: bool
    error: str | None = None
    #: A multi-part dump: how many parts its manifest names (``None`` for a single stream).
    parts: int | None = None

    @property
    def revision(self) -> str | None:
        """The Alembic revision at backup time (heads joined by ``+`` when several)."""
        revisions = self.header.get("revisions") or []
        return "+".join(revisions) if revisions else None

    @property
    def rows(self) -> int:
        return sum(t.rows for t in self.tables.values())


def inspect_backup(
    uri: str,
    transport_params: dict[str, Any] | None = None,
    *,
    encryption: Encryption | None = None,
) -> BackupInspection:
    """Read the whole dump at ``uri`` and describe it: header, tables with their columns,
    rows and bytes, objects by kind, and whether it is complete and matches its trailer.

    A dump in the legacy (unverified) format is described too. A damaged dump is described
    as far as it could be read, with the reason in ``error``; no statement is checked (that
    is :func:`verify_backup`'s work).

    A multi-part dump is described from its manifest (rows, stored bytes, parts) and its
    schema part (header, columns, objects), not its data parts: ``verified`` then means the
    manifest checks out, every part is stored and the schema part matches the manifest;
    :func:`verify_backup` reads every part.

    An encrypted dump is read with a key of ``encryption``; without one, ``error`` says so
    (its public envelope: :func:`.storage.envelope_at`).

    Raises:
        StorageNotFoundError: If nothing exists at ``uri``.
        StorageError: If the store cannot be read.
    """
    if is_multipart(uri, transport_params):
        return _inspect_parts(uri, transport_params, encryption)
    found, _trailer = _inspect_stream(uri, transport_params, encryption)
    return found


def _inspect_parts(
    uri: str, transport_params: dict[str, Any] | None, encryption: Encryption | None
) -> BackupInspection:
    """:func:`inspect_backup` of a multi-part dump (see there)."""
    try:
        manifest = load_manifest(uri, transport_params, encryption)
    except DumpError as exc:
        return BackupInspection(safe_uri(uri), None, None, {}, {}, {}, False, False, str(exc))
    schema = manifest.parts[0]
    found, trailer = _inspect_stream(
        child_uri(uri, schema.name), transport_params, manifest.encryption
    )
    header = {k: v for k, v in found.header.items() if k != "part"}
    error = found.error
    missing = missing_parts(uri, transport_params, manifest)
    where = safe_uri(child_uri(uri, schema.name))
    if error is None and header != {k: v for k, v in manifest.header.items() if k != "kind"}:
        error = f"{where}: its header is not the manifest's"
    elif error is None and (trailer or {}).get("digest") != schema.digest:
        error = f"{where}: its digest is not the manifest's: the part was changed or replaced"
    elif error is None and missing:
        error = f"{safe_uri(child_uri(uri, missing[0]))}: the part is missing"
    for name, table in found.tables.items():
        table.rows = manifest.tables.get(name, 0)
        table.bytes = sum(p.bytes for p in manifest.data_parts() if p.table == name)
    found.uri = safe_uri(uri)
    found.size = manifest.size
    found.uncompressed = None
    found.header = header
    found.error = error
    found.verified = error is None
    found.parts = len(manifest.parts)
    return found


def _inspect_stream(
    uri: str, transport_params: dict[str, Any] | None, encryption: Encryption | None = None
) -> tuple[BackupInspection, Record | None]:
    """:func:`inspect_backup` of one stream, and its trailer (``None`` without one)."""
    verifier = DumpVerifier(allow_unverified=True)
    tables: dict[str, TableContents] = {}
    objects: dict[str, int] = {}
    error: str | None = None
    total = 0
    try:
        with open_for_read(uri, transport_params, encryption=encryption) as stream:
            for line, record, raw in entries_from_stream(stream):
                size = len(raw) + 1 if raw is not None else 0
                total += size
                checked = verifier.check(line, record, raw)
                kind = checked.get("kind")
                if kind == "table":
                    columns = len(checked.get("columns") or [])
                    tables[checked["table"]] = TableContents(bytes=size, columns=columns)
                elif kind == "data":
                    table = tables[checked["table"]]
                    table.rows += len(checked["data"])
                    table.bytes += size
                elif kind == "object":
                    object_type = str(checked.get("object_type"))
                    objects[object_type] = objects.get(object_type, 0) + 1
            verifier.finish()
    except DumpError as exc:
        error = str(exc)
    backend = backend_for(uri, transport_params)
    info = backend.stat(backend.location.key)
    return BackupInspection(
        uri=safe_uri(uri),
        size=info.size if info else None,
        uncompressed=total,
        header={k: v for k, v in (verifier.header or {}).items() if k != "kind"},
        tables=tables,
        objects=objects,
        verified=error is None and verifier.trailer is not None,
        legacy=verifier.legacy,
        error=error,
    ), verifier.trailer
