"""pymysql connections given no TLS option share one TLS context (issue 27), with no server.

pymysql builds a context for every connection made without TLS options ("PREFERRED" mode:
TLS when the server offers it), reading the system's CA store each time.
:class:`SharedTLSConnection` shares one per process. These tests check that this shared
context matches the one pymysql builds itself, and that every explicit TLS option still goes
through pymysql's own code. The real server is in
tests/integration/test_mysql_shared_tls.py.
"""

from __future__ import annotations

import ssl
from typing import Any

import pymysql.connections
import pytest

from airflow_provider_zenmigrate.core.dialects.mysql import pymysql_internals as internals
from airflow_provider_zenmigrate.core.dialects.mysql.pymysql_internals import (
    PREFERRED_TLS,
    SharedTLSConnection,
)

CA_FILE = "/etc/ssl/certs/ca-certificates.crt"


def offline(cls: Any = SharedTLSConnection, **kwargs: Any) -> Any:
    """A connection object that never connected (no server needed)."""
    return cls(host="127.0.0.1", user="nobody", defer_connect=True, **kwargs)


def settings(ctx: ssl.SSLContext) -> tuple[Any, ...]:
    """What decides how a TLS context connects and what it checks."""
    return (
        ctx.protocol,
        ctx.verify_mode,
        ctx.check_hostname,
        ctx.options,
        ctx.verify_flags,
        ctx.minimum_version,
        ctx.maximum_version,
    )


def test_pymysql_still_builds_a_context_per_connection_in_preferred_mode() -> None:
    """What we work around: if pymysql stops doing this, the subclass can go."""
    first, second = offline(pymysql.connections.Connection), offline(pymysql.connections.Connection)
    assert first.ssl is True and first._ssl_required is False  # PREFERRED mode
    assert isinstance(first.ctx, ssl.SSLContext)
    assert first.ctx is not second.ctx


def test_connections_without_tls_options_share_one_context_equal_to_pymysqls() -> None:
    first, second = offline(), offline()
    # Nothing built yet: a server without TLS never makes us read the CA store.
    assert first.__dict__["_zenmigrate_ctx"] is PREFERRED_TLS
    assert (first.ssl, first._ssl_required) == (True, False)  # still PREFERRED mode
    assert isinstance(first.ctx, ssl.SSLContext)
    assert first.ctx is second.ctx is offline().ctx
    assert settings(first.ctx) == settings(offline(pymysql.connections.Connection).ctx)


@pytest.mark.parametrize(
    "options",
    [
        {"ssl_ca": CA_FILE},
        {"ssl": {"ca": CA_FILE}},
        {"ssl_verify_cert": True},
        {"ssl": {"check_hostname": False}},
    ],
    ids=["ssl_ca", "ssl-dict", "ssl_verify_cert", "ssl-dict-no-ca"],
)
def test_explicit_tls_options_build_their_own_context_as_before(options: dict[str, Any]) -> None:
    ours = offline(**options)
    theirs = offline(pymysql.connections.Connection, **options)
    assert ours._ssl_required is True and theirs._ssl_required is True  # REQUIRED, as before
    assert isinstance(ours.ctx, ssl.SSLContext)
    assert ours.ctx is not offline().ctx  # not the shared one
    assert ours.ctx is not offline(**options).ctx  # a new one each time, as pymysql does
    assert settings(ours.ctx) == settings(theirs.ctx)


def test_a_given_context_is_used_as_it_is() -> None:
    mine = ssl.create_default_context(cafile=CA_FILE)
    assert offline(ssl=mine).ctx is mine


def test_tls_disabled_has_no_context_as_before() -> None:
    ours = offline(ssl_disabled=True)
    theirs = offline(pymysql.connections.Connection, ssl_disabled=True)
    assert ours.ssl is False and theirs.ssl is False
    assert not hasattr(theirs, "ctx")
    assert not hasattr(ours, "ctx")


def test_the_internals_it_overrides_are_listed_and_exist() -> None:
    assert "_create_ssl_ctx" in internals.CONNECTION_METHODS
    assert callable(getattr(pymysql.connections.Connection, "_create_ssl_ctx", None))
    assert {"ctx", "_secure"} <= set(internals.CONNECTION_ATTRIBUTES)
