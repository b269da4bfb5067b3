"""Routines only when the caller allows them (docs/dump-format.md, "What a dump may create").

A routine's body is code the server runs, which the lexical checks cannot fully read: a dump
holding one is refused with an error naming it, unless the restore passes allow_routines=True.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_zenmigrate.core.dump.safety import ROUTINE_TYPES
from airflow_provider_zenmigrate.core.errors import UnsafeDumpError
from airflow_provider_zenmigrate.core.utils import MigrationUtils
from tests.support.dumps import reseal
from tests.support.engine_support import line_of, read_lines, restore_side_objects
from tests.support.identity import fingerprint
from tests.support.routines import ROUTINES, query, run, scratch_database

SERVERS = ["mysql", "postgresql"]

TABLES = {
    "mysql": [
        "CREATE TABLE item (id INT PRIMARY KEY, v VARCHAR(20))",
        "INSERT INTO item VALUES (1, 'a'), (2, 'b')",
        "CREATE VIEW v_item AS SELECT id FROM item",
        "CREATE TRIGGER t_item BEFORE INSERT ON item FOR EACH ROW SET NEW.v = UPPER(NEW.v)",
    ],
    "postgresql": [
        "CREATE TABLE item (id int PRIMARY KEY, v text)",
        "INSERT INTO item VALUES (1, 'a'), (2, 'b')",
        "CREATE VIEW v_item AS SELECT id FROM item",
        "CREATE INDEX ix_item_v ON item (v)",
    ],
}
# A PostgreSQL trigger needs its trigger function: such a dump needs allow_routines too.
PG_TRIGGER = [
    "CREATE FUNCTION trg_upper() RETURNS trigger LANGUAGE plpgsql "
    "AS $$ BEGIN NEW.v := upper(NEW.v); RETURN NEW; END $$",
    "CREATE TRIGGER t_upper BEFORE INSERT ON item FOR EACH ROW EXECUTE FUNCTION trg_upper()",
]


@pytest.fixture(params=SERVERS)
def dialect(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def source(dialect: str, tmp_path: Path) -> Iterator[MigrationUtils]:
    """Tables, a view and a trigger or an index, and no routine."""
    with scratch_database(dialect, tmp_path) as utils:
        run(utils.url, *TABLES[dialect])
        yield utils


@pytest.fixture
def target(dialect: str, tmp_path: Path) -> Iterator[MigrationUtils]:
    """A database holding other data, which a refused restore must leave as it is."""
    with scratch_database(dialect, tmp_path) as utils:
        run(
            utils.url,
            "CREATE TABLE existing (id INT PRIMARY KEY)",
            "INSERT INTO existing VALUES (1), (2)",
        )
        yield utils


def _refused(
    target: MigrationUtils, tmp_path: Path, restore: Any, object_type: str, name: str, line: int
) -> None:
    """``restore()`` raises UnsafeDumpError naming the routine and its line, says how to
    allow it, and leaves the target and the server as they were."""
    before, leftovers = fingerprint(target.url), restore_side_objects(target.url, tmp_path)
    with pytest.raises(UnsafeDumpError) as refused:
        restore()
    target.dispose()
    message = str(refused.value)
    assert refused.value.line == line, message
    assert message.startswith(f"line {line}: {object_type} {name!r}: "), message
    for how in ("allow_routines=True", "--allow-routines", "RestoreOperator"):
        assert how in message, message
    assert fingerprint(target.url) == before
    assert restore_side_objects(target.url, tmp_path) == leftovers


def test_dump_with_routines_restores_only_when_allowed(
    dialect: str, source: MigrationUtils, target: MigrationUtils, tmp_path: Path
) -> None:
    extra = [*ROUTINES[dialect].values(), *(PG_TRIGGER if dialect == "postgresql" else [])]
    run(source.url, *extra)
    dump = tmp_path / "with-routines.jsonl"
    source.backup_database_to_file(str(dump))
    source.dispose()
    records = read_lines(dump)
    first = next(r for r in records if r.get("object_type") in ROUTINE_TYPES)
    line = line_of(records, lambda r: r is first)

    _refused(
        target,
        tmp_path,
        lambda: target.restore_database_from_file(str(dump)),
        first["object_type"],
        first["name"],
        line,
    )

    summary = target.restore_database_from_file(str(dump), allow_routines=True)
    target.dispose()
    assert summary.tables == {"item": 2}
    assert fingerprint(target.url) == fingerprint(source.url)
    if dialect == "mysql":  # the fingerprint leaves events out
        events = "SELECT EVENT_NAME FROM information_schema.EVENTS WHERE EVENT_SCHEMA = DATABASE()"
        assert query(target.url, events) == [("e_tidy",)]
    else:
        aggregates = (
            "SELECT proname FROM pg_proc "
            "WHERE prokind = 'a' AND pronamespace = 'public'::regnamespace"
        )
        assert query(target.url, aggregates) == [("agg_sum",)]
        run(target.url, "INSERT INTO item VALUES (3, 'c')")  # the trigger works
        assert query(target.url, "SELECT v FROM item WHERE id = 3") == [("C",)]


@pytest.mark.parametrize(
    ("dialect", "object_type"),
    [(d, t) for d in SERVERS for t in ROUTINES[d]],
)
def test_every_routine_type_is_refused_by_default(
    dialect: str, object_type: str, source: MigrationUtils, target: MigrationUtils, tmp_path: Path
) -> None:
    """Each type on its own, added to a dump whose views, triggers and indexes restore
    without asking."""
    plain = source.backup_database_to_memory()
    source.dispose()
    assert {r.get("object_type") for r in plain} & ROUTINE_TYPES == set()
    target.restore_database_from_memory(plain)
    target.dispose()
    assert fingerprint(target.url) == fingerprint(source.url)

    stmt = ROUTINES[dialect][object_type]
    name = stmt.split()[2].split("(")[0]  # CREATE <TYPE> <name>
    body = [r for r in plain if r["kind"] != "trailer"]
    routine = {
        "kind": "object",
        "phase": "post",
        "object_type": object_type,
        "name": name,
        "table": None,
        "create_stmt": stmt,
    }
    records = reseal([*body, routine])
    _refused(
        target,
        tmp_path,
        lambda: target.restore_database_from_memory(records),
        object_type,
        name,
        len(body) + 1,
    )

    target.restore_database_from_storage(lambda: iter(records), allow_routines=True)
    target.dispose()
    listing = {
        "mysql": "SELECT ROUTINE_NAME FROM information_schema.ROUTINES "
        "WHERE ROUTINE_SCHEMA = DATABASE() UNION ALL SELECT EVENT_NAME "
        "FROM information_schema.EVENTS WHERE EVENT_SCHEMA = DATABASE()",
        "postgresql": "SELECT proname FROM pg_proc WHERE pronamespace = 'public'::regnamespace",
    }[dialect]
    assert query(target.url, listing) == [(name,)]
