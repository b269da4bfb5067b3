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

from collections.abc import Generator, Iterator
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


def _rows_off_the_wire(conn: Any, result: Any, batch_rows: int) -> Iterator[list[bytes | None]]:
    # One buffer, refilled in place: no megabyte-sized allocation (and its page faults)
    # per read. A packet longer than the buffer grows it.
    # Whatever pymysql's buffered reader already holds comes first (read1 returns only
    # that); from then on the socket itself, one recv at a time, which never waits for
    # more than the server has sent.
    held = take_buffered_bytes(conn)
    recv_into = socket_recv_into(conn)
    seq = next_sequence_id(conn)
    buf = bytearray(max(_READ_BYTES, len(held)))
    view = memoryview(buf)
    end = len(held)
    view[:end] = held
    pos = 0
    batch: list[bytes | None] = []
    while True:
        while pos + 4 <= end:
            length = buf[pos] | buf[pos + 1] << 8 | buf[pos + 2] << 16
            stop = pos + 4 + length
            if stop > end:
                break
            if buf[pos + 3] != seq:
                raise err.InternalError(
                    f"Packet sequence number wrong - got {buf[pos + 3]} expected {seq}"
                )
            seq = (seq + 1) & 0xFF
            if length == _FULL_PACKET or not length:  # a row split over packets
                raise err.InternalError("a row of 16 MiB or more (not read by this reader)")
            first = buf[pos + 4]
            if first < _NULL and first + 1 == length:
                batch.append(bytes(view[pos + 5 : stop]))
            elif first == _TWO and length == 3 + (buf[pos + 5] | buf[pos + 6] << 8):
                batch.append(bytes(view[pos + 7 : stop]))
            elif first == _THREE and length == 4 + int.from_bytes(buf[pos + 5 : pos + 8], "little"):
                batch.append(bytes(view[pos + 8 : stop]))
            elif first == _NULL and length == 1:
                batch.append(None)
            elif first == _EOF and length < 9:  # EOF: the result is complete
                set_next_sequence_id(conn, seq)
                finish_at_eof(conn, result, bytes(view[pos + 4 : stop]))
                if stop != end:
                    raise err.InternalError(f"{end - stop} bytes after the end of a result")
                if batch:
                    yield batch
                return
            elif first == _ERROR:  # the server stopped the query (KILL QUERY, a timeout)
                set_next_sequence_id(conn, seq)
                raise_error_packet(conn, result, bytes(view[pos + 4 : stop]))
            else:
                raise err.InternalError(f"not a one-column row packet (first byte {first})")
            pos = stop
            if len(batch) >= batch_rows:
                yield batch
                batch = []
        # Keep the unread part at the front, then read as much as fits after it.
        rest = end - pos
        if pos:
            view[:rest] = view[pos:end]
        pos, end = 0, rest
        if end >= 4:  # a packet longer than the buffer: grow it
            wanted = 4 + (buf[0] | buf[1] << 8 | buf[2] << 16)
            if wanted > len(buf):
                view.release()
                buf.extend(bytes(wanted - len(buf)))
                view = memoryview(buf)
        read = recv_into(view[end:])
        if not read:
            raise err.OperationalError(
                CR.CR_SERVER_LOST, "Lost connection to MySQL server during query"
            )
        end += read
