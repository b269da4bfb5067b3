"""The PostgreSQL dialect's backup reader and restore writer, on a real server.

Each test creates its own databases and drops them. The copy goes through JSON and the
value codecs (as a dump does), with the reader's ``pre_objects`` created before the tables.
"""

from __future__ import annotations

import base64
import json
import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlalchemy
from sqlalchemy.engine import URL, Engine
from sqlalchemy.pool import NullPool

from airflow_provider_zenmigrate.core.dialects import get_dialect
from airflow_provider_zenmigrate.core.dialects.postgresql import copy_stream
from airflow_provider_zenmigrate.core.dialects.postgresql import reader as pg_reader
from airflow_provider_zenmigrate.core.dialects.postgresql.connection import execute_one
from airflow_provider_zenmigrate.core.dialects.postgresql.copy_stream import (
    JsonColumns,
    copy_text_rows,
)
from airflow_provider_zenmigrate.core.dialects.postgresql.reader import RANGE_BLOCKS
from airflow_provider_zenmigrate.core.dialects.postgresql.render import bytea_copy_fields
from airflow_provider_zenmigrate.core.dialects.postgresql.writer import PostgreSQLRestoreWriter
from airflow_provider_zenmigrate.core.dump.chunk import Chunk
from airflow_provider_zenmigrate.core.dump.model import ColumnSpec, ObjectSpec, TableSpec
from airflow_provider_zenmigrate.core.errors import UnsafeDumpError
from airflow_provider_zenmigrate.core.utils import MigrationUtils
from tests.support.dialect_harness import copy_via_dialect, rendered_batches
from tests.support.dumps import data_rows
from tests.support.sakila import load_postgresql_sakila
from tests.support.servers import database_url

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "postgresql"


# -- helpers -----------------------------------------------------------------------------------
@contextmanager
def pg_database(tmp_path: Path) -> Iterator[Engine]:
    """A new, empty PostgreSQL database, dropped afterwards."""
    url = database_url("postgresql", tmp_path)
    mu = MigrationUtils(url=url, connect_args={}, engine_args={})
    mu.create_database()
    engine = sqlalchemy.create_engine(url, poolclass=NullPool)
    try:
        yield engine
    finally:
        engine.dispose()
        mu.drop_database()
        mu.dispose()


def libpq_url(engine: Engine) -> str:
    url: URL = engine.url
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def run_sql(engine: Engine, script: str) -> None:
    """Run a multi-statement script (simple query protocol, autocommit)."""
    with psycopg.connect(libpq_url(engine), autocommit=True) as conn:
        conn.execute(script.encode())


