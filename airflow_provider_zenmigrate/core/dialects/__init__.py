"""Per-backend behaviour; the engine asks :func:`get_dialect` and never branches on names itself.

A backend's module (and its driver) is imported on first use: a MariaDB backup does not pay
for importing psycopg, nor a PostgreSQL one for pymysql.
"""

from __future__ import annotations

import importlib
from functools import cache
from typing import Any, cast

from sqlalchemy.engine import URL, Engine

from ..errors import UnsupportedDatabaseError
from .base import DialectOps, StatementRules

#: Backend name -> (module in this package, its DialectOps class).
_BY_BACKEND: dict[str, tuple[str, str]] = {
    "mysql": ("mysql", "MySQLOps"),
    "mariadb": ("mysql", "MySQLOps"),
    "postgresql": ("postgresql.admin", "PostgreSQLOps"),
    "sqlite": ("sqlite", "SQLiteOps"),
}


#: Backend name -> module (in this package) of the statement checks its restore writer calls:
#: importing it does not import the driver where the writer's module would (PostgreSQL).
#: The module has ``check_table_statement`` and ``check_object_statement``, or, where the
#: checks depend on the dump's header, ``statement_rules_for(header)`` returning an object
#: that has them.
_STATEMENT_RULES: dict[str, str] = {
    "mysql": "mysql",
    "mariadb": "mysql",
    "postgresql": "postgresql.statements",
    "sqlite": "sqlite",
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


def statement_rules(backend: str, header: dict[str, Any] | None) -> StatementRules:
    """The statement checks the restore writer of ``backend`` (a backend name, or a dump
    header's ``dialect``) applies to the table and object records of the dump ``header``
    starts (``None``: a dump without header)."""
    try:
        name = _STATEMENT_RULES[backend]
    except KeyError:
        supported = ", ".join(sorted(_STATEMENT_RULES))
        raise UnsupportedDatabaseError(
            f"unsupported database backend {backend!r} (supported: {supported})"
        ) from None
    module = importlib.import_module(f"{__name__}.{name}")
    for_dump = getattr(module, "statement_rules_for", None)
    return cast(StatementRules, for_dump(header) if for_dump is not None else module)


@cache
def bookkeeping_tables() -> frozenset[str]:
    """Tables any backend keeps for itself; never part of a user's schema."""
    return frozenset().union(*(_ops(*found).internal_tables for found in _BY_BACKEND.values()))


__all__ = [
    "DialectOps",
    "StatementRules",
    "bookkeeping_tables",
    "get_dialect",
    "statement_rules",
]
