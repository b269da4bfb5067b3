"""PostgreSQL (psycopg 3).

Backup and restore cover the ``public`` schema of the database: see the section below.
"""

from __future__ import annotations

import heapq
import json
import logging
import re
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any, ClassVar, cast

import psycopg
from sqlalchemy import text
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.exc import DBAPIError

from ..dump.model import ColumnSpec, ObjectSpec, TableSpec
from ..dump.safety import check_statement
from ..errors import MigrationLockTimeout, UnsafeDumpError
from .base import BackupReader, DialectOps, RestoreWriter, decode_base64_column, in_turn
from .pg_copy import copy_text_rows
from .text_rows import BULK_CODECS, VerbatimColumn, bulk_text

logger = logging.getLogger(__name__)

INVALID_CATALOG_NAME = "3D000"  # SQLSTATE for "database does not exist"
_POLL_SECONDS = 0.1


class PostgreSQLOps(DialectOps):
    name: ClassVar[str] = "postgresql"
    max_name_length: ClassVar[int] = 63  # NAMEDATALEN - 1; longer names are silently truncated

    def master_url(self, url: URL) -> URL:
        # There is no server-level session in PostgreSQL; the maintenance database stands in.
        return url._replace(database="postgres")

    def database_exists(self, master: Engine, url: URL, name: str) -> bool:
        self.validate_database_name(name)
        with master.connect() as conn:
            found = conn.execute(
                text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}
            ).first()
        return found is not None

    def create_database(self, master: Engine, url: URL, name: str) -> None:
        if self.database_exists(master, url, name):
            return
        # CREATE DATABASE cannot run inside a transaction block.
        with master.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql(f"CREATE DATABASE {self.quote(master, name)}")

    def drop_database(self, master: Engine, url: URL, name: str) -> None:
        self.validate_database_name(name)
        # FORCE ends other sessions, as DROP DATABASE does on MySQL (PostgreSQL >= 13).
        with master.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {self.quote(master, name)} WITH (FORCE)")

    def estimated_rows(self, connection: Connection) -> int | None:
        rows = connection.exec_driver_sql(
            "SELECT SUM(GREATEST(c.reltuples, 0)) FROM pg_class c JOIN pg_namespace n "
            "ON n.oid = c.relnamespace WHERE n.nspname = current_schema() "
            "AND c.relkind IN ('r', 'p')"
        ).scalar()
        return int(rows) if rows is not None else None

    def is_missing_database_error(self, error: BaseException) -> bool:
        orig = getattr(error, "orig", error)
        return getattr(orig, "sqlstate", None) == INVALID_CATALOG_NAME

    @contextmanager
    def migration_lock(self, engine: Engine, scope: str, timeout: float) -> Iterator[None]:
        # Advisory locks are per database and per session: the connection is held throughout.
        key = int.from_bytes(self.lock_digest(engine, scope)[:8], "big", signed=True)
        deadline = time.monotonic() + timeout
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            while not conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar():
                if time.monotonic() >= deadline:
                    raise MigrationLockTimeout(
                        f"could not take the migration lock of {engine.url.database!r} "
                        f"within {timeout:g}s: another migration is running"
                    )
                time.sleep(_POLL_SECONDS)
            try:
                yield
            finally:
                try:
                    conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                except Exception as exc:
                    # The session was ended (idle_session_timeout, pg_terminate_backend)
                    # and its lock with it; the work done under it must not fail for that.
                    if not getattr(exc, "connection_invalidated", False):
                        raise
                    logger.warning("lost the lock session of %r", engine.url.database)

    # -- backup and restore --------------------------------------------------------------------
    def open_backup(self, engine: Engine) -> AbstractContextManager[PostgreSQLBackupReader]:
        """A REPEATABLE READ, READ ONLY snapshot of the ``public`` schema.

        The reader also has :meth:`PostgreSQLBackupReader.pre_objects` (types, domains and
        sequences the tables need), which the engine creates before the first table.
        """
        return _open_backup(engine)

    def open_restore(
        self, engine: Engine, label: str
    ) -> AbstractContextManager[PostgreSQLRestoreWriter]:
        """Load into the schema ``zm_stage_<label>``; :meth:`~PostgreSQLRestoreWriter.swap`
        makes it ``public`` in one transaction. Without a swap nothing is ever committed."""
        return _open_restore(engine, label)


# ---------------------------------------------------------------------------------------------
# Backup and restore
# ---------------------------------------------------------------------------------------------
#
# Scope: the ``public`` schema of the database. Everything a backup captures lives there, and a
# restore replaces exactly that schema. Objects in other schemas are neither read nor written
# (but one that depends on an object in ``public`` is dropped with the old ``public`` on swap).
#
# DDL comes from the catalogs (``pg_get_*``, ``format_type``), read with ``search_path`` set to
# ``public`` so that every name in ``public`` is written unqualified; the restore runs the same
# statements with ``search_path`` set to its staging schema, so they land there.

_STAGE_PREFIX = "zm_stage_"
_OLD_PREFIX = "zm_old_"
_LABEL = re.compile(r"^[A-Za-z0-9_]{1,40}$")

#: Type OIDs read as Python values; every other type travels as the server's text form.
_CODEC_BY_TYPE_OID: dict[int, str] = {
    16: "native",  # boolean
    19: "native",  # name
    20: "native",  # bigint
    21: "native",  # smallint
    23: "native",  # integer
    25: "native",  # text
    1042: "native",  # character(n)
    1043: "native",  # character varying
    17: "bytes",  # bytea
    1700: "decimal",  # numeric (Decimal keeps NaN and ±Infinity too)
    700: "float",  # real
    701: "float",  # double precision
}

# Settings that make the text form of every value exact and independent of the server's
# configuration, on both sides (SET LOCAL: they end with the transaction).
_SESSION_SETTINGS = (
    "SET LOCAL TimeZone = 'UTC'",
    "SET LOCAL DateStyle = 'ISO, YMD'",
    "SET LOCAL IntervalStyle = 'postgres'",
    "SET LOCAL extra_float_digits = 3",
    "SET LOCAL bytea_output = 'hex'",
    "SET LOCAL lc_monetary = 'C'",
    "SET LOCAL client_min_messages = 'warning'",
    "SET LOCAL standard_conforming_strings = on",
)

#: Object types created before the tables (see :meth:`PostgreSQLBackupReader.pre_objects`).
_PRE_ORDER = {"extension": 0, "type": 1, "domain": 1, "sequence": 2, "function": 3}
#: Object types created after the data, group by group.
_POST_ORDER = {
    "function": 0,
    "procedure": 0,
    "aggregate": 0,
    "view": 0,
    "materialized_view": 0,
    "index": 1,
    "constraint": 2,
    "trigger": 3,
    "rule": 4,
}


def _q(name: str) -> str:
    """Quote an identifier, always."""
    return '"' + name.replace('"', '""') + '"'


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


#: Types whose text form needs no JSON escaping (digits, signs, separators, letters).
_PLAIN_TEXT_OIDS = frozenset(
    {1082, 1083, 1114, 1184, 1266, 1186, 2950}  # date, time, timestamp(tz), timetz, interval, uuid
)


