"""Fingerprints of a whole database, to check that a restore is identical to its source.

MySQL: CHECKSUM TABLE and SHOW CREATE text of every table, view, trigger and routine.
PostgreSQL: an ordered hash of every row, and the catalogue (columns, constraints, indexes,
sequences' positions, views, functions, triggers). SQLite: an ordered hash of every row
and the schema text of every object.
"""

from __future__ import annotations

import hashlib
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
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') ORDER BY c.relname"
    ).scalars()
    for name in list(tables):
        quoted = '"' + name.replace('"', '""') + '"'
        out[f"rows:{name}"] = conn.exec_driver_sql(
            f"SELECT md5(coalesce(string_agg(t::text, E'\\n' ORDER BY t::text), '')) "
            f"FROM ONLY {quoted} t"
        ).scalar_one()
    for key, sql in _PG_CATALOGUE.items():
        out[key] = sorted(tuple(r) for r in conn.exec_driver_sql(sql).all())
    return out


# What a PostgreSQL restore must reproduce, each compared as a sorted list of rows.
_PG_CATALOGUE = {
    "columns": "SELECT table_name, column_name, ordinal_position, data_type, udt_name, "
    "column_default, is_nullable, collation_name, is_identity, is_generated, "
    "generation_expression FROM information_schema.columns WHERE table_schema = 'public'",
    "constraints": "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) "
    "FROM pg_constraint WHERE connamespace = 'public'::regnamespace",
    "indexes": "SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'",
    "sequences": "SELECT sequencename, last_value, start_value, increment_by FROM pg_sequences "
    "WHERE schemaname = 'public'",
    "views": "SELECT viewname, definition FROM pg_views WHERE schemaname = 'public'",
    "functions": "SELECT p.proname, pg_get_functiondef(p.oid) FROM pg_proc p "
    "WHERE p.pronamespace = 'public'::regnamespace AND p.prokind IN ('f', 'p')",
    "triggers": "SELECT tgname, pg_get_triggerdef(oid) FROM pg_trigger WHERE NOT tgisinternal",
    "types": "SELECT t.typname, t.typtype, format_type(t.typbasetype, t.typtypmod), "
    "array_to_string(array(SELECT enumlabel FROM pg_enum e WHERE e.enumtypid = t.oid "
    "ORDER BY e.enumsortorder), ',') FROM pg_type t "
    "WHERE t.typnamespace = 'public'::regnamespace AND t.typtype IN ('e', 'd', 'c') "
    "AND NOT EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = t.typrelid AND c.relkind <> 'c')",
}
