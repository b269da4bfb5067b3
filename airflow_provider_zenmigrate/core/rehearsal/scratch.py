"""Scratch databases: made for one rehearsal, always dropped, never mistaken for a real one.

A scratch database's name is ``zenmigrate_scratch_<source>_<random>_<role>``: ``<source>``
is a digest of the production database it copies (server and name), ``<random>`` makes it
unique. Where the server keeps database comments (PostgreSQL, MariaDB 10.5+) the scratch
database also carries a marker comment, and nothing without it is ever dropped there.

Rehearsals of one production database take turns under a lock on the scratch server (a
named or advisory lock tied to the lock holder's session, a file lock for SQLite). Whoever
holds it knows that no other rehearsal of that database is alive, so any scratch database of
that source still present was left by a killed one: it is dropped before the new one starts.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import secrets
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import URL

from ..dialects.sqlite import file_lock
from ..errors import RehearsalError
from ..utils import MigrationUtils

logger = logging.getLogger(__name__)

SCRATCH_PREFIX = "zenmigrate_scratch_"
_MARKER = "zenmigrate rehearsal scratch copy"


def source_key(production: MigrationUtils) -> str:
    """Eight hex digits naming the production database (server and name), never the
    credentials, so scratch names of one source are recognisable and of two never collide."""
    url = production.url
    where = f"{url.get_backend_name()}://{url.host or ''}:{url.port or ''}/{url.database or ''}"
    return hashlib.sha256(where.encode()).hexdigest()[:8]


def is_scratch_name(name: str) -> bool:
    return name.startswith(SCRATCH_PREFIX)


def _backend(server: MigrationUtils) -> str:
    return server.url.get_backend_name()


def _comments_supported(server: MigrationUtils) -> bool:
    """Whether the server keeps a comment per database (MySQL 8 does not)."""
    backend = _backend(server)
    if backend == "postgresql":
        return True
    if backend in ("mysql", "mariadb"):
        with server.master_engine.connect() as conn:
            return bool(
                conn.exec_driver_sql(
                    "SELECT COUNT(*) FROM information_schema.COLUMNS WHERE "
                    "TABLE_SCHEMA = 'information_schema' AND TABLE_NAME = 'SCHEMATA' "
                    "AND COLUMN_NAME = 'SCHEMA_COMMENT'"
                ).scalar()
            )
    return False


def _set_marker(server: MigrationUtils, name: str, source: str) -> None:
    comment = f"{_MARKER} of {source}; safe to drop"
    master = server.master_engine
    quoted = server.dialect.quote(master, name)
    backend = _backend(server)
    if backend == "postgresql":
        with master.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql(f"COMMENT ON DATABASE {quoted} IS '{comment}'")
    elif backend in ("mysql", "mariadb") and _comments_supported(server):
        with master.connect() as conn:
            conn.exec_driver_sql(f"ALTER DATABASE {quoted} COMMENT = '{comment}'")
            conn.commit()


def list_scratch(server: MigrationUtils, key: str | None = None) -> dict[str, bool]:
    """Scratch databases on ``server`` (of one source, with ``key``) -> whether each carries
    the marker (always True where the server keeps no comments: the name is the marker)."""
    pattern = SCRATCH_PREFIX + (f"{key}_" if key else "")
    backend = _backend(server)
    found: dict[str, bool] = {}
    if backend == "sqlite":
        main = Path(server.url.database or "").resolve()
        suffix = main.suffix
        for path in main.parent.glob(f"{pattern}*{suffix}"):
            if path.is_file():
                found[path.name[: -len(suffix)] if suffix else path.name] = True
        return found
    like = pattern.replace("_", r"\_") + "%"
    with server.master_engine.connect() as conn:
        if backend == "postgresql":
            rows = conn.execute(
                text(
                    "SELECT datname, shobj_description(oid, 'pg_database') FROM pg_database "
                    "WHERE datname LIKE :like"
                ),
                {"like": like},
            ).all()
        elif _comments_supported(server):
            rows = conn.execute(
                text(
                    "SELECT SCHEMA_NAME, SCHEMA_COMMENT FROM information_schema.SCHEMATA "
                    "WHERE SCHEMA_NAME LIKE :like"
                ),
                {"like": like},
            ).all()
        else:
            rows = conn.execute(
                text(
                    "SELECT SCHEMA_NAME, :marker FROM information_schema.SCHEMATA "
                    "WHERE SCHEMA_NAME LIKE :like"
                ),
                {"like": like, "marker": _MARKER},
            ).all()
    for name, comment in rows:
        found[str(name)] = str(comment or "").startswith(_MARKER)
    return found


@contextlib.contextmanager
def _rehearsal_lock(server: MigrationUtils, key: str, timeout: float) -> Iterator[None]:
    if _backend(server) == "sqlite":
        folder = Path(server.url.database or "").resolve().parent
        busy = f"another rehearsal of this database held its lock for {timeout:g}s"
        with file_lock(folder / f".zenmigrate-rehearsal-{key}.lock", timeout, busy):
            yield
        return
    master = server.master_engine
    with server.dialect.migration_lock(master, f"rehearsal:{key}", timeout):
        yield


class ScratchSession:
    """The scratch databases of one rehearsal on one server; see :func:`scratch_session`."""

    def __init__(self, server: MigrationUtils, production: MigrationUtils, key: str) -> None:
        self.server = server
        self.production = production
        self.key = key
        self.run = secrets.token_hex(4)
        #: The scratch databases made, by name; a name is here before its database exists
        #: (None until then) and until it is dropped, so that a signal between the two
        #: steps of either still leaves it to :meth:`drop_all`.
        self._made: dict[str, MigrationUtils | None] = {}

    def name(self, role: str) -> str:
        return f"{SCRATCH_PREFIX}{self.key}_{self.run}_{role}"

    def create(self, role: str) -> MigrationUtils:
        """Create the scratch database for ``role`` (``copy``, ``ref``) and return it."""
        name = self.name(role)
        server = self.server
        if server.database_exists(name):
            marked = list_scratch(server, self.key).get(name, False)
            raise RehearsalError(
                f"the scratch name {name!r} already exists on {server.safe_url}"
                + ("" if marked else " as a database that is not a scratch copy")
                + ": refusing to touch it"
            )
        self._made[name] = None
        server.create_database(name)
        self._made[name] = scratch = _utils_for(server, self.production, name)
        _set_marker(server, name, self.production.dialect.database_name(self.production.url))
        return scratch

    def drop(self, role: str) -> None:
        name = self.name(role)
        if name in self._made:
            scratch = self._made[name]
            if scratch is not None:
                scratch.dispose()
            _drop(self.server, name)
            self._made.pop(name, None)

    def drop_all(self) -> None:
        for name, scratch in list(self._made.items()):
            if scratch is not None:
                scratch.dispose()
            try:
                _drop(self.server, name)
            except Exception:  # noqa: BLE001 - the next rehearsal sweeps it
                logger.warning(
                    "could not drop scratch database %r; the next rehearsal of this database "
                    "drops it",
                    name,
                    exc_info=True,
                )
            self._made.pop(name, None)


def _drop(server: MigrationUtils, name: str) -> None:
    if not is_scratch_name(name):  # the one guard between a bug here and production
        raise RehearsalError(f"refusing to drop {name!r}: not a scratch database")
    server.drop_database(name)
    if _backend(server) == "sqlite":
        # The scratch file's migration lock file: nobody but this rehearsal used it. (A real
        # database's lock file stays: unlinking a file another process may hold a flock on
        # would let a third take "the" lock on a new file.)
        path = Path(server.dialect.database_url(server.url, name).database or "")
        Path(f"{path}.zenmigrate-lock").unlink(missing_ok=True)
    logger.info("dropped scratch database %r", name)


def _utils_for(server: MigrationUtils, production: MigrationUtils, name: str) -> MigrationUtils:
    """A MigrationUtils for the scratch database ``name`` on ``server``, with production's
    settings: a copy needs production's roles left out where the scratch server lacks them."""
    url: URL = server.dialect.database_url(server.url, name)
    return MigrationUtils(
        url=url,
        connect_args=server.connect_args,
        engine_args=server.engine_args,
        version_table=production.version_table,
        chunk_rows=production.chunk_rows,
        transport_params=production.transport_params,
        schemas=production.schemas,
        exclude_schemas=production.exclude_schemas,
        no_owner=production.no_owner,
        no_privileges=production.no_privileges,
        skip_missing_roles=True,
    )


def sweep(server: MigrationUtils, key: str) -> list[str]:
    """Drop the marked scratch databases of source ``key`` (call under the rehearsal lock)."""
    dropped = []
    for name, marked in sorted(list_scratch(server, key).items()):
        if not marked:
            logger.warning("leaving %r alone: it has a scratch name but not the marker", name)
            continue
        logger.info("dropping %r, left by a rehearsal that did not finish", name)
        _drop(server, name)
        dropped.append(name)
    return dropped


@contextlib.contextmanager
def scratch_session(
    server: MigrationUtils, production: MigrationUtils, *, lock_timeout: float = 3600.0
) -> Iterator[ScratchSession]:
    """Hold the rehearsal lock of ``production`` on ``server``, drop what a killed rehearsal
    left, and drop every scratch database made in the block when it ends, however it ends."""
    key = source_key(production)
    with _rehearsal_lock(server, key, lock_timeout):
        sweep(server, key)
        session = ScratchSession(server, production, key)
        try:
            yield session
        finally:
            session.drop_all()
