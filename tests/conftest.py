"""Shared fixtures: real MariaDB, PostgreSQL and SQLite databases, one fresh database a test."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# Airflow reads its home at import time: the tests get their own metadata database.
os.environ["AIRFLOW_HOME"] = os.environ.get(
    "ZENMIGRATE_TEST_AIRFLOW_HOME", str(REPO / "build" / "test-airflow")
)
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(REPO / "example_dags"))
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "False")

import pytest
import sqlalchemy
from sqlalchemy import text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.pool import NullPool

from airflow_provider_zenmigrate.core.utils import MigrationUtils

FIXTURES = Path(__file__).resolve().parent / "fixtures"
EXAMPLE_MIGRATIONS = REPO / "example_dags" / "migrations"

SERVER_URLS = {
    "mysql": os.environ.get("ZENMIGRATE_TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306"),
    "postgresql": os.environ.get(
        "ZENMIGRATE_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
    ),
}
HOW_TO_START = {
    "mysql": "start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd",
    "postgresql": "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start",
}
DIALECTS = ["sqlite", "mysql", "postgresql"]


def server_url(dialect: str) -> URL:
    return make_url(SERVER_URLS[dialect])


def _check_server(dialect: str) -> None:
    engine = sqlalchemy.create_engine(server_url(dialect), poolclass=NullPool)
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    except Exception as exc:
        pytest.fail(
            f"{dialect} server at {server_url(dialect).render_as_string()} is not answering "
            f"({exc.__class__.__name__}); start it with: {HOW_TO_START[dialect]} "
            "(or run .ci/services)",
            pytrace=False,
        )
    finally:
        engine.dispose()


_checked: set[str] = set()


def unique_name(prefix: str = "zmt") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def database_url(dialect: str, tmp_path: Path, name: str | None = None) -> URL:
    """URL of a new database (not yet created) on ``dialect``."""
    name = name or unique_name()
    if dialect == "sqlite":
        return URL.create("sqlite", database=str(tmp_path / f"{name}.db"))
    if dialect not in _checked:
        _check_server(dialect)
        _checked.add(dialect)
    return server_url(dialect)._replace(database=name)


@pytest.fixture(params=DIALECTS)
def dialect(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def db_url(dialect: str, tmp_path: Path) -> Iterator[URL]:
    """A freshly created, uniquely named database, dropped after the test."""
    url = database_url(dialect, tmp_path)
    utils = MigrationUtils(url=url, connect_args={}, engine_args={})
    utils.create_database()
    try:
        yield url
    finally:
        utils.drop_database()
        utils.dispose()


@pytest.fixture
def utils(db_url: URL) -> Iterator[MigrationUtils]:
    mu = MigrationUtils(url=db_url, connect_args={}, engine_args={})
    try:
        yield mu
    finally:
        mu.dispose()


# -- a server account with a password, to search logs and errors for leaks ----------------
SECRET = "Sup3r-S3cret-pw!"


@pytest.fixture
def secret_user(dialect: str) -> Iterator[str]:
    """A server account whose password is SECRET, so leaks can be searched for."""
    if dialect == "sqlite":
        pytest.fail("secret_user needs a server dialect")
    user = unique_name("zmuser")
    admin = sqlalchemy.create_engine(server_url(dialect), poolclass=NullPool)
    create, drop = {
        "mysql": (
            f"CREATE USER '{user}'@'%' IDENTIFIED BY '{SECRET}'",
            f"DROP USER '{user}'@'%'",
        ),
        "postgresql": (
            f"CREATE ROLE {user} LOGIN CREATEDB PASSWORD '{SECRET}'",
            f"DROP ROLE {user}",
        ),
    }[dialect]
    with admin.connect() as conn:
        conn.execute(text(create))
        if dialect == "mysql":
            conn.execute(text(f"GRANT ALL ON *.* TO '{user}'@'%'"))
        conn.commit()
    yield user
    with admin.connect() as conn:
        conn.execute(text(drop))
        conn.commit()
    admin.dispose()


# -- the Sakila fixtures -----------------------------------------------------------------------
SAKILA_DIR = Path(
    os.environ.get("ZENMIGRATE_SAKILA_DIR", REPO.parent / "shared" / "fixtures" / "sakila")
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect (loudly) the Sakila tests where the fixtures are absent; never in CI."""
    if SAKILA_DIR.is_dir():
        return
    sakila = [item for item in items if item.get_closest_marker("sakila")]
    if not sakila:
        return
    if os.environ.get("CI"):
        raise pytest.UsageError(
            f"the Sakila fixtures are missing at {SAKILA_DIR}; CI must run those tests "
            "(set ZENMIGRATE_SAKILA_DIR)"
        )
    config.hook.pytest_deselected(items=sakila)
    items[:] = [item for item in items if not item.get_closest_marker("sakila")]
    message = (
        f"{len(sakila)} Sakila tests deselected: no fixtures at {SAKILA_DIR} "
        "(set ZENMIGRATE_SAKILA_DIR to run them)"
    )
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(message, yellow=True)
    else:
        print(message)


def pg_script(url: URL, script: str) -> None:
    """Run a PostgreSQL script of several statements (autocommit, simple query protocol)."""
    import psycopg

    libpq = url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(libpq, autocommit=True) as conn:
        conn.execute(script.encode())


@pytest.fixture
def two_schemas(tmp_path: Path) -> Iterator[URL]:
    """A PostgreSQL database with schemas app (app.t: 1, 2) and scratch (scratch.x: 7)."""
    url = database_url("postgresql", tmp_path)
    utils = MigrationUtils(url=url, connect_args={}, engine_args={})
    utils.create_database()
    pg_script(
        url,
        "CREATE SCHEMA app; CREATE TABLE app.t (id int PRIMARY KEY);"
        " INSERT INTO app.t VALUES (1), (2); CREATE SCHEMA scratch;"
        " CREATE TABLE scratch.x (id int); INSERT INTO scratch.x VALUES (7)",
    )
    try:
        yield url
    finally:
        utils.drop_database()
        utils.dispose()
