"""The Sakila sample database loaded into a test's own database with each server's own
client, one loader per server, so the dialect and rehearsal tests load the same Sakila."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest
from sqlalchemy.engine import URL

from tests.support.paths import SAKILA_DIR
from tests.support.servers import url_text

#: The PostgreSQL scripts, in order: the schema, then its rows.
POSTGRESQL_SCRIPTS = ("postgres-sakila-schema.sql", "postgres-sakila-insert-data-using-copy.sql")


def run_mysql_script(url: URL, script: str) -> None:
    """Run ``script`` in ``url``'s database with the mysql client (it understands DELIMITER,
    which the driver does not)."""
    client = shutil.which("mysql") or shutil.which("mariadb")
    if client is None:
        pytest.fail(
            "the mysql command line client is not installed (apt-get install mariadb-client)"
        )
    args = [client, f"-h{url.host}", f"-P{url.port or 3306}", f"-u{url.username}"]
    args += ["--default-character-set=utf8mb4", "--comments", str(url.database)]
    env = dict(os.environ, MYSQL_PWD=url.password or "")
    done = subprocess.run(args, input=script.encode(), env=env, capture_output=True)
    assert done.returncode == 0, done.stderr.decode()


def mysql_schema_script() -> str:
    """The MySQL Sakila schema script rewritten to load into the current database: it
    creates and selects its own ``sakila`` database otherwise."""
    script = (SAKILA_DIR / "mysql-sakila-schema.sql").read_text(encoding="utf-8")
    script, n = re.subn(
        r"^\s*(DROP\s+SCHEMA\s+IF\s+EXISTS|CREATE\s+SCHEMA|USE)\s+sakila\s*;\s*$",
        "",
        script,
        flags=re.I | re.M,
    )
    assert n == 3
    return re.sub(r"\bsakila\.", "", script)  # actor_info names its tables sakila.*


def load_mysql_sakila(url: URL) -> None:
    """The Sakila schema (tables, views, routines, triggers; no rows) into ``url``'s database."""
    run_mysql_script(url, mysql_schema_script())


def load_postgresql_sakila(url: URL) -> None:
    """The Sakila schema and its rows (partitioned payment and all) into ``url``'s database."""
    libpq = url_text(url.set(drivername="postgresql"))
    for script in POSTGRESQL_SCRIPTS:
        args = ["psql", "-q", "-X", "-v", "ON_ERROR_STOP=1", "-d", libpq]
        done = subprocess.run([*args, "-f", str(SAKILA_DIR / script)], capture_output=True)
        assert done.returncode == 0, done.stderr.decode()


def load_sakila(url: URL) -> None:
    """Sakila into ``url``'s database with the loader of its server."""
    if url.get_backend_name() == "mysql":
        load_mysql_sakila(url)
    else:
        load_postgresql_sakila(url)
