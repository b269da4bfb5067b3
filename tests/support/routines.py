"""Routines of every type each dialect's backup writes, and the small helpers the routine
tests share: a scratch database, statements run and queried on it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy
from sqlalchemy.engine import URL
from sqlalchemy.pool import NullPool

from airflow_provider_zenmigrate.core.utils import MigrationUtils
from tests.support.servers import database_url

# One statement per routine type each dialect's backup writes, by type.
ROUTINES = {
    "mysql": {
        "function": "CREATE FUNCTION f_double(x INT) RETURNS INT DETERMINISTIC RETURN x * 2",
        "procedure": "CREATE PROCEDURE p_count(OUT n INT) SELECT COUNT(*) INTO n FROM item",
        "event": (
            "CREATE EVENT e_tidy ON SCHEDULE EVERY 1 DAY DISABLE DO DELETE FROM item WHERE id < 0"
        ),
    },
    "postgresql": {
        "function": (
            "CREATE FUNCTION f_double(x int) RETURNS int LANGUAGE sql IMMUTABLE "
            "AS $$ SELECT x * 2 $$"
        ),
        "procedure": "CREATE PROCEDURE p_touch() LANGUAGE sql AS $$ UPDATE item SET v = v $$",
        "aggregate": "CREATE AGGREGATE agg_sum(int) (SFUNC = int4pl, STYPE = int)",
    },
}


def run(url: URL, *statements: str) -> None:
    """Run ``statements`` in one transaction on ``url``'s database."""
    engine = sqlalchemy.create_engine(url, poolclass=NullPool)
    try:
        with engine.begin() as conn:
            for statement in statements:
                conn.exec_driver_sql(statement)
    finally:
        engine.dispose()


def query(url: URL, sql: str) -> list[Any]:
    """The rows of ``sql`` on ``url``'s database, as tuples."""
    engine = sqlalchemy.create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.exec_driver_sql(sql).all()]
    finally:
        engine.dispose()


@contextmanager
def scratch_database(dialect: str, tmp_path: Path) -> Iterator[MigrationUtils]:
    """A new database on ``dialect``'s server for one test, dropped after it."""
    utils = MigrationUtils(url=database_url(dialect, tmp_path), connect_args={}, engine_args={})
    utils.create_database()
    try:
        yield utils
    finally:
        utils.drop_database()
        utils.dispose()
