"""The contract every dialect (a module or a package) fulfils, with the behaviour most
backends share."""

from __future__ import annotations

import binascii
import hashlib
import uuid
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, TypeVar, runtime_checkable

from sqlalchemy import Connection, inspect
from sqlalchemy.engine import URL, Engine

from ..dump.chunk import Chunk
from ..dump.codecs import decoders
from ..dump.model import BackupScope, ObjectSpec, RestoreOptions, TableSpec
from ..errors import ZenMigrateError

# Tables a backend creates for its own bookkeeping; never part of a user's schema.
_NO_INTERNAL_TABLES: frozenset[str] = frozenset()


class DialectOps(ABC):
    """Backend-specific administration: databases, names, locks."""

    name: ClassVar[str]
    #: Longest database name the server accepts, in characters.
    max_name_length: ClassVar[int]
    internal_tables: ClassVar[frozenset[str]] = _NO_INTERNAL_TABLES
    #: Connecting to a database that does not exist creates it (SQLite's file), so whether it
    #: exists cannot be learnt by connecting to it; elsewhere that fails with an error that
    #: :meth:`is_missing_database_error` recognises.
    connecting_creates_database: ClassVar[bool] = False

    # -- names -----------------------------------------------------------------------------
    def validate_database_name(self, name: str) -> str:
        """Refuse names the server would mangle or reject; quoting handles everything else."""
        if not isinstance(name, str) or name == "":
            raise ValueError("database name must be a non-empty string")
        if "\x00" in name:
            raise ValueError(f"database name {name!r} contains a NUL character")
        if len(name) > self.max_name_length:
            raise ValueError(
                f"database name {name!r} is longer than {self.max_name_length} characters, "
                f"the {self.name} limit"
            )
        return name

    def quote(self, engine: Engine, name: str) -> str:
        """Quote an identifier with the backend's own rules (always quoted, escapes doubled)."""
        return engine.dialect.identifier_preparer.quote_identifier(name)

    # -- URLs --------------------------------------------------------------------------------
    def database_url(self, url: URL, database: str | None) -> URL:
        """URL of ``database`` on the same server; ``None`` means the server-level database."""
        if database is not None:
            self.validate_database_name(database)
        return url._replace(database=database)

    def master_url(self, url: URL) -> URL:
        return self.database_url(url, None)

    def configure_engine(self, engine: Engine) -> None:
        """Set up a new engine of this backend (its driver's connections); most need nothing."""
        return None

    def database_name(self, url: URL) -> str:
        """Name of the database an URL points at; administration needs one."""
        if not url.database:
            raise ValueError(
                f"the URL {url.render_as_string(hide_password=True)} names no database"
            )
        return url.database

    # -- administration ----------------------------------------------------------------------
    @abstractmethod
    def database_exists(self, master: Engine, url: URL, name: str) -> bool: ...

    @abstractmethod
    def create_database(self, master: Engine, url: URL, name: str) -> None: ...

    @abstractmethod
    def drop_database(self, master: Engine, url: URL, name: str) -> None: ...

    def is_missing_database_error(self, error: BaseException) -> bool:
        return False

    def user_tables(self, connection: Connection, schema: str | None = None) -> list[str]:
        names = inspect(connection).get_table_names(schema=schema)
        return [n for n in names if n not in self.internal_tables]

    def estimated_rows(self, connection: Connection) -> int | None:
        """Rows in the user's tables, for progress estimates; exact here, statistics where
        a backend keeps them (a full count would read every table twice)."""
        quote = connection.dialect.identifier_preparer.quote
        return sum(
            int(connection.exec_driver_sql(f"SELECT COUNT(*) FROM {quote(t)}").scalar() or 0)
            for t in self.user_tables(connection)
        )

    def spare_connections(self, engine: Engine) -> int | None:
        """How many more connections the server would accept now (None: no limit known);
        a parallel backup or restore runs no more workers than that."""
        return None

    # -- migrations --------------------------------------------------------------------------
    @staticmethod
    def lock_digest(engine: Engine, scope: str) -> bytes:
        """A stable digest naming the lock on ``scope`` in this engine's database."""
        return hashlib.sha256(f"zenmigrate:{engine.url.database or ''}:{scope}".encode()).digest()

    @abstractmethod
    @contextmanager
    def migration_lock(self, engine: Engine, scope: str, timeout: float) -> Iterator[None]:
        """Hold an exclusive, cross-process lock on ``scope`` while the block runs."""
        yield  # pragma: no cover

    @contextmanager
    def migration_engine(self, engine: Engine) -> Iterator[Engine]:
        """Engine to run migrations on; backends whose driver autocommits DDL override it."""
        yield engine

    def migration_options(self) -> dict[str, object]:
        """Extra ``EnvironmentContext.configure`` options this backend needs."""
        return {}

    # -- backup and restore --------------------------------------------------------------------
    def missing_requirements(
        self, engine: Engine, roles: set[str], extensions: set[str]
    ) -> list[str]:
        """What a restore into ``engine``'s database needs and the server lacks: one message
        per role or extension the dump's records name that the restore could not use or
        create there (empty when nothing is missing). Called by the rule pass of restores
        and dry runs (:mod:`..preflight`) only for names it has not checked yet.

        Backends whose dumps name neither keep this default: nothing is ever missing, and
        no connection is made.
        """
        return []

    def open_backup(
        self, engine: Engine, scope: BackupScope | None = None
    ) -> AbstractContextManager[BackupReader]:
        """A consistent, read-only view of the whole database for one backup.

        ``scope`` narrows it to some schemas where a database has several (PostgreSQL);
        backends with one namespace per database refuse a scope that names any.
        """
        raise NotImplementedError(f"backup is not implemented for {self.name}")

    @contextmanager
    def open_shared_backup(
        self, engine: Engine, scope: BackupScope | None, jobs: int
    ) -> Iterator[SharedSnapshot]:
        """A backup's snapshot that up to ``jobs`` worker processes join
        (:meth:`join_backup`). This default shares none: its ``jobs`` is 1 and the caller
        reads everything through ``reader`` (backends whose snapshot cannot be shared)."""
        with self.open_backup(engine, scope) as reader:
            yield SharedSnapshot(reader, None, 1, f"{self.name} cannot share a snapshot")

    def join_backup(
        self, engine: Engine, token: Any, scope: BackupScope | None
    ) -> AbstractContextManager[BackupReader]:
        """A reader in the snapshot ``token`` of :meth:`open_shared_backup` names, for one
        worker process (opened while the snapshot's owner waits for it)."""
        raise NotImplementedError(f"{self.name} cannot share a snapshot")

    def refuse_scope(self, scope: BackupScope | None) -> None:
        """For backends without schemas: a scope naming any is a caller's mistake."""
        if scope:
            raise ZenMigrateError(
                f"schemas / exclude_schemas apply to PostgreSQL; a {self.name} database "
                "has one namespace, which a backup always covers whole"
            )

    def open_restore(
        self,
        engine: Engine,
        label: str,
        options: RestoreOptions | None = None,
        *,
        resumable: bool = False,
    ) -> AbstractContextManager[RestoreWriter]:
        """A staging area beside ``engine``'s database that a dump is loaded into.

        ``label`` is a short, identifier-safe string naming this restore (its staging area
        includes it). Leaving the block by an exception discards the staging area and leaves
        the target untouched; :meth:`RestoreWriter.swap` is the only step that changes it.
        ``resumable`` asks for a staging area that outlives a failure, found again by the
        same label (a :class:`ResumableWriter`); backends that cannot keep one ignore it.
        """
        raise NotImplementedError(f"restore is not implemented for {self.name}")

    def why_not_resumable(
        self, header: dict[str, Any] | None, objects: Sequence[ObjectSpec]
    ) -> str | None:
        """Why a dump with this header and these objects (those before the tables) is
        restored without a resumable staging area; ``None`` where it can have one."""
        return None

    def copy_database(self, source: Engine, target: Engine) -> None:
        """Replace ``target``'s contents with a copy of ``source`` (same server).

        Streams a snapshot of the source straight into the target's staging area, without
        serialising it; the target is swapped as in a restore.
        """
        with self.open_backup(source) as reader:
            pre = list(getattr(reader, "pre_objects", list)())
            tables = reader.tables()
            with self.open_restore(target, uuid.uuid4().hex[:8]) as writer:
                writer.begin(reader.scope() or None)
                for obj in pre:
                    writer.create_object(obj)
                counts: dict[str, int] = {}
                for table in tables:
                    writer.create_table(table)
                    counts[table.name] = 0
                    for chunk in reader.rows(table, 2000):
                        writer.load_rows(table, chunk)
                        counts[table.name] += len(chunk)
                for obj in reader.objects():
                    writer.create_object(obj)
                for table in tables:
                    loaded = writer.row_count(table)
                    if loaded != counts[table.name]:
                        raise RuntimeError(
                            f"copy of {table.name!r}: {loaded} rows loaded, "
                            f"{counts[table.name]} read"
                        )
                writer.swap()


