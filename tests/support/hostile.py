"""Helpers of the hostile-input tests (tests/reliability, and the dry runs of
tests/integration/test_dry_run_rules): real dumps to mutate, victims to protect, lazy streams.

The dumps are made by the product's own backup of small databases that use many value codecs
(bytes, decimal, datetime, float, text, JSON, SQLite's dynamic values) and hold object
records (views, triggers, indexes), so a mutation can land anywhere a real dump has content.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy
from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.pool import NullPool

from airflow_provider_zenmigrate.core.utils import MigrationUtils
from tests.support.dumps import Record
from tests.support.engine_support import restore_side_objects
from tests.support.identity import fingerprint
from tests.support.servers import database_url, unique_name

ROWS = 12
CHUNK_ROWS = 4  # several data records per table


def execute(url: URL, *statements: str, params: list[dict[str, Any]] | None = None) -> None:
    """Run statements in one transaction (``params``: executemany of the last one)."""
    engine = sqlalchemy.create_engine(url, poolclass=NullPool)
    try:
        with engine.begin() as conn:
            for n, statement in enumerate(statements):
                last = n == len(statements) - 1
                if params is not None and last:
                    conn.execute(text(statement), params)
                else:
                    conn.exec_driver_sql(statement)
    finally:
        engine.dispose()


def _values(i: int) -> dict[str, Any]:
    return {
        "id": i,
        "b": bytes([0, 255, i, 10, 13, 39, 92]) + bytes(range(i)),
        "d": Decimal(f"{i * 1234}.{i:04d}"),
        "ts": dt.datetime(2024, 2, 29, 23, 59, 59, i * 1001),
        "f": i / 3 if i % 4 else -0.0,
        "s": f"row {i} «ünï» '\"`;\\ 😀",
        "j": json.dumps({"k": [i, "é", None], "n": {"deep": i}}),
    }


def populate(url: URL) -> None:
    """Two tables (one with every codec the dialect has), a view, a trigger or an index."""
    backend = url.get_backend_name()
    rows = [_values(i) for i in range(1, ROWS + 1)]
    notes = [{"id": i, "note": f"note {i}"} for i in range(1, ROWS + 1)]
    if backend == "sqlite":
        execute(
            url,
            "CREATE TABLE typed (id INTEGER PRIMARY KEY, b BLOB, d, ts, f REAL, s TEXT, j)",
            "INSERT INTO typed VALUES (:id, :b, :d, :ts, :f, :s, :j)",
            params=[{**r, "d": float(r["d"]) if r["id"] % 2 else str(r["d"])} for r in rows],
        )
        execute(
            url,
            "CREATE TABLE plain (id INTEGER PRIMARY KEY AUTOINCREMENT, note TEXT)",
            "CREATE VIEW v_typed AS SELECT id, s FROM typed WHERE id > 2",
            "CREATE INDEX ix_plain_note ON plain (note)",
            "CREATE TRIGGER trg_plain AFTER INSERT ON plain BEGIN "
            "UPDATE plain SET note = upper(note) WHERE id = NEW.id; END",
            "INSERT INTO plain (id, note) VALUES (:id, :note)",
            params=notes,
        )
        return
    if backend in ("mysql", "mariadb"):
        typed = (
            "CREATE TABLE typed (id INT PRIMARY KEY, b VARBINARY(64), d DECIMAL(14,4), "
            "ts DATETIME(6), f DOUBLE, s VARCHAR(64), j JSON, tm TIME(6))"
        )
        insert = "INSERT INTO typed VALUES (:id, :b, :d, :ts, :f, :s, :j, '-838:59:59.000001')"
        objects = [
            "CREATE VIEW v_typed AS SELECT id, s FROM typed WHERE id > 2",
            "CREATE TRIGGER trg_plain BEFORE INSERT ON plain FOR EACH ROW "
            "SET NEW.note = UPPER(NEW.note)",
        ]
    else:
        typed = (
            "CREATE TABLE typed (id int PRIMARY KEY, b bytea, d numeric(14,4), ts timestamptz, "
            "f float8, s text, j jsonb, arr int[])"
        )
        insert = "INSERT INTO typed VALUES (:id, :b, :d, :ts, :f, :s, CAST(:j AS jsonb), '{1,2}')"
        objects = [
            "CREATE VIEW v_typed AS SELECT id, s FROM typed WHERE id > 2",
            "CREATE INDEX ix_plain_note ON plain (note)",
        ]
    execute(url, typed, insert, params=rows)
    execute(
        url,
        "CREATE TABLE plain (id INT PRIMARY KEY, note VARCHAR(64))",
        *objects,
        "INSERT INTO plain (id, note) VALUES (:id, :note)",
        params=notes,
    )


@contextmanager
def source_database(dialect: str, folder: Path) -> Iterator[MigrationUtils]:
    """A populated database (dropped afterwards)."""
    utils = MigrationUtils(
        url=database_url(dialect, folder), connect_args={}, engine_args={}, chunk_rows=CHUNK_ROWS
    )
    utils.create_database()
    try:
        populate(utils.url)
        yield utils
    finally:
        utils.drop_database()
        utils.dispose()


def real_dump(utils: MigrationUtils, folder: Path) -> bytes:
    """The bytes of a dump the product's backup writes to a file."""
    path = folder / f"{unique_name('dump')}.jsonl"
    utils.backup_database_to_file(str(path))
    return path.read_bytes()


