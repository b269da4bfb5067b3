"""The linter for a server kind: squawk for PostgreSQL, our own rules for MySQL/MariaDB."""

from __future__ import annotations

import importlib

from .base import Linter

_BY_BACKEND = {
    "mysql": ("mysql", "MySQLLinter"),
    "mariadb": ("mysql", "MySQLLinter"),
    "postgresql": ("squawk", "SquawkLinter"),
}


def linter_for(backend: str) -> Linter | None:
    """The linter for a SQLAlchemy backend name; None where there is none (SQLite)."""
    if backend not in _BY_BACKEND:
        return None
    module, cls = _BY_BACKEND[backend]
    linter: Linter = getattr(importlib.import_module(f"{__name__}.{module}"), cls)()
    return linter
