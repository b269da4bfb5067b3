"""Fuzzing the statement checks of every dialect (hypothesis, fixed budget, no server).

Statements are built from fragments a dump may hold (CREATE heads, column lists, bodies) and
fragments that attack the lexers (quotes, backslashes, comments of every dialect, MySQL's
version comments, dollar quotes, second statements, forbidden words, names in other
schemas), concatenated and then mutated (characters inserted, deleted, swapped). Each is run
through the rules of MySQL (under both backslash sql_modes and ANSI_QUOTES), PostgreSQL
and SQLite, exactly as their restores call them. The properties:

- a check raises nothing but :class:`UnsafeDumpError`, and lexing raises nothing else;
- lexing loses no character: the tokens put together are the statement;
- a statement a dialect accepts is, in every lexing that could be its server's (the
  portable, standard and the dialect's own), one statement (unless it is a body) headed
  by CREATE and the object's keyword, with no forbidden word anywhere.

Budget: EXAMPLES examples per property, derandomized (the same on every run); a few seconds.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from airflow_provider_zenmigrate.core.dialects import sqlite
from airflow_provider_zenmigrate.core.dialects.mysql import statements as mysql
from airflow_provider_zenmigrate.core.dialects.postgresql.statements import PgStatementRules
from airflow_provider_zenmigrate.core.dump.model import ObjectSpec, TableSpec
from airflow_provider_zenmigrate.core.errors import UnsafeDumpError
from airflow_provider_zenmigrate.core.sql_lexer import (
    PORTABLE,
    POSTGRESQL,
    SQLITE,
    STANDARD,
    LexerRules,
    Token,
    inline_version_comments,
    lex,
    significant_tokens,
)

EXAMPLES = int(os.environ.get("ZENMIGRATE_FUZZ_STATEMENT_EXAMPLES", "700"))
FUZZ = settings(
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    print_blob=False,
    max_examples=EXAMPLES,
)

HEADS = {
    "table": [
        "CREATE TABLE t ",
        "CREATE TABLE `t` ",
        'CREATE TABLE "t" ',
        "CREATE TABLE public.t ",
    ],
    "view": ["CREATE VIEW v AS ", "CREATE ALGORITHM=UNDEFINED DEFINER=`r`@`%` VIEW v AS "],
    "trigger": ["CREATE TRIGGER tr BEFORE INSERT ON t FOR EACH ROW "],
    "function": ["CREATE FUNCTION public.f() RETURNS int LANGUAGE sql AS "],
}
BODIES = [
    "(a int)", "(a text DEFAULT 'x')", "(a int, b int REFERENCES u (id))", "SELECT 1 AS x",
    "SELECT a FROM t", "BEGIN SET NEW.a = 1; END", "$$ SELECT 1 $$", "(a int) ENGINE=InnoDB",
    "SELECT * FROM side.t",
]  # fmt: skip
HOSTILE = [
    "'", '"', "`", "\\", "\\'", "''", ";", "; DROP TABLE u", "; CREATE TABLE u (a int)",
    "/*", "*/", "/* x */", "/*!", "/*!50100 ", "/*M!100100 ", "--", "-- ", "--\r", "#", "\n",
    "\r", "$$", "$a$", "$b$", "E'", "[", "]", "DROP DATABASE d", "GRANT ALL ON *.* TO x",
    "LOAD_FILE('/etc/passwd')", "other.t", "FROM other.t", "INTO OUTFILE '/tmp/x'",
    "SET GLOBAL x = 1", "pg_read_file('x')", "nextval('other.s')", 'NEXTVAL("o.s")', " ", "(",
    ")", ",", "\xa0", "é",
]  # fmt: skip
#: Words refused wherever they stand (not after a dot), calls, and word pairs.
FORBIDDEN_WORDS = {"GRANT", "REVOKE", "KILL", "SHUTDOWN"}
FORBIDDEN_CALLS = {"LOAD_FILE", "PG_READ_FILE"}
FORBIDDEN_PAIRS = {("DROP", "DATABASE"), ("INTO", "OUTFILE"), ("SET", "GLOBAL")}

Check = Callable[[str, str, str], Any]


def _mysql(object_type: str, name: str, sql: str) -> Any:
    if object_type == "table":
        return mysql.check_table_statement(TableSpec(name, sql, ()))
    return mysql.check_object_statement(ObjectSpec(object_type, name, sql))


def _postgresql(object_type: str, name: str, sql: str) -> Any:
    rules = PgStatementRules({"schemas": ["public", "side"]})
    options = {"schema": "public"}
    if object_type == "table":
        return rules.check_table_statement(TableSpec(name, sql, (), options=options))
    return rules.check_object_statement(ObjectSpec(object_type, name, sql, None, options))


def _sqlite(object_type: str, name: str, sql: str) -> Any:
    if object_type == "table":
        return sqlite.check_table_statement(TableSpec(name, sql, ()))
    return sqlite.check_object_statement(ObjectSpec(object_type, name, sql))


#: dialect: (check, types it restores, whether bodies of a type may hold semicolons)
DIALECTS: dict[str, tuple[Check, set[str], set[str]]] = {
    "mysql": (_mysql, {"table", "view", "trigger"}, {"trigger"}),
    "postgresql": (_postgresql, {"table", "view", "trigger", "function"}, {"function"}),
    "sqlite": (_sqlite, {"table", "view", "trigger"}, {"trigger"}),
}
NAMES = {"table": "t", "view": "v", "trigger": "tr", "function": "f"}
KEYWORDS = {"table": "TABLE", "view": "VIEW", "trigger": "TRIGGER", "function": "FUNCTION"}


@st.composite
def statements(draw: st.DrawFn) -> tuple[str, str]:
    """An object type and a statement: a head, fragments, then character mutations."""
    object_type = draw(st.sampled_from(sorted(HEADS)))
    parts = [draw(st.sampled_from(HEADS[object_type]))]
    fragments = st.sampled_from(BODIES) | st.sampled_from(HOSTILE)
    parts += draw(st.lists(fragments, max_size=8))
    sql = "".join(parts)
    for _ in range(draw(st.integers(0, 3))):
        at = draw(st.integers(0, len(sql)))
        op = draw(st.sampled_from(["insert", "delete", "swap"]))
        if op == "insert":
            sql = sql[:at] + draw(st.sampled_from(HOSTILE)) + sql[at:]
        elif op == "delete":
            sql = sql[:at] + sql[at + 1 :]
        elif at + 1 < len(sql):
            sql = sql[:at] + sql[at + 1] + sql[at] + sql[at + 2 :]
    if draw(st.booleans()):  # a MySQL settings comment choosing how backslashes and " lex
        mode = draw(st.sampled_from(["NO_BACKSLASH_ESCAPES", "ANSI_QUOTES", ""]))
        sql = f"/* zenmigrate: sql_mode='{mode}' */ {sql}"
    return object_type, sql


def _lexings(dialect: str, sql: str) -> tuple[str, list[LexerRules]]:
    """The text the server runs and every lexing that could be its server's."""
    if dialect == "postgresql":
        return sql, [PORTABLE, STANDARD, POSTGRESQL]
    if dialect == "sqlite":
        return sql, [PORTABLE, STANDARD, SQLITE]
    mode = "STRICT_ALL_TABLES"
    if sql.startswith("/* zenmigrate: sql_mode='"):
        mode = sql.split("'")[1]
        sql = sql[sql.index("*/") + 2 :].lstrip()
    rules = LexerRules.mysql(mode)
    return inline_version_comments(sql, rules), [PORTABLE, STANDARD, rules]


