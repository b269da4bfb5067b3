"""What the MySQL/MariaDB catalog says about a database: its tables and columns, their keys,
and the statements that create (or drop) its routines, views, triggers and events.

Every information_schema and SHOW CREATE query of the backup and the swap is here, so the
reader, the writer and the swap only ask questions by name. Public in the package:
:func:`read_table_specs`, :func:`collect_objects`, :func:`table_names`,
:func:`object_drop_statements`, :func:`large_innodb_tables`.
"""

from __future__ import annotations

import heapq
import re

from ...dump.model import ColumnSpec, ObjectSpec, TableSpec
from ...errors import ZenMigrateError
from ...sql_lexer import LexerRules, significant_tokens
from .render import CODEC_BY_TYPE
from .session import ServerSession
from .statements import DROP_KINDS

#: (CHARACTER_OCTET_LENGTH, CHARACTER_SET_NAME, nullable) of a column, what the server-side
#: rendering needs to bound a row's length and choose its conversions.
ColumnFacts = tuple[int | None, str | None, bool]


# -- tables ---------------------------------------------------------------------------------
def read_table_specs(
    session: ServerSession, database: str
) -> tuple[list[TableSpec], dict[tuple[str, str], ColumnFacts]]:
    """The base tables of ``database`` with their columns' codecs and a key to order rows by,
    and what rendering needs to know of each column (:data:`ColumnFacts`, by (table, column)).

    Refuses a database holding a table kind the backup cannot restore faithfully (a
    SEQUENCE, a system view), or a column type without a codec.
    """
    facts: dict[tuple[str, str], ColumnFacts] = {}
    kinds = session.query(
        "SELECT TABLE_NAME, TABLE_TYPE FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s",
        (database,),
    )
    unsupported = sorted(f"{n} ({k})" for n, k in kinds if k not in ("BASE TABLE", "VIEW"))
    if unsupported:
        raise ZenMigrateError("cannot back up these tables faithfully: " + ", ".join(unsupported))
    names = sorted(n for n, k in kinds if k == "BASE TABLE")
    columns: dict[str, list[ColumnSpec]] = {n: [] for n in names}
    generated: dict[str, set[str]] = {n: set() for n in names}
    for table, column, data_type, column_type, extra, octets, charset, nullable in session.query(
        "SELECT TABLE_NAME, COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, EXTRA, "
        "CHARACTER_OCTET_LENGTH, CHARACTER_SET_NAME, IS_NULLABLE "
        "FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s "
        "ORDER BY TABLE_NAME, ORDINAL_POSITION",
        (database,),
    ):
        if table not in columns:
            continue
        facts[(table, column)] = (
            int(octets) if octets is not None else None,
            charset,
            nullable != "NO",
        )
        if re.search(r"\b(VIRTUAL|STORED|PERSISTENT) GENERATED\b", extra or "", re.I):
            generated[table].add(column)  # recomputed by the server on load
            continue
        codec = CODEC_BY_TYPE.get(data_type.lower())
        if codec is None:
            raise ZenMigrateError(
                f"table {table!r} column {column!r}: type {column_type} is not supported"
            )
        columns[table].append(ColumnSpec(name=column, codec=codec, type=column_type))
    keys = _unique_keys(session, database, generated)
    specs = []
    for name in names:
        create = session.query(f"SHOW CREATE TABLE {session.quote(name)}")[0][1]
        specs.append(
            TableSpec(
                name=name,
                create_stmt=create,
                columns=tuple(columns[name]),
                key=keys.get(name, ()),
            )
        )
    return specs, facts


def _unique_keys(
    session: ServerSession, database: str, generated: dict[str, set[str]]
) -> dict[str, tuple[str, ...]]:
    """Primary key, else the first unique key whose columns are all NOT NULL."""
    indexes: dict[str, dict[str, list[tuple[str, str]]]] = {}
    for table, index, column, non_unique, nullable in session.query(
        "SELECT TABLE_NAME, INDEX_NAME, COLUMN_NAME, NON_UNIQUE, NULLABLE "
        "FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = %s "
        "ORDER BY TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX",
        (database,),
    ):
        if int(non_unique) == 0:
            indexes.setdefault(table, {}).setdefault(index, []).append((column, nullable))
    keys: dict[str, tuple[str, ...]] = {}
    for table, by_name in indexes.items():
        for index in sorted(by_name, key=lambda n: (n != "PRIMARY", n)):
            cols = by_name[index]
            if all(not nullable and c not in generated.get(table, ()) for c, nullable in cols):
                keys[table] = tuple(c for c, _ in cols)
                break
    return keys


def table_names(session: ServerSession, database: str) -> list[str]:
    """The base tables of ``database`` (what RENAME TABLE moves), by name."""
    rows = session.query(
        "SELECT TABLE_NAME FROM information_schema.TABLES "
        "WHERE TABLE_SCHEMA = %s AND TABLE_TYPE <> 'VIEW' ORDER BY TABLE_NAME",
        (database,),
    )
    return [r[0] for r in rows]


def large_innodb_tables(session: ServerSession, database: str, min_bytes: int) -> dict[str, int]:
    """The InnoDB base tables of ``database`` with at least ``min_bytes`` of DATA_LENGTH
    (InnoDB's estimate, off-page BLOBs included), with that length."""
    return {
        str(name): int(size)
        for name, size in session.query(
            "SELECT TABLE_NAME, DATA_LENGTH FROM information_schema.TABLES "
            "WHERE TABLE_SCHEMA = %s AND TABLE_TYPE = 'BASE TABLE' AND ENGINE = 'InnoDB' "
            "AND DATA_LENGTH >= %s",
            (database, min_bytes),
        )
    }


