"""Rebuilds and locks on MariaDB/MySQL, measured on the scratch copy.

Rebuilds: InnoDB gives a table a new TABLE_ID exactly when it rebuilds it (COPY, or an
in-place rebuild such as FORCE or ADD PRIMARY KEY); an instant ADD/DROP COLUMN, a rename or
an in-place CREATE INDEX keep it (checked on MariaDB 10.11). MariaDB lists the ids in
``information_schema.INNODB_SYS_TABLES``, MySQL 8 in ``INNODB_TABLES``. A secondary index
build reads the table but does not rebuild it, so it is not reported as a rewrite.

Locks: DDL is not transactional here, so the locks are sampled from another connection while
the revision runs: ``performance_schema.metadata_locks`` when it is on and instrumented
(observed), ``information_schema.METADATA_LOCK_INFO`` when MariaDB's plugin is loaded
(observed), otherwise the statement and state in ``information_schema.PROCESSLIST``, from
which the metadata lock is inferred (what MariaDB documents each ALTER phase to hold).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine

from ...errors import UnsafeDumpError
from ...sql_lexer import LexerRules, significant_tokens
from ..lint.mysql import statement_table, words_of
from ..model import LockSeen
from .base import Probe, sample_locks

#: Metadata lock types -> (what they block for other sessions' DML, strength).
_MDL: dict[str, tuple[str, int]] = {
    "INTENTION_EXCLUSIVE": ("nothing", 0),
    "SHARED": ("nothing", 1),
    "SHARED_HIGH_PRIO": ("nothing", 1),
    "SHARED_READ": ("nothing", 1),
    "SHARED_WRITE": ("nothing", 1),
    "SHARED_WRITE_LOW_PRIO": ("nothing", 1),
    "SHARED_UPGRADABLE": ("nothing", 2),
    "SHARED_READ_ONLY": ("writes", 3),
    "SHARED_NO_WRITE": ("writes", 3),
    "SHARED_NO_READ_WRITE": ("reads and writes", 4),
    "EXCLUSIVE": ("reads and writes", 5),
}

#: PROCESSLIST states of an ALTER and the metadata lock MariaDB documents for that phase.
#: ``None``: the in-place phase, whose lock depends on the statement's LOCK clause.
_STATES: dict[str, str | None] = {
    "copy to tmp table": "SHARED_NO_WRITE",
    "enabling keys": "SHARED_NO_WRITE",
    "rename result table": "EXCLUSIVE",
    "committing alter table to storage engine": "EXCLUSIVE",
    "altering table": None,
}

_OBSERVED = (
    "Rebuilds: measured (InnoDB TABLE_ID changes exactly when a table is rebuilt; secondary "
    "index builds are not rebuilds and are not reported). Locks: {locks}"
)
_BY_SOURCE = {
    "performance_schema": "observed in performance_schema.metadata_locks, sampled every 10 ms "
    "(a lock held for less than that can be missed).",
    "metadata_lock_info": "observed in information_schema.METADATA_LOCK_INFO, sampled every "
    "10 ms (a lock held for less than that can be missed).",
    "processlist": "performance_schema is off, so locks are inferred from the ALTER's state in "
    "PROCESSLIST, sampled every 10 ms: 'copy to tmp table' holds a lock that blocks writes, "
    "the final rename or commit blocks reads and writes, an in-place phase blocks what its "
    "LOCK clause says. Instant and sub-10 ms statements are not seen.",
}


@dataclass(eq=False)
class _Storage:
    """A table's InnoDB ids, one per partition (``""`` when not partitioned).

    Equal when every partition present on both sides kept its id: adding or dropping a
    partition is not a rebuild of the others, a new id on any kept one is.
    """

    ids: dict[str, int]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, _Storage):
            return NotImplemented
        common = self.ids.keys() & other.ids.keys()
        if not common:
            return self.ids == other.ids
        return all(self.ids[p] == other.ids[p] for p in common)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"InnoDB{self.ids}"


def _decode(name: str) -> str:
    """InnoDB's file-safe spelling of a name (``my@002dtable``) back to the name."""
    return re.sub(r"@([0-9a-fA-F]{4})", lambda m: chr(int(m.group(1), 16)), name)


def lock_seen(table: str, lock_type: str, note: str = "") -> LockSeen:
    """A metadata lock as performance_schema (``SHARED_NO_WRITE``) or METADATA_LOCK_INFO
    (``MDL_SHARED_NO_WRITE``) spells it, graded by what it blocks for other sessions' DML."""
    kind = lock_type.upper().replace(" ", "_").removeprefix("MDL_")
    blocks, strength = _MDL.get(kind, ("nothing", 0))
    return LockSeen(table=table, mode=f"MDL_{kind}{note}", blocks=blocks, strength=strength)


