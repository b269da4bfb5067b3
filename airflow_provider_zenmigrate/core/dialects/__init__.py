"""Per-backend behaviour; the engine asks :func:`get_dialect` and never branches on names itself."""

from __future__ import annotations

from sqlalchemy.engine import URL, Engine

from ..errors import UnsupportedDatabaseError
from .base import DialectOps
from .mysql import MySQLOps
from .postgresql import PostgreSQLOps
from .sqlite import SQLiteOps

_BY_BACKEND: dict[str, DialectOps] = {
    "mysql": MySQLOps(),
    "mariadb": MySQLOps(),
    "postgresql": PostgreSQLOps(),
    "sqlite": SQLiteOps(),
}


#: Tables any backend keeps for itself; never part of a user's schema.
BOOKKEEPING_TABLES: frozenset[str] = frozenset().union(
    *(ops.internal_tables for ops in _BY_BACKEND.values())
)


def get_dialect(target: URL | Engine) -> DialectOps:
    """Return the operations object for the backend of an URL or engine."""
    url = target.url if isinstance(target, Engine) else target
    backend = url.get_backend_name()
    try:
        return _BY_BACKEND[backend]
    except KeyError:
        supported = ", ".join(sorted(_BY_BACKEND))
        raise UnsupportedDatabaseError(
            f"unsupported database backend {backend!r} (supported: {supported})"
        ) from None


__all__ = ["BOOKKEEPING_TABLES", "DialectOps", "get_dialect"]
