"""Per-backend behaviour; the engine asks :func:`get_dialect` and never branches on names itself.

A backend's module (and its driver) is imported on first use: a MariaDB backup does not pay
for importing psycopg, nor a PostgreSQL one for pymysql.
"""

from __future__ import annotations

import importlib
from functools import cache

from sqlalchemy.engine import URL, Engine

from ..errors import UnsupportedDatabaseError
from .base import DialectOps

#: Backend name -> (module in this package, its DialectOps class).
_BY_BACKEND: dict[str, tuple[str, str]] = {
    "mysql": ("mysql", "MySQLOps"),
    "mariadb": ("mysql", "MySQLOps"),
    "postgresql": ("postgresql", "PostgreSQLOps"),
    "sqlite": ("sqlite", "SQLiteOps"),
}


@cache
def _ops(module: str, cls: str) -> DialectOps:
    ops: DialectOps = getattr(importlib.import_module(f"{__name__}.{module}"), cls)()
    return ops


def get_dialect(target: URL | Engine) -> DialectOps:
    """Return the operations object for the backend of an URL or engine."""
    url = target.url if isinstance(target, Engine) else target
    backend = url.get_backend_name()
    try:
        return _ops(*_BY_BACKEND[backend])
    except KeyError:
        supported = ", ".join(sorted(_BY_BACKEND))
        raise UnsupportedDatabaseError(
            f"unsupported database backend {backend!r} (supported: {supported})"
        ) from None


@cache
def bookkeeping_tables() -> frozenset[str]:
    """Tables any backend keeps for itself; never part of a user's schema."""
    return frozenset().union(*(_ops(*found).internal_tables for found in _BY_BACKEND.values()))


__all__ = ["DialectOps", "bookkeeping_tables", "get_dialect"]
