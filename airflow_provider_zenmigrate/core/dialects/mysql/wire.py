"""A one-column unbuffered pymysql result, read off the wire in bulk.

pymysql spends Python on every row (a packet object, length-coded reads, a tuple). The rows
a backup has the server render are already the bytes it writes, so this reads the result's
packets from the connection's buffer a megabyte at a time and slices the values out, a
fraction of that per row (see docs/performance.md). A query can also be sent without
waiting for its answer (:func:`send_query`, then :func:`read_result`), so a session starts
rendering while the client reads another's rows. The pymysql internals it needs (the connection's
buffered reader and socket, packet sequence numbers, the unbuffered result's state) are
reached only through :mod:`.pymysql_internals`; tests/integration/test_mysql_wire.py checks
this reader against pymysql's own reading, errors and lost connections. For the rendered
rows (:func:`joined_column`) the plain row packets are joined in C (:mod:`._wire`), a run
of them at a time; every other packet is read here.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Generator, Iterator
from contextlib import closing
from typing import Any

from pymysql import err
from pymysql.constants import CR
from pymysql.cursors import SSCursor

try:
    from . import _wire
except ImportError:  # installed where it could not be compiled: every packet read here
    _wire = None  # type: ignore[assignment]

from .pymysql_internals import (
    abandon_result,
    finish_at_eof,
    is_unread_result,
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


def renders_in_c() -> bool:
    """Whether C writes a backup's rows from the table's columns (:func:`rendered_columns`);
    without ``_wire`` the server renders them."""
    return _wire is not None


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
    with closing(_batches(cursor, batch_rows, _Values())) as batches:
        for values in batches:
            yield [None if v is None else bytes(v) for v in values]


def joined_column(
    cursor: SSCursor, batch_rows: int
) -> Generator[tuple[int, bytes] | None, None, None]:
    """:func:`single_column`'s batches, each as (values, the values joined by commas), or
    None for a batch holding a NULL. The values are joined straight from the read buffer:
    no bytes object per value (what the rendered rows of a backup need, a row at a time)."""
    with closing(_batches(cursor, batch_rows, _Joined())) as batches:
        yield from batches


def rendered_columns(
    cursor: SSCursor, batch_rows: int, kinds: bytes, keys: tuple[bytes, ...]
) -> Generator[tuple[int, bytes] | None, None, None]:
    """:func:`joined_column`'s batches for a result of a table's own columns, each row
    written by C as the JSON object the server's rendering wrote (``_wire.rendered``:
    ``kinds`` and ``keys`` say how); None for a batch holding a row with a NULL where its
    column's kind allows none (a value the server could not render)."""
    if _wire is None:
        raise RuntimeError("rendered_columns needs the _wire module")
    with closing(_batches(cursor, batch_rows, _Rendered(kinds, keys))) as batches:
        yield from batches


class _Values:
    """A batch as a list of values: views of the read buffer until it is refilled."""

    #: Columns of a row (the loop reads one-column rows; C reads any other).
    columns = 1

    def __init__(self) -> None:
        self.values: list[Any] = []
        self.add = self.values.append
        #: Plain row packets read in bulk (None: each one by the loop).
        self.bulk: Callable[[bytearray, int, int, int, int], tuple[int, int]] | None = None

    def null(self) -> None:
        self.values.append(None)

    def __len__(self) -> int:
        return len(self.values)

    def settle(self) -> None:
        """The values so far copied out, before the buffer is written again."""
        self.values[:] = [v if v is None else bytes(v) for v in self.values]

    def take(self) -> list[Any]:
        """The batch (the list itself: valid until :meth:`clear`, when the next is asked
        for, which releases its views before the buffer is written again or grown)."""
        return self.values

    def clear(self) -> None:
        self.values.clear()


class _Joined:
    """A batch as its values joined by commas (copied as they are read), or None once it
    holds a NULL."""

    columns = 1

    def __init__(self) -> None:
        self.out = bytearray()
        self.count = 0
        self.nulls = False
        self.bulk = self._bulk if _wire is not None else None

    def add(self, value: Any) -> None:
        if self.count:
            self.out += b","
        self.out += value
        self.count += 1

    def null(self) -> None:
        self.count += 1
        self.nulls = True

    def _bulk(self, buf: bytearray, pos: int, end: int, seq: int, room: int) -> tuple[int, int]:
        pos, seq, self.count = _wire.joined(buf, pos, end, seq, self.out, self.count, room)
        return pos, seq

    def __len__(self) -> int:
        return self.count

    def settle(self) -> None:
        pass

    def take(self) -> tuple[int, bytes] | None:
        return None if self.nulls else (self.count, bytes(self.out))

    def clear(self) -> None:
        self.out.clear()
        self.count = 0
        self.nulls = False


