"""``COPY (one text column) TO STDOUT (FORMAT binary)``, read with libpq calls directly.

psycopg's Copy object spends Python on every row (a generator and a wait per row; see
docs/performance.md). A backup's rendered rows are already the bytes it writes, so this
reads the CopyData messages with ``PGconn.get_copy_data`` in a plain loop and waits on the
socket only when libpq has no whole row buffered. Binary format, so the text arrives as it
is: no COPY escaping to undo. Uses psycopg's low-level ``pq`` interface (public, but below
the connection: psycopg's own state is untouched, and every exit leaves the connection idle
in its transaction or raises); tests/integration/test_dialect_postgresql.py covers it.
"""

from __future__ import annotations

import select
from collections.abc import Generator
from contextlib import suppress
from typing import Any

import psycopg
from psycopg import errors, pq

#: The binary COPY header (signature, flags, extension length) before the first row.
_HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)
#: Each row: a field count (1) and the field's length, then the text.
_ROW_PREFIX = 6
#: The trailer: a field count of -1.
_TRAILER = b"\xff\xff"


def copy_text_rows(
    conn: psycopg.Connection[Any], query: str, batch_rows: int, batch_bytes: int
) -> Generator[tuple[int, bytes], None, None]:
    """(rows, the rows' texts joined by commas) for ``COPY (query) TO STDOUT``, at most
    ``batch_rows`` rows or about ``batch_bytes`` bytes at a time. The query must return one
    non-NULL text column. Closing the generator early cancels the COPY."""
    pgconn = conn.pgconn
    encoding = conn.info.encoding
    pgconn.send_query(f"COPY ({query}) TO STDOUT (FORMAT binary)".encode())
    while pgconn.flush():
        select.select([], [pgconn.socket], [])
    result = pgconn.get_result()
    if result is None or result.status != pq.ExecStatus.COPY_OUT:
        _finish(pgconn, encoding, result)
        raise psycopg.InterfaceError("COPY TO STDOUT did not start")
    ended = False
    try:
        rest = yield from _rows(pgconn, batch_rows, batch_bytes)
        ended = True  # the server said the COPY is over; its result is still to be read
        if rest is not None:
            yield rest
    finally:
        if not ended:  # closed early: stop the server, skip what it already sent
            conn.cancel_safe()
            with suppress(psycopg.OperationalError):
                while pgconn.get_copy_data(0)[0] > 0:
                    pass
        _finish(pgconn, encoding, None, raise_error=ended)


def _rows(
    pgconn: Any, batch_rows: int, batch_bytes: int
) -> Generator[tuple[int, bytes], None, tuple[int, bytes] | None]:
    """Full batches until the COPY ends; returns the last, partial one."""
    get = pgconn.get_copy_data
    rows: list[Any] = []
    size = 0
    nbytes, data = get(1)
    first = True
    while True:
        if nbytes > 0:
            if first:
                if bytes(data[: len(_HEADER)]) != _HEADER:
                    raise psycopg.DataError("not a binary COPY stream")
                data = data[len(_HEADER) :]
                nbytes -= len(_HEADER)
                first = False
            if nbytes == len(_TRAILER) and bytes(data) == _TRAILER:
                pass
            else:
                rows.append(data[_ROW_PREFIX:])
                size += nbytes
                if len(rows) >= batch_rows or size >= batch_bytes:
                    yield len(rows), b",".join(rows)
                    rows, size = [], 0
        elif nbytes == 0:  # no whole row in libpq's buffer: wait for the socket
            select.select([pgconn.socket], [], [])
            pgconn.consume_input()
        else:  # -1, the end (psycopg raises for -2, a broken connection)
            return (len(rows), b",".join(rows)) if rows else None
        nbytes, data = get(1)


def _finish(pgconn: Any, encoding: str, result: Any, raise_error: bool = True) -> None:
    """Read the results left after the COPY; raise the first error among them."""
    error = None
    while True:
        if result is not None and result.status not in (
            pq.ExecStatus.COMMAND_OK,
            pq.ExecStatus.COPY_OUT,
        ):
            error = error or errors.error_from_result(result, encoding=encoding)
        result = pgconn.get_result()
        if result is None:
            break
    if error is not None and raise_error:
        raise error
