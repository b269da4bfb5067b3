"""The hook's URL building (hooks/database_settings.py) from real Airflow ``Connection``
objects, written the two ways users write them (a URI or JSON, as in ``AIRFLOW_CONN_<ID>``)
and built in memory: no metadata database, no server."""

from __future__ import annotations

import json
from typing import Any

import pytest
from airflow.sdk import Connection

from airflow_provider_zenmigrate.hooks.database_settings import database_settings


def from_uri(uri: str) -> Connection:
    return Connection.from_uri(uri, conn_id="zm_test")


def from_json(**fields: Any) -> Connection:
    return Connection.from_json(json.dumps(fields), conn_id="zm_test")


#: (the connection, its SQLAlchemy URL with the password shown, connect_args, engine_args)
CASES: list[tuple[str, Connection, str, dict[str, Any], dict[str, Any]]] = [
    (
        "mysql uri, password with reserved characters",
        from_uri("mysql://app:p%40ss%3A%2Fw@db:3307/shop"),
        "mysql+pymysql://app:p%40ss%3A%2Fw@db:3307/shop?charset=utf8mb4",
        {},
        {},
    ),
    (
        "mariadb uri",
        from_uri("mariadb://root@mdb/app"),
        "mysql+pymysql://root@mdb/app?charset=utf8mb4",
        {},
        {},
    ),
    (
        "mysql json with ssl, charset and engine args",
        from_json(
            conn_type="mysql",
            host="db",
            login="app",
            password="pw",
            schema="shop",
            extra={
                "charset": "latin1",
                "ssl": {"ca": "/ca.pem", "cert": "/c.pem", "key": "/k.pem", "verify": "false"},
                "engine_args": {"pool_pre_ping": True},
            },
        ),
        "mysql+pymysql://app:pw@db/shop?charset=latin1",
        {
            "ssl_ca": "/ca.pem",
            "ssl_cert": "/c.pem",
            "ssl_key": "/k.pem",
            "ssl_verify_cert": False,
            "ssl_verify_identity": False,
        },
        {"pool_pre_ping": True},
    ),
    (
        "mysql json, ssl given as a JSON string",
        from_json(conn_type="mysql", host="db", extra={"ssl": json.dumps({"verify": "yes"})}),
        "mysql+pymysql://db?charset=utf8mb4",
        {"ssl_verify_cert": True, "ssl_verify_identity": True},
        {},
    ),
    (
        "postgres uri with ssl in the query",
        from_uri("postgres://u:s3cret@pg:5433/app?sslmode=verify-full&sslrootcert=%2Froot.crt"),
        "postgresql+psycopg://u:s3cret@pg:5433/app",
        {"sslmode": "verify-full", "sslrootcert": "/root.crt"},
        {},
    ),
    (
        "postgresql uri (normalised to postgres)",
        from_uri("postgresql://u@pg/app"),
        "postgresql+psycopg://u@pg/app",
        {},
        {},
    ),
    (
        "postgres json, connect_args as a string beside ssl",
        from_json(
            conn_type="postgres",
            host="pg",
            schema="app",
            extra={"connect_args": '{"application_name": "zm"}', "sslmode": "require"},
        ),
        "postgresql+psycopg://pg/app",
        {"application_name": "zm", "sslmode": "require"},
        {},
    ),
    (
        "sqlite keeps its file path in host",
        from_json(conn_type="sqlite", host="/data/app.db"),
        "sqlite:////data/app.db",
        {},
        {},
    ),
    (
        "zenmigrate type names its driver",
        from_json(
            conn_type="zenmigrate",
            host="pg",
            login="u",
            schema="app",
            extra={"driver": "postgresql+psycopg"},
        ),
        "postgresql+psycopg://u@pg/app",
        {},
        {},
    ),
    (
        "a driver extra overrides the default",
        from_json(conn_type="mysql", host="db", extra={"driver": "mysql+mysqldb"}),
        "mysql+mysqldb://db?charset=utf8mb4",
        {},
        {},
    ),
]


@pytest.mark.parametrize(
    ("conn", "url", "connect_args", "engine_args"),
    [pytest.param(*case[1:], id=case[0]) for case in CASES],
)
def test_connections_become_urls_and_arguments(
    conn: Connection, url: str, connect_args: dict[str, Any], engine_args: dict[str, Any]
) -> None:
    settings = database_settings(conn)
    assert settings.url.render_as_string(hide_password=False) == url
    assert settings.connect_args == connect_args
    assert settings.engine_args == engine_args
    assert settings.version_table == "alembic_version"


def test_the_password_is_kept_exactly_and_hidden_when_shown() -> None:
    settings = database_settings(from_uri("mysql://app:p%40ss%3A%2Fw@db/shop"))
    assert settings.url.password == "p@ss:/w"  # built with URL.create: nothing to unescape
    assert "p@ss" not in repr(settings.url) and "p@ss" not in str(settings.url)


def test_the_version_table_comes_from_the_extra() -> None:
    conn = from_json(conn_type="sqlite", host="/x.db", extra={"version_table": "zm_versions"})
    assert database_settings(conn).version_table == "zm_versions"


@pytest.mark.parametrize(
    ("conn", "words"),
    [
        (from_json(conn_type="zenmigrate", host="db"), "needs a 'driver' extra"),
        (from_json(conn_type="oracle", host="db"), "connection type 'oracle' needs a 'driver'"),
        (from_json(conn_type="sqlite"), "needs the database file path in host"),
        (
            from_json(conn_type="mysql", host="db", extra={"connect_args": "[1, 2]"}),
            "extra 'connect_args' must be a JSON object",
        ),
        (
            from_json(conn_type="postgres", host="db", extra={"engine_args": ["pool_size"]}),
            "extra 'engine_args' must be a JSON object",
        ),
    ],
)
def test_unusable_connections_say_what_is_missing(conn: Connection, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        database_settings(conn)
