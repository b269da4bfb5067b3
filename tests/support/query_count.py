"""Every statement a block sends to a database, as the drivers send it.

Counting happens at the drivers' own entry points, below SQLAlchemy and the dialect
modules, so no statement escapes it however it is sent: pymysql's ``COM_QUERY`` commands,
psycopg's cursor calls (and the raw COPY of :mod:`.copy_stream`), and SQLite's trace
callback on every connection opened while counting. The databases are real; nothing is
answered in their place. Used by tests/integration/test_catalog_queries.py,
tests/integration/test_restore_queries.py and the measurements of issue 27.
"""

from __future__ import annotations

import re
import sqlite3
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pymysql
from pymysql.constants import COMMAND
from sqlalchemy.engine import URL

from airflow_provider_zenmigrate.core.dialects.postgresql import reader as pg_reader
from airflow_provider_zenmigrate.core.utils import MigrationUtils


@dataclass
class QueryLog:
    """The statements sent while counting, in order."""

    statements: list[str] = field(default_factory=list)

    def add(self, sql: Any) -> None:
        if isinstance(sql, bytes | bytearray | memoryview):
            sql = bytes(sql).decode("utf-8", "replace")
        self.statements.append(str(sql))

    def without_database(self, url: URL) -> list[str]:
        """The statements with the name of ``url``'s database (a server's, or the SQLite
        file's stem) replaced by ``<database>``, so databases of two sizes compare."""
        name = Path(str(url.database)).stem
        return [s.replace(name, "<database>") for s in self.statements]

    def shapes(self) -> Counter[str]:
        """How often each statement was sent, with names and numbers abstracted (``t001``
        and ``t017`` are the same shape)."""
        return Counter(shape(s) for s in self.statements)


_NAME = re.compile(r"\bt\d{3}(?=\b|_)")
_LABEL = re.compile(r"_[0-9a-f]{8}(?=\b|_)")
_NUMBER = re.compile(r"\b\d+\b")
_STRING = re.compile(r"'(?:[^']|'')*'")


def shape(statement: str) -> str:
    """A statement with table names ``tNNN`` (also in ``tNNN_pkey``), restore labels
    (``zmstage_<8 hex>``), numbers and string literals abstracted and its white space
    folded, cut at 160 characters."""
    text = " ".join(statement.split())
    text = _LABEL.sub("_L", _NAME.sub("tN", text))
    text = _STRING.sub("'?'", _NUMBER.sub("N", text))
    return text[:160]


@contextmanager
def counted_queries() -> Iterator[QueryLog]:
    """Record every statement sent to any database during the block."""
    log = QueryLog()
    undo: list[Callable[[], None]] = []

    def patch(owner: Any, name: str, make: Callable[[Any], Any]) -> None:
        real = getattr(owner, name)
        setattr(owner, name, make(real))
        undo.append(lambda: setattr(owner, name, real))

    def mysql_command(real: Any) -> Any:
        def send(self: Any, command: int, sql: Any) -> Any:
            if command == COMMAND.COM_QUERY:
                log.add(sql)
            return real(self, command, sql)

        return send

    def pg_statement(real: Any) -> Any:
        def execute(self: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
            log.add(query if isinstance(query, str | bytes) else repr(query))
            return real(self, query, *args, **kwargs)

        return execute

    def pg_copy_out(real: Any) -> Any:
        def copy_text_rows(conn: Any, query: str, *args: Any) -> Any:
            log.add(f"COPY ({query}) TO STDOUT (FORMAT binary)")
            return real(conn, query, *args)

        return copy_text_rows

    def sqlite_traced(statement: str) -> None:
        # "-- ..." is SQLite's trace of a statement run inside another (a trigger, a pragma
        # function joined in a query): no call of the caller's.
        if not statement.startswith("-- "):
            log.add(statement)

    def sqlite_connect(real: Any) -> Any:
        def connect(*args: Any, **kwargs: Any) -> Any:
            conn = real(*args, **kwargs)
            conn.set_trace_callback(sqlite_traced)
            return conn

        return connect

    patch(pymysql.connections.Connection, "_execute_command", mysql_command)
    for cls in (psycopg.Cursor, psycopg.ServerCursor):
        patch(cls, "execute", pg_statement)
    patch(psycopg.Cursor, "executemany", pg_statement)
    patch(psycopg.Cursor, "copy", pg_statement)
    patch(pg_reader, "copy_text_rows", pg_copy_out)
    patch(sqlite3, "connect", sqlite_connect)
    try:
        yield log
    finally:
        for step in reversed(undo):
            step()


@contextmanager
def counted_fresh(url: URL) -> Iterator[tuple[MigrationUtils, QueryLog]]:
    """A new ``MigrationUtils`` on ``url`` (disposed after) while every statement is
    counted: its engine's first connection and set-up are counted too, the same for every
    database compared."""
    with counted_queries() as log:
        fresh = MigrationUtils(url=url, connect_args={}, engine_args={})
        try:
            yield fresh, log
        finally:
            fresh.dispose()
