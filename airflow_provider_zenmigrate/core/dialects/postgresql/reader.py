"""The PostgreSQL backup reader: one REPEATABLE READ, READ ONLY snapshot of the schemas a
backup covers; its tables' definitions and their rows (rendered by the server as JSON, read
with COPY, on two sessions for large tables). The other objects come from :mod:`.objects`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Generator, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

import psycopg
from sqlalchemy.exc import DBAPIError

from ...dump.model import BackupScope, ColumnSpec, ObjectSpec, TableSpec
from ...errors import ZenMigrateError
from ..base import BackupReader, SliceDomain, Span, pipelined_ranges, span_where
from . import catalog, connection
from .connection import READ_SEARCH_PATH, SESSION_SETTINGS
from .copy_stream import JsonColumns, copy_text_rows, libpq_calls
from .meta import CatalogMeta, read_meta
from .names import display_name, is_staging_schema, qualified_name, quote_ident, quote_literal
from .objects import ObjectReader, sequence_states
from .render import CODEC_BY_TYPE_OID, binary_column, json_value_sql
from .schemas import not_carried

logger = logging.getLogger(__name__)

#: Bytes of COPY output handed on at a time (wide rows: fewer rows per batch).
COPY_BATCH_BYTES = 1024 * 1024
#: Heap blocks (8 KiB) per range of a table rendered on two sessions: about what a socket
#: holds, so the session not being read renders its whole range meanwhile.
RANGE_BLOCKS = 256


@dataclass
class _CatalogColumn:
    """A table's column as the catalog describes it (one row of :data:`.catalog.COLUMNS`)."""

    num: int
    name: str
    type: str
    type_oid: int
    notnull: bool
    default: str | None
    identity: str
    generated: str
    local: bool
    collation: str | None


@dataclass
class _CatalogTable:
    """A table as the catalog describes it (:data:`.catalog.TABLES`), with its parents (by
    record name) and columns."""

    oid: int
    schema: str
    name: str
    kind: str
    persistence: str
    is_partition: bool
    bound: str | None
    partkey: str | None
    reloptions: list[str]
    parents: list[str] = field(default_factory=list)
    columns: list[_CatalogColumn] = field(default_factory=list)

    @property
    def display(self) -> str:
        return display_name(self.schema, self.name)

    @property
    def qname(self) -> str:
        return qualified_name(self.schema, self.name)


