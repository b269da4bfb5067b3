"""Comments and grants across a MariaDB restore, checked as the accounts that hold the grants.

Comments are part of each table's DDL and travel in the dump. Grants are server state in the
``mysql`` schema, keyed by database, table, column and routine name; the dump never carries
them (docs/mysql-grants.md). A restore over the same database keeps every grant on what it
restores: table, column and database grants because the swap renames tables and leaves the
grant tables alone, routine grants because the swap gives them again after re-creating the
routines (their DROP revokes them). A restore into a database of another name keeps that
target's own grants and grants nothing that was not granted before.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pymysql
import pymysql.err
import pytest
from sqlalchemy.engine import URL

from airflow_provider_zenmigrate.core.dialects.mysql import MySQLRestoreWriter
from airflow_provider_zenmigrate.core.dialects.mysql import grants as mysql_grants
from airflow_provider_zenmigrate.core.dialects.mysql import swap as mysql_swap
from airflow_provider_zenmigrate.core.dump.model import ObjectSpec
from airflow_provider_zenmigrate.core.utils import MigrationUtils
from tests.support.engine_support import read_lines, restore_side_objects
from tests.support.identity import fingerprint
from tests.support.servers import database_url

PASSWORD = "grants-pw-1"
# Comments with what a quoting or re-encoding step would change: both quotes, backslashes,
# %, comment markers, newline, tab, a control character, accents, a snowman, right-to-left.
# (MariaDB 10.11 keeps comments in utf8mb3: it stores a character beyond U+FFFF as "?".)
AWKWARD = 'it\'s "quoted" \\ back\\\\slash %s %% */ -- # ;\n\ttab \x01 naïve ☃ \u202eltr'
TABLE_COMMENT = AWKWARD + " / " + "ü" * 1900  # 2048 characters is the most a table has
COLUMN_COMMENT = ("é" * 1024)[: 1024 - len(AWKWARD)] + AWKWARD  # 1024 for a column
INDEX_COMMENT = "index: " + AWKWARD

PATHS = ["one block", "statement by statement"]


def sql_literal(value: str) -> str:
    """A string literal as MariaDB reads it in the default sql_mode (backslash escapes)."""
    escaped = value.replace("\\", "\\\\").replace("'", "''").replace("\n", "\\n")
    return "'" + escaped + "'"


def run(url: URL, *statements: str, params: Any = None) -> list[tuple[Any, ...]]:
    """Statements as root on ``url`` (no %-formatting without ``params``)."""
    conn = pymysql.connect(
        host=url.host, port=url.port or 3306, user=url.username, password=url.password or "",
        database=url.database, autocommit=True, charset="utf8mb4",
    )  # fmt: skip
    rows: list[tuple[Any, ...]] = []
    try:
        with conn.cursor() as cur:
            for statement in statements:
                cur.execute(statement, params)
                rows = [tuple(r) for r in cur.fetchall()]
    finally:
        conn.close()
    return rows


def q(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


@dataclass
class Account:
    """A real server account (or a role, host ''), dropped at the end of the test."""

    user: str
    host: str = "%"

    @property
    def name(self) -> str:
        return q(self.user) if self.host == "" else f"{q(self.user)}@{q(self.host)}"


@pytest.fixture
def server() -> URL:
    """The server as root (database_url fails the test loudly when it does not answer)."""
    return database_url("mysql", Path())._replace(database=None)


@pytest.fixture
def make_db(server: URL) -> Iterator[Callable[[], URL]]:
    made: list[URL] = []

    def make() -> URL:
        url = server._replace(database=f"zmgc_{uuid.uuid4().hex[:10]}")
        run(server, f"CREATE DATABASE {q(str(url.database))}")
        made.append(url)
        return url

    yield make
    for url in made:
        run(server, f"DROP DATABASE IF EXISTS {q(str(url.database))}")


@pytest.fixture
def make_account(server: URL) -> Iterator[Callable[..., Account]]:
    made: list[Account] = []

    def make(role: bool = False, grant_all: str = "") -> Account:
        tag = uuid.uuid4().hex[:8]
        if role:  # a name that needs quoting everywhere: a backtick, a quote, a percent
            account = Account(f"zmgc_r{tag}`'%", host="")
            run(server, f"CREATE ROLE {account.name}")
        else:
            account = Account(f"zmgc_u{tag}")
            run(server, f"CREATE USER {account.name} IDENTIFIED BY '{PASSWORD}'")
        made.append(account)
        if grant_all:
            run(server, f"GRANT {grant_all} ON *.* TO {account.name}")
        return account

    yield make
    for account in made:
        run(server, f"DROP {'ROLE' if account.host == '' else 'USER'} {account.name}")


def privileges(server: URL, database: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every grant row naming ``database`` in the grant tables (not who granted it, nor when)."""
    tables = {
        "db": "SELECT * FROM mysql.db WHERE Db = %s",
        "tables_priv": "SELECT User, Host, Table_name, Table_priv, Column_priv "
        "FROM mysql.tables_priv WHERE Db = %s",
        "columns_priv": "SELECT User, Host, Table_name, Column_name, Column_priv "
        "FROM mysql.columns_priv WHERE Db = %s",
        "procs_priv": "SELECT User, Host, Routine_name, Routine_type, Proc_priv "
        "FROM mysql.procs_priv WHERE Db = %s",
    }
    return {k: sorted(run(server, v, params=(database,)), key=repr) for k, v in tables.items()}


