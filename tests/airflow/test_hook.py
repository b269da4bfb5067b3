"""ZenMigrateHook: connections of every supported type become working core objects."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import URL, make_url

from airflow_provider_zenmigrate.core.catalog import list_backups
from airflow_provider_zenmigrate.core.utils import MigrationUtils
from airflow_provider_zenmigrate.hooks.database_settings import database_settings
from airflow_provider_zenmigrate.hooks.storage_params import transport_params
from airflow_provider_zenmigrate.hooks.zenmigrate import ConnectionNotDefined, ZenMigrateHook
from tests.support.object_stores import S3_ACCESS_KEY, S3_SECRET_KEY, make_store

pytest_plugins = ["tests.support.object_stores"]


class Fields:
    """The attributes of an Airflow Connection the mapping reads."""

    def __init__(self, conn_type: str, extra: dict[str, Any] | None = None, **kw: Any) -> None:
        self.conn_type: str | None = conn_type
        self.host = kw.get("host")
        self.port = kw.get("port")
        self.login = kw.get("login")
        self.password = kw.get("password")
        self.schema = kw.get("schema")
        self.extra_dejson = extra or {}


def test_mysql_connection_with_ssl_and_charset() -> None:
    settings = database_settings(
        Fields(
            "mysql",
            {
                "ssl": {"ca": "/ca.pem", "cert": "/c.pem", "key": "/k.pem", "verify": "true"},
                "charset": "latin1",
                "engine_args": {"pool_size": 2},
                "version_table": "v",
            },
            host="db",
            port=3307,
            login="app",
            password="p@ss:/w",
            schema="shop",
        )
    )
    assert settings.url.drivername == "mysql+pymysql"
    assert settings.url.password == "p@ss:/w"  # no string concatenation: nothing to escape
    assert settings.url.port == 3307 and settings.url.database == "shop"
    assert settings.url.query == {"charset": "latin1"}
    assert settings.connect_args == {
        "ssl_ca": "/ca.pem",
        "ssl_cert": "/c.pem",
        "ssl_key": "/k.pem",
        "ssl_verify_cert": True,
        "ssl_verify_identity": True,
    }
    assert settings.engine_args == {"pool_size": 2}
    assert settings.version_table == "v"
    assert "p@ss" not in repr(settings.url)


def test_postgres_connection_with_sslmode() -> None:
    settings = database_settings(
        Fields(
            "postgres",
            {
                "sslmode": "verify-full",
                "sslrootcert": "/root.crt",
                "connect_args": json.dumps({"application_name": "zm"}),
            },
            host="pg",
            login="u",
            schema="app",
        )
    )
    assert settings.url.drivername == "postgresql+psycopg"
    assert settings.connect_args == {
        "sslmode": "verify-full",
        "sslrootcert": "/root.crt",
        "application_name": "zm",
    }


def test_sqlite_and_zenmigrate_types(tmp_path: Path) -> None:
    path = str(tmp_path / "x.db")
    assert database_settings(Fields("sqlite", host=path)).url == URL.create("sqlite", database=path)
    chosen = database_settings(Fields("zenmigrate", {"driver": "sqlite"}, host=path))
    assert chosen.url.drivername == "sqlite"
    with pytest.raises(ValueError, match="needs a 'driver' extra"):
        database_settings(Fields("zenmigrate", host=path))


def _env_connection(monkeypatch: pytest.MonkeyPatch, conn_id: str, value: dict[str, Any]) -> None:
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(value))


def test_hook_builds_working_utils_and_tests_the_connection(
    utils: MigrationUtils, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = utils.url
    if url.get_backend_name() == "sqlite":
        conn: dict[str, Any] = {"conn_type": "sqlite", "host": url.database}
    else:
        conn = {
            "conn_type": "mysql" if url.get_backend_name() == "mysql" else "postgres",
            "host": url.host,
            "port": url.port,
            "login": url.username,
            "schema": url.database,
        }
    _env_connection(monkeypatch, "zm_hook", conn)
    hook = ZenMigrateHook(conn_id="zm_hook")
    assert hook.test_connection()[0] is True
    assert hook._utils is None  # the Test button leaves no engine (and no pool) behind
    built = hook.get_migration_utils()
    assert built.url.database == url.database
    assert built.database_exists()
    hook.close()

    _env_connection(
        monkeypatch,
        "zm_broken",
        {
            **conn,
            "schema": "no_such_db_zm",
            "host": conn["host"] if url.get_backend_name() != "sqlite" else "/nonexistent/dir/x.db",
        },
    )
    ok, message = ZenMigrateHook(conn_id="zm_broken").test_connection()
    assert ok is False and message


def test_undefined_connections_say_which_to_create_and_how(
    airflow_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = ZenMigrateHook(conn_id="zm_hook_nowhere")
    with pytest.raises(ConnectionNotDefined) as caught:
        missing.get_migration_utils()
    message = str(caught.value)
    assert "the Airflow connection 'zm_hook_nowhere' (database connection) is not defined" in (
        message
    )
    assert "airflow connections add zm_hook_nowhere --conn-uri 'postgres://" in message
    assert "AIRFLOW_CONN_ZM_HOOK_NOWHERE" in message
    assert missing.test_connection() == (False, f"ConnectionNotDefined: {message}")

    # The database is defined, the storage connection is not.
    _env_connection(
        monkeypatch, "zm_hook_db", {"conn_type": "sqlite", "host": str(tmp_path / "x.db")}
    )
    no_store = ZenMigrateHook(conn_id="zm_hook_db", storage_conn_id="zm_hook_no_store")
    with pytest.raises(ConnectionNotDefined) as caught:
        no_store.get_transport_params()
    message = str(caught.value)
    assert "'zm_hook_no_store' (storage connection) is not defined" in message
    assert "airflow connections add zm_hook_no_store --conn-uri 'aws://" in message
    assert "AIRFLOW_CONN_ZM_HOOK_NO_STORE" in message


@pytest.mark.parametrize("backend", ["s3", "gcs", "azure"])
def test_storage_connections_reach_their_store(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """aws / google_cloud_platform / wasb connections, without their Airflow providers."""
    store = make_store(backend, request, tmp_path)
    if backend == "s3":
        fields = Fields(
            "aws",
            {"endpoint_url": store.client.meta.endpoint_url, "region_name": "us-east-1"},
            login=S3_ACCESS_KEY,
            password=S3_SECRET_KEY,
        )
    elif backend == "gcs":
        fields = Fields(
            "google_cloud_platform",
            {"endpoint_url": store.env["STORAGE_EMULATOR_HOST"], "project": "zenmigrate-test"},
        )
    else:
        fields = Fields("wasb", {"connection_string": store.env["AZURE_STORAGE_CONNECTION_STRING"]})
    params = transport_params(fields)
    source = MigrationUtils(
        url=make_url(f"sqlite:///{tmp_path / 'src.db'}"),
        connect_args={},
        engine_args={},
        transport_params=params,
    )
    source.create_database()
    with source.engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (id INTEGER PRIMARY KEY)")
        conn.exec_driver_sql("INSERT INTO t VALUES (1), (2)")
    result = source.backup_database_to_file(store.uri("b.jsonl.gz"))
    assert result.rows == 2
    assert [b.uri for b in list_backups(store.prefix, transport_params=params)] == [
        store.uri("b.jsonl.gz")
    ]
