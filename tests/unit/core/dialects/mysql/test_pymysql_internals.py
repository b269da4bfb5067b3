"""The pymysql internals that core/dialects/mysql/pymysql_internals.py relies on, checked with
no server: a pymysql release inside our pin that renames or reshapes one fails here, naming it.

Where an internal can be exercised without a server it is: a socket pair plays the server's
side of the protocol, so the wire reader's whole path (send a query, read its answer, read a
one-column result packet by packet, its EOF and error packets) runs against the installed
pymysql's own connection, cursor and result objects.
"""

from __future__ import annotations

import inspect
import socket
import struct
from collections.abc import Iterator
from typing import Any

import pymysql
import pymysql.connections
import pymysql.cursors
import pymysql.err
import pytest
from pymysql.constants import CLIENT, COMMAND, CR
from pymysql.protocol import MysqlPacket

from airflow_provider_zenmigrate.core.dialects.mysql import pymysql_internals as internals
from airflow_provider_zenmigrate.core.dialects.mysql.wire import (
    read_result,
    send_query,
    single_column,
)

Connection = pymysql.connections.Connection
MySQLResult = pymysql.connections.MySQLResult


def parameters(function: Any) -> list[str]:
    return list(inspect.signature(function).parameters)


def offline_connection(**kwargs: Any) -> Any:
    """A pymysql connection object that never connected (no server needed)."""
    return Connection(host="127.0.0.1", user="nobody", defer_connect=True, **kwargs)


# -- the internals exist, with the shape we call them with ------------------------------------
@pytest.mark.parametrize(
    ("method", "expected"),
    [
        ("_execute_command", ["self", "command", "sql"]),
        ("_read_query_result", ["self", "unbuffered"]),
        ("_force_close", ["self"]),
        ("connect", ["self", "sock"]),
    ],
)
def test_connection_methods_keep_their_signature(method: str, expected: list[str]) -> None:
    assert method in internals.CONNECTION_METHODS
    found = getattr(Connection, method, None)
    assert found is not None, f"pymysql Connection.{method} is gone"
    assert parameters(found) == expected, f"pymysql Connection.{method} changed its signature"
    if method == "_read_query_result":
        default = inspect.signature(found).parameters["unbuffered"].default
        assert default is False, "Connection._read_query_result(unbuffered=...) changed"


def test_connection_attributes_exist() -> None:
    conn = offline_connection()
    set_by_connect = inspect.getsource(Connection.connect)
    for name in internals.CONNECTION_ATTRIBUTES:
        assert hasattr(conn, name) or f"self.{name} =" in set_by_connect, (
            f"pymysql Connection.{name} is neither set by __init__ nor by connect()"
        )
    # What take_buffered_bytes reads: a buffered reader over the socket, made by connect().
    assert 'self._rfile = sock.makefile("rb")' in set_by_connect, (
        "pymysql Connection._rfile is no longer sock.makefile('rb')"
    )
    assert conn._sock is None and conn._local_infile is False
    assert isinstance(conn.encoding, str) and isinstance(conn.client_flag, int)


@pytest.mark.parametrize(
    ("method", "expected"),
    [
        ("_clear_result", ["self"]),
        ("_do_get_result", ["self"]),
        ("mogrify", ["self", "query", "args"]),
    ],
)
def test_cursor_methods_keep_their_signature(method: str, expected: list[str]) -> None:
    assert method in internals.CURSOR_METHODS
    for cls in (pymysql.cursors.Cursor, pymysql.cursors.SSCursor):
        found = getattr(cls, method, None)
        assert found is not None, f"pymysql {cls.__name__}.{method} is gone"
        assert parameters(found) == expected, f"pymysql {cls.__name__}.{method} changed"


def test_cursor_attributes_exist() -> None:
    cursor = pymysql.cursors.SSCursor(offline_connection())
    for name in internals.CURSOR_ATTRIBUTES:
        assert hasattr(cursor, name), f"pymysql SSCursor.{name} is gone"
    assert internals.unbuffered_result(cursor) is None
    assert "self.max_stmt_length" in inspect.getsource(pymysql.cursors.Cursor.executemany), (
        "pymysql Cursor.executemany no longer reads max_stmt_length"
    )
    internals.set_executemany_limit(cursor, 12345)
    assert cursor.max_stmt_length == 12345