def _render(codec: str, type_oid: int) -> str:
    """SQL that renders column ``{c}`` as its codec's JSON value (NULL for SQL NULL)."""
    if codec == "bytes":
        return "'\"' || replace(encode({c}, 'base64'), E'\\n', '') || '\"'"
    if codec in ("decimal", "float") or codec == "text" and type_oid in _PLAIN_TEXT_OIDS:
        return "'\"' || {c}::text || '\"'"
    if codec == "native" and type_oid in (16, 20, 21, 23):  # boolean, integers
        return "{c}::text"
    if codec == "native":
        return "to_json({c})::text"
    return "to_json({c}::text)::text"


#: Bytes of COPY output handed on at a time (wide rows: fewer rows per batch).
_COPY_BATCH_BYTES = 1024 * 1024
#: Heap blocks (8 KiB) per range of a table rendered on two sessions: about what a socket
#: holds, so the session not being read renders its whole range meanwhile.
_RANGE_BLOCKS = 256


def _bytea_fields(values: list[bytes | None]) -> VerbatimColumn:
    """Bytea values in COPY's text form: hex input, its backslash escaped for COPY (two
    backslashes a value)."""
    nulls = values.count(None)
    fields: Iterable[str | None] = (
        [None if v is None else "\\\\x" + v.hex() for v in values]
        if nulls
        else map("\\\\x".__add__, map(bytes.hex, cast(list[bytes], values)))
    )
    return VerbatimColumn(fields, backslashes=2 * (len(values) - nulls))


def _driver(raw: Any) -> psycopg.Connection[Any]:
    conn = raw.driver_connection
    if not isinstance(conn, psycopg.Connection):
        raise TypeError(
            "PostgreSQL backup and restore need the psycopg (3) driver (postgresql+psycopg:// URLs)"
        )
    return conn


@contextmanager
def _transaction_connection(
    engine: Engine, *, read_only: bool
) -> Iterator[psycopg.Connection[Any]]:
    """A pooled psycopg connection inside one transaction, put back clean afterwards."""
    raw = engine.raw_connection()
    try:
        conn = _driver(raw)
        conn.rollback()
        saved = (conn.autocommit, conn.isolation_level, conn.read_only)
        conn.autocommit = False
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ if read_only else None
        conn.read_only = True if read_only else None
        try:
            yield conn
        finally:
            try:
                conn.rollback()  # discards everything not committed (a restore's staging)
                conn.autocommit, conn.isolation_level, conn.read_only = saved
            except psycopg.Error:
                raw.invalidate()  # a broken connection never goes back to the pool
    finally:
        raw.close()


def _execute_one(conn: psycopg.Connection[Any], statement: str) -> None:
    """Run exactly one statement: the extended protocol refuses a second one."""
    with conn.cursor() as cur:
        cur.execute(statement.encode(), binary=True)  # binary forces the extended protocol


@dataclass
class _Column:
    num: int
    name: str
    type: str
    type_oid: int
    notnull: bool
    default: str | None
    identity: str
    generated: str
    local: bool
    collation: str | None


@dataclass
class _Table:
    oid: int
    name: str
    kind: str
    persistence: str
    is_partition: bool
    bound: str | None
    partkey: str | None
    reloptions: list[str]
    parents: list[str] = field(default_factory=list)
    columns: list[_Column] = field(default_factory=list)


@dataclass
class _Obj:
    """An object with its identity in ``pg_depend`` terms, for dependency ordering."""

    key: tuple[str, int]
    spec: ObjectSpec


