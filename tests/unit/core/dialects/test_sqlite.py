"""SQLite fidelity: every storage class, schema object and position survives a round trip."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import make_url

from airflow_provider_zenmigrate.core.utils import MigrationUtils
from tests.support.identity import fingerprint
from tests.support.paths import SAKILA_DIR

FIDELITY_SCHEMA = """
CREATE TABLE every_value (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    i INTEGER, r REAL, t TEXT COLLATE NOCASE, b BLOB, n NUMERIC, anything,
    doubled INTEGER GENERATED ALWAYS AS (i * 2) VIRTUAL,
    stored TEXT GENERATED ALWAYS AS (upper(t)) STORED,
    CHECK (i IS NULL OR abs(coalesce(r, 0)) >= 0)
);
CREATE TABLE pair (a INTEGER NOT NULL, b TEXT NOT NULL, note TEXT,
                   PRIMARY KEY (a, b)) WITHOUT ROWID;
CREATE TABLE no_key (x, y);
CREATE TABLE node (id INTEGER PRIMARY KEY, parent INTEGER REFERENCES node(id),
                   other INTEGER REFERENCES cycle_b(id), UNIQUE (parent, other));
CREATE TABLE cycle_b (id INTEGER PRIMARY KEY, node_id INTEGER REFERENCES node(id));
CREATE INDEX ix_value_t ON every_value (t);
CREATE INDEX ix_value_partial ON every_value (i) WHERE i > 0;
CREATE INDEX ix_value_expr ON every_value (lower(t));
CREATE VIEW v_values AS SELECT id, t FROM every_value WHERE i IS NOT NULL;
CREATE VIEW v_on_view AS SELECT count(*) AS c FROM v_values;
CREATE TRIGGER tr_pair AFTER INSERT ON pair BEGIN
    UPDATE pair SET note = 'seen; ' || new.b WHERE a = new.a AND b = new.b;
END;
"""


def _fill_fidelity(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.executescript(FIDELITY_SCHEMA)
    values = [
        (2**63 - 1, float("inf"), "emoji 😀 𝄞", bytes(range(256)), "12.50", 1),
        (-(2**63), float("-inf"), "", b"", "1e400", "text in any"),
        (0, -0.0, "NULL-ish", None, None, b"\x00\xff"),
        (None, 1e-308, None, b"\x00", "abc", 3.14),
        (7, 0.1, "ÄÖÜ ß", b"\xde\xad\xbe\xef", 10, None),
    ]
    conn.executemany(
        "INSERT INTO every_value (i, r, t, b, n, anything) VALUES (?, ?, ?, ?, ?, ?)", values
    )
    conn.execute("DELETE FROM every_value WHERE id = 5")
    conn.execute("UPDATE sqlite_sequence SET seq = 1000 WHERE name = 'every_value'")
    conn.executemany("INSERT INTO pair (a, b) VALUES (?, ?)", [(1, "x"), (1, "y"), (2, "x")])
    conn.executemany("INSERT INTO no_key VALUES (?, ?)", [(1, 1), (1, 1), (None, "dup")])
    conn.executemany("INSERT INTO node VALUES (?, ?, ?)", [(1, None, 1), (2, 1, 2), (3, 2, None)])
    conn.executemany("INSERT INTO cycle_b VALUES (?, ?)", [(1, 2), (2, 3)])
    conn.commit()
    conn.close()


def test_every_storage_class_and_object_round_trips(tmp_path: Path) -> None:
    source = tmp_path / "source.db"
    _fill_fidelity(source)
    src = MigrationUtils(url=make_url(f"sqlite:///{source}"), connect_args={}, engine_args={})
    dump = tmp_path / "dump.jsonl"
    src.backup_database_to_file(str(dump))
    restored = MigrationUtils(
        url=make_url(f"sqlite:///{tmp_path / 'copy.db'}"), connect_args={}, engine_args={}
    )
    restored.restore_database_from_file(str(dump))
    assert fingerprint(restored.url) == fingerprint(src.url)
    conn = sqlite3.connect(tmp_path / "copy.db")
    assert conn.execute(
        "SELECT seq FROM sqlite_sequence WHERE name = 'every_value'"
    ).fetchone() == (1000,)
    conn.execute("INSERT INTO every_value (i) VALUES (1)")
    assert conn.execute("SELECT max(id) FROM every_value").fetchone() == (1001,)
    typed = conn.execute(
        "SELECT typeof(anything), typeof(n) FROM every_value ORDER BY id"
    ).fetchall()
    original = (
        sqlite3.connect(source)
        .execute("SELECT typeof(anything), typeof(n) FROM every_value ORDER BY id")
        .fetchall()
    )
    assert typed[: len(original)] == original
    conn.close()


def _sakila_with_rows(path: Path, rows_per_table: int = 60) -> None:
    """The Sakila schema with generated rows: ids 1..N everywhere, foreign keys within them."""
    conn = sqlite3.connect(path)
    conn.executescript((SAKILA_DIR / "sqlite-sakila-schema.sql").read_text())
    rng = random.Random(42)
    tables = [
        r[0]
        for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        )
    ]
    for table in tables:
        columns = conn.execute(f'PRAGMA table_info("{table}")').fetchall()
        for n in range(1, rows_per_table + 1):
            row: list[Any] = []
            for _cid, _name, declared, _notnull, _default, pk in columns:
                kind = (declared or "").upper()
                if pk or "INT" in kind:
                    row.append(n if pk == 1 else rng.randint(1, rows_per_table))
                elif "CHAR" in kind or "TEXT" in kind:
                    row.append(f"{table}-{n}-{rng.random():.6f}")
                elif "DEC" in kind or "NUM" in kind:
                    row.append(round(rng.uniform(0, 99), 2))
                elif "BLOB" in kind:
                    row.append(rng.randbytes(16))
                elif "TIME" in kind or "DATE" in kind:
                    row.append(f"2006-02-15 04:{n % 60:02d}:00")
                else:
                    row.append(str(n))
            marks = ", ".join("?" for _ in row)
            conn.execute(f'INSERT OR IGNORE INTO "{table}" VALUES ({marks})', row)
    conn.commit()
    conn.close()


@pytest.mark.sakila
def test_sakila_round_trips(tmp_path: Path) -> None:
    source = tmp_path / "sakila.db"
    _sakila_with_rows(source)
    src = MigrationUtils(url=make_url(f"sqlite:///{source}"), connect_args={}, engine_args={})
    records = src.backup_database_to_memory()
    kinds = {(r["object_type"]) for r in records if r["kind"] == "object"}
    assert {"index", "trigger", "view"} <= kinds
    copy = MigrationUtils(
        url=make_url(f"sqlite:///{tmp_path / 'copy.db'}"), connect_args={}, engine_args={}
    )
    copy.restore_database_from_memory(records)
    expected = fingerprint(src.url)
    assert fingerprint(copy.url) == expected
    assert sum(1 for key in expected if key.startswith("rows:")) >= 15
