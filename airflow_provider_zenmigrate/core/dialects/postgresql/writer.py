"""The PostgreSQL restore writer: a dump loaded into the target database itself, in one
transaction, its schemas replaced at the commit (:mod:`.swap`)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import ExitStack
from typing import Any

import psycopg

from ...dump.chunk import Chunk
from ...dump.model import ObjectSpec, RestoreOptions, TableSpec
from ...errors import UnsafeDumpError, ZenMigrateError
from ..base import RestoreWriter, name_record
from . import connection
from .connection import READ_SEARCH_PATH, SESSION_SETTINGS
from .copy_in import CopyIn
from .meta import MetaWriter
from .names import bare_name, qualified_name, quote_ident
from .statements import QUALIFIED_TYPES, PgStatementRules
from .swap import SchemaSwap

#: maintenance_work_mem while a restore builds its indexes (see _settings).
INDEX_BUILD_MEMORY = "256MB"
#: Statements sent ahead at most before their answers are read (see _hold).
HELD_STATEMENTS = 500


class PostgreSQLRestoreWriter(RestoreWriter):
    """Loads a dump into the target database itself, all inside one transaction.

    :meth:`begin` renames every schema the dump restores away (``zm_old_<label>_<n>``) and
    creates it anew, so the dump's statements run as they were written, schema-qualified
    (a dump of ``public`` alone, from before, runs with ``search_path`` set to ``public``).
    Other sessions see the old schemas until :meth:`swap` drops them and commits: a
    failure, or a killed process, leaves no trace in the target.
    """

    def __init__(
        self,
        conn: psycopg.Connection[Any],
        label: str,
        options: RestoreOptions | None = None,
    ) -> None:
        self._conn = conn
        self._options = options or RestoreOptions()
        self._swap = SchemaSwap(conn, label)
        #: Prefix of the names the replaced schemas have until the swap drops them.
        self.old = self._swap.old
        #: Where unqualified names land (a dump of ``public`` alone, from before).
        self.stage = "public"
        self.swapped = False
        self._copy = CopyIn(conn)
        self._started = False
        self._legacy = True
        self._rules = PgStatementRules(None)
        #: The schemas this restore replaces.
        self.schemas: frozenset[str] = frozenset()
        #: Whether the statements of records are sent ahead, their answers read later
        #: (:meth:`_hold`); a writer that commits along the way does not.
        self.batching = psycopg.Pipeline.is_supported()
        #: The pipeline the statements sent ahead are in, while it is open.
        self._pipeline: ExitStack | None = None
        #: The statements sent ahead: (record line, what, its cursor).
        self._held: list[tuple[int | None, str, psycopg.Cursor[Any]]] = []
        self._meta_writer = MetaWriter(
            self._rows,
            lambda statement: connection.execute_one(conn, statement),
            no_owner=self._options.no_owner,
            no_privileges=self._options.no_privileges,
            skip_missing_roles=self._options.skip_missing_roles,
        )
        self._settings()

    def _settings(self) -> None:
        """The transaction's settings (SET LOCAL: each transaction of the restore's)."""
        for setting in (
            *SESSION_SETTINGS,
            READ_SEARCH_PATH,
            "SET LOCAL check_function_bodies = off",  # bodies may use what comes later
            # Indexes and keys are built after the data, in this transaction: a sort in
            # memory instead of on disk, and room for a parallel build's participants
            # (32 MB each). The server's default is 64 MB; this lasts the transaction.
            f"SET LOCAL maintenance_work_mem = '{INDEX_BUILD_MEMORY}'",
        ):
            connection.execute_one(self._conn, setting)

    def _rows(self, query: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        self.send_held()
        return connection.fetch_all(self._conn, query, tuple(params))

    # -- statements sent ahead -------------------------------------------------------------
    def _hold(self, what: str, statement: str, params: Sequence[Any] | None = None) -> None:
        """Run a statement of a record whose result nothing reads: sent at once in pipeline
        mode, without waiting for the server, which runs it while the client reads the
        next records. The answers are read (:meth:`send_held`) before anything else reaches
        the server (a COPY, a query, the counts, the swap). Issue 27, point 3: a table's
        CREATE is built while its data is read, the keys and indexes after the data while
        the next ones are checked. Each is still one statement of the extended protocol, as
        :func:`.connection.execute_one` sends it: a dump's statement never joins another's
        text."""
        if not self.batching:
            if params is None:
                connection.execute_one(self._conn, statement)
            else:
                connection.fetch_all(self._conn, statement, tuple(params))
            return
        if self._pipeline is None:
            self._pipeline = ExitStack()
            self._pipeline.enter_context(self._conn.pipeline())
        values = tuple(params) if params is not None else None
        cursor = self._conn.cursor()
        self._held.append((self.record_line, what, cursor))
        try:
            cursor.execute(statement.encode(), values, binary=True)
        except BaseException as exc:  # an earlier statement's error, read meanwhile
            self._end_pipeline(exc)
            raise
        if len(self._held) >= HELD_STATEMENTS:
            self.send_held()

    def send_held(self) -> None:
        """Read the answers to the statements sent ahead. The server stops at the first
        that fails: its error (as the server gave it) names that statement's record."""
        self._end_pipeline(None)

    def discard_held(self, failed: BaseException) -> None:
        """After ``failed``, leave pipeline mode (the connection goes back to the pool); the
        answers to the statements sent ahead no longer matter."""
        self._end_pipeline(failed)

    def _end_pipeline(self, failed: BaseException | None) -> None:
        """Leave pipeline mode, once every answer is read (or, after ``failed``, as far as
        they can be); the first error names its statement's record."""
        pipeline, self._pipeline = self._pipeline, None
        held, self._held = self._held, []
        if pipeline is None:
            return
        try:
            if failed is None:
                pipeline.close()
            else:
                pipeline.__exit__(type(failed), failed, failed.__traceback__)
        except psycopg.Error as exc:
            stopped = exc.__context__
            if isinstance(stopped, BaseException) and not isinstance(stopped, Exception):
                # A signal's exception (SIGTERM, Ctrl-C) while the pipeline waited: psycopg's
                # exit from pipeline mode then fails "while busy" and would hide it.
                raise stopped from None
            failed = exc
            raise
        finally:
            if isinstance(failed, psycopg.Error) and failed.sqlstate is not None:
                # Answers arrive in order: the first statement without one is the one refused.
                refused = next((h for h in held if h[2].pgresult is None), None)
                if refused is not None:
                    name_record(failed, refused[0], refused[1])
            for _line, _what, cursor in held:
                cursor.close()

    # -- the schemas replaced ----------------------------------------------------------------
    def begin(self, header: dict[str, Any] | None) -> None:
        """Replace the schemas the dump's header lists (``public`` for a dump that lists
        none); everything else follows in them."""
        if self._started:
            return
        self._started = True
        self._rules = PgStatementRules(header)
        listed = self._rules.schemas
        if listed is None:
            self._swap.replace(["public"], keep_meta=self._legacy)
            connection.execute_one(self._conn, "SET LOCAL search_path = public")
            return
        self._rules.refuse_excluded(self._options.exclude_schemas)
        self._legacy = False
        self.schemas = listed
        self._swap.replace(sorted(listed), keep_meta=self._legacy)
        if "public" in listed:  # records that name no schema are in public, unqualified
            connection.execute_one(self._conn, "SET LOCAL search_path = public")

    def _table(self, table: TableSpec) -> str:
        self.begin(None)
        schema = self._rules.schema_of("table", table.name, table.options)
        return qualified_name(self._where(schema), bare_name(schema, table.name))

    def _where(self, schema: str) -> str:
        """The schema that now holds what the dump puts in ``schema`` (itself, here)."""
        return schema

    def _statement(self, statement: str) -> str:
        """A table's or object's statement as it runs (as written, here)."""
        return statement

    # -- loading -----------------------------------------------------------------------------
    def create_table(self, table: TableSpec) -> None:
        self.end_copy()
        self.begin(None)
        schema = self._rules.check_table_statement(table)
        self._require_roles("table", table.name, table.options)
        owned = table.options.get("owned_sequences") or {}
        what = f"table record of {table.name!r}"
        self._hold(what, self._statement(table.create_stmt))
        self._set_positions(schema, table.options.get("identity_positions") or {}, what)
        for column, sequence in owned.items():
            self._hold(
                what,
                f"ALTER SEQUENCE {qualified_name(self._where(schema), sequence)} OWNED BY "
                f"{self._table(table)}.{quote_ident(column)}",
            )
        bare = bare_name(schema, table.name)
        self._meta_writer.add("table", schema, bare, None, table.options, self.schemas)

    def load_rows(self, table: TableSpec, rows: list[tuple[Any, ...]]) -> None:
        self.send_held()
        self._copy.rows_of(self._table(table), table, rows)

    def load_chunk(self, table: TableSpec, chunk: Chunk) -> None:
        self.send_held()
        if not self._copy.chunk(self._table(table), table, chunk):
            super().load_encoded(table, chunk.columns())

    def load_encoded(self, table: TableSpec, columns: list[Sequence[Any]]) -> None:
        self.send_held()
        if not self._copy.encoded(self._table(table), table, columns):
            super().load_encoded(table, columns)

    def end_copy(self, failed: BaseException | None = None) -> None:
        """Finish the open COPY (or abort it, after ``failed``)."""
        self._copy.end(failed)

    def create_object(self, obj: ObjectSpec) -> None:
        self.end_copy()
        kind = obj.object_type
        self.begin(None)
        schema = self._rules.check_object_statement(obj)
        self._require_roles(kind, obj.name, obj.options)
        if kind in ("schema", "default_privileges"):
            self._carried(obj)
            return
        what = f"object record of {obj.name!r}"
        if kind == "extension":
            self._extension(obj.name, schema)
        else:
            self._hold(what, self._statement(obj.create_stmt))
        if kind == "sequence" and "position" in obj.options:
            position = {bare_name(schema, obj.name): obj.options["position"]}
            self._set_positions(schema, position, what)
        bare = obj.name if kind not in QUALIFIED_TYPES else bare_name(schema, obj.name)
        table = bare_name(schema, obj.table) if obj.table else None
        self._meta_writer.add(kind, schema, bare, table, obj.options, self.schemas)

    def _require_roles(self, kind: str, name: str, options: dict[str, Any]) -> None:
        """Refuse a record naming roles the target lacks, before anything of it runs (the
        same rule as dry runs: :meth:`PgStatementRules.required_roles`)."""
        skippable, strict = self._rules.required_roles(kind, options, self._options)
        label = f"{kind} {name!r}"
        self._meta_writer.check_roles(skippable, label)
        if self._meta_writer.check_roles(strict, label, skippable=False):
            raise ZenMigrateError(
                f"{label} applies to roles the target lacks; a policy cannot be left out "
                "without changing who sees which rows. Nothing was changed: create the roles"
            )

    def _set_positions(self, schema: str, positions: Any, what: str) -> None:
        """Set sequences where they stood: ``{name: [last value, is_called]}`` (dumps written
        before this carry the next value as START WITH instead)."""
        if not isinstance(positions, dict):
            raise UnsafeDumpError("malformed sequence positions")
        for name, position in positions.items():
            if not (
                isinstance(name, str)
                and isinstance(position, list)
                and len(position) == 2
                and isinstance(position[0], int)
                and isinstance(position[1], bool)
            ):
                raise UnsafeDumpError(f"sequence {name!r}: malformed position {position!r}")
            self._hold(
                what,
                "SELECT setval(%s::regclass, %s, %s)",
                (qualified_name(self._where(schema), name), *position),
            )

    def _carried(self, obj: ObjectSpec) -> None:
        """A schema's record (the schema itself was created by :meth:`begin`) or a role's
        default privileges (checked by the rules): applied before the commit."""
        if obj.object_type == "schema":
            self._meta_writer.add("schema", obj.name, obj.name, None, obj.options, self.schemas)
        else:
            self._meta_writer.add_default_acl(obj.options)

    def _extension(self, name: str, schema: str) -> None:
        """An extension exists once per database: one the target has is moved into its
        schema (uncommitted until the swap) instead of being created a second time."""
        self.send_held()
        with self._conn.cursor() as cur:
            cur.execute(
                b"SELECT n.nspname FROM pg_extension x JOIN pg_namespace n"
                b" ON n.oid = x.extnamespace WHERE x.extname = %s",
                (name,),
            )
            found = cur.fetchone()
            if found is None:
                cur.execute(b"SELECT 1 FROM pg_available_extensions WHERE name = %s", (name,))
                if cur.fetchone() is None:
                    raise ZenMigrateError(
                        f"extension {name!r} is not available on the target server "
                        "(pg_available_extensions): install its package there first; "
                        "nothing was changed"
                    )
        if found is None:
            connection.execute_one(
                self._conn,
                f"CREATE EXTENSION IF NOT EXISTS {quote_ident(name)}"
                f" WITH SCHEMA {quote_ident(schema)}",
            )
        elif found[0] != schema:
            connection.execute_one(
                self._conn, f"ALTER EXTENSION {quote_ident(name)} SET SCHEMA {quote_ident(schema)}"
            )

    def counted_table(self, table: TableSpec) -> str:
        return f"ONLY {self._table(table)}"

    def counted_rows(self, query: str) -> Iterable[Sequence[Any]]:
        self.end_copy()
        self.send_held()
        return connection.fetch_all(self._conn, query)

    def swap(self) -> None:
        """Drop the old schemas and commit: the restored ones replace them at once.

        A schema that existed keeps its owner, privileges and comment. Foreign keys from
        outside into the restored tables are re-created against them (and checked).
        """
        self.end_copy()
        self.begin(None)
        self.send_held()
        self._swap.drop_old(self._meta_writer.apply)
        self._conn.commit()
        self.swapped = True
