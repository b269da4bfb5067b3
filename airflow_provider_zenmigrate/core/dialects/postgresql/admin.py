"""PostgreSQL (psycopg 3).

Backup and restore cover every schema of the database but the system ones (or those a
:class:`~..dump.model.BackupScope` names): see the section below.
"""

from __future__ import annotations

import heapq
import json
import logging
import re
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager, suppress
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, cast

import psycopg
from sqlalchemy import text
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.exc import DBAPIError

from ...dump.model import BackupScope, ColumnSpec, ObjectSpec, RestoreOptions, TableSpec
from ...errors import MigrationLockTimeout, UnsafeDumpError, ZenMigrateError
from ..base import BackupReader, DialectOps, RestoreWriter, decode_base64_column, pipelined_ranges
from ..text_rows import BULK_CODECS, VerbatimColumn, bulk_text
from .copy_stream import copy_text_rows
from .meta import CatalogMeta, MetaWriter, read_meta
from .schemas import (
    OutsideKey,
    SchemaMeta,
    existing,
    meta_statements,
    not_carried,
    outside_keys,
    schema_meta,
)
from .statements import QUALIFIED_TYPES, PgStatementRules

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
            f"ON n.oid = c.relnamespace WHERE {_USER_SCHEMA} AND c.relkind IN ('r', 'p')"
        ).scalar()
        return int(rows) if rows is not None else None

    def missing_requirements(
        self, engine: Engine, roles: set[str], extensions: set[str]
    ) -> list[str]:
        from .requirements import missing_requirements

        return missing_requirements(engine, roles, extensions)

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
    def open_backup(
        self, engine: Engine, scope: BackupScope | None = None
    ) -> AbstractContextManager[PostgreSQLBackupReader]:
        """A REPEATABLE READ, READ ONLY snapshot of the schemas ``scope`` selects.

        The reader also has :meth:`PostgreSQLBackupReader.pre_objects` (schemas, types,
        domains and sequences the tables need), which the engine creates before the first
        table, and :attr:`~PostgreSQLBackupReader.excluded` (schemas left out, and why).
        """
        return _open_backup(engine, scope or BackupScope())

    def open_restore(
        self, engine: Engine, label: str, options: RestoreOptions | None = None
    ) -> AbstractContextManager[PostgreSQLRestoreWriter]:
        """Replace the dump's schemas in one transaction (see
        :class:`PostgreSQLRestoreWriter`). Without a swap nothing is ever committed."""
        return _open_restore(engine, label, options)


# ---------------------------------------------------------------------------------------------
# Backup and restore
# ---------------------------------------------------------------------------------------------
#
# Scope: every schema of the database but the system ones, as pg_dump takes them, narrowed by
# a BackupScope; the header lists the schemas a dump holds and those left out, with why.
#
# DDL comes from the catalogs (``pg_get_*``, ``format_type``), read with an empty
# ``search_path`` so that every name outside ``pg_catalog`` is written schema-qualified. A
# restore runs the same statements in one transaction: it renames each restored schema away,
# creates it anew, loads it, and drops the old ones at the end; nothing is visible to other
# sessions before the commit. Dumps written before several schemas were covered (their header
# lists no schemas) hold ``public`` only, with unqualified names: they are restored with
# ``search_path`` set to the new ``public``.

_OLD_PREFIX = "zm_old_"
#: SQL condition on ``n`` (pg_namespace): a schema a backup covers unless told otherwise.
_USER_SCHEMA = (
    "n.nspname NOT IN ('pg_catalog', 'information_schema') "
    "AND left(n.nspname, 8) <> 'pg_toast' AND left(n.nspname, 7) <> 'pg_temp'"
)
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
_PRE_ORDER = {"schema": -1, "extension": 0, "type": 1, "domain": 1, "sequence": 2, "function": 3}
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
    "policy": 5,
    "default_privileges": 6,
}


def _q(name: str) -> str:
    """Quote an identifier, always."""
    return '"' + name.replace('"', '""') + '"'


def _qn(schema: str, name: str) -> str:
    """A schema-qualified name, quoted."""
    return f"{_q(schema)}.{_q(name)}"


def display_name(schema: str, name: str) -> str:
    """A relation's name in records, trailers and reports: bare in ``public`` (as dumps of one
    schema always wrote it), ``schema.name`` elsewhere."""
    return name if schema == "public" else f"{schema}.{name}"


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
    schema: str
    name: str
    kind: str
    persistence: str
    is_partition: bool
    bound: str | None
    partkey: str | None
    reloptions: list[str]
    parents: list[str] = field(default_factory=list)
    columns: list[_Column] = field(default_factory=list)

    @property
    def display(self) -> str:
        return display_name(self.schema, self.name)

    @property
    def qname(self) -> str:
        return _qn(self.schema, self.name)


@dataclass
class _Obj:
    """An object with its identity in ``pg_depend`` terms, for dependency ordering."""

    key: tuple[str, int]
    spec: ObjectSpec


