"""Rebuilds and locks on SQLite, measured on the scratch copy (a file of its own).

Rebuilds: a table's b-tree starts at its ``rootpage`` in ``sqlite_master``. ALTER TABLE's
ADD/RENAME COLUMN keep it; a rebuild (Alembic's batch mode: create a new table, copy, drop,
rename) gives the table a new one, since the new table is made while the old one still holds
its pages. (With ``auto_vacuum`` on, dropping a table may move other tables' root pages; the
scratch copy is a fresh file, so only the migration's own drops could do that.)

Locks: SQLite has no table locks; a write transaction locks the whole file. The probe looks
from a second connection, at the moment the revision is about to commit: a ``BEGIN
IMMEDIATE`` that the file refuses shows the migration holds at least RESERVED (other writers
wait); a read that the file refuses shows PENDING or EXCLUSIVE (readers wait too, in
rollback-journal mode). Nothing is sampled while the revision runs, as the probe's own
transaction would then make the migration wait.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from sqlalchemy import Connection

from ..model import LockSeen
from .base import Probe

#: What the lock covers: the database file, not a table.
DATABASE = "(database)"


class SQLiteProbe(Probe):
    """Rebuilds through ``sqlite_master.rootpage``; the file lock, seen from outside."""

    observability = (
        "SQLite: table rebuilds are measured (a rebuilt table gets a new root page in "
        "sqlite_master; batch-mode migrations rebuild). There are no table locks: a write "
        "locks the whole database file until the revision commits, seen from a second "
        "connection just before the commit (RESERVED: other writers wait; EXCLUSIVE: "
        "readers wait too); locks taken and released within a revision are not seen."
    )

    def table_identities(self, conn: Connection) -> dict[str, Any]:
        rows = conn.exec_driver_sql(
            "SELECT name, rootpage FROM sqlite_master "
            "WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'"
        ).all()
        return {str(name): int(rootpage) for name, rootpage in rows}

    def locks_held(self, conn: Connection) -> list[LockSeen]:
        path = conn.engine.url.database
        if not path or path == ":memory:" or path.startswith("file::memory:"):
            return []  # an in-memory database has no file another connection could open
        return file_lock_seen(path)


def file_lock_seen(path: str) -> list[LockSeen]:
    """The lock another connection holds on the database file at ``path``, as a second
    connection finds it without waiting: ``[]``, RESERVED or EXCLUSIVE."""
    other = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        try:
            other.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.OperationalError as exc:
            if _busy(exc):
                return [LockSeen(DATABASE, "EXCLUSIVE", "reads and writes", 2)]
            raise
        try:
            other.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if _busy(exc):
                return [LockSeen(DATABASE, "RESERVED", "writes", 1)]
            raise
        other.execute("ROLLBACK")
        return []
    finally:
        other.close()


def _busy(exc: sqlite3.OperationalError) -> bool:
    return "locked" in str(exc) or "busy" in str(exc)
