"""The restore's MariaDB session sends a dump's CREATE TABLE without waiting for the server
(core/dialects/mysql/session.py, ServerSession.send_dump): the client goes on while the
server runs it, its answer is read before anything else uses the connection, and its error
names the record it came from. The writer's second creating session has the restore's
settings, and is done without where the server has no connection to spare. On the real
MariaDB.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pymysql.err
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from airflow_provider_zenmigrate.core.dialects.mysql.session import ServerSession, server_session
from airflow_provider_zenmigrate.core.dialects.mysql.writer import _second_creator
from tests.support.servers import server_url

#: How long the server sleeps in the statement sent ahead.
SLEEP = 0.5


@pytest.fixture
def session() -> Iterator[ServerSession]:
    engine = create_engine(server_url("mysql"))
    try:
        with server_session(engine) as opened:
            yield opened
    finally:
        engine.dispose()


def test_a_statement_sent_ahead_returns_at_once_and_is_answered_before_the_next_use(
    session: ServerSession,
) -> None:
    started = time.monotonic()
    session.send_dump(f"DO SLEEP({SLEEP})", 3, "table record of 't'")
    sent = time.monotonic() - started

    assert session.scalar("SELECT 41 + 1") == 42
    answered = time.monotonic() - started

    assert sent < SLEEP / 2, f"send_dump waited {sent:.2f} s for the server"
    assert answered >= SLEEP * 0.9, "the next query ran before the first was answered"


def test_the_error_of_a_statement_sent_ahead_names_its_record_and_the_session_goes_on(
    session: ServerSession,
) -> None:
    session.send_dump("CREATE TABLE zm_no_such_database.t (a INT)", 9, "table record of 't'")

    with pytest.raises(pymysql.err.MySQLError) as failed:
        session.query("SELECT 1")  # the answer is read first: its error, not this query's

    assert failed.value.args[0] == 1049  # unknown database
    assert "line 9: while restoring the table record of 't' of the dump" in (
        getattr(failed.value, "__notes__", [])
    )
    assert session.scalar("SELECT 7") == 7
    with session.dbapi.cursor() as cur:  # the connection itself is free again
        cur.execute("SELECT 8")
        assert cur.fetchone() == (8,)


SETTINGS = ["SET SESSION time_zone = '+00:00'", "SET SESSION FOREIGN_KEY_CHECKS = 0"]


def test_the_second_creating_session_has_the_settings_and_gives_way_when_none_is_left() -> None:
    admin = create_engine(server_url("mysql"), poolclass=NullPool)
    user = f"zmcreator_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(
            text(f"CREATE USER '{user}'@'%' IDENTIFIED BY 'pw' WITH MAX_USER_CONNECTIONS 1")
        )
    engine = create_engine(
        server_url("mysql")._replace(username=user, password="pw"), poolclass=NullPool
    )
    try:
        creator = _second_creator(engine, SETTINGS)
        assert creator is not None
        try:
            assert creator.query("SELECT @@session.time_zone, @@session.foreign_key_checks") == [
                ("+00:00", 0)
            ]
            # The account's one connection is taken: the restore creates on one session.
            assert _second_creator(engine, SETTINGS) is None
        finally:
            creator.close()
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(text(f"DROP USER IF EXISTS '{user}'@'%'"))
        admin.dispose()