def grants_of(server: URL, account: Account) -> list[str]:
    return sorted(r[0] for r in run(server, f"SHOW GRANTS FOR {account.name}"))


def comments(url: URL) -> list[tuple[Any, ...]]:
    """Table, column and index comments of the database, as the bytes stored."""
    d = (url.database,)
    return (
        run(url, "SELECT TABLE_NAME, HEX(TABLE_COMMENT) FROM information_schema.TABLES "
            "WHERE TABLE_SCHEMA = %s AND TABLE_TYPE = 'BASE TABLE' ORDER BY 1", params=d)
        + run(url, "SELECT TABLE_NAME, COLUMN_NAME, HEX(COLUMN_COMMENT) "
              "FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s ORDER BY 1, 2", params=d)
        + run(url, "SELECT TABLE_NAME, INDEX_NAME, HEX(INDEX_COMMENT) "
              "FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = %s ORDER BY 1, 2",
              params=d)
    )  # fmt: skip


def hexed(value: str) -> str:
    return value.encode().hex().upper()


def build(url: URL, rows: int = 3) -> None:
    """Tables with comments, a view, a procedure and a function."""
    run(
        url,
        "CREATE TABLE t (id INT PRIMARY KEY COMMENT 'the key', a VARCHAR(20), "
        f"b INT COMMENT {sql_literal(COLUMN_COMMENT)}, "
        f"KEY ix_b (b) COMMENT {sql_literal(INDEX_COMMENT)}"
        f") COMMENT {sql_literal(TABLE_COMMENT)}",
        "CREATE TABLE plain (id INT PRIMARY KEY)",
        "CREATE VIEW v AS SELECT id, b FROM t",
        "CREATE PROCEDURE p(OUT n INT) SELECT COUNT(*) INTO n FROM t",
        "CREATE FUNCTION f(x INT) RETURNS INT DETERMINISTIC RETURN x * 2",
    )
    run(url, *(f"INSERT INTO t VALUES ({i}, 'a{i}', {i})" for i in range(1, rows + 1)))


def grant_everything(server: URL, database: str, user: Account, role: Account) -> None:
    """A grant of each kind on ``database`` to ``user`` (and a routine grant to ``role``)."""
    d = q(database)
    run(
        server,
        f"GRANT SELECT ON {d}.t TO {user.name}",
        f"GRANT UPDATE (b) ON {d}.t TO {user.name}",
        f"GRANT SELECT ON {d}.v TO {user.name}",
        f"GRANT CREATE TEMPORARY TABLES ON {d}.* TO {user.name}",
        f"GRANT EXECUTE ON PROCEDURE {d}.p TO {user.name}",
        f"GRANT EXECUTE, ALTER ROUTINE ON FUNCTION {d}.f TO {user.name} WITH GRANT OPTION",
        f"GRANT EXECUTE ON PROCEDURE {d}.p TO {role.name}",
    )


ALLOWED = ["select t", "update t.b", "select v", "temporary table", "call p", "f()"]


