"""SQLite: a database is a file.

The "server" is the folder of the configured database file: other databases (backup
copies, staging files) are sibling files named by plain file names. The master URL is an
in-memory database, which is all a server-level connection can mean here.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

from sqlalchemy import create_engine, event
from sqlalchemy.engine import URL, Engine
from sqlalchemy.pool import NullPool

from ..errors import MigrationLockTimeout
from .base import DialectOps

_HEADER = b"SQLite format 3\x00"
_SIDE_FILES = ("-wal", "-shm", "-journal")
_POLL_SECONDS = 0.05


def database_path(url: URL) -> Path | None:
    """The file behind an URL, or ``None`` for an in-memory database."""
    db = url.database
    if not db or db == ":memory:" or db.startswith("file::memory:"):
        return None
    return Path(db).resolve()


class SQLiteOps(DialectOps):
    name: ClassVar[str] = "sqlite"
    max_name_length: ClassVar[int] = 255  # a file name
    internal_tables: ClassVar[frozenset[str]] = frozenset({"sqlite_sequence", "sqlite_stat1"})

    def validate_database_name(self, name: str) -> str:
        super().validate_database_name(name)
        if "/" in name or "\\" in name or name.strip(".") == "":
            raise ValueError(
                f"SQLite database name {name!r} must be a plain file name "
                "(no folders); it is placed beside the configured database file"
            )
        return name

    def database_url(self, url: URL, database: str | None) -> URL:
        if database is None or database == url.database:
            return url._replace(database=database)
        self.validate_database_name(database)
        main = database_path(url)
        if main is None:
            raise ValueError(
                "an in-memory SQLite database has no folder to hold another database "
                f"named {database!r}; configure a database file"
            )
        if "." not in database and main.suffix:
            database += main.suffix
        return url._replace(database=str(main.parent / database))

    def _path(self, url: URL, name: str) -> Path:
        path = database_path(self.database_url(url, name))
        if path is None:
            raise ValueError("an in-memory SQLite database cannot be created, checked or dropped")
        return path

    def database_exists(self, master: Engine, url: URL, name: str) -> bool:
        path = self._path(url, name)
        if not path.is_file():
            return False
        with path.open("rb") as fh:
            head = fh.read(len(_HEADER))
        return head in (b"", _HEADER)

    def create_database(self, master: Engine, url: URL, name: str) -> None:
        path = self._path(url, name)
        if path.exists():
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url._replace(database=str(path)), poolclass=NullPool)
        try:
            with engine.connect() as conn:
                # Writing the schema cookie turns the empty file into a real database file.
                conn.exec_driver_sql("PRAGMA user_version = 0")
                conn.exec_driver_sql("VACUUM")
        finally:
            engine.dispose()

    def drop_database(self, master: Engine, url: URL, name: str) -> None:
        path = self._path(url, name)
        for candidate in [path, *(Path(f"{path}{s}") for s in _SIDE_FILES)]:
            candidate.unlink(missing_ok=True)

    @contextmanager
    def migration_lock(self, engine: Engine, scope: str, timeout: float) -> Iterator[None]:
        path = database_path(engine.url)
        if path is None:  # an in-memory database is private to its process
            yield
            return
        # A lock file beside the database: flock never interferes with SQLite's own locks.
        lock_path = f"{path}.zenmigrate-lock"
        deadline = time.monotonic() + timeout
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise MigrationLockTimeout(
                            f"could not take the migration lock {lock_path!r} within "
                            f"{timeout:g}s: another migration is running"
                        ) from None
                    time.sleep(_POLL_SECONDS)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def migration_options(self) -> dict[str, object]:
        # With migration_engine below, SQLite DDL is transactional; batch mode lets
        # ALTER-heavy migrations work on SQLite.
        return {"transactional_ddl": True, "render_as_batch": True}

    @contextmanager
    def migration_engine(self, engine: Engine) -> Iterator[Engine]:
        """An engine whose transactions include DDL, so a failed revision rolls back whole.

        pysqlite only opens transactions before DML by itself; we turn its implicit handling
        off and emit BEGIN ourselves (the recipe in SQLAlchemy's SQLite documentation).
        """
        if database_path(engine.url) is None:
            yield engine
            return
        ddl_engine = create_engine(engine.url, poolclass=NullPool)

        @event.listens_for(ddl_engine, "connect")
        def _no_implicit_transactions(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None

        @event.listens_for(ddl_engine, "begin")
        def _explicit_begin(conn: Any) -> None:
            conn.exec_driver_sql("BEGIN")

        try:
            yield ddl_engine
        finally:
            ddl_engine.dispose()
