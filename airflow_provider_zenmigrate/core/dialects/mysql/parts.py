"""A MySQL/MariaDB restore of a multi-part dump: the staging database kept across
attempts with a progress table in it, and the loading connections of worker processes.

A part is loaded in one transaction with its row in the progress table, so after a kill
the staging holds each part whole or not at all: a rerun skips the parts the table names
and loads the others again. The progress table is dropped just before the swap, which
moves every table of the staging database into the target.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, suppress
from typing import Any

import pymysql.err
from sqlalchemy.engine import Engine

from ...dump.chunk import Chunk
from ...dump.model import TableSpec
from ...errors import DumpIntegrityError, ZenMigrateError
from ..base import StagedBuild, span_where
from ..text_rows import BULK_CODECS
from .load import BulkLoader, chunk_load_text, load_statement, run_load
from .session import ServerSession, server_session

logger = logging.getLogger(__name__)

PROGRESS_TABLE = "_zenmigrate_progress"
#: A part that met these (two loads into one empty table) is loaded again.
RETRY_ERRORS = (1205, 1213)
#: After the loading settings: a part's transaction loads with unique checks on. With them
#: (and foreign key checks) off, MariaDB 10.6+ loads into an empty table in its bulk mode,
#: which holds and sorts the whole transaction's rows until the commit: for a part (one
#: transaction) of a table with only a primary key that took the server 2.5-3x the CPU of
#: loading it row by row (a 100,000-row table of the benchmark's shape: 1.1 s against
#: 0.4 s, measured on MariaDB 10.11). The checks themselves cost next to nothing then.
PART_SETTINGS = ("SET SESSION UNIQUE_CHECKS = 1",)


def create_progress(session: ServerSession, staging: str) -> None:
    table = f"{session.quote(staging)}.{session.quote(PROGRESS_TABLE)}"
    session.execute(
        f"CREATE TABLE {table} (part VARCHAR(255) PRIMARY KEY, digest CHAR(64) NOT NULL, "
        "`table` VARCHAR(255) NULL, `rows` BIGINT NOT NULL) ENGINE=InnoDB"
    )


def mark(
    session: ServerSession,
    staging: str,
    part: str,
    digest: str,
    table: str | None = None,
    rows: int = 0,
) -> None:
    session.execute(
        f"INSERT INTO {session.quote(staging)}.{session.quote(PROGRESS_TABLE)} "
        "(part, digest, `table`, `rows`) VALUES (%s, %s, %s, %s)",
        (part, digest, table, rows),
    )


def loaded_rows(session: ServerSession, staging: str) -> dict[str, int]:
    """Rows the server loaded into each table, by the committed parts' records."""
    return {
        str(table): int(rows)
        for table, rows in session.query(
            f"SELECT `table`, SUM(`rows`) FROM {session.quote(staging)}."
            f"{session.quote(PROGRESS_TABLE)} WHERE `table` IS NOT NULL GROUP BY `table`"
        )
    }


def read_progress(session: ServerSession, staging: str) -> dict[str, str] | None:
    """Part (or marker) -> digest, or None where the staging has no progress table."""
    found = session.scalar(
        "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s "
        "AND TABLE_NAME = %s",
        (staging, PROGRESS_TABLE),
    )
    if not found:
        return None
    rows = session.query(
        f"SELECT part, digest FROM {session.quote(staging)}.{session.quote(PROGRESS_TABLE)}"
    )
    return {str(p): str(d) for p, d in rows}


def drop_progress(session: ServerSession, staging: str) -> None:
    session.execute(
        f"DROP TABLE IF EXISTS {session.quote(staging)}.{session.quote(PROGRESS_TABLE)}"
    )


