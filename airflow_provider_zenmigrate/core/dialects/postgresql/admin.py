"""PostgreSQL administration: databases, the migration lock, and the backup reader and
restore writer each operation opens (psycopg 3).

Backups and restores cover every schema of the database but the system ones (or those a
:class:`~...dump.model.BackupScope` names), as pg_dump takes them; the header lists the
schemas a dump holds and those left out, with why. Dumps written before several schemas
were covered (their header lists no schemas) hold ``public`` only, with unqualified names:
they are restored with ``search_path`` set to the new ``public``.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager, suppress
from typing import Any, ClassVar

import psycopg
from sqlalchemy import text
from sqlalchemy.engine import URL, Connection, Engine

from ...dump.model import BackupScope, ObjectSpec, RestoreOptions
from ...errors import MigrationLockTimeout
from ..base import BackupReader, DialectOps, SharedSnapshot
from . import connection
from .catalog import USER_SCHEMA
from .connection import transaction_connection
from .names import quote_literal
from .reader import PostgreSQLBackupReader
from .staging import PostgreSQLStagedWriter, why_not_staged
from .writer import PostgreSQLRestoreWriter

logger = logging.getLogger(__name__)

INVALID_CATALOG_NAME = "3D000"  # SQLSTATE for "database does not exist"
_POLL_SECONDS = 0.1


class PostgreSQLOps(DialectOps):
    """PostgreSQL's administration (databases, advisory locks) and the factories of its
    backup reader and restore writer; what :func:`..get_dialect` returns for it."""

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

    def estimated_rows(self, connection: Connection) -> int | None:
        rows = connection.exec_driver_sql(
            "SELECT SUM(GREATEST(c.reltuples, 0)) FROM pg_class c JOIN pg_namespace n "
            f"ON n.oid = c.relnamespace WHERE {USER_SCHEMA} AND c.relkind IN ('r', 'p')"
        ).scalar()
        return int(rows) if rows is not None else None

    def missing_requirements(
        self, engine: Engine, roles: set[str], extensions: set[str]
    ) -> list[str]:
        from .requirements import missing_requirements

        return missing_requirements(engine, roles, extensions)

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
                try:
                    conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                except Exception as exc:
                    # The session was ended (idle_session_timeout, pg_terminate_backend)
                    # and its lock with it; the work done under it must not fail for that.
                    if not getattr(exc, "connection_invalidated", False):
                        raise
                    logger.warning("lost the lock session of %r", engine.url.database)

    def spare_connections(self, engine: Engine) -> int | None:
        with engine.connect() as conn:
            spare = conn.execute(
                text(
                    "SELECT current_setting('max_connections')::int "
                    "- current_setting('superuser_reserved_connections')::int "
                    "- (SELECT count(*) FROM pg_stat_activity "
                    "WHERE backend_type = 'client backend')"
                )
            ).scalar()
            limit, used = conn.execute(  # the role's own CONNECTION LIMIT (-1: none)
                text(
                    "SELECT rolconnlimit, (SELECT count(*) FROM pg_stat_activity "
                    "WHERE usename = current_user) FROM pg_roles WHERE rolname = current_user"
                )
            ).one()
        if int(limit) >= 0:
            spare = min(int(spare or 0), int(limit) - int(used))
        return max(int(spare or 0), 0)

    # -- backup and restore --------------------------------------------------------------------
    def open_backup(
        self, engine: Engine, scope: BackupScope | None = None
    ) -> AbstractContextManager[PostgreSQLBackupReader]:
        """A REPEATABLE READ, READ ONLY snapshot of the schemas ``scope`` selects.

        The reader also has :meth:`PostgreSQLBackupReader.pre_objects` (schemas, types,
        domains and sequences the tables need), which the engine creates before the first
        table, and :attr:`~PostgreSQLBackupReader.excluded` (schemas left out, and why).
        """
        return _open_backup(engine, scope or BackupScope())

    @contextmanager
    def open_shared_backup(
        self, engine: Engine, scope: BackupScope | None, jobs: int
    ) -> Iterator[SharedSnapshot]:
        """The owner's snapshot, exported (``pg_export_snapshot``) for the workers to
        import; a standby cannot export one, and then one process reads."""
        with _open_backup(engine, scope or BackupScope()) as reader:
            token: str | None = None
            why = ""
            if jobs > 1:
                if reader.in_recovery():
                    jobs, why = 1, "a standby cannot export its snapshot"
                else:
                    token = reader.export_snapshot()
            yield SharedSnapshot(reader, token, jobs, why)

    @contextmanager
    def join_backup(
        self, engine: Engine, token: Any, scope: BackupScope | None
    ) -> Iterator[BackupReader]:
        with transaction_connection(engine, read_only=True) as conn:
            connection.execute_one(conn, f"SET TRANSACTION SNAPSHOT {quote_literal(str(token))}")
            reader = PostgreSQLBackupReader(conn, None, scope or BackupScope())
            try:
                yield reader
            finally:
                reader.close_streams()

    def open_restore(
        self,
        engine: Engine,
        label: str,
        options: RestoreOptions | None = None,
        *,
        resumable: bool = False,
    ) -> AbstractContextManager[PostgreSQLRestoreWriter]:
        """Replace the dump's schemas in one transaction (see
        :class:`PostgreSQLRestoreWriter`). Without a swap nothing is ever committed.
        ``resumable``: built in committed staging schemas instead (:mod:`.staging`), kept
        after a failure for the next attempt; the target changes only at the swap."""
        return _open_restore(engine, label, options, resumable)

    def why_not_resumable(
        self, header: dict[str, Any] | None, objects: Sequence[ObjectSpec]
    ) -> str | None:
        return why_not_staged(header, objects)


#: What a restore's label may be: it becomes part of schema names.
_RESTORE_LABEL = re.compile(r"^[A-Za-z0-9_]{1,40}$")


@contextmanager
def _open_backup(engine: Engine, scope: BackupScope) -> Iterator[PostgreSQLBackupReader]:
    with ExitStack() as stack:
        conn = stack.enter_context(transaction_connection(engine, read_only=True))

        def second() -> psycopg.Connection[Any]:
            return stack.enter_context(transaction_connection(engine, read_only=True))

        reader = PostgreSQLBackupReader(conn, second, scope)
        try:
            yield reader
        finally:
            reader.close_streams()


@contextmanager
def _open_restore(
    engine: Engine, label: str, options: RestoreOptions | None, staged: bool = False
) -> Iterator[PostgreSQLRestoreWriter]:
    if not isinstance(label, str) or not _RESTORE_LABEL.match(label):
        raise ValueError(f"restore label {label!r} must be 1-40 letters, digits or underscores")
    with transaction_connection(engine, read_only=False) as conn:
        # Leaving without swap() rolls back what was not committed: all of a restore in one
        # transaction, the last transaction of a staged one (its staging stays).
        writer = (
            PostgreSQLStagedWriter(conn, engine, label, options)
            if staged
            else PostgreSQLRestoreWriter(conn, label, options)
        )
        try:
            yield writer
        except BaseException as exc:
            with suppress(Exception):
                writer.discard_held(exc)  # out of pipeline mode before the rollback
            with suppress(Exception):
                writer.end_copy(exc)
            raise
        writer.end_copy()  # a COPY the server refuses raises here, not silently
