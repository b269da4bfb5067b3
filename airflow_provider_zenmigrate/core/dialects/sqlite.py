"""SQLite: a database is a file.

The "server" is the folder of the configured database file: other databases (backup
copies, staging files) are sibling files named by plain file names. The master URL is an
in-memory database, which is all a server-level connection can mean here.
"""

from __future__ import annotations

import fcntl
import glob
import os
import sqlite3
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any, ClassVar

from sqlalchemy import create_engine, event
from sqlalchemy.engine import URL, Engine
from sqlalchemy.pool import NullPool

from ..dump.model import BackupScope, ColumnSpec, ObjectSpec, RestoreOptions, TableSpec
from ..dump.safety import check_statement
from ..errors import MigrationLockTimeout
from ..sql_lexer import SQLITE
from ..storage import fsync_path
from .base import BackupReader, DialectOps, RestoreWriter, Span

_HEADER = b"SQLite format 3\x00"
_SIDE_FILES = ("-wal", "-shm", "-journal")
_POLL_SECONDS = 0.05


def _quote_ident(name: str) -> str:
    """Quote an identifier, always."""
    return '"' + name.replace('"', '""') + '"'


def _replace_database(source: Path, target: Path) -> None:
    """Move a finished database file over ``target`` in one rename.

    The target's WAL and shared-memory files belong to the old contents: they go first, so
    the new file is never read together with the old log. Before that, commits still in the
    old WAL (or a hot journal's rollback) are folded into the old file, so a process killed
    between the deletions and the rename leaves the old database whole.
    """
    fsync_path(source)
    if target.exists():
        try:
            with closing(sqlite3.connect(target)) as conn:
                conn.execute("SELECT count(*) FROM sqlite_master").fetchone()  # hot journal
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        except sqlite3.Error:
            pass  # not a readable database: the restore replaces it all the same
    for suffix in _SIDE_FILES:
        Path(f"{target}{suffix}").unlink(missing_ok=True)
    os.replace(source, target)
    fsync_path(target.parent)


def _discard_stale_staging(target: Path) -> None:
    """Delete the staging files of restores of ``target`` that died before their cleanup.

    A running restore holds an flock on its staging file (see :class:`SQLiteRestoreWriter`);
    a file nobody holds is a dead one's.
    """
    prefix = f"{target.name}.zm-stage-"
    for path in target.parent.glob(f"{glob.escape(prefix)}*"):
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            path.unlink(missing_ok=True)
        except OSError:
            continue  # a running restore's
        finally:
            os.close(fd)


def _in_wal_mode(path: Path) -> bool:
    """Whether the database file is in WAL mode (header bytes 18 and 19 are 2)."""
    try:
        with path.open("rb") as fh:
            head = fh.read(20)
    except FileNotFoundError:
        return False
    return head[:16] == _HEADER and head[18:20] == b"\x02\x02"


def _required_path(url: URL) -> Path:
    path = database_path(url)
    if path is None:
        raise ValueError("backup and restore need an SQLite database file, not :memory:")
    return path


def database_path(url: URL) -> Path | None:
    """The file behind an URL, or ``None`` for an in-memory database."""
    db = url.database
    if not db or db == ":memory:" or db.startswith("file::memory:"):
        return None
    return Path(db).resolve()