class PostgreSQLBackupReader(BackupReader):
    """One REPEATABLE READ, READ ONLY transaction over the schemas of a :class:`BackupScope`.

    Beyond :class:`BackupReader`, it has :meth:`pre_objects`: the schemas, types, domains,
    sequences (and the functions column defaults and checks call) that must exist *before*
    the tables; :attr:`schemas` (what the dump holds) and :attr:`excluded` (what it left out).
    """

    def __init__(
        self,
        conn: psycopg.Connection[Any],
        second: Callable[[], psycopg.Connection[Any]] | None = None,
        scope: BackupScope | None = None,
    ) -> None:
        self._conn = conn
        self._cursors = 0
        #: COPY streams handed out; one left open would block the connection's rollback.
        self._streams: list[Generator[Any, None, None]] = []
        #: Opens a second connection (a transaction not yet begun), for parallel rendering.
        self._open_second = second
        self._second: psycopg.Connection[Any] | None = None
        for setting in (*_SESSION_SETTINGS, _READ_SEARCH_PATH):
            _execute_one(conn, setting)
        self.server_version = str(self._one("SHOW server_version")[0])
        self._server_version_num = int(self._one("SHOW server_version_num")[0])
        found = {name: oid for oid, name in self._all(_SQL_SCHEMAS)}
        picked, self.excluded = select_schemas(sorted(found), scope or BackupScope())
        #: The schemas this dump holds, by name, and their oids for the catalog queries.
        self.schemas = picked
        self._public = [found[n] for n in picked]
        #: What the database holds that this dump does not carry (named in the header).
        self.not_carried = not_carried(conn, self._public)
        if self.not_carried:
            logger.warning(
                "not carried by this backup (recorded in its header): %s",
                "; ".join(f"{o['kind']} {o['name']}" for o in self.not_carried),
            )
        names = [_qn(n, r) for n, r in self._all(_SQL_LOCKABLE, (self._public,))]
        if names:  # hold off DDL on what we read for as long as the snapshot lives
            _execute_one(conn, f"LOCK TABLE {', '.join(names)} IN ACCESS SHARE MODE")
        self._tables: list[_Table] | None = None
        self._catalog_meta: CatalogMeta | None = None

    # -- helpers -------------------------------------------------------------------------------
    def _all(self, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._conn.cursor() as cur:
            cur.execute(query.encode(), params or None)
            return list(cur.fetchall())

    def _one(self, query: str, params: tuple[Any, ...] = ()) -> tuple[Any, ...]:
        rows = self._all(query, params)
        return rows[0]

    def _meta(self) -> CatalogMeta:
        if self._catalog_meta is None:
            self._catalog_meta = read_meta(
                lambda q, p: self._all(q, tuple(p)), self._public, display_name
            )
        return self._catalog_meta

    def scope(self) -> dict[str, Any]:
        """The schemas this dump holds, those left out (with why) and the objects of kinds no
        backup carries, for the header."""
        fields: dict[str, Any] = {"schemas": self.schemas, "excluded_schemas": self.excluded}
        if self.not_carried:
            fields["not_carried"] = self.not_carried
        return fields

    def _with_meta(self, objs: list[_Obj]) -> list[_Obj]:
        by_key = self._meta().by_key
        for o in objs:
            if by_key.get(o.key):
                o.spec = replace(o.spec, options={**o.spec.options, **by_key[o.key]})
        return objs

    # -- tables --------------------------------------------------------------------------------
    def _load_tables(self) -> list[_Table]:
        if self._tables is not None:
            return self._tables
        by_oid: dict[int, _Table] = {}
        for oid, schema, name, kind, pers, is_part, bound, partkey, relopts in self._all(
            _SQL_TABLES, (self._public,)
        ):
            by_oid[oid] = _Table(
                oid, schema, name, kind, pers, is_part, bound, partkey, list(relopts or [])
            )
        for child, parent in self._all(_SQL_INHERITS, (self._public,)):
            if child in by_oid and parent in by_oid:
                by_oid[child].parents.append(by_oid[parent].display)
        for row in self._all(_SQL_COLUMNS, (self._public,)):
            table = by_oid.get(row[0])
            if table is not None:
                table.columns.append(_Column(*row[1:]))
        # Parents before children; otherwise by name.
        ordered: list[_Table] = []
        done: set[str] = set()
        by_name = {t.display: t for t in by_oid.values()}
        if len(by_name) < len(by_oid):
            raise ZenMigrateError(
                "two tables have the same name in this dump (a table named "
                "'schema.name' in public beside the table name in schema 'schema'); "
                "rename one, or leave one schema out with exclude_schemas"
            )

        def visit(t: _Table, path: frozenset[str]) -> None:
            if t.display in done or t.display in path:
                return
            for parent in t.parents:
                visit(by_name[parent], path | {t.display})
            done.add(t.display)
            ordered.append(t)

        for t in sorted(by_oid.values(), key=lambda t: (t.schema != "public", t.display)):
            visit(t, frozenset())
        self._tables = ordered
        return ordered

    def tables(self) -> list[TableSpec]:
        """Base tables, partitioned tables and their partitions of ``public``, parents first.

        ``options["owned_sequences"]`` maps a column to the sequence it owns (``serial``);
        the restore re-attaches the ownership after creating the table.
        """
        tables = self._load_tables()
        by_name = {t.display: t for t in tables}
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
            positions = {
                name: state[-1]
                for (relid, _num), (name, *state) in identity.items()
                if relid == t.oid
            }
            options: dict[str, Any] = {
                "schema": t.schema,
                **self._meta().by_key.get(("pg_class", t.oid), {}),
            }
            if t.oid in owned:
                options["owned_sequences"] = owned[t.oid]
            if positions:  # where each identity column's sequence stood
                options["identity_positions"] = positions
            out.append(TableSpec(t.display, stmt, columns, tuple(keys.get(t.oid, ())), options))
        return out

    def _sequence_state(self, seq_oid: int) -> tuple[Any, ...]:
        """(type, start, increment, min, max, cache, cycle, [last value, is_called]) of a
        sequence: created as it was declared, then set where it stood (as pg_dump does)."""
        seqtype, start, inc, minv, maxv, cache, cycle, schema, relname = self._one(
            _SQL_SEQUENCE, (seq_oid,)
        )
        last, is_called = self._one(f"SELECT last_value, is_called FROM {_qn(schema, relname)}")
        return (seqtype, start, inc, minv, maxv, cache, cycle, [int(last), bool(is_called)])

    def _create_table(
        self,
        t: _Table,
        by_name: dict[str, _Table],
        constraints: list[tuple[str, str]],
        identity: dict[tuple[int, int], tuple[Any, ...]],
    ) -> str:
        head = "CREATE " + ("UNLOGGED " if t.persistence == "u" else "") + "TABLE " + t.qname
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
            stmt = f"{head} PARTITION OF {by_name[t.parents[0]].qname}"
            if elems:
                stmt += " (\n    " + ",\n    ".join(elems) + "\n)"
            stmt += f" {t.bound}"
        else:
            elems = [self._column_def(t, c, identity) for c in t.columns if c.local] + cons
            stmt = head + " (\n    " + ",\n    ".join(elems) + "\n)"
            if t.parents:
                stmt += " INHERITS (" + ", ".join(by_name[p].qname for p in t.parents) + ")"
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
                name, _type, nxt, inc, minv, maxv, cache, cycle, _position = seq
                parts.append(
                    f"GENERATED {kind} AS IDENTITY (SEQUENCE NAME {_qn(t.schema, name)} "
                    f"START WITH {nxt} "
                    f"INCREMENT BY {inc} MINVALUE {minv} MAXVALUE {maxv} CACHE {cache} "
                    f"{'CYCLE' if cycle else 'NO CYCLE'})"
                )
        elif c.default is not None:
            parts.append(f"DEFAULT {c.default}")
        if c.notnull:
            parts.append("NOT NULL")
        return " ".join(parts)

    # -- rows ----------------------------------------------------------------------------------
    def _relation(self, table: TableSpec) -> str:
        """The quoted, qualified name of a table this reader handed out."""
        found = next((t for t in self._load_tables() if t.display == table.name), None)
        if found is None:
            schema = str(table.options.get("schema", "public"))
            return _qn(schema, table.name.removeprefix(f"{schema}."))
        return found.qname

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
            cur.execute(f"SELECT {select} FROM ONLY {self._relation(table)}".encode())
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
        found = next((t for t in self._load_tables() if t.display == table.name), None)
        if found is None:
            return None
        oids = {c.name: c.type_oid for c in found.columns}
        parts = []
        for n, column in enumerate(table.columns):
            key = json.dumps(column.name, ensure_ascii=False) + ":"
            value = _render(column.codec, oids.get(column.name, 0)).format(c=_q(column.name))
            parts.append(f"{_literal(('{' if n == 0 else ',') + key)} || COALESCE({value}, 'null')")
        select = f"SELECT {' || '.join(parts)} || '}}' FROM ONLY {found.qname}"
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
            for setting in (*_SESSION_SETTINGS, _READ_SEARCH_PATH):
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

        return pipelined_ranges(open_range, len(ranges))

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
        meta = self._meta()
        objs: list[_Obj] = []
        for oid, name in zip(self._public, self.schemas, strict=True):
            spec = ObjectSpec(
                "schema",
                name,
                f"CREATE SCHEMA {_q(name)}",
                options={"schema": name, **meta.schemas[name]},
            )
            objs.append(_Obj(("pg_namespace", oid), spec))
        for oid, schema, name in self._all(_SQL_EXTENSIONS, (self._public,)):
            stmt = f"CREATE EXTENSION IF NOT EXISTS {_q(name)} WITH SCHEMA {_q(schema)}"
            spec = ObjectSpec("extension", name, stmt, options={"schema": schema})
            objs.append(_Obj(("pg_extension", oid), spec))
        objs += self._types()
        for oid, schema, name in self._all(_SQL_FREE_SEQUENCES, (self._public,)):
            seqtype, nxt, inc, minv, maxv, cache, cycle, position = self._sequence_state(oid)
            stmt = (
                f"CREATE SEQUENCE {_qn(schema, name)} AS {seqtype} START WITH {nxt} "
                f"INCREMENT BY {inc} MINVALUE {minv} MAXVALUE {maxv} CACHE {cache} "
                f"{'CYCLE' if cycle else 'NO CYCLE'}"
            )
            spec = _spec("sequence", schema, name, stmt)
            spec.options["position"] = position
            objs.append(_Obj(("pg_class", oid), spec))
        pre_funcs = {r[0] for r in self._all(_SQL_PRE_FUNCTIONS, (self._public,))}
        objs += [o for o in self._routines() if o.key[1] in pre_funcs]
        return self._ordered(self._with_meta(objs), _PRE_ORDER)

    def objects(self) -> list[ObjectSpec]:
        """Everything created after the data, in an order that restores cleanly.

        Routines, aggregates, views and materialized views (by their dependencies), then
        indexes that back no constraint, the keys of plain tables (primary, unique,
        exclusion), foreign keys and NOT VALID checks (as ``constraint``: ``ALTER TABLE ...
        ADD CONSTRAINT``), triggers and rules.
        """
        pre_funcs = {r[0] for r in self._all(_SQL_PRE_FUNCTIONS, (self._public,))}
        objs = [o for o in self._routines() if o.key[1] not in pre_funcs]
        for oid, schema, name, kind, definition, populated, relopts in self._all(
            _SQL_VIEWS, (self._public,)
        ):
            body = definition.rstrip().rstrip(";")
            if kind == "m":
                stmt = f"CREATE MATERIALIZED VIEW {_qn(schema, name)} AS\n{body}\n"
                stmt += "WITH DATA" if populated else "WITH NO DATA"
                spec = _spec("materialized_view", schema, name, stmt)
                objs.append(_Obj(("pg_class", oid), spec))
            else:
                opts = [o for o in (relopts or []) if not o.startswith("check_option=")]
                check = [
                    o.split("=", 1)[1] for o in (relopts or []) if o.startswith("check_option=")
                ]
                stmt = f"CREATE VIEW {_qn(schema, name)}"
                if opts:
                    stmt += " WITH (" + ", ".join(opts) + ")"
                stmt += f" AS\n{body}"
                if check:
                    stmt += f"\nWITH {check[0].upper()} CHECK OPTION"
                objs.append(_Obj(("pg_class", oid), _spec("view", schema, name, stmt)))
        for oid, schema, name, table, definition, unique, quoted in self._all(
            _SQL_INDEXES, (self._public,)
        ):
            only = f"CREATE {'UNIQUE ' if unique else ''}INDEX {quoted} ON ONLY "
            if definition.startswith(only):  # a partitioned table's index: recurse instead
                definition = only[: -len("ONLY ")] + definition[len(only) :]
            spec = _member("index", schema, name, table, definition)
            objs.append(_Obj(("pg_class", oid), spec))
        for oid, schema, name, table, kind, definition in self._all(
            _SQL_LATE_CONSTRAINTS, (self._public,)
        ):
            only = "ONLY " if kind == "r" else ""
            stmt = f"ALTER TABLE {only}{_qn(schema, table)} ADD CONSTRAINT {_q(name)} {definition}"
            spec = _member("constraint", schema, name, table, stmt)
            objs.append(_Obj(("pg_constraint", oid), spec))
        for oid, schema, name, table, definition in self._all(_SQL_TRIGGERS, (self._public,)):
            spec = _member("trigger", schema, name, table, definition)
            objs.append(_Obj(("pg_trigger", oid), spec))
        for oid, schema, name, table, definition in self._all(_SQL_RULES, (self._public,)):
            stmt = definition.rstrip().rstrip(";")
            objs.append(_Obj(("pg_rewrite", oid), _member("rule", schema, name, table, stmt)))
        meta = self._meta()
        objs += [_Obj(key, spec) for key, spec in (*meta.policies, *meta.default_acls)]
        return self._ordered(self._with_meta(objs), _POST_ORDER)

    def _types(self) -> list[_Obj]:
        out: list[_Obj] = []
        for oid, schema, name, typtype, basetype, notnull, default, collation in self._all(
            _SQL_TYPES, (self._public,)
        ):
            qname = _qn(schema, name)
            if typtype == "e":
                labels = [r[0] for r in self._all(_SQL_ENUM_LABELS, (oid,))]
                stmt = f"CREATE TYPE {qname} AS ENUM (" + ", ".join(map(_literal, labels)) + ")"
                out.append(_Obj(("pg_type", oid), _spec("type", schema, name, stmt)))
            elif typtype == "d":
                stmt = f"CREATE DOMAIN {qname} AS {basetype}"
                if collation:
                    stmt += f" COLLATE {collation}"
                if default is not None:
                    stmt += f" DEFAULT {default}"
                if notnull:
                    stmt += " NOT NULL"
                for cname, cdef in self._all(_SQL_DOMAIN_CONSTRAINTS, (oid,)):
                    stmt += f" CONSTRAINT {_q(cname)} {cdef}"
                out.append(_Obj(("pg_type", oid), _spec("domain", schema, name, stmt)))
            elif typtype == "c":
                attrs = [
                    f"{_q(a)} {t}" + (f" COLLATE {coll}" if coll else "")
                    for a, t, coll in self._all(_SQL_COMPOSITE_ATTRS, (oid,))
                ]
                stmt = f"CREATE TYPE {qname} AS (" + ", ".join(attrs) + ")"
                out.append(_Obj(("pg_type", oid), _spec("type", schema, name, stmt)))
            elif typtype == "r":
                subtype, diff, multirange = self._one(_SQL_RANGE, (oid,))
                opts = [f"SUBTYPE = {subtype}"]
                if diff:
                    opts.append(f"SUBTYPE_DIFF = {diff}")
                if multirange:
                    opts.append(f"MULTIRANGE_TYPE_NAME = {_qn(schema, multirange)}")
                stmt = f"CREATE TYPE {qname} AS RANGE (" + ", ".join(opts) + ")"
                out.append(_Obj(("pg_type", oid), _spec("type", schema, name, stmt)))
        return out

    def _routines(self) -> list[_Obj]:
        out: list[_Obj] = []
        for oid, schema, name, kind, definition in self._all(_SQL_ROUTINES, (self._public,)):
            if kind == "a":
                out.append(_Obj(("pg_proc", oid), self._aggregate(oid, schema, name)))
                continue
            # pg_get_functiondef qualifies the routine's own name, as the restore wants it.
            otype = "procedure" if kind == "p" else "function"
            spec = _spec(otype, schema, name, definition.rstrip())
            out.append(_Obj(("pg_proc", oid), spec))
        return out

    def _aggregate(self, oid: int, schema: str, name: str) -> ObjectSpec:
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
        stmt = (
            f"CREATE AGGREGATE {_qn(schema, name)}({args}) (\n    " + ",\n    ".join(opts) + "\n)"
        )
        return _spec("aggregate", schema, name, stmt)

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


def _spec(object_type: str, schema: str, name: str, stmt: str) -> ObjectSpec:
    """A schema object's record: named as its table would be (:func:`display_name`)."""
    return ObjectSpec(object_type, display_name(schema, name), stmt, options={"schema": schema})


def _member(object_type: str, schema: str, name: str, table: str, stmt: str) -> ObjectSpec:
    """An object that belongs to a table (index, constraint, trigger, rule): its own name is
    bare in its statement, the table's is qualified."""
    return ObjectSpec(
        object_type, name, stmt, display_name(schema, table), options={"schema": schema}
    )


def select_schemas(found: list[str], scope: BackupScope) -> tuple[list[str], list[dict[str, str]]]:
    """The schemas a backup takes of those ``found``, and those it leaves out with why."""
    for option, names in (("schemas", scope.schemas), ("exclude_schemas", scope.exclude_schemas)):
        missing = sorted(set(names) - set(found))
        if missing:
            raise ZenMigrateError(
                f"{option} names schemas the database does not have: {', '.join(missing)} "
                f"(it has: {', '.join(found) or 'none'})"
            )
    picked: list[str] = []
    excluded: list[dict[str, str]] = []
    for name in found:
        if name in scope.exclude_schemas:
            excluded.append({"schema": name, "reason": "named by exclude_schemas"})
        elif scope.schemas and name not in scope.schemas:
            excluded.append({"schema": name, "reason": "not named by schemas"})
        else:
            picked.append(name)
    return picked, excluded


# -- catalog queries (with an empty search_path: every name outside pg_catalog is qualified) ----

_READ_SEARCH_PATH = "SET LOCAL search_path = ''"


def _not_member(catalog: str, alias: str) -> str:
    """SQL condition: the row is not part of an extension (those come with the extension)."""
    return (
        f"NOT EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = '{catalog}'::regclass "
        f"AND e.objid = {alias}.oid AND e.deptype = 'e')"
    )


def _collation(column_collation: str, type_collation: str) -> str:
    """SQL expression: the COLLATE clause's name when it differs from the type's default."""
    return (
        f"(SELECT CASE WHEN n.nspname = 'pg_catalog' THEN quote_ident(co.collname)"
        f" ELSE quote_ident(n.nspname) || '.' || quote_ident(co.collname) END"
        f" FROM pg_collation co JOIN pg_namespace n ON n.oid = co.collnamespace"
        f" WHERE co.oid = {column_collation} AND {column_collation} <> {type_collation})"
    )


_SQL_SCHEMAS = f"""
SELECT n.oid, n.nspname FROM pg_namespace n
WHERE {_USER_SCHEMA} AND {_not_member("pg_namespace", "n")}
ORDER BY n.nspname"""

_SQL_LOCKABLE = f"""
SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relnamespace = ANY(%s) AND c.relkind IN ('r', 'p') AND {_not_member("pg_class", "c")}
ORDER BY 1, 2"""

_SQL_TABLES = f"""
SELECT c.oid, n.nspname, c.relname, c.relkind::text, c.relpersistence::text, c.relispartition,
       pg_get_expr(c.relpartbound, c.oid),
       CASE WHEN c.relkind = 'p' THEN pg_get_partkeydef(c.oid) END,
       c.reloptions
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relnamespace = ANY(%s) AND c.relkind IN ('r', 'p') AND {_not_member("pg_class", "c")}"""

_SQL_INHERITS = """
SELECT i.inhrelid, i.inhparent FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
WHERE c.relnamespace = ANY(%s) AND c.relkind IN ('r', 'p')
ORDER BY i.inhrelid, i.inhseqno"""

_SQL_COLUMNS = f"""
SELECT a.attrelid, a.attnum, a.attname, format_type(a.atttypid, a.atttypmod), a.atttypid::int,
       a.attnotnull, pg_get_expr(d.adbin, d.adrelid), a.attidentity::text,
       a.attgenerated::text, a.attislocal, {_collation("a.attcollation", "t.typcollation")}
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_type t ON t.oid = a.atttypid
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE c.relnamespace = ANY(%s) AND c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped
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
WHERE c.relnamespace = ANY(%s) AND c.relkind IN ('r', 'p') AND co.contype IN ('p', 'u', 'x', 'c')
  AND co.conislocal AND co.conparentid = 0 AND (co.contype <> 'c' OR co.convalidated)
  AND NOT ({_DEFERRED_KEY})
ORDER BY co.conrelid, array_position(ARRAY['p', 'u', 'x', 'c'], co.contype::text), co.conname"""

# After the data: deferred keys, foreign keys (so cycles and self-references load; each
# after the key it references, see _SQL_DEPENDS) and NOT VALID checks.
_SQL_LATE_CONSTRAINTS = f"""
SELECT co.oid, n.nspname, co.conname, c.relname, c.relkind::text,
       pg_get_constraintdef(co.oid, true)
FROM pg_constraint co JOIN pg_class c ON c.oid = co.conrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relnamespace = ANY(%s) AND c.relkind IN ('r', 'p') AND co.conparentid = 0
  AND (co.contype = 'f' OR (co.contype = 'c' AND NOT co.convalidated AND co.conislocal)
       OR ({_DEFERRED_KEY}))
ORDER BY n.nspname, c.relname, co.conname"""

_SQL_TABLE_SEQUENCES = """
SELECT d.refobjid, d.refobjsubid, s.oid, s.relname, d.deptype::text
FROM pg_depend d
JOIN pg_class s ON s.oid = d.objid
JOIN pg_class t ON t.oid = d.refobjid
WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass
  AND d.deptype IN ('a', 'i') AND d.refobjsubid > 0 AND s.relkind = 'S'
  AND t.relnamespace = ANY(%s) AND s.relnamespace = t.relnamespace
ORDER BY s.relname"""

_SQL_PRIMARY_KEYS = """
SELECT i.indrelid, a.attname
FROM pg_index i
JOIN pg_class c ON c.oid = i.indrelid
CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
WHERE i.indisprimary AND c.relnamespace = ANY(%s)
ORDER BY i.indrelid, k.ord"""

_SQL_SEQUENCE = """
SELECT format_type(s.seqtypid, NULL), s.seqstart, s.seqincrement, s.seqmin, s.seqmax,
       s.seqcache, s.seqcycle, n.nspname, c.relname
FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE s.seqrelid = %s"""

_SQL_FREE_SEQUENCES = f"""
SELECT c.oid, n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relnamespace = ANY(%s) AND c.relkind = 'S' AND {_not_member("pg_class", "c")}
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                  AND d.objid = c.oid AND d.deptype = 'i')
ORDER BY c.relname"""

_SQL_EXTENSIONS = """
SELECT x.oid, n.nspname, x.extname FROM pg_extension x JOIN pg_namespace n ON n.oid = x.extnamespace
WHERE x.extnamespace = ANY(%s) ORDER BY x.extname"""

_BASE_COLLATION = "(SELECT b.typcollation FROM pg_type b WHERE b.oid = t.typbasetype)"
_SQL_TYPES = f"""
SELECT t.oid, n.nspname, t.typname, t.typtype::text, format_type(t.typbasetype, t.typtypmod),
       t.typnotnull, pg_get_expr(t.typdefaultbin, 0),
       {_collation("t.typcollation", _BASE_COLLATION)}
FROM pg_type t LEFT JOIN pg_class r ON r.oid = t.typrelid
JOIN pg_namespace n ON n.oid = t.typnamespace
WHERE t.typnamespace = ANY(%s) AND t.typtype IN ('e', 'd', 'c', 'r')
  AND (t.typtype <> 'c' OR r.relkind = 'c') AND {_not_member("pg_type", "t")}
ORDER BY n.nspname, t.typname"""

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
SELECT p.oid, n.nspname, p.proname, p.prokind::text,
       CASE WHEN p.prokind <> 'a' THEN pg_get_functiondef(p.oid) END
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE p.pronamespace = ANY(%s) AND {_not_member("pg_proc", "p")}
  AND NOT EXISTS (SELECT 1 FROM pg_depend i WHERE i.classid = 'pg_proc'::regclass
                  AND i.objid = p.oid AND i.deptype = 'i')  -- a range type's constructors
ORDER BY n.nspname, p.proname, p.oid"""

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
WHERE d.refclassid = 'pg_proc'::regclass AND p.pronamespace = ANY(%s)
  AND d.classid IN ('pg_attrdef'::regclass, 'pg_constraint'::regclass, 'pg_type'::regclass)
  AND NOT EXISTS (SELECT 1 FROM pg_constraint f WHERE d.classid = 'pg_constraint'::regclass
                  AND f.oid = d.objid AND f.contype = 'f')"""

_SQL_VIEWS = f"""
SELECT c.oid, n.nspname, c.relname, c.relkind::text, pg_get_viewdef(c.oid, true),
       c.relispopulated, c.reloptions
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relnamespace = ANY(%s) AND c.relkind IN ('v', 'm') AND {_not_member("pg_class", "c")}
ORDER BY n.nspname, c.relname"""

_SQL_INDEXES = f"""
SELECT i.indexrelid, n.nspname, ic.relname, t.relname,
       pg_get_indexdef(i.indexrelid, 0, true), i.indisunique, quote_ident(ic.relname)
FROM pg_index i
JOIN pg_class ic ON ic.oid = i.indexrelid
JOIN pg_class t ON t.oid = i.indrelid
JOIN pg_namespace n ON n.oid = t.relnamespace
WHERE t.relnamespace = ANY(%s) AND t.relkind IN ('r', 'p', 'm') AND NOT ic.relispartition
  AND {_not_member("pg_class", "ic")}
  AND NOT EXISTS (SELECT 1 FROM pg_constraint co WHERE co.conindid = i.indexrelid
                  AND co.conrelid = i.indrelid AND co.contype IN ('p', 'u', 'x'))
ORDER BY 2, ic.relname"""

_SQL_TRIGGERS = """
SELECT tg.oid, n.nspname, tg.tgname, c.relname, pg_get_triggerdef(tg.oid, true)
FROM pg_trigger tg JOIN pg_class c ON c.oid = tg.tgrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relnamespace = ANY(%s) AND NOT tg.tgisinternal AND tg.tgparentid = 0
ORDER BY n.nspname, c.relname, tg.tgname"""

_SQL_RULES = """
SELECT r.oid, n.nspname, r.rulename, c.relname, pg_get_ruledef(r.oid, true)
FROM pg_rewrite r JOIN pg_class c ON c.oid = r.ev_class
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relnamespace = ANY(%s) AND r.rulename <> '_RETURN'
ORDER BY n.nspname, c.relname, r.rulename"""

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
    """Loads a dump into the target database itself, all inside one transaction.

    :meth:`begin` renames every schema the dump restores away (``zm_old_<label>_<n>``) and
    creates it anew, so the dump's statements run as they were written, schema-qualified
    (a dump of ``public`` alone, from before, runs with ``search_path`` set to ``public``).
    Other sessions see the old schemas until :meth:`swap` drops them and commits: a
    failure, or a killed process, leaves no trace in the target.
    """

    def __init__(
        self,
        conn: psycopg.Connection[Any],
        label: str,
        options: RestoreOptions | None = None,
    ) -> None:
        self._conn = conn
        self._options = options or RestoreOptions()
        self.old = _OLD_PREFIX + label
        #: Where unqualified names land (a dump of ``public`` alone, from before).
        self.stage = "public"
        self.swapped = False
        self._copy: tuple[str, psycopg.Cursor[Any], psycopg.Copy, Any] | None = None
        self._started = False
        self._legacy = True
        self._rules = PgStatementRules(None)
        #: The schemas this restore replaces.
        self.schemas: frozenset[str] = frozenset()
        #: Each replaced schema that existed -> what it was renamed to, until dropped.
        self._renamed: dict[str, str] = {}
        self._kept_meta: dict[str, SchemaMeta] = {}
        self._outside_keys: list[OutsideKey] = []
        self._meta = MetaWriter(
            self._rows,
            lambda statement: _execute_one(conn, statement),
            no_owner=self._options.no_owner,
            no_privileges=self._options.no_privileges,
            skip_missing_roles=self._options.skip_missing_roles,
        )
        for setting in (
            *_SESSION_SETTINGS,
            _READ_SEARCH_PATH,
            "SET LOCAL check_function_bodies = off",  # bodies may use what comes later
        ):
            _execute_one(conn, setting)

    def _rows(self, query: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        with self._conn.cursor() as cur:
            cur.execute(query.encode(), tuple(params) or None)
            return list(cur.fetchall())

    # -- the schemas replaced ----------------------------------------------------------------
    def begin(self, header: dict[str, Any] | None) -> None:
        """Replace the schemas the dump's header lists (``public`` for a dump that lists
        none); everything else follows in them."""
        if self._started:
            return
        self._started = True
        self._rules = PgStatementRules(header)
        listed = self._rules.schemas
        if listed is None:
            self._replace(["public"])
            _execute_one(self._conn, "SET LOCAL search_path = public")
            return
        self._rules.refuse_excluded(self._options.exclude_schemas)
        self._legacy = False
        self.schemas = listed
        self._replace(sorted(listed))
        if "public" in listed:  # records that name no schema are in public, unqualified
            _execute_one(self._conn, "SET LOCAL search_path = public")

    def _replace(self, names: list[str]) -> None:
        conn = self._conn
        found = existing(conn, names)
        self._outside_keys = outside_keys(conn, list(found.values()))
        for n, name in enumerate(sorted(found)):
            if self._legacy:
                self._kept_meta[name] = schema_meta(conn, found[name])
            self._renamed[name] = f"{self.old}_{n}"
            _execute_one(conn, f"ALTER SCHEMA {_q(name)} RENAME TO {_q(self._renamed[name])}")
        for name in names:
            _execute_one(conn, f"CREATE SCHEMA {_q(name)}")

    def _table(self, table: TableSpec) -> str:
        self.begin(None)
        schema = self._rules.schema_of("table", table.name, table.options)
        return _qn(schema, _bare(schema, table.name))

    # -- loading -----------------------------------------------------------------------------
    def create_table(self, table: TableSpec) -> None:
        self.end_copy()
        self.begin(None)
        schema = self._rules.check_table_statement(table)
        self._require_roles("table", table.name, table.options)
        owned = table.options.get("owned_sequences") or {}
        _execute_one(self._conn, table.create_stmt)
        self._set_positions(schema, table.options.get("identity_positions") or {})
        for column, sequence in owned.items():
            _execute_one(
                self._conn,
                f"ALTER SEQUENCE {_qn(schema, sequence)} OWNED BY "
                f"{self._table(table)}.{_q(column)}",
            )
        bare = _bare(schema, table.name)
        self._meta.add("table", schema, bare, None, table.options, self.schemas)

    def load_rows(self, table: TableSpec, rows: list[tuple[Any, ...]]) -> None:
        if not rows:
            return
        if not table.columns:  # a table with no columns (or only generated ones)
            self.end_copy()
            with self._conn.cursor() as cur:
                for _ in rows:
                    cur.execute(f"INSERT INTO {self._table(table)} DEFAULT VALUES".encode())
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
        statement = f"COPY {self._table(table)} ({columns}) FROM STDIN"
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
        kind = obj.object_type
        self.begin(None)
        schema = self._rules.check_object_statement(obj)
        self._require_roles(kind, obj.name, obj.options)
        if kind in ("schema", "default_privileges"):
            self._carried(obj)
            return
        if kind == "extension":
            self._extension(obj.name, schema)
        else:
            _execute_one(self._conn, obj.create_stmt)
        if kind == "sequence" and "position" in obj.options:
            self._set_positions(schema, {_bare(schema, obj.name): obj.options["position"]})
        bare = obj.name if kind not in QUALIFIED_TYPES else _bare(schema, obj.name)
        table = _bare(schema, obj.table) if obj.table else None
        self._meta.add(kind, schema, bare, table, obj.options, self.schemas)

    def _require_roles(self, kind: str, name: str, options: dict[str, Any]) -> None:
        """Refuse a record naming roles the target lacks, before anything of it runs (the
        same rule as dry runs: :meth:`PgStatementRules.required_roles`)."""
        skippable, strict = self._rules.required_roles(kind, options, self._options)
        label = f"{kind} {name!r}"
        self._meta.check_roles(skippable, label)
        if self._meta.check_roles(strict, label, skippable=False):
            raise ZenMigrateError(
                f"{label} applies to roles the target lacks; a policy cannot be left out "
                "without changing who sees which rows. Nothing was changed: create the roles"
            )

    def _set_positions(self, schema: str, positions: Any) -> None:
        """Set sequences where they stood: ``{name: [last value, is_called]}`` (dumps written
        before this carry the next value as START WITH instead)."""
        if not isinstance(positions, dict):
            raise UnsafeDumpError("malformed sequence positions")
        for name, position in positions.items():
            if not (
                isinstance(name, str)
                and isinstance(position, list)
                and len(position) == 2
                and isinstance(position[0], int)
                and isinstance(position[1], bool)
            ):
                raise UnsafeDumpError(f"sequence {name!r}: malformed position {position!r}")
            self._rows("SELECT setval(%s::regclass, %s, %s)", (_qn(schema, name), *position))

    def _carried(self, obj: ObjectSpec) -> None:
        """A schema's record (the schema itself was created by :meth:`begin`) or a role's
        default privileges (checked by the rules): applied before the commit."""
        if obj.object_type == "schema":
            self._meta.add("schema", obj.name, obj.name, None, obj.options, self.schemas)
        else:
            self._meta.add_default_acl(obj.options)

    def _extension(self, name: str, schema: str) -> None:
        """An extension exists once per database: one the target has is moved into its
        schema (uncommitted until the swap) instead of being created a second time."""
        with self._conn.cursor() as cur:
            cur.execute(
                b"SELECT n.nspname FROM pg_extension x JOIN pg_namespace n"
                b" ON n.oid = x.extnamespace WHERE x.extname = %s",
                (name,),
            )
            found = cur.fetchone()
            if found is None:
                cur.execute(b"SELECT 1 FROM pg_available_extensions WHERE name = %s", (name,))
                if cur.fetchone() is None:
                    raise ZenMigrateError(
                        f"extension {name!r} is not available on the target server "
                        "(pg_available_extensions): install its package there first; "
                        "nothing was changed"
                    )
        if found is None:
            _execute_one(
                self._conn, f"CREATE EXTENSION IF NOT EXISTS {_q(name)} WITH SCHEMA {_q(schema)}"
            )
        elif found[0] != schema:
            _execute_one(self._conn, f"ALTER EXTENSION {_q(name)} SET SCHEMA {_q(schema)}")

    def row_count(self, table: TableSpec) -> int:
        self.end_copy()
        with self._conn.cursor() as cur:
            cur.execute(f"SELECT count(*) FROM ONLY {self._table(table)}".encode())
            row = cur.fetchone()
        return int(row[0]) if row else 0

    def swap(self) -> None:
        """Drop the old schemas and commit: the restored ones replace them at once.

        A schema that existed keeps its owner, privileges and comment. Foreign keys from
        outside into the restored tables are re-created against them (and checked).
        """
        self.end_copy()
        self.begin(None)
        conn = self._conn
        for name, meta in self._kept_meta.items():
            for statement in meta_statements(name, meta):
                _execute_one(conn, statement)
        self._meta.apply()
        for key in self._outside_keys:
            _execute_one(conn, f"ALTER TABLE {key.table} DROP CONSTRAINT {_q(key.name)}")
        for old in self._renamed.values():
            _execute_one(conn, f"DROP SCHEMA {_q(old)} CASCADE")
        for key in self._outside_keys:
            _execute_one(
                conn, f"ALTER TABLE {key.table} ADD CONSTRAINT {_q(key.name)} {key.definition}"
            )
        conn.commit()
        self.swapped = True


def _bare(schema: str, name: str) -> str:
    """A relation's own name from its record's (:func:`display_name`)."""
    prefix = f"{schema}."
    return name[len(prefix) :] if schema != "public" and name.startswith(prefix) else name


@contextmanager
def _open_backup(engine: Engine, scope: BackupScope) -> Iterator[PostgreSQLBackupReader]:
    with ExitStack() as stack:
        conn = stack.enter_context(_transaction_connection(engine, read_only=True))

        def second() -> psycopg.Connection[Any]:
            return stack.enter_context(_transaction_connection(engine, read_only=True))

        reader = PostgreSQLBackupReader(conn, second, scope)
        try:
            yield reader
        finally:
            reader.close_streams()


@contextmanager
def _open_restore(
    engine: Engine, label: str, options: RestoreOptions | None
) -> Iterator[PostgreSQLRestoreWriter]:
    if not isinstance(label, str) or not _LABEL.match(label):
        raise ValueError(f"restore label {label!r} must be 1-40 letters, digits or underscores")
    with _transaction_connection(engine, read_only=False) as conn:
        # Leaving without swap() rolls back: nothing of the restore was ever committed.
        writer = PostgreSQLRestoreWriter(conn, label, options)
        try:
            yield writer
        except BaseException as exc:
            with suppress(Exception):
                writer.end_copy(exc)
            raise
        writer.end_copy()  # a COPY the server refuses raises here, not silently
