"""MySQL and MariaDB.

Tested against MariaDB 10.11 only. Known MySQL 8 differences (untested here): none yet
for administration and locking; GET_LOCK and information_schema behave the same.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

from sqlalchemy import text
from sqlalchemy.engine import URL, Engine

from ..errors import MigrationLockTimeout
from .base import DialectOps

ER_BAD_DB_ERROR = 1049  # "Unknown database"


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
                conn.execute(text("SELECT RELEASE_LOCK(:k)"), {"k": key})
                conn.rollback()
