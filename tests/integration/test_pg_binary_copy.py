"""PostgreSQL restores by binary COPY (core/dialects/postgresql/copy_binary.py, _bulk.c).

A large table whose column types allow it is sent in the server's binary form, written in C
from the dump's text. The server is the judge: a table restored that way must read back
exactly as its source, value for value in its text form (a numeric's scale, a timestamp's
fraction, a char(n)'s padding), and a value the C code declines sends its record as text
without changing what is stored.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from airflow_provider_zenmigrate.core.dialects.postgresql import copy_binary, copy_in
from airflow_provider_zenmigrate.core.dump import _bulk, typed_data
from airflow_provider_zenmigrate.core.dump.model import ColumnSpec, TableSpec
from airflow_provider_zenmigrate.core.utils import MigrationUtils
from tests.support.servers import database_url, pg_script

# Every type binary COPY takes, with the values at their edges (and NULLs). Row i's values
# vary with i, so that a value written at the wrong place or with the wrong size shows.
TYPES_SQL = """
CREATE TABLE b (
    id bigint PRIMARY KEY, i4 integer, i2 smallint, flag boolean,
    t text, vc varchar(20), c char(5), blob bytea,
    n numeric, nf numeric(12, 4), j jsonb, js json,
    ts timestamp, ts3 timestamp(3), tz timestamptz, d date, u uuid
);
INSERT INTO b VALUES
  (-9223372036854775, -2147483648, -32768, false, '', '', '', '\\x', 0, 0,
   '{}', '[]', '0001-01-01 00:00:00', '0001-01-01', '0001-01-01 00:00:00+00', '0001-01-01',
   '00000000-0000-0000-0000-000000000000'),
  (999999999999999999, 2147483647, 32767, true, E'tab\\there\\nnew \\\\ "q" é 😀', 'x',
   'ab', '\\x00ff00', 0.0000, 99999999.9999, '{"k": "é\\u00e9", "n": [1, 2.50]}',
   '{ "spaced" :  1 }', '1999-12-31 23:59:59.999999', '1999-12-31 23:59:59.999',
   '1999-12-31 23:59:59.999999+00', '1999-12-31', 'FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF'),
  (0, 0, 0, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  (1, 1, 1, true, 'a', 'b', 'c', '\\x01', -0.5, -0.0001, 'null', 'null',
   '2000-01-01 00:00:00', '2000-02-29 12:00:00.5', '2000-01-01 00:00:00+00', '2000-02-29',
   'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'),
  (2, 2, 2, false, 'z', 'y', 'x', '\\xdeadbeef', 123456789012345678901234567890.123456789,
   1.5, '[true, false]', '"s"', '9999-12-31 23:59:59.999999', '1900-03-01 00:00:00.001',
   '9999-12-31 23:59:59.999999+00', '9999-12-31', '12345678-1234-5678-1234-567812345678'),
  (3, 3, 3, true, 'w', 'v', 'u', '\\x', 0.00000000000000000001, 10000, '1', '2',
   '1970-01-01 00:00:00', '1969-12-31 23:59:59.1', '1960-06-15 08:30:00.25+00',
   '1600-02-29', '00000000-0000-0000-0000-000000000001'),
  (4, 4, 4, false, 'v', 'u', 't', '\\x7f', -10000.0001, 9999.9999, '{"a": {"b": []}}', '{}',
   '2024-02-29 23:59:59', '2100-03-01 00:00:00', '2024-02-29 23:59:59+00', '2100-02-28',
   '00000000-0000-0000-0000-000000000002');
INSERT INTO b
SELECT i, (i * 7919) % 2147483647 - 1000000, (i % 65536) - 32768, i % 3 = 0,
       'row ' || i || repeat(' é', i % 7), 'v' || i, left(md5(i::text), i % 6),
       sha256(i::text::bytea), (i * 1.000001 - 500000) * 10::numeric ^ (i % 9 - 4),
       round((i % 100000) * 0.3333, 4), jsonb_build_object('i', i, 'x', i * 0.5),
       json_build_array(i, 'x'),
       timestamp '1850-01-01' + i * interval '1 day 1 hour 0.000123 sec',
       timestamp '2030-06-30 12:00' - i * interval '37 min 0.0011 sec',
       timestamptz '1990-01-01 00:00+00' + i * interval '123.456789 sec',
       date '1700-01-01' + i % 200000, md5('u' || i)::uuid
FROM generate_series(10, 4009) i;
"""

# Values the C code declines: its record goes as text, the server parses it as before.
DECLINED_SQL = """
CREATE TABLE x (id bigint PRIMARY KEY, n numeric, ts timestamp, d date, big bigint);
INSERT INTO x
SELECT i,
       CASE i WHEN 2500 THEN 'NaN' WHEN 2501 THEN 'Infinity' ELSE i * 0.25 END,
       CASE i WHEN 2500 THEN 'infinity' WHEN 2501 THEN '10000-01-01'
              WHEN 2502 THEN '-infinity' ELSE timestamp '2000-01-01' + i * interval '1 sec' END,
       CASE i WHEN 2500 THEN '-infinity' WHEN 2501 THEN '0044-03-15 BC'
              ELSE date '2000-01-01' + i END,
       CASE i WHEN 4500 THEN -9223372036854775808 ELSE i END
FROM generate_series(1, 5000) i;
"""

ROW_TEXT = "SELECT string_agg(t::text, E'\\n' ORDER BY id) FROM {} t"


def query(url: Any, sql: str) -> list[tuple[Any, ...]]:
    libpq = url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(libpq) as conn:
        return conn.execute(sql.encode()).fetchall()


def rows_text(url: Any, table: str) -> str:
    [(text,)] = query(url, ROW_TEXT.format(table))
    return str(text)


@pytest.fixture
def databases(tmp_path: Path) -> Iterator[tuple[MigrationUtils, MigrationUtils]]:
    made = []
    for _ in range(2):
        utils = MigrationUtils(url=database_url("postgresql", tmp_path), connect_args={})
        utils.create_database()
        made.append(utils)
    try:
        yield made[0], made[1]
    finally:
        for utils in made:
            utils.drop_database()
            utils.dispose()


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> BinaryCalls:
    return BinaryCalls(monkeypatch)


@pytest.fixture
def every_table_binary(monkeypatch: pytest.MonkeyPatch) -> None:
    """Binary COPY for every table, however small its records."""
    monkeypatch.setattr(copy_in, "BINARY_BYTES", 0)


class BinaryCalls:
    """What the C code gave for each record the restore asked it for."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.taken = 0
        self.declined = 0
        bulk = _bulk

        class Counting:
            rows = staticmethod(bulk.rows)

            @staticmethod
            def binary_rows(*args: Any) -> bytes | None:
                out = bulk.binary_rows(*args)
                if out is None:
                    self.declined += 1
                else:
                    self.taken += 1
                return out

        monkeypatch.setattr(typed_data, "_bulk", Counting)


def round_trip(
    databases: tuple[MigrationUtils, MigrationUtils], script: str, tmp_path: Path
) -> None:
    """``script`` run on the source, backed up and restored into the target."""
    source, target = databases
    pg_script(source.url, script)
    dump = tmp_path / "dump.jsonl"
    source.backup_database_to_file(str(dump))
    target.restore_database_from_file(str(dump))


@pytest.mark.usefixtures("every_table_binary")
def test_every_binary_type_reads_back_as_its_source(
    databases: tuple[MigrationUtils, MigrationUtils], tmp_path: Path, calls: BinaryCalls
) -> None:
    source, target = databases
    round_trip(databases, TYPES_SQL, tmp_path)

    assert calls.taken == 3 and calls.declined == 0  # 4,007 rows in records of 2,000
    assert rows_text(target.url, "b") == rows_text(source.url, "b")
    probe = (
        "SELECT numeric_send(n), numeric_send(nf), timestamp_send(ts), timestamptz_send(tz),"
        " date_send(d), byteasend(blob) FROM b ORDER BY id"
    )
    sent = [query(u.url, probe) for u in databases]
    assert sent[0] == sent[1]  # the stored forms too, not only their text


@pytest.mark.usefixtures("every_table_binary")
def test_a_declined_value_sends_its_record_as_text(
    databases: tuple[MigrationUtils, MigrationUtils], tmp_path: Path, calls: BinaryCalls
) -> None:
    source, target = databases
    round_trip(databases, DECLINED_SQL, tmp_path)

    # The first record (rows 1-2,000) went binary; the second holds the declined values, and
    # the table's later records go as text without asking again (the third's bigint beyond
    # 18 digits would not have been taken either).
    assert (calls.taken, calls.declined) == (1, 1)
    assert rows_text(target.url, "x") == rows_text(source.url, "x")
    rows = query(target.url, "SELECT n::text, ts::text, d::text FROM x WHERE id = 2501")
    assert rows == [("Infinity", "10000-01-01 00:00:00", "0044-03-15 BC")]


def test_a_large_table_goes_binary_and_a_small_one_as_text(
    databases: tuple[MigrationUtils, MigrationUtils], tmp_path: Path, calls: BinaryCalls
) -> None:
    source, target = databases
    script = (
        "CREATE TABLE big (id bigint PRIMARY KEY, v text, at timestamp);"
        "INSERT INTO big SELECT i, repeat('v', 200), timestamp '2020-01-01' + i * interval '1s'"
        " FROM generate_series(1, 5000) i;"
        "CREATE TABLE small (id bigint PRIMARY KEY, v text);"
        "INSERT INTO small SELECT i, 'v' FROM generate_series(1, 100) i;"
    )
    round_trip(databases, script, tmp_path)
    assert calls.taken == 3 and calls.declined == 0  # big's three records of 2,000 rows
    for table in ("big", "small"):
        assert rows_text(target.url, table) == rows_text(source.url, table)


def test_kinds_follow_the_target_s_column_types_not_the_dump_s(
    databases: tuple[MigrationUtils, MigrationUtils],
) -> None:
    target, _ = databases
    pg_script(
        target.url,
        "CREATE DOMAIN positive AS bigint CHECK (VALUE > 0);"
        'CREATE TABLE "T" (a bigint, b bytea, c timestamp, d numeric(5,2), e positive,'
        " f double precision, g int[]);",
    )
    libpq = target.url.set(drivername="postgresql").render_as_string(hide_password=False)

    def kinds(*columns: tuple[str, str]) -> bytes | None:
        spec = TableSpec(
            name="T",
            create_stmt="",
            columns=tuple(ColumnSpec(name=n, codec=c) for n, c in columns),
        )
        with psycopg.connect(libpq) as conn:
            return copy_binary.binary_kinds(conn, '"public"."T"', spec)

    assert kinds(("a", "native"), ("b", "bytes"), ("c", "text"), ("d", "decimal")) == b"qrtd"
    # A codec the column's type does not pair with, a domain, a float, an array: text.
    assert kinds(("a", "native"), ("b", "native")) is None
    assert kinds(("c", "datetime")) is None
    assert kinds(("e", "native")) is None
    assert kinds(("f", "float")) is None
    assert kinds(("g", "text")) is None
