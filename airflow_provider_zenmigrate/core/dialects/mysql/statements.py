"""The checks a MySQL/MariaDB restore makes of every statement a dump asks it to run.

A dump is untrusted input: each CREATE statement is lexed as MySQL lexes it under the
statement's own sql_mode (``#`` comments, backslash escapes, ANSI_QUOTES, ``/*! */`` comments
whose contents MySQL executes) and must create exactly the object its record names, inside the
target database. Public: :func:`check_table_statement`, :func:`check_object_statement` (the
dialect registry and the restore writer call them), :data:`LOAD_SQL_MODE` and
:data:`DROP_KINDS` (the writer uses them too).
"""

from __future__ import annotations

import re

from ...dump.model import ObjectSpec, TableSpec
from ...dump.safety import check_references, check_statement
from ...errors import UnsafeDumpError

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


def _token_pattern(ansi_quotes: bool, backslash_escapes: bool) -> re.Pattern[str]:
    def quoted(q: str, escapes: bool) -> str:
        return f"{q}(?:[^{q}\\\\]|\\\\.|{q}{q})*{q}" if escapes else f"{q}(?:[^{q}]|{q}{q})*{q}"

    single = quoted("'", backslash_escapes)
    double = (
        "(?P<dquote>" + quoted('"', False) + ")"
        if ansi_quotes
        else "(?P<double>" + quoted('"', backslash_escapes) + ")"
    )
    return re.compile(
        rf"""
        (?P<space>\s+)
      | (?P<line_comment>(?:\#|--(?=[\s\x00-\x1f]|\Z))[^\n]*)
      | (?P<version_open>/\*M?!\d*)
      | (?P<block_comment>/\*.*?\*/)
      | (?P<version_close>\*/)
      | (?P<single>{single})
      | {double}
      | (?P<backtick>`(?:[^`]|``)*`)
      | (?P<semicolon>;)
      | (?P<word>[0-9A-Za-z_$\u0080-\U0010ffff]+)
      | (?P<other>.)
        """,
        re.VERBOSE | re.DOTALL,
    )


_TOKEN_PATTERNS = {
    (ansi, backslash): _token_pattern(ansi, backslash)
    for ansi in (False, True)
    for backslash in (False, True)
}


def _scan(statement: str, sql_mode: str = "") -> list[tuple[str, str]]:
    """Lex as MySQL does under ``sql_mode`` (ANSI_QUOTES, NO_BACKSLASH_ESCAPES), comments kept."""
    modes = set(sql_mode.upper().split(","))
    pattern = _TOKEN_PATTERNS[
        ("ANSI_QUOTES" in modes or "ANSI" in modes, "NO_BACKSLASH_ESCAPES" not in modes)
    ]
    out: list[tuple[str, str]] = []
    pos, in_version = 0, False
    while pos < len(statement):
        match = pattern.match(statement, pos)
        if match is None:
            raise UnsafeDumpError(f"unterminated quote or comment at offset {pos}")
        kind = match.lastgroup or "other"
        if kind == "version_open":
            if in_version:
                raise UnsafeDumpError("nested version comment")
            in_version = True
        elif kind == "version_close":
            if not in_version:
                kind = "other"
            in_version = False
        elif kind == "other" and (match.group() in "'\"`" or statement.startswith("/*", pos)):
            raise UnsafeDumpError(f"unterminated quote or comment at offset {pos}")
        out.append((kind, match.group()))
        pos = match.end()
    if in_version:
        raise UnsafeDumpError("unterminated version comment")
    return out


def _significant(tokens: list[tuple[str, str]]) -> list[tuple[str, str]]:
    skip = ("space", "line_comment", "block_comment", "version_open", "version_close")
    return [t for t in tokens if t[0] not in skip]


def _unquote(value: str) -> str:
    if value[:1] in ("`", '"'):
        return value[1:-1].replace(value[0] * 2, value[0])
    return value


def _inline_version_comments(statement: str, sql_mode: str) -> str:
    """Turn ``/*!50100 X */`` into `` X ``: MySQL runs their contents, so we check them."""
    tokens = _scan(statement, sql_mode)
    if not any(kind == "version_open" for kind, _ in tokens):
        return statement
    return "".join(
        " " if kind in ("version_open", "version_close") else text_ for kind, text_ in tokens
    )


