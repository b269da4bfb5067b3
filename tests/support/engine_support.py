"""Helpers for engine tests: sample data, dump surgery and staging leftovers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import sqlalchemy
from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.pool import NullPool

from airflow_provider_zenmigrate.core.alembic import Alembic
from airflow_provider_zenmigrate.core.dump.records import serialize
from airflow_provider_zenmigrate.core.utils import MigrationUtils
from tests.support.paths import EXAMPLE_MIGRATIONS
from tests.support.servers import server_url

Record = dict[str, Any]


def populate_library(utils: MigrationUtils, authors: int = 50) -> None:
    """The example migrations at head plus rows in every table."""
    Alembic(utils.engine, script_location=EXAMPLE_MIGRATIONS).upgrade()
    with utils.engine.begin() as conn:
        conn.execute(
            text("INSERT INTO author (id, name, email) VALUES (:id, :name, :email)"),
            [
                {"id": i, "name": f"Author {i} ✍️ 😀", "email": None if i % 3 else f"a{i}@x.org"}
                for i in range(1, authors + 1)
            ],
        )
        conn.execute(
            text("INSERT INTO book (id, author_id, title) VALUES (:id, :author, :title)"),
            [
                {"id": i, "author": 1 + i % authors, "title": f"Book «{i}» — naïve café"}
                for i in range(1, 3 * authors + 1)
            ],
        )


def make_library(url: URL) -> None:
    """A database at the example migrations' head, created in-process (fast)."""
    with MigrationUtils(url=url, connect_args={}, engine_args={}) as utils:
        if not utils.database_exists():
            utils.create_database()
        Alembic(utils.engine, script_location=EXAMPLE_MIGRATIONS).upgrade()


def read_lines(path: Path) -> list[Record]:
    return [json.loads(line) for line in path.read_bytes().splitlines()]


def write_lines(path: Path, records: list[Record]) -> None:
    path.write_bytes(b"".join(serialize(r) + b"\n" for r in records))


def line_of(records: list[Record], predicate: Any) -> int:
    return next(i for i, r in enumerate(records, start=1) if predicate(r))


def folder_files(folder: Path) -> set[str]:
    """The names in a folder but SQLite targets' lock files (a restore may leave those)."""
    return {p.name for p in folder.iterdir() if "zenmigrate-lock" not in p.name}


def server_objects(url: URL, folder: Path) -> set[str]:
    """Every database, schema or file a restore could have left behind."""
    backend = url.get_backend_name()
    if backend == "sqlite":
        return folder_files(folder)
    engine = sqlalchemy.create_engine(
        server_url("mysql" if backend in ("mysql", "mariadb") else "postgresql"),
        poolclass=NullPool,
    )
    try:
        with engine.connect() as conn:
            if backend in ("mysql", "mariadb"):
                return set(
                    conn.exec_driver_sql(
                        "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA"
                    ).scalars()
                )
            names = set(conn.exec_driver_sql("SELECT datname FROM pg_database").scalars())
        target = sqlalchemy.create_engine(url, poolclass=NullPool)
        with target.connect() as conn:
            names |= {
                f"schema:{n}"
                for n in conn.exec_driver_sql("SELECT nspname FROM pg_namespace").scalars()
            }
        target.dispose()
        return names
    finally:
        engine.dispose()


def restore_side_objects(url: URL, folder: Path) -> set[str]:
    """What a restore into ``url`` can leave beside it, and nothing of other targets: files in
    an SQLite target's folder, MariaDB databases carrying the target's name
    (``zmstage_<label>_<target>``, ``zmtrash_...``), the schemas a PostgreSQL restore renames
    away in the target.
    Other tests, in this pytest worker or another, restore on the same servers meanwhile."""
    found = server_objects(url, folder)
    name = Path(url.database or "").name
    if url.get_backend_name() == "sqlite":
        return found - {name}
    # PostgreSQL: a restore works in the target itself, schemas being what a dump holds;
    # what one could leave are the old schemas it renames away (zm_old_*) or, before,
    # staging schemas (zm_stage_*).
    left = ("schema:zm_old_", "schema:zm_stage_")
    return {n for n in found if n.startswith(left) or (name in n and n != name)}
