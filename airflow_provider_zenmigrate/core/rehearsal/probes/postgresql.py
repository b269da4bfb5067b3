"""PostgreSQL's probe: rewrites through the relation's file node, locks through ``pg_locks``.

A rewrite (``ALTER COLUMN ... TYPE``, ``VACUUM FULL``, ``CLUSTER``, a volatile default) gives
the relation a new file node, so comparing ``pg_relation_filenode`` before and after a revision
is exact, for tables and for the indexes rebuilt with them. Locks are read twice: those the
revision's own transaction holds just before it commits (every relation lock it took, since
PostgreSQL keeps them to the end of the transaction), and those other sessions hold, sampled
from a watcher connection (``CREATE INDEX CONCURRENTLY`` and anything else outside the
transaction).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, text

from ...dialects.postgresql.catalog import USER_SCHEMA
from ..model import LockSeen
from .base import Probe, sample_locks

#: PostgreSQL's table-level lock modes, weakest first (their rank is the strength, 1..8).
LOCK_MODES: tuple[str, ...] = (
    "AccessShareLock",
    "RowShareLock",
    "RowExclusiveLock",
    "ShareUpdateExclusiveLock",
    "ShareLock",
    "ShareRowExclusiveLock",
    "ExclusiveLock",
    "AccessExclusiveLock",
)

#: What each mode blocks for other sessions, from the conflict table in PostgreSQL's docs
#: ("Explicit Locking"): SELECT takes AccessShareLock, which only AccessExclusiveLock
#: conflicts with; INSERT/UPDATE/DELETE take RowExclusiveLock, which Share,
#: ShareRowExclusive, Exclusive and AccessExclusive conflict with. ShareUpdateExclusiveLock
#: (CREATE INDEX CONCURRENTLY, VALIDATE CONSTRAINT) blocks only other schema changes.
BLOCKS: dict[str, str] = {
    "AccessExclusiveLock": "reads and writes",
    "ExclusiveLock": "writes",
    "ShareRowExclusiveLock": "writes",
    "ShareLock": "writes",
}

#: The relation kinds whose storage and locks matter (pg_class.relkind) and how a name
#: shows each that is not a table.
_KIND_SUFFIX = {"r": "", "p": "", "m": " (materialized view)", "i": " (index)"}
_LOCK_SUFFIX = {**_KIND_SUFFIX, "I": " (index)", "S": " (sequence)", "v": " (view)"}

_IDENTITIES = text(
    "SELECT n.nspname, c.relname, c.relkind, c.oid, pg_relation_filenode(c.oid) "
    "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
    f"WHERE c.relkind IN ('r', 'p', 'm', 'i') AND {USER_SCHEMA}"
)

#: Relation locks the current backend holds, on relations of this database.
_OWN_LOCKS = text(
    "SELECT l.relation, l.mode, n.nspname, c.relname, c.relkind "
    "FROM pg_locks l "
    "LEFT JOIN pg_class c ON c.oid = l.relation "
    "LEFT JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE l.pid = pg_backend_pid() AND l.locktype = 'relation' AND l.granted "
    "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
)

#: Relation locks other backends connected to this database hold; relations another
#: transaction created and has not committed yet have no visible pg_class row (nobody
#: else can see them either, so their locks block nothing) and drop out of the join.
_OTHERS_LOCKS = text(
    "SELECT l.mode, n.nspname, c.relname, c.relkind "
    "FROM pg_locks l "
    "JOIN pg_stat_activity a ON a.pid = l.pid "
    "JOIN pg_class c ON c.oid = l.relation "
    "JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE l.locktype = 'relation' AND l.granted AND l.pid <> pg_backend_pid() "
    "AND a.datname = current_database() "
    "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
    f"AND {USER_SCHEMA}"
)


def lock_seen(relation: str, mode: str) -> LockSeen:
    """A LockSeen for PostgreSQL's ``mode`` on ``relation``, graded by the conflict table."""
    strength = LOCK_MODES.index(mode) + 1 if mode in LOCK_MODES else 0
    return LockSeen(
        table=relation, mode=mode, blocks=BLOCKS.get(mode, "nothing"), strength=strength
    )


