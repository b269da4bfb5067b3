"""Shared fixtures: real MariaDB, PostgreSQL and SQLite databases, one fresh database a test.

Helpers that tests import (paths, server URLs, database names) live in tests/support/; only
fixtures and hooks are here. No fixture reaches a server unless a test asks for it, so
tests/unit runs without one.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from tests.support.paths import REPO, SAKILA_DIR

# Airflow reads its home at import time: the tests get their own metadata database, one per
# pytest-xdist worker (tests/airflow/conftest.py recreates it at the start of a session).
os.environ["AIRFLOW_HOME"] = os.environ.get(
    "ZENMIGRATE_TEST_AIRFLOW_HOME",
    str(REPO / "build" / f"test-airflow{os.environ.get('PYTEST_XDIST_WORKER', '')}"),
)
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(REPO / "example_dags"))
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "False")

import pytest
import sqlalchemy
from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.pool import NullPool

from airflow_provider_zenmigrate.core.utils import MigrationUtils
from tests.support.servers import DIALECTS, SECRET, database_url, pg_script, server_url, unique_name


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
