"""The manifest of a multi-part dump: every part with its table, range, rows, size and
digest, and one digest over all the parts' digests. It is written last, so a dump without
one is incomplete; reading it refuses anything a restore could be misled by."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from ..crypto import Encryption, Envelope, SharedKey, envelope_from_json, missing_key
from ..crypto.metadata import open_json, seal_json
from ..dump.records import Record
from ..errors import DumpFormatError, DumpIntegrityError, EncryptionRequiredError
from .layout import PART_NAME

FORMAT = "zenmigrate-parts"
VERSION = 1
SEALED_PURPOSE = "parts manifest"


@dataclass(frozen=True)
class PartEntry:
    """One part as the manifest names it. ``kind`` is ``schema`` (part 0: the header's
    objects and every table's record, no data) or ``data`` (one table's rows, or the rows of
    ``span`` of it, in the units ``unit`` of its key or heap blocks)."""

    name: str
    kind: str
    digest: str
    bytes: int
    rows: int = 0
    table: str | None = None
    span: tuple[int | None, int | None] | None = None
    unit: str | None = None

    def record(self) -> dict[str, Any]:
        found = asdict(self)
        found["span"] = list(self.span) if self.span is not None else None
        return {k: v for k, v in found.items() if v is not None}


@dataclass
class PartsManifest:
    """What ``manifest.json`` holds (see :mod:`.layout` for where)."""

    header: Record
    parts: list[PartEntry]
    tables: dict[str, int]
    jobs: int = 1
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)
    #: An encrypted dump: its one data key, unwrapped (every part is read under it).
    encryption: SharedKey | None = field(default=None, repr=False, compare=False)

    @property
    def digest(self) -> str:
        return parts_digest(self.parts)

    @property
    def size(self) -> int:
        """Bytes of all parts as stored."""
        return sum(p.bytes for p in self.parts)

    def data_parts(self) -> list[PartEntry]:
        return [p for p in self.parts if p.kind == "data"]

    def to_json(self) -> bytes:
        return json.dumps(
            {
                "format": FORMAT,
                "version": VERSION,
                "header": {k: v for k, v in self.header.items() if k != "kind"},
                "parts": [p.record() for p in self.parts],
                "tables": self.tables,
                "rows": sum(self.tables.values()),
                "bytes": self.size,
                "digest": self.digest,
                "jobs": self.jobs,
                "seconds": round(self.seconds, 3),
                **self.extra,
            },
            indent=1,
        ).encode()


def sealed_json(manifest: PartsManifest, key: SharedKey) -> bytes:
    """The manifest of an encrypted multi-part dump: in the clear, an envelope carrying the
    backup's wrapped data key (and a stream id the seal is bound to) and each part's name
    and stored size (the store's listing shows those anyway), so a listing finds complete
    backups without the key; everything else (:meth:`PartsManifest.to_json`) sealed under
    the data key (:mod:`..crypto.metadata`), so it is neither readable nor changeable."""
    envelope, _part_key = key.seal_new()  # its stream id binds the seal; the key is the backup's
    return json.dumps(
        {
            "format": FORMAT,
            "version": VERSION,
            "encryption": envelope.public(),
            "parts": [{"name": p.name, "bytes": p.bytes} for p in manifest.parts],
            "bytes": manifest.size,
            "sealed": seal_json(
                key.data_key, envelope.stream_id, SEALED_PURPOSE, json.loads(manifest.to_json())
            ),
        },
        indent=1,
    ).encode()


@dataclass(frozen=True)
class PublicParts:
    """What anyone reading the store learns of an encrypted multi-part dump's manifest."""

    envelope: Envelope
    parts: list[tuple[str, int]]

    @property
    def size(self) -> int:
        return sum(size for _name, size in self.parts)


def public_parts(data: bytes, where: str) -> PublicParts | None:
    """The clear part of an encrypted multi-part dump's manifest; ``None`` for a plaintext
    one (or one that is not ours)."""
    try:
        raw = json.loads(data)
    except ValueError:
        return None
    if not isinstance(raw, dict) or raw.get("format") != FORMAT or "sealed" not in raw:
        return None
    envelope = envelope_from_json(raw.get("encryption"), where)
    try:
        parts = [(str(p["name"]), int(p["bytes"])) for p in raw["parts"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise DumpFormatError(f"{where}: a malformed part entry ({exc!r})") from None
    return PublicParts(envelope, parts)


def parts_digest(parts: list[PartEntry]) -> str:
    """SHA-256 over every part's name and digest, in order: the dump's one digest."""
    whole = hashlib.sha256()
    for part in parts:
        whole.update(f"{part.name}\t{part.digest}\n".encode())
    return whole.hexdigest()


def _entry(raw: Any, where: str) -> PartEntry:
    if not isinstance(raw, dict):
        raise DumpFormatError(f"{where}: a part entry is not an object")
    try:
        span = raw.get("span")
        entry = PartEntry(
            name=str(raw["name"]),
            kind=str(raw["kind"]),
            digest=str(raw["digest"]),
            bytes=int(raw["bytes"]),
            rows=int(raw.get("rows", 0)),
            table=None if raw.get("table") is None else str(raw["table"]),
            span=None if span is None else (_bound(span[0]), _bound(span[1])),
            unit=None if raw.get("unit") is None else str(raw["unit"]),
        )
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise DumpFormatError(f"{where}: a malformed part entry ({exc!r})") from None
    if not PART_NAME.fullmatch(entry.name):
        raise DumpFormatError(f"{where}: {entry.name!r} is not a part name")
    if entry.kind not in ("schema", "data") or (entry.kind == "data") != (entry.table is not None):
        raise DumpFormatError(f"{where}: part {entry.name} has kind {entry.kind!r}")
    return entry


def _bound(value: Any) -> int | None:
    return None if value is None else int(value)


def parse_manifest(data: bytes, where: str, encryption: Encryption | None = None) -> PartsManifest:
    """The manifest in ``data`` (read from ``where``, named in errors), checked: format and
    version, one schema part first, no part named twice, no table range covered twice,
    the rows add up, and its digest is the digest of its parts.

    An encrypted dump's manifest is opened with a key of ``encryption`` (its sealed part
    must authenticate and name the parts the clear part names); the manifest returned
    carries the unwrapped data key (``encryption``). A plaintext one is refused when
    ``encryption`` requires encryption.
    """
    try:
        raw = json.loads(data)
    except ValueError as exc:
        raise DumpFormatError(f"{where}: the manifest is not JSON ({exc})") from None
    if isinstance(raw, dict) and raw.get("format") == FORMAT and "sealed" in raw:
        return _opened(raw, where, encryption)
    manifest = _parsed(raw, where)
    if encryption is not None and encryption.require:
        raise EncryptionRequiredError(
            f"{where}: the multi-part dump is not encrypted, and an encrypted dump is required"
        )
    return manifest


def _opened(raw: dict[str, Any], where: str, encryption: Encryption | None) -> PartsManifest:
    public = public_parts(json.dumps(raw).encode(), where)
    assert public is not None
    if encryption is None or not encryption.keys:
        raise missing_key(public.envelope, where)
    shared = encryption.shared(public.envelope, where)
    inner = open_json(
        shared.data_key, public.envelope.stream_id, SEALED_PURPOSE, str(raw["sealed"]), where
    )
    manifest = _parsed(inner, where)
    if [(p.name, p.bytes) for p in manifest.parts] != public.parts:
        raise DumpIntegrityError(f"{where}: its parts in the clear are not its sealed parts")
    manifest.encryption = shared
    return manifest


def _parsed(raw: Any, where: str) -> PartsManifest:
    """A plaintext manifest's JSON, checked (see :func:`parse_manifest`)."""
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise DumpFormatError(f"{where}: not a {FORMAT} manifest")
    if raw.get("version") != VERSION:
        raise DumpFormatError(
            f"{where}: unknown manifest version {raw.get('version')!r} (this version reads "
            f"{VERSION})"
        )
    if not isinstance(raw.get("header"), dict) or not isinstance(raw.get("parts"), list):
        raise DumpFormatError(f"{where}: the manifest has no header or parts")
    parts = [_entry(p, where) for p in raw["parts"]]
    if not parts or parts[0].kind != "schema" or any(p.kind != "data" for p in parts[1:]):
        raise DumpFormatError(f"{where}: the manifest must list the schema part first, once")
    names = [p.name for p in parts]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise DumpIntegrityError(f"{where}: part {twice[0]} is listed twice")
    _check_spans(parts, where)
    tables = raw.get("tables")
    if not isinstance(tables, dict):
        raise DumpFormatError(f"{where}: the manifest has no table row counts")
    counted: dict[str, int] = {}
    for part in parts[1:]:
        assert part.table is not None
        counted[part.table] = counted.get(part.table, 0) + part.rows
    if any(counted.get(t, 0) != rows for t, rows in tables.items()) or set(counted) - set(tables):
        raise DumpIntegrityError(f"{where}: the parts' row counts do not add up to the tables'")
    manifest = PartsManifest(
        header={"kind": "header", **raw["header"]},
        parts=parts,
        tables={str(k): int(v) for k, v in tables.items()},
        jobs=int(raw.get("jobs", 1)),
        seconds=float(raw.get("seconds", 0.0)),
    )
    span_gaps(manifest, where)
    if raw.get("digest") != manifest.digest:
        raise DumpIntegrityError(
            f"{where}: the manifest's digest {raw.get('digest')!r} is not the digest of its "
            f"parts ({manifest.digest})"
        )
    return manifest


def _check_spans(parts: list[PartEntry], where: str) -> None:
    """A table is one whole part or spans that do not overlap (a part duplicated under a
    new name would load its rows twice)."""
    by_table: dict[str, list[PartEntry]] = {}
    for part in parts[1:]:
        assert part.table is not None
        by_table.setdefault(part.table, []).append(part)
    for table, found in by_table.items():
        if len(found) > 1 and any(p.span is None for p in found):
            raise DumpIntegrityError(f"{where}: table {table!r} has a whole part and others")
        spans = sorted(
            ((lo if lo is not None else -(2**63), hi if hi is not None else 2**63), p.name)
            for p in found
            if p.span is not None
            for lo, hi in [p.span]
        )
        for (first, name), (second, other) in zip(spans, spans[1:], strict=False):
            if second[0] < first[1]:
                raise DumpIntegrityError(
                    f"{where}: parts {name} and {other} of table {table!r} overlap"
                )


def span_gaps(manifest: PartsManifest, where: str) -> None:
    """Refuse a manifest whose data parts do not cover each table exactly: a table is one
    whole part, or spans whose first is open below, whose last is open above, and each of
    which starts where the one before ends (overlaps are refused by ``parse_manifest``).

    Raises:
        DumpIntegrityError: Naming the table and the gap.
    """
    by_table: dict[str, list[PartEntry]] = {}
    for part in manifest.data_parts():
        by_table.setdefault(str(part.table), []).append(part)
    for table, found in by_table.items():
        if len(found) == 1 and found[0].span is None:
            continue
        spans = sorted(
            (p.span for p in found if p.span is not None),
            key=lambda s: -(2**63) if s[0] is None else s[0],
        )
        if spans[0][0] is not None or spans[-1][1] is not None:
            raise DumpIntegrityError(f"{where}: the parts of table {table!r} miss an end of it")
        for before, after in zip(spans, spans[1:], strict=False):
            if before[1] != after[0]:
                raise DumpIntegrityError(
                    f"{where}: the parts of table {table!r} miss the span [{before[1]}, {after[0]})"
                )
