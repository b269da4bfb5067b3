"""The MySQL/MariaDB backup reader: one consistent snapshot, read on up to three sessions.

:class:`MySQLBackupReader` reads a database inside ``START TRANSACTION WITH CONSISTENT
SNAPSHOT``. Large InnoDB tables are split into ranges of their integer key and rendered by
the server (:mod:`.render`) on :data:`RENDER_SESSIONS` sessions in turn, all started in the
same state of those tables by :func:`start_snapshots`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Generator, Iterator
from contextlib import ExitStack, closing, contextmanager, suppress
from itertools import pairwise
from typing import Any

import pymysql.cursors
import pymysql.err
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

from ...dump.model import ObjectSpec, TableSpec
from ..base import QUERY_SENT, BackupReader, SliceDomain, Span, pipelined_ranges, span_where
from .catalog import ColumnFacts, collect_objects, large_innodb_tables, read_table_specs
from .render import (
    INTEGER_TYPES,
    ONE_PACKET,
    UNBOUNDED_TYPES,
    UNCONVERTED_RESULTS,
    RenderedColumns,
    ValueForm,
    data_type_of,
    rendered_stream,
    value_form,
)
from .session import ServerSession, server_session
from .wire import renders_in_c

logger = logging.getLogger(__name__)

# Session of the backup: UTC so TIMESTAMP values are read as stored; no ANSI_QUOTES so
# SHOW CREATE quotes with backticks.
BACKUP_SQL_MODE = "NO_ENGINE_SUBSTITUTION"

# Tables of at least two ranges of this many bytes (DATA_LENGTH, InnoDB's estimate, off-page
# BLOBs included) are rendered on RENDER_SESSIONS sessions in turn, a key range at a time.
# Smaller ranges cost the server a query each for few rows; larger ones leave sessions idle
# (see docs/performance.md).
RANGE_BYTES = 8 * 1024 * 1024

# Sessions rendering those tables: three beat two, four were no better than three
# (see docs/performance.md).
RENDER_SESSIONS = 3

# Seconds the backup waits for writers to let it lock those tables while its sessions
# start their snapshots; past that it renders on one session.
SNAPSHOT_LOCK_WAIT = 1


def prepare_snapshot(session: ServerSession, database: str) -> None:
    session.execute(f"USE {session.quote(database)}")
    session.execute("SET SESSION time_zone = '+00:00'")
    session.execute(f"SET SESSION sql_mode = '{BACKUP_SQL_MODE}'")
    # The engine may take a while with each chunk (compressing, uploading).
    session.execute("SET SESSION net_write_timeout = 3600")
    session.execute("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")


def begin_snapshot(session: ServerSession) -> None:
    # DDL is not transactional: a table altered during the backup can still tear it;
    # InnoDB reports "table definition has changed" rather than returning mixed rows.
    session.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")


def start_snapshots(
    engine: Engine, stack: ExitStack, first: ServerSession, database: str
) -> tuple[tuple[ServerSession, ...], dict[str, int]]:
    """Start ``first``'s snapshot and, where the database has tables worth rendering on
    several sessions, ``RENDER_SESSIONS - 1`` more sessions' in the same state of those
    tables.

    MariaDB cannot hand a snapshot to another session, so one more session holds the tables
    with ``LOCK TABLES ... READ`` while they all start: no change to them can commit in
    between. That takes the privilege mysqldump's own locking takes, and holds writers of
    those tables back for the few milliseconds it lasts. Returns the helper sessions and the
    tables (their DATA_LENGTH), or ``((), {})``: no such table, no privilege, no
    connection, or a writer still holding the tables after :data:`SNAPSHOT_LOCK_WAIT` s.
    """
    prepare_snapshot(first, database)
    sizes = large_innodb_tables(first, database, 2 * RANGE_BYTES)
    begun = False
    if sizes:
        try:
            with server_session(engine) as locker:
                locker.dbapi.autocommit(True)  # no InnoDB table locks: only the tables' MDL
                locker.execute(f"SET SESSION lock_wait_timeout = {SNAPSHOT_LOCK_WAIT}")
                locker.execute(
                    "LOCK TABLES "
                    + ", ".join(
                        f"{locker.quote(database)}.{locker.quote(n)} READ" for n in sorted(sizes)
                    )
                )
                begin_snapshot(first)
                begun = True
                helpers = []
                for _ in range(RENDER_SESSIONS - 1):
                    helper = stack.enter_context(server_session(engine))
                    prepare_snapshot(helper, database)
                    begin_snapshot(helper)
                    helpers.append(helper)
                locker.execute("UNLOCK TABLES")
            return tuple(helpers), sizes
        except (pymysql.err.MySQLError, DBAPIError) as exc:
            logger.info("rendering on one session: no other one in the snapshot (%s)", exc)
    if not begun:
        begin_snapshot(first)
    return (), {}


def _without_marker(
    stream: Generator[Any, None, None],
) -> Generator[tuple[int, bytes], None, None]:
    """A key range's stream without its QUERY_SENT: closed early, it is read to its end, so
    the snapshot's session goes on (a part whose store failed is written again from it)."""
    with closing(stream):
        for item in stream:
            if item is not QUERY_SENT:
                yield item


