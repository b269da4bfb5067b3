"""MigrationUtils administration on real MariaDB, PostgreSQL and SQLite."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import psutil
import pytest
import sqlalchemy
from sqlalchemy import inspect, text
from sqlalchemy.engine import URL
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

from airflow_provider_zenmigrate.core.utils import MigrationUtils
from tests.support.servers import SECRET, database_url, server_url, unique_name

HOSTILE_NAMES = ["a`b", 'x"; DROP DATABASE {victim}; --']


def test_create_exists_drop_round_trip(dialect: str, tmp_path: Path) -> None:
    url = database_url(dialect, tmp_path)
    with MigrationUtils(url=url, connect_args={}, engine_args={}) as mu:
        assert mu.database_exists() is False
        mu.create_database()
        assert mu.database_exists() is True
        mu.create_database()  # idempotent
        with mu.engine.connect() as conn:
            conn.execute(text("CREATE TABLE keep_me (id INTEGER PRIMARY KEY)"))
            conn.commit()
        mu.create_database(drop=True)  # drop=True gives an empty database back
        with mu.engine.connect() as conn:
            assert "keep_me" not in inspect(conn).get_table_names()
        mu.drop_database()
        assert mu.database_exists() is False
        mu.drop_database()  # dropping a missing database is not an error


def test_named_databases_beside_the_configured_one(utils: MigrationUtils) -> None:
    other = unique_name("other")
    assert not utils.database_exists(other)
    utils.create_database(other)
    try:
        assert utils.database_exists(other)
        engine = utils.create_engine(other)
        with engine.connect() as conn:
            conn.execute(text("CREATE TABLE only_in_other (id INTEGER PRIMARY KEY)"))
            conn.commit()
        with utils.engine.connect() as conn:
            assert "only_in_other" not in inspect(conn).get_table_names()
    finally:
        utils.drop_database(other)
    assert not utils.database_exists(other)


def test_engines_are_cached_and_disposed(utils: MigrationUtils) -> None:
    assert utils.engine is utils.engine
    assert utils.master_engine is utils.create_engine(None)
    assert utils.master_engine is not utils.engine
    assert isinstance(utils.master_engine.pool, NullPool)
    first = utils.engine
    utils.dispose()
    assert utils.engine is not first


def _open_server_connections(dialect: str) -> int:
    """Connections this process holds to the server; the server's own count would include
    other tests' sessions (in this pytest worker or another)."""
    url = server_url(dialect)
    port = url.port or {"mysql": 3306, "postgresql": 5432}[dialect]
    return sum(
        1
        for c in psutil.Process().net_connections(kind="tcp")
        if c.raddr and c.raddr.port == port and c.status == psutil.CONN_ESTABLISHED
    )


def _open_files_under(folder: Path) -> int:
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        count += target.startswith(str(folder))
    return count


def test_database_exists_leaks_no_connection(
    dialect: str, utils: MigrationUtils, tmp_path: Path
) -> None:
    def count() -> int:
        if dialect == "sqlite":
            return _open_files_under(tmp_path)
        return _open_server_connections(dialect)

    utils.database_exists()  # warm up imports and dialect initialisation
    before = count()
    for i in range(100):
        assert utils.database_exists()
        assert not utils.database_exists(f"missing_{i}")
    after = count()
    assert after == before, f"{after - before} connections leaked by 200 database_exists calls"
    with utils.engine.connect():  # and the count does see a connection this process holds
        assert count() > after


@pytest.mark.parametrize("template", HOSTILE_NAMES)
def test_hostile_names_are_quoted_not_executed(
    dialect: str, utils: MigrationUtils, template: str
) -> None:
    victim = unique_name("victim")
    utils.create_database(victim)
    name = template.format(victim=victim)
    try:
        utils.create_database(name)
        assert utils.database_exists(name)
        assert utils.database_exists(victim), "the name was executed as SQL"
        utils.drop_database(name)
        assert not utils.database_exists(name)
        assert utils.database_exists(victim), "the name was executed as SQL"
    finally:
        utils.drop_database(name)
        utils.drop_database(victim)


@pytest.mark.parametrize(
    ("name", "message"),
    [("", "non-empty"), ("bad\x00name", "NUL"), ("n" * 300, "longer than")],
)
def test_unusable_names_are_refused(utils: MigrationUtils, name: str, message: str) -> None:
    for call in (utils.create_database, utils.database_exists, utils.drop_database):
        with pytest.raises(ValueError, match=message):
            call(name)


def test_sqlite_names_cannot_leave_the_folder(tmp_path: Path) -> None:
    url = URL.create("sqlite", database=str(tmp_path / "main.db"))
    with MigrationUtils(url=url, connect_args={}, engine_args={}) as mu:
        for name in ["../escape", "/etc/passwd", "sub/dir", ".."]:
            with pytest.raises(ValueError, match="plain file name"):
                mu.create_database(name)
        assert not (tmp_path.parent / "escape.db").exists()
        mu.create_database("sibling")
        assert (tmp_path / "sibling.db").is_file()
        assert (tmp_path / "sibling.db").read_bytes().startswith(b"SQLite format 3\x00")


def test_mysql_missing_database_error_is_recognised(tmp_path: Path) -> None:
    url = database_url("mysql", tmp_path)  # never created
    engine = sqlalchemy.create_engine(url, poolclass=NullPool)
    with pytest.raises(OperationalError) as missing:
        engine.connect()
    assert MigrationUtils.is_mysql_missing_database_error(missing.value)

    unknown_user = server_url("mysql").set(username="no_such_user_zm")
    denied = sqlalchemy.create_engine(unknown_user, poolclass=NullPool)
    with pytest.raises(OperationalError) as other:
        denied.connect()
    assert not MigrationUtils.is_mysql_missing_database_error(other.value)


@pytest.mark.parametrize("dialect", ["mysql", "postgresql"])
def test_password_never_in_errors_or_logs(
    dialect: str, secret_user: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    url = database_url(dialect, tmp_path).set(username=secret_user, password=SECRET)
    with MigrationUtils(url=url, connect_args={}, engine_args={}) as mu:
        assert SECRET not in repr(mu) and SECRET not in mu.safe_url
        mu.create_database()
        assert mu.database_exists()
        mu.drop_database()

    # The database is gone now: connecting fails, and the error must not carry the password.
    with MigrationUtils(url=url, connect_args={}, engine_args={}) as mu:
        with pytest.raises(OperationalError) as failure, mu.engine.connect():
            pass
        assert SECRET not in str(failure.value)
        assert SECRET not in repr(failure.value)
    assert "***" in caplog.text, "the log should show the masked URL"
    assert SECRET not in caplog.text
