"""A PostgreSQL restore of a multi-part dump staged in committed schemas, so that several
processes load its parts at once and a rerun resumes where a failed attempt stopped.

Each schema the dump restores is built as ``zm_stage_<label>_<n>`` (its statements' schema
qualifiers moved there: :mod:`.remap`); the progress table lives in ``zm_stage_<label>``.
The tables and the objects they need are created in one transaction, committed with the
``@schema`` mark; each data part is loaded on a worker's connection in one transaction
with its progress row; the indexes and keys of plain tables are then built there by the
workers too, each committed with its progress row (:mod:`.post_build`). The last
transaction (:meth:`PostgreSQLStagedWriter.begin_swap` to
:meth:`~PostgreSQLStagedWriter.swap`) renames the target's schemas away and the staged
ones to their names, creates the other objects after the data (views, triggers, the
indexes of partitioned tables, ...) as the dump wrote them, checks, drops the old schemas
and commits: other sessions see the old schemas until then. A failure anywhere keeps the
staging for the next attempt; the target is untouched.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import Any

import psycopg
import psycopg.errors
from sqlalchemy.engine import Engine

from ...dump.chunk import Chunk
from ...dump.model import ObjectSpec, RestoreOptions, TableSpec
from ...errors import DumpError, DumpIntegrityError, ZenMigrateError
from ..base import Span, StagedBuild, decoded_rows
from . import catalog, connection, post_build
from .connection import READ_SEARCH_PATH, SESSION_SETTINGS, fetch_all, transaction_connection
from .copy_in import CopyIn
from .names import STAGE_PREFIX, bare_name, display_name, qualified_name, quote_ident
from .remap import move_schemas
from .schemas import existing
from .statements import QUALIFIED_TYPES, PgStatementRules
from .writer import INDEX_BUILD_MEMORY, PostgreSQLRestoreWriter

logger = logging.getLogger(__name__)

PROGRESS_TABLE = "_zenmigrate_progress"
#: Errors after which a part's transaction is loaded again.
RETRYABLE = (
    psycopg.errors.DeadlockDetected,
    psycopg.errors.LockNotAvailable,
    psycopg.errors.SerializationFailure,
)


def why_not_staged(header: dict[str, Any] | None, objects: Sequence[ObjectSpec]) -> str | None:
    """Why a dump is restored in one transaction instead of staged (``None``: it can be)."""
    if not isinstance(header, dict) or header.get("schemas") is None:
        return "its dump names no schemas (written before several schemas were covered)"
    extensions = sorted(o.name for o in objects if o.object_type == "extension")
    if extensions:
        # An extension exists once per database: the staged tables could only use the
        # target's own, which the swap would drop with the old schemas.
        return f"it holds extensions ({', '.join(extensions)})"
    return None


class PostgreSQLStagedWriter(PostgreSQLRestoreWriter):
    """The restore writer of a staged restore (see the module docstring)."""

    def __init__(
        self,
        conn: psycopg.Connection[Any],
        engine: Engine,
        label: str,
        options: RestoreOptions | None = None,
    ) -> None:
        super().__init__(conn, label, options)
        # Statements run as they come: this writer commits along the way (its marks), and
        # its schema part is applied outside the loop that would send held ones in time.
        self.batching = False
        self.engine = engine
        #: The schema of the progress table; the staged schemas are named after it.
        self.control = STAGE_PREFIX + label
        #: Each restored schema -> the schema it is built in, until :meth:`begin_swap`.
        self._staged: dict[str, str] = {}
        #: Each table (the dump's name) -> its staged name, quoted and qualified.
        self._targets: dict[str, str] = {}
        self.resumed = bool(self._kept())

    def _kept(self) -> list[str]:
        """The schemas an earlier attempt of this restore left."""
        rows = fetch_all(
            self._conn,
            "SELECT nspname FROM pg_namespace WHERE nspname = %s"
            " OR (left(nspname, %s) = %s AND substr(nspname, %s) ~ '^[0-9]+$') ORDER BY 1",
            (self.control, len(self.control) + 1, self.control + "_", len(self.control) + 2),
        )
        return [str(name) for (name,) in rows]

    def _commit(self) -> None:
        self._conn.commit()
        self._settings()
        if self._started:
            self._search_path()

    def _search_path(self) -> None:
        if "public" in self.schemas:  # records that name no schema are in public
            where = quote_ident(self._where("public"))
            connection.execute_one(self._conn, f"SET LOCAL search_path = {where}")

    # -- the staged schemas ------------------------------------------------------------------
    def begin(self, header: dict[str, Any] | None) -> None:
        if self._started:
            return
        reason = why_not_staged(header, [])
        if reason is not None:
            raise ZenMigrateError(f"this restore cannot be staged: {reason}")
        self._started = True
        self._rules = PgStatementRules(header)
        self._rules.refuse_excluded(self._options.exclude_schemas)
        self._legacy = False
        assert self._rules.schemas is not None
        self.schemas = self._rules.schemas
        self._staged = {name: f"{self.control}_{n}" for n, name in enumerate(sorted(self.schemas))}
        kept = set(self._kept())
        for staged in self._staged.values():
            if staged not in kept:
                connection.execute_one(self._conn, f"CREATE SCHEMA {quote_ident(staged)}")
        self._search_path()

    def _where(self, schema: str) -> str:
        return self._staged.get(schema, schema)

    def _statement(self, statement: str) -> str:
        return move_schemas(statement, self._staged)

    def create_table(self, table: TableSpec) -> None:
        super().create_table(table)
        self._targets[table.name] = self._table(table)

    def _extension(self, name: str, schema: str) -> None:
        raise ZenMigrateError(
            f"extension {name!r}: a restore with extensions runs in one transaction; "
            "nothing was changed"
        )

    def staged(self, spec: TableSpec | ObjectSpec) -> None:
        """A table or object an earlier attempt created: what the swap needs of it (its
        owner, privileges, comment), nothing created."""
        self.begin(None)
        if isinstance(spec, TableSpec):
            schema = self._rules.schema_of("table", spec.name, spec.options)
            self._require_roles("table", spec.name, spec.options)
            self._targets[spec.name] = self._table(spec)
            bare = bare_name(schema, spec.name)
            self._meta_writer.add("table", schema, bare, None, spec.options, self.schemas)
            return
        kind = spec.object_type
        schema = self._rules.schema_of(kind, spec.name, spec.options)
        self._require_roles(kind, spec.name, spec.options)
        if kind in ("schema", "default_privileges"):
            self._carried(spec)
            return
        bare = spec.name if kind not in QUALIFIED_TYPES else bare_name(schema, spec.name)
        table = bare_name(schema, spec.table) if spec.table else None
        self._meta_writer.add(kind, schema, bare, table, spec.options, self.schemas)

    # -- progress ----------------------------------------------------------------------------
    def _progress_table(self) -> str:
        return qualified_name(self.control, PROGRESS_TABLE)

    def progress(self) -> dict[str, str] | None:
        if self.control not in self._kept():
            return None
        rows = fetch_all(self._conn, f"SELECT part, digest FROM {self._progress_table()}")
        return {str(part): str(digest) for part, digest in rows}

    def start_progress(self) -> None:
        connection.execute_one(self._conn, f"CREATE SCHEMA {quote_ident(self.control)}")
        connection.execute_one(
            self._conn,
            f"CREATE TABLE {self._progress_table()} (part text PRIMARY KEY, digest text NOT"
            ' NULL, "table" text, rows bigint NOT NULL)',
        )
        self._commit()

    def mark(self, name: str, digest: str) -> None:
        """Record ``name`` and commit: with the ``@schema`` mark, every staged table."""
        mark(self._conn, self._progress_table(), name, digest, None, 0)
        self._commit()

    def loaded_rows(self) -> dict[str, int]:
        rows = fetch_all(
            self._conn,
            f'SELECT "table", sum(rows) FROM {self._progress_table()}'
            ' WHERE "table" IS NOT NULL GROUP BY "table"',
        )
        return {str(table): int(count) for table, count in rows}

    def forget_progress(self) -> None:
        """Drop the progress table's schema, in the swap's transaction."""
        connection.execute_one(self._conn, f"DROP SCHEMA {quote_ident(self.control)} CASCADE")

    def discard_staging(self) -> None:
        for name in self._kept():
            connection.execute_one(self._conn, f"DROP SCHEMA {quote_ident(name)} CASCADE")
        self._commit()
        self.resumed = False

    def discard_objects(self) -> None:
        """Nothing to do: the objects are created in the swap's transaction, which a
        failure rolled back."""

    def staging_tables(self) -> list[str]:
        return sorted(self._targets.values())

    def staged_builds(self, objects: list[tuple[int, ObjectSpec]]) -> dict[int, StagedBuild]:
        """The indexes and keys after the data that the workers build in the staging schemas
        (:mod:`.post_build`), each checked as :meth:`create_object` checks it and moved
        into the staging schemas as the tables were."""
        self.begin(None)
        rows = fetch_all(
            self._conn,
            "SELECT n.nspname, c.relname FROM pg_class c"
            " JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = ANY(%s) AND c.relkind = 'r' AND NOT c.relispartition",
            (list(self._staged.values()),),
        )
        dump_schema = {staged: name for name, staged in self._staged.items()}
        plain = {display_name(dump_schema[str(s)], str(t)) for s, t in rows} & set(self._targets)
        builds: dict[int, StagedBuild] = {}
        for line, (obj, build) in post_build.plan(objects, plain).items():
            try:
                self._rules.check_object_statement(obj)
                self._require_roles(obj.object_type, obj.name, obj.options)
            except DumpError as exc:
                if exc.line is not None:
                    raise
                raise type(exc)(str(exc), line) from exc
            builds[line] = dataclasses.replace(build, statement=self._statement(build.statement))
        return builds

    def _build_settings(self) -> tuple[str, ...]:
        """A worker's settings while it builds an index or key: the restore's own, names
        resolved as in the staging (unqualified ones in the staged ``public``)."""
        where = "''"
        if "public" in self.schemas:
            where = quote_ident(self._where("public"))
        return (
            READ_SEARCH_PATH,
            "SET LOCAL check_function_bodies = off",
            f"SET LOCAL maintenance_work_mem = '{INDEX_BUILD_MEMORY}'",
            f"SET LOCAL search_path = {where}",
        )

    @contextmanager
    def part_loader(self) -> Iterator[PartLoader]:
        settings = self._build_settings() if self._started else ()
        with transaction_connection(self.engine, read_only=False) as conn:
            yield PartLoader(conn, self._targets, self._progress_table(), settings)

    def is_retryable(self, exc: BaseException) -> bool:
        return isinstance(exc, RETRYABLE)

    # -- the swap ----------------------------------------------------------------------------
    def begin_swap(self) -> None:
        """Rename the target's schemas away and the staged ones to their names (uncommitted
        until :meth:`swap`); the objects after the data are then created as written."""
        self.begin(None)
        self._swap.replace_staged(dict(self._staged))
        self._staged = {}
        self._search_path()

    def swap(self) -> None:
        """Refuse a restore whose catalog still names a staged schema anywhere (a qualifier
        the renaming could not reach), else drop the old schemas and commit."""
        leaked = fetch_all(
            self._conn,
            catalog.STORED_TEXT_NAMING,
            {"s": list(existing(self._conn, self.schemas).values()), "p": self.control},
        )
        if leaked:
            raise ZenMigrateError(
                f"the restored schemas would still name the staging schema {self.control} "
                f"in: {'; '.join(str(r[0]) for r in leaked[:5])}. Nothing of the target was "
                "changed (the staging is kept): a statement of the dump names a schema in a "
                "way the staged restore cannot move; please report it with that statement"
            )
        super().swap()


def mark(
    conn: psycopg.Connection[Any], table: str, part: str, digest: str, name: str | None, rows: int
) -> None:
    with conn.cursor() as cur:
        cur.execute(
            f'INSERT INTO {table} (part, digest, "table", rows) VALUES (%s, %s, %s, %s)'.encode(),
            (part, digest, name, rows),
        )


class PartLoader:
    """One worker's connection into the staged schemas: a part in one transaction."""

    def __init__(
        self,
        conn: psycopg.Connection[Any],
        targets: dict[str, str],
        progress: str,
        build_settings: Sequence[str] = (),
    ):
        self._conn = conn
        self._targets = targets
        self._progress = progress
        self._build_settings = build_settings
        self._copy = CopyIn(conn)

    def begin(self) -> None:
        for setting in SESSION_SETTINGS:
            connection.execute_one(self._conn, setting)
        self._copy = CopyIn(self._conn)

    def clear(self, table: TableSpec, span: Span | None) -> None:
        """Nothing to clear: a part cut short was rolled back whole."""

    def load(self, table: TableSpec, chunk: Chunk) -> None:
        target = self._targets[table.name]
        if not self._copy.chunk(target, table, chunk):
            self._copy.rows_of(target, table, decoded_rows(table, chunk.columns()))

    def commit(self, part: str, digest: str, table: str, rows: int) -> None:
        """Commit the part with its record; the rows COPY reported must be the part's."""
        self._copy.end()
        if self._copy.rows != rows:
            raise DumpIntegrityError(
                f"part {part}: the server loaded {self._copy.rows} rows of table {table!r}, "
                f"the part holds {rows}"
            )
        mark(self._conn, self._progress, part, digest, table, rows)
        self._conn.commit()

    def build(self, build: StagedBuild, key: str, digest: str) -> None:
        """Build an index or key in the staging schemas and commit it with its progress
        record ``key``. A statement the server refuses fails the restore naming the
        object and the server's reason (not its detail, which may quote rows)."""
        self.begin()
        for setting in self._build_settings:
            connection.execute_one(self._conn, setting)
        try:
            connection.execute_one(self._conn, build.statement)
        except (psycopg.IntegrityError, psycopg.DataError, psycopg.ProgrammingError) as exc:
            # the dump's rows or statement (a lost connection or deadlock is not the dump's)
            reason = exc.diag.message_primary or type(exc).__name__
            raise DumpIntegrityError(
                f"{build.label} of the dump could not be built: {reason}. Nothing of the "
                "target was changed (the staging is kept)",
                build.line,
            ) from None
        mark(self._conn, self._progress, key, digest, None, 0)
        self._conn.commit()

    def rollback(self) -> None:
        with suppress(Exception):
            self._copy.end(ZenMigrateError("part abandoned"))
        with suppress(Exception):
            self._conn.rollback()
