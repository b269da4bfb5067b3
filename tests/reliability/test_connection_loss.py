"""The database connection dropped server-side in the middle of a backup or a restore.

A child process runs the backup or restore and stops at a known point (the 8th data record,
just before MariaDB's one-statement swap, before and after the rename of MySQL's swap sent
statement by statement, before the commit); the test finds the child's
one session in MariaDB's processlist or PostgreSQL's pg_stat_activity, kills it with
``KILL CONNECTION`` / ``pg_terminate_backend`` from a second connection, waits until the
server has really dropped it, and lets the child continue. Then: a clear error, nothing
published, the target exactly as it was, no staging leftovers, and a rerun succeeds.

SQLite has no server connection to lose; its counterpart (the storage under the database
failing in the middle of a restore) is ``test_disk_full.py::test_sqlite_restore_onto_a_full_disk``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import URL

from airflow_provider_zenmigrate.core.catalog import list_backups, verify_backup
from airflow_provider_zenmigrate.core.utils import MigrationUtils
from tests.reliability._outage import (
    PausedChild,
    backup_session,
    kill_session,
    paused_child,
    restore_sessions,
    sessions,
    side_objects,
)
from tests.support.engine_support import populate_library
from tests.support.identity import fingerprint
from tests.support.servers import database_url, url_text

# What each driver says when the server dropped its session: the user must be able to read
# from the message alone that the connection was lost, not that the dump or data was bad.
LOST = {
    "mysql": re.compile(r"Lost connection|server has gone away|Connection was killed"),
    "postgresql": re.compile(
        r"terminating connection due to administrator command|server closed the connection"
        r"|connection is (lost|closed)"
    ),
}

# Objects the swap has to carry over; the target's view differs from the source's, so a
# target that ends with the source's tables but its own view (or none) is caught.
OBJECTS = {
    "mysql": [
        "CREATE VIEW book_titles AS SELECT id, title FROM book{where}",
        "CREATE TRIGGER book_trim BEFORE INSERT ON book FOR EACH ROW "
        "SET NEW.title = TRIM(NEW.title)",
    ],
    "postgresql": [
        "CREATE VIEW book_titles AS SELECT id, title FROM book{where}",
        "CREATE FUNCTION book_trim() RETURNS trigger LANGUAGE plpgsql AS "
        "$$BEGIN NEW.title := btrim(NEW.title); RETURN NEW; END$$",
        "CREATE TRIGGER book_trim BEFORE INSERT ON book FOR EACH ROW EXECUTE FUNCTION book_trim()",
    ],
}


@pytest.fixture(params=["mysql", "postgresql"])
def dialect(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _library(mu: MigrationUtils, dialect: str, authors: int, where: str = "") -> None:
    populate_library(mu, authors=authors)
    with mu.engine.begin() as conn:
        for statement in OBJECTS[dialect]:
            conn.exec_driver_sql(statement.format(where=where))
    mu.dispose()  # the paused child must hold the only session of this database


@pytest.fixture
def source(utils: MigrationUtils, dialect: str) -> MigrationUtils:
    _library(utils, dialect, authors=50)
    utils.chunk_rows = 10  # many data records: the pauses fall in the middle of a table
    return utils


@pytest.fixture
def target(dialect: str, tmp_path: Path) -> Iterator[MigrationUtils]:
    """A second database with other contents and other objects, which a restore replaces."""
    mu = MigrationUtils(url=database_url(dialect, tmp_path), connect_args={}, engine_args={})
    mu.create_database()
    _library(mu, dialect, authors=7, where=" WHERE id < 5")
    try:
        yield mu
    finally:
        mu.drop_database()
        mu.dispose()


@pytest.fixture
def dump(source: MigrationUtils, tmp_path: Path) -> str:
    path = str(tmp_path / "source.jsonl")
    source.backup_database_to_file(path)
    source.dispose()
    return path


def _name(url: URL) -> str:
    return str(url.database)


def _assert_lost_connection(dialect: str, outcome: dict[str, object], log: str) -> None:
    assert outcome["event"] == "failed", f"the child did not fail: {outcome}\n{log}"
    bases = outcome["bases"]
    assert isinstance(bases, list)
    assert "ZenMigrateError" in bases or "OperationalError" in bases, outcome
    assert LOST[dialect].search(str(outcome["message"])), outcome


def test_backup_session_killed_mid_stream(
    dialect: str, source: MigrationUtils, tmp_path: Path
) -> None:
    """The backup's snapshot session dies while it streams ``book``: nothing is published."""
    folder = tmp_path / "backups"
    uri = folder / "nightly.jsonl"
    before = fingerprint(source.url)
    database = _name(source.url)
    spec = {
        "action": "backup",
        "url": url_text(source.url),
        "uri": str(uri),
        "pause": "backup-data",
        "nth": 8,  # alembic_version 1 record, author 5, then the 2nd of book's 15
        "chunk_rows": 10,
    }
    with paused_child(spec) as child:
        paused = child.wait_paused()
        assert paused["table"] == "book"
        assert list(folder.glob(".nightly.jsonl.*.partial")), "no backup in progress"
        kill_session(dialect, backup_session(dialect, database))
        child.resume()
        outcome = child.outcome()
        _assert_lost_connection(dialect, outcome, child.log())

    assert sorted(p.name for p in folder.iterdir()) == []  # no dump, no temp, no manifest
    assert list_backups(f"{folder}/") == []
    assert fingerprint(source.url) == before
    assert sessions(dialect, lambda db, _q: db == database) == []

    source.backup_database_to_file(str(uri))  # the rerun
    assert [b.uri for b in list_backups(f"{folder}/")] == [str(uri)]
    assert verify_backup(str(uri), allow_routines=True).ok  # its trigger functions