class MySQLProbe(Probe):
    """InnoDB table ids for rebuilds; metadata locks, observed or inferred, for locks."""

    #: Until the probe has found which lock source this server has, all three are named;
    #: after it, the one in use (see :meth:`_describe`).
    observability = _OBSERVED.format(
        locks="observed in performance_schema.metadata_locks when it is on and instrumented, "
        "else in MariaDB's METADATA_LOCK_INFO plugin when loaded; else (performance_schema is "
        "off by default on MariaDB) inferred from the ALTER's state in PROCESSLIST: 'copy to "
        "tmp table' blocks writes, the final rename or commit blocks reads and writes, an "
        "in-place phase blocks what its LOCK clause says. Sampled every 10 ms: instant and "
        "shorter statements are not seen."
    )

    def __init__(self) -> None:
        #: Where this server shows metadata locks (see :meth:`_lock_source`), once known.
        self._source: str | None = None
        #: How the watcher's session lexes statements (its sql_mode), once known.
        self._rules: LexerRules | None = None
        #: The tables :meth:`table_identities` compares by CREATE_TIME.
        self._not_innodb: list[str] = []

    def _describe(self) -> None:
        """Set :attr:`observability` from the lock source and the tables not in InnoDB."""
        text = type(self).observability
        if self._source is not None:
            text = _OBSERVED.format(locks=_BY_SOURCE[self._source])
        if self._not_innodb:
            text += (
                f" Tables not in InnoDB ({', '.join(self._not_innodb)}) are compared by "
                "CREATE_TIME, to the second: a rebuild within the same second is missed."
            )
        self.observability = text

    def table_identities(self, conn: Connection) -> dict[str, Any]:
        """Each base table of ``DATABASE()`` -> its InnoDB ids (CREATE_TIME for others)."""
        database = conn.exec_driver_sql("SELECT DATABASE()").scalar_one()
        view = self._innodb_view(conn)
        identities: dict[str, Any] = {}
        rows = conn.exec_driver_sql(f"SELECT NAME, TABLE_ID FROM information_schema.{view}")
        for raw, table_id in rows:
            db, _, rest = str(raw).partition("/")
            if _decode(db) != database or rest.startswith("#sql"):
                continue  # another database, or ALTER's temporary copy
            # A '#' of the name itself is spelled @0023: the first one starts "P#p0".
            table, _, part = rest.partition("#")
            storage = identities.setdefault(_decode(table), _Storage({}))
            storage.ids[part.upper()] = int(table_id)
        others = conn.exec_driver_sql(
            "SELECT TABLE_NAME, ENGINE, CREATE_TIME FROM information_schema.TABLES "
            "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_TYPE = 'BASE TABLE' "
            "AND ENGINE <> 'InnoDB'"
        ).all()
        for name, engine, created in others:
            identities[str(name)] = (str(engine), str(created))
        if others:
            self._not_innodb = sorted(str(r[0]) for r in others)
            self._describe()
        return identities

    @staticmethod
    def _innodb_view(conn: Connection) -> str:
        """MariaDB's INNODB_SYS_TABLES or MySQL 8's INNODB_TABLES, whichever exists."""
        found = conn.exec_driver_sql(
            "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = "
            "'information_schema' AND TABLE_NAME IN ('INNODB_SYS_TABLES', 'INNODB_TABLES')"
        ).scalars()
        names = set(found)
        return "INNODB_SYS_TABLES" if "INNODB_SYS_TABLES" in names else "INNODB_TABLES"

    def locks_held(self, conn: Connection) -> list[LockSeen]:
        """The connection's own table metadata locks, where the server shows them (MariaDB's
        METADATA_LOCK_INFO plugin); [] otherwise. DDL commits at once on MySQL, so this
        only ever sees DML's locks."""
        if self._lock_source(conn) != "metadata_lock_info":
            return []
        rows = conn.exec_driver_sql(
            "SELECT TABLE_NAME, LOCK_MODE FROM information_schema.METADATA_LOCK_INFO "
            "WHERE THREAD_ID = CONNECTION_ID() AND TABLE_SCHEMA = DATABASE() "
            "AND TABLE_NAME <> ''"
        )
        return [lock_seen(str(t), str(m)) for t, m in rows if not str(t).startswith("#sql")]

    @contextmanager
    def watching(self, engine: Engine) -> Iterator[list[LockSeen]]:
        """Sample the other sessions in ``engine``'s database from a thread (see
        :func:`.base.sample_locks`); the first sample finds where the server shows locks."""
        with sample_locks(engine, self._sample, "zenmigrate-mysql-locks") as seen:
            yield seen

    def _sample(self, conn: Connection) -> list[LockSeen]:
        """One sample of the other sessions' locks, from the lock source's query."""
        source = self._lock_source(conn)
        if self._rules is None:
            sql_mode = str(conn.exec_driver_sql("SELECT @@sql_mode").scalar_one())
            self._rules = LexerRules.mysql(sql_mode)
        rows = [(str(a or ""), str(b or "")) for a, b in conn.exec_driver_sql(_QUERIES[source])]
        if source != "processlist":  # (table, lock type); #sql: ALTER's temporary copy
            return [lock_seen(table, mode) for table, mode in rows if not table.startswith("#sql")]
        inferred = (inferred_lock(statement, state, self._rules) for state, statement in rows)
        return [lock for lock in inferred if lock is not None]

    def _lock_source(self, conn: Connection) -> str:
        """Where this server shows metadata locks: performance_schema (on and
        instrumented), MariaDB's METADATA_LOCK_INFO plugin, or only PROCESSLIST; asked once
        per probe, as it does not change while the rehearsal runs."""
        if self._source is None:
            self._source = _lock_source(conn)
            self._describe()
        return self._source


