"""A one-column unbuffered pymysql result, read off the wire in bulk.

pymysql spends Python on every row (a packet object, length-coded reads, a tuple). The rows
a backup has the server render are already the bytes it writes, so this reads the result's
packets from the connection's buffer a megabyte at a time and slices the values out, a
fraction of that per row (see docs/performance.md). A query can also be sent without
waiting for its answer (:func:`send_query`, then :func:`read_result`), so a session starts
rendering while the client reads another's rows. The pymysql internals it needs (the connection's
buffered reader and socket, packet sequence numbers, the unbuffered result's state) are
reached only through :mod:`.pymysql_internals`; tests/integration/test_mysql_wire.py checks
this reader against pymysql's own reading, errors and lost connections.
"""

from __future__ import annotations

import struct
from collections.abc import Generator, Iterator
from contextlib import closing
from typing import Any

from pymysql import err
from pymysql.constants import CR
from pymysql.cursors import SSCursor

from .pymysql_internals import (
    abandon_result,
    finish_at_eof,
    is_unread_single_column,
    next_sequence_id,
    raise_error_packet,
    read_query_answer,
    send_query_command,
    set_next_sequence_id,
    socket_recv_into,
    take_buffered_bytes,
    unbuffered_result,
)

_READ_BYTES = 1 << 20
# First byte of a row packet: a length-coded string's one-byte length, or one of these (NULL,
# a two- or three-byte length follows, the end of the result).
_NULL, _TWO, _THREE, _EOF = 0xFB, 0xFC, 0xFD, 0xFE
_ERROR = 0xFF
# A payload this long continues in the next packet (a row of 16 MiB or more).
_FULL_PACKET = 0xFFFFFF
#: A packet's header (length, sequence number), its first byte and the two after it.
_HEAD = struct.Struct("<IBH")
_SLACK = _HEAD.size - 4


def send_query(cursor: SSCursor, sql: str, args: tuple[Any, ...]) -> None:
    """Send ``cursor``'s query without waiting for the server's answer: the first half of
    what ``cursor.execute`` does; :func:`read_result` is the second, before anything else is
    sent on the connection."""
    send_query_command(cursor, cursor.mogrify(sql, args))


def read_result(cursor: SSCursor) -> None:
    """Read the answer to :func:`send_query`'s query, as ``cursor.execute`` would have."""
    read_query_answer(cursor)


def single_column(cursor: SSCursor, batch_rows: int) -> Generator[list[bytes | None], None, None]:
    """The rest of ``cursor``'s result (one column, just executed) in lists of at most
    ``batch_rows`` values; SQL NULL is ``None``.

    The connection is usable afterwards only if the result was read to its end; a reader
    stopped early (an error, a consumer that gives up) closes it, since the bytes it had
    buffered are gone.
    """
    with closing(_batches(cursor, batch_rows)) as batches:
        for values, _nulls in batches:
            yield [None if v is None else bytes(v) for v in values]


def joined_column(
    cursor: SSCursor, batch_rows: int
) -> Generator[tuple[int, bytes] | None, None, None]:
    """:func:`single_column`'s batches, each as (values, the values joined by commas), or
    None for a batch holding a NULL. The values are joined straight from the read buffer:
    no bytes object per value (what the rendered rows of a backup need, a row at a time)."""
    with closing(_batches(cursor, batch_rows)) as batches:
        for values, nulls in batches:
            yield None if nulls else (len(values), b",".join(values))


def _batches(cursor: SSCursor, batch_rows: int) -> Generator[tuple[list[Any], bool], None, None]:
    """(values, whether one is NULL): views of the read buffer (or bytes), valid until the
    next batch is asked for, and the list itself reused (see :func:`_rows_off_the_wire`)."""
    conn: Any = cursor.connection
    result = unbuffered_result(cursor)
    if not is_unread_single_column(result):
        raise ValueError("single_column needs a cursor with an unread one-column result")
    finished = False
    try:
        yield from _rows_off_the_wire(conn, result, batch_rows)
        finished = True
    except OSError as exc:
        raise err.OperationalError(
            CR.CR_SERVER_LOST, f"Lost connection to MySQL server during query ({exc})"
        ) from exc
    finally:
        if not finished:
            abandon_result(conn, result)


