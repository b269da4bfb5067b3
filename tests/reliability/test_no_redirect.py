"""Nothing in a dump can make a restore write anywhere but the database the caller named.

Each dialect has a victim beside the target: MariaDB another database, PostgreSQL another
schema of the target's own database, SQLite another file in the target's folder. Whatever a
dump names (a header's database, a qualified or path-like table name, USE / search_path /
ATTACH, a qualified create target), the restore is refused or confined to the target, and
the victim stays exactly as it was.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy
from sqlalchemy.pool import NullPool

from airflow_provider_zenmigrate.core.errors import UnsafeDumpError
from tests.support.dumps import sealed
from tests.support.engine_support import folder_files
from tests.support.hostile import Record, World, lazy_worlds, line_of, quote
from tests.support.servers import DIALECTS


@pytest.fixture(scope="module")
def worlds(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], World]]:
    """One world per dialect, made when a test first needs it, shared by the module."""
    with lazy_worlds(tmp_path_factory, "redirect") as get:
        yield get


def _tables(w: World) -> dict[str, int]:
    """Tables of the target and their row counts."""
    engine = sqlalchemy.create_engine(w.target.url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            names = w.target.dialect.user_tables(conn)
            count = "SELECT COUNT(*) FROM {}"
            return {
                n: int(conn.exec_driver_sql(count.format(quote(w.dialect, n))).scalar() or 0)
                for n in names
            }
    finally:
        engine.dispose()


def _restore(w: World, records: list[Record], name: str) -> bytes:
    data = sealed(records)
    path = w.folder / f"{name}.jsonl"
    path.write_bytes(data)
    try:
        w.target.restore_database_from_file(str(path))
    finally:
        w.target.dispose()
    return data


@pytest.mark.parametrize("dialect", DIALECTS)
def test_a_plain_restore_leaves_the_victim(worlds: Callable[[str], World], dialect: str) -> None:
    w = worlds(dialect)
    victim = w.victim.state()
    _restore(w, w.records, "plain")
    assert _tables(w) == {"typed": 12, "plain": 12}
    assert w.victim.state() == victim


@pytest.mark.parametrize("dialect", DIALECTS)
def test_the_header_database_does_not_choose_the_target(
    worlds: Callable[[str], World], dialect: str
) -> None:
    """The header's "database" is information only: naming the victim there changes
    nothing about where the restore goes."""
    w = worlds(dialect)
    victim_name = str(w.victim.url.database) if dialect == "sqlite" else w.victim.name
    records = [{**w.records[0], "database": victim_name}, *w.records[1:]]
    victim = w.victim.state()
    _restore(w, records, "header")
    assert _tables(w) == {"typed": 12, "plain": 12}
    assert w.victim.state() == victim


def _switch_cases() -> list[Any]:
    """Statements that would move the session to the victim before creating something."""
    make = "CREATE TABLE plain (id INT PRIMARY KEY, note TEXT)"
    cases = {
        "mysql": ["USE `{v}`", "USE `{v}`; " + make, "CREATE TABLE `{v}`.plain (id INT)"],
        "postgresql": [
            "SET search_path = victim",
            "SET search_path = victim; " + make,
            "SELECT set_config('search_path', 'victim', false)",
        ],
        "sqlite": [
            "ATTACH DATABASE '{path}' AS victim",
            "ATTACH DATABASE '{path}' AS victim; CREATE TABLE victim.plain (id INT)",
            "CREATE TABLE victim.plain (id INT)",
        ],
    }
    return [
        pytest.param(dialect, stmt, id=f"{dialect}-{n}")
        for dialect, stmts in cases.items()
        for n, stmt in enumerate(stmts)
    ]


@pytest.mark.parametrize(("dialect", "statement"), _switch_cases())
def test_statements_that_switch_database_are_refused(
    worlds: Callable[[str], World], dialect: str, statement: str
) -> None:
    w = worlds(dialect)
    stmt = statement.format(v=w.victim.name, path=w.victim.url.database)
    records = [
        {**r, "create_stmt": stmt} if r["kind"] == "table" and r["table"] == "plain" else r
        for r in w.records
    ]
    data = sealed(records)
    path = w.folder / "switch.jsonl"
    path.write_bytes(data)
    before = w.snapshot()
    with pytest.raises(UnsafeDumpError, match="'plain'") as refused:
        w.target.restore_database_from_file(str(path))
    w.target.dispose()
    assert refused.value.line == line_of(data, lambda r: r.get("create_stmt") == stmt)
    assert w.snapshot() == before


def _qualified_cases() -> list[Any]:
    """Creates whose target is the victim: (dialect, object type, name, statement)."""
    out = []
    for dialect in DIALECTS:
        v = "`{v}`" if dialect == "mysql" else "{v}"
        rows = {
            "table": ("plain", f"CREATE TABLE {v}.plain (id INT PRIMARY KEY, note TEXT)"),
            "view": ("v_other", f"CREATE VIEW {v}.v_other AS SELECT 1 AS one"),
            "index": ("ix_other", f"CREATE INDEX ix_other ON {v}.keep (x)"),
            "trigger": (
                "t_other",
                f"CREATE TRIGGER t_other AFTER INSERT ON {v}.keep FOR EACH ROW "
                + {"mysql": "SET @x = 1", "postgresql": "EXECUTE FUNCTION f()"}.get(
                    dialect, "BEGIN SELECT 1; END"
                ),
            ),
        }
        if dialect == "postgresql":
            rows["constraint"] = (
                "c_other",
                "ALTER TABLE victim.keep ADD CONSTRAINT c_other CHECK (x > 0)",
            )
            rows["foreign key"] = (
                "fk_other",
                "ALTER TABLE plain ADD CONSTRAINT fk_other FOREIGN KEY (id) "
                "REFERENCES victim.keep (x)",
            )
        for kind, (name, stmt) in rows.items():
            if dialect == "mysql" and kind == "index":
                continue  # MySQL restores indexes inside CREATE TABLE: no index records
            out.append(pytest.param(dialect, kind, name, stmt, id=f"{dialect}-{kind}"))
    return out


@pytest.mark.parametrize(("dialect", "kind", "name", "statement"), _qualified_cases())
def test_creates_qualified_with_another_database_are_refused(
    worlds: Callable[[str], World], dialect: str, kind: str, name: str, statement: str
) -> None:
    w = worlds(dialect)
    stmt = statement.format(v=w.victim.name)
    if kind == "table":
        records = [
            {**r, "create_stmt": stmt} if r["kind"] == "table" and r["table"] == name else r
            for r in w.records
        ]
    else:
        obj = {
            "kind": "object",
            "phase": "post",
            "object_type": "constraint" if kind == "foreign key" else kind,
            "name": name,
            "table": "plain",
            "create_stmt": stmt,
        }
        records = [*w.records[:-1], obj, w.records[-1]]
    data = sealed(records)
    path = w.folder / "qualified.jsonl"
    path.write_bytes(data)
    before = w.snapshot()
    with pytest.raises(UnsafeDumpError, match=repr(name)) as refused:
        w.target.restore_database_from_file(str(path))
    w.target.dispose()
    assert refused.value.line == line_of(data, lambda r: r.get("create_stmt") == stmt)
    assert w.snapshot() == before


HOSTILE_NAMES = {
    "qualified-looking": ("{v}.keep", "x.y"),
    "path-looking": ("../{v}", "../../etc/passwd"),
    "sqlite-file-looking": ("../victim.db", "victim.db"),
    "quotes-and-semicolons": ("t`; DROP DATABASE {v}; --", "c'\"`; --"),
}


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("case", list(HOSTILE_NAMES))
def test_names_that_look_like_other_places_are_confined(
    worlds: Callable[[str], World], dialect: str, case: str
) -> None:
    """A table or column named like another database, a path or an injection is created
    under exactly that name, inside the target; nothing else anywhere changes."""
    w = worlds(dialect)
    table, column = (n.format(v=w.victim.name) for n in HOSTILE_NAMES[case])
    integer = "INT" if dialect != "postgresql" else "integer"
    create = (
        f"CREATE TABLE {quote(dialect, table)} ({quote(dialect, 'id')} {integer} "
        f"PRIMARY KEY, {quote(dialect, column)} TEXT)"
    )
    records: list[Record] = []
    for r in w.records:
        if r["kind"] == "table" and r["table"] == "plain":
            columns = [{**c, "name": column} if c["name"] == "note" else c for c in r["columns"]]
            # Unqualified, so without the schema a PostgreSQL record names (public, then).
            dropped = ("autoincrement", "schema")
            options = {k: v for k, v in r["options"].items() if k not in dropped}
            r = {**r, "table": table, "create_stmt": create, "columns": columns, "options": options}
        elif r["kind"] == "data" and r["table"] == "plain":
            rows = [{"id": row["id"], column: row["note"]} for row in r["data"]]
            r = {**r, "table": table, "data": rows}
        elif r["kind"] == "object" and (r.get("table") == "plain" or "plain" in r["create_stmt"]):
            continue  # the index / trigger on plain: not part of this case
        records.append(r)
    victim = w.victim.state()
    beside, inside = folder_files(w.folder.parent), folder_files(w.folder)
    _restore(w, records, f"names-{case}")
    assert _tables(w) == {"typed": 12, table: 12}
    engine = sqlalchemy.create_engine(w.target.url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            got = conn.exec_driver_sql(
                f"SELECT {quote(dialect, column)} FROM {quote(dialect, table)} ORDER BY 1"
            ).scalars()
            assert sorted(got) == sorted(r["note"] for r in _plain_rows(w))
    finally:
        engine.dispose()
    assert w.victim.state() == victim
    assert folder_files(w.folder.parent) == beside  # nothing outside the target's folder
    assert folder_files(w.folder) == inside | {f"names-{case}.jsonl"}  # only the dump we wrote


def _plain_rows(w: World) -> list[dict[str, Any]]:
    return [
        row for r in w.records if r["kind"] == "data" and r["table"] == "plain" for row in r["data"]
    ]