@dataclass
class SharedSnapshot:
    """The snapshot a parallel backup reads: the owner's ``reader``, the ``token`` a worker
    joins it with (picklable), how many workers may (``jobs``, with ``why`` when fewer than
    asked), and ``release``, called once every worker has joined (MariaDB: the tables were
    locked until then)."""

    reader: BackupReader
    token: Any
    jobs: int
    why: str = ""
    release: Callable[[], None] = lambda: None


class StatementRules(Protocol):
    """A dialect's checks of a dump record's statement, called by its :class:`RestoreWriter`
    and by the rule pass of dry runs (:mod:`..preflight`), so both refuse the same records.

    Each raises :class:`~..errors.UnsafeDumpError` naming the record's object; what they
    return is the writer's business.
    """

    def check_table_statement(self, table: TableSpec, /) -> object: ...

    def check_object_statement(self, obj: ObjectSpec, /) -> object: ...


_Item = TypeVar("_Item")
_END: Any = object()
#: What a range's stream may yield first, once its query is on its way: starting the range
#: then does not wait for the server's first rows.
QUERY_SENT: Any = object()


def pipelined_ranges(
    open_range: Callable[[int], Generator[_Item, None, None]], count: int, ahead: int = 1
) -> Generator[_Item, None, None]:
    """The items of ranges ``0 .. count - 1`` in order, each range started ``ahead`` ranges
    before it is read: with ``ahead + 1`` sessions in one snapshot taking the ranges in
    turn, the other sessions' server processes render the next ranges (into their sockets)
    while the client reads this one. Range ``i + ahead + 1`` (on range ``i``'s session)
    starts once range ``i`` is read.

    ``open_range(i)`` returns range ``i``'s stream, which sends its query at its first item;
    a stream whose first item is :data:`QUERY_SENT` is started without waiting for the server's
    first rows (with small ranges that wait was most of the time). Closed early, it closes
    the ranges it started.
    """

    def start(i: int) -> tuple[Generator[_Item, None, None], Any]:
        stream = open_range(i)
        return stream, next(stream, _END)

    started: deque[tuple[Generator[_Item, None, None], Any]] = deque()
    try:
        for i in range(count):
            while len(started) <= ahead and i + len(started) < count:
                started.append(start(i + len(started)))
            stream, first = started[0]
            if first is not _END:
                if first is not QUERY_SENT:
                    yield first
                yield from stream
            started.popleft()
    finally:
        for stream, _ in started:
            stream.close()