class PostgreSQLBackupReader(BackupReader):
    """One REPEATABLE READ, READ ONLY transaction over the ``public`` schema.

    Beyond :class:`BackupReader`, it has :meth:`pre_objects`: the types, domains, sequences
    (and the functions column defaults and checks call) that must exist *before* the tables.
    """

    def __init__(
        self,
        conn: psycopg.Connection[Any],
        second: Callable[[], psycopg.Connection[Any]] | None = None,
    ) -> None:
        self._conn = conn
        self._cursors = 0
        #: COPY streams handed out; one left open would block the connection's rollback.
        self._streams: list[Generator[Any, None, None]] = []
        #: Opens a second connection (a transaction not yet begun), for parallel rendering.
        self._open_second = second
        self._second: psycopg.Connection[Any] | None = None
        for setting in (*_SESSION_SETTINGS, "SET LOCAL search_path = public"):
            _execute_one(conn, setting)
        self.server_version = str(self._one("SHOW server_version")[0])
        self._server_version_num = int(self._one("SHOW server_version_num")[0])
        self._public = int(self._one("SELECT 'public'::regnamespace::oid")[0])
        names = [r[0] for r in self._all(_SQL_LOCKABLE, (self._public,))]
        if names:  # hold off DDL on what we read for as long as the snapshot lives
            _execute_one(conn, f"LOCK TABLE {', '.join(map(_q, names))} IN ACCESS SHARE MODE")
        self._tables: list[_Table] | None = None

    # -- helpers -------------------------------------------------------------------------------
    def _all(self, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._conn.cursor() as cur:
            cur.execute(query.encode(), params or None)
            return list(cur.fetchall())

    def _one(self, query: str, params: tuple[Any, ...] = ()) -> tuple[Any, ...]:
        rows = self._all(query, params)
        return rows[0]

    # -- tables --------------------------------------------------------------------------------
    def _load_tables(self) -> list[_Table]:
        if self._tables is not None:
            return self._tables
        by_oid: dict[int, _Table] = {}
        for oid, name, kind, pers, is_part, bound, partkey, relopts in self._all(
            _SQL_TABLES, (self._public,)
        ):
            by_oid[oid] = _Table(
                oid, name, kind, pers, is_part, bound, partkey, list(relopts or [])
            )
        for child, parent in self._all(_SQL_INHERITS, (self._public,)):
            if child in by_oid and parent in by_oid:
                by_oid[child].parents.append(by_oid[parent].name)
        for row in self._all(_SQL_COLUMNS, (self._public,)):
            table = by_oid.get(row[0])
            if table is not None:
                table.columns.append(_Column(*row[1:]))
        # Parents before children; otherwise by name.
        ordered: list[_Table] = []
        done: set[str] = set()
        by_name = {t.name: t for t in by_oid.values()}

        def visit(t: _Table, path: frozenset[str]) -> None:
            if t.name in done or t.name in path:
                return
            for parent in t.parents:
                visit(by_name[parent], path | {t.name})
            done.add(t.name)
            ordered.append(t)

        for t in sorted(by_oid.values(), key=lambda t: t.name):
            visit(t, frozenset())
        self._tables = ordered
        return ordered

    def tables(self) -> list[TableSpec]:
        """Base tables, partitioned tables and their partitions of ``public``, parents first.

        ``options["owned_sequences"]`` maps a column to the sequence it owns (``serial``);
        the restore re-attaches the ownership after creating the table.
        """
        tables = self._load_tables()
        by_name = {t.name: t for t in tables}
        constraints: dict[int, list[tuple[str, str]]] = {}
        for conrelid, name, definition in self._all(_SQL_INLINE_CONSTRAINTS, (self._public,)):
            constraints.setdefault(conrelid, []).append((name, definition))
        identity: dict[tuple[int, int], tuple[Any, ...]] = {}
        owned: dict[int, dict[str, str]] = {}
        for relid, attnum, seq_oid, seq_name, deptype in self._all(
            _SQL_TABLE_SEQUENCES, (self._public,)
        ):
            if deptype == "i":
                identity[(relid, attnum)] = (seq_name, *self._sequence_state(seq_oid))
            else:
                table = next(t for t in tables if t.oid == relid)
                attname = next(c.name for c in table.columns if c.num == attnum)
                owned.setdefault(relid, {})[attname] = seq_name
        keys: dict[int, list[str]] = {}
        for relid, attname in self._all(_SQL_PRIMARY_KEYS, (self._public,)):
            keys.setdefault(relid, []).append(attname)

        out: list[TableSpec] = []
        for t in tables:
            stmt = self._create_table(t, by_name, constraints.get(t.oid, []), identity)
            columns = tuple(
                ColumnSpec(c.name, _CODEC_BY_TYPE_OID.get(c.type_oid, "text"), c.type)
                for c in t.columns
                if c.generated == ""
            )
            options: dict[str, Any] = {}
            if t.oid in owned:
                options["owned_sequences"] = owned[t.oid]
            out.append(TableSpec(t.name, stmt, columns, tuple(keys.get(t.oid, ())), options))
        return out

    def _sequence_state(self, seq_oid: int) -> tuple[Any, ...]:
        """(type, start-with-next-value, increment, min, max, cache, cycle) of a sequence."""
        seqtype, start, inc, minv, maxv, cache, cycle, relname = self._one(
            _SQL_SEQUENCE, (seq_oid,)
        )
        last, is_called = self._one(f"SELECT last_value, is_called FROM {_q(relname)}")
        nxt = last + inc if is_called else last
        if nxt > maxv or nxt < minv:  # exhausted: wraps (CYCLE) or stays at its end
            nxt = (minv if inc > 0 else maxv) if cycle else last
        del start
        return (seqtype, nxt, inc, minv, maxv, cache, cycle)

    def _create_table(
        self,
        t: _Table,
        by_name: dict[str, _Table],
        constraints: list[tuple[str, str]],
        identity: dict[tuple[int, int], tuple[Any, ...]],
    ) -> str:
        head = "CREATE " + ("UNLOGGED " if t.persistence == "u" else "") + "TABLE " + _q(t.name)
        cons = [f"CONSTRAINT {_q(n)} {d}" for n, d in constraints]
        if t.is_partition and t.parents:
            parent = {c.name: c for c in by_name[t.parents[0]].columns}
            elems: list[str] = []
            for c in t.columns:
                p = parent.get(c.name)
                opts = []
                if (
                    c.default is not None
                    and c.generated == ""
                    and (p is None or p.default != c.default)
                ):
                    opts.append(f"DEFAULT {c.default}")
                if c.notnull and (p is None or not p.notnull):
                    opts.append("NOT NULL")
                if opts:
                    elems.append(f"{_q(c.name)} WITH OPTIONS {' '.join(opts)}")
            elems += cons
            stmt = f"{head} PARTITION OF {_q(t.parents[0])}"
            if elems:
                stmt += " (\n    " + ",\n    ".join(elems) + "\n)"
            stmt += f" {t.bound}"
        else:
            elems = [self._column_def(t, c, identity) for c in t.columns if c.local] + cons
            stmt = head + " (\n    " + ",\n    ".join(elems) + "\n)"
            if t.parents:
                stmt += " INHERITS (" + ", ".join(map(_q, t.parents)) + ")"
        if t.kind == "p" and t.partkey:
            stmt += f" PARTITION BY {t.partkey}"
        if t.reloptions:
            stmt += " WITH (" + ", ".join(t.reloptions) + ")"
        return stmt

    @staticmethod
    def _column_def(t: _Table, c: _Column, identity: dict[tuple[int, int], tuple[Any, ...]]) -> str:
        parts = [_q(c.name), c.type]
        if c.collation:
            parts.append(f"COLLATE {c.collation}")
        if c.generated == "s":
            parts.append(f"GENERATED ALWAYS AS ({c.default}) STORED")
        elif c.identity:
            seq = identity.get((t.oid, c.num))
            kind = "ALWAYS" if c.identity == "a" else "BY DEFAULT"
            if seq is None:
                parts.append(f"GENERATED {kind} AS IDENTITY")
            else:
                name, _type, nxt, inc, minv, maxv, cache, cycle = seq
                parts.append(
                    f"GENERATED {kind} AS IDENTITY (SEQUENCE NAME {_q(name)} START WITH {nxt} "
                    f"INCREMENT BY {inc} MINVALUE {minv} MAXVALUE {maxv} CACHE {cache} "
                    f"{'CYCLE' if cycle else 'NO CYCLE'})"
                )
        elif c.default is not None:
            parts.append(f"DEFAULT {c.default}")
        if c.notnull:
            parts.append("NOT NULL")
        return " ".join(parts)

    # -- rows ----------------------------------------------------------------------------------
    def rows(self, table: TableSpec, chunk_rows: int) -> Iterator[list[tuple[Any, ...]]]:
        """Rows of ``table`` itself (``FROM ONLY``), through a server-side cursor."""
        if chunk_rows < 1:
            raise ValueError("chunk_rows must be at least 1")
        if not table.columns:
            return
        select = ", ".join(
            _q(c.name) + ("::text" if c.codec == "text" else "") for c in table.columns
        )
        self._cursors += 1
        with self._conn.cursor(name=f"zm_rows_{self._cursors}") as cur:
            cur.itersize = chunk_rows
            cur.execute(f"SELECT {select} FROM ONLY {_q(table.name)}".encode())
            while chunk := cur.fetchmany(chunk_rows):
                yield [tuple(row) for row in chunk]

    def rendered_rows(
        self, table: TableSpec, chunk_rows: int
    ) -> Generator[tuple[int, bytes], None, None] | None:
        """Rows rendered by the server as JSON text, streamed with COPY ... TO STDOUT."""
        if chunk_rows < 1:
            raise ValueError("chunk_rows must be at least 1")
        if not table.columns:
            return None
        found = next((t for t in self._load_tables() if t.name == table.name), None)
        if found is None:
            return None
        oids = {c.name: c.type_oid for c in found.columns}
        parts = []
        for n, column in enumerate(table.columns):
            key = json.dumps(column.name, ensure_ascii=False) + ":"
            value = _render(column.codec, oids.get(column.name, 0)).format(c=_q(column.name))
            parts.append(f"{_literal(('{' if n == 0 else ',') + key)} || COALESCE({value}, 'null')")
        select = f"SELECT {' || '.join(parts)} || '}}' FROM ONLY {_q(table.name)}"
        ranges = self._block_ranges(found.oid)
        if len(ranges) > 1 and (second := self._second_connection()) is not None:
            stream = self._rendered_in_parallel(select, ranges, (self._conn, second), chunk_rows)
        else:
            stream = copy_text_rows(self._conn, select, chunk_rows, _COPY_BATCH_BYTES)
        self._streams.append(stream)
        return stream

    # -- rendering on two connections ------------------------------------------------------
    def _block_ranges(self, oid: int) -> list[str]:
        """WHERE clauses splitting a table into ranges of :data:`_RANGE_BLOCKS` heap blocks
        (the last one open-ended: the table may have grown since the snapshot); one range,
        no clause, for a small table or a server without TID range scans (before 14)."""
        if self._server_version_num < 140000:
            return [""]
        (blocks,) = self._one(
            "SELECT pg_relation_size(%s) / current_setting('block_size')::int", (oid,)
        )
        starts = range(0, int(blocks) - _RANGE_BLOCKS, _RANGE_BLOCKS)
        if len(starts) < 2:
            return [""]
        clauses = [
            f" WHERE ctid >= '({a},0)'::tid AND ctid < '({a + _RANGE_BLOCKS},0)'::tid"
            for a in starts
        ]
        return [*clauses, f" WHERE ctid >= '({starts[-1] + _RANGE_BLOCKS},0)'::tid"]

    def _second_connection(self) -> psycopg.Connection[Any] | None:
        """A second session in this transaction's snapshot (pg_export_snapshot), opened on
        first use; None where there is none to be had (then one session renders)."""
        if self._second is not None or self._open_second is None:
            return self._second
        opener, self._open_second = self._open_second, None
        if self._one("SELECT pg_is_in_recovery()")[0]:
            return None  # a standby cannot export snapshots
        (snapshot,) = self._one("SELECT pg_export_snapshot()")
        try:
            second = opener()
            _execute_one(second, f"SET TRANSACTION SNAPSHOT {_literal(str(snapshot))}")
            for setting in (*_SESSION_SETTINGS, "SET LOCAL search_path = public"):
                _execute_one(second, setting)
        except (psycopg.Error, DBAPIError) as exc:
            logger.info("rendering on one session: no second one (%s)", type(exc).__name__)
            return None
        self._second = second
        return second

    def _rendered_in_parallel(
        self,
        select: str,
        ranges: list[str],
        conns: tuple[psycopg.Connection[Any], psycopg.Connection[Any]],
        chunk_rows: int,
    ) -> Generator[tuple[int, bytes], None, None]:
        """Ranges in order, alternating between the two sessions."""

        def open_range(i: int) -> Generator[tuple[int, bytes], None, None]:
            return copy_text_rows(conns[i % 2], select + ranges[i], chunk_rows, _COPY_BATCH_BYTES)

        return in_turn(open_range, len(ranges))

    def close_streams(self) -> None:
        """Close COPY streams a consumer left unfinished (the server is told to stop)."""
        streams, self._streams = self._streams, []
        for stream in streams:
            stream.close()

    # -- other objects ---------------------------------------------------------------------------
    def pre_objects(self) -> list[ObjectSpec]:
        """Objects that must exist before the tables are created, in creation order.

        Extensions installed in ``public``, enum / composite / range types, domains,
        sequences not owned by an identity column (``START WITH`` the value the source's next
        ``nextval`` would return), and the functions column defaults, generated columns and
        check constraints call. The engine creates them (``RestoreWriter.create_object``)
        before the first table. Never overlaps :meth:`objects`.
        """
        objs: list[_Obj] = []
        for oid, name in self._all(_SQL_EXTENSIONS, (self._public,)):
            stmt = f"CREATE EXTENSION IF NOT EXISTS {_q(name)}"
            objs.append(_Obj(("pg_extension", oid), ObjectSpec("extension", name, stmt)))
        objs += self._types()
        for oid, name in self._all(_SQL_FREE_SEQUENCES, (self._public,)):
            seqtype, nxt, inc, minv, maxv, cache, cycle = self._sequence_state(oid)
            stmt = (
                f"CREATE SEQUENCE {_q(name)} AS {seqtype} START WITH {nxt} INCREMENT BY {inc} "
                f"MINVALUE {minv} MAXVALUE {maxv} CACHE {cache} "
                f"{'CYCLE' if cycle else 'NO CYCLE'}"
            )
            objs.append(_Obj(("pg_class", oid), ObjectSpec("sequence", name, stmt)))
        pre_funcs = {r[0] for r in self._all(_SQL_PRE_FUNCTIONS, (self._public,))}
        objs += [o for o in self._routines() if o.key[1] in pre_funcs]
        return self._ordered(objs, _PRE_ORDER)

    def objects(self) -> list[ObjectSpec]:
        """Everything created after the data, in an order that restores cleanly.

        Routines, aggregates, views and materialized views (by their dependencies), then
        indexes that back no constraint, the keys of plain tables (primary, unique,
        exclusion), foreign keys and NOT VALID checks (as ``constraint``: ``ALTER TABLE ...
        ADD CONSTRAINT``), triggers and rules.
        """
        pre_funcs = {r[0] for r in self._all(_SQL_PRE_FUNCTIONS, (self._public,))}
        objs = [o for o in self._routines() if o.key[1] not in pre_funcs]
        for oid, name, kind, definition, populated, relopts in self._all(
            _SQL_VIEWS, (self._public,)
        ):
            body = definition.rstrip().rstrip(";")
            if kind == "m":
                stmt = f"CREATE MATERIALIZED VIEW {_q(name)} AS\n{body}\n"
                stmt += "WITH DATA" if populated else "WITH NO DATA"
                objs.append(_Obj(("pg_class", oid), ObjectSpec("materialized_view", name, stmt)))
            else:
                opts = [o for o in (relopts or []) if not o.startswith("check_option=")]
                check = [
                    o.split("=", 1)[1] for o in (relopts or []) if o.startswith("check_option=")
                ]
                stmt = f"CREATE VIEW {_q(name)}"
                if opts:
                    stmt += " WITH (" + ", ".join(opts) + ")"
                stmt += f" AS\n{body}"
                if check:
                    stmt += f"\nWITH {check[0].upper()} CHECK OPTION"
                objs.append(_Obj(("pg_class", oid), ObjectSpec("view", name, stmt)))
        for oid, name, table, definition, unique, quoted in self._all(
            _SQL_INDEXES, (self._public,)
        ):
            only = f"CREATE {'UNIQUE ' if unique else ''}INDEX {quoted} ON ONLY "
            if definition.startswith(only):  # a partitioned table's index: recurse instead
                definition = only[: -len("ONLY ")] + definition[len(only) :]
            objs.append(_Obj(("pg_class", oid), ObjectSpec("index", name, definition, table)))
        for oid, name, table, kind, definition in self._all(_SQL_LATE_CONSTRAINTS, (self._public,)):
            only = "ONLY " if kind == "r" else ""
            stmt = f"ALTER TABLE {only}{_q(table)} ADD CONSTRAINT {_q(name)} {definition}"
            objs.append(_Obj(("pg_constraint", oid), ObjectSpec("constraint", name, stmt, table)))
        for oid, name, table, definition in self._all(_SQL_TRIGGERS, (self._public,)):
            objs.append(_Obj(("pg_trigger", oid), ObjectSpec("trigger", name, definition, table)))
        for oid, name, table, definition in self._all(_SQL_RULES, (self._public,)):
            stmt = definition.rstrip().rstrip(";")
            objs.append(_Obj(("pg_rewrite", oid), ObjectSpec("rule", name, stmt, table)))
        return self._ordered(objs, _POST_ORDER)

    def _types(self) -> list[_Obj]:
        out: list[_Obj] = []
        for oid, name, typtype, basetype, notnull, default, collation in self._all(
            _SQL_TYPES, (self._public,)
        ):
            if typtype == "e":
                labels = [r[0] for r in self._all(_SQL_ENUM_LABELS, (oid,))]
                stmt = f"CREATE TYPE {_q(name)} AS ENUM (" + ", ".join(map(_literal, labels)) + ")"
                out.append(_Obj(("pg_type", oid), ObjectSpec("type", name, stmt)))
            elif typtype == "d":
                stmt = f"CREATE DOMAIN {_q(name)} AS {basetype}"
                if collation:
                    stmt += f" COLLATE {collation}"
                if default is not None:
                    stmt += f" DEFAULT {default}"
                if notnull:
                    stmt += " NOT NULL"
                for cname, cdef in self._all(_SQL_DOMAIN_CONSTRAINTS, (oid,)):
                    stmt += f" CONSTRAINT {_q(cname)} {cdef}"
                out.append(_Obj(("pg_type", oid), ObjectSpec("domain", name, stmt)))
            elif typtype == "c":
                attrs = [
                    f"{_q(a)} {t}" + (f" COLLATE {coll}" if coll else "")
                    for a, t, coll in self._all(_SQL_COMPOSITE_ATTRS, (oid,))
                ]
                stmt = f"CREATE TYPE {_q(name)} AS (" + ", ".join(attrs) + ")"
                out.append(_Obj(("pg_type", oid), ObjectSpec("type", name, stmt)))
            elif typtype == "r":
                subtype, diff, multirange = self._one(_SQL_RANGE, (oid,))
                opts = [f"SUBTYPE = {subtype}"]
                if diff:
                    opts.append(f"SUBTYPE_DIFF = {diff}")
                if multirange:
                    opts.append(f"MULTIRANGE_TYPE_NAME = {_q(multirange)}")
                stmt = f"CREATE TYPE {_q(name)} AS RANGE (" + ", ".join(opts) + ")"
                out.append(_Obj(("pg_type", oid), ObjectSpec("type", name, stmt)))
        return out

    def _routines(self) -> list[_Obj]:
        out: list[_Obj] = []
        for oid, name, kind, qualified, quoted, definition in self._all(
            _SQL_ROUTINES, (self._public,)
        ):
            if kind == "a":
                out.append(_Obj(("pg_proc", oid), self._aggregate(oid, name)))
                continue
            word = "PROCEDURE" if kind == "p" else "FUNCTION"
            # pg_get_functiondef always qualifies the routine's own name: drop the schema.
            head = f"{word} {qualified}("
            unqualified = f"{word} {quoted}("
            definition = definition.replace(head, unqualified, 1).rstrip()
            otype = "procedure" if kind == "p" else "function"
            out.append(_Obj(("pg_proc", oid), ObjectSpec(otype, name, definition)))
        return out

    def _aggregate(self, oid: int, name: str) -> ObjectSpec:
        row = self._one(_SQL_AGGREGATE, (oid,))
        args, sfunc, stype, sspace, ffunc, fextra, cfunc, serial, deserial, init, sortop = row
        opts = [f"SFUNC = {sfunc}", f"STYPE = {stype}"]
        if sspace:
            opts.append(f"SSPACE = {sspace}")
        if ffunc:
            opts.append(f"FINALFUNC = {ffunc}")
            if fextra:
                opts.append("FINALFUNC_EXTRA")
        if cfunc:
            opts.append(f"COMBINEFUNC = {cfunc}")
        if serial:
            opts.append(f"SERIALFUNC = {serial}")
        if deserial:
            opts.append(f"DESERIALFUNC = {deserial}")
        if init is not None:
            opts.append(f"INITCOND = {_literal(init)}")
        if sortop:
            opts.append(f"SORTOP = {sortop}")
        stmt = f"CREATE AGGREGATE {_q(name)}({args}) (\n    " + ",\n    ".join(opts) + "\n)"
        return ObjectSpec("aggregate", name, stmt)

    def _ordered(self, objs: list[_Obj], groups: dict[str, int]) -> list[ObjectSpec]:
        """Group order first, then dependencies (``pg_depend``) inside a group."""
        objs = sorted(objs, key=lambda o: (groups.get(o.spec.object_type, 9), o.spec.name))
        position = {o.key: i for i, o in enumerate(objs)}
        waiting_on = [0] * len(objs)
        needed_by: list[list[int]] = [[] for _ in objs]
        seen: set[tuple[int, int]] = set()
        for cls, objid, refcls, refobjid in self._all(_SQL_DEPENDS):
            src, ref = position.get((cls, objid)), position.get((refcls, refobjid))
            if src is None or ref is None or src == ref or (src, ref) in seen:
                continue
            seen.add((src, ref))
            waiting_on[src] += 1
            needed_by[ref].append(src)
        ready = [i for i, n in enumerate(waiting_on) if n == 0]
        heapq.heapify(ready)
        order: list[int] = []
        while ready:
            i = heapq.heappop(ready)
            order.append(i)
            for j in needed_by[i]:
                waiting_on[j] -= 1
                if waiting_on[j] == 0:
                    heapq.heappush(ready, j)
        placed = set(order)
        order += [i for i in range(len(objs)) if i not in placed]  # cycles: group order
        return [objs[i].spec for i in order]


# -- catalog queries (all with search_path = public, so names there come out unqualified) ------


def _not_member(catalog: str, alias: str) -> str:
    """SQL condition: the row is not part of an extension (those come with the extension)."""
    return (
        f"NOT EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = '{catalog}'::regclass "
        f"AND e.objid = {alias}.oid AND e.deptype = 'e')"
    )


def _collation(column_collation: str, type_collation: str) -> str:
    """SQL expression: the COLLATE clause's name when it differs from the type's default."""
    return (
        f"(SELECT CASE WHEN n.nspname IN ('pg_catalog', 'public') THEN quote_ident(co.collname)"
        f" ELSE quote_ident(n.nspname) || '.' || quote_ident(co.collname) END"
        f" FROM pg_collation co JOIN pg_namespace n ON n.oid = co.collnamespace"
        f" WHERE co.oid = {column_collation} AND {column_collation} <> {type_collation})"
    )


_SQL_LOCKABLE = f"""
SELECT c.relname FROM pg_class c
WHERE c.relnamespace = %s AND c.relkind IN ('r', 'p') AND {_not_member("pg_class", "c")}
ORDER BY c.relname"""

_SQL_TABLES = f"""
SELECT c.oid, c.relname, c.relkind::text, c.relpersistence::text, c.relispartition,
       pg_get_expr(c.relpartbound, c.oid),
       CASE WHEN c.relkind = 'p' THEN pg_get_partkeydef(c.oid) END,
       c.reloptions
FROM pg_class c
WHERE c.relnamespace = %s AND c.relkind IN ('r', 'p') AND {_not_member("pg_class", "c")}"""

_SQL_INHERITS = """
SELECT i.inhrelid, i.inhparent FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
WHERE c.relnamespace = %s AND c.relkind IN ('r', 'p')
ORDER BY i.inhrelid, i.inhseqno"""

_SQL_COLUMNS = f"""
SELECT a.attrelid, a.attnum, a.attname, format_type(a.atttypid, a.atttypmod), a.atttypid::int,
       a.attnotnull, pg_get_expr(d.adbin, d.adrelid), a.attidentity::text,
       a.attgenerated::text, a.attislocal, {_collation("a.attcollation", "t.typcollation")}
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_type t ON t.oid = a.atttypid
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE c.relnamespace = %s AND c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attrelid, a.attnum"""

# The primary key, unique and exclusion constraints of a plain table are added after its
# data, as pg_dump does: building the index once from the loaded rows takes the server less
# than maintaining it row by row (0.4 s of CPU on 1M rows). Partitioned tables and
# partitions keep theirs inline: a partition's index attaches to its parent's.
_DEFERRED_KEY = "co.contype IN ('p', 'u', 'x') AND c.relkind = 'r' AND NOT c.relispartition"

# Other keys and validated checks go inside CREATE TABLE; the ones a partition or child
# inherits come with PARTITION OF / INHERITS.
_SQL_INLINE_CONSTRAINTS = f"""
SELECT co.conrelid, co.conname, pg_get_constraintdef(co.oid, true)
FROM pg_constraint co JOIN pg_class c ON c.oid = co.conrelid
WHERE c.relnamespace = %s AND c.relkind IN ('r', 'p') AND co.contype IN ('p', 'u', 'x', 'c')
  AND co.conislocal AND co.conparentid = 0 AND (co.contype <> 'c' OR co.convalidated)
  AND NOT ({_DEFERRED_KEY})
ORDER BY co.conrelid, array_position(ARRAY['p', 'u', 'x', 'c'], co.contype::text), co.conname"""

# After the data: deferred keys, foreign keys (so cycles and self-references load; each
# after the key it references, see _SQL_DEPENDS) and NOT VALID checks.
_SQL_LATE_CONSTRAINTS = f"""
SELECT co.oid, co.conname, c.relname, c.relkind::text, pg_get_constraintdef(co.oid, true)
FROM pg_constraint co JOIN pg_class c ON c.oid = co.conrelid
WHERE c.relnamespace = %s AND c.relkind IN ('r', 'p') AND co.conparentid = 0
  AND (co.contype = 'f' OR (co.contype = 'c' AND NOT co.convalidated AND co.conislocal)
       OR ({_DEFERRED_KEY}))
ORDER BY c.relname, co.conname"""

_SQL_TABLE_SEQUENCES = """
SELECT d.refobjid, d.refobjsubid, s.oid, s.relname, d.deptype::text
FROM pg_depend d
JOIN pg_class s ON s.oid = d.objid
JOIN pg_class t ON t.oid = d.refobjid
WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass
  AND d.deptype IN ('a', 'i') AND d.refobjsubid > 0 AND s.relkind = 'S'
  AND t.relnamespace = %s AND s.relnamespace = t.relnamespace
ORDER BY s.relname"""

_SQL_PRIMARY_KEYS = """
SELECT i.indrelid, a.attname
FROM pg_index i
JOIN pg_class c ON c.oid = i.indrelid
CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
WHERE i.indisprimary AND c.relnamespace = %s
ORDER BY i.indrelid, k.ord"""

_SQL_SEQUENCE = """
SELECT format_type(s.seqtypid, NULL), s.seqstart, s.seqincrement, s.seqmin, s.seqmax,
       s.seqcache, s.seqcycle, c.relname
FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid
WHERE s.seqrelid = %s"""

_SQL_FREE_SEQUENCES = f"""
SELECT c.oid, c.relname FROM pg_class c
WHERE c.relnamespace = %s AND c.relkind = 'S' AND {_not_member("pg_class", "c")}
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                  AND d.objid = c.oid AND d.deptype = 'i')
ORDER BY c.relname"""

_SQL_EXTENSIONS = """
SELECT x.oid, x.extname FROM pg_extension x WHERE x.extnamespace = %s ORDER BY x.extname"""

_BASE_COLLATION = "(SELECT b.typcollation FROM pg_type b WHERE b.oid = t.typbasetype)"
_SQL_TYPES = f"""
SELECT t.oid, t.typname, t.typtype::text, format_type(t.typbasetype, t.typtypmod),
       t.typnotnull, pg_get_expr(t.typdefaultbin, 0),
       {_collation("t.typcollation", _BASE_COLLATION)}
FROM pg_type t LEFT JOIN pg_class r ON r.oid = t.typrelid
WHERE t.typnamespace = %s AND t.typtype IN ('e', 'd', 'c', 'r')
  AND (t.typtype <> 'c' OR r.relkind = 'c') AND {_not_member("pg_type", "t")}
ORDER BY t.typname"""

_SQL_ENUM_LABELS = "SELECT enumlabel FROM pg_enum WHERE enumtypid = %s ORDER BY enumsortorder"

_SQL_DOMAIN_CONSTRAINTS = """
SELECT conname, pg_get_constraintdef(oid, true) FROM pg_constraint
WHERE contypid = %s AND contype = 'c' ORDER BY conname"""

_SQL_COMPOSITE_ATTRS = f"""
SELECT a.attname, format_type(a.atttypid, a.atttypmod),
       {_collation("a.attcollation", "at.typcollation")}
FROM pg_type t
JOIN pg_attribute a ON a.attrelid = t.typrelid
JOIN pg_type at ON at.oid = a.atttypid
WHERE t.oid = %s AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum"""

_SQL_RANGE = """
SELECT format_type(r.rngsubtype, NULL),
       CASE WHEN r.rngsubdiff <> 0 THEN r.rngsubdiff::regproc::text END,
       (SELECT m.typname FROM pg_type m WHERE m.oid = r.rngmultitypid)
FROM pg_range r WHERE r.rngtypid = %s"""

_SQL_ROUTINES = f"""
SELECT p.oid, p.proname, p.prokind::text,
       quote_ident(n.nspname) || '.' || quote_ident(p.proname), quote_ident(p.proname),
       CASE WHEN p.prokind <> 'a' THEN pg_get_functiondef(p.oid) END
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE p.pronamespace = %s AND {_not_member("pg_proc", "p")}
  AND NOT EXISTS (SELECT 1 FROM pg_depend i WHERE i.classid = 'pg_proc'::regclass
                  AND i.objid = p.oid AND i.deptype = 'i')  -- a range type's constructors
ORDER BY p.proname, p.oid"""

_SQL_AGGREGATE = """
SELECT pg_get_function_arguments(a.aggfnoid), a.aggtransfn::regproc::text,
       format_type(a.aggtranstype, NULL), a.aggtransspace,
       CASE WHEN a.aggfinalfn <> 0 THEN a.aggfinalfn::regproc::text END, a.aggfinalextra,
       CASE WHEN a.aggcombinefn <> 0 THEN a.aggcombinefn::regproc::text END,
       CASE WHEN a.aggserialfn <> 0 THEN a.aggserialfn::regproc::text END,
       CASE WHEN a.aggdeserialfn <> 0 THEN a.aggdeserialfn::regproc::text END,
       a.agginitval,
       (SELECT 'OPERATOR(' || quote_ident(n.nspname) || '.' || o.oprname || ')'
          FROM pg_operator o JOIN pg_namespace n ON n.oid = o.oprnamespace
         WHERE o.oid = a.aggsortop)
FROM pg_aggregate a WHERE a.aggfnoid = %s"""

# Functions that column defaults, generated columns, checks and domains call: they must
# exist before the tables.
_SQL_PRE_FUNCTIONS = """
SELECT DISTINCT d.refobjid FROM pg_depend d JOIN pg_proc p ON p.oid = d.refobjid
WHERE d.refclassid = 'pg_proc'::regclass AND p.pronamespace = %s
  AND d.classid IN ('pg_attrdef'::regclass, 'pg_constraint'::regclass, 'pg_type'::regclass)
  AND NOT EXISTS (SELECT 1 FROM pg_constraint f WHERE d.classid = 'pg_constraint'::regclass
                  AND f.oid = d.objid AND f.contype = 'f')"""

_SQL_VIEWS = f"""
SELECT c.oid, c.relname, c.relkind::text, pg_get_viewdef(c.oid, true), c.relispopulated,
       c.reloptions
FROM pg_class c
WHERE c.relnamespace = %s AND c.relkind IN ('v', 'm') AND {_not_member("pg_class", "c")}
ORDER BY c.relname"""

_SQL_INDEXES = f"""
SELECT i.indexrelid, ic.relname, t.relname, pg_get_indexdef(i.indexrelid, 0, true),
       i.indisunique, quote_ident(ic.relname)
FROM pg_index i
JOIN pg_class ic ON ic.oid = i.indexrelid
JOIN pg_class t ON t.oid = i.indrelid
WHERE t.relnamespace = %s AND t.relkind IN ('r', 'p', 'm') AND NOT ic.relispartition
  AND {_not_member("pg_class", "ic")}
  AND NOT EXISTS (SELECT 1 FROM pg_constraint co WHERE co.conindid = i.indexrelid
                  AND co.conrelid = i.indrelid AND co.contype IN ('p', 'u', 'x'))
ORDER BY ic.relname"""

_SQL_TRIGGERS = """
SELECT tg.oid, tg.tgname, c.relname, pg_get_triggerdef(tg.oid, true)
FROM pg_trigger tg JOIN pg_class c ON c.oid = tg.tgrelid
WHERE c.relnamespace = %s AND NOT tg.tgisinternal AND tg.tgparentid = 0
ORDER BY c.relname, tg.tgname"""

_SQL_RULES = """
SELECT r.oid, r.rulename, c.relname, pg_get_ruledef(r.oid, true)
FROM pg_rewrite r JOIN pg_class c ON c.oid = r.ev_class
WHERE c.relnamespace = %s AND r.rulename <> '_RETURN'
ORDER BY c.relname, r.rulename"""

# Dependencies between objects, with each side mapped to the object we emit: a view's
# rewrite rule to the view, a row type to its relation, an array type to its element type,
# a standalone composite's relation to its type, a domain's check to the domain, a key's
# index to the key (a foreign key depends on the index of the key it references).
_SQL_DEPENDS = """
WITH norm(cls, oid, ncls, noid) AS (
    SELECT 'pg_rewrite', r.oid, 'pg_class', r.ev_class FROM pg_rewrite r
    UNION ALL
    SELECT 'pg_class', c.oid, 'pg_type', c.reltype FROM pg_class c WHERE c.relkind = 'c'
    UNION ALL
    SELECT 'pg_type', t.oid, 'pg_class', t.typrelid
    FROM pg_type t JOIN pg_class c ON c.oid = t.typrelid WHERE c.relkind <> 'c'
    UNION ALL
    SELECT 'pg_type', t.oid, 'pg_type', t.typelem
    FROM pg_type t WHERE t.typcategory = 'A' AND t.typelem <> 0
    UNION ALL
    SELECT 'pg_constraint', c.oid, 'pg_type', c.contypid FROM pg_constraint c
    WHERE c.contypid <> 0
    UNION ALL
    SELECT 'pg_class', c.conindid, 'pg_constraint', c.oid FROM pg_constraint c
    WHERE c.contype IN ('p', 'u', 'x') AND c.conindid <> 0
)
SELECT coalesce(a.ncls, d.classid::regclass::text), coalesce(a.noid, d.objid)::int8,
       coalesce(b.ncls, d.refclassid::regclass::text), coalesce(b.noid, d.refobjid)::int8
FROM pg_depend d
LEFT JOIN norm a ON a.cls = d.classid::regclass::text AND a.oid = d.objid
LEFT JOIN norm b ON b.cls = d.refclassid::regclass::text AND b.oid = d.refobjid
WHERE d.deptype IN ('n', 'a')"""


class PostgreSQLRestoreWriter(RestoreWriter):
    """Loads a dump into the schema ``zm_stage_<label>``, all inside one transaction.

    Every statement runs with ``search_path`` set to the staging schema (pg_catalog is
    searched first implicitly, as it was when the backup deparsed the statements), so
    unqualified names land there. Nothing is committed before :meth:`swap`: a failure, or a
    killed process, leaves no trace in the target.
    """

    def __init__(self, conn: psycopg.Connection[Any], label: str) -> None:
        self._conn = conn
        self.stage = _STAGE_PREFIX + label
        self.old = _OLD_PREFIX + label
        self.swapped = False
        self._copy: tuple[str, psycopg.Cursor[Any], psycopg.Copy, Any] | None = None
        _execute_one(conn, f"CREATE SCHEMA {_q(self.stage)}")
        for setting in (
            *_SESSION_SETTINGS,
            f"SET LOCAL search_path = {_q(self.stage)}",
            "SET LOCAL check_function_bodies = off",  # bodies may use what comes later
        ):
            _execute_one(conn, setting)

    def _table(self, name: str) -> str:
        return f"{_q(self.stage)}.{_q(name)}"

    def create_table(self, table: TableSpec) -> None:
        self.end_copy()
        check_statement(table.create_stmt, "table", table.name)
        _execute_one(self._conn, table.create_stmt)
        owned = table.options.get("owned_sequences") or {}
        if not isinstance(owned, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in owned.items()
        ):
            raise UnsafeDumpError(f"table {table.name!r}: malformed owned_sequences option")
        for column, sequence in owned.items():
            _execute_one(
                self._conn,
                f"ALTER SEQUENCE {self._table(sequence)} OWNED BY "
                f"{self._table(table.name)}.{_q(column)}",
            )

    def load_rows(self, table: TableSpec, rows: list[tuple[Any, ...]]) -> None:
        if not rows:
            return
        if not table.columns:  # a table with no columns (or only generated ones)
            self.end_copy()
            with self._conn.cursor() as cur:
                for _ in rows:
                    cur.execute(f"INSERT INTO {self._table(table.name)} DEFAULT VALUES".encode())
            return
        copy = self._copy_into(table)
        for row in rows:
            copy.write_row(row)

    def _copy_into(self, table: TableSpec) -> psycopg.Copy:
        """The COPY into ``table``, kept open across chunks so the server parses one chunk
        while the next is decoded; any other statement ends it first (:meth:`end_copy`)."""
        if self._copy is not None and self._copy[0] == table.name:
            return self._copy[2]
        self.end_copy()
        columns = ", ".join(_q(c.name) for c in table.columns)
        statement = f"COPY {self._table(table.name)} ({columns}) FROM STDIN"
        cursor = self._conn.cursor()
        try:
            manager = cursor.copy(statement.encode())
            copy = manager.__enter__()
        except BaseException:
            cursor.close()
            raise
        self._copy = (table.name, cursor, copy, manager)
        return copy

    def end_copy(self, failed: BaseException | None = None) -> None:
        """Finish the open COPY (or abort it, after ``failed``)."""
        if self._copy is None:
            return
        _name, cursor, _copy, manager = self._copy
        self._copy = None
        try:
            if failed is None:
                manager.__exit__(None, None, None)
            else:
                manager.__exit__(type(failed), failed, failed.__traceback__)
        finally:
            cursor.close()

    def load_encoded(self, table: TableSpec, columns: list[Sequence[Any]]) -> None:
        codecs = [c.codec for c in table.columns]
        if not table.columns or not set(codecs) <= BULK_CODECS:
            super().load_encoded(table, columns)
            return
        if not columns[0]:
            return
        # COPY parses the dump's decimal, float and date/time text exactly as the backup
        # read it; only bytea is turned from base64 into COPY's hex form here.
        columns = list(columns)
        for i, codec in enumerate(codecs):
            if codec == "bytes":
                columns[i] = _bytea_fields(decode_base64_column(table, i, columns[i]))
        self._copy_into(table).write(bulk_text(table, columns))

    def create_object(self, obj: ObjectSpec) -> None:
        self.end_copy()
        # Routine bodies may hold semicolons (BEGIN ATOMIC ... END); the extended protocol
        # runs one statement per call, so nothing can follow the body.
        routine = obj.object_type in ("function", "procedure")
        check_statement(obj.create_stmt, obj.object_type, obj.name, allow_body=routine)
        if obj.object_type == "extension" and self._extension_in_public(obj.name):
            # An extension exists once per database: move the target's own into staging
            # (uncommitted until the swap) instead of creating a second one.
            _execute_one(self._conn, f"ALTER EXTENSION {_q(obj.name)} SET SCHEMA {_q(self.stage)}")
            return
        _execute_one(self._conn, obj.create_stmt)

    def _extension_in_public(self, name: str) -> bool:
        with self._conn.cursor() as cur:
            cur.execute(
                b"SELECT 1 FROM pg_extension WHERE extname = %s"
                b" AND extnamespace = 'public'::regnamespace",
                (name,),
            )
            return cur.fetchone() is not None

    def row_count(self, table: TableSpec) -> int:
        self.end_copy()
        with self._conn.cursor() as cur:
            cur.execute(f"SELECT count(*) FROM ONLY {self._table(table.name)}".encode())
            row = cur.fetchone()
        return int(row[0]) if row else 0

    def swap(self) -> None:
        """Rename ``public`` away, the staging schema to ``public``, drop the old: one commit.

        The new ``public`` gets the old one's owner, privileges and comment.
        """
        self.end_copy()
        conn = self._conn
        with conn.cursor() as cur:
            cur.execute(
                b"SELECT quote_ident(nspowner::regrole::text), nspacl::text[],"
                b" obj_description(oid, 'pg_namespace')"
                b" FROM pg_namespace WHERE nspname = 'public'"
            )
            found = cur.fetchone()
            grants: list[tuple[Any, ...]] = []
            if found is not None:
                cur.execute(
                    b"SELECT CASE WHEN x.grantee = 0 THEN 'PUBLIC'"
                    b" ELSE quote_ident(x.grantee::regrole::text) END,"
                    b" x.privilege_type, x.is_grantable"
                    b" FROM pg_namespace n, aclexplode(n.nspacl) x"
                    b" WHERE n.nspname = 'public' AND x.grantee <> n.nspowner"
                )
                grants = list(cur.fetchall())
        if found is not None:
            _execute_one(conn, f"ALTER SCHEMA public RENAME TO {_q(self.old)}")
        _execute_one(conn, f"ALTER SCHEMA {_q(self.stage)} RENAME TO public")
        if found is not None:
            owner, _acl, comment = found
            _execute_one(conn, f"ALTER SCHEMA public OWNER TO {owner}")
            for grantee, privilege, grantable in grants:
                option = " WITH GRANT OPTION" if grantable else ""
                _execute_one(conn, f"GRANT {privilege} ON SCHEMA public TO {grantee}{option}")
            if comment is not None:
                _execute_one(conn, f"COMMENT ON SCHEMA public IS {_literal(comment)}")
            _execute_one(conn, f"DROP SCHEMA {_q(self.old)} CASCADE")
        conn.commit()
        self.swapped = True


@contextmanager
def _open_backup(engine: Engine) -> Iterator[PostgreSQLBackupReader]:
    with ExitStack() as stack:
        conn = stack.enter_context(_transaction_connection(engine, read_only=True))

        def second() -> psycopg.Connection[Any]:
            return stack.enter_context(_transaction_connection(engine, read_only=True))

        reader = PostgreSQLBackupReader(conn, second)
        try:
            yield reader
        finally:
            reader.close_streams()


@contextmanager
def _open_restore(engine: Engine, label: str) -> Iterator[PostgreSQLRestoreWriter]:
    if not isinstance(label, str) or not _LABEL.match(label):
        raise ValueError(f"restore label {label!r} must be 1-40 letters, digits or underscores")
    with _transaction_connection(engine, read_only=False) as conn:
        # Leaving without swap() rolls back: the staging schema was never committed.
        writer = PostgreSQLRestoreWriter(conn, label)
        try:
            yield writer
        except BaseException as exc:
            with suppress(Exception):
                writer.end_copy(exc)
            raise
        writer.end_copy()  # a COPY the server refuses raises here, not silently
