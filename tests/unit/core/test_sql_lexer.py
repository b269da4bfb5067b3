"""The SQL lexer (core/sql_lexer.py): each dialect's rules split a statement where that server
does. Every case is a place where two dialects disagree, so a rule set that drifted from its
server would let a second statement hide from the checks."""

from __future__ import annotations

import pytest

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
    significant,
    significant_tokens,
)

MYSQL = LexerRules.mysql("")
MYSQL_ANSI = LexerRules.mysql("STRICT_ALL_TABLES,ANSI_QUOTES")
MYSQL_NO_BACKSLASH = LexerRules.mysql("NO_BACKSLASH_ESCAPES")


def kinds(sql: str, rules: LexerRules) -> list[tuple[str, str]]:
    return [(t.kind, t.text) for t in significant(lex(sql, rules))]


# (rules, statement, significant tokens)
CASES = [
    # A backslash escapes a quote in MySQL's default mode and PORTABLE, not in standard SQL.
    (MYSQL, r"'a\';' ;", [("single", r"'a\';'"), ("semicolon", ";")]),
    (MYSQL_NO_BACKSLASH, r"'a\';", [("single", r"'a\'"), ("semicolon", ";")]),
    (PORTABLE, r"'a\';'", [("single", r"'a\';'")]),
    (STANDARD, r"'a\';'", [("single", r"'a\'"), ("semicolon", ";"), ("other", "'")]),
    (POSTGRESQL, r"'a\' ;", [("single", r"'a\'"), ("semicolon", ";")]),
    (SQLITE, r"'a\' ;", [("single", r"'a\'"), ("semicolon", ";")]),
    # PostgreSQL's E'...' strings take backslash escapes; SQLite has none.
    (POSTGRESQL, r"E'a\';' x", [("single", r"E'a\';'"), ("word", "x")]),
    (STANDARD, r"e'a\';'", [("single", r"e'a\';'")]),
    # "..." is a string in MySQL unless ANSI_QUOTES; a name elsewhere.
    (MYSQL, r'"a\";" x', [("single", r'"a\";"'), ("word", "x")]),
    (MYSQL_ANSI, '"a"";" x', [("double", '"a"";"'), ("word", "x")]),
    (POSTGRESQL, '"a"";"', [("double", '"a"";"')]),
    # Backticks quote names in MySQL and SQLite, not in PostgreSQL; SQLite also has [...].
    (MYSQL, "`a``;`", [("backtick", "`a``;`")]),
    (SQLITE, "[a;b] `c`", [("bracket", "[a;b]"), ("backtick", "`c`")]),
    (POSTGRESQL, "`a;`", [("other", "`"), ("word", "a"), ("semicolon", ";"), ("other", "`")]),
    # '#' comments are MySQL's alone; MySQL's '--' needs a space after it.
    (MYSQL, "a # ;\nb", [("word", "a"), ("word", "b")]),
    (POSTGRESQL, "a # b", [("word", "a"), ("other", "#"), ("word", "b")]),
    (MYSQL, "1--1", [("word", "1"), ("other", "-"), ("other", "-"), ("word", "1")]),
    (MYSQL, "a -- ;\nb", [("word", "a"), ("word", "b")]),
    (PORTABLE, "a --;\nb", [("word", "a"), ("word", "b")]),
    # PostgreSQL ends a '--' comment at a carriage return too; the others only at \n.
    (POSTGRESQL, "a --x\r;", [("word", "a"), ("semicolon", ";")]),
    (SQLITE, "a --x\r;", [("word", "a")]),
    # PostgreSQL's block comments nest; nobody else's do.
    (POSTGRESQL, "a /* /* */ ; */ b", [("word", "a"), ("word", "b")]),
    (
        SQLITE,
        "a /* /* */ ; */",
        [("word", "a"), ("semicolon", ";"), ("other", "*"), ("other", "/")],
    ),
    # MySQL runs the contents of version comments: they are lexed as code.
    (MYSQL, "a /*!50100 ; */ b", [("word", "a"), ("semicolon", ";"), ("word", "b")]),
    (MYSQL, "a /*M!100100 c */", [("word", "a"), ("word", "c")]),
    (MYSQL, "a /* ; */ b", [("word", "a"), ("word", "b")]),
    (POSTGRESQL, "a /*! ; */ b", [("word", "a"), ("word", "b")]),
    # Dollar quoting is PostgreSQL's (and the portable lexings'); in MySQL '$' is a letter.
    (POSTGRESQL, "$$ ; $$ $a$ ; $a$", [("dollar", "$$ ; $$"), ("dollar", "$a$ ; $a$")]),
    (POSTGRESQL, "$é$ ; $é$", [("dollar", "$é$ ; $é$")]),
    (POSTGRESQL, "a$$b", [("word", "a$$b")]),
    (POSTGRESQL, "$1", [("other", "$"), ("other", "1")]),
    (MYSQL, "$$ ; $$", [("word", "$$"), ("semicolon", ";"), ("word", "$$")]),
    (
        SQLITE,
        "$$ ; $$",
        [("other", "$"), ("other", "$"), ("semicolon", ";")] + [("other", "$")] * 2,
    ),
    # MySQL names may start with a digit; a non-ASCII character is a letter, not a space.
    (MYSQL, "2db.t", [("word", "2db"), ("other", "."), ("word", "t")]),
    (PORTABLE, "2db", [("other", "2"), ("word", "db")]),
    (MYSQL, "a\xa0b", [("word", "a\xa0b")]),
    (POSTGRESQL, "\xa0a", [("word", "\xa0a")]),
    (PORTABLE, "\xa0a", [("word", "a")]),
]


