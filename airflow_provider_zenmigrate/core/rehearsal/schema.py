"""A database's user schema as plain data, and the differences between two of them.

Drift (production against a database its scripts build) and the way back (the copy after
the downgrades against the copy before the upgrade) both compare two schemas that should be
the same even though one was restored and the other built: :func:`snapshot` describes a
schema through SQLAlchemy's inspector (one code path for every backend) and normalises what
differs between two copies of one schema without differing in meaning (casts and quotes
around defaults, server-generated constraint names, the database a MySQL view names).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Collection, Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, Engine, inspect
from sqlalchemy.engine import Dialect, Inspector
from sqlalchemy.exc import CompileError, SAWarning

from ..dialects import get_dialect
from ..dialects.postgresql.catalog import USER_SCHEMA
from .model import SchemaDifference

Snapshot = dict[str, Any]

_PG_DEFAULT_SCHEMA = "public"

#: Names the servers give constraints and indexes nobody named (see :func:`_generated`).
_PG_GENERATED = r"(_.+)?_(pkey|key|fkey|idx|check|excl)\d*"
_MYSQL_GENERATED = r"(_ibfk_\d+|_chk_\d+)"


# -- snapshot -----------------------------------------------------------------------------------
def snapshot(engine: Engine, *, exclude_tables: Collection[str] = ()) -> Snapshot:
    """The user schema of ``engine``'s database as JSON-able data (see :func:`compare`).

    Left out: ``exclude_tables`` (the version table), the tables the backend keeps for
    itself (:meth:`..dialects.DialectOps.user_tables`) and, on PostgreSQL, the system
    schemas. PostgreSQL tables outside ``public`` are qualified.
    """
    excluded = set(exclude_tables)
    ops = get_dialect(engine)
    backend = engine.dialect.name
    with warnings.catch_warnings():
        # Reflection warns about what it cannot map (a domain, an odd index); the snapshot
        # keeps what it can and compares that.
        warnings.simplefilter("ignore", SAWarning)
        with engine.connect() as conn:
            inspector = inspect(conn)
            tables: dict[str, Any] = {}
            views: dict[str, str] = {}
            mysql = backend in ("mysql", "mariadb")
            database = conn.exec_driver_sql("SELECT DATABASE()").scalar() if mysql else None
            for schema in _schemas(conn, backend):
                for table in ops.user_tables(conn, schema):
                    if table in excluded:
                        continue
                    name = _qualified(schema, table)
                    tables[name] = _table(inspector, conn, schema, table)
                for view in inspector.get_view_names(schema=schema):
                    definition = inspector.get_view_definition(view, schema=schema)
                    views[_qualified(schema, view)] = _view_definition(
                        str(definition or ""), backend, database
                    )
    return {"dialect": backend, "tables": tables, "views": views}


def _schemas(conn: Connection, backend: str) -> Sequence[str | None]:
    """The schemas to describe: PostgreSQL's user ones (as a backup takes them); elsewhere
    the database."""
    if backend != "postgresql":
        return [None]
    query = f"SELECT n.nspname FROM pg_namespace n WHERE {USER_SCHEMA} ORDER BY 1"
    return list(conn.exec_driver_sql(query).scalars())


def _qualified(schema: str | None, name: str) -> str:
    return name if schema in (None, _PG_DEFAULT_SCHEMA) else f"{schema}.{name}"


def _table(
    inspector: Inspector, conn: Connection, schema: str | None, table: str
) -> dict[str, Any]:
    backend = conn.dialect.name
    columns: dict[str, Any] = {}
    for column in inspector.get_columns(table, schema=schema):
        computed = column.get("computed")
        columns[column["name"]] = {
            "type": _type_text(column["type"], conn.dialect),
            "nullable": bool(column.get("nullable", True)),
            "default": normalise_default(column.get("default")),
            "computed": _sql(str(computed["sqltext"])) if computed else None,
        }
    pk = inspector.get_pk_constraint(table, schema=schema) or {}
    checks = _plain(_checks(inspector, table, schema))
    if backend == "sqlite":
        indexes, uniques, fks = _sqlite_keys(conn, table)
    else:
        fks = _plain(inspector.get_foreign_keys(table, schema=schema))
        uniques = _plain(inspector.get_unique_constraints(table, schema=schema))
        indexes = _plain(inspector.get_indexes(table, schema=schema))
    fk_names = {str(fk["name"]) for fk in fks if fk.get("name")}
    if backend in ("mysql", "mariadb"):
        # Every MySQL unique constraint is a unique index too: keep it once, as the index.
        uniques = [u for u in uniques if not u.get("duplicates_index")]
    else:
        # PostgreSQL lists a unique constraint's index as well: keep the constraint.
        indexes = [i for i in indexes if not i.get("duplicates_constraint")]
    return {
        "columns": columns,
        "primary_key": list(pk.get("constrained_columns") or []),
        "indexes": _by_key(_index(backend, table, index, fk_names) for index in indexes),
        "foreign_keys": _by_key(_foreign_key(backend, table, fk) for fk in fks),
        "unique": _by_key(_unique(backend, table, u) for u in uniques),
        "checks": _by_key(_check(backend, table, c) for c in checks),
    }


def _plain(items: Iterable[Any]) -> list[dict[str, Any]]:
    """The inspector's typed dicts as plain ones (the helpers read a few keys of each)."""
    return [dict(item) for item in items]


