"""psycopg connections for backups and restores: one transaction each, one statement a call.

Modules of this package call :func:`execute_one` through this module
(``connection.execute_one``), so that the reliability tests can watch every statement at one
place.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from sqlalchemy.engine import Engine

#: Settings that make the text form of every value exact and independent of the server's
#: configuration, on both sides (SET LOCAL: they end with the transaction).
SESSION_SETTINGS = (
    "SET LOCAL TimeZone = 'UTC'",
    "SET LOCAL DateStyle = 'ISO, YMD'",
    "SET LOCAL IntervalStyle = 'postgres'",
    "SET LOCAL extra_float_digits = 3",
    "SET LOCAL bytea_output = 'hex'",
    "SET LOCAL lc_monetary = 'C'",
    "SET LOCAL client_min_messages = 'warning'",
    "SET LOCAL standard_conforming_strings = on",
)

#: An empty search_path: the catalogs then print every name outside pg_catalog qualified.
READ_SEARCH_PATH = "SET LOCAL search_path = ''"


def driver_connection(raw: Any) -> psycopg.Connection[Any]:
    """The psycopg connection under a pooled SQLAlchemy one; other drivers are refused."""
    conn = raw.driver_connection
    if not isinstance(conn, psycopg.Connection):
        raise TypeError(
            "PostgreSQL backup and restore need the psycopg (3) driver (postgresql+psycopg:// URLs)"
        )
    return conn


@contextmanager
def transaction_connection(engine: Engine, *, read_only: bool) -> Iterator[psycopg.Connection[Any]]:
    """A pooled psycopg connection inside one transaction, put back clean afterwards."""
    raw = engine.raw_connection()
    try:
        conn = driver_connection(raw)
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


def execute_one(conn: psycopg.Connection[Any], statement: str) -> None:
    """Run exactly one statement: the extended protocol refuses a second one."""
    with conn.cursor() as cur:
        cur.execute(statement.encode(), binary=True)  # binary forces the extended protocol


def fetch_all(
    conn: psycopg.Connection[Any], query: str, params: Sequence[Any] | dict[str, Any] = ()
) -> list[tuple[Any, ...]]:
    """Every row of ``query`` (``params`` bound, none when empty)."""
    with conn.cursor() as cur:
        cur.execute(query.encode(), params or None)
        return list(cur.fetchall())
