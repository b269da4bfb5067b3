"""Restoring a dump: load into a staging area while verifying, then swap it in."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy.engine import Engine

from .dialects import get_dialect
from .dialects.base import RestoreWriter, name_record
from .dump.chunk import Chunk
from .dump.model import ColumnSpec, RestoreOptions, TableSpec
from .dump.reader import Entry, entries_from_stream
from .dump.records import Record
from .errors import (
    DumpError,
    DumpFormatError,
    DumpIntegrityError,
    MigrationLockTimeout,
    RestoreInProgressError,
)
from .preflight import DumpRules, object_spec
from .storage import authenticated, open_for_read, safe_uri

if TYPE_CHECKING:
    from .crypto import Encryption

logger = logging.getLogger(__name__)

#: Sees every record a restore has checked and applied, in order, with its line as read
#: (``None`` for records given in memory): the restore's progress, as ``on_record`` is the
#: backup's. A data record's ``data`` is a sequence of rows (its ``len`` is the row count);
#: a multi-part restore tells of each part loaded as ``{"kind": "data", "table", "rows"}``.
RecordObserver = Callable[[Record, bytes | None], None]


@dataclass
class RestoreSummary:
    """What a restore put in place (for a multi-part dump also how: ``parts`` loaded,
    ``resumed_parts`` an earlier attempt had loaded, the workers' peak memory in MB)."""

    tables: dict[str, int] = field(default_factory=dict)
    header: Record | None = None
    verified: bool = True
    parts: int = 0
    resumed_parts: int = 0
    worker_peak_mb: float = 0.0

    @property
    def rows(self) -> int:
        return sum(self.tables.values())


@dataclass
class _StagedTable:
    """A table being loaded into the staging area: its spec and its columns in load order."""

    spec: TableSpec
    names: list[str]

    def chunk(self, data: Sequence[dict[str, Any]]) -> Chunk:
        """A data record's rows for this table's columns, as writers take them."""
        return Chunk(data, self.names)


#: The kinds of record a writer applies (after the header, before the trailer).
_APPLIED = frozenset({"table", "data", "object"})


def table_spec(record: Record) -> TableSpec:
    columns = tuple(
        ColumnSpec(name=c["name"], codec=c["codec"], type=str(c.get("type", "")))
        for c in record.get("columns") or ()
    )
    return TableSpec(
        name=record["table"],
        create_stmt=record["create_stmt"],
        columns=columns,
        key=tuple(record.get("key") or ()),
        options=dict(record.get("options") or {}),
    )


class Loader:
    """Applies verified records to a RestoreWriter."""

    def __init__(self, writer: RestoreWriter) -> None:
        self.writer = writer
        self.tables: dict[str, _StagedTable] = {}

    @staticmethod
    def staged(spec: TableSpec) -> _StagedTable:
        return _StagedTable(spec, [c.name for c in spec.columns])

    def known(self, record: Record) -> _StagedTable:
        """Learn a table record's table without creating it (it is already staged)."""
        staged = self.tables[record["table"]] = self.staged(table_spec(record))
        return staged

    def apply(self, record: Record) -> None:
        kind = record["kind"]
        if kind == "table":
            self.writer.create_table(self.known(record).spec)
        elif kind == "data":
            self._load(self.tables[record["table"]], record["data"])
        elif kind == "object":
            self.writer.create_object(object_spec(record))

    def _load(self, table: _StagedTable, data: Sequence[dict[str, Any]]) -> None:
        if not data:
            return
        if not table.names:  # legacy (unverified) dumps declare no columns: take the rows'
            names = list(data[0])
            table.names = names
            columns = tuple(ColumnSpec(name=n, codec="native") for n in names)
            table.spec = TableSpec(table.spec.name, table.spec.create_stmt, columns)
        # Values stay in the dump's encoding: each writer decodes what its server cannot
        # parse itself (see RestoreWriter.load_chunk).
        self.writer.load_chunk(table.spec, table.chunk(data))


def apply_record(loader: Loader, header: Record | None, line: int, checked: Record) -> None:
    """Apply one checked record; a failure is a dump error naming the record's line, or
    (the server's error, kept as it is) carries the record's line in its notes: the
    record's own, or the earlier one whose statement the writer sent late, in a batch."""
    what = checked.get("table") or checked.get("name")
    try:
        loader.writer.record_line = line
        if checked["kind"] in _APPLIED:
            loader.writer.begin(header)
        loader.apply(checked)
    except DumpError as exc:  # refused by a dialect: name the record's line
        if exc.line is not None:
            raise
        raise type(exc)(str(exc), line) from exc
    except (ValueError, TypeError, AttributeError, KeyError, ArithmeticError) as exc:
        # A value its codec cannot decode, a malformed option: the dump's fault.
        raise DumpFormatError(
            f"{checked.get('kind')} record of {what!r} cannot be restored "
            f"({type(exc).__name__}: {exc})",
            line,
        ) from exc
    except Exception as exc:  # the server refused a statement: say which record's
        name_record(exc, line, f"{checked.get('kind')} record of {what!r}")
        raise


@contextmanager
def restore_lock(engine: Engine) -> Iterator[None]:
    """One restore of a database at a time; a second one fails at once, changing nothing.

    Two swaps racing into one target can mix their tables (MySQL moves them table by
    table). The lock is the dialect's migration lock with the scope ``restore`` (on SQLite
    that is the same lock file as migrations'). It dies with its process or connection.
    """
    with ExitStack() as stack:
        try:
            stack.enter_context(get_dialect(engine).migration_lock(engine, "restore", 0))
        except MigrationLockTimeout:
            raise RestoreInProgressError(
                f"another restore of {engine.url.database!r} is already running; nothing "
                "was changed (run this one again when it has finished)"
            ) from None
        yield


def restore_entries(
    engine: Engine,
    entries: Iterable[Entry],
    *,
    allow_unverified: bool = False,
    allow_routines: bool = False,
    authenticated: bool = False,
    options: RestoreOptions | None = None,
    on_record: RecordObserver | None = None,
) -> RestoreSummary:
    """Restore a dump into ``engine``'s (existing) database, atomically.

    Everything is loaded into a staging area; the target is replaced only once the whole
    stream was read, its trailer verified and the staging row counts match it.
    ``allow_routines`` trusts the dump's functions, procedures, aggregates and events: their
    bodies are code the server runs, which the safety checks cannot fully read; so does
    ``authenticated`` (the dump authenticated under the caller's key: the trust rule).
    ``options`` say how owners, privileges and schemas are treated (PostgreSQL).
    ``on_record`` is told of each record once it was applied (see :data:`RecordObserver`).
    """
    # The rules dry runs apply too (see .preflight), checked before anything of a record runs.
    rules = DumpRules(
        allow_unverified=allow_unverified,
        allow_routines=allow_routines,
        authenticated=authenticated,
        target=engine,
        options=options,
    )
    verifier = rules.verifier
    label = uuid.uuid4().hex[:8]
    opened = get_dialect(engine).open_restore(engine, label, options)
    with restore_lock(engine), opened as writer:
        loader = Loader(writer)
        for line, record, raw in entries:
            checked = rules.check(line, record, raw)
            apply_record(loader, verifier.header, line, checked)
            if on_record is not None:
                on_record(checked, raw)
        rules.finish()
        writer.record_line = None
        writer.begin(verifier.header)
        summary = RestoreSummary(header=verifier.header, verified=not verifier.legacy)
        # Every table counted in a few statements, not one each (issue 27, point 3).
        counts = writer.row_counts([table.spec for table in loader.tables.values()])
        for name in loader.tables:
            loaded = counts[name]
            expected = verifier.digest.rows.get(name, loaded) if not verifier.legacy else loaded
            if loaded != expected:
                raise DumpIntegrityError(
                    f"table {name!r}: {loaded} rows loaded, the dump holds {expected}"
                )
            summary.tables[name] = loaded
        writer.swap()
    logger.info("restored %d tables, %d rows", len(summary.tables), summary.rows)
    return summary


class RestoreTarget(Protocol):
    """The database a restore replaces, as :class:`.utils.MigrationUtils` describes one
    (a protocol, so this module needs nothing of the facade above it)."""

    @property
    def engine(self) -> Engine: ...

    @property
    def safe_url(self) -> str: ...

    @property
    def restore_options(self) -> RestoreOptions: ...

    @property
    def transport_params(self) -> dict[str, Any] | None: ...

    def database_exists(self) -> bool: ...

    def create_database(self) -> None: ...


def restore_from_uri(
    target: RestoreTarget,
    uri: str,
    *,
    allow_unverified: bool = False,
    allow_routines: bool = False,
    on_record: RecordObserver | None = None,
    encryption: Encryption | None = None,
) -> RestoreSummary:
    """Restore ``target``'s database from the dump at ``uri`` (any location of
    :mod:`.storage`), verifying it as it streams; see :func:`restore_entries`.

    An encrypted dump is authenticated whole (every segment decrypted and checked) before
    it is read for the restore, so a dump altered anywhere is refused before any of its
    rows reaches the staging area; ``encryption`` holds its key (and may require one).
    Such a dump was written by a holder of that key, so its routines are restored without
    ``allow_routines`` (:func:`.dump.safety.routines_trusted`).

    The target database is created when it is missing, but only once the dump was opened:
    a dump that does not exist creates nothing.

    Raises:
        StorageNotFoundError: If nothing exists at ``uri``.
    """
    logger.info("restoring %s from %s", target.safe_url, safe_uri(uri))
    with open_for_read(
        uri, target.transport_params, encryption=encryption, authenticate_first=True
    ) as stream:
        if not target.database_exists():
            target.create_database()
        return restore_entries(
            target.engine,
            entries_from_stream(stream),
            allow_unverified=allow_unverified,
            allow_routines=allow_routines,
            authenticated=authenticated(stream),
            options=target.restore_options,
            on_record=on_record,
        )


def restore_dump(
    target: RestoreTarget,
    uri: str,
    *,
    jobs: int = 1,
    fresh: bool = False,
    allow_unverified: bool = False,
    allow_routines: bool = False,
    on_record: RecordObserver | None = None,
    encryption: Encryption | None = None,
) -> RestoreSummary:
    """Restore ``target``'s database from the dump at ``uri``, a single stream
    (:func:`restore_from_uri`) or a multi-part dump, found by itself (``jobs`` worker
    processes; a failed restore resumes unless ``fresh``). What
    ``MigrationUtils.restore_database_from_file`` documents.
    """
    if not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs must be a whole number of at least 1, not {jobs!r}")
    from .parts.layout import is_multipart

    if is_multipart(uri, target.transport_params):
        from .parts.restore import restore_parts

        return restore_parts(
            target,
            uri,
            jobs=jobs,
            fresh=fresh,
            allow_unverified=allow_unverified,
            allow_routines=allow_routines,
            on_record=on_record,
            encryption=encryption,
        )
    if jobs > 1:
        logger.info("%s is a single stream: one process restores it", safe_uri(uri))
    return restore_from_uri(
        target,
        uri,
        allow_unverified=allow_unverified,
        allow_routines=allow_routines,
        on_record=on_record,
        encryption=encryption,
    )
