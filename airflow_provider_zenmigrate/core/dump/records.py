"""Dump format v1: the records and their one canonical serialisation.

A dump is a sequence of JSON objects, one per line:

``header`` - format name and version, source dialect and server, database, creation time,
Alembic revisions, tool version; ``object`` records with ``phase: "pre"`` (types, sequences
that tables need); per table a ``table`` record (``table``, ``create_stmt``, ``columns``
with their codecs) then ``data`` records (``table``, ``data``: a list of ``{column: value}``)
; ``object`` records with ``phase: "post"`` (indexes, constraints, views, routines,
triggers); last a ``trailer`` with per-table row counts and checksums and a digest of every
line before it. Without a valid trailer a dump is incomplete and never restored.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

FORMAT = "zenmigrate-dump"
VERSION = 1

Record = dict[str, Any]

_encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def data_line(table: str, blocks: list[bytes]) -> bytes:
    """A data record's line from blocks of its rows' JSON objects (comma-separated)."""
    return b'{"kind":"data","table":' + serialize(table) + b',"data":[' + b",".join(blocks) + b"]}"


def serialize(record: Any) -> bytes:
    """The canonical line of a record (without the newline): what digests are taken over."""
    return _encoder.encode(record).encode("utf-8")


class DumpDigest:
    """Checksums of a dump as it streams: the whole digest and one per table's data."""

    def __init__(self) -> None:
        self._all = hashlib.sha256()
        self._tables: dict[str, Any] = {}
        self.rows: dict[str, int] = {}
        self.records = 0

    def add_line(self, line: bytes, record: Record) -> None:
        """Account for one record; ``line`` is its serialisation (no newline)."""
        self._all.update(line)
        self._all.update(b"\n")
        self.records += 1
        kind = record.get("kind")
        if kind == "table":
            name = record["table"]
            self._tables[name] = hashlib.sha256()
            self.rows[name] = 0
        elif kind == "data":
            name = record["table"]
            # The verifier refuses data of undeclared tables before it gets here.
            self._tables.setdefault(name, hashlib.sha256()).update(line)
            self.rows[name] = self.rows.get(name, 0) + len(record["data"])

    def add_data_line(self, line: bytes, table: str, rows: int) -> None:
        """Account for a data record built as a line (the backup's rendered rows)."""
        self._all.update(line)
        self._all.update(b"\n")
        self.records += 1
        self._tables.setdefault(table, hashlib.sha256()).update(line)
        self.rows[table] = self.rows.get(table, 0) + rows

    def table_summary(self) -> dict[str, dict[str, Any]]:
        return {
            name: {"rows": self.rows[name], "sha256": digest.hexdigest()}
            for name, digest in self._tables.items()
        }

    def hexdigest(self) -> str:
        return self._all.hexdigest()

    def trailer(self) -> Record:
        return {
            "kind": "trailer",
            "records": self.records,
            "tables": self.table_summary(),
            "digest": self.hexdigest(),
        }
