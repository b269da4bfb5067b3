"""MySQL/MariaDB bulk loading: LOAD DATA LOCAL INFILE fed with the dump's own text forms.

Why not INSERT: the server parses a tab-separated stream faster than multi-row INSERTs, and
the values can stay as the dump has them (base64 goes through ``FROM_BASE64``, decimal and
date/time text as it is), so the client does little more than join strings. Chunks load on
``LOADERS`` further connections, one statement in flight on each, while the next chunk is
prepared: a single LOAD thread spends much of its time waiting for InnoDB to write pages
and redo, and a second one fills those waits. A table's first chunk loads alone: MariaDB
loads into an empty table under a table lock it asks for after its intention lock, so two
first loads at once deadlock.

A LOCAL load behaves as if IGNORE were given (the server cannot stop the client's stream
midway), so every load reads its warning count and fails on the first warning: a value the
server would truncate, a duplicate key or bad base64 fails the restore as an INSERT would.

The data never has a name on disk: it is written to an anonymous temporary file that the
driver opens through ``/proc/self/fd``, so a killed restore leaves no file behind. The
driver answers the server's request for a file only while one of these LOAD statements runs.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as futures_wait
from contextlib import suppress
from typing import IO, Any

import pymysql.err
from sqlalchemy.engine import Engine

from ...dump.chunk import Chunk
from ...dump.model import TableSpec
from ...errors import ZenMigrateError
from ..base import decode_base64_column
from ..text_rows import bulk_text, chunk_text
from .pymysql_internals import local_infile_allowed, reconnect_with_local_files

logger = logging.getLogger(__name__)

_LOAD_FORMAT = (
    "CHARACTER SET utf8mb4 FIELDS TERMINATED BY '\\t' ESCAPED BY '\\\\' LINES TERMINATED BY '\\n'"
)
_PROC_FD = "/proc/self/fd"
ER_UNKNOWN_SYSTEM_VARIABLE = 1193  # MySQL has no check_constraint_checks
#: Loading connections. Two overlap InnoDB's page and redo waits; more would only compete
#: with the client for the CPU on small machines.
LOADERS = 2


class BulkLoader:
    """Connections that run LOAD DATA LOCAL, chunks dealt to them in turn, one statement in
    flight on each."""

    def __init__(self, connections: list[Any]) -> None:
        self.connections = connections
        self._pool = ThreadPoolExecutor(
            max_workers=len(connections), thread_name_prefix="zenmigrate-load"
        )
        self._pending: list[Future[None] | None] = [None] * len(connections)
        self._next = 0
        #: The table being loaded, and its first chunk while the second is not queued yet.
        self._loading_table: str | None = None
        self._first_chunk: Future[None] | None = None

    @classmethod
    def open(cls, engine: Engine, settings: list[str]) -> BulkLoader | None:
        """A loader on new connections with the LOCAL capability, or None where the server
        (``local_infile=OFF``) or the platform (no ``/proc/self/fd``) does not allow it."""
        if not os.path.isdir(_PROC_FD):
            return None
        connections: list[Any] = []
        try:
            for _ in range(LOADERS):
                connection = cls._connect(engine, settings)
                if connection is None:
                    break
                connections.append(connection)
        except BaseException:
            for connection in connections:
                with suppress(Exception):
                    connection.close()
            raise
        return cls(connections) if connections else None

    @staticmethod
    def _connect(engine: Engine, settings: list[str]) -> Any:
        raw = engine.raw_connection()
        raw.detach()
        connection: Any = raw.dbapi_connection
        try:
            with connection.cursor() as cur:
                cur.execute("SELECT @@local_infile")
                row = cur.fetchone()
            if not row or not int(row[0]):
                raw.close()
                return None
            # The capability is agreed at the handshake: connect again with it, keeping
            # every other connection parameter (TLS, charset, timeouts).
            connection.close()
            reconnect_with_local_files(connection)
            apply_settings(connection, settings)
        except BaseException:
            with suppress(Exception):
                connection.close()
            raise
        return connection

    def submit(self, table: TableSpec, statement: str, data: bytes) -> None:
        """Queue one chunk on the next connection once its last chunk is in; raises that
        chunk's error, if it failed."""
        slot = self._next
        self._next = (slot + 1) % len(self.connections)
        self._wait_for_slot(slot)
        first = table.name != self._loading_table
        if not first and self._first_chunk is not None:
            self._first_chunk.result()  # the table is not empty before a second load starts
        handle = tempfile.TemporaryFile()  # noqa: SIM115 - closed by _load
        try:
            handle.write(data)
            handle.flush()
        except BaseException:
            handle.close()
            raise
        future = self._pool.submit(self._load, self.connections[slot], table, statement, handle)
        self._pending[slot] = future
        self._loading_table, self._first_chunk = table.name, future if first else None

    def wait(self) -> None:
        """Block until every chunk in flight is loaded; raise the oldest chunk's error."""
        count = len(self.connections)
        oldest_first = [self._pending[(self._next + i) % count] for i in range(count)]
        self._pending = [None] * count
        pending = [future for future in oldest_first if future is not None]
        futures_wait(pending)  # all of them are done before any error is raised
        for future in pending:
            future.result()

    def _wait_for_slot(self, slot: int) -> None:
        pending, self._pending[slot] = self._pending[slot], None
        if pending is not None:
            pending.result()

    @staticmethod
    def _load(connection: Any, table: TableSpec, statement: str, handle: IO[bytes]) -> None:
        try:
            _load_file(connection, table, statement, handle)
        finally:
            handle.close()

    def close(self) -> None:
        """Wait for the chunks in flight (their errors no longer matter) and disconnect."""
        with suppress(Exception):
            self.wait()
        self._pool.shutdown(wait=True)
        for connection in self.connections:
            with suppress(Exception):
                connection.close()


