"""PostgreSQL (psycopg 3): administration, backup reader, restore writer, statement checks.

Public: :class:`PostgreSQLOps` (what :func:`..get_dialect` returns), the
:class:`PostgreSQLBackupReader` and :class:`PostgreSQLRestoreWriter` it opens, and
:func:`statement_rules_for` (the checks a restore applies to a dump's statements).

Importing this package imports no driver: the exports load on first use, so that checking a
dump's statements (:mod:`.statements`) does not import psycopg.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .admin import PostgreSQLOps
    from .reader import PostgreSQLBackupReader
    from .statements import statement_rules_for
    from .writer import PostgreSQLRestoreWriter

#: Exported name -> module of this package that defines it.
_EXPORTS = {
    "PostgreSQLOps": "admin",
    "PostgreSQLBackupReader": "reader",
    "PostgreSQLRestoreWriter": "writer",
    "statement_rules_for": "statements",
}


def __getattr__(name: str) -> Any:
    """Load an export's module on first access (PEP 562)."""
    try:
        module = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


__all__ = [
    "PostgreSQLBackupReader",
    "PostgreSQLOps",
    "PostgreSQLRestoreWriter",
    "statement_rules_for",
]