def line_of(data: bytes, predicate: Any) -> int:
    for number, line in enumerate(data.splitlines(), start=1):
        if predicate(json.loads(line)):
            return number
    raise AssertionError("no such record")


# -- victims: what a dump must never reach -----------------------------------------------------
@dataclass
class Victim:
    """Something beside the restore target: another database, schema or file."""

    dialect: str
    url: URL  # fingerprinted before and after
    name: str  # how a dump would name it
    cleanup: list[Any] = field(default_factory=list)

    def state(self) -> Any:
        if self.dialect == "postgresql":
            return _schema_state(self.url, self.name)
        if self.dialect == "sqlite":
            path = Path(str(self.url.database))
            return (path.read_bytes(), fingerprint(self.url))
        return fingerprint(self.url)


def _schema_state(url: URL, schema: str) -> Any:
    """Rows and definitions of everything in one PostgreSQL schema."""
    engine = sqlalchemy.create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            objects = conn.exec_driver_sql(
                "SELECT c.relname, c.relkind, pg_get_viewdef(c.oid) FROM pg_class c "
                "WHERE c.relnamespace = %(s)s::regnamespace ORDER BY 1",
                {"s": schema},
            ).all()
            inherits = conn.exec_driver_sql(
                "SELECT inhrelid::regclass::text, inhparent::regclass::text FROM pg_inherits "
                "ORDER BY 1, 2"
            ).all()
            rows = {
                name: conn.exec_driver_sql(f'SELECT * FROM "{schema}"."{name}" ORDER BY 1').all()
                for name, kind, _ in objects
                if kind in ("r", "p")
            }
            seq = conn.exec_driver_sql(f'SELECT last_value FROM "{schema}".seq').scalar()
            triggers = conn.exec_driver_sql("SELECT evtname FROM pg_event_trigger ORDER BY 1").all()
        return (objects, inherits, rows, seq, triggers)
    finally:
        engine.dispose()


def make_victim(dialect: str, target: URL, folder: Path) -> Victim:
    """MySQL: another database; PostgreSQL: another schema of the target's database;
    SQLite: another file beside the target."""
    if dialect == "mysql":
        url = database_url("mysql", folder, unique_name("zmvictim"))
        utils = MigrationUtils(url=url, connect_args={}, engine_args={})
        utils.create_database()
        execute(
            url,
            "CREATE TABLE keep (x INT) ENGINE=MyISAM",
            "INSERT INTO keep VALUES (42)",
            "CREATE TABLE secret (x INT)",
        )
        return Victim(dialect, url, str(url.database), [utils])
    if dialect == "postgresql":
        execute(
            target,
            "CREATE SCHEMA victim",
            "CREATE TABLE victim.keep (x int)",
            "INSERT INTO victim.keep VALUES (42)",
            "CREATE TABLE victim.parent (x int)",
            "CREATE TABLE victim.p (x int) PARTITION BY LIST (x)",
            "CREATE SEQUENCE victim.seq",
        )
        return Victim(dialect, target, "victim")
    path = folder / "victim.db"
    with sqlite3.connect(path) as conn:
        conn.executescript("CREATE TABLE keep (x INTEGER); INSERT INTO keep VALUES (42);")
    conn.close()
    return Victim(dialect, URL.create("sqlite", database=str(path)), "victim")


