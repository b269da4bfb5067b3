"""MySQL and MariaDB.

Tested against MariaDB 10.11 only. Known MySQL 8 differences (untested here):

- ``JSON`` is a binary type on MySQL 8: it is read as its normalised text and parsed again on
  load (same value, not necessarily the same text); on MariaDB it is LONGTEXT and kept exactly.
- MySQL 8 writes version comments (``/*!80016 NOT ENFORCED */``, ``/*!50100 PARTITION ...*/``)
  into SHOW CREATE output; the restore inlines their contents before checking and executing
  them (see :func:`_inline_version_comments`), whatever the version number says.
- ``check_constraint_checks`` exists only on MariaDB; MySQL 8 enforces CHECK constraints while
  the rows are loaded (rows that satisfied them at backup time satisfy them again).
- Administration and locking: GET_LOCK and information_schema behave the same.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import logging
import math
import re
import time
from collections.abc import Generator, Iterator, Sequence
from contextlib import ExitStack, contextmanager, suppress
from decimal import Decimal
from itertools import pairwise
from typing import Any, ClassVar, cast

import pymysql.cursors
import pymysql.err
from sqlalchemy import text
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.exc import DBAPIError

from ...dump.model import BackupScope, ColumnSpec, ObjectSpec, RestoreOptions, TableSpec
from ...errors import MigrationLockTimeout, RowsNotRendered, ZenMigrateError
from ..base import (
    QUERY_SENT,
    BackupReader,
    DialectOps,
    RestoreWriter,
    decode_base64_column,
    pipelined_ranges,
)
from ..text_rows import BULK_CODECS, bulk_text
from .grants import (
    ROUTINE_KINDS,
    RoutineGrant,
    grant_sql_mode,
    kept_grants,
    read_routine_grants,
)
from .load import BulkLoader, load_statement
from .statements import (
    DROP_KINDS,
    LOAD_SQL_MODE,
    _prepare,
    _scan,
    _significant,
    _unquote,
    check_object_statement,
    check_table_statement,
)
from .wire import read_result, send_query, single_column

logger = logging.getLogger(__name__)

ER_BAD_DB_ERROR = 1049  # "Unknown database"
ER_UNKNOWN_SYSTEM_VARIABLE = 1193
CLIENT_MULTI_STATEMENTS = 1 << 16  # pymysql.constants.CLIENT.MULTI_STATEMENTS

# -- value codecs by information_schema.COLUMNS.DATA_TYPE ------------------------------------
_INTEGER_TYPES = ("tinyint", "smallint", "mediumint", "int", "integer", "bigint", "year")
_STRING_TYPES = ("char", "varchar", "tinytext", "text", "mediumtext", "longtext", "enum", "set")
# MariaDB's UUID/INET types come back as their text and are parsed again on load.
_TEXT_LIKE_TYPES = ("json", "uuid", "inet4", "inet6")
_BYTES_TYPES = ("binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob", "bit")
# Geometry values are read in the server's internal form (4-byte SRID + WKB) and written back
# as that binary string; the server accepts it as is (CHECKSUM TABLE identical, tested).
_GEOMETRY_TYPES = (
    "geometry", "point", "linestring", "polygon", "multipoint", "multilinestring",
    "multipolygon", "geometrycollection", "geomcollection",
)  # fmt: skip
_CODEC_BY_TYPE: dict[str, str] = {
    **dict.fromkeys(_INTEGER_TYPES + _STRING_TYPES + _TEXT_LIKE_TYPES, "native"),
    **dict.fromkeys(_BYTES_TYPES + _GEOMETRY_TYPES, "bytes"),
    "decimal": "decimal",
    "numeric": "decimal",
    "float": "float",
    "double": "float",
    "real": "float",
    "date": "date",
    "datetime": "datetime",
    "timestamp": "datetime",
    "time": "text",
}

# Server-side rendering of a value as the JSON its codec writes (see rendered_rows).
# Each is the cheapest form measured on MariaDB 10.11 (1M rows): DATE() 'T' TIME() costs about
# half of DATE_FORMAT; TO_BASE64 breaks lines only after 57 input bytes, so shorter values skip
# the REPLACE.
_QUOTED = "CONCAT('\"', {c}, '\"')"
_ISO_DATETIME = "CONCAT('\"', DATE({c}), 'T', TIME({c}), '{zeros}\"')"
_BASE64 = (
    "CONCAT('\"', IF(LENGTH({c}) <= 57, TO_BASE64({c}), REPLACE(TO_BASE64({c}), '\n', '')), '\"')"
)
# Character sets in which the server sends a utf8mb4 result unconverted.
_UNCONVERTED_RESULTS = (None, "utf8mb4", "binary")


def _data_type(column_type: str) -> str:
    """DATA_TYPE from a COLUMN_TYPE ("decimal(12,4) unsigned" -> "decimal")."""
    return column_type.split("(")[0].split(" ")[0].lower()


def _render(column_type: str, charset: str | None, nullable: bool) -> tuple[str, int] | None:
    """SQL rendering column ``{c}`` as its codec's JSON value, with the most bytes of output
    per stored byte; None for types whose text differs from what the codec writes.

    Strings go through JSON_QUOTE in utf8mb4 (what the driver decodes them to); integers as
    they are, or through "+ 0" where their text is no JSON number (ZEROFILL, YEAR); dates and
    decimals as their text, DATETIME/TIMESTAMP as Python's isoformat(timespec="microseconds").
    """
    lowered = column_type.lower()
    data_type = _data_type(column_type)
    factor = 1
    if data_type in _INTEGER_TYPES:
        expr = "{c} + 0" if data_type == "year" or "zerofill" in lowered else "{c}"
    elif data_type in _STRING_TYPES or data_type == "json":
        source = "{c}" if charset == "utf8mb4" else "CONVERT({c} USING utf8mb4)"
        expr, factor = f"JSON_QUOTE({source})", 6
    elif data_type in _BYTES_TYPES and data_type != "bit":
        expr, factor = _BASE64, 2
    elif data_type in ("decimal", "numeric", "date"):
        expr = _QUOTED
    elif data_type in ("datetime", "timestamp"):
        # TIME() shows the column's own fractional digits; isoformat always has six.
        digits = int(lowered.partition("(")[2].partition(")")[0] or 0)
        expr = _ISO_DATETIME.replace("{zeros}", ("" if digits else ".") + "0" * (6 - digits))
    elif data_type == "time":
        expr, factor = "JSON_QUOTE(CAST({c} AS CHAR))", 6
    else:
        return None
    return (f"IFNULL({expr}, 'null')" if nullable else expr), factor


_UNBOUNDED_TYPES = frozenset(("mediumtext", "longtext", "json", "mediumblob", "longblob"))
# A rendered row must fit one protocol packet (what mysql_wire reads), with its length prefix.
_ONE_PACKET = 0xFFFFFF - 8

# Session of the backup: UTC so TIMESTAMP values are read as stored; no ANSI_QUOTES so
# SHOW CREATE quotes with backticks.
_BACKUP_SQL_MODE = "NO_ENGINE_SUBSTITUTION"
# Tables of at least two ranges of this many bytes (DATA_LENGTH, InnoDB's estimate, off-page
# BLOBs included) are rendered on _RENDER_SESSIONS sessions in turn, a key range at a time.
# Backups of 1M mixed rows / 50,000 rows of 20 KiB BLOB+TEXT, on two cores: 2.3-2.7 s /
# 12-13 s with ranges of 2 MiB, 2.1-2.2 s / 10.2-10.4 s with 8 MiB, 2.3 s / 9.8-10.1 s
# with 16 MiB (a query per range costs the server more than the rows of a small one).
_RANGE_BYTES = 8 * 1024 * 1024
# Sessions rendering those tables. A whole backup of 1M rows on two cores, medians of six:
# 3.22 s with two, 2.88 s with three; four were no better than three.
_RENDER_SESSIONS = 3
# Seconds the backup waits for writers to let it lock those tables while its sessions
# start their snapshots; past that it renders on one session.
_SNAPSHOT_LOCK_WAIT = 1
# Keep one INSERT well below max_allowed_packet.
_MAX_INSERT_BYTES = 4 * 1024 * 1024
_LABEL = re.compile(r"[A-Za-z0-9_]{1,40}")


class MySQLOps(DialectOps):
    name: ClassVar[str] = "mysql"
    max_name_length: ClassVar[int] = 64

    def validate_database_name(self, name: str) -> str:
        super().validate_database_name(name)
        if name != name.rstrip(" "):
            raise ValueError(f"database name {name!r} ends with a space, which MySQL refuses")
        return name

    def database_exists(self, master: Engine, url: URL, name: str) -> bool:
        self.validate_database_name(name)
        with master.connect() as conn:
            found = conn.execute(
                text("SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = :n"),
                {"n": name},
            ).first()
        return found is not None

    def create_database(self, master: Engine, url: URL, name: str) -> None:
        self.validate_database_name(name)
        with master.connect() as conn:
            conn.exec_driver_sql(f"CREATE DATABASE IF NOT EXISTS {self.quote(master, name)}")
            conn.commit()

    def drop_database(self, master: Engine, url: URL, name: str) -> None:
        self.validate_database_name(name)
        with master.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {self.quote(master, name)}")
            conn.commit()

    def estimated_rows(self, connection: Connection) -> int | None:
        rows = connection.exec_driver_sql(
            "SELECT SUM(TABLE_ROWS) FROM information_schema.TABLES "
            "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_TYPE = 'BASE TABLE'"
        ).scalar()
        return int(rows) if rows is not None else None

    def is_missing_database_error(self, error: BaseException) -> bool:
        orig = getattr(error, "orig", error)
        args: tuple[Any, ...] = getattr(orig, "args", ())
        return bool(args) and args[0] == ER_BAD_DB_ERROR

    @contextmanager
    def migration_lock(self, engine: Engine, scope: str, timeout: float) -> Iterator[None]:
        # GET_LOCK names are server-wide, so the key includes the database name.
        key = "zenmigrate:" + self.lock_digest(engine, scope).hex()[:40]
        with engine.connect() as conn:
            got = conn.execute(
                text("SELECT GET_LOCK(:k, :t)"), {"k": key, "t": max(0, math.ceil(timeout))}
            ).scalar()
            if got != 1:
                raise MigrationLockTimeout(
                    f"could not take the migration lock of {engine.url.database!r} "
                    f"within {timeout:g}s: another migration is running"
                )
            try:
                yield
            finally:
                try:
                    conn.execute(text("SELECT RELEASE_LOCK(:k)"), {"k": key})
                    conn.rollback()
                except Exception as exc:
                    # The server ended the idle lock session (wait_timeout, KILL) and freed
                    # the lock with it; the work done under it must not fail for that.
                    if not getattr(exc, "connection_invalidated", False):
                        raise
                    logger.warning("lost the lock session of %r", engine.url.database)

    # -- backup and restore --------------------------------------------------------------------
    @contextmanager
    def open_backup(
        self, engine: Engine, scope: BackupScope | None = None
    ) -> Iterator[BackupReader]:
        self.refuse_scope(scope)
        database = self.database_name(engine.url)
        with ExitStack() as stack:
            session = stack.enter_context(_session(engine))
            helpers, shared = _start_snapshots(engine, stack, session, database)
            yield _MySQLBackupReader(session, database, helpers, shared)

    @contextmanager
    def open_restore(
        self, engine: Engine, label: str, options: RestoreOptions | None = None
    ) -> Iterator[RestoreWriter]:
        if not _LABEL.fullmatch(label):
            raise ValueError(f"restore label {label!r} must match {_LABEL.pattern}")
        target = self.database_name(engine.url)
        staging = _side_name("zmstage", label, target)
        trash = _side_name("zmtrash", label, target)
        writer: _MySQLRestoreWriter | None = None
        try:
            with _session(engine) as session:
                writer = _MySQLRestoreWriter(session, target, staging, trash)
                try:
                    writer.start(engine)
                    yield writer
                finally:
                    writer.close()
        finally:
            # Only what this restore created, on a fresh connection: the restore's own may be
            # the thing that broke.
            if writer is not None and writer.created:
                _drop_side_databases(engine, *writer.created)
        if writer is not None and writer.swapped:
            _drop_stale_side_databases(engine, target)


def _side_name(kind: str, label: str, target: str) -> str:
    prefix = f"{kind}_{label}_"
    return (prefix + target[: 64 - len(prefix)]).rstrip(" ")


def _alive_lock(staging: str) -> str:
    """The lock a restore's session holds while it lives (GET_LOCK dies with the session)."""
    return "zenmigrate:alive:" + hashlib.sha256(staging.encode()).hexdigest()[:40]


