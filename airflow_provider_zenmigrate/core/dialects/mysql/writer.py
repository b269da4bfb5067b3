"""The MySQL/MariaDB restore writer: a staging database loaded by LOAD DATA LOCAL (or
multi-row INSERTs), its statements checked by :mod:`.statements`, swapped in by :mod:`.swap`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from decimal import Decimal
from typing import Any

import pymysql.err
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

from ...dump.chunk import Chunk
from ...dump.model import ObjectSpec, TableSpec
from ...errors import ZenMigrateError
from ..base import RestoreWriter, StagedBuild
from ..text_rows import BULK_CODECS
from . import parts
from .catalog import table_names
from .grants import RoutineGrant
from .load import BulkLoader, apply_settings, chunk_load_text, load_statement, load_text
from .pymysql_internals import has_multi_statements, set_executemany_limit
from .session import ServerSession
from .statements import LOAD_SQL_MODE, check_object_statement, check_table_statement
from .swap import TargetSwapMixin, alive_lock, drop_side_database

ER_UNKNOWN_SYSTEM_VARIABLE = 1193
# Keep one INSERT well below max_allowed_packet.
_MAX_INSERT_BYTES = 4 * 1024 * 1024


def _plain_decimals(row: tuple[Any, ...], indexes: list[int]) -> tuple[Any, ...]:
    values = list(row)
    for i in indexes:
        if isinstance(values[i], Decimal):
            values[i] = format(values[i], "f")
    return tuple(values)


class MySQLRestoreWriter(TargetSwapMixin, RestoreWriter):
    """Loads a dump into the staging database ``staging`` on ``session`` (and the bulk
    loader's connections), then swaps it in for ``target``'s contents (see :mod:`.swap`)."""

    def __init__(self, session: ServerSession, target: str, staging: str, trash: str) -> None:
        self.session = session
        self.target, self.staging, self.trash = target, staging, trash
        self.objects: list[tuple[ObjectSpec, dict[str, str], str]] = []
        self.swapped = False
        #: Databases this restore created (and drops when it ends).
        self.created: list[str] = []
        #: LOAD DATA LOCAL on further connections, where the server allows it.
        self.bulk_loader: BulkLoader | None = None
        #: Where a failed swap reconnects to put the target back (see :meth:`_recover`).
        self.engine: Engine | None = None
        #: The grants on the target's routines, read before the swap (see .grants).
        self.grants: list[RoutineGrant] = []
        self._load_statements: dict[str, str] = {}
        #: Whether the staging database is an earlier attempt's (a resumed restore).
        self.resumed = False
        #: The sessions that create the tables, in turn: two CREATEs are in flight at once
        #: (see create_table); the first is :attr:`session`, the second is opened for a run
        #: of table records and closed when the main session is next used otherwise.
        self._creators: list[ServerSession] = [session]
        self._settings: list[str] = []
        self._second_refused = False
        self._turn = 0
        #: The session each table was created on, until its rows first load.
        self._creating: dict[str, ServerSession] = {}
        #: A table's first rows, held until the next table's CREATE is sent.
        self._held: tuple[TableSpec, bytes, ServerSession] | None = None

    def _load_settings(self) -> list[str]:
        """The loading sessions' settings (the last one exists on MariaDB only)."""
        quote = self.session.quote
        return [
            f"USE {quote(self.staging)}",
            "SET SESSION time_zone = '+00:00'",
            f"SET SESSION sql_mode = '{LOAD_SQL_MODE}'",
            "SET SESSION FOREIGN_KEY_CHECKS = 0, UNIQUE_CHECKS = 0",
            "SET SESSION check_constraint_checks = 0",
        ]

    def wait_for_bulk_loads(self) -> None:
        """Wait until every chunk handed to the bulk loader is in (raises its error): what
        comes next (INSERTs, objects, counts, the swap) needs all rows loaded."""
        self._finish_sent()
        if self.bulk_loader is not None:
            self.bulk_loader.wait()

    def _finish_sent(self) -> None:
        """Every CREATE answered and the held rows handed to the loader: run before anything
        else uses the main session (its :attr:`~.ServerSession.before_use`)."""
        self._release_held()
        for creator in self._creators:
            creator.answer()
        self._creating.clear()
        self._close_second()

    def _close_second(self) -> None:
        """Let the second creating session go: worker processes count on its connection."""
        for creator in self._creators[1:]:
            creator.close()
        del self._creators[1:]

    def close(self) -> None:
        self.session.before_use = None
        if self.bulk_loader is not None:
            self.bulk_loader.close()
        self._close_second()

    def start(self, engine: Engine, *, resume: bool = False) -> None:
        """Create the staging database (or, with ``resume``, take the one an earlier
        attempt left: :attr:`resumed` says which) and open the loading connections."""
        self.engine = engine
        session = self.session
        if has_multi_statements(session.dbapi):
            # Routine bodies are admitted with semicolons only because one call runs one
            # statement; with this flag a dump could append statements of its own.
            raise ZenMigrateError("restore refuses a connection with CLIENT.MULTI_STATEMENTS")
        row = session.query(
            "SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME "
            "FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s",
            (self.target,),
        )
        if not row:
            raise ZenMigrateError(f"target database {self.target!r} does not exist")
        self.charset, self.collation = row[0]
        # Marks the staging and trash databases as in use until this session ends.
        if session.scalar("SELECT GET_LOCK(%s, 0)", (alive_lock(self.staging),)) != 1:
            raise ZenMigrateError(f"restore label of {self.staging!r} is already in use")
        session.dbapi.autocommit(True)
        self.resumed = resume and bool(
            session.scalar(
                "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s",
                (self.staging,),
            )
        )
        if not self.resumed:
            self.create_staging()
        self.created.append(self.staging)
        settings = self._load_settings()
        for statement in settings[:-1]:
            session.execute(statement)
        try:  # MariaDB: rows are loaded as they were, CHECK constraints are not re-run
            session.execute(settings[-1])
        except pymysql.err.MySQLError as exc:  # MySQL has no such variable
            if exc.args[0] != ER_UNKNOWN_SYSTEM_VARIABLE:
                raise
        self.bulk_loader = BulkLoader.open(engine, settings)
        self._settings = settings
        session.before_use = self._finish_sent
        packet = int(session.scalar("SELECT @@max_allowed_packet"))
        self.max_insert_bytes = max(64 * 1024, min(_MAX_INSERT_BYTES, packet - 64 * 1024))

    def create_staging(self) -> None:
        session = self.session
        session.execute(
            f"CREATE DATABASE {session.quote(self.staging)} "
            f"CHARACTER SET {session.quote(self.charset)} "
            f"COLLATE {session.quote(self.collation)}"
        )

    def discard_staging(self) -> None:
        """Start the staging database over, empty (an earlier attempt's is not usable)."""
        drop_side_database(self.session, self.staging)
        self.create_staging()
        self.session.execute(f"USE {self.session.quote(self.staging)}")
        self.resumed = False

    # -- a resumable restore (see .parts) ----------------------------------------------------
    def progress(self) -> dict[str, str] | None:
        """What an earlier attempt recorded (part or marker -> digest); None if nothing."""
        return parts.read_progress(self.session, self.staging)

    def start_progress(self) -> None:
        parts.create_progress(self.session, self.staging)

    def mark(self, name: str, digest: str) -> None:
        parts.mark(self.session, self.staging, name, digest)

    def loaded_rows(self) -> dict[str, int]:
        return parts.loaded_rows(self.session, self.staging)

    def forget_progress(self) -> None:
        """Drop the progress table: the swap moves every staging table into the target."""
        parts.drop_progress(self.session, self.staging)

    def discard_objects(self) -> None:
        """Drop the views, triggers, routines and events an earlier attempt created in the
        staging database (our dumps keep indexes in their tables), to create them anew."""
        self._drop_objects(self.staging)
        self.objects.clear()

    def staged(self, spec: TableSpec | ObjectSpec) -> None:
        """Nothing to learn: the staging database holds what an earlier attempt created."""

    def staged_builds(self, objects: list[tuple[int, ObjectSpec]]) -> dict[int, StagedBuild]:
        """None: the objects after the data are created in the staging database anyway
        (our dumps keep the indexes inside their tables)."""
        return {}

    def begin_swap(self) -> None:
        """Nothing to do: the objects are created in the staging database, moved by the
        swap."""

    def staging_tables(self) -> list[str]:
        return [t for t in table_names(self.session, self.staging) if t != parts.PROGRESS_TABLE]

    @contextmanager
    def part_loader(self) -> Iterator[parts.PartLoader]:
        """A loading connection for a worker process (opened in it, after the fork)."""
        assert self.engine is not None
        with parts.part_loader(self.engine, self.staging, self._load_settings()) as loader:
            yield loader

    def is_retryable(self, exc: BaseException) -> bool:
        return parts.is_retryable(exc)

    # -- loading ---------------------------------------------------------------------------
    def create_table(self, table: TableSpec) -> None:
        """Send the CREATE on the next creating session, without waiting: InnoDB takes a few
        ms to create a table (more while rows load beside it), and two sessions create two
        at once. The table's first rows are held (:meth:`_submit`) until this next CREATE
        is sent, then loaded once their own CREATE is answered."""
        _settings, sql = check_table_statement(table)
        if len(self._creators) == 1 and not self._second_refused and self.engine is not None:
            second = _second_creator(self.engine, self._settings)
            self._second_refused = second is None
            self._creators += [second] if second is not None else []
        creator = self._creators[self._turn % len(self._creators)]
        self._turn += 1
        creator.send_dump(sql, self.record_line, f"table record of {table.name!r}")
        self._creating[table.name] = creator
        self._release_held()

    def _bulk_loads(self, table: TableSpec, width: int) -> bool:
        """Whether rows of ``table`` (``width`` columns) go by LOAD DATA."""
        if self.bulk_loader is None or width != len(table.columns):
            return False
        return {c.codec for c in table.columns} <= BULK_CODECS

    def load_chunk(self, table: TableSpec, chunk: Chunk) -> None:
        if not self._bulk_loads(table, len(chunk.names)):
            super().load_chunk(table, chunk)
        elif len(chunk):
            self._submit(table, chunk_load_text(table, chunk))

    def load_encoded(self, table: TableSpec, columns: list[Sequence[Any]]) -> None:
        if not self._bulk_loads(table, len(columns)):
            super().load_encoded(table, columns)
            return
        if columns[0]:
            self._submit(table, load_text(table, list(columns)))

    def _submit(self, table: TableSpec, data: bytes) -> None:
        creator = self._creating.pop(table.name, None)
        if creator is not None and self._held is None:
            self._held = (table, data, creator)  # loaded once the next CREATE is sent
            return
        self._release_held()
        if creator is not None:
            creator.answer()  # the table exists before its rows load on another connection
        self._load(table, data)

    def _release_held(self) -> None:
        held, self._held = self._held, None
        if held is not None:
            table, data, creator = held
            creator.answer()
            self._load(table, data)

    def _load(self, table: TableSpec, data: bytes) -> None:
        assert self.bulk_loader is not None
        statement = self._load_statements.get(table.name)
        if statement is None:
            statement = load_statement(self.session.quote, self.staging, table)
            self._load_statements[table.name] = statement
        self.bulk_loader.submit(table, statement, data)

    def load_rows(self, table: TableSpec, rows: list[tuple[Any, ...]]) -> None:
        if not rows:
            return
        self.wait_for_bulk_loads()
        session = self.session
        width = len(table.columns)
        if any(len(row) != width for row in rows):
            raise ZenMigrateError(f"table {table.name!r}: a row does not have {width} values")
        columns = ", ".join(session.quote(c.name) for c in table.columns)
        placeholders = ", ".join(["%s"] * width)
        table_name = f"{session.quote(self.staging)}.{session.quote(table.name)}"
        sql = f"INSERT INTO {table_name} ({columns}) VALUES ({placeholders})"
        # pymysql writes a Decimal unquoted, and 1E-30 would be read as a DOUBLE: a string
        # in plain notation converts to DECIMAL exactly.
        decimals = [i for i, c in enumerate(table.columns) if c.codec == "decimal"]
        if decimals:
            rows = [_plain_decimals(row, decimals) for row in rows]
        with session.dbapi.cursor() as cur:
            # pymysql turns this into multi-row INSERTs of at most that many bytes.
            set_executemany_limit(cur, self.max_insert_bytes)
            cur.executemany(sql, rows)

    def create_object(self, obj: ObjectSpec) -> None:
        self.wait_for_bulk_loads()
        settings, sql = check_object_statement(obj)
        if obj.object_type == "index":  # moves with its table in the swap's RENAME TABLE
            self._create_in_settings(settings, sql)
            return
        if obj.object_type != "event":  # an event could fire in staging
            # Rehearse in staging, so a definition that fails fails before the swap.
            self._create_in_settings(settings, sql)
        self.objects.append((obj, settings, sql))

    def counted_table(self, table: TableSpec) -> str:
        return f"{self.session.quote(self.staging)}.{self.session.quote(table.name)}"

    def counted_rows(self, query: str) -> Iterable[Sequence[Any]]:
        self.wait_for_bulk_loads()
        return self.session.query(query)


#: The server has no connection to spare: too many in all, for this user, or for this
#: account's max_user_connections.
_NO_CONNECTION_LEFT = frozenset({1040, 1203, 1226})


def _second_creator(engine: Engine, settings: list[str]) -> ServerSession | None:
    """A second session to create tables on, with the loading sessions' settings; None
    where the server has no connection to spare (the restore then creates on one)."""
    try:
        raw = engine.raw_connection()
    except (DBAPIError, pymysql.err.MySQLError) as exc:  # the pool does not wrap its errors
        error = exc.orig if isinstance(exc, DBAPIError) else exc
        if getattr(error, "args", (None,))[0] in _NO_CONNECTION_LEFT:
            return None
        raise
    raw.detach()
    connection: Any = raw.dbapi_connection
    try:
        apply_settings(connection, settings)
    except BaseException:
        with suppress(Exception):
            connection.close()
        raise
    return ServerSession(connection, engine)