def test_restore_session_killed_mid_load(
    dialect: str, source: MigrationUtils, target: MigrationUtils, dump: str
) -> None:
    """The restore's session dies while rows go into staging: the target is untouched."""
    before = fingerprint(target.url)
    name = _name(target.url)
    spec = {
        "action": "restore",
        "url": url_text(target.url),
        "uri": dump,
        "pause": "restore-data",
        "nth": 8,
    }
    with paused_child(spec) as child:
        paused = child.wait_paused()
        assert paused["table"] == "book"
        if dialect == "mysql":  # the staging database exists meanwhile (PostgreSQL's
            # staging schema is uncommitted, so invisible from here)
            assert side_objects(dialect, target.url), "no restore in progress"
        _kill_restore_sessions(dialect, name, child)

    _assert_untouched_then_rerun(dialect, before, source, target, dump)


def _kill_restore_sessions(dialect: str, name: str, child: PausedChild) -> None:
    """Drop the paused restore's sessions server-side, let it go on, expect the loss."""
    for session in restore_sessions(dialect, name):
        kill_session(dialect, session)
    child.resume()
    _assert_lost_connection(dialect, child.outcome(), child.log())


def _assert_untouched_then_rerun(
    dialect: str, before: dict[str, Any], source: MigrationUtils, target: MigrationUtils, dump: str
) -> None:
    """The target as it was and no staging left; then the same restore succeeds."""
    assert fingerprint(target.url) == before
    assert side_objects(dialect, target.url) == set()
    target.restore_database_from_file(dump, allow_routines=True)  # the rerun
    assert fingerprint(target.url) == fingerprint(source.url)
    assert side_objects(dialect, target.url) == set()


SWAP_POINTS = [
    # MariaDB: the swap's one statement (drop the target's views and triggers, RENAME TABLE,
    # create the restored ones) is next; the session dies before it reaches the server
    ("mysql", "mysql-before-swap-block"),
    # MySQL's swap, statement by statement (forced on MariaDB): the target's views and
    # triggers were just dropped, the RENAME TABLE is next
    ("mysql", "mysql-before-rename"),
    # MySQL's swap: the tables were exchanged, the restored views and triggers are next
    ("mysql", "mysql-after-rename"),
    # PostgreSQL: public renamed away and created anew (uncommitted), nothing loaded yet
    ("postgresql", 'pg-after:ALTER SCHEMA "public" RENAME'),
    # PostgreSQL, in the swap: the dump's owners and privileges being given
    ("postgresql", 'pg-after:ALTER SCHEMA "public" OWNER'),
    # PostgreSQL: everything done but the COMMIT
    ("postgresql", "pg-after:DROP SCHEMA"),
]


@pytest.mark.parametrize(("dialect", "point"), SWAP_POINTS)
def test_restore_session_killed_in_swap(
    dialect: str, point: str, source: MigrationUtils, target: MigrationUtils, dump: str
) -> None:
    """The session dies inside the swap: the target is exactly the old database."""
    before = fingerprint(target.url)
    name = _name(target.url)
    spec = {"action": "restore", "url": url_text(target.url), "uri": dump, "pause": point}
    with paused_child(spec) as child:
        child.wait_paused()
        _kill_restore_sessions(dialect, name, child)

    _assert_untouched_then_rerun(dialect, before, source, target, dump)
