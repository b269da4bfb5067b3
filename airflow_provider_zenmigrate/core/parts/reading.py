"""Reading a multi-part dump: its manifest, and each part checked as it streams, against
its own trailer and against what the manifest says of it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from ..crypto import Encryption, Envelope
from ..dump.reader import Entry, entries_from_stream
from ..dump.records import Record
from ..errors import DumpError, DumpIntegrityError, StorageNotFoundError
from ..preflight import DumpRules
from ..storage import open_for_read, safe_uri, translated_errors
from .layout import MANIFEST_NAME, child_uri, prefix_key
from .manifest import PartEntry, PartsManifest, parse_manifest, public_parts

#: Makes the rules one part is checked by (each part is a dump stream of its own).
RulesFactory = Callable[[], DumpRules]


def load_manifest(
    uri: str,
    transport_params: dict[str, Any] | None = None,
    encryption: Encryption | None = None,
) -> PartsManifest:
    """The checked manifest of the multi-part dump at ``uri`` (an encrypted one opened
    with a key of ``encryption``: see :func:`.manifest.parse_manifest`).

    Raises:
        StorageNotFoundError: If there is none (no dump, or one whose backup never finished).
    """
    backend, prefix = prefix_key(uri, transport_params)
    key = prefix + MANIFEST_NAME
    with translated_errors("reading", backend.location):
        if backend.stat(key) is None:
            raise StorageNotFoundError(f"backup not found: {safe_uri(uri)}")
        data = backend.read_bytes(key)
    return parse_manifest(data, safe_uri(child_uri(uri, MANIFEST_NAME)), encryption)


def manifest_envelope(uri: str, transport_params: dict[str, Any] | None = None) -> Envelope | None:
    """The public envelope of an encrypted multi-part dump at ``uri`` (from its manifest,
    readable without the key); ``None`` for a plaintext one."""
    backend, prefix = prefix_key(uri, transport_params)
    key = prefix + MANIFEST_NAME
    with translated_errors("reading", backend.location):
        if backend.stat(key) is None:
            raise StorageNotFoundError(f"backup not found: {safe_uri(uri)}")
        data = backend.read_bytes(key)
    public = public_parts(data, safe_uri(child_uri(uri, MANIFEST_NAME)))
    return public.envelope if public is not None else None


def _same_header(header: Record, manifest: PartsManifest) -> bool:
    return {k: v for k, v in header.items() if k != "part"} == manifest.header


def checked_part(
    uri: str,
    transport_params: dict[str, Any] | None,
    manifest: PartsManifest,
    entry: PartEntry,
    rules: DumpRules,
    table_records: dict[str, Record] | None = None,
    *,
    authenticate_first: bool = True,
) -> Iterator[Entry]:
    """The records of part ``entry``, each passed by ``rules`` (a part is a complete dump
    stream), and the part matched against the manifest: its header is the dump's, it holds
    what the manifest says (the schema part no data; a data part the record of its table,
    the same as the schema part's in ``table_records``, then that table's rows), and its
    trailer's digest and row count are the manifest's. Raises :class:`DumpIntegrityError`
    naming the part otherwise; the last entry comes only once all of it is checked.

    The parts of an encrypted dump are read under its data key (``manifest.encryption``),
    a plaintext part refused; with ``authenticate_first`` (a restore) every segment of the
    part is authenticated before its first record is read, so no row of a tampered part
    reaches the staging area. A verify, which loads nothing, reads each part once.
    """
    where = safe_uri(child_uri(uri, entry.name))
    try:
        yield from _checked_part(
            where, uri, transport_params, manifest, entry, rules, table_records, authenticate_first
        )
    except DumpError as exc:  # a part's own stream refused it: name the part
        if str(exc).startswith(where):
            raise
        named = type(exc)(f"{where}: {exc}")
        named.line = exc.line
        raise named from exc


def _checked_part(
    where: str,
    uri: str,
    transport_params: dict[str, Any] | None,
    manifest: PartsManifest,
    entry: PartEntry,
    rules: DumpRules,
    table_records: dict[str, Record] | None,
    authenticate_first: bool,
) -> Iterator[Entry]:
    with open_for_read(
        child_uri(uri, entry.name),
        transport_params,
        encryption=manifest.encryption,
        authenticate_first=authenticate_first and manifest.encryption is not None,
    ) as stream:
        pending: Entry | None = None
        for line, record, raw in entries_from_stream(stream):
            checked = rules.check(line, record, raw)
            kind = checked.get("kind")
            if rules.verifier.legacy:
                raise DumpIntegrityError(
                    f"{where}: the part has no header (a part is never in the legacy "
                    "(unverified) format)",
                    line,
                )
            if kind == "header":
                part = checked.get("part") or {}
                span = part.get("span")
                if (
                    not _same_header(checked, manifest)
                    or part.get("table") != entry.table
                    or (tuple(span) if span is not None else None) != entry.span
                ):
                    raise DumpIntegrityError(f"{where}: not the part the manifest names", line)
            elif entry.kind == "schema" and kind == "data":
                raise DumpIntegrityError(f"{where}: the schema part holds rows", line)
            elif entry.kind == "data" and kind == "object":
                raise DumpIntegrityError(f"{where}: a data part holds an object record", line)
            elif entry.kind == "data" and kind in ("table", "data"):
                if checked.get("table") != entry.table:
                    raise DumpIntegrityError(
                        f"{where}: holds table {checked.get('table')!r}, not {entry.table!r}",
                        line,
                    )
                if kind == "table" and table_records is not None:
                    expected = table_records.get(str(entry.table))
                    if expected is None or expected != checked:
                        raise DumpIntegrityError(
                            f"{where}: table {entry.table!r} differs from the schema part's",
                            line,
                        )
            if pending is not None:
                yield pending
            pending = (line, checked, raw)
        rules.finish()
        trailer = rules.verifier.trailer
        assert trailer is not None  # finish() raised otherwise
        if trailer.get("digest") != entry.digest:
            raise DumpIntegrityError(
                f"{where}: its digest {trailer.get('digest')} is not the manifest's "
                f"{entry.digest}: the part was changed or replaced"
            )
        rows = sum(int(t.get("rows", 0)) for t in (trailer.get("tables") or {}).values())
        if rows != entry.rows:
            raise DumpIntegrityError(f"{where}: {rows} rows, the manifest says {entry.rows}")
        if pending is not None:
            yield pending


def missing_parts(
    uri: str, transport_params: dict[str, Any] | None, manifest: PartsManifest
) -> list[str]:
    """The parts the manifest names that the store does not hold (one listing)."""
    backend, prefix = prefix_key(uri, transport_params)
    with translated_errors("listing", backend.location):
        present = {info.key[len(prefix) :] for info in backend.list(prefix)}
    return [p.name for p in manifest.parts if p.name not in present]