def test_result_shape() -> None:
    result = MySQLResult(offline_connection())
    for name in internals.RESULT_ATTRIBUTES:
        assert hasattr(result, name), f"pymysql MySQLResult.{name} is gone"
    for name in internals.RESULT_METHODS:
        assert parameters(getattr(MySQLResult, name)) == ["self", "packet"], (
            f"pymysql MySQLResult.{name} changed"
        )
    assert result.unbuffered_active is False and result.field_count == 0
    assert not internals.is_unread_result(result, 1)
    assert not internals.is_unread_result(None, 1)


def test_packet_class_and_constants() -> None:
    assert parameters(MysqlPacket) == ["data", "encoding"], "pymysql MysqlPacket() changed"
    assert hasattr(MysqlPacket, "raise_for_error"), "pymysql MysqlPacket.raise_for_error is gone"
    assert COMMAND.COM_QUERY == 3
    assert CR.CR_SERVER_LOST == 2013
    assert CLIENT.LOCAL_FILES == 1 << 7
    assert CLIENT.MULTI_STATEMENTS == 1 << 16


# -- the internals behave as we use them --------------------------------------------------------
def test_eof_and_error_packets_end_a_result() -> None:
    conn = offline_connection()
    result = MySQLResult(conn)
    result.unbuffered_active = True
    internals.finish_at_eof(conn, result, b"\xfe\x02\x00\x22\x00")  # 2 warnings
    assert result.warning_count == 2
    assert not result.has_next
    assert result.unbuffered_active is False and result.connection is None and result.rows is None

    result = MySQLResult(conn)
    result.unbuffered_active = True
    error = b"\xff" + struct.pack("<H", 1317) + b"#70100" + b"Query execution was interrupted"
    with pytest.raises(pymysql.err.OperationalError) as raised:
        internals.raise_error_packet(conn, result, error)
    assert raised.value.args[0] == 1317
    assert result.unbuffered_active is False


def test_multi_statements_flag_is_seen() -> None:
    assert not internals.has_multi_statements(offline_connection())
    flagged = offline_connection(client_flag=CLIENT.MULTI_STATEMENTS)
    assert internals.has_multi_statements(flagged)


def test_local_infile_is_allowed_only_inside_the_block() -> None:
    conn = offline_connection()
    assert "conn._local_infile" in inspect.getsource(MySQLResult), (
        "pymysql no longer reads Connection._local_infile before sending a file"
    )
    with internals.local_infile_allowed(conn):
        assert conn._local_infile is True
    assert conn._local_infile is False
    with pytest.raises(RuntimeError), internals.local_infile_allowed(conn):
        raise RuntimeError
    assert conn._local_infile is False


def test_reconnect_asks_for_local_files() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    conn = offline_connection(port=port, connect_timeout=2)
    with pytest.raises(pymysql.err.OperationalError) as raised:
        internals.reconnect_with_local_files(conn)
    assert raised.value.args[0] == 2003  # it tried to connect
    assert conn.client_flag & CLIENT.LOCAL_FILES


# -- the wire reader's whole path, against a scripted server -----------------------------------
def packet(seq: int, payload: bytes) -> bytes:
    return len(payload).to_bytes(3, "little") + bytes([seq]) + payload


def lenenc(value: bytes) -> bytes:
    assert len(value) < 251
    return bytes([len(value)]) + value


def column_definition(name: bytes) -> bytes:
    """A LONGBLOB column's definition packet payload (protocol 4.1)."""
    fields = b"".join(lenenc(v) for v in (b"def", b"", b"", b"", name, b""))
    return fields + b"\x0c" + struct.pack("<HIBHB", 63, 0xFFFFFFFF, 0xFB, 0x90, 0) + b"\x00\x00"


EOF_PAYLOAD = b"\xfe\x00\x00\x22\x00"


OK_PAYLOAD = b"\x00\x00\x00\x00\x00\x00\x00"  # no rows, no id, status 0, no warnings