#: A part of a table: ``[low, high)`` in the units of its :class:`SliceDomain` (``None``:
#: open on that side). Readers turn it into their own WHERE clause.
Span = tuple[int | None, int | None]


def span_where(column: str, span: Span | None, bound: Callable[[int], str] = str) -> str:
    """`` WHERE`` clause of ``column`` in ``[low, high)`` (each bound rendered by ``bound``;
    an open side has no term), or nothing for no span or an open one."""
    if span is None:
        return ""
    low, high = span
    terms = [f"{column} >= {bound(int(low))}"] if low is not None else []
    terms += [f"{column} < {bound(int(high))}"] if high is not None else []
    return " WHERE " + " AND ".join(terms) if terms else ""


@dataclass(frozen=True)
class SliceDomain:
    """How a table can be cut into parts read separately (multi-part dumps): integer values
    ``[low, high)`` of its key, or of its heap blocks, and the bytes the server says the
    table takes (to size the first part)."""

    unit: str
    low: int
    high: int
    bytes: int


class BackupReader(ABC):
    """One consistent snapshot of a database, read by the backup engine.

    Everything it returns reflects the same snapshot (one transaction at REPEATABLE READ /
    consistent snapshot, or the backend's equivalent).
    """

    #: The server's version string, recorded in the dump header.
    server_version: str

    @abstractmethod
    def tables(self) -> list[TableSpec]:
        """Every base table, in an order that restores cleanly one after another."""

    @abstractmethod
    def rows(
        self, table: TableSpec, chunk_rows: int, span: Span | None = None
    ) -> Iterator[list[tuple[Any, ...]]]:
        """The table's rows in ``table.columns`` order, ``chunk_rows`` at a time at most
        (only those in ``span`` of :meth:`slice_domain`, when given).

        Values are Python values matching each column's codec (``bytes`` for ``bytes``,
        ``Decimal`` for ``decimal``, ``str`` for ``text``, ...), in the order
        :meth:`rendered_rows` gives them. Streams: memory does not grow with the table (a
        server-side cursor).
        """

    def rendered_rows(
        self, table: TableSpec, chunk_rows: int, span: Span | None = None
    ) -> Generator[tuple[int, bytes], None, None] | None:
        """The table's rows (in ``span``, when given) as the server renders them, ``chunk_rows``
        rows at a time at most:
        (row count, the rows' JSON objects joined by commas, UTF-8). Each object is
        ``{column: value}`` in ``table.columns`` order, values in their codec's encoding.

        The server does the per-value work that dominates a backup in Python, and rows are
        handed on in blocks, never one Python object each. ``None`` where the backend (or this
        table, for one of its types) cannot; the engine then encodes :meth:`rows` itself.
        Raises :class:`RowsNotRendered` at a row the server could not render; the engine
        then reads the table with :meth:`rows` from that row on.
        """
        return None

    @contextmanager
    def retryable(self) -> Iterator[None]:
        """A block of reads that may fail halfway (the store behind them failed) and be run
        again in the same snapshot; backends whose transaction a cancelled read would end
        override it (PostgreSQL: a savepoint)."""
        yield

    def slice_domain(self, table: TableSpec) -> SliceDomain | None:
        """How ``table`` can be read in parts (:class:`Span` of it), or ``None`` where it is
        read whole (the default: a backend or table without a cheap range to cut on)."""
        return None

    @abstractmethod
    def objects(self) -> list[ObjectSpec]:
        """Everything else, in the order it must be created after all table data."""

    def scope(self) -> dict[str, Any]:
        """What the dump holds where a database has several schemas, for its header (and for
        :meth:`RestoreWriter.begin`); empty for backends without schemas."""
        return {}