class _Rendered(_Joined):
    """A batch of rows of several columns, each written by C as its JSON object (joined by
    commas), or None once it holds a row C could not write (see :func:`rendered_columns`)."""

    def __init__(self, kinds: bytes, keys: tuple[bytes, ...]) -> None:
        super().__init__()
        self.kinds, self.keys = kinds, keys
        self.columns = len(kinds)
        self.bulk = self._rendered

    def _rendered(self, buf: bytearray, pos: int, end: int, seq: int, room: int) -> tuple[int, int]:
        try:
            pos, seq, self.count, lost = _wire.rendered(
                buf, pos, end, seq, self.out, self.count, room, self.kinds, self.keys
            )
        except ValueError as exc:
            raise err.InternalError(str(exc)) from None
        if lost:
            self.nulls = True
        return pos, seq


def _batches(
    cursor: SSCursor, batch_rows: int, batch: _Values | _Joined
) -> Generator[Any, None, None]:
    """``batch.take()`` each time ``batch_rows`` rows are read, and at the end."""
    conn: Any = cursor.connection
    result = unbuffered_result(cursor)
    if not is_unread_result(result, batch.columns):
        shape = "one" if batch.columns == 1 else str(batch.columns)
        raise ValueError(f"reading rows off the wire needs an unread {shape}-column result")
    finished = False
    try:
        yield from _rows_off_the_wire(conn, result, batch_rows, batch)
        finished = True
    except OSError as exc:
        raise err.OperationalError(
            CR.CR_SERVER_LOST, f"Lost connection to MySQL server during query ({exc})"
        ) from exc
    finally:
        if not finished:
            abandon_result(conn, result)


def _rows_off_the_wire(conn: Any, result: Any, batch_rows: int, batch: Any) -> Iterator[Any]:
    # One buffer, refilled in place: no megabyte-sized allocation (and its page faults)
    # per read. A packet longer than the buffer grows it.
    # Whatever pymysql's buffered reader already holds comes first (read1 returns only
    # that); from then on the socket itself, one recv at a time, which never waits for
    # more than the server has sent.
    # A value is a memoryview of the buffer until its batch is handed over (the consumer
    # copies or joins it then), so most values are copied once, not twice; the batch is
    # cleared when the next is asked for, which releases the views before the buffer is
    # written again or grown. Values still pending when the buffer is refilled become
    # bytes first (batch.settle).
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
    append = batch.add
    bulk = batch.bulk
    head = _HEAD.unpack_from
    #: Inside a row of several columns split over packets (16 MiB or more): C cannot write
    #: it, so it is passed over and its batch is lost (None), as a row the server could
    #: not render; the consumer reads the table's rest another way.
    skipping = False
    while True:
        while pos + 4 <= end:
            if bulk is not None and not skipping:  # a run of plain row packets, up to a batch
                pos, seq = bulk(buf, pos, end, seq, batch_rows - len(batch))
                if len(batch) >= batch_rows:
                    yield batch.take()
                    batch.clear()
                    continue
                if pos + 4 > end:
                    break
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
            if skipping or length == _FULL_PACKET and batch.columns > 1:
                skipping = length == _FULL_PACKET
                if not skipping:
                    batch.null()
            elif length == _FULL_PACKET or not length:  # a row split over packets
                raise err.InternalError("a row of 16 MiB or more (not read by this reader)")
            elif batch.columns > 1 and first not in (_EOF, _ERROR):  # C reads every row packet
                raise err.InternalError(f"a row packet C did not read (first byte {first})")
            elif first == _TWO and length == 3 + two:  # the usual rendered row: 251..65535 bytes
                append(view[pos + 7 : stop])
            elif first < _NULL and first + 1 == length:
                append(view[pos + 5 : stop])
            elif first == _THREE and length == 4 + int.from_bytes(buf[pos + 5 : pos + 8], "little"):
                append(view[pos + 8 : stop])
            elif first == _NULL and length == 1:
                batch.null()
            elif first == _EOF and length < 9:  # EOF: the result is complete
                set_next_sequence_id(conn, seq)
                finish_at_eof(conn, result, bytes(view[pos + 4 : stop]))
                if stop != end:
                    raise err.InternalError(f"{end - stop} bytes after the end of a result")
                if len(batch):
                    yield batch.take()
                    batch.clear()
                return
            elif first == _ERROR:  # the server stopped the query (KILL QUERY, a timeout)
                set_next_sequence_id(conn, seq)
                raise_error_packet(conn, result, bytes(view[pos + 4 : stop]))
            else:
                raise err.InternalError(f"not a one-column row packet (first byte {first})")
            pos = stop
            if len(batch) >= batch_rows:
                yield batch.take()
                batch.clear()
        batch.settle()
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
