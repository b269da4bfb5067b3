"""Every use of pymysql's private API, behind small named functions.

The wire reader (:mod:`.wire`) reads a result's packets off the connection itself, and the
bulk loader (:mod:`.load`) turns LOAD DATA LOCAL on for one statement at a time; both need
connection, cursor and result state that pymysql does not publish (attributes with a
leading underscore, its packet class, the unbuffered result's fields). Kept here, one
function per thing we rely on, so a pymysql release that changes them breaks one module:
``tests/unit/core/dialects/mysql/test_pymysql_internals.py`` checks each of them, with no
server, against the pymysql installed (the version bound in pyproject.toml keeps us on
releases that passed it).
"""

from __future__ import annotations

import ssl
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from pymysql.connections import Connection
from pymysql.constants import CLIENT, COMMAND
from pymysql.cursors import Cursor
from pymysql.protocol import MysqlPacket

#: Internals of pymysql that this module uses, by owner; the unit test checks each exists.
CONNECTION_METHODS = (
    "_execute_command", "_read_query_result", "_force_close", "connect", "_create_ssl_ctx",
)  # fmt: skip
CONNECTION_ATTRIBUTES = (
    "_rfile", "_sock", "_next_seq_id", "_affected_rows", "_local_infile", "client_flag",
    "encoding", "ctx", "_secure",
)  # fmt: skip
CURSOR_METHODS = ("_clear_result", "_do_get_result", "mogrify")
CURSOR_ATTRIBUTES = ("_result", "max_stmt_length")
RESULT_METHODS = ("_check_packet_is_eof",)
RESULT_ATTRIBUTES = ("unbuffered_active", "field_count", "connection", "rows")


# -- sending a query without waiting for its answer -----------------------------------------
def send_query_command(cursor: Cursor, query: str) -> None:
    """Send ``query`` (already formatted) on ``cursor``'s connection and return at once,
    as the first half of ``cursor.execute`` does."""
    cur: Any = cursor
    conn: Any = cursor.connection
    cur._clear_result()
    conn._execute_command(COMMAND.COM_QUERY, query.encode(conn.encoding))


def read_query_answer(cursor: Cursor) -> None:
    """Read the answer to :func:`send_query_command`'s query as an unbuffered result, as the
    second half of ``cursor.execute`` does for an unbuffered cursor."""
    cur: Any = cursor
    conn: Any = cursor.connection
    conn._affected_rows = conn._read_query_result(unbuffered=True)
    cur._do_get_result()


# -- reading an unbuffered result's packets ourselves ---------------------------------------
def unbuffered_result(cursor: Cursor) -> Any:
    """The cursor's current result (pymysql's ``MySQLResult``), or None."""
    cur: Any = cursor
    return cur._result


def is_unread_result(result: Any, columns: int) -> bool:
    """Whether ``result`` is an unbuffered result of ``columns`` columns not yet read to its
    end."""
    return result is not None and bool(result.unbuffered_active) and result.field_count == columns


def take_buffered_bytes(conn: Any) -> bytes:
    """What pymysql's buffered socket reader already holds (``read1`` returns only that);
    the caller reads the socket itself from then on."""
    held: bytes = conn._rfile.read1(len(conn._rfile.peek(1)))
    return held


def socket_recv_into(conn: Any) -> Callable[[memoryview], int]:
    """The connection's socket's ``recv_into``, for reading it directly."""
    recv_into: Callable[[memoryview], int] = conn._sock.recv_into
    return recv_into


def next_sequence_id(conn: Any) -> int:
    """The sequence number the next packet from the server must carry."""
    return int(conn._next_seq_id)


def set_next_sequence_id(conn: Any, seq: int) -> None:
    """Tell the connection which packet sequence number comes next (after our reads)."""
    conn._next_seq_id = seq


