"""MariaDB: engines made by MigrationUtils share one TLS context among pymysql connections
given no TLS option (issue 27), against the real server.

pymysql builds a new context for each such connection ("PREFERRED" mode), reading the
system's CA store every time, even when the server has TLS off. An empty backup opens two
connections. The offline checks of the subclass are in
tests/unit/core/dialects/mysql/test_shared_tls_connection.py.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pymysql
import pytest
from sqlalchemy.exc import OperationalError

from airflow_provider_zenmigrate.core.dialects.mysql.pymysql_internals import (
    PREFERRED_TLS,
    SharedTLSConnection,
)
from airflow_provider_zenmigrate.core.utils import MigrationUtils
from tests.support.servers import database_url, server_url, unique_name

CA_FILE = "/etc/ssl/certs/ca-certificates.crt"
#: pymysql's "SSL is required but the server doesn't support it".
CR_SSL_CONNECTION_ERROR = 2026


@pytest.fixture
def utils(tmp_path: Path) -> Iterator[MigrationUtils]:
    """MigrationUtils on a new, empty database (dropped after the test)."""
    made = MigrationUtils(url=database_url("mysql", tmp_path, unique_name("zmsc")))
    made.create_database()
    try:
        yield made
    finally:
        made.drop_database()
        made.dispose()


def server_offers_tls() -> bool:
    url = server_url("mysql")
    conn = pymysql.connect(host=url.host, port=url.port or 3306, user=url.username or "root")
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW VARIABLES LIKE 'have_ssl'")
            row = cur.fetchone()
        return row is not None and row[1] == "YES"
    finally:
        conn.close()


def raw(utils: MigrationUtils, database: str | None) -> Any:
    """A new DBAPI connection of the engine ``utils`` made for ``database`` (``None``: the
    server-level engine)."""
    record = utils.create_engine(database).raw_connection()
    record.detach()
    return record


def test_two_connections_share_one_context_and_work(utils: MigrationUtils) -> None:
    first, second = raw(utils, utils.url.database), raw(utils, None)  # two engines
    try:
        a, b = first.dbapi_connection, second.dbapi_connection
        assert isinstance(a, SharedTLSConnection) and isinstance(b, SharedTLSConnection)
        assert (a.ssl, a._ssl_required) == (True, False)  # PREFERRED mode, as pymysql's own
        offered = server_offers_tls()
        assert a._secure is offered and b._secure is offered  # TLS exactly when offered
        if not offered:  # the context was never needed: not built for these connections
            assert a.__dict__["_zenmigrate_ctx"] is PREFERRED_TLS
        assert isinstance(a.ctx, ssl.SSLContext)
        assert a.ctx is b.ctx
        found = []
        for conn in (a, b):
            with conn.cursor() as cur:
                cur.execute("SELECT DATABASE()")
                found.append(cur.fetchone())
        assert found == [(utils.url.database,), (None,)]
    finally:
        first.close()
        second.close()


def test_an_empty_backup_works_through_the_shared_context(
    utils: MigrationUtils, tmp_path: Path
) -> None:
    dump = tmp_path / "empty.jsonl"
    result = utils.backup_database_to_file(str(dump))
    assert result.tables == {}
    kinds = [json.loads(line)["kind"] for line in dump.read_text().splitlines()]
    assert kinds == ["header", "trailer"]
    engine = utils.engine
    with engine.connect() as conn:
        assert isinstance(conn.connection.dbapi_connection, SharedTLSConnection)


@pytest.mark.parametrize("where", ["connect_args", "url"])
def test_explicit_tls_options_are_refused_by_a_tls_less_server_as_before(
    tmp_path: Path, where: str
) -> None:
    """``ssl_ca`` asks for TLS (REQUIRED mode): pymysql builds its own context, and a server
    without TLS refuses the connection with the same error as a plain pymysql connection."""
    if server_offers_tls():
        pytest.fail("this check needs the test server with TLS off (have_ssl=DISABLED)")
    url = server_url("mysql")
    if where == "url":
        made = MigrationUtils(url=url.update_query_dict({"ssl_ca": CA_FILE}))
    else:
        made = MigrationUtils(url=url, connect_args={"ssl_ca": CA_FILE})
    try:
        with pytest.raises(OperationalError) as ours:
            made.database_exists("mysql")
    finally:
        made.dispose()
    with pytest.raises(pymysql.err.OperationalError) as theirs:
        pymysql.connect(host=url.host, port=url.port or 3306, user="root", ssl_ca=CA_FILE)
    assert ours.value.orig is not None
    assert ours.value.orig.args == theirs.value.args
    assert theirs.value.args[0] == CR_SSL_CONNECTION_ERROR


def test_tls_disabled_connects_plain_with_no_context(utils: MigrationUtils) -> None:
    made = MigrationUtils(url=utils.url, connect_args={"ssl_disabled": True})
    try:
        record = raw(made, made.url.database)
        try:
            conn = record.dbapi_connection
            assert isinstance(conn, SharedTLSConnection)
            assert conn.ssl is False and conn._secure is False
            assert not hasattr(conn, "ctx")
            with conn.cursor() as cur:
                cur.execute("SELECT 1")
                assert cur.fetchone() == (1,)
        finally:
            record.close()
    finally:
        made.dispose()
