"""Back up, migrate with Alembic, and restore relational databases from Airflow."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("airflow-provider-zenmigrate")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"