def finish_at_eof(conn: Any, result: Any, payload: bytes) -> None:
    """End ``result`` on its EOF packet (``payload``, without the 4-byte header) as
    pymysql's own unbuffered reading does: warnings and "more results" are taken from it,
    and the connection is free for the next command."""
    packet = MysqlPacket(payload, conn.encoding)
    result._check_packet_is_eof(packet)
    result.unbuffered_active = False
    result.connection = None
    result.rows = None


def raise_error_packet(conn: Any, result: Any, payload: bytes) -> None:
    """Raise the server's error packet (``payload``) as pymysql's error class; the result
    is over."""
    result.unbuffered_active = False
    MysqlPacket(payload, conn.encoding).raise_for_error()


def abandon_result(conn: Any, result: Any) -> None:
    """Close the connection under a result that was not read to its end: the bytes read
    ahead of it are gone, so it cannot be used again."""
    result.unbuffered_active = False
    conn._force_close()


# -- connection capabilities ---------------------------------------------------------------
def has_multi_statements(conn: Any) -> bool:
    """Whether the connection was opened with ``CLIENT.MULTI_STATEMENTS``."""
    return bool(conn.client_flag & CLIENT.MULTI_STATEMENTS)


def reconnect_with_local_files(conn: Any) -> None:
    """Connect ``conn`` (closed) again asking for the LOCAL capability, agreed at the
    handshake; every other connection parameter (TLS, charset, timeouts) is kept."""
    conn.client_flag |= CLIENT.LOCAL_FILES
    conn.connect()


@contextmanager
def local_infile_allowed(conn: Any) -> Iterator[None]:
    """Let the driver answer the server's request for a file, only while this lasts (one
    LOAD DATA LOCAL statement of ours)."""
    conn._local_infile = True
    try:
        yield
    finally:
        conn._local_infile = False


def set_executemany_limit(cursor: Cursor, max_bytes: int) -> None:
    """Make ``cursor.executemany`` join rows into multi-row INSERTs of at most
    ``max_bytes``."""
    cur: Any = cursor
    cur.max_stmt_length = max_bytes


# -- one TLS context per process for connections given no TLS option -------------------------
#: What :class:`SharedTLSConnection` holds instead of a context until a server offers TLS.
PREFERRED_TLS = object()
_preferred_lock = threading.Lock()
_preferred_context: ssl.SSLContext | None = None


class SharedTLSConnection(Connection):  # type: ignore[misc]  # pymysql has no types
    """pymysql's connection, sharing one TLS context among the connections of a process that
    were given no TLS option.

    pymysql 1.2+ connects such a connection in "PREFERRED" mode (TLS when the server offers
    it, plain otherwise) and builds a new ``ssl.create_default_context()`` for every one of
    them, reading the system's CA store each time (20-40 ms a connection, even against a
    server with TLS off; an empty backup opens two connections). That context verifies
    nothing (no CA given: no certificate or host name check), so one serves them all. It is
    built by pymysql itself, the first time a server offers TLS (:attr:`ctx` is read only
    then). Any TLS option (``ssl``, ``ssl_ca``, ``ssl_verify_cert``, ...) or
    ``ssl_disabled`` goes through pymysql's own code unchanged.
    """

    def _create_ssl_ctx(self, sslp: Any) -> Any:
        if isinstance(sslp, dict) and not sslp:  # PREFERRED mode: no TLS option was given
            return PREFERRED_TLS
        return super()._create_ssl_ctx(sslp)

    @property
    def ctx(self) -> Any:
        try:
            held = self.__dict__["_zenmigrate_ctx"]
        except KeyError:  # as pymysql's own: no TLS context when TLS is off
            raise AttributeError("ctx") from None
        return self._preferred() if held is PREFERRED_TLS else held

    @ctx.setter
    def ctx(self, value: Any) -> None:
        self.__dict__["_zenmigrate_ctx"] = value

    def _preferred(self) -> ssl.SSLContext:
        global _preferred_context
        with _preferred_lock:
            if _preferred_context is None:
                _preferred_context = super()._create_ssl_ctx({})
            return _preferred_context