#: Seconds a parallel backup waits to lock every table while its workers start their
#: snapshots; past that it reads on one process.
SHARED_LOCK_WAIT = 10


@contextmanager
def shared_snapshot_lock(engine: Engine, database: str) -> Iterator[Callable[[], None]]:
    """Hold every base table of ``database`` with ``LOCK TABLES ... READ`` until the returned
    function is called: sessions that start their snapshot meanwhile (the worker processes of
    a parallel backup) all see the same state, as with :func:`start_snapshots`.

    Raises the server's error when the tables cannot be locked within
    :data:`SHARED_LOCK_WAIT` seconds (or the privilege is missing).
    """
    with server_session(engine) as locker:
        locker.dbapi.autocommit(True)
        locker.execute(f"SET SESSION lock_wait_timeout = {SHARED_LOCK_WAIT}")
        names = [
            name
            for (name,) in locker.query(
                "SELECT TABLE_NAME FROM information_schema.TABLES "
                "WHERE TABLE_SCHEMA = %s AND TABLE_TYPE = 'BASE TABLE'",
                (database,),
            )
        ]
        if names:
            locker.execute(
                "LOCK TABLES "
                + ", ".join(f"{locker.quote(database)}.{locker.quote(n)} READ" for n in names)
            )
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                locker.execute("UNLOCK TABLES")

        try:
            yield release
        finally:
            with suppress(Exception):
                release()


@contextmanager
def snapshot_session(engine: Engine, database: str) -> Iterator[MySQLBackupReader]:
    """A reader on a session of its own that starts its snapshot now (a worker of a
    parallel backup joins the owner's this way, under :func:`shared_snapshot_lock`)."""
    with server_session(engine) as session:
        prepare_snapshot(session, database)
        begin_snapshot(session)
        reader = MySQLBackupReader(session, database, (), {})
        reader.tables()  # the column facts rendering needs
        yield reader


