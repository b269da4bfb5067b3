"""Back up, migrate with Alembic, and restore relational databases from Airflow.

The public Python API, importable from the package root::

    from airflow_provider_zenmigrate import MigrationUtils, Alembic, list_backups

Importing the package stays cheap because Airflow imports it to discover the provider and
the ``zenmigrate`` command imports it at start-up: the error types (a module with no
imports) load at once, the rest (SQLAlchemy, Alembic, pydantic) on first use through the
module ``__getattr__`` below (PEP 562). Type checkers read the ``TYPE_CHECKING`` imports.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from .core.errors import (
    CommandFailed,
    CommandUsageError,
    DumpAuthenticationError,
    DumpError,
    DumpFormatError,
    DumpIntegrityError,
    EncryptionError,
    EncryptionKeyError,
    EncryptionRequiredError,
    KeyServiceError,
    MigrationError,
    MigrationLockTimeout,
    MissingKeyError,
    MissingRequirementError,
    RehearsalError,
    RestoreInProgressError,
    ResumeMismatchError,
    RowsNotRendered,
    SettingsError,
    StorageError,
    StorageNotFoundError,
    UnsafeDumpError,
    UnsupportedDatabaseError,
    WorkerDied,
    WorkerStopped,
    ZenMigrateError,
)

if TYPE_CHECKING:
    from .core.alembic import Alembic
    from .core.catalog import list_backups, prune_backups, verify_backup
    from .core.utils import MigrationUtils

    __version__: str

__all__ = [
    "Alembic",
    "CommandFailed",
    "CommandUsageError",
    "DumpAuthenticationError",
    "DumpError",
    "DumpFormatError",
    "DumpIntegrityError",
    "EncryptionError",
    "EncryptionKeyError",
    "EncryptionRequiredError",
    "KeyServiceError",
    "MigrationError",
    "MigrationLockTimeout",
    "MigrationUtils",
    "MissingKeyError",
    "MissingRequirementError",
    "RehearsalError",
    "RestoreInProgressError",
    "ResumeMismatchError",
    "RowsNotRendered",
    "SettingsError",
    "StorageError",
    "StorageNotFoundError",
    "UnsafeDumpError",
    "UnsupportedDatabaseError",
    "WorkerDied",
    "WorkerStopped",
    "ZenMigrateError",
    "__version__",
    "list_backups",
    "prune_backups",
    "verify_backup",
]

# Each lazily imported name and the module that defines it.
_LAZY_MODULES = {
    "Alembic": ".core.alembic",
    "MigrationUtils": ".core.utils",
    "list_backups": ".core.catalog",
    "prune_backups": ".core.catalog",
    "verify_backup": ".core.catalog",
}


def __getattr__(name: str) -> Any:
    """Import a public name on first use, then keep it as an ordinary module attribute."""
    if name == "__version__":
        from ._version import __version__

        value: Any = __version__
    elif name in _LAZY_MODULES:
        value = getattr(import_module(_LAZY_MODULES[name], __name__), name)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