#: Tables counted by one statement of :meth:`RestoreWriter.row_counts` (a UNION ALL each).
COUNT_BATCH = 250


def name_record(exc: BaseException, line: int | None, what: str) -> None:
    """Tell in ``exc``'s notes which record of the dump it failed on (the first one told
    stays: a writer that sends several records' statements at once names the one that
    failed, and the record being applied then adds nothing)."""
    if line is None or getattr(exc, "zenmigrate_line", None) is not None:
        return
    try:
        exc.zenmigrate_line = line  # type: ignore[attr-defined]
    except AttributeError:  # an exception type without a __dict__
        return
    exc.add_note(f"line {line}: while restoring the {what} of the dump")


class RestoreWriter(ABC):
    """Loads a dump into a staging area, then swaps it in for the target's contents."""

    #: The dump's line of the record being applied (set by the restore before each one;
    #: ``None`` outside a dump): a writer that holds statements back to send several at
    #: once keeps it with each, to name the record of the one that fails.
    record_line: int | None = None

    def begin(self, header: dict[str, Any] | None) -> None:
        """Called with the dump's header (``None`` where there is none) before the first
        record is applied; backends whose staging depends on it override this."""
        return None

    @abstractmethod
    def create_table(self, table: TableSpec) -> None:
        """Create ``table`` in the staging area from its CREATE statement.

        Refuses (``UnsafeDumpError``) a statement that is not a single CREATE of that table.
        """

    @abstractmethod
    def load_rows(self, table: TableSpec, rows: list[tuple[Any, ...]]) -> None:
        """Append rows (Python values as :meth:`BackupReader.rows` gives them)."""

    def load_encoded(self, table: TableSpec, columns: list[Sequence[Any]]) -> None:
        """Append rows given column by column (one sequence per column of ``table``, of
        equal length), values still in the dump's encoding (each column's codec).

        Backends that load the dump's text forms directly (base64, decimal and date text)
        override this; by default every value is decoded and :meth:`load_rows` loads it.
        """
        self.load_rows(table, decoded_rows(table, columns))

    def load_chunk(self, table: TableSpec, chunk: Chunk) -> None:
        """Append a data record's rows: what a restore calls. Backends whose server reads
        bulk text override it to take the text straight from the record (``chunk.bulk``);
        by default the values go column by column to :meth:`load_encoded`."""
        self.load_encoded(table, chunk.columns())

    @abstractmethod
    def create_object(self, obj: ObjectSpec) -> None:
        """Create a non-table object in the staging area (same refusal rules)."""

    @abstractmethod
    def counted_table(self, table: TableSpec) -> str:
        """The staging copy of ``table`` as the FROM item that counts its rows."""

    @abstractmethod
    def counted_rows(self, query: str) -> Iterable[Sequence[Any]]:
        """The rows of a counting query, run once everything sent before has landed."""

    def row_count(self, table: TableSpec) -> int:
        """Rows now in the staging copy of ``table``, to verify the load."""
        return self.row_counts([table])[table.name]

    def row_counts(self, tables: Sequence[TableSpec]) -> dict[str, int]:
        """Rows now in the staging copy of each of ``tables``, by name: one statement per
        :data:`COUNT_BATCH` tables, not one each (issue 27)."""
        counts: dict[str, int] = {}
        for start in range(0, len(tables), COUNT_BATCH):
            batch = tables[start : start + COUNT_BATCH]
            query = " UNION ALL ".join(
                f"SELECT {start + i}, COUNT(*) FROM {self.counted_table(table)}"
                for i, table in enumerate(batch)
            )
            for index, count in self.counted_rows(query):
                counts[tables[int(index)].name] = int(count)
        return counts

    @abstractmethod
    def swap(self) -> None:
        """Replace the target's contents with the staging area's, as one step if possible."""


