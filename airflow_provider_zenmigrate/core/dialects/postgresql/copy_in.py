"""Rows into a PostgreSQL table by COPY FROM STDIN, for the restore writer and for the
loading connections of a parallel restore (:mod:`.staging`).

One COPY stays open across the chunks of a table; any other statement on the connection ends
it first (:meth:`CopyIn.end`). Bulk text is sent by a thread of its own, so that the server
parses one chunk while the next is made (in C, without the GIL): sent in line, the server
sat idle while the client built each chunk. One chunk is in flight at a time. A small chunk
(a small table's only one) is written in line: the socket takes it at once, and a thread's
start cost more than the overlap gained.

A large table whose column types allow it goes by binary COPY instead (:mod:`.copy_binary`),
which the server reads without parsing each value's text.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any, NamedTuple

import psycopg

from ...dump.chunk import Chunk
from ...dump.model import TableSpec
from ..text_rows import BULK_CODECS, bulk_text, chunk_text
from .copy_binary import SIGNATURE, TRAILER, binary_kinds
from .names import quote_ident
from .render import bytea_copy_column

#: Text shorter than this is written in line (see above).
INLINE_BYTES = 256 * 1024
#: A table whose first record holds this much goes by binary COPY where its columns allow
#: (copy_binary); a smaller one's text is parsed sooner than its column types are read.
BINARY_BYTES = INLINE_BYTES


class _Open(NamedTuple):
    qualified: str
    binary: bool
    cursor: psycopg.Cursor[Any]
    copy: psycopg.Copy
    manager: Any


class CopyIn:
    """The open COPY of one connection, and the rows the server took by it."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self._conn = conn
        self._open: _Open | None = None
        self._sending: _Send | None = None
        #: Each table's binary COPY kinds (None: text), decided at its first chunk.
        self._kinds: dict[str, bytes | None] = {}
        #: Rows the server reported for the COPYs ended so far (and the INSERTs).
        self.rows = 0

    def _into(self, qualified: str, table: TableSpec, binary: bool = False) -> psycopg.Copy:
        self._settle()
        if self._open is not None and self._open[:2] == (qualified, binary):
            return self._open.copy
        self.end()
        columns = ", ".join(quote_ident(c.name) for c in table.columns)
        options = " (FORMAT binary)" if binary else ""
        cursor = self._conn.cursor()
        try:
            manager = cursor.copy(f"COPY {qualified} ({columns}) FROM STDIN{options}".encode())
            copy = manager.__enter__()
        except BaseException:
            cursor.close()
            raise
        self._open = _Open(qualified, binary, cursor, copy, manager)
        if binary:  # a failure here is a failed write: the caller ends the COPY with it
            copy.write(SIGNATURE)
        return copy

    def rows_of(self, qualified: str, table: TableSpec, rows: list[tuple[Any, ...]]) -> None:
        """Python values, as a backup reader gives them."""
        if not rows:
            return
        if not table.columns:  # a table with no columns (or only generated ones)
            self.end()
            with self._conn.cursor() as cur:
                for _ in rows:
                    cur.execute(f"INSERT INTO {qualified} DEFAULT VALUES".encode())
            self.rows += len(rows)
            return
        copy = self._into(qualified, table)
        for row in rows:
            copy.write_row(row)

    def chunk(self, qualified: str, table: TableSpec, chunk: Chunk) -> bool:
        """A data record's rows, in binary COPY or as COPY text straight from the record
        where they can be (see copy_binary and chunk_text), else as :meth:`encoded`; False
        as there."""
        kinds = self._binary_kinds(qualified, table, chunk)
        if kinds is not None:
            data = chunk.binary(kinds)
            if data is not None:
                self._send(qualified, table, data, binary=True)
                return True
            self._kinds[qualified] = None  # a value the C code does not take: text from here
        text = chunk_text(table, chunk, "x")
        if text is None:
            return self.encoded(qualified, table, chunk.columns())
        if text:
            self._send(qualified, table, text)
        return True

    def encoded(self, qualified: str, table: TableSpec, columns: list[Sequence[Any]]) -> bool:
        """Columns still in the dump's encoding, written as COPY text; False (nothing
        written) where a codec needs its values decoded first."""
        if not table.columns or not {c.codec for c in table.columns} <= BULK_CODECS:
            return False
        if not columns[0]:
            return True
        # COPY parses the dump's decimal, float and date/time text exactly as the backup
        # read it; only bytea is turned from base64 into COPY's hex form here.
        columns = list(columns)
        for i, column in enumerate(table.columns):
            if column.codec == "bytes":
                columns[i] = bytea_copy_column(table, i, columns[i])
        self._send(qualified, table, bulk_text(table, columns))
        return True

    def _binary_kinds(self, qualified: str, table: TableSpec, chunk: Chunk) -> bytes | None:
        """The table's binary COPY kinds, decided at its first chunk (see BINARY_BYTES)."""
        if qualified not in self._kinds:
            large = chunk.line_bytes >= BINARY_BYTES
            if large:
                self.end()  # the catalog is read between COPYs
            self._kinds[qualified] = binary_kinds(self._conn, qualified, table) if large else None
        return self._kinds[qualified]

    def _send(self, qualified: str, table: TableSpec, text: bytes, binary: bool = False) -> None:
        """Hand ``text`` to a sending thread once the text before it is sent (whose error
        this raises)."""
        copy = self._into(qualified, table, binary)
        if len(text) < INLINE_BYTES:
            copy.write(memoryview(text))  # see _Send._run
            return
        self._sending = _Send(copy, text)

    def _settle(self, failed: BaseException | None = None) -> None:
        """Wait for the text in flight; raise its error, unless the COPY already ``failed``."""
        sending, self._sending = self._sending, None
        if sending is not None:
            sending.wait(raise_error=failed is None)

    def end(self, failed: BaseException | None = None) -> None:
        """Finish the open COPY (or abort it, after ``failed`` or a failed send)."""
        try:
            self._settle(failed)
        except BaseException as exc:
            self._close(exc)
            raise
        self._close(failed)

    def _close(self, failed: BaseException | None) -> None:
        if self._open is None:
            return
        _name, binary, cursor, copy, manager = self._open
        self._open = None
        try:
            if failed is None and binary:
                try:
                    copy.write(TRAILER)
                except BaseException as exc:
                    failed = exc
                    raise
            if failed is None:
                manager.__exit__(None, None, None)
                self.rows += max(cursor.rowcount, 0)
        finally:
            if failed is not None:
                manager.__exit__(type(failed), failed, failed.__traceback__)
            cursor.close()


class _Send:
    """One chunk's text being written into a COPY by a thread of its own; the connection is
    left alone by everything else until :meth:`wait` returns."""

    def __init__(self, copy: psycopg.Copy, text: bytes) -> None:
        self._copy = copy
        self._text = text
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="zenmigrate-copy", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            # psycopg sends a large buffer in slices of 128 KB: a memoryview's cost no copy.
            self._copy.write(memoryview(self._text))
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread
            self._error = exc

    def wait(self, raise_error: bool = True) -> None:
        """Until the text is sent, even when a signal's handler raises meanwhile: nothing
        else may touch the connection before."""
        try:
            self._thread.join()
        finally:
            if self._thread.is_alive():
                self._thread.join()
        if self._error is not None and raise_error:
            error, self._error = self._error, None
            raise error
