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
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from itertools import chain, groupby
from operator import itemgetter
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


#: Bytes of lines handed to the hashing thread at a time, and batches in flight at most:
#: what a dump's digests hold in memory beyond the lines being read (each batch is joined
#: into a copy per digest while it is hashed).
_HASH_BATCH_BYTES = 4 * 1024 * 1024
_HASH_BATCHES_IN_FLIGHT = 2
#: A batch of at most this many lines (of 256 KiB or more on average) is hashed a line at
#: a time instead of joined.
_LINES_HASHED_AS_THEY_ARE = 16

#: (the line, the table's digest for a data line, else None)
_Updates = list[tuple[bytes, Any]]


class _Hasher:
    """SHA-256 updates, in order, on one background thread.

    hashlib releases the GIL on large buffers, so the two digests of every line (a fifth of
    a restore's client CPU on a CPU without SHA extensions) run on the second core while
    the caller's thread parses and loads. The thread needs the GIL back after every update, and the
    parser holds it for milliseconds at a time, so a batch of lines is joined into one
    buffer per digest: two updates per batch, not two per line. :meth:`wait` returns once
    every update made so far is applied.
    """

    def __init__(self, whole: Any) -> None:
        self._whole = whole
        self._batch: _Updates = []
        self._size = 0
        self._in_flight: deque[Future[None]] = deque()
        self._pool: ThreadPoolExecutor | None = None

    def update(self, line: bytes, table: Any = None) -> None:
        """Every line goes into the whole digest (newline-terminated), a data line also into
        its table's."""
        self._batch.append((line, table))
        self._size += len(line)
        if self._size >= _HASH_BATCH_BYTES:
            self._submit()

    def _submit(self) -> None:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="zenmigrate-digest")
        self._in_flight.append(self._pool.submit(self._hash, self._batch))
        self._batch, self._size = [], 0
        while len(self._in_flight) > _HASH_BATCHES_IN_FLIGHT:
            self._in_flight.popleft().result()

    def _hash(self, updates: _Updates) -> None:
        if len(updates) <= _LINES_HASHED_AS_THEY_ARE:
            # Long lines (a backup's data records): an update each, the GIL given up for
            # each, costs less than copying them all twice into joined buffers.
            whole = self._whole
            for line, table in updates:
                whole.update(line)
                whole.update(b"\n")
                if table is not None:
                    table.update(line)
            return
        self._whole.update(b"".join(chain.from_iterable((line, b"\n") for line, _ in updates)))
        for table, group in groupby(updates, key=itemgetter(1)):
            if table is not None:
                table.update(b"".join(map(itemgetter(0), group)))

    def wait(self) -> None:
        if self._batch:
            self._submit()
        while self._in_flight:
            self._in_flight.popleft().result()
        if self._pool is not None:  # idle until the next update, if any: no thread kept
            self._pool.shutdown()
            self._pool = None


class DumpDigest:
    """Checksums of a dump as it streams: the whole digest and one per table's data."""

    def __init__(self) -> None:
        self._whole_dump = hashlib.sha256()
        self._tables: dict[str, Any] = {}
        self._hasher = _Hasher(self._whole_dump)
        self.rows: dict[str, int] = {}
        self.records = 0

    def add_line(self, line: bytes, record: Record) -> None:
        """Account for one record; ``line`` is its serialisation (no newline)."""
        self.records += 1
        kind = record.get("kind")
        if kind == "table":
            name = record["table"]
            self._tables[name] = hashlib.sha256()
            self.rows[name] = 0
        elif kind == "data":
            name = record["table"]
            # The verifier refuses data of undeclared tables before it gets here.
            table = self._tables.setdefault(name, hashlib.sha256())
            self._hasher.update(line, table)
            self.rows[name] = self.rows.get(name, 0) + len(record["data"])
            return
        self._hasher.update(line)

    def line_of(self, record: Record) -> bytes:
        """The record's canonical line, accounted for (what a writer writes)."""
        line = serialize(record)
        self.add_line(line, record)
        return line

    def add_data_line(self, line: bytes, table: str, rows: int) -> None:
        """Account for a data record built as a line (the backup's rendered rows)."""
        self.records += 1
        self._hasher.update(line, self._tables.setdefault(table, hashlib.sha256()))
        self.rows[table] = self.rows.get(table, 0) + rows

    def table_summary(self) -> dict[str, dict[str, Any]]:
        self._hasher.wait()
        return {
            name: {"rows": self.rows[name], "sha256": digest.hexdigest()}
            for name, digest in self._tables.items()
        }

    def hexdigest(self) -> str:
        self._hasher.wait()
        return self._whole_dump.hexdigest()

    def trailer(self) -> Record:
        return {
            "kind": "trailer",
            "records": self.records,
            "tables": self.table_summary(),
            "digest": self.hexdigest(),
        }
