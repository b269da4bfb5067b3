"""ZenMigrateHook: builds the core's MigrationUtils and Alembic from Airflow connections."""

from __future__ import annotations

import os
from typing import Any

from airflow.sdk import BaseHook, Connection
from airflow.sdk.exceptions import AirflowNotFoundException
from sqlalchemy.engine import Engine

from ..core.alembic import Alembic
from ..core.crypto import Encryption
from ..core.utils import MigrationUtils
from .database_settings import DatabaseSettings, database_settings
from .encryption import encryption_from_connection
from .storage_params import transport_params


class ConnectionNotDefined(AirflowNotFoundException):
    """An Airflow connection the hook needs is not defined; the message says how to make it.

    The one error type outside ``core/errors.py``: it subclasses Airflow's
    ``AirflowNotFoundException`` (so code catching Airflow's own "connection not found"
    still catches it), and ``core/`` never imports Airflow, so it lives with the hook.
    """


# What a connection of each role looks like on the command line (placeholders, no secrets).
_EXAMPLE_URIS = {
    "database": (
        "'postgres://USER:PASSWORD@HOST:5432/DATABASE' (or mysql://USER:PASSWORD@HOST:3306/"
        "DATABASE, or sqlite:////absolute/path/to/file.db)"
    ),
    "encryption": (
        "'generic://:BASE64_KEY@' (a 32-byte key: openssl rand -base64 32), or a generic "
        'connection whose extra is {"kms_key_id": "arn:aws:kms:..."}'
    ),
    "storage": (
        "'aws://ACCESS_KEY_ID:SECRET_KEY@/?region_name=REGION' (or a google_cloud_platform "
        "or wasb connection)"
    ),
}


def not_defined_message(conn_id: str, role: str) -> str:
    """Which connection to create and the two usual ways to create it."""
    return (
        f"the Airflow connection {conn_id!r} ({role} connection) is not defined. Create it "
        f"with `airflow connections add {conn_id} --conn-uri {_EXAMPLE_URIS[role]}`, or set "
        f"the environment variable AIRFLOW_CONN_{conn_id.upper()} to such a URI (or to the "
        "connection as JSON) where the tasks run, or add it in the UI under Admin > "
        "Connections; README, Connections, lists the types and extras"
    )


class ZenMigrateHook(BaseHook):
    """Connection handling for backups, restores and migrations.

    :param conn_id: The database connection (types ``mysql``, ``postgres``, ``sqlite`` or
        ``zenmigrate``).
    :param storage_conn_id: Optional object-store connection (``aws``,
        ``google_cloud_platform`` or ``wasb``) for backup locations; without it the cloud
        SDKs' own environment and default credential chains apply.
    :param encryption_conn_id: Optional connection holding the key of encrypted dumps (a
        base64 32-byte key as its password, or ``{"kms_key_id": ...}`` in its extra; see
        :mod:`.encryption`): backups are then encrypted, encrypted dumps read with it.

    Nothing is read from the connections until a method needs it, so creating the hook
    (for example while a DAG file is parsed) touches no connection.
    """

    conn_name_attr = "conn_id"
    default_conn_name = "zenmigrate_default"
    conn_type = "zenmigrate"
    hook_name = "ZenMigrate database"

    def __init__(
        self,
        conn_id: str = default_conn_name,
        storage_conn_id: str | None = None,
        encryption_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.conn_id = conn_id
        self.storage_conn_id = storage_conn_id
        self.encryption_conn_id = encryption_conn_id
        self._utils: MigrationUtils | None = None

    def _connection(self, conn_id: str, role: str) -> Connection:
        try:
            return self.get_connection(conn_id)
        except AirflowNotFoundException as exc:
            raise ConnectionNotDefined(not_defined_message(conn_id, role)) from exc

    def get_settings(self) -> DatabaseSettings:
        """The database connection as URL, connect_args, engine_args and version table."""
        return database_settings(self._connection(self.conn_id, "database"))

    def get_transport_params(self) -> dict[str, Any] | None:
        """smart_open's transport parameters from the storage connection; None without one
        (the SDKs' own environment and credential chains then apply)."""
        if not self.storage_conn_id:
            return None
        return transport_params(self._connection(self.storage_conn_id, "storage"))

    def get_encryption(self) -> Encryption | None:
        """The keys of the encryption connection; None without one."""
        if not self.encryption_conn_id:
            return None
        connection = self._connection(self.encryption_conn_id, "encryption")
        return encryption_from_connection(connection, self.encryption_conn_id)

    def get_migration_utils(self) -> MigrationUtils:
        """The core object for this connection (created once per hook)."""
        if self._utils is None:
            settings = self.get_settings()
            self._utils = MigrationUtils(
                url=settings.url,
                connect_args=settings.connect_args,
                engine_args=settings.engine_args,
                version_table=settings.version_table,
                transport_params=self.get_transport_params(),
                encryption=self.get_encryption(),
            )
        return self._utils

    def get_sqlalchemy_engine(self) -> Engine:
        """The engine of the connection's database (released by :meth:`close`)."""
        return self.get_migration_utils().engine

    def get_alembic(self, script_location: str | os.PathLike[str], **kwargs: Any) -> Alembic:
        """An ``Alembic`` on this database; ``kwargs`` go to it (``config_file``, ...), and
        the connection's ``version_table`` extra applies unless they name another."""
        utils = self.get_migration_utils()
        kwargs.setdefault("version_table", utils.version_table)
        return Alembic(utils.engine, script_location=script_location, **kwargs)

    def test_connection(self) -> tuple[bool, str]:
        """Used by the UI's Test button: connect and check that the database exists."""
        try:
            utils = self.get_migration_utils()
            with utils.engine.connect() as conn:
                conn.exec_driver_sql("SELECT 1")
            return True, f"Connected to {utils.safe_url}"
        except Exception as exc:  # noqa: BLE001 - the UI shows the message
            return False, f"{type(exc).__name__}: {exc}"
        finally:  # the API server process lives on: leave no pool behind
            self.close()

    def close(self) -> None:
        """Dispose of every engine made so far; the hook stays usable and makes new ones."""
        if self._utils is not None:
            self._utils.dispose()
            self._utils = None
