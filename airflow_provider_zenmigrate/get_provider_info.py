"""Provider metadata Airflow reads through the ``apache_airflow_provider`` entry point."""

from __future__ import annotations

from typing import Any

from . import __version__


def get_provider_info() -> dict[str, Any]:
    # package-name must equal the normalised distribution name, or Airflow refuses it.
    return {
        "package-name": "airflow-provider-zenmigrate",
        "name": "ZenMigrate",
        "description": "Back up, migrate (Alembic) and restore databases from DAGs.",
        "versions": [__version__],
    }
