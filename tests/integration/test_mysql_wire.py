"""The bulk wire reader (core/dialects/mysql/wire.py) against pymysql's own, on the real MariaDB.

It reads packets itself, so it is checked where the protocol changes shape: the length
prefix's 1/3/4-byte forms, values longer than its buffer, NULL, the end of the result (the
connection must go on as if pymysql had read it), an error packet mid-result, a lost
connection, a consumer that stops early, and a row that would span packets; a query sent
without waiting for its answer. Then the
backup's use of it: a keyed table with a row too long for the server to render goes on
with the Python encoders from that row, and restores exactly.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pymysql
import pymysql.cursors
import pytest
from pymysql.connections import Connection

from airflow_provider_zenmigrate.core.dialects import get_dialect
from airflow_provider_zenmigrate.core.dialects.mysql import reader as mysql_reader
from airflow_provider_zenmigrate.core.dialects.mysql import render, wire
from airflow_provider_zenmigrate.core.dialects.mysql.wire import (
    joined_column,
    read_result,
    send_query,
    single_column,
)
from airflow_provider_zenmigrate.core.utils import MigrationUtils
from tests.support.servers import database_url, server_url

# Value lengths around each length-prefix boundary, and beyond the 1 MiB buffer.
LENGTHS = [0, 1, 250, 251, 252, 65535, 65536, 65537, (1 << 20) - 5, 1 << 20, 3 << 20]


def _connect() -> Connection:
    url = server_url("mysql")
    return pymysql.connect(
        host=url.host, port=url.port or 3306, user=url.username, password="", database="mysql"
    )


@pytest.fixture
def conn() -> Iterator[Connection]:
    connection = _connect()
    yield connection
    connection.close()


def _values(sql: str, setup: str = "SELECT 1") -> list[bytes | None]:
    """What pymysql itself reads for ``sql``."""
    with _connect() as other:
        with other.cursor() as cursor:
            cursor.execute(setup)
        with other.cursor(pymysql.cursors.SSCursor) as cursor:
            cursor.execute(sql)
            return [row[0] for row in cursor.fetchall()]


def _read(conn: Connection, sql: str, batch: int) -> list[list[bytes | None]]:
    cursor = conn.cursor(pymysql.cursors.SSCursor)
    try:
        cursor.execute(sql)
        return list(single_column(cursor, batch))
    finally:
        cursor.close()


def _union(lengths: list[int]) -> str:
    """One row per length: bytes 0..255 repeated, so every byte value is on the wire."""
    parts = [
        f"SELECT {i} AS n, CAST(SUBSTRING(REPEAT(@bytes, {n // 256 + 1}), 1, {n}) AS BINARY) AS v"
        for i, n in enumerate(lengths)
    ]
    parts.append(f"SELECT {len(lengths)}, NULL")
    return "SELECT v FROM (" + " UNION ALL ".join(parts) + ") AS t ORDER BY n"


@pytest.mark.parametrize("batch", [1, 3, 1000])
def test_reads_what_pymysql_reads(conn: Connection, batch: int) -> None:
    setup = "SET @bytes = UNHEX('" + "".join(f"{b:02x}" for b in range(256)) + "')"
    with conn.cursor() as cursor:
        cursor.execute(setup)
    sql = _union(LENGTHS)
    expected = _values(sql, setup)
    batches = _read(conn, sql, batch)
    assert [len(b) for b in batches[:-1]] == [batch] * (len(batches) - 1)
    got = [v for b in batches for v in b]
    assert got == expected
    assert [len(v) if v is not None else None for v in got] == [*LENGTHS, None]
    # The connection goes on: sequence numbers and state are where pymysql expects them.
    with conn.cursor() as cursor:
        cursor.execute("SELECT 41 + 1")
        assert cursor.fetchone() == (42,)


def test_many_small_rows_and_an_empty_result(conn: Connection) -> None:
    sql = "SELECT CAST(CONCAT('row-', seq) AS BINARY) FROM seq_1_to_100000"
    got = [v for b in _read(conn, sql, 4096) for v in b]
    assert got == _values(sql)
    assert len(got) == 100_000
    assert _read(conn, "SELECT 'x' FROM seq_1_to_10 WHERE seq > 10", 10) == []
    # Regression: a result pymysql had already buffered whole (read with its header) hung
    # in a read that waited for more.
    assert _read(conn, "SELECT 'a' FROM seq_1_to_3", 2) == [[b"a", b"a"], [b"a"]]
    with conn.cursor() as cursor:
        cursor.execute("SELECT 1")
        assert cursor.fetchone() == (1,)


def test_refuses_a_result_that_is_not_one_column(conn: Connection) -> None:
    cursor = conn.cursor(pymysql.cursors.SSCursor)
    cursor.execute("SELECT 1, 2")
    with pytest.raises(ValueError, match="one-column"):
        next(single_column(cursor, 10))
    cursor.close()


def test_a_sent_query_runs_while_the_client_waits_elsewhere() -> None:
    """Two queries sent without waiting run on the server at once; their results, read
    afterwards, are what execute() reads, and the connections go on."""
    sql = "SELECT CAST(CONCAT(%s, seq, SLEEP(seq = 1)) AS BINARY) FROM seq_1_to_3"
    with _connect() as first, _connect() as second:
        cursors = [c.cursor(pymysql.cursors.SSCursor) for c in (first, second)]
        started = time.monotonic()
        for cursor, tag in zip(cursors, ("a-", "b-"), strict=True):
            send_query(cursor, sql, (tag,))
        got = []
        for cursor in cursors:
            read_result(cursor)
            got.append([v for batch in single_column(cursor, 10) for v in batch])
        elapsed = time.monotonic() - started
        assert got == [[b"a-10", b"a-20", b"a-30"], [b"b-10", b"b-20", b"b-30"]]
        assert elapsed < 1.8, f"the second query waited for the first: {elapsed:.2f} s"
        for c in (first, second):
            with c.cursor() as cursor:
                cursor.execute("SELECT 1")
                assert cursor.fetchone() == (1,)


def test_a_sent_query_that_fails_raises_when_its_answer_is_read(conn: Connection) -> None:
    cursor = conn.cursor(pymysql.cursors.SSCursor)
    send_query(cursor, "SELECT no_such_column FROM seq_1_to_3", ())
    with pytest.raises(pymysql.err.OperationalError, match="no_such_column"):
        read_result(cursor)
    with conn.cursor() as plain:
        plain.execute("SELECT 2")
        assert plain.fetchone() == (2,)


def _kill_soon(statement: str, thread_id: int) -> threading.Thread:
    def kill() -> None:
        time.sleep(0.3)
        with _connect() as admin, admin.cursor() as cursor:
            cursor.execute(f"{statement} {thread_id}")

    thread = threading.Thread(target=kill)
    thread.start()
    return thread


# Slow enough that the kill lands mid-result: each row sleeps a little on the server.
SLOW = "SELECT CONCAT(seq, SLEEP(0.001)) FROM seq_1_to_5000"


def test_an_error_packet_mid_result_raises_the_servers_error(
    conn: Connection,
) -> None:
    thread = _kill_soon("KILL QUERY", conn.thread_id())
    read = 0
    with pytest.raises(pymysql.err.OperationalError) as caught:
        for batch in _read_iter(conn, SLOW, 10):
            read += len(batch)
    thread.join()
    assert caught.value.args[0] in (1317, 1927), caught.value  # interrupted / killed
    assert 0 < read < 5000


def test_a_lost_connection_raises_and_closes(conn: Connection) -> None:
    thread = _kill_soon("KILL CONNECTION", conn.thread_id())
    with pytest.raises(pymysql.err.OperationalError) as caught:
        for _ in _read_iter(conn, SLOW, 10):
            pass
    thread.join()
    assert caught.value.args[0] in (2013, 1927), caught.value
    assert not conn.open


def _read_iter(
    conn: Connection,
    sql: str,
    batch: int,
) -> Iterator[list[bytes | None]]:
    cursor = conn.cursor(pymysql.cursors.SSCursor)
    try:
        cursor.execute(sql)
        yield from single_column(cursor, batch)
    finally:
        cursor.close()


def test_stopping_early_closes_the_connection(conn: Connection) -> None:
    """The reader buffered bytes pymysql never saw: the connection cannot be reused."""
    cursor = conn.cursor(pymysql.cursors.SSCursor)
    cursor.execute("SELECT CONCAT('row-', seq) FROM seq_1_to_100000")
    batches = single_column(cursor, 100)
    assert len(next(batches)) == 100
    batches.close()
    cursor.close()
    assert not conn.open


def test_a_row_spanning_packets_is_refused(conn: Connection) -> None:
    # A 3-byte length prefix plus 0xFFFFFC bytes fills a packet exactly; the row continues.
    with pytest.raises(pymysql.err.InternalError, match="16 MiB"):
        _read(conn, "SELECT REPEAT('x', 16777212)", 10)
    assert not conn.open


@pytest.mark.parametrize("rows", ["in C", "by the server"])
def test_backup_goes_on_past_a_row_the_server_cannot_render(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, rows: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A keyed table is not measured before it is rendered. Rendered by the server, a row
    longer than max_allowed_packet once rendered (quotes double under JSON escaping) comes
    back NULL; written by C from its columns, a row of 16 MiB or more comes split over
    packets, which C does not read. Either way the backup reads the rest of the table with
    the Python encoders, in the same snapshot, from that row on."""
    if rows == "by the server":
        monkeypatch.setattr(wire, "_wire", None)
    else:
        assert wire.renders_in_c(), "the _wire extension was not built"
    made = []
    for _ in range(2):
        utils = MigrationUtils(url=database_url("mysql", tmp_path), connect_args={}, engine_args={})
        utils.create_database()
        made.append(utils)
    source, target = made
    try:
        with source.engine.begin() as c:
            c.exec_driver_sql("CREATE TABLE t (id INT PRIMARY KEY, doc LONGTEXT)")
            c.exec_driver_sql("INSERT INTO t SELECT seq, CONCAT('small ', seq) FROM seq_1_to_4500")
            # 16 MiB less 4 bytes (the most REPEAT makes here): with its key and length
            # prefixes the row fills more than one packet.
            c.exec_driver_sql("UPDATE t SET doc = REPEAT('\"', 16777212) WHERE id = 2500")
        dump = str(tmp_path / "dump.jsonl")
        with caplog.at_level(logging.INFO):
            source.backup_database_to_file(dump)
        assert "too long for the server to render; rows after the first" in caplog.text
        summary = target.restore_database_from_file(dump)
        assert summary.tables == {"t": 4500}
        query = "SELECT id, MD5(doc), LENGTH(doc) FROM t ORDER BY id"
        with source.engine.connect() as a, target.engine.connect() as b:
            assert list(a.exec_driver_sql(query)) == list(b.exec_driver_sql(query))
    finally:
        for utils in made:
            utils.drop_database()
            utils.dispose()


