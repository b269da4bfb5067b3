"""What a probe measures while a revision runs on the scratch copy, for one server kind.

The scratch copy is a database of its own, which nothing but the rehearsal uses: every lock
another session sees there, and every table whose storage changed, is the migration's.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine

from ..model import LockSeen


class Probe(ABC):
    """Rewrite and lock observation for one server kind."""

    #: What this probe can and cannot see, for the report (one or two sentences).
    observability: str = ""

    @abstractmethod
    def table_identities(self, conn: Connection) -> dict[str, Any]:
        """Each table of the connection's database (qualified name) -> an identity of its
        storage that changes exactly when the table is rewritten or rebuilt."""

    def settle(self, engine: Engine) -> None:
        """Bring a freshly loaded copy to the steady state of a long-lived database (where a
        server has one that changes timings) before any revision is timed on it."""
        return None

    def locks_held(self, conn: Connection) -> list[LockSeen]:
        """The table locks the migration's own connection holds now, inside the revision's
        transaction (called from Alembic's ``on_version_apply``, before the commit)."""
        return []

    @contextmanager
    def watching(self, engine: Engine) -> Iterator[list[LockSeen]]:
        """While the block runs, sample from another connection the table locks other
        sessions hold in ``engine``'s database; the yielded list fills as it goes."""
        yield []


def rewritten(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """Tables present before and after whose storage identity changed."""
    return sorted(name for name, ident in before.items() if name in after and after[name] != ident)


def strongest(locks: Iterable[LockSeen]) -> LockSeen | None:
    """The strongest lock (ties: the first seen)."""
    best: LockSeen | None = None
    for lock in locks:
        if best is None or lock.strength > best.strength:
            best = lock
    return best


def distinct(locks: Iterable[LockSeen]) -> list[LockSeen]:
    """One entry per (table, mode), in the order first seen."""
    seen: dict[tuple[str, str], LockSeen] = {}
    for lock in locks:
        seen.setdefault((lock.table, lock.mode), lock)
    return list(seen.values())
