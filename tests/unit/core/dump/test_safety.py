"""The statement checks every restore makes (core/dump/safety.py through each dialect's rules),
with no server: per dialect, statements a dump may hold and hostile ones, each with the exact
decision and, for a refusal, a message that names the object and says why.

The hostile statements hide a second statement, a forbidden call or a reference outside the
restored database where one of the lexings (core/sql_lexer.py) would not see it: in quotes
and comments, behind backslashes under either MySQL sql_mode, in MySQL's executable
comments, in PostgreSQL's nested comments and dollar quotes."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_zenmigrate.core.dialects import sqlite
from airflow_provider_zenmigrate.core.dialects.mysql import statements as mysql
from airflow_provider_zenmigrate.core.dialects.postgresql.statements import PgStatementRules
from airflow_provider_zenmigrate.core.dump.model import ObjectSpec, TableSpec
from airflow_provider_zenmigrate.core.dump.safety import (
    ROUTINE_TYPES,
    check_routine_allowed,
    check_statement,
)
from airflow_provider_zenmigrate.core.errors import UnsafeDumpError

NBE = "/* zenmigrate: sql_mode='NO_BACKSLASH_ESCAPES' */ "
ANSI = "/* zenmigrate: sql_mode='ANSI_QUOTES' */ "
TWO_SCHEMAS = {"schemas": ["public", "side"]}


def check_mysql(object_type: str, name: str, sql: str) -> None:
    if object_type == "table":
        mysql.check_table_statement(TableSpec(name, sql, ()))
    else:
        mysql.check_object_statement(ObjectSpec(object_type, name, sql))


def check_postgresql(
    object_type: str, name: str, sql: str, header: dict[str, Any] | None = None
) -> None:
    rules = PgStatementRules(header)
    options = {"schema": name.split(".")[0]} if header else {}
    if object_type == "table":
        rules.check_table_statement(TableSpec(name.split(".")[-1], sql, (), options=options))
    else:
        rules.check_object_statement(
            ObjectSpec(object_type, name.split(".")[-1], sql, None, options)
        )


def check_sqlite(object_type: str, name: str, sql: str) -> None:
    if object_type == "table":
        sqlite.check_table_statement(TableSpec(name, sql, ()))
    else:
        sqlite.check_object_statement(ObjectSpec(object_type, name, sql))


MYSQL_ACCEPTED = [
    ("table", "t", "CREATE TABLE `t` (\n  `id` int NOT NULL,\n"
     "  `s` varchar(9) DEFAULT 'it\\'s; ok',\n  PRIMARY KEY (`id`)\n"
     ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"),
    ("table", "t", "CREATE TABLE t (a int) PARTITION BY HASH (a) PARTITIONS 2"),
    ("table", "t", "CREATE TABLE t (a int, FOREIGN KEY (a) REFERENCES u (id))"),
    ("view", "v", "CREATE ALGORITHM=UNDEFINED DEFINER=`root`@`localhost` SQL SECURITY DEFINER "
     "VIEW `v` AS select `t`.`id` AS `id` from `t`"),
    ("view", "v", "CREATE DEFINER='app'@'%' SQL SECURITY INVOKER VIEW v AS SELECT 1 AS x"),
    ("trigger", "tr", NBE + "CREATE DEFINER=`root`@`%` TRIGGER `tr` BEFORE INSERT ON `t` "
     "FOR EACH ROW BEGIN SET NEW.s = 'C:\\'; SET NEW.id = 1; END"),
    ("procedure", "p", "CREATE DEFINER=`root`@`localhost` PROCEDURE `p`()\nBEGIN\n"
     "  SELECT COUNT(*) FROM t;\nEND"),
    ("event", "e", "CREATE DEFINER=`root`@`%` EVENT `e` ON SCHEDULE EVERY 1 DAY "
     "DO DELETE FROM t WHERE a < 0"),
    ("index", "ix", "CREATE UNIQUE INDEX ix ON t (a)"),
    ("table", "t", ANSI + 'CREATE TABLE "t" ("a" int)'),
    # Only a leading settings comment is read as one; elsewhere it is a comment.
    ("table", "t", "CREATE TABLE t (a int) /* zenmigrate: sql_mode='x' */"),
]  # fmt: skip

MYSQL_REFUSED = [
    ("table", "t", "CREATE TABLE t (a int); DROP TABLE u", "more than one statement"),
    # Under NO_BACKSLASH_ESCAPES the string ends at the backslash: the rest is code.
    ("table", "t", NBE + "CREATE TABLE t (a varchar(9) DEFAULT 'x\\'); DROP TABLE u; -- ')",
     "more than one statement"),
    # ... and in the default mode the backslash escapes: a standard reading of the string
    # would see a reference the server does not, which is refused all the same.
    ("table", "t", "CREATE TABLE t (a varchar(9) DEFAULT 'x\\', b int REFERENCES o.u (c)) -- '",
     "calls o.u() of another database"),
    # MySQL's "..." string with a backslash: a name elsewhere, so ';' shows there.
    ("table", "t", 'CREATE TABLE t (a varchar(9) DEFAULT "x\\"; ")', "more than one statement"),
    # '#' comments are MySQL's: the quote after one opens nothing.
    ("table", "t", "CREATE TABLE t (a int) # '\n; DROP TABLE u; -- '", "more than one statement"),
    ("table", "t", "CREATE TABLE t (a int) /*!50100 ; DROP TABLE u */", "executable comment"),
    ("table", "t", "CREATE TABLE t (a int) /*M!100100 ; DROP TABLE u */", "executable comment"),
    # An executable comment hidden from the portable lexing behind a '#' comment's quote.
    ("table", "t", "CREATE TABLE t (a int) # '\n/*!50100 ENGINE=FEDERATED "
     "CONNECTION='mysql://h/d/t' */ -- '", "keeps the rows outside the database"),
    ("table", "t", "CREATE TABLE t (a int) # '\n/*!50100 ; DROP TABLE u */ -- '",
     "more than one statement"),
    ("table", "t", "CREATE TABLE t (a int) /*!50100 /*! x */ */", "executable comment"),
    ("table", "t", "CREATE TABLE other.t (a int)", "qualified names are not allowed"),
    ("table", "t", "CREATE TABLE `other`.`t` (a int)", "qualified names are not allowed"),
    ("table", "t", "CREATE TABLE t (a int, FOREIGN KEY (a) REFERENCES other.u (id))",
     "refers to other.… outside the restored database"),
    ("table", "t", "CREATE TABLE t (a int) ENGINE=MERGE UNION=(other.u)",
     "refers to other.u in another database or schema"),
    ("table", "t", "CREATE TABLE t (a int) DATA DIRECTORY='/tmp'", "DATA DIRECTORY"),
    ("table", "t", "CREATE TABLE u (a int)", "statement creates 'u', not 't'"),
    ("table", "t", "CREATE TABLE t\u00a0(a int)", "statement creates 't\\xa0', not 't'"),
    ("table", "t", "CREATE TABLE t AS SELECT * FROM u", "expected the column list"),
    ("table", "t", "CREATE TABLE t LIKE u", "expected the column list"),
    ("table", "t", "CREATE TABLE t PARTITION OF u", "expected the column list"),
    ("table", "t", "CREATE TABLE t (a int DEFAULT (NEXTVAL(\"o.s\")))", "refers to o.s in another"),
    ("table", "t", "/* zenmigrate: sql_mode='ANSI;' */ CREATE TABLE t (a int)", "bad setting"),
    ("table", "t", "DROP TABLE t", "statement is not a CREATE"),
    ("table", "t", "CREATE 'x' TABLE t (a int)", "unexpected \"'x'\" after CREATE"),
    ("view", "v", "CREATE DEFINER=CURRENT_USER() VIEW v AS SELECT 1", "unexpected '(' after"),
    ("view", "v", "CREATE VIEW v AS SELECT * FROM mysql.user",
     "refers to mysql.user in another database or schema"),
    ("view", "v", "CREATE VIEW v AS SELECT a FROM t, other.u",
     "refers to other.u in another database or schema"),
    ("view", "v", "CREATE VIEW v AS SELECT other.f(1)", "calls other.f() of another database"),
    ("view", "v", "CREATE VIEW v AS SELECT LOAD_FILE('/etc/passwd')", "calls LOAD_FILE()"),
    ("trigger", "tr", "CREATE TRIGGER tr BEFORE INSERT ON other.t FOR EACH ROW SET @x = 1",
     "refers to other.… outside the restored database"),
    ("trigger", "tr", "CREATE TRIGGER tr BEFORE INSERT ON t FOR EACH ROW BEGIN "
     "SELECT 1 INTO OUTFILE '/tmp/x'; END", "writes a file on the server"),
    ("procedure", "p", "CREATE PROCEDURE p() BEGIN PREPARE s FROM @q; EXECUTE s; END",
     "runs SQL from a string"),
    ("procedure", "p", "CREATE PROCEDURE p() BEGIN GRANT ALL ON *.* TO x; END",
     "changes privileges"),
    ("event", "e", "CREATE EVENT e ON SCHEDULE EVERY 1 DAY DO SET GLOBAL max_connections = 1",
     "changes the server's settings"),
    ("event", "e", "CREATE EVENT e ON SCHEDULE EVERY 1 DAY DO SET @@global.x = 1",
     "@@global changes the server"),
    ("index", "ix", "CREATE INDEX ix ON other.t (a)", "outside the restored database"),
    ("index", "ix", "CREATE INDEX ix USING BTREE ON t (a)", "expected ON <table>"),
    ("sequence", "s", "CREATE SEQUENCE s", "unknown object type"),
    ("table", "t", "CREATE TABLE t (a varchar(9) DEFAULT 'x)", "unterminated quote or comment"),
]  # fmt: skip


PG_ACCEPTED: list[tuple[str, str, str, dict[str, Any] | None]] = [
    ("view", "v", "CREATE VIEW v AS SELECT 1; ", None),  # trailing semicolons end it
    ("table", "t", "CREATE TABLE t (a text DEFAULT 'C:\\')", None),
    ("table", "t", "CREATE TABLE t (a text DEFAULT E'x\\'; DROP TABLE u; --')", None),
    ("table", "t", "CREATE TABLE t (a int) /* outer /* inner */ still comment */", None),
    ("table", "public.t", "CREATE TABLE public.t (a integer DEFAULT "
     "nextval('side.s'::regclass), b integer REFERENCES side.u (id))", TWO_SCHEMAS),
    ("table", "side.t", "CREATE TABLE side.t PARTITION OF side.p FOR VALUES IN (1)", TWO_SCHEMAS),
    ("view", "public.v", "CREATE VIEW public.v AS SELECT a FROM side.t", TWO_SCHEMAS),
    ("function", "public.f", "CREATE FUNCTION public.f() RETURNS integer LANGUAGE sql "
     "SET search_path = side AS $body$ SELECT 1; $body$", TWO_SCHEMAS),
    ("index", "public.ix", "CREATE UNIQUE INDEX ix ON ONLY public.t USING btree (a)", TWO_SCHEMAS),
    ("constraint", "public.fk", "ALTER TABLE ONLY public.t ADD CONSTRAINT fk "
     "FOREIGN KEY (a) REFERENCES side.u(id)", TWO_SCHEMAS),
]  # fmt: skip

PG_REFUSED: list[tuple[str, str, str, dict[str, Any] | None, str]] = [
    # Comments nest in PostgreSQL: the quote is inside the comment, the ';' outside.
    ("table", "t", "CREATE TABLE t (a int) /* /* */ ' */ ; DROP TABLE u; --'", None,
     "more than one statement"),
    # A '--' comment ends at a carriage return in PostgreSQL.
    ("table", "t", "CREATE TABLE t (a int) --\r; DROP TABLE u\n", None, "more than one statement"),
    # standard_conforming_strings: the backslash escapes nothing, the string ends there.
    ("table", "t", "CREATE TABLE t (a text DEFAULT 'x\\'); DROP TABLE u; --')", None,
     "more than one statement"),
    ("table", "t", "CREATE TABLE t (a text DEFAULT $$x$$); DROP TABLE u", None,
     "more than one statement"),
    ("table", "t", "CREATE TABLE t (a text DEFAULT $a$ x $b$)", None, "unterminated"),
    ("table", "t", "CREATE TABLE t (a text DEFAULT E'x\\')", None, "unterminated"),
    ("table", "t", "CREATE TABLE t (a int) /*! executed by MySQL */", None, "executable comment"),
    ("table", "t", "CREATE TABLE t (a int DEFAULT nextval('other.s'::regclass))", None,
     "refers to other.s in another schema"),
    ("table", "t", "CREATE TABLE t (a int REFERENCES \"Other\".u (id))", None,
     "refers to Other.… outside the restored database"),
    ("table", "side.t", "CREATE TABLE public.t (a int)", TWO_SCHEMAS,
     "statement does not create it in schema 'side'"),
    ("table", "t", "CREATE TABLE public.t (a int)", None, "qualified names are not allowed"),
    ("table", "t", "CREATE TABLE t (LIKE other.u)", None, "refers to other.u in another"),
    ("view", "public.v", "CREATE VIEW public.v AS SELECT * FROM other.t", TWO_SCHEMAS,
     "refers to other.t in another database or schema"),
    ("view", "public.v", "CREATE VIEW public.v AS SELECT pg_read_file('/etc/passwd')",
     TWO_SCHEMAS, "calls pg_read_file()"),
    ("view", "public.v", "CREATE VIEW public.v AS SELECT a FROM x.y.z", TWO_SCHEMAS,
     "refers to x.y.z in another database or schema"),
    ("function", "public.f", "CREATE FUNCTION public.f() RETURNS integer LANGUAGE sql "
     "SET search_path = other AS $$ SELECT 1 $$", TWO_SCHEMAS, "sets search_path to 'other'"),
    ("function", "public.f", "CREATE FUNCTION public.f() RETURNS integer "
     "LANGUAGE plpython3u AS $$ $$", TWO_SCHEMAS, "runs outside SQL"),
    ("function", "public.f", "CREATE FUNCTION public.f() RETURNS integer LANGUAGE c "
     "AS '/lib/x.so', 'f'", TWO_SCHEMAS, "runs outside SQL"),
    ("extension", "dblink", "CREATE EXTENSION dblink", None, "reaches beyond the database"),
    ("index", "ix", "CREATE INDEX CONCURRENTLY ix ON t (a)", None, "CONCURRENTLY"),
    ("index", "ix", "CREATE INDEX ix ON other.t (a)", None, "outside the restored database"),
    ("event", "trigger", "CREATE EVENT TRIGGER e ON ddl_command_start EXECUTE FUNCTION f()",
     None, "an event trigger acts on the whole database"),
    ("constraint", "public.fk", "ALTER TABLE ONLY public.t ADD CONSTRAINT fk FOREIGN KEY (a) "
     "REFERENCES other.u(id)", TWO_SCHEMAS, "outside the restored database"),
    ("constraint", "fk", "ALTER TABLE t DROP CONSTRAINT fk", None,
     "statement is not ALTER TABLE ... ADD CONSTRAINT"),
    ("table", "t", "CREATE TABLE t (a int); CREATE ROLE r SUPERUSER", None,
     "more than one statement"),
]  # fmt: skip

SQLITE_ACCEPTED = [
    ("table", "t", "CREATE TABLE \"t\" (a INTEGER, b TEXT DEFAULT 'C:\\')"),
    ("trigger", "tr", "CREATE TRIGGER tr AFTER INSERT ON t BEGIN UPDATE t SET a = 1; END"),
    ("index", "ix", "CREATE INDEX ix ON t (a)"),
]

SQLITE_REFUSED = [
    ("table", "t", "CREATE TABLE t (a TEXT DEFAULT 'x\\'); DROP TABLE u; --')",
     "more than one statement"),
    ("table", "t", "CREATE TABLE t (a int) [;]", "more than one statement"),
    ("view", "v", "CREATE VIEW v AS SELECT * FROM other.t",
     "refers to other.t in another database or schema"),
    ("trigger", "tr", "CREATE TRIGGER tr AFTER INSERT ON other.t BEGIN SELECT 1; END",
     "outside the restored database"),
    ("table", "t", "CREATE TEMP TABLE t (a int)", "unexpected 'TEMP' after CREATE"),
]  # fmt: skip


def _assert_refused(check: Any, object_type: str, name: str, why: str, *args: Any) -> None:
    with pytest.raises(UnsafeDumpError) as caught:
        check(*args)
    message = str(caught.value)
    assert message.startswith(f"{object_type} {name!r}: "), message
    assert why in message, message


@pytest.mark.parametrize(("object_type", "name", "sql"), MYSQL_ACCEPTED)
def test_mysql_accepts(object_type: str, name: str, sql: str) -> None:
    check_mysql(object_type, name, sql)


@pytest.mark.parametrize(("object_type", "name", "sql", "why"), MYSQL_REFUSED)
def test_mysql_refuses(object_type: str, name: str, sql: str, why: str) -> None:
    _assert_refused(check_mysql, object_type, name, why, object_type, name, sql)


def test_mysql_returns_the_checked_sql_and_its_settings() -> None:
    """The restore runs what was checked: version comments inlined, settings applied."""
    body = "CREATE TRIGGER tr BEFORE INSERT ON t FOR EACH ROW SET @a = 'C:\\'"
    settings, executed = mysql.check_object_statement(ObjectSpec("trigger", "tr", NBE + body))
    assert (settings, executed) == ({"sql_mode": "NO_BACKSLASH_ESCAPES"}, body)
    # A version comment the portable lexing sees as a string is still inlined and checked.
    sql = "CREATE TABLE t (a int) # '\n/*!50100 COMMENT 'x' */ -- '"
    settings, executed = mysql.check_table_statement(TableSpec("t", sql, ()))
    assert (settings, executed) == ({}, "CREATE TABLE t (a int) # '\n  COMMENT 'x'   -- '")
    with pytest.raises(UnsafeDumpError, match="table 't': executable comment"):
        mysql.check_table_statement(TableSpec("t", "CREATE TABLE t (a int) /*!50100 x */", ()))


@pytest.mark.parametrize(("object_type", "name", "sql", "header"), PG_ACCEPTED)
def test_postgresql_accepts(
    object_type: str, name: str, sql: str, header: dict[str, Any] | None
) -> None:
    check_postgresql(object_type, name, sql, header)


@pytest.mark.parametrize(("object_type", "name", "sql", "header", "why"), PG_REFUSED)
def test_postgresql_refuses(
    object_type: str, name: str, sql: str, header: dict[str, Any] | None, why: str
) -> None:
    label = name.split(".")[-1]
    _assert_refused(check_postgresql, object_type, label, why, object_type, name, sql, header)


@pytest.mark.parametrize(("object_type", "name", "sql"), SQLITE_ACCEPTED)
def test_sqlite_accepts(object_type: str, name: str, sql: str) -> None:
    check_sqlite(object_type, name, sql)


@pytest.mark.parametrize(("object_type", "name", "sql", "why"), SQLITE_REFUSED)
def test_sqlite_refuses(object_type: str, name: str, sql: str, why: str) -> None:
    _assert_refused(check_sqlite, object_type, name, why, object_type, name, sql)


@pytest.mark.parametrize("statement", ["", "   ", "-- only a comment"])
def test_empty_statements_are_refused(statement: str) -> None:
    with pytest.raises(UnsafeDumpError, match="table 't': "):
        check_statement(statement, "table", "t")


def test_routines_need_the_callers_trust() -> None:
    for object_type in sorted(ROUTINE_TYPES):
        with pytest.raises(UnsafeDumpError, match=f"{object_type} 'r': the dump creates a routine"):
            check_routine_allowed(object_type, "r", allow_routines=False)
        check_routine_allowed(object_type, "r", allow_routines=True)
    check_routine_allowed("view", "v", allow_routines=False)