@contextmanager
def file_lock(path: str | Path, timeout: float, busy: str) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created if missing) while the block runs;
    :class:`MigrationLockTimeout` with the message ``busy`` after ``timeout`` seconds. The
    kernel releases it when the process dies, however it dies."""
    deadline = time.monotonic() + timeout
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise MigrationLockTimeout(busy) from None
                time.sleep(_POLL_SECONDS)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


class SQLiteOps(DialectOps):
    name: ClassVar[str] = "sqlite"
    max_name_length: ClassVar[int] = 255  # a file name
    internal_tables: ClassVar[frozenset[str]] = frozenset({"sqlite_sequence", "sqlite_stat1"})
    connecting_creates_database: ClassVar[bool] = True

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
        busy = f"could not take the migration lock {lock_path!r} within {timeout:g}s: another "
        with file_lock(lock_path, timeout, busy + "migration is running"):
            yield

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

    # -- backup and restore --------------------------------------------------------------------
    @contextmanager
    def open_backup(
        self, engine: Engine, scope: BackupScope | None = None
    ) -> Iterator[BackupReader]:
        self.refuse_scope(scope)
        reader = SQLiteBackupReader(_required_path(engine.url))
        try:
            yield reader
        finally:
            reader.close()

    @contextmanager
    def open_restore(
        self,
        engine: Engine,
        label: str,
        options: RestoreOptions | None = None,
        *,
        resumable: bool = False,  # one transaction (PostgreSQL) or a temporary file: never kept
    ) -> Iterator[RestoreWriter]:
        target = _required_path(engine.url)
        writer = SQLiteRestoreWriter(target, target.with_name(f"{target.name}.zm-stage-{label}"))
        try:
            yield writer
        finally:
            writer.discard()
            # Pooled connections still see the replaced file; new ones must open the new one.
            engine.dispose()

    def copy_database(self, source: Engine, target: Engine) -> None:
        """SQLite's online backup API: a consistent page copy, swapped in by rename."""
        src = _required_path(source.url)
        dst = _required_path(target.url)
        staging = dst.with_name(f"{dst.name}.zm-copy-{uuid.uuid4().hex[:8]}")
        try:
            with (
                closing(sqlite3.connect(src)) as from_conn,
                closing(sqlite3.connect(staging)) as to_conn,
            ):
                from_conn.backup(to_conn)
            _replace_database(staging, dst)
        finally:
            staging.unlink(missing_ok=True)
            target.dispose()


class SQLiteBackupReader(BackupReader):
    """A read transaction on its own connection: SQLite's snapshot for the whole backup."""

    def __init__(self, path: Path) -> None:
        if not path.is_file():
            raise FileNotFoundError(f"SQLite database {str(path)!r} does not exist")
        self.conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, isolation_level=None)
        self.conn.execute("BEGIN")
        self.conn.execute("SELECT count(*) FROM sqlite_master").fetchone()  # takes the snapshot
        self.server_version = f"SQLite {sqlite3.sqlite_version}"

    def close(self) -> None:
        self.conn.close()

    def _sequences(self) -> dict[str, int]:
        exists = self.conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'sqlite_sequence'"
        ).fetchone()
        if not exists:
            return {}
        return dict(self.conn.execute("SELECT name, seq FROM sqlite_sequence").fetchall())

    def tables(self) -> list[TableSpec]:
        sequences = self._sequences()
        found = self.conn.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'table' "
            "AND name NOT LIKE 'sqlite!_%' ESCAPE '!' ORDER BY rowid"
        ).fetchall()
        # Every table's columns in one statement (the table-valued form of PRAGMA
        # table_xinfo joined over the schema), not a PRAGMA per table; rows as the PRAGMA's.
        infos: dict[str, list[tuple[Any, ...]]] = {}
        for name, *column in self.conn.execute(
            'SELECT m.name, p.cid, p.name, p.type, p."notnull", p.dflt_value, p.pk, p.hidden '
            "FROM sqlite_master AS m JOIN pragma_table_xinfo(m.name) AS p "
            "WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite!_%' ESCAPE '!' "
            "ORDER BY m.rowid, p.cid"
        ):
            infos.setdefault(name, []).append(tuple(column))
        specs = []
        for name, sql in found:
            info = infos.get(name, [])
            # hidden: 0 ordinary, 1 hidden (virtual tables), 2/3 generated (recomputed)
            columns = tuple(
                ColumnSpec(name=col[1], codec="dynamic", type=col[2]) for col in info if col[6] == 0
            )
            key = tuple(col[1] for col in sorted(info, key=lambda c: c[5]) if col[5] > 0)
            options: dict[str, Any] = {"without_rowid": "WITHOUT ROWID" in sql.upper()}
            if name in sequences:
                options["autoincrement"] = sequences[name]
            specs.append(TableSpec(name, sql, columns, key, options))
        return specs

    def rows(
        self, table: TableSpec, chunk_rows: int, span: Span | None = None
    ) -> Iterator[list[tuple[Any, ...]]]:
        if span is not None:  # slice_domain offers none: a table is read whole
            raise ValueError("SQLite tables are read whole, not in spans")
        columns = ", ".join(_quote_ident(c.name) for c in table.columns)
        if table.options.get("without_rowid"):
            order = ", ".join(_quote_ident(k) for k in table.key)
        else:
            order = "_rowid_"
        cursor = self.conn.execute(
            f"SELECT {columns} FROM {_quote_ident(table.name)} ORDER BY {order}"
        )
        try:
            while chunk := cursor.fetchmany(chunk_rows):
                yield chunk
        finally:
            cursor.close()

    def objects(self) -> list[ObjectSpec]:
        found = self.conn.execute(
            "SELECT type, name, tbl_name, sql FROM sqlite_master "
            "WHERE type IN ('index', 'view', 'trigger') AND sql IS NOT NULL ORDER BY rowid"
        ).fetchall()
        return [
            ObjectSpec(object_type=kind, name=name, create_stmt=sql, table=table)
            for kind, name, table, sql in found
        ]


