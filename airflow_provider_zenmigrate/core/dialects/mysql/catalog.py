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
from typing import Any

from ...dump.model import ColumnSpec, ObjectSpec, TableSpec
from ...errors import ZenMigrateError
from ...sql_lexer import LexerRules, significant_tokens
from .render import CODEC_BY_TYPE
from .session import ServerSession
from .statements import DROP_KINDS

#: (CHARACTER_OCTET_LENGTH, CHARACTER_SET_NAME, nullable) of a column, what the server-side
#: rendering needs to bound a row's length and choose its conversions.
ColumnFacts = tuple[int | None, str | None, bool]

#: SHOW CREATE statements sent in one anonymous block at most (a block of 500 names of 64
#: characters stays far below the smallest max_allowed_packet, 1 MiB).
SHOW_BATCH = 500


def _first_rows(session: ServerSession, statements: list[str]) -> list[tuple[Any, ...]]:
    """The first row of each SHOW CREATE statement, in order.

    A catalog read must not cost a round trip per table (issue 27: 200 small tables took
    0.9 s to back up against mysqldump's 0.5). On MariaDB the statements go in one
    ``BEGIN NOT ATOMIC ... END`` block per :data:`SHOW_BATCH`, which answers with one result
    set each (pymysql asks for multiple results); SHOW CREATE has no set-based form, and its
    text cannot be rebuilt from information_schema byte for byte. MySQL 8 has no anonymous
    blocks: there each statement is sent on its own (untested here).
    """
    if not statements:
        return []
    if "MariaDB" not in str(session.dbapi.get_server_info()):
        return [session.query(sql)[0] for sql in statements]
    rows: list[tuple[Any, ...]] = []
    for start in range(0, len(statements), SHOW_BATCH):
        batch = statements[start : start + SHOW_BATCH]
        with session.dbapi.cursor() as cur:
            # With arguments (none): pymysql turns the quoted names' doubled % back into one.
            cur.execute("BEGIN NOT ATOMIC " + " ".join(f"{sql};" for sql in batch) + " END", ())
            while True:
                if cur.description is not None:
                    rows.append(tuple(cur.fetchall()[0]))
                if not cur.nextset():
                    break
    if len(rows) != len(statements):
        raise ZenMigrateError(
            f"the server answered {len(rows)} of {len(statements)} SHOW CREATE statements"
        )
    return rows


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
    creates = _first_rows(session, [f"SHOW CREATE TABLE {session.quote(n)}" for n in names])
    for name, (_, create, *_rest) in zip(names, creates, strict=True):
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
    view after the one it reads), then triggers in their action order, then events. Their
    SHOW CREATE statements go to the server together (:func:`_first_rows`).
    """
    routines = sorted(
        session.query(
            "SELECT ROUTINE_NAME, ROUTINE_TYPE FROM information_schema.ROUTINES "
            "WHERE ROUTINE_SCHEMA = %s",
            (database,),
        ),
        key=lambda r: (r[1] != "FUNCTION", r[0]),
    )
    for name, kind in routines:
        if kind not in ("PROCEDURE", "FUNCTION"):
            raise ZenMigrateError(f"cannot back up {kind} {name!r} (not supported)")
    views = [
        name
        for (name,) in session.query(
            "SELECT TABLE_NAME FROM information_schema.VIEWS WHERE TABLE_SCHEMA = %s", (database,)
        )
    ]
    triggers = session.query(
        "SELECT TRIGGER_NAME, EVENT_OBJECT_TABLE FROM information_schema.TRIGGERS "
        "WHERE TRIGGER_SCHEMA = %s ORDER BY EVENT_OBJECT_TABLE, ACTION_TIMING, "
        "EVENT_MANIPULATION, ACTION_ORDER, TRIGGER_NAME",
        (database,),
    )
    events = [
        name
        for (name,) in session.query(
            "SELECT EVENT_NAME FROM information_schema.EVENTS WHERE EVENT_SCHEMA = %s "
            "ORDER BY EVENT_NAME",
            (database,),
        )
    ]
    quote = session.quote
    shown = iter(
        _first_rows(
            session,
            [f"SHOW CREATE {kind} {quote(name)}" for name, kind in routines]
            + [f"SHOW CREATE VIEW {quote(name)}" for name in views]
            + [f"SHOW CREATE TRIGGER {quote(name)}" for name, _ in triggers]
            + [f"SHOW CREATE EVENT {quote(name)}" for name in events],
        )
    )
    out: list[ObjectSpec] = []
    for name, kind in routines:
        row = next(shown)
        if row[2] is None:
            raise ZenMigrateError(f"no privilege to read the definition of {kind} {name!r}")
        stmt = _settings_comment(sql_mode=row[1]) + row[2]
        out.append(ObjectSpec(object_type=kind.lower(), name=name, create_stmt=stmt))
    view_statements = {name: next(shown)[1] for name in views}
    for name in _view_order(view_statements):
        out.append(ObjectSpec(object_type="view", name=name, create_stmt=view_statements[name]))
    for name, table in triggers:
        row = next(shown)
        stmt = _settings_comment(sql_mode=row[1]) + row[2]
        out.append(ObjectSpec(object_type="trigger", name=name, create_stmt=stmt, table=table))
    for name in events:
        row = next(shown)
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
