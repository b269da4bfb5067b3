"""Operators: parse arguments, call the core, report to Airflow."""

from .backup import BackupToDatabaseOperator, BackupToStorageOperator, PruneBackupsOperator
from .migrate import DowngradeOperator, PendingMigrationsOperator, UpgradeOperator
from .rehearse import RehearseMigrationOperator
from .restore import RestoreOperator

__all__ = [
    "BackupToDatabaseOperator",
    "BackupToStorageOperator",
    "DowngradeOperator",
    "PendingMigrationsOperator",
    "PruneBackupsOperator",
    "RehearseMigrationOperator",
    "RestoreOperator",
    "UpgradeOperator",
]