@pytest.mark.parametrize(("rules", "sql", "expected"), CASES)
def test_tokens(rules: LexerRules, sql: str, expected: list[tuple[str, str]]) -> None:
    assert kinds(sql, rules) == expected


def test_tokens_cover_the_statement() -> None:
    """Every character belongs to exactly one token, comments and spaces included."""
    sql = "CREATE /*! x */ TABLE `t` -- c\n('a', \"b\") # d\n;"
    tokens = lex(sql, MYSQL)
    assert "".join(t.text for t in tokens) == sql
    assert {t.kind for t in tokens} >= {"version_open", "version_close", "comment", "space"}


@pytest.mark.parametrize(
    ("rules", "sql"),
    [
        (MYSQL, "a 'b"),
        (MYSQL, 'a "b'),
        (MYSQL, "a `b"),
        (MYSQL_NO_BACKSLASH, r"'a\''"),
        (MYSQL, "a /* b"),
        (POSTGRESQL, "a /* /* */ b"),
        (POSTGRESQL, "a $$ b"),
        (POSTGRESQL, "a $t$ b $u$"),
        (POSTGRESQL, "E'a\\'"),
        (SQLITE, "[a"),
    ],
)
def test_unterminated_quotes_and_comments_are_errors(rules: LexerRules, sql: str) -> None:
    with pytest.raises(UnsafeDumpError, match="unterminated"):
        lex(sql, rules)


def test_portable_lexing_goes_on_after_an_unterminated_quote() -> None:
    """The portable lexings never refuse a quote: the dialect's own lexing does, where it
    is really unterminated (a PostgreSQL 'C:\\' is a complete string)."""
    assert kinds(r"'C:\'", PORTABLE) == [
        ("other", "'"),
        ("word", "C"),
        ("other", ":"),
        ("other", "\\"),
        ("other", "'"),
    ]
    assert kinds(r"'C:\'", POSTGRESQL) == [("single", r"'C:\'")]


@pytest.mark.parametrize("sql", ["a /*!50100 b */", "a /*M!100100 b */", "a /*Mb */"])
def test_portable_lexings_refuse_comments_mysql_runs(sql: str) -> None:
    for rules in (PORTABLE, STANDARD):
        with pytest.raises(UnsafeDumpError, match="executable comment"):
            lex(sql, rules)


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("a /*! b /*! c */", "nested version comment"),
        ("a /*! b", "unterminated version comment"),
    ],
)
def test_version_comments_must_close_once(sql: str, message: str) -> None:
    with pytest.raises(UnsafeDumpError, match=message):
        lex(sql, MYSQL)


def test_a_stray_comment_close_is_an_ordinary_token() -> None:
    assert kinds("a */ b", MYSQL) == [("word", "a"), ("other", "*/"), ("word", "b")]


def test_inline_version_comments() -> None:
    sql = "CREATE TABLE t (a int) /*!50100 PARTITION BY HASH (a) */"
    assert inline_version_comments(sql, MYSQL) == (
        "CREATE TABLE t (a int)   PARTITION BY HASH (a)  "
    )
    plain = "CREATE TABLE t (a int) /* note */"
    assert inline_version_comments(plain, MYSQL) is plain


def test_significant_tokens_drop_trailing_semicolons() -> None:
    assert significant_tokens("a ; ; -- x", PORTABLE) == [Token("word", "a")]


@pytest.mark.parametrize(
    ("token", "unquoted"),
    [
        (Token("double", '"a""b"'), 'a"b'),
        (Token("backtick", "`a``b`"), "a`b"),
        (Token("bracket", "[a b]"), "a b"),
        (Token("word", "Ab"), "Ab"),
        (Token("single", "'a'"), "'a'"),
    ],
)
def test_unquoted(token: Token, unquoted: str) -> None:
    assert token.unquoted() == unquoted


@pytest.mark.parametrize(
    ("sql_mode", "ansi", "backslash"),
    [
        ("", False, True),
        ("ANSI", True, True),
        ("ansi_quotes,no_backslash_escapes", True, False),
        ("STRICT_ALL_TABLES, NO_BACKSLASH_ESCAPES", False, False),
    ],
)
def test_mysql_rules_follow_sql_mode(sql_mode: str, ansi: bool, backslash: bool) -> None:
    rules = LexerRules.mysql(sql_mode)
    assert (rules.double_quoted_names, rules.backslash_escapes) == (ansi, backslash)
    assert rules is LexerRules.mysql(sql_mode)  # one frozen record per mode
