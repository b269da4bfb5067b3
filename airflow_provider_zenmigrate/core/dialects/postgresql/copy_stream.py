"""``COPY (query) TO STDOUT (FORMAT binary)``, read with libpq calls directly.

psycopg's Copy object spends Python on every row (a generator and a wait per row; see
docs/performance.md). A backup's rows become the bytes it writes, so this reads the
CopyData messages itself and waits on the socket only when libpq has no whole row buffered.
Binary format, so text arrives as it is: no COPY escaping to undo. Two ways:

- with :class:`JsonColumns` (the C module ``_copy_out`` and the libpq psycopg loaded), the
  query returns the table's columns and C writes each row as the dump's JSON object;
- otherwise the query returns one text column, the row already rendered as JSON by the
  server, and a Python loop joins them (one ``PGconn.get_copy_data`` call a row).

Uses psycopg's low-level ``pq`` interface and its documented ``pgconn_ptr`` (public, but
below the connection: psycopg's own state is untouched, and every exit leaves the connection
idle in its transaction or raises); tests/integration/test_dialect_postgresql.py covers it.
"""

from __future__ import annotations

import functools
import os
import select
from collections.abc import Generator
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import errors, pq

try:
    from . import _copy_out
except ImportError:  # built without a C compiler: the server renders the JSON
    _copy_out = None  # type: ignore[assignment]

#: The binary COPY header (signature, flags, extension length) before the first row.
_HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)
#: Each row: a field count (1) and the field's length, then the text.
_ROW_PREFIX = 6
#: The trailer: a field count of -1.
_TRAILER = b"\xff\xff"


@dataclass(frozen=True)
class JsonColumns:
    """How C writes a row's columns as its JSON object: a kind each (``_copy_out.c``: ``i``
    integer, ``b`` boolean, ``s`` text as a string, ``x`` bytes as base64) and the text
    before each value (``{"id":``, ``,"name":``)."""

    kinds: bytes
    keys: tuple[bytes, ...]


@functools.cache
def libpq_calls() -> tuple[int, int] | None:
    """The addresses of PQgetCopyData and PQfreemem in the libpq psycopg uses, or None
    where C cannot use them: no ``_copy_out``, no ``/proc`` to find the library by, or
    more than one libpq in the process (a PGconn must go to its own library)."""
    if _copy_out is None:
        return None
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            paths = {line.split(None, 5)[-1].strip() for line in maps if line.count(" ") >= 5}
    except OSError:
        return None
    found = {p for p in paths if os.path.basename(p).startswith("libpq")}
    if len(found) != 1:
        return None
    import ctypes  # only here: most commands never need it

    try:
        lib = ctypes.CDLL(found.pop(), mode=os.RTLD_NOLOAD | os.RTLD_LAZY)
        if lib.PQlibVersion() != pq.version():
            return None
        get = ctypes.cast(lib.PQgetCopyData, ctypes.c_void_p).value
        free = ctypes.cast(lib.PQfreemem, ctypes.c_void_p).value
    except (OSError, AttributeError):
        return None
    return (get, free) if get and free else None


def copy_text_rows(
    conn: psycopg.Connection[Any],
    query: str,
    batch_rows: int,
    batch_bytes: int,
    json: JsonColumns | None = None,
) -> Generator[tuple[int, bytes], None, None]:
    """(rows, the rows' JSON objects joined by commas) for ``COPY (query) TO STDOUT``, at
    most ``batch_rows`` rows or about ``batch_bytes`` bytes at a time. Without ``json``
    the query returns one non-NULL text column, the rendered row; with it, the columns
    ``json`` describes, written by C (only when :func:`libpq_calls` found libpq). Closing
    the generator early cancels the COPY."""
    calls = libpq_calls() if json is not None else None
    if json is not None and calls is None:
        raise RuntimeError("JsonColumns need the _copy_out module and psycopg's libpq")
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
        if json is not None and calls is not None:
            rest = yield from _json_rows(pgconn, json, calls, batch_rows, batch_bytes)
        else:
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


def _json_rows(
    pgconn: Any, json: JsonColumns, calls: tuple[int, int], batch_rows: int, batch_bytes: int
) -> Generator[tuple[int, bytes], None, tuple[int, bytes] | None]:
    """Full batches written by C until the COPY ends; returns the last, partial one."""
    fetch = _copy_out.fetch
    get, free = calls
    pieces: list[bytes] = []
    rows = size = 0
    header = True
    while True:
        try:
            status, got, data, header = fetch(
                pgconn.pgconn_ptr, get, free, json.kinds, json.keys, header,
                batch_rows - rows, batch_bytes - size,
            )  # fmt: skip
        except ValueError as exc:
            raise psycopg.DataError(str(exc)) from None
        if got:
            pieces.append(data)
            rows += got
            size += len(data)
        if rows >= batch_rows or size >= batch_bytes or (status == 2 and rows):
            yield rows, b",".join(pieces)
            pieces, rows, size = [], 0, 0
        if status == 1:  # no whole row in libpq's buffer: wait for the socket
            select.select([pgconn.socket], [], [])
            pgconn.consume_input()
        elif status == 2:
            return None
        elif status == 3:
            raise psycopg.OperationalError(f"reading the COPY failed: {pq.error_message(pgconn)}")


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