def _rows_off_the_wire(conn: Any, result: Any, batch_rows: int) -> Iterator[tuple[list[Any], bool]]:
    # One buffer, refilled in place: no megabyte-sized allocation (and its page faults)
    # per read. A packet longer than the buffer grows it.
    # Whatever pymysql's buffered reader already holds comes first (read1 returns only
    # that); from then on the socket itself, one recv at a time, which never waits for
    # more than the server has sent.
    # A value is a memoryview of the buffer until its batch is handed over (the consumer
    # copies or joins it then), so most values are copied once, not twice; the list is
    # cleared when the next batch is asked for, which releases the views before the
    # buffer is written again or grown. Values still pending when the buffer is refilled
    # become bytes first.
    held = take_buffered_bytes(conn)
    recv_into = socket_recv_into(conn)
    seq = next_sequence_id(conn)
    # _SLACK bytes past what is read: a packet's first 7 bytes can be unpacked at once
    # wherever its 4-byte header ends the data read (those past its end are never used).
    capacity = max(_READ_BYTES, len(held))
    buf = bytearray(capacity + _SLACK)
    view = memoryview(buf)
    end = len(held)
    view[:end] = held
    pos = 0
    batch: list[Any] = []
    append = batch.append
    nulls = False
    head = _HEAD.unpack_from
    while True:
        while pos + 4 <= end:
            header, first, two = head(buf, pos)
            length = header & _FULL_PACKET
            stop = pos + 4 + length
            if stop > end:
                break
            if header >> 24 != seq:
                raise err.InternalError(
                    f"Packet sequence number wrong - got {header >> 24} expected {seq}"
                )
            seq = (seq + 1) & 0xFF
            if length == _FULL_PACKET or not length:  # a row split over packets
                raise err.InternalError("a row of 16 MiB or more (not read by this reader)")
            if first == _TWO and length == 3 + two:  # the usual rendered row: 251..65535 bytes
                append(view[pos + 7 : stop])
            elif first < _NULL and first + 1 == length:
                append(view[pos + 5 : stop])
            elif first == _THREE and length == 4 + int.from_bytes(buf[pos + 5 : pos + 8], "little"):
                append(view[pos + 8 : stop])
            elif first == _NULL and length == 1:
                append(None)
                nulls = True
            elif first == _EOF and length < 9:  # EOF: the result is complete
                set_next_sequence_id(conn, seq)
                finish_at_eof(conn, result, bytes(view[pos + 4 : stop]))
                if stop != end:
                    raise err.InternalError(f"{end - stop} bytes after the end of a result")
                if batch:
                    yield batch, nulls
                    batch.clear()
                return
            elif first == _ERROR:  # the server stopped the query (KILL QUERY, a timeout)
                set_next_sequence_id(conn, seq)
                raise_error_packet(conn, result, bytes(view[pos + 4 : stop]))
            else:
                raise err.InternalError(f"not a one-column row packet (first byte {first})")
            pos = stop
            if len(batch) >= batch_rows:
                yield batch, nulls
                batch.clear()
                nulls = False
        # The values of the batch so far are copied out before the buffer is written.
        batch[:] = [v if v is None else bytes(v) for v in batch]
        # Keep the unread part at the front, then read as much as fits after it.
        rest = end - pos
        if pos:
            view[:rest] = view[pos:end]
        pos, end = 0, rest
        if end >= 4:  # a packet longer than the buffer: grow it
            wanted = 4 + (buf[0] | buf[1] << 8 | buf[2] << 16)
            if wanted > capacity:
                view.release()
                buf.extend(bytes(wanted - capacity))
                capacity = wanted
                view = memoryview(buf)
        read = recv_into(view[end:capacity])
        if not read:
            raise err.OperationalError(
                CR.CR_SERVER_LOST, "Lost connection to MySQL server during query"
            )
        end += read