def query(engine: Engine, sql: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(libpq_url(engine)) as conn:
        conn.execute(b"SET search_path = public")
        return [tuple(r) for r in conn.execute(sql.encode()).fetchall()]


def copy_pg(source: Engine, target: Engine, chunk_rows: int = 500, fail_after: int = -1) -> None:
    assert get_dialect(source).name == "postgresql"
    copy_via_dialect(source, target, chunk_rows=chunk_rows, fail_after=fail_after)


def table_hashes(engine: Engine) -> dict[str, tuple[int, str | None]]:
    """Row count and an ordered md5 of every row's text, per table (rows of the table only)."""
    names = [
        r[0]
        for r in query(
            engine,
            "SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace"
            " AND relkind IN ('r', 'p') ORDER BY relname",
        )
    ]
    out: dict[str, tuple[int, str | None]] = {}
    for name in names:
        q = '"' + name.replace('"', '""') + '"'
        [(count, digest)] = query(
            engine,
            f"SELECT count(*), md5(string_agg(t::text, E'\\n' ORDER BY t::text)) FROM ONLY {q} t",
        )
        out[name] = (count, digest)
    return out


CATALOG_QUERIES = {
    "tables": """
        SELECT relname, relkind, relpersistence, relispartition, reloptions,
               pg_get_expr(relpartbound, oid),
               CASE WHEN relkind = 'p' THEN pg_get_partkeydef(oid) END,
               (SELECT array_agg(inhparent::regclass::text ORDER BY inhseqno)
                  FROM pg_inherits WHERE inhrelid = c.oid)
        FROM pg_class c WHERE relnamespace = 'public'::regnamespace
        ORDER BY relname, relkind""",
    "columns": """
        SELECT c.relname, a.attnum, a.attname, format_type(a.atttypid, a.atttypmod),
               a.attnotnull, pg_get_expr(d.adbin, d.adrelid), a.attidentity, a.attgenerated,
               a.attislocal, a.attinhcount, a.attcollation::regcollation::text
        FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
        LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
        WHERE c.relnamespace = 'public'::regnamespace AND a.attnum > 0
          AND NOT a.attisdropped AND c.relkind <> 'S'
        ORDER BY 1, 2""",
    "constraints": """
        SELECT conrelid::regclass::text, contypid::regtype::text, conname, contype,
               pg_get_constraintdef(oid), conislocal, coninhcount, convalidated
        FROM pg_constraint WHERE connamespace = 'public'::regnamespace ORDER BY 1, 2, 3""",
    "indexes": "SELECT tablename, indexname, indexdef FROM pg_indexes"
    " WHERE schemaname = 'public' ORDER BY 1, 2",
    "sequences": """
        SELECT sequencename, data_type::text, increment_by, min_value, max_value,
               cache_size, cycle,
               (SELECT refobjid::regclass::text || '.' || refobjsubid || d.deptype::text
                  FROM pg_depend d WHERE d.objid = (quote_ident(sequencename))::regclass
                   AND d.classid = 'pg_class'::regclass AND d.refobjsubid > 0)
        FROM pg_sequences WHERE schemaname = 'public' ORDER BY 1""",
    "views": "SELECT viewname, definition FROM pg_views WHERE schemaname = 'public'"
    " UNION ALL SELECT matviewname, definition || ispopulated FROM pg_matviews"
    " WHERE schemaname = 'public' ORDER BY 1",
    "routines": """
        SELECT proname, prokind, pg_get_function_identity_arguments(oid),
               CASE WHEN prokind <> 'a' THEN pg_get_functiondef(oid) END,
               (SELECT row(aggtransfn, aggtranstype::regtype, agginitval)::text
                  FROM pg_aggregate WHERE aggfnoid = p.oid)
        FROM pg_proc p WHERE pronamespace = 'public'::regnamespace ORDER BY 1, 3""",
    "triggers": """
        SELECT tgrelid::regclass::text, tgname, pg_get_triggerdef(oid), tgenabled
        FROM pg_trigger WHERE NOT tgisinternal
          AND tgrelid IN (SELECT oid FROM pg_class WHERE relnamespace = 'public'::regnamespace)
        ORDER BY 1, 2""",
    "rules": "SELECT tablename, rulename, definition FROM pg_rules WHERE schemaname = 'public'"
    " ORDER BY 1, 2",
    "types": """
        SELECT t.typname, t.typtype, format_type(t.typbasetype, t.typtypmod), t.typnotnull,
               (SELECT array_agg(enumlabel ORDER BY enumsortorder) FROM pg_enum
                 WHERE enumtypid = t.oid),
               (SELECT array_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
                                 ORDER BY a.attnum)
                  FROM pg_attribute a WHERE a.attrelid = t.typrelid AND a.attnum > 0)
        FROM pg_type t LEFT JOIN pg_class c ON c.oid = t.typrelid
        WHERE t.typnamespace = 'public'::regnamespace ORDER BY 1""",
    "schema": "SELECT nspowner::regrole::text, nspacl::text,"
    " obj_description(oid, 'pg_namespace') FROM pg_namespace WHERE nspname = 'public'",
    "stray_schemas": "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'zm\\_%' ORDER BY 1",
}


def sequence_positions(engine: Engine) -> dict[str, int]:
    """The value each sequence's next nextval() returns (without calling it)."""
    out: dict[str, int] = {}
    for (name,) in query(engine, "SELECT sequencename FROM pg_sequences ORDER BY 1"):
        q = '"' + name.replace('"', '""') + '"'
        [(last, called, inc)] = query(
            engine,
            f"SELECT last_value, is_called, (SELECT increment_by FROM pg_sequences"
            f" WHERE sequencename = '{name}') FROM {q}",
        )
        out[name] = last + inc if called else last
    return out


def catalog(engine: Engine) -> dict[str, Any]:
    snap: dict[str, Any] = {k: query(engine, q) for k, q in CATALOG_QUERIES.items()}
    snap["sequence_positions"] = sequence_positions(engine)
    return snap


def assert_same_database(source: Engine, target: Engine) -> None:
    """Same rows and same catalogue (the target keeps its own ``public`` owner and grants)."""
    assert table_hashes(target) == table_hashes(source)
    src, dst = catalog(source), catalog(target)
    for key in src:
        if key != "schema":
            assert dst[key] == src[key], key


# -- tests -------------------------------------------------------------------------------------
def test_fidelity_every_type_and_object(tmp_path: Path) -> None:
    with pg_database(tmp_path) as source, pg_database(tmp_path) as target:
        run_sql(source, (FIXTURES / "fidelity.sql").read_text())
        run_sql(
            target,
            "CREATE TABLE stale (id int PRIMARY KEY); INSERT INTO stale VALUES (1);"
            "CREATE VIEW stale_view AS SELECT * FROM stale;"
            "CREATE TYPE mood AS ENUM ('other');"  # same name as a source type: no clash
            "GRANT USAGE ON SCHEMA public TO pg_read_all_data;",
        )
        assert query(target, CATALOG_QUERIES["schema"]) != query(source, CATALOG_QUERIES["schema"])

        copy_pg(source, target, chunk_rows=2)

        assert_same_database(source, target)
        assert query(target, "SELECT to_regclass('stale'), to_regclass('stale_view')") == [
            (None, None)
        ]
        # The schema is the dump's: its owner, privileges and comment (not the target's).
        assert query(target, CATALOG_QUERIES["schema"]) == query(source, CATALOG_QUERIES["schema"])
        # The copies continue where the source's sequences stand.
        for engine in (source, target):
            run_sql(
                engine, "INSERT INTO everything (i4) VALUES (7); INSERT INTO ident (v) VALUES ('n')"
            )
        probe = (
            "SELECT e.id, e.counter, e.twice, e.note, i.id FROM everything e, ident i"
            " WHERE e.i4 = 7 AND i.v = 'n'"
        )
        assert query(target, probe) == query(source, probe)


def test_floats_and_numerics_survive_exactly(tmp_path: Path) -> None:
    with pg_database(tmp_path) as source, pg_database(tmp_path) as target:
        run_sql(source, (FIXTURES / "fidelity.sql").read_text())
        copy_pg(source, target)
        probe = (
            "SELECT id, num::text, num_fixed::text, r::text, d::text, float8send(d),"
            " float4send(r) FROM everything ORDER BY id"
        )
        rows = query(target, probe)
        assert rows == query(source, probe)
        assert rows[0][3:5] == ("NaN", "-0")
        assert rows[1][1] == "-Infinity" and rows[1][3:5] == ("Infinity", "-Infinity")


@pytest.mark.sakila
def test_sakila_round_trip(tmp_path: Path) -> None:
    with pg_database(tmp_path) as source, pg_database(tmp_path) as target:
        load_postgresql_sakila(source.url)
        copy_pg(source, target, chunk_rows=1000)
        assert_same_database(source, target)
        hashes = table_hashes(target)
        assert hashes["rental"][0] == 16044 and hashes["film"][0] == 1000


def test_failed_restore_leaves_target_untouched(tmp_path: Path) -> None:
    with pg_database(tmp_path) as source, pg_database(tmp_path) as target:
        run_sql(source, (FIXTURES / "fidelity.sql").read_text())
        run_sql(
            target,
            "CREATE TABLE precious (id int PRIMARY KEY, v text);"
            "INSERT INTO precious SELECT i, md5(i::text) FROM generate_series(1, 1000) i;",
        )
        before_hashes, before_catalog = table_hashes(target), catalog(target)
        with pytest.raises(RuntimeError, match="simulated failure"):
            copy_pg(source, target, chunk_rows=1, fail_after=3)
        assert table_hashes(target) == before_hashes
        assert catalog(target) == before_catalog
        assert before_catalog["stray_schemas"] == []

        # A load the server refuses (a value of the wrong type) is no different.
        with get_dialect(target).open_restore(target, "broken") as writer:
            writer.create_table(TableSpec("t", "CREATE TABLE t (id int)", columns=()))
            spec = TableSpec("t", "", columns=(ColumnSpec("id", "text"),))
            # The COPY stays open across chunks: the server's refusal comes when it ends.
            with pytest.raises(psycopg.errors.InvalidTextRepresentation):
                writer.load_rows(spec, [("not a number",)])
                writer.row_count(spec)
        assert table_hashes(target) == before_hashes
        assert query(target, CATALOG_QUERIES["stray_schemas"]) == []

        # Nor through a data record's bulk text (made in C, written by the COPY's sending
        # thread, chunk after chunk): the refusal is raised, the target unchanged.
        spec = TableSpec("t", "", columns=(ColumnSpec("id", "text"),))
        good, bad = data_rows(spec, [{"id": "1"}]), data_rows(spec, [{"id": "not a number"}])
        with get_dialect(target).open_restore(target, "broken") as writer:
            writer.create_table(TableSpec("t", "CREATE TABLE t (id int)", columns=()))
            with pytest.raises(psycopg.errors.InvalidTextRepresentation):
                for rows in (good, bad, good, good):
                    writer.load_chunk(spec, Chunk(rows, ["id"]))
                writer.row_count(spec)
        assert table_hashes(target) == before_hashes
        assert query(target, CATALOG_QUERIES["stray_schemas"]) == []

        copy_pg(source, target)  # and running it again succeeds
        assert_same_database(source, target)


def test_unsafe_statements_refused_before_execution(tmp_path: Path) -> None:
    with pg_database(tmp_path) as target:
        with get_dialect(target).open_restore(target, "unsafe") as writer:
            assert isinstance(writer, PostgreSQLRestoreWriter)
            bad_tables = [
                "CREATE TABLE t (id int); DROP DATABASE x",
                "CREATE TABLE other (id int)",
                "CREATE TABLE public.t (id int)",
                "DROP TABLE t",
            ]
            for stmt in bad_tables:
                with pytest.raises(UnsafeDumpError):
                    writer.create_table(TableSpec("t", stmt, columns=()))
            bad_objects = [
                ObjectSpec("view", "v", "CREATE VIEW v AS SELECT 1; DROP SCHEMA public CASCADE"),
                ObjectSpec("index", "i", "CREATE INDEX j ON t (id)"),
                ObjectSpec("constraint", "c", "ALTER TABLE t DROP COLUMN id"),
                ObjectSpec("function", "f", "DROP FUNCTION f"),
            ]
            for obj in bad_objects:
                with pytest.raises(UnsafeDumpError):
                    writer.create_object(obj)
            # Nothing ran: the staging schema is still empty.
            with writer._conn.cursor() as cur:
                cur.execute(
                    b"SELECT count(*) FROM pg_class WHERE relnamespace = %s::regnamespace",
                    (writer.stage,),
                )
                assert cur.fetchone() == (0,)
        # Even past the check, the protocol runs one statement per call.
        with (
            psycopg.connect(libpq_url(target)) as conn,
            pytest.raises(psycopg.errors.SyntaxError),
        ):
            execute_one(conn, "SELECT 1; SELECT 2")


def test_hostile_names_round_trip(tmp_path: Path) -> None:
    with pg_database(tmp_path) as source, pg_database(tmp_path) as target:
        run_sql(
            source,
            'CREATE TABLE "we""ird tab; DROP" ("co""l" serial PRIMARY KEY, "Mixed Case" text,'
            ' "select" int CONSTRAINT "chk ""x""" CHECK ("select" > 0));'
            'CREATE INDEX "idx ""q""" ON "we""ird tab; DROP" ("Mixed Case");'
            'CREATE VIEW "v""w" AS SELECT * FROM "we""ird tab; DROP";'
            'INSERT INTO "we""ird tab; DROP" ("Mixed Case", "select")'
            " VALUES ('a\"b', 1), (NULL, 2);",
        )
        copy_pg(source, target)
        assert_same_database(source, target)
        assert query(target, 'SELECT count(*) FROM "we""ird tab; DROP"') == [(2,)]


@pytest.mark.parametrize("values", [[b"\\", b"", b"\x00\t\n"], [None, b"\\x", None]])
def test_bytea_fields_count_their_backslashes(values: list[bytes | None]) -> None:
    """The count the COPY text check relies on instead of scanning the fields."""
    fields = bytea_copy_fields(values)
    assert fields == [None if v is None else "\\\\x" + v.hex() for v in values]
    assert fields.backslashes == "".join(filter(None, fields)).count("\\")


def test_keys_of_plain_tables_are_added_after_the_data(tmp_path: Path) -> None:
    """A plain table's primary, unique and exclusion keys come after its rows (one index
    build, not one insert per row), before what needs them: a foreign key to a unique key,
    a view that groups by the primary key. A partitioned table keeps its key inline."""
    with pg_database(tmp_path) as source, pg_database(tmp_path) as target:
        run_sql(
            source,
            "CREATE TABLE parent (id int PRIMARY KEY, code text UNIQUE, span int4range,"
            "  EXCLUDE USING gist (span WITH &&));"
            "CREATE TABLE child (id int PRIMARY KEY, code text REFERENCES parent (code));"
            "CREATE VIEW by_parent AS SELECT p.id, p.code, count(c.id) AS n"
            "  FROM parent p LEFT JOIN child c ON c.code = p.code GROUP BY p.id;"
            "CREATE TABLE part (id int, at date, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);"
            "CREATE TABLE part_2024 PARTITION OF part"
            "  FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');"
            "INSERT INTO parent SELECT i, 'c' || i, int4range(i * 10, i * 10 + 5)"
            "  FROM generate_series(1, 300) i;"
            "INSERT INTO child SELECT i, 'c' || (i % 300 + 1) FROM generate_series(1, 500) i;"
            "INSERT INTO part VALUES (1, '2024-05-01');",
        )
        with get_dialect(source).open_backup(source) as reader:
            tables = {t.name: t for t in reader.tables()}
            objects = [(o.object_type, o.name) for o in reader.objects()]
        assert "PRIMARY KEY" not in tables["parent"].create_stmt
        assert "UNIQUE" not in tables["parent"].create_stmt
        assert "PRIMARY KEY" in tables["part"].create_stmt
        keys = ["parent_pkey", "parent_code_key", "parent_span_excl", "child_pkey"]
        position = {name: i for i, (kind, name) in enumerate(objects)}
        assert all(("constraint", k) in objects for k in keys), objects
        assert position["parent_code_key"] < position["child_code_fkey"]
        assert position["parent_pkey"] < position["by_parent"]
        copy_pg(source, target, chunk_rows=100)
        assert_same_database(source, target)
        assert query(target, "SELECT sum(n) FROM by_parent") == [(500,)]


def test_rows_stream_in_chunks(tmp_path: Path) -> None:
    with pg_database(tmp_path) as source:
        run_sql(
            source,
            "CREATE TABLE big (id bigint PRIMARY KEY, payload text, at timestamptz);"
            "INSERT INTO big SELECT i, repeat('x', 50),"
            " '2024-01-01'::timestamptz + i * interval '1s' FROM generate_series(1, 50000) i;",
        )
        with get_dialect(source).open_backup(source) as reader:
            [table] = reader.tables()
            assert table.key == ("id",)
            assert [c.codec for c in table.columns] == ["native", "native", "text"]
            sizes = [len(chunk) for chunk in reader.rows(table, 7000)]
        assert sizes == [7000] * 7 + [1000]


def test_backup_is_one_read_only_snapshot(tmp_path: Path) -> None:
    with pg_database(tmp_path) as source:
        run_sql(source, "CREATE TABLE t (id int); INSERT INTO t VALUES (1), (2);")
        with get_dialect(source).open_backup(source) as reader:
            [table] = reader.tables()
            first = [row for chunk in reader.rows(table, 10) for row in chunk]
            run_sql(source, "INSERT INTO t VALUES (3)")  # committed after the snapshot
            again = [row for chunk in reader.rows(table, 10) for row in chunk]
            assert first == again == [(1,), (2,)]
            assert reader.server_version.split(".")[0].isdigit()


def test_large_table_renders_on_two_sessions_in_one_snapshot(tmp_path: Path) -> None:
    """A table of many heap blocks is rendered in block ranges alternating between the
    reader's session and a second one in its exported snapshot: the rows are exactly the
    snapshot's (changes committed after it, to rows of every range, are not seen), each
    once, and the ranges really ran on two sessions."""
    with pg_database(tmp_path) as source:
        run_sql(
            source,
            "CREATE TABLE t (id bigint PRIMARY KEY, label text, doc jsonb, raw bytea);"
            # Backslashes and quotes: JSON escapes them, and text COPY would double them.
            "INSERT INTO t SELECT i, repeat('x', 150) || i || chr(92) || chr(34) || 'q', "
            "jsonb_build_object('n', i, 's', 'a' || chr(34) || 'b' || chr(92) || 'c'), "
            "sha256(i::text::bytea) "
            "FROM generate_series(1, 40000) i;",
        )
        expected = {row[0]: row for row in query(source, "SELECT id, label, doc::text, raw FROM t")}
        with get_dialect(source).open_backup(source) as reader:
            [table] = reader.tables()
            blocks = query(source, "SELECT pg_relation_size('t') / 8192")[0][0]
            assert blocks > 4 * RANGE_BLOCKS, blocks
            run_sql(
                source,
                "UPDATE t SET label = 'changed' WHERE id % 997 = 0;"
                "DELETE FROM t WHERE id % 1009 = 0;"
                "INSERT INTO t SELECT i, 'new', NULL, NULL FROM generate_series(40001, 41000) i;",
            )
            rows: list[dict[str, Any]] = []
            for batch in rendered_batches(reader.rendered_rows(table, 1000), 1000):
                if len(rows) == 0:
                    copying = query(
                        source,
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                        " AND query LIKE 'COPY (SELECT%ctid%'",
                    )[0][0]
                    assert copying == 2, copying
                rows.extend(batch)
        got = {r["id"]: r for r in rows}
        assert len(got) == len(rows) == len(expected) == 40000
        for key, (_, label, doc, raw) in expected.items():
            row = got[key]
            assert row["label"] == label
            assert json.loads(row["doc"]) == json.loads(doc)
            assert base64.b64decode(row["raw"]) == bytes(raw)


#: The two ways a COPY's rows become JSON: C from the columns, the server as one column.
COPY_WAYS = pytest.mark.parametrize("in_c", [True, False], ids=["in C", "by the server"])


def one_text_column(query: str, in_c: bool) -> tuple[str, JsonColumns | None]:
    """A one-text-column query as :func:`copy_text_rows` takes it either way: written by C
    as ``{"r": text}``, or rendered by the server as that same object."""
    if in_c:
        return query, JsonColumns(b"s", (b'{"r":',))
    return f"SELECT '{{\"r\":' || to_json(r)::text || '}}' FROM ({query}) AS q(r)", None


def joined_rows(stream: Iterator[tuple[int, bytes]]) -> bytes:
    """A copy_text_rows stream's rows joined as they would be in one block, each batch's
    count checked."""
    blocks = []
    for count, block in stream:
        assert len(json.loads(b"[" + block + b"]")) == count
        blocks.append(block)
    return b",".join(blocks)


@COPY_WAYS
def test_abandoned_copy_is_cancelled(tmp_path: Path, in_c: bool) -> None:
    """A consumer that stops mid-table (the backup failed elsewhere) cancels the COPY rather
    than reading the rest: here the rest would take the server 100 s (1 ms a row), so a
    close that reads it would hit the test timeout. The session is usable afterwards."""
    with pg_database(tmp_path) as source, psycopg.connect(libpq_url(source)) as conn:
        query, columns = one_text_column(
            "SELECT 'row ' || i || pg_sleep(0.001)::text FROM generate_series(1, 100000) i", in_c
        )
        rows = copy_text_rows(conn, query, batch_rows=10, batch_bytes=1 << 20, json=columns)
        count, block = next(rows)
        assert count == 10 and block.startswith(b'{"r":"row 1"},{"r":"row 2"},')
        started = time.monotonic()
        rows.close()
        assert time.monotonic() - started < 30
        conn.rollback()  # the cancelled statement ended the transaction
        assert conn.execute("SELECT 1").fetchone() == (1,)


@COPY_WAYS
def test_copy_errors_raise_the_servers_error(tmp_path: Path, in_c: bool) -> None:
    with pg_database(tmp_path) as source, psycopg.connect(libpq_url(source)) as conn:
        query, columns = one_text_column(
            "SELECT (10 / (5 - i))::text FROM generate_series(1, 10) i", in_c
        )
        with pytest.raises(psycopg.errors.DivisionByZero):
            list(copy_text_rows(conn, query, 2, 1 << 20, columns))
        conn.rollback()
        assert conn.execute("SELECT 1").fetchone() == (1,)
        query, columns = one_text_column("SELECT x FROM no_such_table", in_c)
        with pytest.raises(psycopg.errors.UndefinedTable):
            list(copy_text_rows(conn, query, 2, 1 << 20, columns))


@pytest.mark.parametrize(
    ("query", "columns", "wrong"),
    [
        ("SELECT 'three'::text", JsonColumns(b"i", (b'{"a":',)), "not 2, 4 or 8 bytes"),
        ("SELECT 7::int2", JsonColumns(b"b", (b'{"a":',)), "boolean column's value"),
        ("SELECT 1, 2", JsonColumns(b"i", (b'{"a":',)), "field count"),
    ],
)
def test_copy_rows_not_in_the_described_shape_are_refused(
    tmp_path: Path, query: str, columns: JsonColumns, wrong: str
) -> None:
    """C checks every message against the columns it was told of: a row of another shape
    raises, naming what was wrong, and the COPY is cancelled (the session is usable)."""
    with pg_database(tmp_path) as source, psycopg.connect(libpq_url(source)) as conn:
        rows = copy_text_rows(
            conn, f"{query} FROM generate_series(1, 50000)", 1000, 1 << 20, columns
        )
        with pytest.raises(psycopg.DataError, match=wrong):
            list(rows)
        conn.rollback()
        assert conn.execute("SELECT 1").fetchone() == (1,)


#: Every character class JSON escapes or passes through, in text PostgreSQL can hold (no NUL).
_TEXT_PIECES = [chr(c) for c in range(1, 32)] + ['"', "\\", "/", "\x7f", "é", "日本", "😀", "'", ""]


def _text_values(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    pool = _TEXT_PIECES + [chr(rng.randrange(0x20, 0xD7FF)) for _ in range(40)]
    return ["".join(rng.choices(pool, k=rng.randrange(0, 40))) for _ in range(count)]


def test_json_written_in_c_is_the_servers_byte_for_byte(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A backup's rows written by C from a binary COPY (_copy_out.c) are the very bytes the
    server's to_json rendering gave, for every codec and the edges of each type: control
    characters, quotes, backslashes, astral characters, char(n) padding, the integer
    limits, bytea of every length mod 3, NaN and infinities, NULLs. The installed package
    must have the module; without it (or without a libpq to call) the server renders."""
    assert vars(copy_stream)["_copy_out"] is not None, "the _copy_out extension was not built"
    assert copy_stream.libpq_calls() is not None, "psycopg's libpq was not found"
    texts = _text_values(600, seed=27)
    with pg_database(tmp_path) as source:
        run_sql(
            source,
            "CREATE TYPE mood AS ENUM ('ok', 'a\"b');"
            "CREATE DOMAIN small AS int CHECK (VALUE < 100);"
            "CREATE TABLE edge (id serial PRIMARY KEY, i2 int2, i4 int4, i8 int8, b boolean, "
            "t text, v varchar(80), c char(6), n name, raw bytea, num numeric, f8 float8, "
            "f4 real, ts timestamptz, iv interval, u uuid, j json, jb jsonb, arr text[], "
            "m mood, d small, ip inet);",
        )
        with psycopg.connect(libpq_url(source)) as conn:
            edges = [
                (-32768, -(2**31), -(2**63), True, "ab", "NaN", "Infinity"),
                (32767, 2**31 - 1, 2**63 - 1, False, "a\tb ", "-0.0001", "-Infinity"),
                (0, 0, 0, None, "", "1e-20", "NaN"),
            ]
            for i2, i4, i8, b, c, num, f8 in edges:
                conn.execute(
                    "INSERT INTO edge (i2, i4, i8, b, c, num, f8, f4, ts, iv, u, m, d, ip) "
                    "VALUES (%s, %s, %s, %s, %s, %s::numeric, %s::float8, 1.5, "
                    "'2024-02-29 23:59:59.999999+05:30', '1 year -2 days 03:04:05.6', "
                    "gen_random_uuid(), 'a\"b', 7, '::1/128')",
                    (i2, i4, i8, b, c, num, f8),
                )
            rng = random.Random(7)
            for n, text in enumerate(texts):
                raw = None if n % 17 == 0 else rng.randbytes(n % 7)
                conn.execute(
                    "INSERT INTO edge (t, v, n, raw, j, jb, arr) VALUES (%s, %s, %s, %s, "
                    "%s::json, %s::jsonb, %s)",
                    (
                        text,
                        text[:80],
                        text.encode()[:63].decode(errors="ignore"),
                        raw,
                        json.dumps({"s": text, "n": n}, ensure_ascii=n % 2 == 0),
                        json.dumps([text, n]),
                        [text, None, "x"],
                    ),
                )
            conn.execute("INSERT INTO edge DEFAULT VALUES")  # every column NULL but id

        def rendered() -> bytes:
            with get_dialect(source).open_backup(source) as reader:
                [table] = reader.tables()
                return joined_rows(reader.rendered_rows(table, 250) or iter(()))

        ways: list[bool] = []  # per COPY: written by C (else rendered by the server)
        real = copy_text_rows

        def copy(*args: Any) -> Any:
            ways.append(args[-1] is not None)
            return real(*args)

        monkeypatch.setattr(pg_reader, "copy_text_rows", copy)
        in_c = rendered()
        assert ways and all(ways)
        ways.clear()
        monkeypatch.setattr(pg_reader, "libpq_calls", lambda: None)
        by_server = rendered()
        assert ways and not any(ways)
    assert in_c == by_server
    assert len(json.loads(b"[" + in_c + b"]")) == len(texts) + len(edges) + 1


def test_extension_in_public_round_trips(tmp_path: Path) -> None:
    with pg_database(tmp_path) as source, pg_database(tmp_path) as target:
        script = (
            "CREATE EXTENSION citext;"
            "CREATE TABLE users (email citext PRIMARY KEY, tags text);"
            "INSERT INTO users VALUES ('A@example.com', 'x'), ('b@EXAMPLE.com', NULL);"
        )
        run_sql(source, script)
        run_sql(target, script + "INSERT INTO users VALUES ('only@target', 'gone');")
        copy_pg(source, target)
        assert_same_database(source, target)
        assert query(target, "SELECT extname FROM pg_extension WHERE extname = 'citext'") == [
            ("citext",)
        ]
        assert query(target, "SELECT count(*) FROM users WHERE email = 'a@EXAMPLE.COM'") == [(1,)]
