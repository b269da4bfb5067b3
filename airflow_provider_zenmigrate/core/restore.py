"""Restoring a dump: load into a staging area while verifying, then swap it in."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Engine

from .dialects import get_dialect
from .dialects.base import RestoreWriter
from .dump.codecs import Decoder, decoders
from .dump.model import ColumnSpec, ObjectSpec, TableSpec
from .dump.reader import DumpVerifier, Entry
from .dump.records import Record
from .errors import DumpIntegrityError

logger = logging.getLogger(__name__)


@dataclass
class RestoreSummary:
    """What a restore put in place."""

    tables: dict[str, int] = field(default_factory=dict)
    header: Record | None = None
    verified: bool = True

    @property
    def rows(self) -> int:
        return sum(self.tables.values())


@dataclass
class _Table:
    spec: TableSpec
    names: list[str]
    decode: list[Decoder]
    created: bool = True


def table_spec(record: Record) -> TableSpec:
    columns = tuple(
        ColumnSpec(name=c["name"], codec=c["codec"], type=str(c.get("type", "")))
        for c in record.get("columns") or ()
    )
    return TableSpec(
        name=record["table"],
        create_stmt=record["create_stmt"],
        columns=columns,
        key=tuple(record.get("key") or ()),
        options=dict(record.get("options") or {}),
    )


class _Loader:
    """Applies verified records to a RestoreWriter."""

    def __init__(self, writer: RestoreWriter) -> None:
        self.writer = writer
        self.tables: dict[str, _Table] = {}

    def apply(self, record: Record) -> None:
        kind = record["kind"]
        if kind == "table":
            spec = table_spec(record)
            self.writer.create_table(spec)
            codecs = [c.codec for c in spec.columns]
            self.tables[spec.name] = _Table(spec, [c.name for c in spec.columns], decoders(codecs))
        elif kind == "data":
            self._load(self.tables[record["table"]], record["data"])
        elif kind == "object":
            self.writer.create_object(
                ObjectSpec(
                    object_type=record["object_type"],
                    name=record["name"],
                    create_stmt=record["create_stmt"],
                    table=record.get("table"),
                )
            )

    def _load(self, table: _Table, data: list[dict[str, Any]]) -> None:
        if not data:
            return
        if not table.names:  # the seed's dumps declare no columns: take them from the rows
            names = list(data[0])
            table.names = names
            table.decode = decoders(["native"] * len(names))
            columns = tuple(ColumnSpec(name=n, codec="native") for n in names)
            table.spec = TableSpec(table.spec.name, table.spec.create_stmt, columns)
        names, decode = table.names, table.decode
        rows = [tuple(d(row[n]) for n, d in zip(names, decode, strict=True)) for row in data]
        self.writer.load_rows(table.spec, rows)


def restore_entries(
    engine: Engine, entries: Iterable[Entry], *, allow_unverified: bool = False
) -> RestoreSummary:
    """Restore a dump into ``engine``'s (existing) database, atomically.

    Everything is loaded into a staging area; the target is replaced only once the whole
    stream was read, its trailer verified and the staging row counts match it.
    """
    verifier = DumpVerifier(allow_unverified=allow_unverified)
    label = uuid.uuid4().hex[:8]
    with get_dialect(engine).open_restore(engine, label) as writer:
        loader = _Loader(writer)
        for line, record, raw in entries:
            loader.apply(verifier.check(line, record, raw))
        verifier.finish()
        summary = RestoreSummary(header=verifier.header, verified=not verifier.legacy)
        for name, table in loader.tables.items():
            loaded = writer.row_count(table.spec)
            expected = verifier.digest.rows.get(name, loaded) if not verifier.legacy else loaded
            if loaded != expected:
                raise DumpIntegrityError(
                    f"table {name!r}: {loaded} rows loaded, the dump holds {expected}"
                )
            summary.tables[name] = loaded
        writer.swap()
    logger.info("restored %d tables, %d rows", len(summary.tables), summary.rows)
    return summary