def what_account_can_do(url: URL, user: Account) -> dict[str, Any]:
    """Each statement run as ``user`` on its own connection: its result or its error code."""
    statements = {
        "select t": "SELECT id, a, b FROM t ORDER BY id",
        "update t.b": "UPDATE t SET b = b WHERE id = 1",
        "update t.a": "UPDATE t SET a = a WHERE id = 1",
        "select v": "SELECT COUNT(*) FROM v",
        "temporary table": "CREATE TEMPORARY TABLE zm_tmp (x INT)",
        "call p": "CALL p(@n)",
        "f()": "SELECT f(21)",
        "select plain": "SELECT * FROM plain",
        "drop t": "DROP TABLE t",
    }
    out: dict[str, Any] = {}
    conn = pymysql.connect(
        host=url.host, port=url.port or 3306, user=user.user, password=PASSWORD,
        database=url.database, autocommit=True,
    )  # fmt: skip
    try:
        for key, statement in statements.items():
            try:
                with conn.cursor() as cur:
                    cur.execute(statement)
                    out[key] = ("ok", [tuple(r) for r in cur.fetchall()])
            except pymysql.err.MySQLError as exc:
                out[key] = ("denied", exc.args[0])
    finally:
        conn.close()
    return out


def utils_for(url: URL) -> MigrationUtils:
    return MigrationUtils(url=url, connect_args={}, engine_args={})


def restore(url: URL, dump: Path) -> None:
    utils = utils_for(url)
    try:
        utils.restore_database_from_file(str(dump), allow_routines=True)
    finally:
        utils.dispose()


def backup(url: URL, dump: Path) -> None:
    utils = utils_for(url)
    try:
        utils.backup_database_to_file(str(dump))
    finally:
        utils.dispose()


@pytest.fixture(params=PATHS)
def swap_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """MariaDB's swap (one anonymous block) or MySQL's (statement by statement, forced)."""
    if request.param == "statement by statement":
        monkeypatch.setattr(mysql_swap, "runs_swap_block", lambda _version: False)
    return str(request.param)


def test_restore_over_the_same_database_keeps_comments_and_grants(
    server: URL,
    make_db: Callable[[], URL],
    make_account: Callable[..., Account],
    tmp_path: Path,
    swap_path: str,
) -> None:
    url = make_db()
    database = str(url.database)
    build(url)
    user, role = make_account(), make_account(role=True)
    grant_everything(server, database, user, role)
    can = what_account_can_do(url, user)
    assert {k for k, (result, _) in can.items() if result == "ok"} == set(ALLOWED), can
    assert can["update t.a"] == ("denied", 1143)  # column-level: only b
    before_comments, before_privileges = comments(url), privileges(server, database)
    before_grants = grants_of(server, user), grants_of(server, role)
    assert (hexed(TABLE_COMMENT),) in [r[1:] for r in before_comments]
    assert len(before_privileges["procs_priv"]) == 3
    dump = tmp_path / "db.jsonl"
    backup(url, dump)
    assert user.user not in dump.read_text(encoding="utf-8")  # grants are not in the dump
    run(url, "UPDATE t SET b = 100", "DROP VIEW v")  # what the restore must undo

    restore(url, dump)

    assert comments(url) == before_comments
    assert privileges(server, database) == before_privileges
    assert (grants_of(server, user), grants_of(server, role)) == before_grants
    assert what_account_can_do(url, user) == can
    # and again, now that the grants were given by the restore itself
    restore(url, dump)
    assert privileges(server, database) == before_privileges
    assert what_account_can_do(url, user) == can