def _by_key(items: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(items, key=lambda item: (item["key"], item["sql"]))


def _sqlite_keys(
    conn: Connection, table: str
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """SQLite's indexes, unique constraints and foreign keys, from its pragmas.

    The inspector leaves out expression indexes, column-level UNIQUE and the actions of
    column-level REFERENCES; the pragmas show all three.
    """
    quote = conn.dialect.identifier_preparer.quote_identifier
    indexes: list[dict[str, Any]] = []
    uniques: list[dict[str, Any]] = []
    for row in conn.exec_driver_sql(f"PRAGMA index_list({quote(table)})").mappings().all():
        name = str(row["name"])
        if row["origin"] == "pk":
            continue
        keys = conn.exec_driver_sql(f"PRAGMA index_xinfo({quote(name)})").mappings()
        columns = [k["name"] for k in keys if k["key"]]
        if row["origin"] == "u":
            uniques.append({"name": None, "column_names": columns})
            continue
        sql = conn.exec_driver_sql(
            "SELECT sql FROM sqlite_master WHERE type = 'index' AND name = ?", (name,)
        ).scalar()
        indexes.append(
            {
                "name": name,
                "unique": bool(row["unique"]),
                "column_names": columns,
                "expressions": _sqlite_index_terms(str(sql or ""), columns),
                "dialect_options": {"sqlite_where": _sqlite_where(str(sql or ""))},
            }
        )
    fks: dict[int, dict[str, Any]] = {}
    for row in conn.exec_driver_sql(f"PRAGMA foreign_key_list({quote(table)})").mappings().all():
        fk = fks.setdefault(
            int(row["id"]),
            {
                "name": None,
                "referred_schema": None,
                "referred_table": row["table"],
                "constrained_columns": [],
                "referred_columns": [],
                "options": {"ondelete": row["on_delete"], "onupdate": row["on_update"]},
            },
        )
        fk["constrained_columns"].append(row["from"])
        fk["referred_columns"].append(row["to"] or "")
    for fk in fks.values():
        for option in ("ondelete", "onupdate"):
            if str(fk["options"][option]).upper() == "NO ACTION":
                fk["options"][option] = None
    return indexes, uniques, list(fks.values())


def _sqlite_index_terms(sql: str, columns: list[str | None]) -> list[str]:
    """An index's terms: its columns, and the text of each expression from its SQL."""
    if all(c is not None for c in columns):
        return [str(c) for c in columns]
    match = re.search(r"\bON\s+(\"(?:\"\"|[^\"])*\"|\S+?)\s*\((.*)\)", sql, flags=re.I | re.S)
    if not match:
        return [str(c) if c is not None else "?" for c in columns]
    body = re.split(r"\)\s*WHERE\b", match.group(2), flags=re.I)[0]
    return [_collapse(term) for term in _split_top_level(body)]


def _sqlite_where(sql: str) -> str | None:
    match = re.search(r"\)\s*WHERE\s+(.*)$", sql, flags=re.I | re.S)
    return match.group(1) if match else None


def _split_top_level(text: str) -> list[str]:
    """``a, lower(b, c)`` -> ``["a", "lower(b, c)"]``."""
    parts, depth, start = [], 0, 0
    for i, char in enumerate(text):
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p.strip() for p in parts if p.strip()]


def _checks(inspector: Inspector, table: str, schema: str | None) -> list[Any]:
    try:
        return list(inspector.get_check_constraints(table, schema=schema))
    except NotImplementedError:
        return []


def _type_text(type_: Any, dialect: Dialect) -> str:
    """The column type as the engine's dialect writes it, upper case, spaces collapsed."""
    try:
        text = type_.compile(dialect=dialect)
    except (CompileError, NotImplementedError, AttributeError):
        text = getattr(type_, "name", None) or type(type_).__name__
    return _collapse(str(text)).upper()


def _index(backend: str, table: str, index: dict[str, Any], fk_names: set[str]) -> dict[str, Any]:
    expressions = index.get("expressions") or index.get("column_names") or []
    parts = [_sql(str(e)) if e is not None else "?" for e in expressions]
    where = ""
    for option, value in sorted((index.get("dialect_options") or {}).items()):
        if option.endswith("_where") and value is not None:
            where = f" WHERE {_sql(str(value))}"
    unique = bool(index.get("unique"))
    text = f"{'UNIQUE ' if unique else ''}({', '.join(parts)}){where}"
    name = str(index.get("name") or "")
    generated = (
        not name
        or name in fk_names
        or (backend in ("mysql", "mariadb") and bool(parts) and name == parts[0])
        or _generated(backend, table, name)
    )
    return {"key": f"({', '.join(parts)})" if generated else name, "name": name, "sql": text}


def _foreign_key(backend: str, table: str, fk: dict[str, Any]) -> dict[str, Any]:
    referred = _qualified(fk.get("referred_schema"), fk["referred_table"])
    cols = ", ".join(fk["constrained_columns"])
    text = f"FOREIGN KEY ({cols}) REFERENCES {referred} ({', '.join(fk['referred_columns'])})"
    for option, value in sorted((fk.get("options") or {}).items()):
        if option in ("ondelete", "onupdate") and value:
            text += f" ON {option[2:].upper()} {str(value).upper()}"
    return {
        "key": _constraint_key(backend, table, fk.get("name"), f"FOREIGN KEY ({cols})"),
        "sql": text,
    }


def _unique(backend: str, table: str, unique: dict[str, Any]) -> dict[str, Any]:
    cols = ", ".join(unique["column_names"])
    return {
        "key": _constraint_key(backend, table, unique.get("name"), f"UNIQUE ({cols})"),
        "sql": f"UNIQUE ({cols})",
    }


def _check(backend: str, table: str, check: dict[str, Any]) -> dict[str, Any]:
    text = f"CHECK ({_sql(str(check.get('sqltext') or ''))})"
    return {"key": _constraint_key(backend, table, check.get("name"), text), "sql": text}


def _constraint_key(backend: str, table: str, name: str | None, signature: str) -> str:
    """A constraint's name if someone gave it, else what it does."""
    if name and not _generated(backend, table, name):
        return name
    return signature


def _generated(backend: str, table: str, name: str) -> bool:
    """Whether ``name`` is one a server makes up for a constraint or index left unnamed."""
    if backend == "postgresql":
        # table_col_key, table_pkey...; PostgreSQL truncates long names to 63 bytes.
        return bool(re.fullmatch(re.escape(table[:40]) + r".*" + _PG_GENERATED, name))
    if backend in ("mysql", "mariadb"):
        return name == "PRIMARY" or bool(
            re.fullmatch(re.escape(table) + _MYSQL_GENERATED + r"|CONSTRAINT_\d+", name)
        )
    return name.startswith("sqlite_autoindex_")


def _view_definition(definition: str, backend: str, database: str | None) -> str:
    """The view's query, whitespace collapsed; MySQL's header (algorithm, definer, security)
    and the database it names (a copy lives in another one) left out."""
    text = definition
    if backend in ("mysql", "mariadb"):
        match = re.search(r"\bVIEW\s+`(?:``|[^`])*`\s+AS\s+", text, flags=re.I)
        if match:
            text = text[match.end() :]
        if database:
            text = text.replace(f"`{database.replace('`', '``')}`.", "")
    elif backend == "sqlite":
        match = re.match(r"\s*CREATE\s+(TEMP\w*\s+)?VIEW\s+.*?\s+AS\s+", text, flags=re.I | re.S)
        if match:
            text = text[match.end() :]
    return _collapse(text).rstrip(";").strip()


# -- normalising SQL text -----------------------------------------------------------------------
_CAST = re.compile(
    r"::\s*(\"[^\"]+\"|[a-z_][\w.]*)(\s+(varying|precision|without time zone|"
    r"with time zone))*(\s*\(\d+(,\s*\d+)?\))?(\[\])*",
    re.I,
)
_QUOTED_NUMBER = re.compile(r"^'(-?\d+(\.\d+)?)'$")
_NOW = re.compile(r"^now\(\s*\)$", re.I)
_CURRENT = re.compile(r"\bcurrent_timestamp\b(\(\s*\))?", re.I)


def _collapse(text: str) -> str:
    return " ".join(text.split())


def _strip_parens(text: str) -> str:
    """``((x))`` -> ``x``, only where the outer parentheses wrap the whole expression."""
    while text.startswith("(") and text.endswith(")"):
        depth = 0
        for i, char in enumerate(text):
            depth += {"(": 1, ")": -1}.get(char, 0)
            if depth == 0 and i < len(text) - 1:
                return text
        text = text[1:-1].strip()
    return text


def _outside_quotes(text: str, pattern: re.Pattern[str], replacement: str) -> str:
    """Apply ``pattern`` only to the parts of ``text`` that are not string literals."""
    parts = re.split(r"('(?:''|[^'])*')", text)
    return "".join(p if i % 2 else pattern.sub(replacement, p) for i, p in enumerate(parts))


def _sql(text: str) -> str:
    """An expression with PostgreSQL's casts, outer parentheses and spacing normalised."""
    text = _outside_quotes(_collapse(text), _CAST, "")
    return _strip_parens(text.strip())


def normalise_default(default: str | None) -> str | None:
    """A server default as both copies of a schema show it.

    ``'x'::character varying`` -> ``'x'``, ``('0')`` -> ``0``, ``current_timestamp()`` ->
    ``CURRENT_TIMESTAMP``, ``NULL`` -> no default (MariaDB shows one for nullable columns).
    """
    if default is None:
        return None
    text = _sql(str(default))
    if text.upper() == "NULL" or text == "":
        return None
    if _QUOTED_NUMBER.match(text):
        text = text[1:-1]
    # MariaDB writes current_timestamp(), MySQL CURRENT_TIMESTAMP, PostgreSQL either or now().
    text = "CURRENT_TIMESTAMP" if _NOW.match(text) else text
    return _outside_quotes(text, _CURRENT, "CURRENT_TIMESTAMP")


# -- compare -------------------------------------------------------------------------------------
def compare(actual: Snapshot, expected: Snapshot) -> list[SchemaDifference]:
    """Every way ``actual`` differs from ``expected``, sorted by kind and name.

    Tables, columns and views are matched by name. Indexes and constraints are matched by
    their name where someone gave one, and by what they do where the server made the name up
    (PostgreSQL's ``orders_pkey``/``orders_code_key``/``orders_customer_id_fkey``, MySQL's
    ``orders_ibfk_1`` and the implicit index named after the foreign key or its column,
    MariaDB's ``CONSTRAINT_1``, SQLite's ``sqlite_autoindex_*``): a restored copy and a
    database built from the same scripts then never differ by a generated name. The primary
    key is matched by its columns alone.
    """
    found: list[SchemaDifference] = []
    a_tables, e_tables = actual.get("tables", {}), expected.get("tables", {})
    for table in sorted(set(a_tables) | set(e_tables)):
        a, e = a_tables.get(table), e_tables.get(table)
        if a is None or e is None:
            found.append(SchemaDifference("table", table, _present(a), _present(e)))
            continue
        found.extend(_compare_table(table, a, e))
    a_views, e_views = actual.get("views", {}), expected.get("views", {})
    for view in sorted(set(a_views) | set(e_views)):
        if a_views.get(view) != e_views.get(view):
            found.append(SchemaDifference("view", view, a_views.get(view), e_views.get(view)))
    return sorted(found, key=lambda d: (d.kind, d.name, d.actual or "", d.expected or ""))


def _present(table: dict[str, Any] | None) -> str | None:
    if table is None:
        return None
    return f"table ({', '.join(table.get('columns', {}))})"


def _compare_table(table: str, a: dict[str, Any], e: dict[str, Any]) -> list[SchemaDifference]:
    found: list[SchemaDifference] = []
    a_cols, e_cols = a["columns"], e["columns"]
    for column in sorted(set(a_cols) | set(e_cols)):
        name = f"{table}.{column}"
        ac, ec = a_cols.get(column), e_cols.get(column)
        if ac is None or ec is None:
            found.append(SchemaDifference("column", name, _column_text(ac), _column_text(ec)))
            continue
        if ac["type"] != ec["type"]:
            found.append(SchemaDifference("type", name, ac["type"], ec["type"]))
        if ac["nullable"] != ec["nullable"]:
            found.append(SchemaDifference("nullable", name, _null_text(ac), _null_text(ec)))
        if ac["default"] != ec["default"] or ac.get("computed") != ec.get("computed"):
            found.append(SchemaDifference("default", name, _default_text(ac), _default_text(ec)))
    if a["primary_key"] != e["primary_key"]:
        found.append(
            SchemaDifference(
                "constraint",
                f"{table}.primary_key",
                _pk_text(a["primary_key"]),
                _pk_text(e["primary_key"]),
            )
        )
    found.extend(_compare_keyed("index", table, a["indexes"], e["indexes"]))
    for group in ("foreign_keys", "unique", "checks"):
        found.extend(_compare_keyed("constraint", table, a[group], e[group]))
    return found


def _compare_keyed(
    kind: str, table: str, actual: list[dict[str, Any]], expected: list[dict[str, Any]]
) -> list[SchemaDifference]:
    a = {item["key"]: item["sql"] for item in actual}
    e = {item["key"]: item["sql"] for item in expected}
    return [
        SchemaDifference(kind, f"{table}.{key}", a.get(key), e.get(key))
        for key in sorted(set(a) | set(e))
        if a.get(key) != e.get(key)
    ]


def _column_text(column: dict[str, Any] | None) -> str | None:
    if column is None:
        return None
    text = f"{column['type']} {_null_text(column)}"
    return text + (f" DEFAULT {column['default']}" if column["default"] is not None else "")


def _null_text(column: dict[str, Any]) -> str:
    return "NULL" if column["nullable"] else "NOT NULL"


def _default_text(column: dict[str, Any]) -> str:
    if column.get("computed"):
        return f"GENERATED AS ({column['computed']})"
    return str(column["default"]) if column["default"] is not None else "no default"


def _pk_text(columns: list[str]) -> str | None:
    return f"PRIMARY KEY ({', '.join(columns)})" if columns else None