def drop_victim(victim: Victim) -> None:
    for utils in victim.cleanup:
        utils.drop_database()
        utils.dispose()


# -- a stream that makes a huge line without holding it ----------------------------------------
class LazyStream(io.RawIOBase):
    """``prefix`` then ``total`` bytes of ``fill`` made on demand, as fresh objects (so what
    the reader keeps really costs memory); ``served`` counts the bytes handed out and
    ``largest`` the largest amount asked for at once."""

    def __init__(self, prefix: bytes, total: int, fill: bytes = b"a") -> None:
        self.prefix = prefix
        self.total = total
        self.fill = fill
        self.served = 0
        self.largest = 0

    def readable(self) -> bool:
        return True

    def _take(self, size: int, line: bool) -> bytes:
        size = size if size is not None and size >= 0 else 1 << 40
        self.largest = max(self.largest, size)
        out = bytearray()
        consumed = self.served
        while size > 0 and consumed < len(self.prefix):
            out.append(self.prefix[consumed])
            consumed += 1
            size -= 1
            if line and out.endswith(b"\n"):
                self.served = consumed
                return bytes(out)
        body = max(0, min(size, len(self.prefix) + self.total - consumed))
        if body:
            start = (consumed - len(self.prefix)) % len(self.fill)
            repeated = self.fill * (body // len(self.fill) + 2)
            chunk = repeated[start : start + body]
            if line and b"\n" in chunk:
                chunk = chunk[: chunk.index(b"\n") + 1]
            out += chunk
            consumed += len(chunk)
        self.served = consumed
        return bytes(out)

    def readline(self, size: int | None = -1) -> bytes:
        return self._take(-1 if size is None else size, line=True)

    def read(self, size: int | None = -1) -> bytes:
        return self._take(-1 if size is None else size, line=False)


# -- a restore target with a source dump and a victim -----------------------------------------
@dataclass
class World:
    """One dialect's source dump (records), a restore target holding other data, a victim."""

    dialect: str
    records: list[Record]
    target: MigrationUtils
    victim: Victim
    folder: Path

    def snapshot(self) -> tuple[Any, Any, set[str]]:
        """The target's and the victim's contents, and every database, schema or file a
        restore could leave behind."""
        return (
            fingerprint(self.target.url),
            self.victim.state(),
            restore_side_objects(self.target.url, self.folder),
        )


@contextmanager
def world(dialect: str, folder: Path) -> Iterator[World]:
    """A source dump, a populated target and a victim beside it (all removed afterwards)."""
    with source_database(dialect, folder) as source:
        records = source.backup_database_to_memory()
    target = MigrationUtils(url=database_url(dialect, folder), connect_args={}, engine_args={})
    target.create_database()
    victim: Victim | None = None
    try:
        execute(
            target.url,
            "CREATE TABLE existing (id INT PRIMARY KEY, v VARCHAR(20))",
            "INSERT INTO existing VALUES (1, 'kept'), (2, 'also kept')",
        )
        victim = make_victim(dialect, target.url, folder)
        target.dispose()
        yield World(dialect, records, target, victim, folder)
    finally:
        if victim is not None:
            drop_victim(victim)
        target.drop_database()
        target.dispose()


def quote(dialect: str, name: str) -> str:
    """An identifier quoted the way the dialect's server reads it."""
    if dialect == "mysql":
        return "`" + name.replace("`", "``") + "`"
    return '"' + name.replace('"', '""') + '"'


@contextmanager
def lazy_worlds(factory: Any, prefix: str) -> Iterator[Callable[[str], World]]:
    """One world per dialect, made when a test first needs it, all closed at the end."""
    with ExitStack() as stack:
        made: dict[str, World] = {}

        def get(dialect: str) -> World:
            if dialect not in made:
                folder = factory.mktemp(f"{prefix}-{dialect}")
                made[dialect] = stack.enter_context(world(dialect, folder))
            return made[dialect]

        yield get