def _drop_stale_side_databases(engine: Engine, target: str) -> None:
    """Drop what restores of ``target`` killed before their cleanup left behind.

    Called once the target holds a complete restore, so a dead restore's staging database
    and trash (even the previous tables parked in it) are obsolete. Dead means its session's
    lock is free; a running restore or copy still holds it. Failures are only logged.
    """
    try:
        with _session(engine) as s:
            for (name,) in s.query(
                "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA "
                "WHERE SCHEMA_NAME LIKE %s OR SCHEMA_NAME LIKE %s",
                ("zmstage\\_%", "zmtrash\\_%"),
            ):
                kind, _, rest = name.partition("_")
                labels = [rest[:i] for i, char in enumerate(rest) if char == "_"]
                label = next((x for x in labels if _side_name(kind, x, target) == name), None)
                if label is None:
                    continue  # another target's
                lock = _alive_lock(_side_name("zmstage", label, target))
                if s.scalar("SELECT IS_FREE_LOCK(%s)", (lock,)) != 1:
                    continue  # its restore is running
                logger.warning("dropping %s, left by a restore of %s that died", name, target)
                _drop_side_database(s, name)
    except Exception as exc:  # noqa: BLE001 - the restore itself succeeded
        logger.warning("could not remove what dead restores of %s left: %s", target, exc)


