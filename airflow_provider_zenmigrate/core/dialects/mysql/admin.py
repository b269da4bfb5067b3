"""MySQL/MariaDB administration: databases, the migration lock, and where backups and
restores begin (:meth:`MySQLOps.open_backup`, :meth:`MySQLOps.open_restore`).
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from typing import Any, ClassVar

import pymysql.err
from sqlalchemy import event, text
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.exc import DBAPIError

from ...dump.model import BackupScope, RestoreOptions
from ...errors import MigrationLockTimeout
from ..base import BackupReader, DialectOps, RestoreWriter, SharedSnapshot
from .pymysql_internals import SharedTLSConnection
from .reader import (
    MySQLBackupReader,
    begin_snapshot,
    prepare_snapshot,
    shared_snapshot_lock,
    snapshot_session,
    start_snapshots,
)
from .session import server_session
from .swap import drop_side_databases, drop_stale_side_databases, side_name
from .writer import MySQLRestoreWriter

logger = logging.getLogger(__name__)

ER_BAD_DB_ERROR = 1049  # "Unknown database"
# A restore label goes into the side databases' names (see .swap.side_name).
_RESTORE_LABEL = re.compile(r"[A-Za-z0-9_]{1,40}")


def _nothing() -> None:
    return None


class MySQLOps(DialectOps):
    """Administration of MySQL/MariaDB databases, the migration lock, and the factories of
    the backup reader and the restore writer."""

    name: ClassVar[str] = "mysql"
    max_name_length: ClassVar[int] = 64

    def validate_database_name(self, name: str) -> str:
        super().validate_database_name(name)
        if name != name.rstrip(" "):
            raise ValueError(f"database name {name!r} ends with a space, which MySQL refuses")
        return name

    def configure_engine(self, engine: Engine) -> None:
        """pymysql's connections share one TLS context among those given no TLS option
        (:class:`.pymysql_internals.SharedTLSConnection`); other drivers are left as they are,
        and so is a ``creator`` given in ``engine_args`` (it bypasses this hook)."""
        if engine.dialect.driver != "pymysql":
            return

        @event.listens_for(engine, "do_connect")
        def _connect(_dialect: Any, _record: Any, cargs: list[Any], cparams: dict[str, Any]) -> Any:
            return SharedTLSConnection(*cargs, **cparams)

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

    def estimated_rows(self, connection: Connection) -> int | None:
        rows = connection.exec_driver_sql(
            "SELECT SUM(TABLE_ROWS) FROM information_schema.TABLES "
            "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_TYPE = 'BASE TABLE'"
        ).scalar()
        return int(rows) if rows is not None else None

    def spare_connections(self, engine: Engine) -> int | None:
        with engine.connect() as conn:
            limit, per_user = conn.execute(
                text("SELECT @@max_connections, @@max_user_connections")
            ).one()
            row = conn.execute(text("SHOW GLOBAL STATUS LIKE 'Threads_connected'")).first()
            used = int(row[1]) if row else 0
            spare = int(limit) - used
            if int(per_user):  # the account's own limit, counted over its sessions we can see
                mine = conn.execute(
                    text(
                        "SELECT COUNT(*) FROM information_schema.PROCESSLIST "
                        "WHERE USER = SUBSTRING_INDEX(CURRENT_USER(), '@', 1)"
                    )
                ).scalar()
                spare = min(spare, int(per_user) - int(mine or 0))
        return max(spare, 0)

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
                try:
                    conn.execute(text("SELECT RELEASE_LOCK(:k)"), {"k": key})
                    conn.rollback()
                except Exception as exc:
                    # The server ended the idle lock session (wait_timeout, KILL) and freed
                    # the lock with it; the work done under it must not fail for that.
                    if not getattr(exc, "connection_invalidated", False):
                        raise
                    logger.warning("lost the lock session of %r", engine.url.database)

    # -- backup and restore --------------------------------------------------------------------
    @contextmanager
    def open_backup(
        self, engine: Engine, scope: BackupScope | None = None
    ) -> Iterator[BackupReader]:
        self.refuse_scope(scope)
        database = self.database_name(engine.url)
        with ExitStack() as stack:
            session = stack.enter_context(server_session(engine))
            helpers, shared = start_snapshots(engine, stack, session, database)
            yield MySQLBackupReader(session, database, helpers, shared)

    @contextmanager
    def open_shared_backup(
        self, engine: Engine, scope: BackupScope | None, jobs: int
    ) -> Iterator[SharedSnapshot]:
        """The owner's snapshot begun while every table is locked; the workers begin theirs
        before ``release`` unlocks them (see :func:`.reader.shared_snapshot_lock`). Where
        the tables cannot be locked, one process reads (``jobs`` 1, ``why`` says why)."""
        self.refuse_scope(scope)
        database = self.database_name(engine.url)
        with ExitStack() as stack:
            session = stack.enter_context(server_session(engine))
            prepare_snapshot(session, database)
            why = ""
            release: Callable[[], None] = _nothing
            if jobs > 1:
                try:
                    release = stack.enter_context(shared_snapshot_lock(engine, database))
                except (pymysql.err.MySQLError, DBAPIError) as exc:
                    jobs, why = 1, f"the tables could not be locked for a shared start ({exc})"
            begin_snapshot(session)
            reader = MySQLBackupReader(session, database, (), {})
            yield SharedSnapshot(reader, None, jobs, why, release)

    def join_backup(
        self, engine: Engine, token: Any, scope: BackupScope | None
    ) -> AbstractContextManager[BackupReader]:
        return snapshot_session(engine, self.database_name(engine.url))

    @contextmanager
    def open_restore(
        self,
        engine: Engine,
        label: str,
        options: RestoreOptions | None = None,
        *,
        resumable: bool = False,
    ) -> Iterator[RestoreWriter]:
        if not _RESTORE_LABEL.fullmatch(label):
            raise ValueError(f"restore label {label!r} must match {_RESTORE_LABEL.pattern}")
        target = self.database_name(engine.url)
        staging = side_name("zmstage", label, target)
        trash = side_name("zmtrash", label, target)
        writer: MySQLRestoreWriter | None = None
        failed = True
        try:
            with server_session(engine) as session:
                writer = MySQLRestoreWriter(session, target, staging, trash)
                try:
                    writer.start(engine, resume=resumable)
                    yield writer
                    failed = False
                finally:
                    writer.close()
        finally:
            # Only what this restore created, on a fresh connection: the restore's own may be
            # the thing that broke. A resumable restore that failed keeps its staging.
            if writer is not None and writer.created:
                kept = {staging} if failed and resumable else set()
                drop_side_databases(engine, *(n for n in writer.created if n not in kept))
        if writer is not None and writer.swapped:
            drop_stale_side_databases(engine, target)