def test_restore_into_another_database_keeps_its_grants_and_adds_none(
    server: URL,
    make_db: Callable[[], URL],
    make_account: Callable[..., Account],
    tmp_path: Path,
) -> None:
    """The source's grants name the source: they stay there and are not copied. The target's
    grants on the tables and routines the dump also holds apply to the restored ones; its
    grant on a routine the dump does not hold goes with the routine (a DROP revokes it), its
    grant on a table the dump does not hold stays in the grant tables (as after DROP TABLE)."""
    source, target = make_db(), make_db()
    build(source)
    build(target, rows=1)
    run(
        target,
        "CREATE TABLE only_here (id INT)",
        "CREATE PROCEDURE only_here_p() SELECT 1",
        "ALTER TABLE t COMMENT 'the old comment'",
    )
    source_user, target_user = make_account(), make_account()
    source_role, target_role = make_account(role=True), make_account(role=True)
    grant_everything(server, str(source.database), source_user, source_role)
    grant_everything(server, str(target.database), target_user, target_role)
    t = q(str(target.database))
    run(
        server,
        f"GRANT SELECT ON {t}.only_here TO {target_user.name}",
        f"GRANT EXECUTE ON PROCEDURE {t}.only_here_p TO {target_user.name}",
    )
    source_privileges = privileges(server, str(source.database))
    target_privileges = privileges(server, str(target.database))
    accounts = (source_user, target_user, source_role, target_role)
    grants_before = [grants_of(server, a) for a in accounts]
    target_can = what_account_can_do(target, target_user)
    source_can = what_account_can_do(source, source_user)
    assert target_can["select t"] == ("ok", [(1, "a1", 1)])
    dump = tmp_path / "source.jsonl"
    backup(source, dump)

    restore(target, dump)

    assert comments(target) == comments(source)  # they travel with the DDL
    assert privileges(server, str(source.database)) == source_privileges
    expected = dict(target_privileges)
    expected["procs_priv"] = [r for r in expected["procs_priv"] if r[2] != "only_here_p"]
    assert privileges(server, str(target.database)) == expected
    revoked = f"GRANT EXECUTE ON PROCEDURE {t}.`only_here_p` TO {target_user.name}"
    assert grants_of(server, target_user) == sorted(g for g in grants_before[1] if g != revoked)
    assert [grants_of(server, a) for a in accounts[::2]] == grants_before[::2]
    assert grants_of(server, target_role) == grants_before[3]
    # the target's account now reads the restored rows; the source's account still has no
    # access to the target (what it could do in the source it can still do there)
    now = what_account_can_do(target, target_user)
    assert now["select t"] == ("ok", [(i, f"a{i}", i) for i in (1, 2, 3)])
    assert {k: v[0] for k, v in now.items()} == {k: v[0] for k, v in target_can.items()}
    assert what_account_can_do(source, source_user) == source_can
    with pytest.raises(pymysql.err.OperationalError) as refused:
        what_account_can_do(target, source_user)
    assert refused.value.args[0] == 1044  # access denied to the database


def test_a_restoring_account_that_cannot_give_the_routine_grants_changes_nothing(
    server: URL,
    make_db: Callable[[], URL],
    make_account: Callable[..., Account],
    tmp_path: Path,
) -> None:
    """Every privilege but GRANT OPTION: the rehearsal on the staging routines fails before
    the target is touched, and leaves no grant on the staging database behind."""
    url = make_db()
    build(url)
    user, role = make_account(), make_account(role=True)
    grant_everything(server, str(url.database), user, role)
    restorer = make_account(grant_all="ALL PRIVILEGES")
    dump = tmp_path / "db.jsonl"
    backup(url, dump)
    before = fingerprint(url), privileges(server, str(url.database)), comments(url)
    side = restore_side_objects(url, tmp_path)
    as_restorer = url._replace(username=restorer.user, password=PASSWORD)

    with pytest.raises(Exception) as refused:  # noqa: PT011 - the server's error, checked below
        restore(as_restorer, dump)

    assert isinstance(getattr(refused.value, "orig", refused.value), pymysql.err.MySQLError)
    assert "denied" in str(refused.value).lower(), refused.value
    assert (fingerprint(url), privileges(server, str(url.database)), comments(url)) == before
    assert restore_side_objects(url, tmp_path) == side
    staging_grants = run(
        server,
        "SELECT Db FROM mysql.procs_priv WHERE Db LIKE %s",
        params=(f"zmstage\\_%{url.database}",),
    )
    assert staging_grants == []
    assert what_account_can_do(url, user)["call p"][0] == "ok"