def _lock_source(conn: Connection) -> str:
    """Where the server of ``conn`` shows metadata locks (see :meth:`MySQLProbe._lock_source`)."""
    if conn.exec_driver_sql("SELECT @@performance_schema").scalar() in (1, "1", "ON"):
        enabled = conn.exec_driver_sql(
            "SELECT ENABLED FROM performance_schema.setup_instruments "
            "WHERE NAME = 'wait/lock/metadata/sql/mdl'"
        ).scalar()
        if str(enabled).upper() == "YES":
            return "performance_schema"
    plugin = conn.exec_driver_sql(
        "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = "
        "'information_schema' AND TABLE_NAME = 'METADATA_LOCK_INFO'"
    ).scalar()
    return "metadata_lock_info" if plugin else "processlist"


_QUERIES = {
    "performance_schema": (
        "SELECT m.OBJECT_NAME, m.LOCK_TYPE FROM performance_schema.metadata_locks m "
        "JOIN performance_schema.threads t ON t.THREAD_ID = m.OWNER_THREAD_ID "
        "WHERE m.OBJECT_TYPE = 'TABLE' AND m.OBJECT_SCHEMA = DATABASE() "
        "AND m.LOCK_STATUS = 'GRANTED' AND t.PROCESSLIST_ID <> CONNECTION_ID()"
    ),
    "metadata_lock_info": (
        "SELECT TABLE_NAME, LOCK_MODE FROM information_schema.METADATA_LOCK_INFO "
        "WHERE TABLE_SCHEMA = DATABASE() AND THREAD_ID <> CONNECTION_ID() AND TABLE_NAME <> ''"
    ),
    "processlist": (
        "SELECT STATE, INFO FROM information_schema.PROCESSLIST "
        "WHERE DB = DATABASE() AND ID <> CONNECTION_ID() AND COMMAND = 'Query' "
        "AND INFO IS NOT NULL"
    ),
}


def inferred_lock(statement: str, state: str, rules: LexerRules) -> LockSeen | None:
    """The metadata lock a statement in a PROCESSLIST state holds, as MariaDB documents it:
    an ALTER copying rows blocks writes, its final rename or commit blocks everything, an
    in-place phase blocks what its LOCK clause asks (FULLTEXT/SPATIAL: writes), DML holds a
    shared write lock. None for a session only waiting for a lock, or a state not known."""
    try:
        tokens = significant_tokens(statement, rules)
    except UnsafeDumpError:
        return None  # a statement cut short by the server: nothing safe to read
    table = statement_table(tokens)
    words = words_of(tokens)
    if table is None or not words:
        return None
    key = state.strip().lower()
    note = f" (inferred from {state.strip()!r})"
    if words[0] in ("ALTER", "CREATE", "DROP", "OPTIMIZE") and key in _STATES:
        mode = _STATES[key] or _in_place_lock(words)
        return lock_seen(table, mode, note)
    if words[0] in ("UPDATE", "DELETE", "INSERT", "REPLACE") and "waiting" not in key:
        return lock_seen(table, "SHARED_WRITE", note)
    return None


def _in_place_lock(words: list[str]) -> str:
    """The lock of an in-place ALTER phase, from the statement's LOCK clause."""
    after = words[words.index("LOCK") + 1 :] if "LOCK" in words else []
    lock = next((w for w in after if w != "="), "")
    if lock == "EXCLUSIVE":
        return "EXCLUSIVE"
    if lock == "SHARED" or "FULLTEXT" in words or "SPATIAL" in words:
        return "SHARED_NO_WRITE"
    return "SHARED_UPGRADABLE"
