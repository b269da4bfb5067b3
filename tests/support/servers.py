"""The database servers the integration tiers use, and fresh database names on them.

Nothing here connects at import: a server is checked the first time a test asks for a
database on it (:func:`database_url`), so tiers that need none (tests/unit) run without one.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy
from sqlalchemy.engine import URL, make_url
from sqlalchemy.pool import NullPool

from airflow_provider_zenmigrate.core.utils import MigrationUtils

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
#: The password of test accounts, searched for in logs and errors to find leaks.
SECRET = "Sup3r-S3cret-pw!"


def server_url(dialect: str) -> URL:
    return make_url(SERVER_URLS[dialect])


def url_text(url: URL) -> str:
    """The URL as a command line or a child process takes it, password included."""
    return url.render_as_string(hide_password=False)


def check_server(dialect: str) -> None:
    """Fail the test (never skip it) with the command that starts a server not answering."""
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
        check_server(dialect)
        _checked.add(dialect)
    return server_url(dialect)._replace(database=name)


def pg_script(url: URL, script: str) -> None:
    """Run a PostgreSQL script of several statements (autocommit, simple query protocol)."""
    import psycopg

    libpq = url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(libpq, autocommit=True) as conn:
        conn.execute(script.encode())


@contextmanager
def created_databases(
    dialect: str, tmp_path: Path, count: int, prefix: str = "zmt"
) -> Iterator[list[MigrationUtils]]:
    """``count`` new, empty databases on ``dialect``, dropped afterwards."""
    made: list[MigrationUtils] = []
    try:
        for _ in range(count):
            url = database_url(dialect, tmp_path, unique_name(prefix))
            made.append(MigrationUtils(url=url, connect_args={}, engine_args={}))
            made[-1].create_database()
        yield made
    finally:
        for utils in made:
            utils.drop_database()
            utils.dispose()