def check_table_statement(table: TableSpec) -> None:
    """Every check the restore makes of a table record's statement (the writer and the
    dry run's rule pass both call this)."""
    check_statement(table.create_stmt, "table", table.name, rules=SQLITE)


def check_object_statement(obj: ObjectSpec) -> None:
    """Every check the restore makes of an object record's statement (as above)."""
    # Trigger bodies hold semicolons; sqlite3 runs one statement per execute() anyway.
    check_statement(
        obj.create_stmt,
        obj.object_type,
        obj.name,
        rules=SQLITE,
        allow_body=obj.object_type == "trigger",
    )


class SQLiteRestoreWriter(RestoreWriter):
    """Builds the restored database in a staging file beside the target, then renames it."""

    def __init__(self, target: Path, staging: Path) -> None:
        self.target = target
        self.staging = staging
        # Held until discard(): marks the staging file as in use (_discard_stale_staging).
        self.lock: int | None = os.open(staging, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        fcntl.flock(self.lock, fcntl.LOCK_EX)
        self.conn: sqlite3.Connection | None = sqlite3.connect(staging, isolation_level=None)
        # The staging file is thrown away on any failure: no journal, no syncs while loading.
        self.conn.execute("PRAGMA journal_mode = OFF")
        self.conn.execute("PRAGMA synchronous = OFF")
        self.conn.execute("BEGIN")
        self.sequences: dict[str, int] = {}

    def _staging_conn(self) -> sqlite3.Connection:
        """The staging database's connection, until :meth:`swap` or :meth:`discard` closes it."""
        if self.conn is None:
            raise RuntimeError("the staging database is closed")
        return self.conn

    def create_table(self, table: TableSpec) -> None:
        check_table_statement(table)
        self._staging_conn().execute(table.create_stmt)
        if "autoincrement" in table.options:
            self.sequences[table.name] = int(table.options["autoincrement"])

    def load_rows(self, table: TableSpec, rows: list[tuple[Any, ...]]) -> None:
        columns = ", ".join(_quote_ident(c.name) for c in table.columns)
        marks = ", ".join("?" for _ in table.columns)
        self._staging_conn().executemany(
            f"INSERT INTO {_quote_ident(table.name)} ({columns}) VALUES ({marks})", rows
        )

    def create_object(self, obj: ObjectSpec) -> None:
        check_object_statement(obj)
        self._staging_conn().execute(obj.create_stmt)

    def counted_table(self, table: TableSpec) -> str:
        return _quote_ident(table.name)

    def counted_rows(self, query: str) -> Iterable[Sequence[Any]]:
        return self._staging_conn().execute(query).fetchall()

    def swap(self) -> None:
        conn = self._staging_conn()
        for name, seq in self.sequences.items():
            conn.execute("DELETE FROM sqlite_sequence WHERE name = ?", (name,))
            conn.execute("INSERT INTO sqlite_sequence (name, seq) VALUES (?, ?)", (name, seq))
        conn.execute("COMMIT")
        if _in_wal_mode(self.target):
            # Keep the target's journal mode: in WAL, writers commit while a backup reads.
            conn.execute("PRAGMA journal_mode = WAL")
        conn.close()
        self.conn = None
        _replace_database(self.staging, self.target)
        _discard_stale_staging(self.target)

    def discard(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None
        self.staging.unlink(missing_ok=True)
        if self.lock is not None:
            os.close(self.lock)
            self.lock = None
