"""Everything a PostgreSQL backup writes beside its tables: schemas, extensions, types,
domains, sequences, routines, views, indexes, constraints, triggers, rules, policies and
default privileges, each as an :class:`ObjectSpec` in an order that restores cleanly.

The backup reader (:mod:`.reader`) calls :func:`objects_before_tables` and
:func:`objects_after_data` with its snapshot's query function.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from ...dump.model import ObjectSpec
from . import catalog
from .meta import CatalogMeta, Query
from .names import display_name, qualified_name, quote_ident, quote_literal

#: Object types created before the tables (see :func:`objects_before_tables`).
BEFORE_TABLES_ORDER = {
    "schema": -1, "extension": 0, "type": 1, "domain": 1, "sequence": 2, "function": 3
}  # fmt: skip
#: Object types created after the data, group by group.
AFTER_DATA_ORDER = {
    "function": 0,
    "procedure": 0,
    "aggregate": 0,
    "view": 0,
    "materialized_view": 0,
    "index": 1,
    "constraint": 2,
    "trigger": 3,
    "rule": 4,
    "policy": 5,
    "default_privileges": 6,
}


@dataclass
class CatalogObject:
    """An object's record with its identity as ``pg_depend`` names it (``(catalog, oid)``),
    for dependency ordering and for finding its owner, privileges and comment."""

    key: tuple[str, int]
    spec: ObjectSpec


def sequence_state(query: Query, seq_oid: int) -> tuple[Any, ...]:
    """(type, start, increment, min, max, cache, cycle, [last value, is_called]) of a
    sequence: created as it was declared, then set where it stood (as pg_dump does)."""
    return sequence_states(query, [seq_oid])[seq_oid]


#: Sequences whose position one statement reads at most.
POSITIONS_BATCH = 500


def sequence_states(query: Query, seq_oids: list[int]) -> dict[int, tuple[Any, ...]]:
    """:func:`sequence_state` of every sequence in ``seq_oids``, by oid: one catalog query,
    and one statement per :data:`POSITIONS_BATCH` sequences for where they stand (a
    sequence's position is read from the sequence itself; two round trips a sequence were
    most of a backup of many small tables)."""
    if not seq_oids:
        return {}
    declared = {row[0]: row[1:] for row in query(catalog.SEQUENCES, (list(seq_oids),))}
    positions: dict[int, tuple[Any, Any]] = {}
    for start in range(0, len(seq_oids), POSITIONS_BATCH):
        parts = [
            f"SELECT {int(oid)}::oid, last_value, is_called FROM "
            f"{qualified_name(declared[oid][7], declared[oid][8])}"
            for oid in seq_oids[start : start + POSITIONS_BATCH]
        ]
        for oid, last, is_called in query(" UNION ALL ".join(parts), ()):
            positions[oid] = (last, is_called)
    out: dict[int, tuple[Any, ...]] = {}
    for oid in seq_oids:
        seqtype, start, inc, minv, maxv, cache, cycle, _schema, _name = declared[oid]
        last, is_called = positions[oid]
        out[oid] = (seqtype, start, inc, minv, maxv, cache, cycle, [int(last), bool(is_called)])
    return out


class ObjectReader:
    """Reads, in a backup's snapshot, the definitions of everything but its tables."""

    def __init__(
        self,
        query: Query,
        schema_oids: list[int],
        schemas: list[str],
        meta: Callable[[], CatalogMeta],
    ) -> None:
        self._query = query
        #: The oids of the schemas the backup covers, and their names (in the same order).
        self._schema_oids = schema_oids
        self.schemas = schemas
        #: Owners, privileges and comments, read once on first use.
        self._meta = meta

    def _fetch_all(self, query: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self._query(query, params)

    def _fetch_one(self, query: str, params: Sequence[Any] = ()) -> tuple[Any, ...]:
        return self._query(query, params)[0]

    def _with_meta(self, objs: list[CatalogObject]) -> list[CatalogObject]:
        by_key = self._meta().by_key
        for o in objs:
            if by_key.get(o.key):
                o.spec = replace(o.spec, options={**o.spec.options, **by_key[o.key]})
        return objs

    def before_tables(self) -> list[ObjectSpec]:
        """Objects that must exist before the tables are created, in creation order.

        Extensions installed in ``public``, enum / composite / range types, domains,
        sequences not owned by an identity column (``START WITH`` the value the source's next
        ``nextval`` would return), and the functions column defaults, generated columns and
        check constraints call. The engine creates them (``RestoreWriter.create_object``)
        before the first table. Never overlaps :meth:`after_data`.
        """
        meta = self._meta()
        objs: list[CatalogObject] = []
        for oid, name in zip(self._schema_oids, self.schemas, strict=True):
            spec = ObjectSpec(
                "schema",
                name,
                f"CREATE SCHEMA {quote_ident(name)}",
                options={"schema": name, **meta.schemas[name]},
            )
            objs.append(CatalogObject(("pg_namespace", oid), spec))
        for oid, schema, name in self._fetch_all(catalog.EXTENSIONS, (self._schema_oids,)):
            stmt = (
                f"CREATE EXTENSION IF NOT EXISTS {quote_ident(name)}"
                f" WITH SCHEMA {quote_ident(schema)}"
            )
            spec = ObjectSpec("extension", name, stmt, options={"schema": schema})
            objs.append(CatalogObject(("pg_extension", oid), spec))
        objs += self._types()
        free = self._fetch_all(catalog.FREE_SEQUENCES, (self._schema_oids,))
        states = sequence_states(self._query, [oid for oid, _, _ in free])
        for oid, schema, name in free:
            seqtype, nxt, inc, minv, maxv, cache, cycle, position = states[oid]
            stmt = (
                f"CREATE SEQUENCE {qualified_name(schema, name)} AS {seqtype} START WITH {nxt} "
                f"INCREMENT BY {inc} MINVALUE {minv} MAXVALUE {maxv} CACHE {cache} "
                f"{'CYCLE' if cycle else 'NO CYCLE'}"
            )
            spec = schema_object("sequence", schema, name, stmt)
            spec.options["position"] = position
            objs.append(CatalogObject(("pg_class", oid), spec))
        pre_funcs = {r[0] for r in self._fetch_all(catalog.PRE_FUNCTIONS, (self._schema_oids,))}
        objs += [o for o in self._routines() if o.key[1] in pre_funcs]
        return self._in_creation_order(self._with_meta(objs), BEFORE_TABLES_ORDER)

    def after_data(self) -> list[ObjectSpec]:
        """Everything created after the data, in an order that restores cleanly.

        Routines, aggregates, views and materialized views (by their dependencies), then
        indexes that back no constraint, the keys of plain tables (primary, unique,
        exclusion), foreign keys and NOT VALID checks (as ``constraint``: ``ALTER TABLE ...
        ADD CONSTRAINT``), triggers and rules.
        """
        pre_funcs = {r[0] for r in self._fetch_all(catalog.PRE_FUNCTIONS, (self._schema_oids,))}
        objs = [o for o in self._routines() if o.key[1] not in pre_funcs]
        for oid, schema, name, kind, definition, populated, relopts in self._fetch_all(
            catalog.VIEWS, (self._schema_oids,)
        ):
            body = definition.rstrip().rstrip(";")
            if kind == "m":
                stmt = f"CREATE MATERIALIZED VIEW {qualified_name(schema, name)} AS\n{body}\n"
                stmt += "WITH DATA" if populated else "WITH NO DATA"
                spec = schema_object("materialized_view", schema, name, stmt)
                objs.append(CatalogObject(("pg_class", oid), spec))
            else:
                opts = [o for o in (relopts or []) if not o.startswith("check_option=")]
                check = [
                    o.split("=", 1)[1] for o in (relopts or []) if o.startswith("check_option=")
                ]
                stmt = f"CREATE VIEW {qualified_name(schema, name)}"
                if opts:
                    stmt += " WITH (" + ", ".join(opts) + ")"
                stmt += f" AS\n{body}"
                if check:
                    stmt += f"\nWITH {check[0].upper()} CHECK OPTION"
                objs.append(
                    CatalogObject(("pg_class", oid), schema_object("view", schema, name, stmt))
                )
        for oid, schema, name, table, definition, unique, quoted in self._fetch_all(
            catalog.INDEXES, (self._schema_oids,)
        ):
            only = f"CREATE {'UNIQUE ' if unique else ''}INDEX {quoted} ON ONLY "
            if definition.startswith(only):  # a partitioned table's index: recurse instead
                definition = only[: -len("ONLY ")] + definition[len(only) :]
            spec = table_member("index", schema, name, table, definition)
            objs.append(CatalogObject(("pg_class", oid), spec))
        for oid, schema, name, table, kind, definition in self._fetch_all(
            catalog.LATE_CONSTRAINTS, (self._schema_oids,)
        ):
            only = "ONLY " if kind == "r" else ""
            stmt = (
                f"ALTER TABLE {only}{qualified_name(schema, table)}"
                f" ADD CONSTRAINT {quote_ident(name)} {definition}"
            )
            spec = table_member("constraint", schema, name, table, stmt)
            objs.append(CatalogObject(("pg_constraint", oid), spec))
        for oid, schema, name, table, definition in self._fetch_all(
            catalog.TRIGGERS, (self._schema_oids,)
        ):
            spec = table_member("trigger", schema, name, table, definition)
            objs.append(CatalogObject(("pg_trigger", oid), spec))
        for oid, schema, name, table, definition in self._fetch_all(
            catalog.RULES, (self._schema_oids,)
        ):
            stmt = definition.rstrip().rstrip(";")
            objs.append(
                CatalogObject(("pg_rewrite", oid), table_member("rule", schema, name, table, stmt))
            )
        meta = self._meta()
        objs += [CatalogObject(key, spec) for key, spec in (*meta.policies, *meta.default_acls)]
        return self._in_creation_order(self._with_meta(objs), AFTER_DATA_ORDER)

    def _types(self) -> list[CatalogObject]:
        out: list[CatalogObject] = []
        for oid, schema, name, typtype, basetype, notnull, default, collation in self._fetch_all(
            catalog.TYPES, (self._schema_oids,)
        ):
            qname = qualified_name(schema, name)
            if typtype == "e":
                labels = [r[0] for r in self._fetch_all(catalog.ENUM_LABELS, (oid,))]
                stmt = (
                    f"CREATE TYPE {qname} AS ENUM (" + ", ".join(map(quote_literal, labels)) + ")"
                )
                out.append(
                    CatalogObject(("pg_type", oid), schema_object("type", schema, name, stmt))
                )
            elif typtype == "d":
                stmt = f"CREATE DOMAIN {qname} AS {basetype}"
                if collation:
                    stmt += f" COLLATE {collation}"
                if default is not None:
                    stmt += f" DEFAULT {default}"
                if notnull:
                    stmt += " NOT NULL"
                for cname, cdef in self._fetch_all(catalog.DOMAIN_CONSTRAINTS, (oid,)):
                    stmt += f" CONSTRAINT {quote_ident(cname)} {cdef}"
                out.append(
                    CatalogObject(("pg_type", oid), schema_object("domain", schema, name, stmt))
                )
            elif typtype == "c":
                attrs = [
                    f"{quote_ident(a)} {t}" + (f" COLLATE {coll}" if coll else "")
                    for a, t, coll in self._fetch_all(catalog.COMPOSITE_ATTRS, (oid,))
                ]
                stmt = f"CREATE TYPE {qname} AS (" + ", ".join(attrs) + ")"
                out.append(
                    CatalogObject(("pg_type", oid), schema_object("type", schema, name, stmt))
                )
            elif typtype == "r":
                subtype, diff, multirange = self._fetch_one(catalog.RANGE, (oid,))
                opts = [f"SUBTYPE = {subtype}"]
                if diff:
                    opts.append(f"SUBTYPE_DIFF = {diff}")
                if multirange:
                    opts.append(f"MULTIRANGE_TYPE_NAME = {qualified_name(schema, multirange)}")
                stmt = f"CREATE TYPE {qname} AS RANGE (" + ", ".join(opts) + ")"
                out.append(
                    CatalogObject(("pg_type", oid), schema_object("type", schema, name, stmt))
                )
        return out

    def _routines(self) -> list[CatalogObject]:
        out: list[CatalogObject] = []
        for oid, schema, name, kind, definition in self._fetch_all(
            catalog.ROUTINES, (self._schema_oids,)
        ):
            if kind == "a":
                out.append(CatalogObject(("pg_proc", oid), self._aggregate(oid, schema, name)))
                continue
            # pg_get_functiondef qualifies the routine's own name, as the restore wants it.
            otype = "procedure" if kind == "p" else "function"
            spec = schema_object(otype, schema, name, definition.rstrip())
            out.append(CatalogObject(("pg_proc", oid), spec))
        return out

    def _aggregate(self, oid: int, schema: str, name: str) -> ObjectSpec:
        row = self._fetch_one(catalog.AGGREGATE, (oid,))
        args, sfunc, stype, sspace, ffunc, fextra, cfunc, serial, deserial, init, sortop = row
        opts = [f"SFUNC = {sfunc}", f"STYPE = {stype}"]
        if sspace:
            opts.append(f"SSPACE = {sspace}")
        if ffunc:
            opts.append(f"FINALFUNC = {ffunc}")
            if fextra:
                opts.append("FINALFUNC_EXTRA")
        if cfunc:
            opts.append(f"COMBINEFUNC = {cfunc}")
        if serial:
            opts.append(f"SERIALFUNC = {serial}")
        if deserial:
            opts.append(f"DESERIALFUNC = {deserial}")
        if init is not None:
            opts.append(f"INITCOND = {quote_literal(init)}")
        if sortop:
            opts.append(f"SORTOP = {sortop}")
        stmt = (
            f"CREATE AGGREGATE {qualified_name(schema, name)}({args}) (\n    "
            + ",\n    ".join(opts)
            + "\n)"
        )
        return schema_object("aggregate", schema, name, stmt)

    def _in_creation_order(
        self, objs: list[CatalogObject], groups: dict[str, int]
    ) -> list[ObjectSpec]:
        """Group order first, then dependencies (``pg_depend``) inside a group."""
        objs = sorted(objs, key=lambda o: (groups.get(o.spec.object_type, 9), o.spec.name))
        position = {o.key: i for i, o in enumerate(objs)}
        waiting_on = [0] * len(objs)
        needed_by: list[list[int]] = [[] for _ in objs]
        seen: set[tuple[int, int]] = set()
        for cls, objid, refcls, refobjid in self._fetch_all(catalog.DEPENDS):
            src, ref = position.get((cls, objid)), position.get((refcls, refobjid))
            if src is None or ref is None or src == ref or (src, ref) in seen:
                continue
            seen.add((src, ref))
            waiting_on[src] += 1
            needed_by[ref].append(src)
        ready = [i for i, n in enumerate(waiting_on) if n == 0]
        heapq.heapify(ready)
        order: list[int] = []
        while ready:
            i = heapq.heappop(ready)
            order.append(i)
            for j in needed_by[i]:
                waiting_on[j] -= 1
                if waiting_on[j] == 0:
                    heapq.heappush(ready, j)
        placed = set(order)
        order += [i for i in range(len(objs)) if i not in placed]  # cycles: group order
        return [objs[i].spec for i in order]


def schema_object(object_type: str, schema: str, name: str, stmt: str) -> ObjectSpec:
    """A schema object's record: named as its table would be (:func:`display_name`)."""
    return ObjectSpec(object_type, display_name(schema, name), stmt, options={"schema": schema})


def table_member(object_type: str, schema: str, name: str, table: str, stmt: str) -> ObjectSpec:
    """An object that belongs to a table (index, constraint, trigger, rule): its own name is
    bare in its statement, the table's is qualified."""
    return ObjectSpec(
        object_type, name, stmt, display_name(schema, table), options={"schema": schema}
    )