@FUZZ
@given(statement=statements(), dialect=st.sampled_from(sorted(DIALECTS)))
def test_accepted_statements_are_one_create_in_every_lexing(
    statement: tuple[str, str], dialect: str
) -> None:
    object_type, sql = statement
    check, types, bodies = DIALECTS[dialect]
    if object_type not in types:
        return
    try:
        check(object_type, NAMES[object_type], sql)
    except UnsafeDumpError:
        event(f"{dialect}: refused")
        return  # refused: the only way a check may fail
    event(f"{dialect}: accepted")
    executed, lexings = _lexings(dialect, sql)
    for rules in lexings:
        tokens = significant_tokens(executed, rules)
        words = [t.text.upper() for t in tokens if t.kind == "word"]
        assert (tokens[0].kind, tokens[0].text.upper()) == ("word", "CREATE"), (rules, sql)
        assert KEYWORDS[object_type] in words, (rules.dialect, sql)
        if object_type not in bodies:
            assert all(t.kind != "semicolon" for t in tokens), (rules.dialect, sql)
        assert not _forbidden(tokens), (rules.dialect, sql)


def _forbidden(tokens: list[Token]) -> list[str]:
    """What the references rules refuse, found by a reading of the tokens apart from them."""
    found = []
    upper = [(t.kind, t.text.upper()) for t in tokens] + [("", "")]
    for n, (kind, text) in enumerate(upper[:-1]):
        after_dot = n > 0 and upper[n - 1] == ("other", ".")
        if kind != "word" or after_dot:
            continue
        following = upper[n + 1]
        if text in FORBIDDEN_WORDS or (text, following[1]) in FORBIDDEN_PAIRS:
            found.append(text)
        if text in FORBIDDEN_CALLS and following == ("other", "("):
            found.append(text)
    return found


RULES = [PORTABLE, STANDARD, POSTGRESQL, SQLITE] + [
    LexerRules.mysql(mode)
    for mode in ("", "ANSI_QUOTES", "NO_BACKSLASH_ESCAPES", "ANSI,NO_BACKSLASH_ESCAPES")
]


@FUZZ
@given(
    text=st.lists(st.sampled_from(HOSTILE + BODIES) | st.text(max_size=3), max_size=12).map("".join)
)
def test_lexing_never_crashes_and_loses_nothing(text: str) -> None:
    for rules in RULES:
        try:
            tokens = lex(text, rules)
        except UnsafeDumpError:
            continue
        assert "".join(t.text for t in tokens) == text, (rules.dialect, text)


@pytest.mark.parametrize("dialect", sorted(DIALECTS))
def test_the_fuzzed_checks_accept_plain_statements(dialect: str) -> None:
    """The fuzz is not vacuous: each dialect accepts some unmutated statements."""
    check, types, _ = DIALECTS[dialect]
    sql = {
        "mysql": "CREATE TABLE t (a int)",
        "postgresql": "CREATE TABLE public.t (a int)",
        "sqlite": "CREATE TABLE t (a int)",
    }[dialect]
    check("table", "t", sql)
    with pytest.raises(UnsafeDumpError):
        check("table", "t", sql + "; DROP TABLE u")