class PostgreSQLBackupReader(BackupReader):
    """One REPEATABLE READ, READ ONLY transaction over the schemas of a :class:`BackupScope`.

    Beyond :class:`BackupReader`, it has :meth:`pre_objects`: the schemas, types, domains,
    sequences (and the functions column defaults and checks call) that must exist *before*
    the tables; :attr:`schemas` (what the dump holds) and :attr:`excluded` (what it left out).
    """

    def __init__(
        self,
        conn: psycopg.Connection[Any],
        second: Callable[[], psycopg.Connection[Any]] | None = None,
        scope: BackupScope | None = None,
    ) -> None:
        self._conn = conn
        self._cursors = 0
        #: COPY streams handed out; one left open would block the connection's rollback.
        self._streams: list[Generator[Any, None, None]] = []
        #: Opens a second connection (a transaction not yet begun), for parallel rendering.
        self._open_second = second
        self._second: psycopg.Connection[Any] | None = None
        for setting in (*SESSION_SETTINGS, READ_SEARCH_PATH):
            connection.execute_one(conn, setting)
        self.server_version = str(self._fetch_one("SHOW server_version")[0])
        self._server_version_num = int(self._fetch_one("SHOW server_version_num")[0])
        found = {name: oid for oid, name in self._fetch_all(catalog.SCHEMAS)}
        picked, self.excluded = select_schemas(sorted(found), scope or BackupScope())
        #: The schemas this dump holds, by name, and their oids for the catalog queries.
        self.schemas = picked
        self._schema_oids = [found[n] for n in picked]
        #: What the database holds that this dump does not carry (named in the header).
        self.not_carried = not_carried(conn, self._schema_oids)
        if self.not_carried:
            logger.warning(
                "not carried by this backup (recorded in its header): %s",
                "; ".join(f"{o['kind']} {o['name']}" for o in self.not_carried),
            )
        names = [
            qualified_name(n, r) for n, r in self._fetch_all(catalog.LOCKABLE, (self._schema_oids,))
        ]
        if names:  # hold off DDL on what we read for as long as the snapshot lives
            connection.execute_one(conn, f"LOCK TABLE {', '.join(names)} IN ACCESS SHARE MODE")
        self._tables: list[_CatalogTable] | None = None
        self._catalog_meta: CatalogMeta | None = None
        #: Heap blocks of each table, by oid, read on first use (:meth:`_block_ranges`).
        self._blocks: dict[int, int] | None = None

    # -- helpers -------------------------------------------------------------------------------
    def _fetch_all(self, query: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return connection.fetch_all(self._conn, query, params)

    def _fetch_one(self, query: str, params: Sequence[Any] = ()) -> tuple[Any, ...]:
        return self._fetch_all(query, params)[0]

    def _meta(self) -> CatalogMeta:
        if self._catalog_meta is None:
            self._catalog_meta = read_meta(
                lambda q, p: self._fetch_all(q, tuple(p)), self._schema_oids, display_name
            )
        return self._catalog_meta

    def scope(self) -> dict[str, Any]:
        """The schemas this dump holds, those left out (with why) and the objects of kinds no
        backup carries, for the header."""
        fields: dict[str, Any] = {"schemas": self.schemas, "excluded_schemas": self.excluded}
        if self.not_carried:
            fields["not_carried"] = self.not_carried
        return fields

    # -- tables --------------------------------------------------------------------------------
    def _load_tables(self) -> list[_CatalogTable]:
        if self._tables is not None:
            return self._tables
        by_oid: dict[int, _CatalogTable] = {}
        for oid, schema, name, kind, pers, is_part, bound, partkey, relopts in self._fetch_all(
            catalog.TABLES, (self._schema_oids,)
        ):
            by_oid[oid] = _CatalogTable(
                oid, schema, name, kind, pers, is_part, bound, partkey, list(relopts or [])
            )
        for child, parent in self._fetch_all(catalog.INHERITS, (self._schema_oids,)):
            if child in by_oid and parent in by_oid:
                by_oid[child].parents.append(by_oid[parent].display)
        for row in self._fetch_all(catalog.COLUMNS, (self._schema_oids,)):
            table = by_oid.get(row[0])
            if table is not None:
                table.columns.append(_CatalogColumn(*row[1:]))
        # Parents before children; otherwise by name.
        ordered: list[_CatalogTable] = []
        done: set[str] = set()
        by_name = {t.display: t for t in by_oid.values()}
        if len(by_name) < len(by_oid):
            raise ZenMigrateError(
                "two tables have the same name in this dump (a table named "
                "'schema.name' in public beside the table name in schema 'schema'); "
                "rename one, or leave one schema out with exclude_schemas"
            )

        def visit(t: _CatalogTable, path: frozenset[str]) -> None:
            if t.display in done or t.display in path:
                return
            for parent in t.parents:
                visit(by_name[parent], path | {t.display})
            done.add(t.display)
            ordered.append(t)

        for t in sorted(by_oid.values(), key=lambda t: (t.schema != "public", t.display)):
            visit(t, frozenset())
        self._tables = ordered
        return ordered

    def tables(self) -> list[TableSpec]:
        """Base tables, partitioned tables and their partitions of ``public``, parents first.

        ``options["owned_sequences"]`` maps a column to the sequence it owns (``serial``);
        the restore re-attaches the ownership after creating the table.
        """
        tables = self._load_tables()
        by_name = {t.display: t for t in tables}
        constraints: dict[int, list[tuple[str, str]]] = {}
        for conrelid, name, definition in self._fetch_all(
            catalog.INLINE_CONSTRAINTS, (self._schema_oids,)
        ):
            constraints.setdefault(conrelid, []).append((name, definition))
        identity: dict[tuple[int, int], tuple[Any, ...]] = {}
        owned: dict[int, dict[str, str]] = {}
        attached = self._fetch_all(catalog.TABLE_SEQUENCES, (self._schema_oids,))
        states = sequence_states(self._fetch_all, [r[2] for r in attached if r[4] == "i"])
        for relid, attnum, seq_oid, seq_name, deptype in attached:
            if deptype == "i":
                identity[(relid, attnum)] = (seq_name, *states[seq_oid])
            else:
                table = next(t for t in tables if t.oid == relid)
                attname = next(c.name for c in table.columns if c.num == attnum)
                owned.setdefault(relid, {})[attname] = seq_name
        keys: dict[int, list[str]] = {}
        for relid, attname in self._fetch_all(catalog.PRIMARY_KEYS, (self._schema_oids,)):
            keys.setdefault(relid, []).append(attname)

        out: list[TableSpec] = []
        for t in tables:
            stmt = self._create_table(t, by_name, constraints.get(t.oid, []), identity)
            columns = tuple(
                ColumnSpec(c.name, CODEC_BY_TYPE_OID.get(c.type_oid, "text"), c.type)
                for c in t.columns
                if c.generated == ""
            )
            positions = {
                name: state[-1]
                for (relid, _num), (name, *state) in identity.items()
                if relid == t.oid
            }
            options: dict[str, Any] = {
                "schema": t.schema,
                **self._meta().by_key.get(("pg_class", t.oid), {}),
            }
            if t.oid in owned:
                options["owned_sequences"] = owned[t.oid]
            if positions:  # where each identity column's sequence stood
                options["identity_positions"] = positions
            out.append(TableSpec(t.display, stmt, columns, tuple(keys.get(t.oid, ())), options))
        return out

    def _create_table(
        self,
        t: _CatalogTable,
        by_name: dict[str, _CatalogTable],
        constraints: list[tuple[str, str]],
        identity: dict[tuple[int, int], tuple[Any, ...]],
    ) -> str:
        head = "CREATE " + ("UNLOGGED " if t.persistence == "u" else "") + "TABLE " + t.qname
        cons = [f"CONSTRAINT {quote_ident(n)} {d}" for n, d in constraints]
        if t.is_partition and t.parents:
            parent = {c.name: c for c in by_name[t.parents[0]].columns}
            elems: list[str] = []
            for c in t.columns:
                p = parent.get(c.name)
                opts = []
                if (
                    c.default is not None
                    and c.generated == ""
                    and (p is None or p.default != c.default)
                ):
                    opts.append(f"DEFAULT {c.default}")
                if c.notnull and (p is None or not p.notnull):
                    opts.append("NOT NULL")
                if opts:
                    elems.append(f"{quote_ident(c.name)} WITH OPTIONS {' '.join(opts)}")
            elems += cons
            stmt = f"{head} PARTITION OF {by_name[t.parents[0]].qname}"
            if elems:
                stmt += " (\n    " + ",\n    ".join(elems) + "\n)"
            stmt += f" {t.bound}"
        else:
            elems = [self._column_def(t, c, identity) for c in t.columns if c.local] + cons
            stmt = head + " (\n    " + ",\n    ".join(elems) + "\n)"
            if t.parents:
                stmt += " INHERITS (" + ", ".join(by_name[p].qname for p in t.parents) + ")"
        if t.kind == "p" and t.partkey:
            stmt += f" PARTITION BY {t.partkey}"
        if t.reloptions:
            stmt += " WITH (" + ", ".join(t.reloptions) + ")"
        return stmt

    @staticmethod
    def _column_def(
        t: _CatalogTable, c: _CatalogColumn, identity: dict[tuple[int, int], tuple[Any, ...]]
    ) -> str:
        parts = [quote_ident(c.name), c.type]
        if c.collation:
            parts.append(f"COLLATE {c.collation}")
        if c.generated == "s":
            parts.append(f"GENERATED ALWAYS AS ({c.default}) STORED")
        elif c.identity:
            seq = identity.get((t.oid, c.num))
            kind = "ALWAYS" if c.identity == "a" else "BY DEFAULT"
            if seq is None:
                parts.append(f"GENERATED {kind} AS IDENTITY")
            else:
                name, _type, nxt, inc, minv, maxv, cache, cycle, _position = seq
                parts.append(
                    f"GENERATED {kind} AS IDENTITY (SEQUENCE NAME {qualified_name(t.schema, name)} "
                    f"START WITH {nxt} "
                    f"INCREMENT BY {inc} MINVALUE {minv} MAXVALUE {maxv} CACHE {cache} "
                    f"{'CYCLE' if cycle else 'NO CYCLE'})"
                )
        elif c.default is not None:
            parts.append(f"DEFAULT {c.default}")
        if c.notnull:
            parts.append("NOT NULL")
        return " ".join(parts)

    # -- rows ----------------------------------------------------------------------------------
    def _relation(self, table: TableSpec) -> str:
        """The quoted, qualified name of a table this reader handed out."""
        found = next((t for t in self._load_tables() if t.display == table.name), None)
        if found is None:
            schema = str(table.options.get("schema", "public"))
            return qualified_name(schema, table.name.removeprefix(f"{schema}."))
        return found.qname

    def rows(
        self, table: TableSpec, chunk_rows: int, span: Span | None = None
    ) -> Iterator[list[tuple[Any, ...]]]:
        """Rows of ``table`` itself (``FROM ONLY``), through a server-side cursor."""
        if chunk_rows < 1:
            raise ValueError("chunk_rows must be at least 1")
        if not table.columns:
            return
        select = ", ".join(
            quote_ident(c.name) + ("::text" if c.codec == "text" else "") for c in table.columns
        )
        self._cursors += 1
        with self._conn.cursor(name=f"zm_rows_{self._cursors}") as cur:
            cur.itersize = chunk_rows
            relation = self._relation(table)
            cur.execute(f"SELECT {select} FROM ONLY {relation}{_span_clause(span)}".encode())
            while chunk := cur.fetchmany(chunk_rows):
                yield [tuple(row) for row in chunk]

    def rendered_rows(
        self, table: TableSpec, chunk_rows: int, span: Span | None = None
    ) -> Generator[tuple[int, bytes], None, None] | None:
        """Rows as the dump's JSON objects, streamed with COPY ... TO STDOUT: written by C
        from the columns in binary, or (no C module) rendered by the server."""
        if chunk_rows < 1:
            raise ValueError("chunk_rows must be at least 1")
        if not table.columns:
            return None
        found = next((t for t in self._load_tables() if t.display == table.name), None)
        if found is None:
            return None
        oids = {c.name: c.type_oid for c in found.columns}
        keys = [
            (("{" if n == 0 else ",") + json.dumps(column.name, ensure_ascii=False) + ":")
            for n, column in enumerate(table.columns)
        ]
        json_columns: JsonColumns | None = None
        if libpq_calls() is not None and self._conn.info.encoding == "utf-8":
            # The columns themselves; C writes the JSON (copy_stream, _copy_out.c).
            picked = [binary_column(c.codec, oids.get(c.name, 0)) for c in table.columns]
            listed = ", ".join(
                sql.format(c=quote_ident(c.name))
                for c, (sql, _) in zip(table.columns, picked, strict=True)
            )
            select = f"SELECT {listed} FROM ONLY {found.qname}"
            json_columns = JsonColumns(
                "".join(kind for _, kind in picked).encode(),
                tuple(key.encode() for key in keys),
            )
        else:  # the server renders each row as one text column
            parts = [
                f"{quote_literal(key)} || COALESCE("
                + json_value_sql(c.codec, oids.get(c.name, 0)).format(c=quote_ident(c.name))
                + ", 'null')"
                for key, c in zip(keys, table.columns, strict=True)
            ]
            select = f"SELECT {' || '.join(parts)} || '}}' FROM ONLY {found.qname}"

        def open_stream(conn: psycopg.Connection[Any], where: str) -> Generator[Any, None, None]:
            return copy_text_rows(conn, select + where, chunk_rows, COPY_BATCH_BYTES, json_columns)

        ranges = self._block_ranges(found.oid) if span is None else []
        if len(ranges) > 1 and (second := self._second_connection()) is not None:
            conns = (self._conn, second)
            stream = pipelined_ranges(lambda i: open_stream(conns[i % 2], ranges[i]), len(ranges))
        else:  # the span, or the whole table on this session
            stream = open_stream(self._conn, _span_clause(span))
        self._streams.append(stream)
        return stream

    @contextmanager
    def retryable(self) -> Iterator[None]:
        """A savepoint: a COPY cancelled midway aborts only what came after it, and the
        snapshot (the transaction) goes on."""
        connection.execute_one(self._conn, "SAVEPOINT zm_part")
        try:
            yield
        except BaseException:
            self.close_streams()
            with suppress(psycopg.Error):
                connection.execute_one(self._conn, "ROLLBACK TO SAVEPOINT zm_part")
            raise
        connection.execute_one(self._conn, "RELEASE SAVEPOINT zm_part")

    def slice_domain(self, table: TableSpec) -> SliceDomain | None:
        """The table's heap blocks (TID range scans, PostgreSQL 14 and later); the last
        part is open-ended, so rows on blocks added since the snapshot began are read too."""
        found = next((t for t in self._load_tables() if t.display == table.name), None)
        if found is None or self._server_version_num < 140000 or not table.columns:
            return None
        blocks, size = self._fetch_one(
            "SELECT pg_relation_size(%s) / current_setting('block_size')::int, "
            "pg_relation_size(%s)",
            (found.oid, found.oid),
        )
        return SliceDomain("block", 0, max(int(blocks), 1), int(size))

    # -- rendering on two connections ------------------------------------------------------
    def _block_ranges(self, oid: int) -> list[str]:
        """WHERE clauses splitting a table into ranges of :data:`RANGE_BLOCKS` heap blocks
        (the last one open-ended: the table may have grown since the snapshot); one range,
        no clause, for a small table or a server without TID range scans (before 14)."""
        if self._server_version_num < 140000:
            return [""]
        if self._blocks is None:  # every table's at once: a query a table was most of (c)
            rows = self._fetch_all(catalog.RELATION_BLOCKS, (self._schema_oids,))
            self._blocks = {int(r[0]): int(r[1]) for r in rows}
        blocks = self._blocks.get(oid)
        if blocks is None:  # not a table of this snapshot's schemas
            (blocks,) = self._fetch_one(
                "SELECT pg_relation_size(%s) / current_setting('block_size')::int", (oid,)
            )
        starts = range(0, int(blocks) - RANGE_BLOCKS, RANGE_BLOCKS)
        if len(starts) < 2:
            return [""]
        clauses = [
            f" WHERE ctid >= '({a},0)'::tid AND ctid < '({a + RANGE_BLOCKS},0)'::tid"
            for a in starts
        ]
        return [*clauses, f" WHERE ctid >= '({starts[-1] + RANGE_BLOCKS},0)'::tid"]

    def in_recovery(self) -> bool:
        """Whether the server is a standby (which cannot export its snapshot)."""
        return bool(self._fetch_one("SELECT pg_is_in_recovery()")[0])

    def export_snapshot(self) -> str:
        """This transaction's snapshot, for other sessions to import while it lives."""
        return str(self._fetch_one("SELECT pg_export_snapshot()")[0])

    def _second_connection(self) -> psycopg.Connection[Any] | None:
        """A second session in this transaction's snapshot (pg_export_snapshot), opened on
        first use; None where there is none to be had (then one session renders)."""
        if self._second is not None or self._open_second is None:
            return self._second
        opener, self._open_second = self._open_second, None
        if self.in_recovery():
            return None  # a standby cannot export snapshots
        snapshot = self.export_snapshot()
        try:
            second = opener()
            connection.execute_one(
                second, f"SET TRANSACTION SNAPSHOT {quote_literal(str(snapshot))}"
            )
            for setting in (*SESSION_SETTINGS, READ_SEARCH_PATH):
                connection.execute_one(second, setting)
        except (psycopg.Error, DBAPIError) as exc:
            logger.info("rendering on one session: no second one (%s)", type(exc).__name__)
            return None
        self._second = second
        return second

    def close_streams(self) -> None:
        """Close COPY streams a consumer left unfinished (the server is told to stop)."""
        streams, self._streams = self._streams, []
        for stream in streams:
            stream.close()

    # -- other objects -------------------------------------------------------------------------
    def _objects(self) -> ObjectReader:
        return ObjectReader(self._fetch_all, self._schema_oids, self.schemas, self._meta)

    def pre_objects(self) -> list[ObjectSpec]:
        """Objects that must exist before the tables are created, in creation order (see
        :meth:`.objects.ObjectReader.before_tables`). Never overlaps :meth:`objects`."""
        return self._objects().before_tables()

    def objects(self) -> list[ObjectSpec]:
        """Everything created after the data, in an order that restores cleanly (see
        :meth:`.objects.ObjectReader.after_data`)."""
        return self._objects().after_data()


def _span_clause(span: Span | None) -> str:
    """A WHERE clause of the heap blocks ``[low, high)`` of a span."""
    return span_where("ctid", span, lambda block: f"'({block},0)'::tid")


def select_schemas(found: list[str], scope: BackupScope) -> tuple[list[str], list[dict[str, str]]]:
    """The schemas a backup takes of those ``found``, and those it leaves out with why."""
    for option, names in (("schemas", scope.schemas), ("exclude_schemas", scope.exclude_schemas)):
        missing = sorted(set(names) - set(found))
        if missing:
            raise ZenMigrateError(
                f"{option} names schemas the database does not have: {', '.join(missing)} "
                f"(it has: {', '.join(found) or 'none'})"
            )
    picked: list[str] = []
    excluded: list[dict[str, str]] = []
    for name in found:
        if name in scope.exclude_schemas:
            excluded.append({"schema": name, "reason": "named by exclude_schemas"})
        elif is_staging_schema(name) and name not in scope.schemas:
            excluded.append({"schema": name, "reason": "kept by a failed restore to resume"})
        elif scope.schemas and name not in scope.schemas:
            excluded.append({"schema": name, "reason": "not named by schemas"})
        else:
            picked.append(name)
    return picked, excluded
