"""A session of our own on the MySQL/MariaDB server, and how to end one the server still runs.

The backup's snapshot, the restore's staging and the swap each run on a DBAPI connection
taken out of the pool: they change session settings (sql_mode, time_zone, autocommit) that
must not leak to the pool's other users. Public in the package: :class:`ServerSession`,
:func:`server_session`, :func:`end_session`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import Any, cast

import pymysql.err
from sqlalchemy.engine import Engine

from ...errors import ZenMigrateError
from ..base import name_record
from .pymysql_internals import read_query_answer, send_query_command


class ServerSession:
    """One DBAPI (pymysql) connection, detached from the pool so its settings never leak.

    Our own statements always go through the driver's ``%s`` formatting (with no arguments,
    ``%%`` becomes ``%``): that is what SQLAlchemy's identifier preparer quotes for, doubling
    ``%`` in names. Statements taken from a dump are sent as they are (:meth:`execute_dump`,
    :meth:`send_dump`).
    """

    def __init__(self, dbapi: Any, engine: Engine) -> None:
        self._dbapi = dbapi
        self.preparer = engine.dialect.identifier_preparer
        #: A statement sent by :meth:`send_dump` whose answer is not read yet: its cursor,
        #: and the record line and description its error is reported with.
        self._unanswered: tuple[Any, int | None, str] | None = None
        #: Run by :meth:`settle` before anything else uses the connection: the restore
        #: writer's, which first finishes what it sent ahead on its other sessions.
        self.before_use: Callable[[], None] | None = None

    @property
    def dbapi(self) -> Any:
        """The DBAPI connection, once the answer to a statement sent ahead is read (nothing
        else may use the connection before)."""
        self.settle()
        return self._dbapi

    def send_dump(self, sql: str, line: int | None, what: str) -> None:
        """Send a dump's statement and return without waiting for the server: the client
        reads the next records while the server runs it (a CREATE TABLE takes a few ms on
        InnoDB). Its answer is read, and its error raised naming record ``line`` (``what``),
        by :meth:`answer` or :meth:`settle`, before anything else uses the connection."""
        self.answer()
        cursor = self._dbapi.cursor()
        try:
            send_query_command(cursor, sql)
        except BaseException:
            cursor.close()
            raise
        self._unanswered = (cursor, line, what)

    def settle(self) -> None:
        """Run :attr:`before_use`, then :meth:`answer`: the connection is free for any use."""
        if self.before_use is not None:
            self.before_use()
        self.answer()

    def answer(self) -> None:
        """Read the answer to the statement :meth:`send_dump` sent; raise its error."""
        unanswered, self._unanswered = self._unanswered, None
        if unanswered is None:
            return
        cursor, line, what = unanswered
        try:
            read_query_answer(cursor)
        except Exception as exc:
            name_record(exc, line, what)
            raise
        finally:
            cursor.close()

    def close(self) -> None:
        """Close the connection; an answer not read yet no longer matters."""
        self._unanswered = None
        with suppress(Exception):
            self._dbapi.close()

    def quote(self, name: str) -> str:
        """``name`` quoted as an identifier (a ``%`` in it doubled, see above)."""
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
def server_session(engine: Engine) -> Iterator[ServerSession]:
    """A :class:`ServerSession` on a connection of its own, closed (not returned to the
    pool) when the block ends, its transaction rolled back."""
    raw = engine.raw_connection()
    raw.detach()
    try:
        yield ServerSession(raw.dbapi_connection, engine)
    finally:
        with suppress(Exception):
            raw.rollback()
        raw.close()


#: "Unknown thread id": the session to kill has already ended.
ER_NO_SUCH_THREAD = 1094


def end_session(session: ServerSession, thread_id: int, timeout: float = 60.0) -> None:
    """Stop whatever the server still runs on session ``thread_id`` and wait until it is gone.

    A client that lost its connection does not stop the server: the statement it sent last
    (the swap's block, retrying its lock waits) may still be running, and putting the target
    back beside it would race with it.
    """
    try:
        session.execute("KILL CONNECTION %s", (thread_id,))
    except pymysql.err.MySQLError as exc:
        if exc.args[0] != ER_NO_SUCH_THREAD:
            raise
    deadline = time.monotonic() + timeout
    alive = "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = %s"
    while session.scalar(alive, (thread_id,)):
        if time.monotonic() > deadline:
            raise ZenMigrateError(f"session {thread_id} of the failed swap does not end")
        time.sleep(0.05)
