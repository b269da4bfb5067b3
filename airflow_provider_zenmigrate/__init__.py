"""Back up, migrate with Alembic, and restore relational databases from Airflow.

The public Python API, importable from the package root::

    from airflow_provider_zenmigrate import MigrationUtils, Alembic, list_backups

Importing the package stays cheap because Airflow imports it to discover the provider and
the ``zenmigrate`` command imports it at start-up: the error types (a module with no
imports) load at once, the rest (SQLAlchemy, Alembic, pydantic) on first use through the
module ``__getattr__`` below (PEP 562). Type checkers read the ``TYPE_CHECKING`` imports.
"""

from __future__ import annotations

import os
import sys
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


#: The distribution's name as its ``.dist-info`` / ``.egg-info`` folder spells it.
_DIST = "airflow_provider_zenmigrate"


def _metadata_folder() -> str | None:
    """This distribution's metadata folder in the first ``sys.path`` folder holding one,
    matched by name as :mod:`importlib.metadata` matches it."""
    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        for name in names:
            stem, _, suffix = name.lower().rpartition(".")
            if suffix in ("dist-info", "egg-info") and (
                stem.partition("-")[0].replace(".", "_") == _DIST
            ):
                return os.path.join(entry or ".", name)
    return None


def _metadata_version(folder: str) -> str | None:
    """The ``Version:`` header of a metadata folder's ``METADATA`` (or ``PKG-INFO``)."""
    for name in ("METADATA", "PKG-INFO"):
        try:
            with open(os.path.join(folder, name), encoding="utf-8") as metadata:
                for line in metadata:
                    if line.startswith("Version:"):
                        return line.partition(":")[2].strip() or None
                    if not line.strip():
                        break  # the headers end at the first blank line
        except OSError:
            continue
    return None


def _installed_version() -> str:
    """The installed version, as ``importlib.metadata.version`` finds it.

    ``zenmigrate --version`` and every backup (its header names the tool's version) need
    it, and importing :mod:`importlib.metadata` (email, zipfile, csv...) costs ~30 ms, a
    fifth of the CLI's start-up, where reading one small file costs well under 1 ms.
    Whatever this plain scan does not find (a zip on ``sys.path``, metadata without a
    version) goes to :mod:`importlib.metadata` as before.
    """
    folder = _metadata_folder()
    found = _metadata_version(folder) if folder is not None else None
    if found is not None:
        return found
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("airflow-provider-zenmigrate")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "0.0.0"


def __getattr__(name: str) -> Any:
    """Import a public name on first use, then keep it as an ordinary module attribute."""
    if name == "__version__":
        value: Any = _installed_version()
    elif name in _LAZY_MODULES:
        value = getattr(import_module(_LAZY_MODULES[name], __name__), name)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
