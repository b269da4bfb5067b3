"""The checks a MySQL/MariaDB restore makes of every statement a dump asks it to run.

A dump is untrusted input: each CREATE statement is lexed as MySQL lexes it under the
statement's own sql_mode (:func:`...sql_lexer.LexerRules.mysql`: ``#`` comments, backslash
escapes, ANSI_QUOTES, ``/*! */`` comments whose contents MySQL executes) as well as portably,
and must create exactly the object its record names, inside the target database
(:func:`...dump.safety.check_statement`). Public: :func:`check_table_statement`,
:func:`check_object_statement` (the dialect registry and the restore writer call them),
:data:`LOAD_SQL_MODE` and :data:`DROP_KINDS` (the writer uses them too).
"""

from __future__ import annotations

import re

from ...dump.model import ObjectSpec, TableSpec
from ...dump.safety import check_statement
from ...errors import UnsafeDumpError
from ...sql_lexer import LexerRules, inline_version_comments

# Session of the restore: strict (a value the server would truncate fails the restore instead
# of changing silently), zero dates allowed (no NO_ZERO_DATE / NO_ZERO_IN_DATE), an explicit
# id 0 kept (NO_AUTO_VALUE_ON_ZERO).
LOAD_SQL_MODE = "STRICT_ALL_TABLES,NO_AUTO_VALUE_ON_ZERO,NO_ENGINE_SUBSTITUTION"

# Triggers, routines and events run with the sql_mode (events also the time_zone) they were
# created with, which SHOW CREATE reports beside the statement. The backup keeps it in a
# leading comment of create_stmt, which the restore reads, checks, removes and applies.
_SETTINGS_COMMENT = re.compile(r"\A\s*/\* zenmigrate: (?P<body>[^*]*) \*/\s*")
_SETTING = re.compile(r"(?P<key>[a-z_]+)='(?P<value>[^']*)'\s*")
_SETTING_VALUES = {
    "sql_mode": re.compile(r"[A-Z0-9_,]*"),
    "time_zone": re.compile(r"[A-Za-z0-9_+\-:/]*"),
}

# Object kinds a dump may hold beside tables (and ZenML's indexes), with their SQL keyword.
DROP_KINDS = {"view": "VIEW", "trigger": "TRIGGER", "procedure": "PROCEDURE",
              "function": "FUNCTION", "event": "EVENT"}  # fmt: skip


# What a MySQL dump may create, besides tables: DROP_KINDS, and ZenML's indexes
# (core/dump/legacy.py; our own dumps keep indexes in their tables).
_TYPES = frozenset({"table", "index", *DROP_KINDS})
# Kinds whose body (BEGIN ... END) holds semicolons: pymysql runs one statement per call
# (the writer refuses a connection with CLIENT.MULTI_STATEMENTS), so nothing can follow.
_BODY_TYPES = frozenset({"trigger", "procedure", "function", "event"})


def _prepare(obj_type: str, name: str, statement: str) -> tuple[dict[str, str], str]:
    """Check a statement from a dump; returns the session settings and the SQL to run.

    The shared :func:`check_statement` runs on the statement as written (where its portable
    lexing refuses ``/*! ... */`` comments), then on exactly the text that will be executed:
    the settings comment removed and version comments inlined, lexed as MySQL lexes it
    under the statement's sql_mode.
    """
    label = f"{obj_type} {name!r}"
    if obj_type not in _TYPES:
        raise UnsafeDumpError(f"{label}: not a CREATE this dialect restores")
    allow_body = obj_type in _BODY_TYPES
    check_statement(statement, obj_type, name, allow_body=allow_body)
    settings: dict[str, str] = {}
    match = _SETTINGS_COMMENT.match(statement)
    if match:
        body = match.group("body")
        for setting in _SETTING.finditer(body):
            key, value = setting.group("key"), setting.group("value")
            pattern = _SETTING_VALUES.get(key)
            if pattern is None or not pattern.fullmatch(value):
                raise UnsafeDumpError(f"{label}: bad setting {key}={value!r}")
            settings[key] = value
        if _SETTING.sub("", body).strip():
            raise UnsafeDumpError(f"{label}: bad settings comment")
        statement = statement[match.end() :]
    rules = LexerRules.mysql(settings.get("sql_mode", LOAD_SQL_MODE))
    try:
        sql = inline_version_comments(statement, rules)
    except UnsafeDumpError as exc:
        raise UnsafeDumpError(f"{label}: {exc}") from None
    check_statement(sql, obj_type, name, rules=rules, allow_body=allow_body)
    return settings, sql


def check_table_statement(table: TableSpec) -> tuple[dict[str, str], str]:
    """Every check the restore makes of a table record's statement (the writer and the
    dry run's rule pass both call this); returns :func:`_prepare`'s settings and SQL."""
    return _prepare("table", table.name, table.create_stmt)


def check_object_statement(obj: ObjectSpec) -> tuple[dict[str, str], str]:
    """Every check the restore makes of an object record's statement (as above)."""
    if obj.object_type not in DROP_KINDS and obj.object_type != "index":
        raise UnsafeDumpError(f"{obj.object_type} {obj.name!r}: unknown object type")
    return _prepare(obj.object_type, obj.name, obj.create_stmt)