def test_a_grantee_gone_before_the_grant_is_not_created_again(
    server: URL,
    make_db: Callable[[], URL],
    make_account: Callable[..., Account],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An account dropped between the read of the grants and the GRANT (simulated): under
    the restore's sql_mode the GRANT would create it without a password; it fails instead
    (on the rehearsal, so the target stays as it was)."""
    url = make_db()
    build(url)
    user, role = make_account(), make_account(role=True)
    grant_everything(server, str(url.database), user, role)
    ghost = f"zmgc_ghost{uuid.uuid4().hex[:8]}"
    real = mysql_grants.read_routine_grants

    def with_ghost(s: Any, database: str) -> list[mysql_grants.RoutineGrant]:
        found = real(s, database)
        return [
            *found,
            mysql_grants.RoutineGrant(ghost, "%", "p", "PROCEDURE", frozenset({"Execute"})),
        ]

    monkeypatch.setattr(mysql_swap, "read_routine_grants", with_ghost)
    dump = tmp_path / "db.jsonl"
    backup(url, dump)
    before = fingerprint(url), privileges(server, str(url.database))
    try:
        with pytest.raises(Exception, match="1133") as refused:  # noqa: PT011
            restore(url, dump)
        assert isinstance(getattr(refused.value, "orig", refused.value), pymysql.err.MySQLError)
    finally:
        created = run(server, "SELECT Host FROM mysql.user WHERE User = %s", params=(ghost,))
        if created:
            run(server, f"DROP USER {q(ghost)}@'%'")
    assert created == []
    assert (fingerprint(url), privileges(server, str(url.database))) == before


# Events are not rehearsed in staging, so this one fails only in the swap, after the
# rename and the re-creation of the routines (ENDS before STARTS).
_FAILS_IN_SWAP = ObjectSpec(
    "event",
    "zm_fails",
    "CREATE EVENT zm_fails ON SCHEDULE EVERY 1 DAY STARTS '2030-01-02 00:00:00' "
    "ENDS '2030-01-01 00:00:00' DO SET @zm_x = 1",
)


def test_a_swap_that_fails_after_the_rename_gives_the_routine_grants_back(
    server: URL,
    make_db: Callable[[], URL],
    make_account: Callable[..., Account],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    swap_path: str,
) -> None:
    """The swap dropped the target's routines (revoking their grants), renamed the tables and
    re-created the routines, then an object fails: the old routines come back with their
    grants."""
    url = make_db()
    build(url)
    user, role = make_account(), make_account(role=True)
    grant_everything(server, str(url.database), user, role)
    dump = tmp_path / "db.jsonl"
    backup(url, dump)
    assert any(r.get("object_type") == "procedure" for r in read_lines(dump))
    run(url, "UPDATE t SET b = 100")
    before = fingerprint(url), privileges(server, str(url.database)), comments(url)
    can = what_account_can_do(url, user)
    real_swap = MySQLRestoreWriter.swap

    def swap(self: MySQLRestoreWriter) -> None:
        self.create_object(_FAILS_IN_SWAP)  # the last object: after both routines
        real_swap(self)

    monkeypatch.setattr(MySQLRestoreWriter, "swap", swap)
    with pytest.raises(Exception, match="ENDS is either invalid or before STARTS"):
        restore(url, dump)
    assert (fingerprint(url), privileges(server, str(url.database)), comments(url)) == before
    assert what_account_can_do(url, user) == can
    monkeypatch.setattr(MySQLRestoreWriter, "swap", real_swap)
    restore(url, dump)
    assert privileges(server, str(url.database)) == before[1]
    assert what_account_can_do(url, user)["select t"][1][0] == (1, "a1", 1)


def test_routine_grant_statements_quote_every_name() -> None:
    def quote(name: str) -> str:
        return q(name).replace("%", "%%")

    grant = mysql_grants.RoutineGrant("u`1", "10.%", "P", "PROCEDURE", frozenset({"Execute"}))
    assert grant.statement(quote, "d`b") == (
        "GRANT EXECUTE ON PROCEDURE `d``b`.`P` TO `u``1`@`10.%%`"
    )
    role = mysql_grants.RoutineGrant("r", "", "f", "FUNCTION", frozenset({"Grant"}))
    assert role.statement(q, "d") == "GRANT GRANT OPTION ON FUNCTION `d`.`f` TO `r`"
    every = frozenset({"Execute", "Alter Routine", "Grant"})
    assert mysql_grants.RoutineGrant("u", "h", "f", "FUNCTION", every).statement(q, "d") == (
        "GRANT EXECUTE, ALTER ROUTINE ON FUNCTION `d`.`f` TO `u`@`h` WITH GRANT OPTION"
    )
    assert mysql_grants.kept_grants([grant, role], [("procedure", "p")]) == [grant]
    mode = "STRICT_ALL_TABLES"
    assert mysql_grants.grant_sql_mode("10.11.19-MariaDB-0+deb12u1", mode).endswith(
        ",NO_AUTO_CREATE_USER"
    )
    assert mysql_grants.grant_sql_mode("5.7.44-log", mode).endswith(",NO_AUTO_CREATE_USER")
    assert mysql_grants.grant_sql_mode("8.0.36", mode) == mode


def test_a_swap_block_killed_by_the_server_gives_the_routine_grants_back(
    server: URL,
    make_db: Callable[[], URL],
    make_account: Callable[..., Account],
    tmp_path: Path,
) -> None:
    """MariaDB: the block dropped the target's routines (revoking their grants) and its
    RENAME TABLE waits for a reader's metadata lock when the server kills the session. The
    restore puts the target back on a new session: the routines with their grants."""
    url = make_db()
    build(url)
    user, role = make_account(), make_account(role=True)
    grant_everything(server, str(url.database), user, role)
    dump = tmp_path / "db.jsonl"
    backup(url, dump)
    before = fingerprint(url), privileges(server, str(url.database))
    can = what_account_can_do(url, user)
    failure: list[BaseException] = []
    reader = pymysql.connect(host=url.host, port=url.port or 3306, user=url.username,
                             database=url.database)  # fmt: skip
    try:
        with reader.cursor() as cur:
            cur.execute("START TRANSACTION")
            cur.execute("SELECT COUNT(*) FROM t")  # holds t's metadata lock
            cur.fetchall()

        def restore_in_thread() -> None:
            try:
                restore(url, dump)
            except BaseException as exc:  # noqa: BLE001 - inspected below
                failure.append(exc)

        worker = threading.Thread(target=restore_in_thread)
        worker.start()
        deadline = time.monotonic() + 60
        waiting: list[tuple[Any, ...]] = []
        while not waiting and time.monotonic() < deadline:
            time.sleep(0.05)
            waiting = run(
                server,
                "SELECT ID FROM information_schema.PROCESSLIST WHERE DB = %s "
                "AND INFO LIKE 'RENAME TABLE %%' AND STATE = 'Waiting for table metadata lock'",
                params=(url.database,),
            )
        assert waiting, "the swap's RENAME TABLE never waited for the lock"
        # the block has dropped the routines, and with them their grants
        assert privileges(server, str(url.database))["procs_priv"] == []
        run(server, f"KILL CONNECTION {waiting[0][0]}")
    finally:
        reader.rollback()
        reader.close()
    worker.join(60)
    assert not worker.is_alive()
    assert len(failure) == 1, failure
    assert (fingerprint(url), privileges(server, str(url.database))) == before
    assert what_account_can_do(url, user) == can


def test_a_dead_restores_staging_routines_lose_their_grants_with_it(
    server: URL,
    make_db: Callable[[], URL],
    make_account: Callable[..., Account],
    tmp_path: Path,
) -> None:
    """A restore killed between its rehearsed GRANTs and the DROP of the staging routines
    (here: its staging database made by hand) leaves grants naming that database; the next
    restore of the target drops the routines before the database (DROP DATABASE alone would
    leave the grants in mysql.procs_priv: measured)."""
    url = make_db()
    build(url)
    user = make_account()
    dump = tmp_path / "db.jsonl"
    backup(url, dump)
    staging = f"zmstage_dead{uuid.uuid4().hex[:6]}_{url.database}"
    run(server, f"CREATE DATABASE {q(staging)}")
    try:
        run(
            server,
            f"CREATE PROCEDURE {q(staging)}.p() SELECT 1",
            f"GRANT EXECUTE ON PROCEDURE {q(staging)}.p TO {user.name}",
        )
        assert privileges(server, staging)["procs_priv"] == [
            (user.user, "%", "p", "PROCEDURE", "Execute")
        ]

        restore(url, dump)

        gone = "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s"
        assert run(server, gone, params=(staging,)) == [(0,)]
        assert privileges(server, staging)["procs_priv"] == []
    finally:
        run(server, f"DROP DATABASE IF EXISTS {q(staging)}")
        left = "SELECT COUNT(*) FROM mysql.procs_priv WHERE Db = %s"
        if run(server, left, params=(staging,)) != [(0,)]:  # the test failed: tidy the server
            run(server, "DELETE FROM mysql.procs_priv WHERE Db = %s", params=(staging,))
            run(server, "FLUSH PRIVILEGES")