class PartLoader:
    """One worker's connection into the staging database: a part in one transaction.

    A chunk's LOAD runs on a thread of its own while the next chunk is decoded and turned
    into bulk text here, one statement in flight: the worker's CPU work and the server's
    loading overlap instead of taking turns (the connection is only used here once that
    load is in, see :meth:`_settle`).
    """

    def __init__(self, session: ServerSession, staging: str, local: Any | None) -> None:
        self.session = session
        self.staging = staging
        #: The connection LOAD DATA LOCAL runs on (the session's own when it may).
        self.local = local
        self._statements: dict[str, str] = {}
        #: Rows the server reports loaded in this part's transaction so far.
        self.loaded = 0
        self._loading: ThreadPoolExecutor | None = None
        self._in_flight: Future[int] | None = None

    def begin(self) -> None:
        self._settle()
        self.session.dbapi.begin()
        self.loaded = 0

    def clear(self, table: TableSpec, span: tuple[int | None, int | None] | None) -> None:
        """Delete what an earlier attempt left of a part (a non-transactional table keeps
        a part cut short; InnoDB rolled it back and this deletes nothing)."""
        self._settle()
        session = self.session
        where = span_where(session.quote(table.key[0]), span) if span is not None else ""
        name = f"{session.quote(self.staging)}.{session.quote(table.name)}"
        # A plain read first: a DELETE's range locks would deadlock with the other
        # workers' loads, and there is almost never anything to delete.
        if session.query(f"SELECT 1 FROM {name}{where} LIMIT 1"):
            session.execute(f"DELETE FROM {name}{where}")

    def load(self, table: TableSpec, chunk: Chunk) -> None:
        """A data record's rows (see load.chunk_load_text). Their LOAD starts once the
        previous chunk's is in (whose error this raises)."""
        if not len(chunk):
            return
        codecs = [c.codec for c in table.columns]
        if self.local is None or not set(codecs) <= BULK_CODECS or len(chunk.names) != len(codecs):
            raise ZenMigrateError(
                f"table {table.name!r}: parallel restores load with LOAD DATA LOCAL, which "
                "this server or table does not allow; restore with jobs=1"
            )
        data = chunk_load_text(table, chunk)
        statement = self._statements.get(table.name)
        if statement is None:
            statement = load_statement(self.session.quote, self.staging, table)
            self._statements[table.name] = statement
        self._settle()
        if self._loading is None:
            self._loading = ThreadPoolExecutor(1, thread_name_prefix="zenmigrate-part-load")
        self._in_flight = self._loading.submit(run_load, self.local, table, statement, data)

    def _settle(self) -> None:
        """Wait for the chunk in flight, if any: its rows counted, its error raised."""
        in_flight, self._in_flight = self._in_flight, None
        if in_flight is not None:
            self.loaded += in_flight.result()

    def commit(self, part: str, digest: str, table: str, rows: int) -> None:
        """Commit the part with its record; the rows the server loaded must be the part's
        (the record is what the final check adds up, instead of counting every table)."""
        self._settle()
        if self.loaded != rows:
            raise DumpIntegrityError(
                f"part {part}: the server loaded {self.loaded} rows of table {table!r}, the "
                f"part holds {rows}"
            )
        mark(self.session, self.staging, part, digest, table, rows)
        self.session.dbapi.commit()

    def rollback(self) -> None:
        with suppress(BaseException):  # its error is the part's, already being raised
            self._settle()
        with suppress(Exception):
            self.session.dbapi.rollback()

    def build(self, build: StagedBuild, key: str, digest: str) -> None:
        """Never asked: the MariaDB/MySQL writer builds nothing early (its dumps keep the
        indexes inside their CREATE TABLE)."""
        raise ZenMigrateError(f"{build.label}: a MariaDB/MySQL restore builds no object early")

    def close(self) -> None:
        """Wait for the chunk in flight (its error no longer matters); stop the thread."""
        with suppress(BaseException):
            self._settle()
        if self._loading is not None:
            self._loading.shutdown(wait=True)
            self._loading = None


@contextmanager
def part_loader(engine: Engine, staging: str, settings: list[str]) -> Iterator[PartLoader]:
    """A :class:`PartLoader` on a connection with the LOCAL capability (where allowed),
    with InnoDB's unique checks on (see :data:`PART_SETTINGS`)."""
    local = BulkLoader._connect(  # noqa: SLF001 - the same connection recipe
        engine, [*settings, *PART_SETTINGS]
    )
    if local is None:
        with server_session(engine) as session:
            yield PartLoader(session, staging, None)
        return
    loader = PartLoader(ServerSession(local, engine), staging, local)
    try:
        local.autocommit(False)
        yield loader
    finally:
        loader.close()
        with suppress(Exception):
            local.rollback()
        with suppress(Exception):
            local.close()


def is_retryable(exc: BaseException) -> bool:
    return (
        isinstance(exc, pymysql.err.MySQLError) and bool(exc.args) and exc.args[0] in RETRY_ERRORS
    )