@pytest.mark.parametrize("packets", ["in C", "in Python"])
def test_joined_batches_are_the_values_joined(
    conn: Connection, packets: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """joined_column (the backup's rendered rows): each batch's values joined by commas
    straight from the read buffer, the same batches as single_column's, across refills of
    the buffer and values longer than it; a batch holding a NULL is None. Plain row packets
    are joined in C (_wire.c), which the installed package must have; without it (a
    machine that could not compile it) every packet is read in Python, alike."""
    if packets == "in C":
        assert vars(wire)["_wire"] is not None, "the _wire extension was not built"
    else:
        monkeypatch.setattr(wire, "_wire", None)
    setup = "SET @bytes = UNHEX('" + "".join(f"{b:02x}" for b in range(256)) + "')"
    with conn.cursor() as cursor:
        cursor.execute(setup)
    sql = _union([300] * 5000 + LENGTHS)  # ~1.5 MB of two-byte-prefix rows first, then the rest
    expected = [b for b in _read(conn, sql, 7)]
    cursor = conn.cursor(pymysql.cursors.SSCursor)
    cursor.execute(sql)
    got = list(joined_column(cursor, 7))
    cursor.close()
    assert len(got) == len(expected)
    for block, values in zip(got, expected, strict=True):
        if None in values:
            assert block is None
        else:
            assert block == (len(values), b",".join(v for v in values if v is not None))
    assert got[-1] is None and got[0] is not None and got[0][0] == 7
    with conn.cursor() as cursor:  # read to its end: the connection goes on
        cursor.execute("SELECT 41 + 1")
        assert cursor.fetchone() == (42,)


def test_rows_written_in_c_are_the_servers_rendering_byte_for_byte(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A backup's rows written by C from the table's columns (_wire.rendered) are the very
    bytes the server's CONCAT / JSON_QUOTE / TO_BASE64 rendering gave, for every type it
    renders and the edges of each: integer limits, YEAR and ZEROFILL, control characters,
    quotes, backslashes, astral characters, a latin1 column, ENUM/SET, JSON, bytes of every
    length mod 3 and past TO_BASE64's line length, DATETIME/TIMESTAMP at each precision,
    negative TIME, NULLs. The installed package must have the module; without it the
    server renders."""
    assert wire.renders_in_c(), "the _wire extension was not built"
    utils = MigrationUtils(url=database_url("mysql", tmp_path), connect_args={}, engine_args={})
    utils.create_database()
    texts = _mixed_texts(400)
    try:
        with utils.engine.begin() as c:
            c.exec_driver_sql(
                "CREATE TABLE edge (id INT PRIMARY KEY, ti TINYINT, tu TINYINT UNSIGNED, "
                "bu BIGINT UNSIGNED, bi BIGINT NOT NULL DEFAULT 0, y YEAR, z INT(6) ZEROFILL, "
                "t TEXT, v VARCHAR(80) NOT NULL DEFAULT '', l VARCHAR(40) CHARACTER SET latin1, "
                "e ENUM('a','b\"c'), s SET('x','y'), j JSON, raw VARBINARY(200), b BLOB, "
                "d DECIMAL(20,6), dd DATE, dt DATETIME, dt3 DATETIME(3), dt6 DATETIME(6) NOT "
                "NULL DEFAULT '2000-01-01', ts TIMESTAMP(2) NULL, tm TIME(3)) "
                "CHARACTER SET utf8mb4"
            )
            c.exec_driver_sql(
                "INSERT INTO edge (id, ti, tu, bu, bi, y, z, e, s, d, dd, dt, dt3, dt6, ts, tm) "
                "VALUES (-1, -128, 255, 18446744073709551615, -9223372036854775808, 2155, 42, "
                "'b\"c', 'x,y', -12345678901234.5, '1000-01-01', '9999-12-31 23:59:59', "
                "'2024-02-29 01:02:03.004', '2024-02-29 01:02:03.000005', "
                "'2038-01-19 03:14:07.99', '-838:59:59.000'), "
                "(-2, 127, 0, 0, 9223372036854775807, 1901, 0, 'a', '', 0.000001, "
                "'2024-01-01', '2024-01-01 00:00:00', '2024-01-01 00:00:00.000', "
                "'2024-01-01 00:00:00', '1970-01-01 00:00:01', '00:00:00')"
            )
            for n, text in enumerate(texts):
                c.exec_driver_sql(
                    "INSERT INTO edge (id, t, v, l, j, raw, b) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                    (
                        n,
                        text,
                        text[:80],
                        "".join(ch for ch in text if ord(ch) < 256)[:40],
                        json.dumps({"s": text, "n": n}, ensure_ascii=n % 2 == 0),
                        None if n % 13 == 0 else bytes(range(n % 200)),
                        bytes(reversed(range(256))) * (n % 4),
                    ),
                )

        def rendered() -> bytes:
            with get_dialect(utils.engine).open_backup(utils.engine) as reader:
                [table] = reader.tables()
                stream = reader.rendered_rows(table, 97)
                assert stream is not None
                blocks = []
                for count, block in stream:
                    assert len(json.loads(b"[" + block + b"]")) == count
                    blocks.append(block)
                return b",".join(blocks)

        ways: list[bool] = []  # per stream: written by C (else rendered by the server)
        real = render.rendered_stream

        def stream(*args: Any, **kwargs: Any) -> Any:
            ways.append(kwargs.get("columns") is not None)
            return real(*args, **kwargs)

        monkeypatch.setattr(mysql_reader, "rendered_stream", stream)
        in_c = rendered()
        assert ways and all(ways)
        ways.clear()
        monkeypatch.setattr(wire, "_wire", None)
        by_server = rendered()
        assert ways and not any(ways)
    finally:
        utils.drop_database()
        utils.dispose()
    assert in_c == by_server
    assert len(json.loads(b"[" + in_c + b"]")) == len(texts) + 2


def _mixed_texts(count: int) -> list[str]:
    """Strings with every character class JSON escapes or passes through."""
    rng = random.Random(24)
    pieces = [chr(c) for c in range(32)] + ['"', "\\", "/", "\x7f", "é", "日本", "😀", "'", "%"]
    pool = pieces + [chr(rng.randrange(0x20, 0xD7FF)) for _ in range(40)]
    return ["".join(rng.choices(pool, k=rng.randrange(0, 60))) for _ in range(count)]
