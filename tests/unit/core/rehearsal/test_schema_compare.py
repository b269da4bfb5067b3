"""The schema snapshot and compare behind drift and the way back, on SQLite files.

Each test builds two databases from DDL (one with a single hand-made change) and checks
that :func:`compare` names exactly that change, with the right kind and qualified name; the
same DDL built twice, in any order, compares equal. The MariaDB and PostgreSQL cases are in
tests/integration/test_rehearsal_schema.py.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
import sqlalchemy
from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from airflow_provider_zenmigrate.core.rehearsal.model import SchemaDifference
from airflow_provider_zenmigrate.core.rehearsal.schema import Snapshot, compare, snapshot
from airflow_provider_zenmigrate.core.utils import MigrationUtils
from tests.support.paths import SAKILA_DIR

CUSTOMERS = (
    "CREATE TABLE customers (id INTEGER PRIMARY KEY, "
    "email VARCHAR(100) NOT NULL UNIQUE, name TEXT);"
)
ORDERS = """
CREATE TABLE orders (
    id INTEGER PRIMARY KEY,
    customer_id INTEGER NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    total NUMERIC(10, 2) NOT NULL DEFAULT 0,
    status VARCHAR(20) DEFAULT 'new',
    day DATE,
    CONSTRAINT ck_total CHECK (total >= 0)
);
CREATE INDEX ix_orders_day ON orders (day);
CREATE UNIQUE INDEX ux_orders_status ON orders (customer_id, status);
"""
VIEW = "CREATE VIEW big_orders AS SELECT id, total FROM orders WHERE total > 100;"
VERSION = "CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY);"
BASE = "\n".join([CUSTOMERS, ORDERS, VIEW, VERSION])

BASE_FK = "FOREIGN KEY (customer_id) REFERENCES customers (id) ON DELETE CASCADE"


def _engine(path: Path, script: str) -> Engine:
    """A new SQLite file at ``path`` holding ``script``."""
    conn = sqlite3.connect(path)
    try:
        conn.executescript(script)
    finally:
        conn.close()
    return sqlalchemy.create_engine(f"sqlite:///{path}")


def _snap(path: Path, script: str) -> Snapshot:
    engine = _engine(path, script)
    try:
        return snapshot(engine)
    finally:
        engine.dispose()


def _diff(tmp_path: Path, actual: str, expected: str = BASE) -> list[SchemaDifference]:
    """How a database built by ``actual`` differs from one built by ``expected``."""
    return compare(_snap(tmp_path / "actual.db", actual), _snap(tmp_path / "expected.db", expected))


def _changed(old: str, new: str) -> str:
    """BASE with ``old`` replaced by ``new`` (exactly once, so a typo fails loudly)."""
    assert BASE.count(old) == 1, old
    return BASE.replace(old, new)


# -- the same schema ---------------------------------------------------------------------------
def test_the_same_ddl_built_twice_compares_equal(tmp_path: Path) -> None:
    actual = _snap(tmp_path / "a.db", BASE)
    expected = _snap(tmp_path / "b.db", BASE)
    assert actual == expected
    assert compare(actual, expected) == []
    # The snapshot describes what was built (so "equal" above is not two empty snapshots).
    assert set(actual["tables"]) == {"customers", "orders", "alembic_version"}
    assert set(actual["views"]) == {"big_orders"}
    orders = actual["tables"]["orders"]
    assert orders["columns"]["status"]["default"] == "'new'"
    assert [i["key"] for i in orders["indexes"]] == ["ix_orders_day", "ux_orders_status"]
    assert orders["foreign_keys"] == [{"key": "FOREIGN KEY (customer_id)", "sql": BASE_FK}]
    # And it is plain data: JSON and back gives the same snapshot.
    assert json.loads(json.dumps(actual)) == actual


def test_the_same_schema_built_in_another_order_compares_equal(tmp_path: Path) -> None:
    reordered = "\n".join([VERSION, CUSTOMERS, ORDERS, VIEW])
    assert _diff(tmp_path, reordered) == []


# -- tables and columns ------------------------------------------------------------------------
NOTES = "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL);"


def test_a_missing_table(tmp_path: Path) -> None:
    assert _diff(tmp_path, BASE, BASE + NOTES) == [
        SchemaDifference("table", "notes", None, "table (id, body)")
    ]


def test_an_unexpected_table(tmp_path: Path) -> None:
    assert _diff(tmp_path, BASE + NOTES) == [
        SchemaDifference("table", "notes", "table (id, body)", None)
    ]


def test_a_missing_column(tmp_path: Path) -> None:
    assert _diff(tmp_path, _changed(", name TEXT", "")) == [
        SchemaDifference("column", "customers.name", None, "TEXT NULL")
    ]


def test_an_unexpected_column(tmp_path: Path) -> None:
    added = BASE + "ALTER TABLE orders ADD COLUMN note VARCHAR(40) NOT NULL DEFAULT 'x';"
    assert _diff(tmp_path, added) == [
        SchemaDifference("column", "orders.note", "VARCHAR(40) NOT NULL DEFAULT 'x'", None)
    ]


def test_a_changed_type(tmp_path: Path) -> None:
    assert _diff(tmp_path, _changed("name TEXT", "name VARCHAR(50)")) == [
        SchemaDifference("type", "customers.name", "VARCHAR(50)", "TEXT")
    ]


def test_a_changed_nullable(tmp_path: Path) -> None:
    assert _diff(tmp_path, _changed("day DATE,", "day DATE NOT NULL,")) == [
        SchemaDifference("nullable", "orders.day", "NOT NULL", "NULL")
    ]


def test_a_changed_default(tmp_path: Path) -> None:
    assert _diff(tmp_path, _changed("DEFAULT 'new'", "DEFAULT 'open'")) == [
        SchemaDifference("default", "orders.status", "'open'", "'new'")
    ]


def test_a_dropped_default(tmp_path: Path) -> None:
    assert _diff(tmp_path, _changed(" DEFAULT 'new'", "")) == [
        SchemaDifference("default", "orders.status", "no default", "'new'")
    ]


def test_a_changed_primary_key(tmp_path: Path) -> None:
    changed = _changed(
        "CREATE TABLE customers (id INTEGER PRIMARY KEY, ",
        "CREATE TABLE customers (id INTEGER NOT NULL, ",
    ).replace("name TEXT);", "name TEXT, PRIMARY KEY (id, email));")
    found = _diff(tmp_path, changed)
    assert (
        SchemaDifference(
            "constraint", "customers.primary_key", "PRIMARY KEY (id, email)", "PRIMARY KEY (id)"
        )
        in found
    )
    assert {d.kind for d in found} <= {"constraint", "nullable"}


# -- indexes -----------------------------------------------------------------------------------
def test_a_dropped_index(tmp_path: Path) -> None:
    assert _diff(tmp_path, BASE + "DROP INDEX ix_orders_day;") == [
        SchemaDifference("index", "orders.ix_orders_day", None, "(day)")
    ]


def test_an_added_index(tmp_path: Path) -> None:
    assert _diff(tmp_path, BASE + "CREATE INDEX ix_orders_total ON orders (total);") == [
        SchemaDifference("index", "orders.ix_orders_total", "(total)", None)
    ]


def test_an_index_on_other_columns(tmp_path: Path) -> None:
    changed = _changed("ON orders (day);", "ON orders (day, status);")
    assert _diff(tmp_path, changed) == [
        SchemaDifference("index", "orders.ix_orders_day", "(day, status)", "(day)")
    ]


def test_an_index_no_longer_unique(tmp_path: Path) -> None:
    changed = _changed("CREATE UNIQUE INDEX ux_orders_status", "CREATE INDEX ux_orders_status")
    assert _diff(tmp_path, changed) == [
        SchemaDifference(
            "index",
            "orders.ux_orders_status",
            "(customer_id, status)",
            "UNIQUE (customer_id, status)",
        )
    ]


def test_an_index_made_unique(tmp_path: Path) -> None:
    changed = _changed("CREATE INDEX ix_orders_day", "CREATE UNIQUE INDEX ix_orders_day")
    assert _diff(tmp_path, changed) == [
        SchemaDifference("index", "orders.ix_orders_day", "UNIQUE (day)", "(day)")
    ]


# -- constraints -------------------------------------------------------------------------------
def test_a_foreign_key_lost(tmp_path: Path) -> None:
    changed = _changed(" REFERENCES customers (id) ON DELETE CASCADE", "")
    assert _diff(tmp_path, changed) == [
        SchemaDifference("constraint", "orders.FOREIGN KEY (customer_id)", None, BASE_FK)
    ]


def test_a_foreign_key_action_changed(tmp_path: Path) -> None:
    changed = _changed("ON DELETE CASCADE", "ON DELETE SET NULL")
    assert _diff(tmp_path, changed) == [
        SchemaDifference(
            "constraint",
            "orders.FOREIGN KEY (customer_id)",
            BASE_FK.replace("CASCADE", "SET NULL"),
            BASE_FK,
        )
    ]


def test_a_check_changed(tmp_path: Path) -> None:
    changed = _changed("CHECK (total >= 0)", "CHECK (total > 0)")
    assert _diff(tmp_path, changed) == [
        SchemaDifference("constraint", "orders.ck_total", "CHECK (total > 0)", "CHECK (total >= 0)")
    ]


def test_a_check_lost(tmp_path: Path) -> None:
    changed = _changed(",\n    CONSTRAINT ck_total CHECK (total >= 0)", "")
    assert _diff(tmp_path, changed) == [
        SchemaDifference("constraint", "orders.ck_total", None, "CHECK (total >= 0)")
    ]


def test_a_unique_constraint_lost(tmp_path: Path) -> None:
    changed = _changed("NOT NULL UNIQUE,", "NOT NULL,")
    assert _diff(tmp_path, changed) == [
        SchemaDifference("constraint", "customers.UNIQUE (email)", None, "UNIQUE (email)")
    ]


def test_a_unique_constraint_added(tmp_path: Path) -> None:
    changed = _changed("name TEXT);", "name TEXT, UNIQUE (name, email));")
    assert _diff(tmp_path, changed) == [
        SchemaDifference(
            "constraint", "customers.UNIQUE (name, email)", "UNIQUE (name, email)", None
        )
    ]


# -- views -------------------------------------------------------------------------------------
def test_a_missing_view(tmp_path: Path) -> None:
    assert _diff(tmp_path, BASE + "DROP VIEW big_orders;") == [
        SchemaDifference(
            "view", "big_orders", None, "SELECT id, total FROM orders WHERE total > 100"
        )
    ]


def test_an_unexpected_view(tmp_path: Path) -> None:
    extra = BASE + "CREATE VIEW emails AS SELECT email FROM customers;"
    assert _diff(tmp_path, extra) == [
        SchemaDifference("view", "emails", "SELECT email FROM customers", None)
    ]


def test_a_view_redefined(tmp_path: Path) -> None:
    changed = _changed("WHERE total > 100;", "WHERE total > 500;")
    assert _diff(tmp_path, changed) == [
        SchemaDifference(
            "view",
            "big_orders",
            "SELECT id, total FROM orders WHERE total > 500",
            "SELECT id, total FROM orders WHERE total > 100",
        )
    ]


def test_a_view_with_only_other_whitespace_is_the_same(tmp_path: Path) -> None:
    spaced = _changed(
        VIEW, "CREATE VIEW big_orders AS\n  SELECT id,   total\n  FROM orders\n  WHERE total > 100;"
    )
    assert _diff(tmp_path, spaced) == []


# -- the version table and what backends keep for themselves -----------------------------------
def test_exclude_tables_leaves_the_version_table_out(tmp_path: Path) -> None:
    # The two sides disagree only about the version table.
    other_version = _changed("version_num VARCHAR(32)", "version_num VARCHAR(64)")
    a = _engine(tmp_path / "a.db", other_version)
    e = _engine(tmp_path / "e.db", BASE)
    try:
        assert compare(snapshot(a), snapshot(e)) == [
            SchemaDifference("type", "alembic_version.version_num", "VARCHAR(64)", "VARCHAR(32)")
        ]
        left_out = snapshot(a, exclude_tables=["alembic_version"])
        assert "alembic_version" not in left_out["tables"]
        assert set(left_out["tables"]) == {"customers", "orders"}
        assert compare(left_out, snapshot(e, exclude_tables=["alembic_version"])) == []
        # Left out on one side only, it shows as the table the other side has.
        assert compare(left_out, snapshot(e)) == [
            SchemaDifference("table", "alembic_version", None, "table (version_num)")
        ]
    finally:
        a.dispose()
        e.dispose()


def test_sqlite_internal_tables_are_left_out(tmp_path: Path) -> None:
    # AUTOINCREMENT makes SQLite keep sqlite_sequence, which one copy may have and not the other.
    with_sequence = BASE + "CREATE TABLE counters (id INTEGER PRIMARY KEY AUTOINCREMENT);"
    path = tmp_path / "seq.db"
    snap = _snap(path, with_sequence + "INSERT INTO counters DEFAULT VALUES;")
    conn = sqlite3.connect(path)
    try:
        shown = conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 'sqlite_sequence'")
        assert shown.fetchone() == (1,)
    finally:
        conn.close()
    assert not [t for t in snap["tables"] if t.startswith("sqlite_")]
    assert "counters" in snap["tables"]


# -- order -------------------------------------------------------------------------------------
def test_differences_are_sorted_and_the_same_every_time(tmp_path: Path) -> None:
    many = (
        _changed("WHERE total > 100;", "WHERE total > 1;")
        .replace("DEFAULT 'new'", "DEFAULT 'old'")
        .replace("name TEXT", "name BLOB")
        + NOTES
        + "DROP INDEX ix_orders_day; ALTER TABLE customers ADD COLUMN age INTEGER;"
    )
    actual = _snap(tmp_path / "a.db", many)
    expected = _snap(tmp_path / "e.db", BASE)
    found = compare(actual, expected)
    assert [(d.kind, d.name) for d in found] == [
        ("column", "customers.age"),
        ("default", "orders.status"),
        ("index", "orders.ix_orders_day"),
        ("table", "notes"),
        ("type", "customers.name"),
        ("view", "big_orders"),
    ]
    assert found == sorted(found, key=lambda d: (d.kind, d.name))
    assert compare(actual, expected) == found
    # The snapshot of the same file taken again is the same, key order included.
    assert json.dumps(_snap(tmp_path / "e2.db", BASE)) == json.dumps(expected)
    # Swapping the sides swaps actual and expected, nothing else.
    assert compare(expected, actual) == [
        SchemaDifference(d.kind, d.name, d.expected, d.actual) for d in found
    ]


# -- Sakila: a backup restored into another file -----------------------------------------------
@pytest.mark.sakila
def test_sakila_backed_up_and_restored_compares_equal(tmp_path: Path) -> None:
    source_path = tmp_path / "sakila.db"
    _engine(source_path, (SAKILA_DIR / "sqlite-sakila-schema.sql").read_text()).dispose()
    rows = sqlite3.connect(source_path)
    try:
        rows.executescript(
            "INSERT INTO language VALUES (1, 'English', '2006-02-15 05:02:19');"
            "INSERT INTO actor VALUES (1, 'PENELOPE', 'GUINESS', '2006-02-15 04:34:33');"
        )
    finally:
        rows.close()
    source = MigrationUtils(
        url=make_url(f"sqlite:///{source_path}"), connect_args={}, engine_args={}
    )
    copy = MigrationUtils(
        url=make_url(f"sqlite:///{tmp_path / 'copy.db'}"), connect_args={}, engine_args={}
    )
    try:
        dump = str(tmp_path / "sakila.jsonl")
        source.backup_database_to_file(dump)
        copy.restore_database_from_file(dump)
        original, restored = snapshot(source.engine), snapshot(copy.engine)
        assert compare(restored, original) == []
        # Sakila's shape made it through (so the equality above compares something).
        assert len(original["tables"]) >= 15 and len(original["views"]) >= 5
        assert any(t["foreign_keys"] for t in original["tables"].values())
        assert any(t["indexes"] for t in original["tables"].values())
    finally:
        source.dispose()
        copy.dispose()