def greeting() -> bytes:
    """A server's handshake packet payload (protocol 10, mysql_native_password)."""
    caps = CLIENT.LONG_PASSWORD | CLIENT.PROTOCOL_41 | CLIENT.TRANSACTIONS
    caps |= CLIENT.SECURE_CONNECTION | CLIENT.PLUGIN_AUTH
    return (
        b"\x0a10.11.0-MariaDB-scripted\x00"
        + struct.pack("<I", 7)
        + b"abcdefgh\x00"
        + struct.pack("<HBHHB", caps & 0xFFFF, 45, 0, caps >> 16, 21)
        + b"\x00" * 10
        + b"ijklmnopqrst\x00"
        + b"mysql_native_password\x00"
    )


@pytest.fixture
def wired() -> Iterator[tuple[Any, socket.socket]]:
    """A pymysql connection, connected through its own handshake, whose socket's other end
    is the test: the server's side, scripted packet by packet."""
    client, server = socket.socketpair()
    # The handshake, the answer to the login and the answer to connect()'s SET NAMES.
    server.sendall(packet(0, greeting()) + packet(2, OK_PAYLOAD) + packet(1, OK_PAYLOAD))
    conn = offline_connection(password="", autocommit=None)
    conn.connect(sock=client)
    server.settimeout(5)
    received = b""
    while b"SET NAMES" not in received:  # the login, then SET NAMES: both answered above
        received += server.recv(65536)
    try:
        yield conn, server
    finally:
        conn.close()
        server.close()


def result_head() -> bytes:
    return packet(1, b"\x01") + packet(2, column_definition(b"r")) + packet(3, EOF_PAYLOAD)


def test_query_sent_ahead_and_rows_read_off_the_wire(wired: tuple[Any, socket.socket]) -> None:
    conn, server = wired
    cursor = pymysql.cursors.SSCursor(conn)
    send_query(cursor, "SELECT %s", ("x",))
    sent = server.recv(1024)
    assert sent == packet(0, bytes([COMMAND.COM_QUERY]) + b"SELECT 'x'")
    long_value = b"v" * 300  # a two-byte length prefix
    server.sendall(
        result_head()
        + packet(4, lenenc(b"a"))
        + packet(5, b"\xfb")  # NULL
        + packet(6, b"\xfc" + struct.pack("<H", 300) + long_value)
    )
    read_result(cursor)
    assert internals.is_unread_result(internals.unbuffered_result(cursor), 1)
    batches = single_column(cursor, 2)
    assert next(batches) == [b"a", None]
    server.sendall(packet(7, lenenc(b"b")) + packet(8, EOF_PAYLOAD))  # read from the socket
    assert list(batches) == [[long_value, b"b"]]
    assert internals.next_sequence_id(conn) == 9
    assert conn._sock is not None  # read to its end: the connection goes on


def test_an_error_packet_ends_the_result_with_its_error(wired: tuple[Any, socket.socket]) -> None:
    conn, server = wired
    cursor = pymysql.cursors.SSCursor(conn)
    send_query(cursor, "SELECT 1", ())
    server.recv(1024)
    error = b"\xff" + struct.pack("<H", 1969) + b"#70100" + b"Query execution was interrupted"
    server.sendall(result_head() + packet(4, lenenc(b"a")) + packet(5, error))
    read_result(cursor)
    with pytest.raises(pymysql.err.MySQLError) as raised:
        list(single_column(cursor, 10))
    assert raised.value.args[0] == 1969


def test_a_reader_stopped_early_closes_the_connection(wired: tuple[Any, socket.socket]) -> None:
    conn, server = wired
    cursor = pymysql.cursors.SSCursor(conn)
    send_query(cursor, "SELECT 1", ())
    server.recv(1024)
    server.sendall(result_head() + packet(4, lenenc(b"a")) + packet(5, lenenc(b"b")))
    read_result(cursor)
    batches = single_column(cursor, 1)
    assert next(batches) == [b"a"]
    batches.close()
    assert conn._sock is None and conn._rfile is None  # _force_close ran
