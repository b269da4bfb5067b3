"""Turn the fields of an Airflow database connection into what SQLAlchemy needs.

Kept free of Airflow imports so the mapping is one plain function that tests (and the
command line) can call with any object that has the connection's attributes.

Extras understood (all optional):

- ``driver``: SQLAlchemy drivername; required for the ``zenmigrate`` type
  (``mysql+pymysql``, ``postgresql+psycopg`` or ``sqlite``), an override for the others.
- ``charset`` (MySQL, default ``utf8mb4``).
- ``ssl`` (MySQL): ``{"ca": path, "cert": path, "key": path, "verify": bool}``.
- ``sslmode``, ``sslrootcert``, ``sslcert``, ``sslkey`` (PostgreSQL).
- ``connect_args`` and ``engine_args``: passed to ``create_engine`` as they are.
- ``version_table``: the Alembic version table (default ``alembic_version``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy.engine import URL

DEFAULT_DRIVERS = {
    "mysql": "mysql+pymysql",
    "mariadb": "mysql+pymysql",
    "postgres": "postgresql+psycopg",
    "postgresql": "postgresql+psycopg",
    "sqlite": "sqlite",
}
_PG_SSL_KEYS = ("sslmode", "sslrootcert", "sslcert", "sslkey", "sslpassword")


class ConnectionFields(Protocol):
    """The attributes of an Airflow ``Connection`` read here (any object with them will do)."""

    conn_type: str | None
    host: str | None
    port: int | None
    login: str | None
    password: str | None
    schema: str | None

    @property
    def extra_dejson(self) -> dict[str, Any]: ...


@dataclass
class DatabaseSettings:
    """What ``MigrationUtils`` and ``Alembic`` need from a database connection."""

    url: URL
    connect_args: dict[str, Any] = field(default_factory=dict)
    engine_args: dict[str, Any] = field(default_factory=dict)
    version_table: str = "alembic_version"


def _mapping(extra: dict[str, Any], key: str) -> dict[str, Any]:
    value = extra.get(key) or {}
    if isinstance(value, str):
        value = json.loads(value)
    if not isinstance(value, dict):
        raise ValueError(f"connection extra {key!r} must be a JSON object")
    return dict(value)


def _truthy(value: Any) -> bool:
    return str(value).strip().lower() in ("1", "true", "yes", "on")


def database_settings(conn: ConnectionFields) -> DatabaseSettings:
    """The URL (built with ``URL.create``), connect_args and engine_args of a connection."""
    extra = dict(conn.extra_dejson or {})
    conn_type = (conn.conn_type or "").lower()
    driver = extra.get("driver") or DEFAULT_DRIVERS.get(conn_type)
    if not driver:
        raise ValueError(
            f"connection type {conn.conn_type!r} needs a 'driver' extra "
            f"(one of {sorted(set(DEFAULT_DRIVERS.values()))})"
        )
    connect_args = _mapping(extra, "connect_args")
    engine_args = _mapping(extra, "engine_args")
    backend = driver.split("+", 1)[0]
    query: dict[str, str] = {}

    if backend == "sqlite":
        # Airflow's sqlite connections keep the file path in host.
        path = conn.host or conn.schema
        if not path:
            raise ValueError("an sqlite connection needs the database file path in host")
        url = URL.create(driver, database=path)
    else:
        if backend == "mysql":
            query["charset"] = str(extra.get("charset") or "utf8mb4")
            ssl = _mapping(extra, "ssl")
            for key, arg in (("ca", "ssl_ca"), ("cert", "ssl_cert"), ("key", "ssl_key")):
                if ssl.get(key):
                    connect_args[arg] = ssl[key]
            if "verify" in ssl:
                connect_args["ssl_verify_cert"] = _truthy(ssl["verify"])
                connect_args["ssl_verify_identity"] = _truthy(ssl["verify"])
        elif backend == "postgresql":
            for key in _PG_SSL_KEYS:
                if extra.get(key):
                    connect_args[key] = str(extra[key])
        url = URL.create(
            driver,
            username=conn.login or None,
            password=conn.password or None,
            host=conn.host or None,
            port=int(conn.port) if conn.port else None,
            database=conn.schema or None,
            query=query,
        )
    return DatabaseSettings(
        url=url,
        connect_args=connect_args,
        engine_args=engine_args,
        version_table=str(extra.get("version_table") or "alembic_version"),
    )