@dataclass(frozen=True)
class StagedBuild:
    """An object after the data (an index, a key, a foreign key) that the workers build in
    a resumable staging area before the swap, each in a committed transaction of its own
    with its progress record, instead of one by one in the swap's transaction."""

    #: The record's line in the schema part (its progress key is made from it).
    line: int
    #: What it is, for messages: ``index 'name'``.
    label: str
    #: The statement as it runs in the staging area.
    statement: str
    #: The dump's tables it needs loaded and locks while it runs.
    tables: frozenset[str]
    #: Whether it may run beside another shared one on the same tables (CREATE INDEX takes
    #: a SHARE lock; ALTER TABLE an exclusive one).
    shared: bool
    #: Whether it waits until every other build is done (a foreign key needs the
    #: referenced table's unique index).
    late: bool


class PartLoader(Protocol):
    """A worker's connection into a resumable staging area: one part in one transaction,
    committed with its progress record."""

    def begin(self) -> None: ...

    def clear(self, table: TableSpec, span: Span | None, /) -> None: ...

    def load(self, table: TableSpec, chunk: Chunk, /) -> None: ...

    def commit(self, part: str, digest: str, table: str, rows: int, /) -> None: ...

    def rollback(self) -> None: ...

    #: Run one :class:`StagedBuild` and commit it with its progress record ``key``.
    def build(self, build: StagedBuild, key: str, digest: str, /) -> None: ...


@runtime_checkable
class ResumableWriter(Protocol):
    """What a :class:`RestoreWriter` offers when its staging area outlives a failure
    (``open_restore(..., resumable=True)``): a progress record in the staging area, parts
    loaded by other processes (:meth:`part_loader`, opened in the worker)."""

    resumed: bool

    def progress(self) -> dict[str, str] | None: ...

    def start_progress(self) -> None: ...

    def mark(self, name: str, digest: str, /) -> None: ...

    def loaded_rows(self) -> dict[str, int]: ...

    def forget_progress(self) -> None: ...

    def discard_staging(self) -> None: ...

    #: A table or object (before the tables) that an earlier attempt staged: learn it.
    def staged(self, spec: TableSpec | ObjectSpec, /) -> None: ...

    #: Of the objects after the data (``(line, object)``), those the workers build in the
    #: staging area before the swap, by line; the others are created in the swap.
    def staged_builds(self, objects: list[tuple[int, ObjectSpec]], /) -> dict[int, StagedBuild]: ...

    #: Called once the data is in, before the objects after it are created.
    def begin_swap(self) -> None: ...

    def discard_objects(self) -> None: ...

    def staging_tables(self) -> list[str]: ...

    def part_loader(self) -> AbstractContextManager[PartLoader]: ...

    def is_retryable(self, exc: BaseException, /) -> bool: ...


def decoded_rows(table: TableSpec, columns: list[Sequence[Any]]) -> list[tuple[Any, ...]]:
    """Rows of Python values from columns in the dump's encoding (each column's codec)."""
    decode = decoders([c.codec for c in table.columns])
    decoded = [list(map(d, column)) for d, column in zip(decode, columns, strict=True)]
    return list(zip(*decoded, strict=True))


def decode_base64_column(table: TableSpec, index: int, values: Sequence[Any]) -> list[bytes | None]:
    """The base64 text of column ``index`` decoded strictly; bad input names the column."""
    try:
        # A keyword call in a comprehension: faster than mapping a partial (see
        # docs/performance.md).
        decode = binascii.a2b_base64
        if None in values:
            return [None if v is None else decode(v, strict_mode=True) for v in values]
        return [decode(v, strict_mode=True) for v in values]
    except (binascii.Error, TypeError, ValueError):
        raise ZenMigrateError(
            f"table {table.name!r} column {table.columns[index].name!r}: "
            "a value is not valid base64"
        ) from None
