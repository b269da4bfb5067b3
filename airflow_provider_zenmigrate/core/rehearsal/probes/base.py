"""What a probe measures while a revision runs on the scratch copy, for one server kind.

The scratch copy is a database of its own, which nothing but the rehearsal uses: every lock
another session sees there, and every table whose storage changed, is the migration's.
"""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine

from ..model import LockSeen

logger = logging.getLogger(__name__)

#: How often :func:`sample_locks` samples, in seconds.
SAMPLE_SECONDS = 0.01


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


@contextmanager
def sample_locks(
    engine: Engine, sample: Callable[[Connection], Iterable[LockSeen]], name: str
) -> Iterator[list[LockSeen]]:
    """While the block runs, call ``sample`` every :data:`SAMPLE_SECONDS` from a thread
    ``name`` with its own autocommit connection (no snapshot kept between samples); the
    yielded list gets each (table, mode) once, in the order first seen. The first sample is
    taken before the block starts, when it can be; failures are logged, never raised, as a
    missing sample must not fail the rehearsal."""
    seen: list[LockSeen] = []
    stop = threading.Event()
    ready = threading.Event()
    thread = threading.Thread(
        target=_sample_until, args=(engine, sample, seen, stop, ready), name=name, daemon=True
    )
    thread.start()
    ready.wait(5)
    try:
        yield seen
    finally:
        stop.set()
        thread.join()


def _sample_until(
    engine: Engine,
    sample: Callable[[Connection], Iterable[LockSeen]],
    seen: list[LockSeen],
    stop: threading.Event,
    ready: threading.Event,
) -> None:
    """The sampling thread of :func:`sample_locks`: sample until ``stop``."""
    known: set[tuple[str, str]] = set()
    try:
        conn = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
    except Exception as exc:  # noqa: BLE001 - a missing sample never fails the rehearsal
        logger.debug("lock watcher could not connect: %s", exc.__class__.__name__)
        ready.set()
        return
    try:
        while True:
            try:
                for lock in sample(conn):
                    if (lock.table, lock.mode) not in known:
                        known.add((lock.table, lock.mode))
                        seen.append(lock)
            except Exception as exc:  # noqa: BLE001 - as above
                logger.debug("lock watcher sample failed: %s", exc.__class__.__name__)
                if conn.invalidated or conn.closed:
                    return
                conn.rollback()
            ready.set()
            if stop.wait(SAMPLE_SECONDS):
                return
    finally:
        ready.set()
        try:
            conn.close()
        except Exception as exc:  # noqa: BLE001 - as above
            logger.debug("lock watcher could not close: %s", exc.__class__.__name__)