# -- routines, views, triggers and events ------------------------------------------------
def _settings_comment(**settings: str) -> str:
    body = " ".join(f"{k}='{v}'" for k, v in settings.items())
    return f"/* zenmigrate: {body} */\n"


def collect_objects(session: ServerSession, database: str) -> list[ObjectSpec]:
    """Routines, views, triggers and events of ``database`` in creation order.

    The session's default database must be ``database`` so SHOW CREATE VIEW leaves the
    references to its own tables unqualified. Routines come first (a view may call a
    function; a routine body is not resolved when it is created), then views (a view on a
    view after the one it reads), then triggers in their action order, then events.
    """
    out: list[ObjectSpec] = []
    for name, kind in sorted(
        session.query(
            "SELECT ROUTINE_NAME, ROUTINE_TYPE FROM information_schema.ROUTINES "
            "WHERE ROUTINE_SCHEMA = %s",
            (database,),
        ),
        key=lambda r: (r[1] != "FUNCTION", r[0]),
    ):
        if kind not in ("PROCEDURE", "FUNCTION"):
            raise ZenMigrateError(f"cannot back up {kind} {name!r} (not supported)")
        row = session.query(f"SHOW CREATE {kind} {session.quote(name)}")[0]
        if row[2] is None:
            raise ZenMigrateError(f"no privilege to read the definition of {kind} {name!r}")
        stmt = _settings_comment(sql_mode=row[1]) + row[2]
        out.append(ObjectSpec(object_type=kind.lower(), name=name, create_stmt=stmt))
    views = {}
    for (name,) in session.query(
        "SELECT TABLE_NAME FROM information_schema.VIEWS WHERE TABLE_SCHEMA = %s", (database,)
    ):
        views[name] = session.query(f"SHOW CREATE VIEW {session.quote(name)}")[0][1]
    for name in _view_order(views):
        out.append(ObjectSpec(object_type="view", name=name, create_stmt=views[name]))
    for name, table in session.query(
        "SELECT TRIGGER_NAME, EVENT_OBJECT_TABLE FROM information_schema.TRIGGERS "
        "WHERE TRIGGER_SCHEMA = %s ORDER BY EVENT_OBJECT_TABLE, ACTION_TIMING, "
        "EVENT_MANIPULATION, ACTION_ORDER, TRIGGER_NAME",
        (database,),
    ):
        row = session.query(f"SHOW CREATE TRIGGER {session.quote(name)}")[0]
        stmt = _settings_comment(sql_mode=row[1]) + row[2]
        out.append(ObjectSpec(object_type="trigger", name=name, create_stmt=stmt, table=table))
    for (name,) in session.query(
        "SELECT EVENT_NAME FROM information_schema.EVENTS WHERE EVENT_SCHEMA = %s "
        "ORDER BY EVENT_NAME",
        (database,),
    ):
        row = session.query(f"SHOW CREATE EVENT {session.quote(name)}")[0]
        stmt = _settings_comment(sql_mode=row[1], time_zone=row[2]) + row[3]
        out.append(ObjectSpec(object_type="event", name=name, create_stmt=stmt))
    return out


def _view_order(views: dict[str, str]) -> list[str]:
    """Views after the views they name; otherwise by name."""
    needs: dict[str, set[str]] = {}
    for name, stmt in views.items():
        body = re.split(r"\bAS\b", stmt, maxsplit=1, flags=re.I)[-1]
        tokens = significant_tokens(body, LexerRules.mysql())
        named = {t.unquoted() for t in tokens if t.kind in ("backtick", "word")}
        needs[name] = {v for v in views if v != name and v in named}
    ready = [n for n, deps in needs.items() if not deps]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        name = heapq.heappop(ready)
        order.append(name)
        for other, deps in needs.items():
            if name in deps:
                deps.discard(name)
                if not deps:
                    heapq.heappush(ready, other)
    # A name that only looked like a reference (a column alias) can make a false cycle.
    order += sorted(set(views) - set(order))
    return order


def object_drop_statements(session: ServerSession, database: str) -> list[str]:
    """The DROP statements of every trigger, event, view and routine of ``database``."""
    found = session.query(
        "SELECT 'trigger', TRIGGER_NAME FROM information_schema.TRIGGERS "
        "WHERE TRIGGER_SCHEMA = %s UNION ALL "
        "SELECT 'event', EVENT_NAME FROM information_schema.EVENTS "
        "WHERE EVENT_SCHEMA = %s UNION ALL "
        "SELECT 'view', TABLE_NAME FROM information_schema.VIEWS "
        "WHERE TABLE_SCHEMA = %s UNION ALL "
        "SELECT LOWER(ROUTINE_TYPE), ROUTINE_NAME FROM information_schema.ROUTINES "
        "WHERE ROUTINE_SCHEMA = %s",
        (database,) * 4,
    )
    statements = []
    for kind, name in found:
        keyword = DROP_KINDS.get(kind)
        if keyword is None:
            raise ZenMigrateError(f"cannot replace {kind} {name!r} in {database!r}")
        statements.append(
            f"DROP {keyword} IF EXISTS {session.quote(database)}.{session.quote(name)}"
        )
    return statements