def apply_settings(connection: Any, settings: list[str]) -> None:
    """Autocommit and the restore's session ``settings`` on a connection of its own; one
    this server does not know (MySQL has no check_constraint_checks) is left out."""
    connection.autocommit(True)
    with connection.cursor() as cur:
        for statement in settings:
            try:
                cur.execute(statement, ())
            except pymysql.err.MySQLError as exc:
                if exc.args[0] != ER_UNKNOWN_SYSTEM_VARIABLE:
                    raise
                logger.debug("not on this server: %s", statement)


def _load_file(connection: Any, table: TableSpec, statement: str, handle: IO[bytes]) -> int:
    """Run one LOAD DATA LOCAL of ``handle``; its first warning fails it. Returns the rows
    the server says it loaded."""
    with connection.cursor() as cur:
        with local_infile_allowed(connection):
            loaded = int(cur.execute(statement, (f"{_PROC_FD}/{handle.fileno()}",)))
        warnings = cur.warning_count
        if warnings:
            cur.execute("SHOW WARNINGS LIMIT 1")
            first = cur.fetchone()
            message = first[2] if first else "unknown"
            raise ZenMigrateError(
                f"table {table.name!r}: the server did not load a row as it is in the "
                f"dump ({warnings} warnings; first: {message})"
            )
    return loaded


def run_load(connection: Any, table: TableSpec, statement: str, data: bytes) -> int:
    """Load ``data`` (tab-separated rows) with ``statement`` on ``connection``, now;
    returns the rows the server says it loaded."""
    with tempfile.TemporaryFile() as handle:
        handle.write(data)
        handle.flush()
        return _load_file(connection, table, statement, handle)


def load_statement(quote: Any, database: str, table: TableSpec) -> str:
    """LOAD DATA for ``table``'s columns; base64 columns go through FROM_BASE64, YEAR
    through a number."""
    targets: list[str] = []
    assignments: list[str] = []
    for i, column in enumerate(table.columns):
        if column.codec == "bytes":
            targets.append(f"@zm{i}")
            assignments.append(f"{quote(column.name)} = FROM_BASE64(@zm{i})")
        elif column.type.lower().startswith("year"):
            # A YEAR field "0" is read as 2000; the number 0 is the zero year.
            targets.append(f"@zm{i}")
            assignments.append(f"{quote(column.name)} = CAST(@zm{i} AS SIGNED)")
        else:
            targets.append(quote(column.name))
    statement = (
        f"LOAD DATA LOCAL INFILE %s INTO TABLE {quote(database)}.{quote(table.name)} "
        f"{_LOAD_FORMAT} ({', '.join(targets)})"
    )
    if assignments:
        statement += " SET " + ", ".join(assignments)
    return statement


def load_text(table: TableSpec, columns: list[Sequence[Any]]) -> bytes:
    """A chunk's values as LOAD DATA text; base64 columns checked here, since the server's
    FROM_BASE64 would only warn about a bad one."""
    for i, column in enumerate(table.columns):
        if column.codec == "bytes":
            decode_base64_column(table, i, columns[i])
    return bulk_text(table, columns)


def chunk_load_text(table: TableSpec, chunk: Chunk) -> bytes:
    """A data record's rows as LOAD DATA text: straight from the record where it can be
    (text_rows.chunk_text, base64 as it is), else from its values."""
    text = chunk_text(table, chunk, "v")
    return load_text(table, chunk.columns()) if text is None else text
