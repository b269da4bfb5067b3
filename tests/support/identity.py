"""Fingerprints of a whole database, to check that a restore is identical to its source.

MySQL: CHECKSUM TABLE and SHOW CREATE text of every table, view, trigger and routine.
PostgreSQL: an ordered hash of every row, and the catalogue (columns, constraints, indexes,
sequences' positions, views, functions, triggers, owners, privileges, comments, policies),
in every schema but the system ones. SQLite: an ordered hash of every row
and the schema text of every object.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

import sqlalchemy
from sqlalchemy.engine import URL
from sqlalchemy.pool import NullPool


def fingerprint(url: URL) -> dict[str, Any]:
    engine = sqlalchemy.create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            backend = url.get_backend_name()
            if backend == "sqlite":
                return _sqlite(conn)
            if backend in ("mysql", "mariadb"):
                return _mysql(conn)
            return _postgresql(conn)
    finally:
        engine.dispose()


def _digest(rows: Any) -> str:
    return hashlib.sha256(repr(list(rows)).encode()).hexdigest()


def _sqlite(conn: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    schema = conn.exec_driver_sql(
        "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name"
    ).all()
    out["schema"] = [tuple(r) for r in schema]
    for kind, name, _table, _sql in schema:
        if kind == "table":
            rows = conn.exec_driver_sql(f'SELECT * FROM "{name}"').all()
            out[f"rows:{name}"] = _digest(sorted(rows, key=repr))
    return out


def _mysql(conn: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    tables = conn.exec_driver_sql(
        "SELECT TABLE_NAME, TABLE_TYPE FROM information_schema.TABLES "
        "WHERE TABLE_SCHEMA = DATABASE() ORDER BY TABLE_NAME"
    ).all()
    for name, kind in tables:
        quoted = "`" + name.replace("`", "``") + "`"
        if kind == "VIEW":
            out[f"view:{name}"] = conn.exec_driver_sql(f"SHOW CREATE VIEW {quoted}").one()[1]
            continue
        out[f"create:{name}"] = conn.exec_driver_sql(f"SHOW CREATE TABLE {quoted}").one()[1]
        out[f"checksum:{name}"] = conn.exec_driver_sql(f"CHECKSUM TABLE {quoted}").one()[1]
    for (name,) in conn.exec_driver_sql(
        "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS "
        "WHERE TRIGGER_SCHEMA = DATABASE() ORDER BY TRIGGER_NAME"
    ).all():
        out[f"trigger:{name}"] = conn.exec_driver_sql(f"SHOW CREATE TRIGGER `{name}`").one()[2]
    for name, kind in conn.exec_driver_sql(
        "SELECT ROUTINE_NAME, ROUTINE_TYPE FROM information_schema.ROUTINES "
        "WHERE ROUTINE_SCHEMA = DATABASE() ORDER BY ROUTINE_NAME"
    ).all():
        out[f"{kind.lower()}:{name}"] = conn.exec_driver_sql(f"SHOW CREATE {kind} `{name}`").one()[
            2
        ]
    return out


def _postgresql(conn: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    tables = conn.exec_driver_sql(
        "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n "
        f"ON n.oid = c.relnamespace WHERE {_USER} AND c.relkind IN ('r', 'p') ORDER BY 1, 2"
    ).all()
    for schema, name in list(tables):
        quoted = ".".join('"' + n.replace('"', '""') + '"' for n in (schema, name))
        shown = name if schema == "public" else f"{schema}.{name}"
        out[f"rows:{shown}"] = conn.exec_driver_sql(
            f"SELECT md5(coalesce(string_agg(t::text, E'\\n' ORDER BY t::text), '')) "
            f"FROM ONLY {quoted} t"
        ).scalar_one()
    for key, sql in _PG_CATALOGUE.items():
        out[key] = sorted(tuple(r) for r in conn.exec_driver_sql(sql).all())
    out["constraints"] = [(*r[:-1], canonical_check(r[-1])) for r in out["constraints"]]
    return out


_CAST_ELEMENT = r"\('((?:[^']|'')*)'::([\w ]+)\)::text"
_CAST_ARRAY = re.compile(rf"ANY \(ARRAY\[((?:{_CAST_ELEMENT}(?:, )?)+)\]\)")


def canonical_check(definition: str) -> str:
    """PostgreSQL prints ``c IN ('a', 'b')`` on a varchar column as ``= ANY ((ARRAY['a'::
    character varying, ...])::text[])``, and that text, run again, prints as ``= ANY (ARRAY[(
    'a'::character varying)::text, ...])``: the same check, which pg_dump and psql cannot give
    back in the first form either. The second form is brought to the first."""

    def first_form(match: re.Match[str]) -> str:
        items = re.findall(_CAST_ELEMENT, match.group(1))
        return "ANY ((ARRAY[" + ", ".join(f"'{v}'::{t}" for v, t in items) + "])::text[])"

    return _CAST_ARRAY.sub(first_form, definition)


# The schemas a PostgreSQL backup covers (condition on pg_namespace ``n``). The staging
# schemas a failed parallel restore keeps to resume (``zm_stage_``) are not the target's
# contents: tests look for them with their own checks (tests/reliability/_outage.py).
_USER = (
    "n.nspname NOT IN ('pg_catalog', 'information_schema') "
    "AND left(n.nspname, 8) <> 'pg_toast' AND left(n.nspname, 7) <> 'pg_temp' "
    "AND left(n.nspname, 9) <> 'zm_stage_'"
)
_IN_USER = f"IN (SELECT n.nspname FROM pg_namespace n WHERE {_USER})"
_IN_USER_OID = f"IN (SELECT n.oid FROM pg_namespace n WHERE {_USER})"

# What a PostgreSQL restore must reproduce, each compared as a sorted list of rows.
_PG_CATALOGUE = {
    "schemas": "SELECT n.nspname, pg_get_userbyid(n.nspowner), n.nspacl::text, "
    f"obj_description(n.oid, 'pg_namespace') FROM pg_namespace n WHERE {_USER}",
    # A column's rank, not its ordinal_position: a dropped column leaves a gap in the numbers
    # that no dump (ours or pg_dump's) reproduces; the order is what a client sees.
    "columns": "SELECT table_schema, table_name, column_name, row_number() OVER "
    "(PARTITION BY table_schema, table_name ORDER BY ordinal_position), data_type, "
    "udt_name, column_default, is_nullable, collation_name, is_identity, is_generated, "
    f"generation_expression FROM information_schema.columns WHERE table_schema {_IN_USER}",
    "constraints": "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) "
    f"FROM pg_constraint WHERE connamespace {_IN_USER_OID}",
    "indexes": "SELECT schemaname, tablename, indexname, indexdef FROM pg_indexes "
    f"WHERE schemaname {_IN_USER}",
    "sequences": "SELECT schemaname, sequencename, last_value, start_value, increment_by "
    f"FROM pg_sequences WHERE schemaname {_IN_USER}",
    "views": f"SELECT schemaname, viewname, definition FROM pg_views WHERE schemaname {_IN_USER}",
    "functions": "SELECT p.pronamespace::regnamespace::text, p.proname, "
    "pg_get_functiondef(p.oid) FROM pg_proc p "
    f"WHERE p.pronamespace {_IN_USER_OID} AND p.prokind IN ('f', 'p')",
    "triggers": "SELECT tgname, pg_get_triggerdef(oid) FROM pg_trigger WHERE NOT tgisinternal",
    "types": "SELECT t.typnamespace::regnamespace::text, t.typname, t.typtype, "
    "format_type(t.typbasetype, t.typtypmod), "
    "array_to_string(array(SELECT enumlabel FROM pg_enum e WHERE e.enumtypid = t.oid "
    "ORDER BY e.enumsortorder), ',') FROM pg_type t "
    f"WHERE t.typnamespace {_IN_USER_OID} AND t.typtype IN ('e', 'd', 'c') "
    "AND NOT EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = t.typrelid AND c.relkind <> 'c')",
    "owners_and_privileges": "SELECT c.oid::regclass::text, c.relkind, "
    "pg_get_userbyid(c.relowner), c.relacl::text, obj_description(c.oid, 'pg_class'), "
    "c.relrowsecurity, c.relforcerowsecurity FROM pg_class c "
    f"WHERE c.relnamespace {_IN_USER_OID} AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'i')",
    "column_privileges_and_comments": "SELECT a.attrelid::regclass::text, a.attname, "
    "a.attacl::text, col_description(a.attrelid, a.attnum) FROM pg_attribute a "
    f"JOIN pg_class c ON c.oid = a.attrelid WHERE c.relnamespace {_IN_USER_OID} "
    "AND a.attnum > 0 AND NOT a.attisdropped "
    "AND (a.attacl IS NOT NULL OR col_description(a.attrelid, a.attnum) IS NOT NULL)",
    "policies": "SELECT schemaname, tablename, policyname, permissive, roles::text, cmd, "
    f"qual, with_check FROM pg_policies WHERE schemaname {_IN_USER}",
    "default_privileges": "SELECT pg_get_userbyid(defaclrole), "
    "defaclnamespace::regnamespace::text, defaclobjtype, defaclacl::text FROM pg_default_acl",
}
