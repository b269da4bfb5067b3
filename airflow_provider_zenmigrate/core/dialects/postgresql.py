"""PostgreSQL (psycopg 3)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import ClassVar

from sqlalchemy import text
from sqlalchemy.engine import URL, Engine

from ..errors import MigrationLockTimeout
from .base import DialectOps

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
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