def _is_system(schema: str) -> bool:
    return (
        schema in ("pg_catalog", "information_schema")
        or schema.startswith("pg_toast")
        or schema.startswith("pg_temp_")
    )


def _tables_first(lock: LockSeen) -> tuple[bool, str]:
    """Sort key: tables before indexes and the rest, so that among equally strong locks
    :func:`.base.strongest` names the table (a rewrite locks its indexes as hard)."""
    return (lock.table.endswith(")"), lock.table)


class PostgreSQLProbe(Probe):
    """Exact rewrites (file nodes) and relation locks (``pg_locks``) on PostgreSQL.

    :meth:`table_identities` remembers the relations it saw, so that :meth:`locks_held`
    can leave out the locks on relations the revision itself created (a new table is
    AccessExclusive-locked by its creator, but no other session can see it yet).
    """

    observability = (
        "PostgreSQL: every relation lock the revision's transaction holds at its commit is "
        "seen (locks last to the end of the transaction), and locks of other sessions are "
        "sampled every 10 ms; a lock held for less than that outside the transaction (a phase "
        "of CREATE INDEX CONCURRENTLY) can be missed. Rewrites are exact: a table or index "
        "whose file node changed (a table dropped and re-created under its name counts too)."
    )

    def __init__(self) -> None:
        #: The database and its relations (oid -> name) at the last :meth:`table_identities`.
        self._known: tuple[str, dict[int, str]] | None = None

    def settle(self, engine: Engine) -> None:
        """VACUUM (ANALYZE) the copy: a restored table has no hint bits, visibility map or
        statistics yet, so the first revision to read it would pay for them (production
        did long ago) and the timing would overstate production's."""
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM (ANALYZE)")

    def table_identities(self, conn: Connection) -> dict[str, Any]:
        """``schema.table`` (and ``schema.index (index)``) -> (oid, file node); the oid makes
        a relation dropped and re-created under the same name differ too."""
        identities: dict[str, Any] = {}
        names: dict[int, str] = {}
        for schema, name, kind, oid, filenode in conn.execute(_IDENTITIES):
            label = f"{schema}.{name}{_KIND_SUFFIX[kind]}"
            identities[label] = (int(oid), filenode)
            names[int(oid)] = label
        database = conn.execute(text("SELECT current_database()")).scalar_one()
        self._known = (str(database), names)
        return identities

    def locks_held(self, conn: Connection) -> list[LockSeen]:
        """The relation locks ``conn``'s own transaction holds, catalogs left out.

        Relations the transaction created are left out too, as no other session can see
        them: new tables, and the transient copy PostgreSQL builds during a rewrite (already
        dropped again, so no longer named). A relation it dropped is named from the last
        :meth:`table_identities`.
        """
        known: dict[int, str] | None = None
        if self._known is not None:
            database = conn.execute(text("SELECT current_database()")).scalar_one()
            if database == self._known[0]:
                known = self._known[1]
        locks: list[LockSeen] = []
        for relation, mode, schema, name, kind in conn.execute(_OWN_LOCKS):
            oid = int(relation)
            if name is None:
                if known is None or oid not in known:
                    continue  # created and dropped inside the transaction
                label = known[oid]
            elif _is_system(schema) or (known is not None and oid not in known):
                continue
            else:
                label = f"{schema}.{name}{_LOCK_SUFFIX.get(kind, '')}"
            locks.append(lock_seen(label, mode))
        return sorted(locks, key=_tables_first)

    @contextmanager
    def watching(self, engine: Engine) -> Iterator[list[LockSeen]]:
        """Sample other sessions' relation locks in ``engine``'s database from a thread with
        its own connection until the block ends (see :func:`.base.sample_locks`)."""
        with sample_locks(engine, _others_locks, "zenmigrate-pg-locks") as seen:
            yield seen


def _others_locks(conn: Connection) -> list[LockSeen]:
    """One sample of the relation locks other sessions hold, tables first."""
    sample = [
        lock_seen(f"{schema}.{name}{_LOCK_SUFFIX.get(kind, '')}", mode)
        for mode, schema, name, kind in conn.execute(_OTHERS_LOCKS)
    ]
    return sorted(sample, key=_tables_first)
