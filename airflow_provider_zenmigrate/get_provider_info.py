"""Provider metadata Airflow reads through the ``apache_airflow_provider`` entry point."""

from __future__ import annotations

from typing import Any

from . import __version__

_NULLABLE_STRING = {"type": ["string", "null"]}


def get_provider_info() -> dict[str, Any]:
    # package-name must equal the normalised distribution name, or Airflow refuses it.
    return {
        "package-name": "airflow-provider-zenmigrate",
        "name": "ZenMigrate",
        "description": "Back up, migrate (Alembic) and restore databases from DAGs.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "ZenMigrate",
                "external-doc-url": "https://pypi.org/project/airflow-provider-zenmigrate/",
                "tags": ["software"],
            }
        ],
        "operators": [
            {
                "integration-name": "ZenMigrate",
                "python-modules": [
                    "airflow_provider_zenmigrate.operators.backup",
                    "airflow_provider_zenmigrate.operators.migrate",
                    "airflow_provider_zenmigrate.operators.rehearse",
                    "airflow_provider_zenmigrate.operators.restore",
                ],
            }
        ],
        "hooks": [
            {
                "integration-name": "ZenMigrate",
                "python-modules": ["airflow_provider_zenmigrate.hooks.zenmigrate"],
            }
        ],
        "connection-types": [
            {
                "hook-class-name": "airflow_provider_zenmigrate.hooks.zenmigrate.ZenMigrateHook",
                "hook-name": "ZenMigrate database",
                "connection-type": "zenmigrate",
                "conn-fields": {
                    "driver": {
                        "label": "SQLAlchemy driver",
                        "description": "Which database this connection points at",
                        "schema": {
                            "type": ["string", "null"],
                            "enum": ["mysql+pymysql", "postgresql+psycopg", "sqlite"],
                            "default": "postgresql+psycopg",
                        },
                    },
                    "charset": {"label": "Charset (MySQL)", "schema": _NULLABLE_STRING},
                    "sslmode": {"label": "sslmode (PostgreSQL)", "schema": _NULLABLE_STRING},
                    "sslrootcert": {"label": "CA file (PostgreSQL)", "schema": _NULLABLE_STRING},
                    "sslcert": {"label": "Certificate (PostgreSQL)", "schema": _NULLABLE_STRING},
                    "sslkey": {"label": "Key file (PostgreSQL)", "schema": _NULLABLE_STRING},
                    "version_table": {
                        "label": "Alembic version table",
                        "schema": {"type": ["string", "null"], "default": "alembic_version"},
                    },
                },
                "ui-field-behaviour": {
                    "hidden-fields": [],
                    "relabeling": {"schema": "Database"},
                    "placeholders": {
                        "host": "db.example.com (SQLite: the database file path)",
                        "extra": '{"ssl": {"ca": "/path/ca.pem"}, "engine_args": {}}',
                    },
                },
            }
        ],
        # The "Backups" view; also the airflow.plugins entry point (pyproject.toml), which
        # loads it when provider discovery is lazy (Airflow's default).
        "plugins": [
            {
                "name": "zenmigrate",
                "plugin-class": "airflow_provider_zenmigrate.plugins.plugin.ZenMigratePlugin",
            }
        ],
        "extra-links": [
            "airflow_provider_zenmigrate.links.BackupLink",
            "airflow_provider_zenmigrate.links.RehearsalReportLink",
        ],
    }