class MySQLBackupReader(BackupReader):
    """One snapshot transaction (on ``session``); tables in ``shared`` are in the same
    snapshot on the ``helpers`` too, and large ones are rendered on all of them in turn."""

    def __init__(
        self,
        session: ServerSession,
        database: str,
        helpers: tuple[ServerSession, ...],
        shared: dict[str, int],
    ) -> None:
        self.session = session
        self.database = database
        self.helpers = helpers
        #: DATA_LENGTH of the tables the ``helpers`` see as ``session`` does (each of at
        #: least two ranges: start_snapshots takes no other).
        self.shared = shared
        version, max_packet, results_charset = session.query(
            "SELECT VERSION(), @@max_allowed_packet, @@character_set_results"
        )[0]
        self.server_version = str(version)
        self.max_packet = int(max_packet)
        self.results_charset: str | None = results_charset
        #: (CHARACTER_OCTET_LENGTH, CHARACTER_SET_NAME, nullable) by (table, column).
        self._column_facts: dict[tuple[str, str], ColumnFacts] = {}

    def tables(self) -> list[TableSpec]:
        specs, columns = read_table_specs(self.session, self.database)
        self._column_facts.update(columns)
        return specs

    def rows(
        self, table: TableSpec, chunk_rows: int, span: Span | None = None
    ) -> Iterator[list[tuple[Any, ...]]]:
        if chunk_rows < 1:
            raise ValueError("chunk_rows must be at least 1")
        session = self.session
        exprs = []
        for column in table.columns:
            name = session.quote(column.name)
            data_type = data_type_of(column.type)
            if data_type == "float":
                exprs.append(f"({name} + 0e0)")  # FLOAT's own text has 6 digits; as DOUBLE: exact
            elif data_type == "time":
                exprs.append(f"CAST({name} AS CHAR)")  # '-838:59:59.000000', not a timedelta
            else:
                exprs.append(name)
        if not exprs:
            return
        sql = f"SELECT {', '.join(exprs)} FROM {session.quote(table.name)}"
        sql += self._span_clause(table, span)
        if table.key:
            sql += " ORDER BY " + ", ".join(session.quote(c) for c in table.key)
        cursor = session.dbapi.cursor(pymysql.cursors.SSCursor)
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
        self, table: TableSpec, chunk_rows: int, span: Span | None = None
    ) -> Generator[tuple[int, bytes], None, None] | None:
        """Rows as the dump's JSON objects, one per row: written by C from the table's
        columns (``_wire.rendered``), or rendered by the server with CONCAT where C cannot
        (no ``_wire`` module, or a result character set the server would convert to).

        Not for tables with FLOAT/DOUBLE (the server's shortest text is not Python's),
        BIT, spatial or MariaDB's UUID/INET types. A row longer than max_allowed_packet
        renders as NULL: a table with a key stops there (RowsNotRendered) and the engine
        reads the rest with rows(); one without a key and with unbounded columns is measured
        first (a scan) and read with rows() if a row could be that long.
        """
        session = self.session
        forms: list[tuple[str, ValueForm]] = []  # (the quoted column, its form)
        names: list[str] = []
        bound = 64
        long_columns: list[tuple[str, int]] = []
        for column in table.columns:
            data_type = data_type_of(column.type)
            octets, charset, nullable = self._column_facts.get(
                (table.name, column.name), (None, None, True)
            )
            form = value_form(column.type, charset, nullable)
            if form is None:
                return None
            factor = form.factor
            forms.append((session.quote(column.name), form))
            names.append(
                ("," if names else "{") + json.dumps(column.name, ensure_ascii=False) + ":"
            )
            bound += 32 + len(names[-1]) * 6
            if data_type in UNBOUNDED_TYPES or octets is None and factor > 1:
                long_columns.append((column.name, factor))  # measured below if no key
            else:
                bound += factor * (octets or 32)
        if not forms:
            return None
        if long_columns and not table.key:
            lengths = session.query(
                "SELECT "
                + ", ".join(
                    f"COALESCE(MAX(LENGTH({session.quote(n)})), 0)" for n, _ in long_columns
                )
                + f" FROM {session.quote(table.name)}"
            )[0]
            bound += sum(f * int(n) for (_, f), n in zip(long_columns, lengths, strict=True))
        if bound >= min(self.max_packet, ONE_PACKET):
            return None
        if renders_in_c() and self.results_charset in UNCONVERTED_RESULTS:
            # The columns themselves; C writes the JSON (_wire.rendered).
            columns = RenderedColumns(
                "".join(form.kind for _, form in forms).encode(), tuple(n.encode() for n in names)
            )
            select = "SELECT " + ", ".join(form.client.format(c=c) for c, form in forms)
            return self._rendered(table, select, [], chunk_rows, span, columns)
        # Column names go in as parameters; the expressions' own % are doubled for them.
        concat = ", ".join(f"%s, {form.server.format(c=c)}" for c, form in forms)
        row = f"CONCAT({concat}, '}}')"
        if self.results_charset not in UNCONVERTED_RESULTS:
            # The dump is UTF-8 whatever the session's result character set; the cast stops
            # the server converting (it slows the rendering, hence only here; see
            # docs/performance.md).
            row = f"CAST(CONVERT({row} USING utf8mb4) AS BINARY)"
        return self._rendered(table, f"SELECT {row}", names, chunk_rows, span, None)

    def _rendered(
        self,
        table: TableSpec,
        select: str,
        names: list[str],
        chunk_rows: int,
        span: Span | None,
        columns: RenderedColumns | None,
    ) -> Generator[tuple[int, bytes], None, None]:
        """The rows of ``select`` (its FROM, ranges and order added here) as a stream."""
        session = self.session
        select += f" FROM {session.quote(table.name)}"
        order = " ORDER BY " + ", ".join(session.quote(c) for c in table.key) if table.key else ""

        def stream(
            on: ServerSession, sql: str, key_range: bool
        ) -> Generator[tuple[int, bytes], None, None]:
            return rendered_stream(
                on, sql, names, table.name, chunk_rows, key_range=key_range, columns=columns
            )

        if span is not None:  # a part of a multi-part dump: one range, on this session
            sql = select + self._span_clause(table, span) + order
            return _without_marker(stream(session, sql, True))
        ranges = self._key_ranges(table)
        if not self.helpers or len(ranges) < 2:
            return stream(session, select + order, False)
        sessions = (session, *self.helpers)
        logger.debug(
            "table %s: rendered on %d sessions, %d key ranges",
            table.name,
            len(sessions),
            len(ranges),
        )

        def open_range(i: int) -> Generator[tuple[int, bytes], None, None]:
            return stream(sessions[i % len(sessions)], select + ranges[i] + order, True)

        return pipelined_ranges(open_range, len(ranges), ahead=len(sessions) - 1)

    def _integer_key(self, table: TableSpec) -> str | None:
        """The single integer key column a table can be cut on, if it has one."""
        if len(table.key) != 1:
            return None
        column = next((c for c in table.columns if c.name == table.key[0]), None)
        if column is None or data_type_of(column.type) not in INTEGER_TYPES:
            return None
        return column.name

    def slice_domain(self, table: TableSpec) -> SliceDomain | None:
        """Values of the table's single integer key, as the snapshot sees them."""
        key = self._integer_key(table)
        if key is None:
            return None
        name = self.session.quote(key)
        low, high = self.session.query(
            f"SELECT MIN({name}), MAX({name}) FROM {self.session.quote(table.name)}"
        )[0]
        if low is None:
            return None
        size = self.session.scalar(
            "SELECT DATA_LENGTH FROM information_schema.TABLES "
            "WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s",
            (self.database, table.name),
        )
        return SliceDomain("key", int(low), int(high) + 1, int(size or 0))

    def _span_clause(self, table: TableSpec, span: Span | None) -> str:
        if span is None:
            return ""
        key = self._integer_key(table)
        if key is None:
            raise ValueError(f"table {table.name!r} has no integer key to read a span of")
        return span_where(self.session.quote(key), span)

    def _key_ranges(self, table: TableSpec) -> list[str]:
        """WHERE clauses splitting a table all sessions see into ranges of its integer key
        of about :data:`RANGE_BYTES` each (the first and last open-ended); one, empty, for
        a table that is not split."""
        size = self.shared.get(table.name)
        key = self._integer_key(table)
        if size is None or key is None:
            return [""]
        name = self.session.quote(key)
        bounds = self.session.query(
            f"SELECT MIN({name}), MAX({name}) FROM {self.session.quote(table.name)}"
        )[0]
        if bounds[0] is None:
            return [""]
        low, high = int(bounds[0]), int(bounds[1])
        count = min(size // RANGE_BYTES, high - low + 1)
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
        return collect_objects(self.session, self.database)