_HEAD_KEYWORDS = {
    "table": "TABLE",
    "view": "VIEW",
    "trigger": "TRIGGER",
    "procedure": "PROCEDURE",
    "function": "FUNCTION",
    "event": "EVENT",
    "index": "INDEX",  # only from ZenML's dumps (core/dump/legacy.py); ours keep them in tables
}
_HEAD_MODIFIERS = frozenset(
    {"OR", "REPLACE", "ALGORITHM", "UNDEFINED", "MERGE", "TEMPTABLE", "DEFINER", "SQL",
     "SECURITY", "INVOKER", "AGGREGATE", "CURRENT_USER", "UNIQUE"}
)  # fmt: skip


def _prepare(obj_type: str, name: str, statement: str) -> tuple[dict[str, str], str]:
    """Check a statement from a dump; returns the session settings and the SQL to run.

    The shared :func:`check_statement` runs first. It does not lex as MySQL does (``#``
    comments, backslashes in double quotes, ``/*! ... */`` comments whose contents MySQL
    executes), so the head of the statement is checked again here with MySQL's rules, on
    exactly the text that will be executed.
    """
    allow_body = obj_type in ("trigger", "procedure", "function", "event")
    check_statement(statement, obj_type, name, allow_body=allow_body)
    settings: dict[str, str] = {}
    match = _SETTINGS_COMMENT.match(statement)
    if match:
        body = match.group("body")
        for setting in _SETTING.finditer(body):
            key, value = setting.group("key"), setting.group("value")
            pattern = _SETTING_VALUES.get(key)
            if pattern is None or not pattern.fullmatch(value):
                raise UnsafeDumpError(f"{obj_type} {name!r}: bad setting {key}={value!r}")
            settings[key] = value
        if _SETTING.sub("", body).strip():
            raise UnsafeDumpError(f"{obj_type} {name!r}: bad settings comment")
        statement = statement[match.end() :]
    sql_mode = settings.get("sql_mode", LOAD_SQL_MODE)
    sql = _inline_version_comments(statement, sql_mode)
    if sql != statement:
        check_statement(sql, obj_type, name, allow_body=allow_body)
    label = f"{obj_type} {name!r}"
    tokens = _significant(_scan(sql, sql_mode))
    while tokens and tokens[-1][0] == "semicolon":
        tokens.pop()
    if not allow_body and any(kind == "semicolon" for kind, _ in tokens):
        raise UnsafeDumpError(f"{label}: more than one statement")
    words = [(k, t.upper() if k == "word" else t) for k, t in tokens]
    keyword = _HEAD_KEYWORDS.get(obj_type)
    if keyword is None or not words or words[0] != ("word", "CREATE"):
        raise UnsafeDumpError(f"{label}: not a CREATE this dialect restores")
    i = 1
    while i < len(words) and words[i] != ("word", keyword):
        kind, value = words[i]
        after_sign = words[i - 1][1] in ("=", "@")
        if (
            (kind == "word" and value in _HEAD_MODIFIERS)
            or (kind == "other" and value in ("=", "@", "(", ")"))
            or (after_sign and kind in ("word", "single", "backtick", "dquote"))
        ):
            i += 1
        else:
            raise UnsafeDumpError(f"{label}: unexpected {tokens[i][1]!r} after CREATE")
    i += 1
    if words[i : i + 3] == [("word", "IF"), ("word", "NOT"), ("word", "EXISTS")]:
        i += 3
    if i >= len(tokens) or tokens[i][0] not in ("word", "backtick", "dquote"):
        raise UnsafeDumpError(f"{label}: no object name after {keyword}")
    found = _unquote(tokens[i][1])
    if found != name and not (tokens[i][0] == "word" and found.lower() == name.lower()):
        raise UnsafeDumpError(f"{label}: statement creates {found!r}, not {name!r}")
    following = tokens[i + 1][1] if i + 1 < len(tokens) else ""
    if following == ".":
        raise UnsafeDumpError(f"{label}: qualified names are not allowed")
    if obj_type == "index" and (
        following.upper() != "ON"
        or i + 2 >= len(tokens)
        or tokens[i + 2][0] not in ("word", "backtick", "dquote")
        or (tokens[i + 3][1] if i + 3 < len(tokens) else "") == "."
    ):
        raise UnsafeDumpError(f"{label}: expected ON <unqualified table> after the name")
    if obj_type == "table" and following != "(":
        # SHOW CREATE TABLE always lists the columns; refuse CREATE TABLE ... LIKE / SELECT.
        raise UnsafeDumpError(f"{label}: expected the column list after the name")
    # References beyond the database, on the tokens MySQL itself sees (" quotes a string
    # unless ANSI_QUOTES makes it a name).
    kinds = {"dquote": "double", "double": "single"}
    check_references([(kinds.get(k, k), t) for k, t in tokens], i + 1, obj_type, label)
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