# -- connections ----------------------------------------------------------------------------
class _Session:
    """One DBAPI (pymysql) connection, detached from the pool so its settings never leak.

    Our own statements always go through the driver's ``%s`` formatting (with no arguments,
    ``%%`` becomes ``%``): that is what SQLAlchemy's identifier preparer quotes for, doubling
    ``%`` in names. Statements taken from a dump are sent as they are (:meth:`execute_dump`).
    """

    def __init__(self, dbapi: Any, engine: Engine) -> None:
        self.dbapi = dbapi
        self.preparer = engine.dialect.identifier_preparer

    def q(self, name: str) -> str:
        return cast(str, self.preparer.quote_identifier(name))

    def execute(self, sql: str, args: Sequence[Any] = ()) -> None:
        with self.dbapi.cursor() as cur:
            cur.execute(sql, tuple(args))

    def execute_dump(self, sql: str) -> None:
        with self.dbapi.cursor() as cur:
            cur.execute(sql)  # no arguments: pymysql does not touch a % in it

    def query(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self.dbapi.cursor() as cur:
            cur.execute(sql, tuple(args))
            return list(cur.fetchall())

    def scalar(self, sql: str, args: Sequence[Any] = ()) -> Any:
        rows = self.query(sql, args)
        return rows[0][0] if rows else None


@contextmanager
def _session(engine: Engine) -> Iterator[_Session]:
    raw = engine.raw_connection()
    raw.detach()
    try:
        yield _Session(raw.dbapi_connection, engine)
    finally:
        with suppress(Exception):
            raw.rollback()
        raw.close()


def _drop_side_databases(engine: Engine, *names: str) -> None:
    with _session(engine) as session:
        for name in names:
            if session.scalar(
                "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s "
                "AND TABLE_TYPE <> 'VIEW'",
                (name,),
            ) and name.startswith("zmtrash_"):  # the trash
                # Old tables are still parked here (a swap failed and could not put them
                # back): keep them so nothing is lost, and say where they are.
                logger.error("database %s holds the target's previous tables; kept", name)
                continue
            _drop_side_database(session, name)


def _drop_side_database(s: _Session, name: str) -> None:
    """Drop a staging or trash database, its routines first: their DROP revokes the grants
    a swap's rehearsal gave on them (see mysql_grants), which DROP DATABASE would leave."""
    for kind, routine in s.query(
        "SELECT ROUTINE_TYPE, ROUTINE_NAME FROM information_schema.ROUTINES "
        "WHERE ROUTINE_SCHEMA = %s",
        (name,),
    ):
        if kind in ROUTINE_KINDS:
            s.execute(f"DROP {kind} IF EXISTS {s.q(name)}.{s.q(routine)}")
    s.execute("SET SESSION FOREIGN_KEY_CHECKS = 0")
    s.execute(f"DROP DATABASE IF EXISTS {s.q(name)}")


# -- reading ----------------------------------------------------------------------------------
def _prepare_snapshot(session: _Session, database: str) -> None:
    session.execute(f"USE {session.q(database)}")
    session.execute("SET SESSION time_zone = '+00:00'")
    session.execute(f"SET SESSION sql_mode = '{_BACKUP_SQL_MODE}'")
    # The engine may take a while with each chunk (compressing, uploading).
    session.execute("SET SESSION net_write_timeout = 3600")
    session.execute("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")


def _begin_snapshot(session: _Session) -> None:
    # DDL is not transactional: a table altered during the backup can still tear it;
    # InnoDB reports "table definition has changed" rather than returning mixed rows.
    session.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")


def _start_snapshots(
    engine: Engine, stack: ExitStack, first: _Session, database: str
) -> tuple[tuple[_Session, ...], dict[str, int]]:
    """Start ``first``'s snapshot and, where the database has tables worth rendering on
    several sessions, ``_RENDER_SESSIONS - 1`` more sessions' in the same state of those
    tables.

    MariaDB cannot hand a snapshot to another session, so one more session holds the tables
    with ``LOCK TABLES ... READ`` while they all start: no change to them can commit in
    between. That takes the privilege mysqldump's own locking takes, and holds writers of
    those tables back for the few milliseconds it lasts. Returns the helper sessions and the
    tables (their DATA_LENGTH), or ``((), {})``: no such table, no privilege, no
    connection, or a writer still holding the tables after :data:`_SNAPSHOT_LOCK_WAIT` s.
    """
    _prepare_snapshot(first, database)
    sizes = {
        str(name): int(size)
        for name, size in first.query(
            "SELECT TABLE_NAME, DATA_LENGTH FROM information_schema.TABLES "
            "WHERE TABLE_SCHEMA = %s AND TABLE_TYPE = 'BASE TABLE' AND ENGINE = 'InnoDB' "
            "AND DATA_LENGTH >= %s",
            (database, 2 * _RANGE_BYTES),
        )
    }
    begun = False
    if sizes:
        try:
            with _session(engine) as locker:
                locker.dbapi.autocommit(True)  # no InnoDB table locks: only the tables' MDL
                locker.execute(f"SET SESSION lock_wait_timeout = {_SNAPSHOT_LOCK_WAIT}")
                locker.execute(
                    "LOCK TABLES "
                    + ", ".join(f"{locker.q(database)}.{locker.q(n)} READ" for n in sorted(sizes))
                )
                _begin_snapshot(first)
                begun = True
                helpers = []
                for _ in range(_RENDER_SESSIONS - 1):
                    helper = stack.enter_context(_session(engine))
                    _prepare_snapshot(helper, database)
                    _begin_snapshot(helper)
                    helpers.append(helper)
                locker.execute("UNLOCK TABLES")
            return tuple(helpers), sizes
        except (pymysql.err.MySQLError, DBAPIError) as exc:
            logger.info("rendering on one session: no other one in the snapshot (%s)", exc)
    if not begun:
        _begin_snapshot(first)
    return (), {}


class _MySQLBackupReader(BackupReader):
    """One snapshot transaction (on ``session``); tables in ``shared`` are in the same
    snapshot on the ``helpers`` too, and large ones are rendered on all of them in turn."""

    def __init__(
        self,
        session: _Session,
        database: str,
        helpers: tuple[_Session, ...],
        shared: dict[str, int],
    ) -> None:
        self.s = session
        self.database = database
        self.helpers = helpers
        #: DATA_LENGTH of the tables the ``helpers`` see as ``session`` does (each of at
        #: least two ranges: _start_snapshots takes no other).
        self.shared = shared
        version, max_packet, results_charset = session.query(
            "SELECT VERSION(), @@max_allowed_packet, @@character_set_results"
        )[0]
        self.server_version = str(version)
        self.max_packet = int(max_packet)
        self.results_charset: str | None = results_charset
        #: (CHARACTER_OCTET_LENGTH, CHARACTER_SET_NAME, nullable) by (table, column).
        self._columns: dict[tuple[str, str], tuple[int | None, str | None, bool]] = {}

    def tables(self) -> list[TableSpec]:
        s = self.s
        kinds = s.query(
            "SELECT TABLE_NAME, TABLE_TYPE FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s",
            (self.database,),
        )
        unsupported = sorted(f"{n} ({k})" for n, k in kinds if k not in ("BASE TABLE", "VIEW"))
        if unsupported:
            raise ZenMigrateError(
                "cannot back up these tables faithfully: " + ", ".join(unsupported)
            )
        names = sorted(n for n, k in kinds if k == "BASE TABLE")
        columns: dict[str, list[ColumnSpec]] = {n: [] for n in names}
        generated: dict[str, set[str]] = {n: set() for n in names}
        for table, column, data_type, column_type, extra, octets, charset, nullable in s.query(
            "SELECT TABLE_NAME, COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, EXTRA, "
            "CHARACTER_OCTET_LENGTH, CHARACTER_SET_NAME, IS_NULLABLE "
            "FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s "
            "ORDER BY TABLE_NAME, ORDINAL_POSITION",
            (self.database,),
        ):
            if table not in columns:
                continue
            self._columns[(table, column)] = (
                int(octets) if octets is not None else None,
                charset,
                nullable != "NO",
            )
            if re.search(r"\b(VIRTUAL|STORED|PERSISTENT) GENERATED\b", extra or "", re.I):
                generated[table].add(column)  # recomputed by the server on load
                continue
            codec = _CODEC_BY_TYPE.get(data_type.lower())
            if codec is None:
                raise ZenMigrateError(
                    f"table {table!r} column {column!r}: type {column_type} is not supported"
                )
            columns[table].append(ColumnSpec(name=column, codec=codec, type=column_type))
        keys = self._keys(generated)
        specs = []
        for name in names:
            create = s.query(f"SHOW CREATE TABLE {s.q(name)}")[0][1]
            specs.append(
                TableSpec(
                    name=name,
                    create_stmt=create,
                    columns=tuple(columns[name]),
                    key=keys.get(name, ()),
                )
            )
        return specs

    def _keys(self, generated: dict[str, set[str]]) -> dict[str, tuple[str, ...]]:
        """Primary key, else the first unique key whose columns are all NOT NULL."""
        indexes: dict[str, dict[str, list[tuple[str, str]]]] = {}
        for table, index, column, non_unique, nullable in self.s.query(
            "SELECT TABLE_NAME, INDEX_NAME, COLUMN_NAME, NON_UNIQUE, NULLABLE "
            "FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = %s "
            "ORDER BY TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX",
            (self.database,),
        ):
            if int(non_unique) == 0:
                indexes.setdefault(table, {}).setdefault(index, []).append((column, nullable))
        keys: dict[str, tuple[str, ...]] = {}
        for table, by_name in indexes.items():
            for index in sorted(by_name, key=lambda n: (n != "PRIMARY", n)):
                cols = by_name[index]
                if all(not nullable and c not in generated.get(table, ()) for c, nullable in cols):
                    keys[table] = tuple(c for c, _ in cols)
                    break
        return keys

    def rows(self, table: TableSpec, chunk_rows: int) -> Iterator[list[tuple[Any, ...]]]:
        if chunk_rows < 1:
            raise ValueError("chunk_rows must be at least 1")
        s = self.s
        exprs = []
        for column in table.columns:
            name = s.q(column.name)
            data_type = _data_type(column.type)
            if data_type == "float":
                exprs.append(f"({name} + 0e0)")  # FLOAT's own text has 6 digits; as DOUBLE: exact
            elif data_type == "time":
                exprs.append(f"CAST({name} AS CHAR)")  # '-838:59:59.000000', not a timedelta
            else:
                exprs.append(name)
        if not exprs:
            return
        sql = f"SELECT {', '.join(exprs)} FROM {s.q(table.name)}"
        if table.key:
            sql += " ORDER BY " + ", ".join(s.q(c) for c in table.key)
        cursor = s.dbapi.cursor(pymysql.cursors.SSCursor)
        try:
            cursor.execute(sql, ())
            while True:
                chunk = cursor.fetchmany(chunk_rows)
                if not chunk:
                    break
                yield [tuple(row) for row in chunk]
        finally:
            cursor.close()

    def rendered_rows(
        self, table: TableSpec, chunk_rows: int
    ) -> Generator[tuple[int, bytes], None, None] | None:
        """Rows rendered by the server with CONCAT, one JSON object per row.

        Not for tables with FLOAT/DOUBLE (the server's shortest text is not Python's),
        BIT, spatial or MariaDB's UUID/INET types. A row longer than max_allowed_packet
        renders as NULL: a table with a key stops there (RowsNotRendered) and the engine
        reads the rest with rows(); one without a key and with unbounded columns is measured
        first (a scan) and read with rows() if a row could be that long.
        """
        s = self.s
        parts: list[str] = []
        names: list[str] = []
        bound = 64
        long_columns: list[tuple[str, int]] = []
        for column in table.columns:
            data_type = _data_type(column.type)
            octets, charset, nullable = self._columns.get(
                (table.name, column.name), (None, None, True)
            )
            render = _render(column.type, charset, nullable)
            if render is None:
                return None
            expr, factor = render
            names.append(
                ("," if names else "{") + json.dumps(column.name, ensure_ascii=False) + ":"
            )
            parts.append(expr.format(c=s.q(column.name)))
            bound += 32 + len(names[-1]) * 6
            if data_type in _UNBOUNDED_TYPES or octets is None and factor > 1:
                long_columns.append((column.name, factor))  # measured below if no key
            else:
                bound += factor * (octets or 32)
        if not parts:
            return None
        if long_columns and not table.key:
            lengths = s.query(
                "SELECT "
                + ", ".join(f"COALESCE(MAX(LENGTH({s.q(n)})), 0)" for n, _ in long_columns)
                + f" FROM {s.q(table.name)}"
            )[0]
            bound += sum(f * int(n) for (_, f), n in zip(long_columns, lengths, strict=True))
        if bound >= min(self.max_packet, _ONE_PACKET):
            return None
        return self._rendered(table, names, parts, chunk_rows)

    def _rendered(
        self, table: TableSpec, names: list[str], parts: list[str], chunk_rows: int
    ) -> Generator[tuple[int, bytes], None, None]:
        s = self.s
        # Column names go in as parameters; the expressions' own % are doubled for them.
        concat = ", ".join(f"%s, {part}" for part in parts)
        row = f"CONCAT({concat}, '}}')"
        if self.results_charset not in _UNCONVERTED_RESULTS:
            # The dump is UTF-8 whatever the session's result character set; the cast stops
            # the server converting (it costs about 13% of the rendering, hence only here).
            row = f"CAST(CONVERT({row} USING utf8mb4) AS BINARY)"
        select = f"SELECT {row} FROM {s.q(table.name)}"
        order = " ORDER BY " + ", ".join(s.q(c) for c in table.key) if table.key else ""
        ranges = self._key_ranges(table)
        if not self.helpers or len(ranges) < 2:
            return _rendered_stream(s, select + order, names, table.name, chunk_rows)
        sessions = (s, *self.helpers)
        logger.debug(
            "table %s: rendered on %d sessions, %d key ranges",
            table.name,
            len(sessions),
            len(ranges),
        )

        def open_range(i: int) -> Generator[tuple[int, bytes], None, None]:
            session = sessions[i % len(sessions)]
            sql = select + ranges[i] + order
            return _rendered_stream(session, sql, names, table.name, chunk_rows, key_range=True)

        return pipelined_ranges(open_range, len(ranges), ahead=len(sessions) - 1)

    def _key_ranges(self, table: TableSpec) -> list[str]:
        """WHERE clauses splitting a table all sessions see into ranges of its integer key
        of about :data:`_RANGE_BYTES` each (the first and last open-ended); one, empty, for
        a table that is not split."""
        size = self.shared.get(table.name)
        if size is None or len(table.key) != 1:
            return [""]
        key = table.key[0]
        column = next((c for c in table.columns if c.name == key), None)
        if column is None or _data_type(column.type) not in _INTEGER_TYPES:
            return [""]
        name = self.s.q(key)
        bounds = self.s.query(f"SELECT MIN({name}), MAX({name}) FROM {self.s.q(table.name)}")[0]
        if bounds[0] is None:
            return [""]
        low, high = int(bounds[0]), int(bounds[1])
        count = min(size // _RANGE_BYTES, high - low + 1)
        step = -(-(high - low + 1) // count)
        cuts = [low + step * i for i in range(1, count) if low + step * i <= high]
        if not cuts:
            return [""]
        return [
            f" WHERE {name} < {cuts[0]}",
            *(f" WHERE {name} >= {a} AND {name} < {b}" for a, b in pairwise(cuts)),
            f" WHERE {name} >= {cuts[-1]}",
        ]

    def objects(self) -> list[ObjectSpec]:
        return _collect_objects(self.s, self.database)


def _rendered_stream(
    session: _Session,
    sql: str,
    names: list[str],
    table: str,
    chunk_rows: int,
    key_range: bool = False,
) -> Generator[Any, None, None]:
    """(rows, their JSON objects joined by commas) of a rendering query. A row the server
    could not render (NULL) raises RowsNotRendered once the result is read to its end, so the
    session goes on. A ``key_range`` yields QUERY_SENT first, once its query is sent, and closed
    early it is read to its end (its session renders the next range); a whole table closed
    early has its connection dropped (its rest could take long to read)."""
    cursor = session.dbapi.cursor(pymysql.cursors.SSCursor)
    batches = None
    sent = False
    try:
        if key_range:
            send_query(cursor, sql, tuple(names))
            sent = True
            yield QUERY_SENT
            sent = False
            read_result(cursor)
        else:
            cursor.execute(sql, tuple(names))
        batches = single_column(cursor, chunk_rows)
        for rows in batches:
            if None in rows:  # too long for max_allowed_packet
                for _ in batches:  # the snapshot's session goes on
                    pass
                raise RowsNotRendered(table)
            yield len(rows), b",".join(cast(list[bytes], rows))
    finally:
        if sent:  # closed before its result was read: read it to its end
            with suppress(pymysql.err.MySQLError):
                read_result(cursor)
                batches = single_column(cursor, chunk_rows)
        if batches is not None:
            if key_range:
                with suppress(pymysql.err.MySQLError):
                    for _ in batches:
                        pass
            batches.close()  # stopped early, it closes the connection
        cursor.close()


def _settings_comment(**settings: str) -> str:
    body = " ".join(f"{k}='{v}'" for k, v in settings.items())
    return f"/* zenmigrate: {body} */\n"


def _collect_objects(s: _Session, database: str) -> list[ObjectSpec]:
    """Routines, views, triggers and events of ``database`` in creation order.

    The session's default database must be ``database`` so SHOW CREATE VIEW leaves the
    references to its own tables unqualified. Routines come first (a view may call a
    function; a routine body is not resolved when it is created), then views (a view on a
    view after the one it reads), then triggers in their action order, then events.
    """
    out: list[ObjectSpec] = []
    for name, kind in sorted(
        s.query(
            "SELECT ROUTINE_NAME, ROUTINE_TYPE FROM information_schema.ROUTINES "
            "WHERE ROUTINE_SCHEMA = %s",
            (database,),
        ),
        key=lambda r: (r[1] != "FUNCTION", r[0]),
    ):
        if kind not in ("PROCEDURE", "FUNCTION"):
            raise ZenMigrateError(f"cannot back up {kind} {name!r} (not supported)")
        row = s.query(f"SHOW CREATE {kind} {s.q(name)}")[0]
        if row[2] is None:
            raise ZenMigrateError(f"no privilege to read the definition of {kind} {name!r}")
        stmt = _settings_comment(sql_mode=row[1]) + row[2]
        out.append(ObjectSpec(object_type=kind.lower(), name=name, create_stmt=stmt))
    views = {}
    for (name,) in s.query(
        "SELECT TABLE_NAME FROM information_schema.VIEWS WHERE TABLE_SCHEMA = %s", (database,)
    ):
        views[name] = s.query(f"SHOW CREATE VIEW {s.q(name)}")[0][1]
    for name in _view_order(views):
        out.append(ObjectSpec(object_type="view", name=name, create_stmt=views[name]))
    for name, table in s.query(
        "SELECT TRIGGER_NAME, EVENT_OBJECT_TABLE FROM information_schema.TRIGGERS "
        "WHERE TRIGGER_SCHEMA = %s ORDER BY EVENT_OBJECT_TABLE, ACTION_TIMING, "
        "EVENT_MANIPULATION, ACTION_ORDER, TRIGGER_NAME",
        (database,),
    ):
        row = s.query(f"SHOW CREATE TRIGGER {s.q(name)}")[0]
        stmt = _settings_comment(sql_mode=row[1]) + row[2]
        out.append(ObjectSpec(object_type="trigger", name=name, create_stmt=stmt, table=table))
    for (name,) in s.query(
        "SELECT EVENT_NAME FROM information_schema.EVENTS WHERE EVENT_SCHEMA = %s "
        "ORDER BY EVENT_NAME",
        (database,),
    ):
        row = s.query(f"SHOW CREATE EVENT {s.q(name)}")[0]
        stmt = _settings_comment(sql_mode=row[1], time_zone=row[2]) + row[3]
        out.append(ObjectSpec(object_type="event", name=name, create_stmt=stmt))
    return out


def _view_order(views: dict[str, str]) -> list[str]:
    """Views after the views they name; otherwise by name."""
    needs: dict[str, set[str]] = {}
    for name, stmt in views.items():
        body = re.split(r"\bAS\b", stmt, maxsplit=1, flags=re.I)[-1]
        named = {_unquote(t) for k, t in _significant(_scan(body)) if k in ("backtick", "word")}
        needs[name] = {v for v in views if v != name and v in named}
    ready = [n for n, deps in needs.items() if not deps]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        name = heapq.heappop(ready)
        order.append(name)
        for other, deps in needs.items():
            if name in deps:
                deps.discard(name)
                if not deps:
                    heapq.heappush(ready, other)
    # A name that only looked like a reference (a column alias) can make a false cycle.
    order += sorted(set(views) - set(order))
    return order


# -- writing ----------------------------------------------------------------------------------
def _plain_decimals(row: tuple[Any, ...], indexes: list[int]) -> tuple[Any, ...]:
    values = list(row)
    for i in indexes:
        if isinstance(values[i], Decimal):
            values[i] = format(values[i], "f")
    return tuple(values)


def _object_settings(settings: dict[str, str]) -> tuple[str, str]:
    """The sql_mode and time_zone an object is created with: its own from the dump, else the
    restore session's (what the object would have got from a plain CREATE in it)."""
    return settings.get("sql_mode", LOAD_SQL_MODE), settings.get("time_zone", "+00:00")


# -- the swap as one statement (MariaDB) -----------------------------------------------------
_MARIADB_VERSION = re.compile(r"(\d+)\.(\d+)\.(\d+)-MariaDB", re.IGNORECASE)
ER_NO_SUCH_THREAD = 1094
# A metadata lock the block waits for: ER_LOCK_WAIT_TIMEOUT, ER_LOCK_DEADLOCK.
_LOCK_WAIT_ERRORS = "1205, 1213"


def _runs_swap_block(server_version: str) -> bool:
    """Whether the server (its handshake version string) runs the swap as one anonymous block.

    MariaDB has ``BEGIN NOT ATOMIC`` since 10.1.1 and ``EXECUTE IMMEDIATE`` since 10.2.3
    (tested on 10.11 only); MySQL has neither, so it keeps the swap driven by the client.
    """
    match = _MARIADB_VERSION.search(server_version)
    return match is not None and tuple(map(int, match.groups())) >= (10, 2, 3)


def _as_sent(statement: str) -> str:
    """One of our statements as the server receives it from :meth:`_Session.execute`: the
    driver's %-formatting (no arguments) turns the ``%%`` of quoted names back into ``%``.
    Needed where the statement travels as data instead."""
    return statement % ()


def _swap_block(with_settings: Sequence[bool]) -> str:
    """The anonymous block that runs the swap's statements as one server statement.

    Statement ``i`` is read from ``@zm_swap_s<i>``; where ``with_settings[i]``, the session
    first takes the sql_mode and time_zone in ``@zm_swap_m<i>`` / ``@zm_swap_z<i>``. The
    block names no object and holds no text from the dump, which reaches the server as data
    only. A server finishes a statement whose client died, but it gives up a metadata lock
    wait about a second after noticing the client is gone, which would stop the block half
    way (objects dropped, tables not renamed): a statement that fails on a lock wait is run
    again until the session's lock_wait_timeout, counted from the start of the block, is
    spent (UNIX_TIMESTAMP(SYSDATE()) does not depend on the time zones set in between).

    It is parsed in the restore session's sql_mode (:data:`LOAD_SQL_MODE`); the only sql_mode
    that would parse it differently is ORACLE. Its last statement restores the session's
    time_zone (which outlives the block; the sql_mode set inside it does not).
    """
    lines = [
        "BEGIN NOT ATOMIC",
        "DECLARE zm_again BOOL DEFAULT FALSE;",
        "DECLARE zm_until DECIMAL(20, 6)",
        "  DEFAULT UNIX_TIMESTAMP(SYSDATE(6)) + @@lock_wait_timeout;",
        f"DECLARE CONTINUE HANDLER FOR {_LOCK_WAIT_ERRORS}",
        "  IF UNIX_TIMESTAMP(SYSDATE(6)) < zm_until THEN SET zm_again = TRUE;",
        "  ELSE RESIGNAL; END IF;",
    ]
    for i, settings in enumerate(with_settings):
        if settings:
            lines.append(f"SET SESSION sql_mode = @zm_swap_m{i}, time_zone = @zm_swap_z{i};")
        lines.append(
            f"REPEAT SET zm_again = FALSE; EXECUTE IMMEDIATE @zm_swap_s{i}; UNTIL NOT zm_again "
            "END REPEAT;"
        )
    lines += [f"SET SESSION sql_mode = '{LOAD_SQL_MODE}', SESSION time_zone = '+00:00';", "END"]
    return "\n".join(lines)


def _end_session(s: _Session, thread_id: int, timeout: float = 60.0) -> None:
    """Stop whatever the server still runs on session ``thread_id`` and wait until it is gone.

    A client that lost its connection does not stop the server: the statement it sent last
    (the swap's block, retrying its lock waits) may still be running, and putting the target
    back beside it would race with it.
    """
    try:
        s.execute("KILL CONNECTION %s", (thread_id,))
    except pymysql.err.MySQLError as exc:
        if exc.args[0] != ER_NO_SUCH_THREAD:
            raise
    deadline = time.monotonic() + timeout
    alive = "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = %s"
    while s.scalar(alive, (thread_id,)):
        if time.monotonic() > deadline:
            raise ZenMigrateError(f"session {thread_id} of the failed swap does not end")
        time.sleep(0.05)


class _MySQLRestoreWriter(RestoreWriter):
    def __init__(self, session: _Session, target: str, staging: str, trash: str) -> None:
        self.s = session
        self.target, self.staging, self.trash = target, staging, trash
        self.objects: list[tuple[ObjectSpec, dict[str, str], str]] = []
        self.swapped = False
        #: Databases this restore created (and drops when it ends).
        self.created: list[str] = []
        #: LOAD DATA LOCAL on further connections, where the server allows it.
        self.bulk: BulkLoader | None = None
        #: Where a failed swap reconnects to put the target back (see :meth:`_recover`).
        self.engine: Engine | None = None
        #: The grants on the target's routines, read before the swap (see mysql_grants).
        self.grants: list[RoutineGrant] = []
        self._load_sql: dict[str, str] = {}

    def _load_settings(self) -> list[str]:
        """The loading sessions' settings (the last one exists on MariaDB only)."""
        q = self.s.q
        return [
            f"USE {q(self.staging)}",
            "SET SESSION time_zone = '+00:00'",
            f"SET SESSION sql_mode = '{LOAD_SQL_MODE}'",
            "SET SESSION FOREIGN_KEY_CHECKS = 0, UNIQUE_CHECKS = 0",
            "SET SESSION check_constraint_checks = 0",
        ]

    def settle(self) -> None:
        """Wait until every chunk handed to the bulk loader is in (raises its error)."""
        if self.bulk is not None:
            self.bulk.wait()

    def close(self) -> None:
        if self.bulk is not None:
            self.bulk.close()

    def start(self, engine: Engine) -> None:
        self.engine = engine
        s = self.s
        if s.dbapi.client_flag & CLIENT_MULTI_STATEMENTS:
            # Routine bodies are admitted with semicolons only because one call runs one
            # statement; with this flag a dump could append statements of its own.
            raise ZenMigrateError("restore refuses a connection with CLIENT.MULTI_STATEMENTS")
        row = s.query(
            "SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME "
            "FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s",
            (self.target,),
        )
        if not row:
            raise ZenMigrateError(f"target database {self.target!r} does not exist")
        self.charset, self.collation = row[0]
        # Marks the staging and trash databases as in use until this session ends.
        if s.scalar("SELECT GET_LOCK(%s, 0)", (_alive_lock(self.staging),)) != 1:
            raise ZenMigrateError(f"restore label of {self.staging!r} is already in use")
        s.dbapi.autocommit(True)
        s.execute(
            f"CREATE DATABASE {s.q(self.staging)} CHARACTER SET {s.q(self.charset)} "
            f"COLLATE {s.q(self.collation)}"
        )
        self.created.append(self.staging)
        settings = self._load_settings()
        for statement in settings[:-1]:
            s.execute(statement)
        try:  # MariaDB: rows are loaded as they were, CHECK constraints are not re-run
            s.execute(settings[-1])
        except pymysql.err.MySQLError as exc:  # MySQL has no such variable
            if exc.args[0] != ER_UNKNOWN_SYSTEM_VARIABLE:
                raise
        self.bulk = BulkLoader.open(engine, settings)
        packet = int(s.scalar("SELECT @@max_allowed_packet"))
        self.max_insert = max(64 * 1024, min(_MAX_INSERT_BYTES, packet - 64 * 1024))

    # -- loading ---------------------------------------------------------------------------
    def create_table(self, table: TableSpec) -> None:
        _settings, sql = check_table_statement(table)
        self.s.execute_dump(sql)

    def load_encoded(self, table: TableSpec, columns: list[Sequence[Any]]) -> None:
        codecs = [c.codec for c in table.columns]
        if self.bulk is None or not set(codecs) <= BULK_CODECS or len(columns) != len(codecs):
            super().load_encoded(table, columns)
            return
        if not columns[0]:
            return
        columns = list(columns)
        for i, codec in enumerate(codecs):
            if codec == "bytes":  # validated here: the server's FROM_BASE64 would only warn
                decode_base64_column(table, i, columns[i])
        data = bulk_text(table, columns)
        statement = self._load_sql.get(table.name)
        if statement is None:
            statement = load_statement(self.s.q, self.staging, table)
            self._load_sql[table.name] = statement
        self.bulk.submit(table, statement, data)

    def load_rows(self, table: TableSpec, rows: list[tuple[Any, ...]]) -> None:
        if not rows:
            return
        self.settle()
        s = self.s
        width = len(table.columns)
        if any(len(row) != width for row in rows):
            raise ZenMigrateError(f"table {table.name!r}: a row does not have {width} values")
        columns = ", ".join(s.q(c.name) for c in table.columns)
        placeholders = ", ".join(["%s"] * width)
        sql = (
            f"INSERT INTO {s.q(self.staging)}.{s.q(table.name)} ({columns}) VALUES ({placeholders})"
        )
        # pymysql writes a Decimal unquoted, and 1E-30 would be read as a DOUBLE: a string
        # in plain notation converts to DECIMAL exactly.
        decimals = [i for i, c in enumerate(table.columns) if c.codec == "decimal"]
        if decimals:
            rows = [_plain_decimals(row, decimals) for row in rows]
        with s.dbapi.cursor() as cur:
            # pymysql turns this into multi-row INSERTs of at most max_stmt_length bytes.
            cur.max_stmt_length = self.max_insert
            cur.executemany(sql, rows)

    def create_object(self, obj: ObjectSpec) -> None:
        self.settle()
        settings, sql = check_object_statement(obj)
        if obj.object_type == "index":  # moves with its table in the swap's RENAME TABLE
            self._create(settings, sql)
            return
        if obj.object_type != "event":  # an event could fire in staging
            # Rehearse in staging, so a definition that fails fails before the swap.
            self._create(settings, sql)
        self.objects.append((obj, settings, sql))

    def _create(self, settings: dict[str, str], sql: str) -> None:
        s = self.s
        sql_mode, time_zone = _object_settings(settings)
        s.execute("SET SESSION sql_mode = %s", (sql_mode,))
        s.execute("SET SESSION time_zone = %s", (time_zone,))
        try:
            s.execute_dump(sql)
        finally:
            s.execute(f"SET SESSION sql_mode = '{LOAD_SQL_MODE}'")
            s.execute("SET SESSION time_zone = '+00:00'")

    def row_count(self, table: TableSpec) -> int:
        self.settle()
        s = self.s
        return int(s.scalar(f"SELECT COUNT(*) FROM {s.q(self.staging)}.{s.q(table.name)}"))

    # -- swapping --------------------------------------------------------------------------
    def _table_names(self, database: str) -> list[str]:
        rows = self.s.query(
            "SELECT TABLE_NAME FROM information_schema.TABLES "
            "WHERE TABLE_SCHEMA = %s AND TABLE_TYPE <> 'VIEW' ORDER BY TABLE_NAME",
            (database,),
        )
        return [r[0] for r in rows]

    def _drop_statements(self, database: str) -> list[str]:
        """The DROP statements of every trigger, event, view and routine of ``database``."""
        s = self.s
        found = s.query(
            "SELECT 'trigger', TRIGGER_NAME FROM information_schema.TRIGGERS "
            "WHERE TRIGGER_SCHEMA = %s UNION ALL "
            "SELECT 'event', EVENT_NAME FROM information_schema.EVENTS "
            "WHERE EVENT_SCHEMA = %s UNION ALL "
            "SELECT 'view', TABLE_NAME FROM information_schema.VIEWS "
            "WHERE TABLE_SCHEMA = %s UNION ALL "
            "SELECT LOWER(ROUTINE_TYPE), ROUTINE_NAME FROM information_schema.ROUTINES "
            "WHERE ROUTINE_SCHEMA = %s",
            (database,) * 4,
        )
        statements = []
        for kind, name in found:
            keyword = DROP_KINDS.get(kind)
            if keyword is None:
                raise ZenMigrateError(f"cannot replace {kind} {name!r} in {database!r}")
            statements.append(f"DROP {keyword} IF EXISTS {s.q(database)}.{s.q(name)}")
        return statements

    def _drop_objects(self, database: str) -> None:
        """Drop every trigger, event, view and routine of ``database``."""
        for statement in self._drop_statements(database):
            self.s.execute(statement)

    def _rename_statement(self, moves: list[tuple[str, str, str]]) -> str:
        """One RENAME TABLE statement: MySQL applies all of its renames or none."""
        q = self.s.q
        pairs = (f"{q(src)}.{q(name)} TO {q(dst)}.{q(name)}" for src, name, dst in moves)
        return "RENAME TABLE " + ", ".join(pairs)

    def _rename(self, moves: list[tuple[str, str, str]]) -> None:
        """Run :meth:`_rename_statement` (RENAME TABLE needs at least one move)."""
        if moves:
            self.s.execute(self._rename_statement(moves))

    def _create_objects(self, objects: list[tuple[ObjectSpec, dict[str, str], str]]) -> None:
        self.s.execute(f"USE {self.s.q(self.target)}")
        try:
            for _obj, settings, sql in objects:
                self._create(settings, sql)
        finally:
            self.s.execute(f"USE {self.s.q(self.staging)}")

    def swap(self) -> None:
        """Replace the target's tables and objects with the staging ones.

        The tables move in one RENAME TABLE, which is atomic. Views, triggers, routines and
        events cannot move between databases (and RENAME TABLE refuses a table with
        triggers), so the target's are dropped just before the rename and the restored ones
        created just after it, each with its own sql_mode and time_zone.

        On MariaDB those steps are one server statement, an anonymous block
        (:func:`_swap_block`): once the server has it, it runs to the end even if this
        process dies, so a SIGKILL leaves the target exactly the old database (the block
        never reached the server) or exactly the restored one. What remains is a server
        crash inside the block, or a block stopped by the server (KILL, max_statement_time,
        lock_wait_timeout spent) after the client died. Other sessions may see the target
        without its views/triggers/routines while the block runs.

        On MySQL (no anonymous blocks) this process sends the steps one by one: if it dies
        between them, the target has exactly one side's tables but misses some of its
        views/triggers/routines, and the old tables may be left in the
        ``zmtrash_<label>_...`` database. A rerun of the restore repairs the target.

        If a step fails with an error (a CREATE, a lost session), the rename is reversed if it
        happened and the old objects are re-created before the error propagates.

        Table, column and database grants name the tables and stay where they are. Grants on
        routines are revoked by their DROP (see :mod:`.mysql_grants`): they are read first,
        rehearsed on the staging routines (an account that cannot give them fails here,
        before the target is touched), and given again on the restored routines of the same
        name and type right after those are created, inside the same block on MariaDB.
        """
        if self.swapped:
            raise ZenMigrateError("swap() was already called")
        self.settle()
        s = self.s
        s.execute(f"USE {s.q(self.target)}")
        try:
            old_objects = [
                (obj, *_prepare(obj.object_type, obj.name, obj.create_stmt))
                for obj in _collect_objects(s, self.target)
            ]
        finally:
            s.execute(f"USE {s.q(self.staging)}")
        old_routines = [
            (o.object_type, o.name)
            for o, *_ in old_objects
            if o.object_type.upper() in ROUTINE_KINDS
        ]
        self.grants = read_routine_grants(s, self.target) if old_routines else []
        grants = kept_grants(self.grants, ((o.object_type, o.name) for o, *_ in self.objects))
        old_tables = self._table_names(self.target)
        new_tables = self._table_names(self.staging)
        try:
            self._grant(grants, self.staging)
        finally:  # rehearsals, and the grants given them (their DROP revokes those)
            self._drop_objects(self.staging)  # triggers would block the rename
        s.execute(
            f"CREATE DATABASE {s.q(self.trash)} CHARACTER SET {s.q(self.charset)} "
            f"COLLATE {s.q(self.collation)}"
        )
        self.created.append(self.trash)
        forward = [(self.target, n, self.trash) for n in old_tables]
        forward += [(self.staging, n, self.target) for n in new_tables]
        backward = [(self.target, n, self.staging) for n in new_tables]
        backward += [(self.trash, n, self.target) for n in old_tables]
        if _runs_swap_block(s.dbapi.get_server_info()):
            try:
                self._swap_on_server(self._drop_statements(self.target), forward, grants)
            except BaseException:
                try:
                    undo = backward if self._renamed(new_tables) else []
                except Exception:
                    logger.exception(
                        "could not tell whether the failed swap of %s renamed its tables; "
                        "its previous tables may be in %s",
                        self.target,
                        self.trash,
                    )
                else:
                    self._recover(old_objects, undo)
                raise
        else:
            self._drop_objects(self.target)
            try:
                self._rename(forward)
            except BaseException:
                self._recover(old_objects, [])
                raise
            try:
                self._create_objects(self.objects)
                self._grant(grants, self.target)
            except BaseException:
                self._recover(old_objects, backward)
                raise
        self.swapped = True
        s.execute(f"DROP DATABASE {s.q(self.trash)}")

    def _grant_mode(self) -> str:
        return grant_sql_mode(self.s.dbapi.get_server_info(), LOAD_SQL_MODE)

    def _grant(self, grants: list[RoutineGrant], database: str) -> None:
        """Give ``grants`` on the routines of ``database``, in a sql_mode that never creates
        a missing grantee."""
        if not grants:
            return
        s = self.s
        s.execute("SET SESSION sql_mode = %s", (self._grant_mode(),))
        try:
            for grant in grants:
                s.execute(grant.statement(s.q, database))
        finally:
            s.execute(f"SET SESSION sql_mode = '{LOAD_SQL_MODE}'")

    def _swap_on_server(
        self,
        drops: list[str],
        forward: list[tuple[str, str, str]],
        grants: list[RoutineGrant],
    ) -> None:
        """Drop the target's objects, rename the tables, create the restored objects and give
        their grants again in one server statement (see :func:`_swap_block`).

        Every statement goes into a user variable of this session first, as a parameter
        (pymysql escapes it with backslashes, right in :data:`LOAD_SQL_MODE`, which has no
        NO_BACKSLASH_ESCAPES); the variables are cleared afterwards. The restored objects'
        statements name no database: they run with the target as the current one.
        """
        s = self.s
        steps: list[tuple[str, tuple[str, str] | None]] = [(_as_sent(d), None) for d in drops]
        if forward:
            steps.append((_as_sent(self._rename_statement(forward)), None))
        steps += [(sql, _object_settings(settings)) for _obj, settings, sql in self.objects]
        grant_settings = (self._grant_mode(), "+00:00")
        steps += [(_as_sent(g.statement(s.q, self.target)), grant_settings) for g in grants]
        names: list[str] = []
        s.execute(f"USE {s.q(self.target)}")
        try:
            for i, (statement, settings) in enumerate(steps):
                values = [statement, *(settings or ())]
                step_names = [f"@zm_swap_{kind}{i}" for kind in "smz"[: len(values)]]
                names += step_names
                s.execute("SET " + ", ".join(f"{n} = %s" for n in step_names), values)
            try:
                s.execute(_swap_block([settings is not None for _, settings in steps]))
            except pymysql.err.MySQLError:
                raise
            except BaseException:
                # Interrupted while the server runs the block (a signal, a task timeout): the
                # connection is out of step with the server. Closed, it makes the recovery
                # end the block on a new session before looking (see _live_session).
                with suppress(Exception):
                    s.dbapi.close()
                raise
        finally:
            # The block's own last statement did not run if it failed; a lost session took
            # its variables and settings with it.
            with suppress(pymysql.err.MySQLError):
                cleared = ", ".join(f"{n} = NULL" for n in names)
                s.execute(
                    f"SET {cleared + ', ' if cleared else ''}"
                    f"SESSION sql_mode = '{LOAD_SQL_MODE}', SESSION time_zone = '+00:00'"
                )
                s.execute(f"USE {s.q(self.staging)}")

    def _renamed(self, new_tables: list[str]) -> bool:
        """Whether the swap's RENAME TABLE happened, asked after the block failed.

        The rename is atomic: before it the trash database is empty and staging holds all the
        new tables, after it the trash holds the old tables and staging none of the new ones.
        """
        with self._live_session():
            if self._table_names(self.trash):
                return True
            return bool(new_tables) and not set(new_tables) & set(self._table_names(self.staging))

    @contextmanager
    def _live_session(self) -> Iterator[None]:
        """Run the block on the restore's session, or on a new one if that one is gone (once
        the server has ended the lost one, see :func:`_end_session`)."""
        try:
            self.s.dbapi.ping(reconnect=False)
        except Exception:
            if self.engine is None:
                raise
        else:
            yield
            return
        lost = self.s
        with _session(self.engine) as fresh:
            fresh.dbapi.autocommit(True)
            _end_session(fresh, lost.dbapi.thread_id())
            fresh.execute(f"USE {fresh.q(self.staging)}")
            self.s = fresh
            try:
                yield
            finally:
                self.s = lost

    def _recover(
        self,
        old_objects: list[tuple[ObjectSpec, dict[str, str], str]],
        backward: list[tuple[str, str, str]],
    ) -> None:
        """Put the target back as it was, as far as possible; errors here are logged.

        The likeliest reason a swap fails is that the server dropped the restore's session
        (killed, timed out, restarted): then the target is put back on a new one.
        """
        try:
            with self._live_session():
                self._drop_objects(self.target)
                self._rename(backward)
                self._create_objects(old_objects)
                routines = ((o.object_type, o.name) for o, *_ in old_objects)
                self._grant(kept_grants(self.grants, routines), self.target)
        except Exception:
            logger.exception(
                "could not fully restore %s after a failed swap; its previous tables may be in %s",
                self.target,
                self.trash,
            )
