"""What a dump's statement may refer to: nothing beyond the database being restored.

The rules of docs/dump-format.md ("What a dump may create"), applied to the significant
tokens of any dialect's lexing (:mod:`..sql_lexer`): no reference qualified by another
database or schema to a table, view, sequence or function; no statement or call that acts on
the server, its files or other databases; no dynamic SQL. :mod:`.safety` calls
:func:`check_references` on every lexing of every statement it checks.
"""

from __future__ import annotations

import re

from ..errors import UnsafeDumpError
from ..sql_lexer import NAME_KINDS, Token


def is_name(kind: str) -> bool:
    """Whether a token of ``kind`` is a name (quoted or not)."""
    return kind in NAME_KINDS


def folded(token: Token) -> str:
    """A name as PostgreSQL resolves it: unquoted words fold to lower case."""
    return token.text.lower() if token.kind == "word" else token.unquoted()


#: Stands for the token before the first or after the last.
_NOTHING = Token("", "")


def upper_words(tokens: list[Token]) -> list[Token]:
    """``tokens`` with unquoted words in upper case, for comparing with keywords."""
    make = tuple.__new__  # Token(...) without NamedTuple's Python-level __new__
    return [make(Token, ("word", t.text.upper())) if t.kind == "word" else t for t in tokens]


# The table an index, trigger or rule is attached to follows this keyword.
_TARGET_KEYWORD = {"index": "ON", "trigger": "ON", "rule": "TO", "policy": "ON"}


def refuse_qualified_targets(
    words: list[Token],
    tokens: list[Token],
    start: int,
    object_type: str,
    label: str,
    schemas: frozenset[str] = frozenset(),
) -> None:
    """A schema- or database-qualified target would reach past what is restored into the
    live database, so the table an index, trigger or rule attaches to, and every table a
    foreign key references, must be unqualified or qualified by a restored schema."""
    positions = []
    keyword = _TARGET_KEYWORD.get(object_type)
    if keyword is not None and ("word", keyword) in words[start:]:
        positions.append(words.index(Token("word", keyword), start) + 1)
    positions += [n + 1 for n in range(start, len(words)) if words[n] == ("word", "REFERENCES")]
    for at in positions:
        if at < len(tokens) and tokens[at] == ("word", "ONLY"):
            at += 1
        if (
            at + 1 < len(tokens)
            and is_name(tokens[at][0])
            and tokens[at + 1] == ("other", ".")
            and folded(tokens[at]) not in schemas
        ):
            raise UnsafeDumpError(
                f"{label}: refers to {tokens[at].unquoted()}.… outside the restored database"
            )


# A dotted name after one of these words names a table (or sequence, or routine): it must not
# be qualified by a database or schema. A comma continues a list the first of them opened.
_TABLE_WORDS = frozenset(
    {
        "FROM", "JOIN", "STRAIGHT_JOIN", "INTO", "UPDATE", "TABLE", "TABLES", "INSERT",
        "REPLACE", "IGNORE", "LOW_PRIORITY", "DELAYED", "HIGH_PRIORITY", "QUICK", "USING",
        "CALL", "FOR", "DELETE", "ONLY", "LATERAL", "TRUNCATE", "LOCK", "HANDLER", "TO",
        "UNION", "INHERITS", "OF", "REFERENCES", "NEXTVAL", "LASTVAL", "SETVAL", "CURRVAL",
    }
)  # fmt: skip
_LIST_WORDS = frozenset(
    {"FROM", "JOIN", "STRAIGHT_JOIN", "UPDATE", "USING", "DELETE", "TABLES", "TRUNCATE",
     "LOCK", "INHERITS", "UNION"}
)  # fmt: skip
# Words that end a table list when a comma is traced back to its clause.
_CLAUSE_WORDS = frozenset(
    {
        "SELECT", "WHERE", "SET", "VALUES", "VALUE", "GROUP", "HAVING", "ORDER", "LIMIT",
        "OFFSET", "FETCH", "WINDOW", "EXCEPT", "INTERSECT", "RETURNING", "RETURN", "RETURNS",
        "BEGIN", "END", "THEN", "ELSE", "ELSEIF", "ELSIF", "DO", "LOOP", "REPEAT", "WHILE",
        "DECLARE", "IF", "CASE", "WHEN", "KEY", "SEPARATOR", "INTO", "BY", "AS",
    }
)  # fmt: skip
# PostgreSQL's catalog is searched first whether or not a name is qualified with it.
_CATALOG = "PG_CATALOG"
# Calls that read or write the server's files, other databases or the server's state, or run
# SQL from a string (which no check can see): refused wherever they appear.
_FORBIDDEN_CALLS = frozenset(
    {
        "LOAD_FILE", "SYS_EXEC", "SYS_EVAL", "PG_READ_FILE", "PG_READ_BINARY_FILE",
        "PG_LS_DIR", "PG_STAT_FILE", "LO_IMPORT", "LO_EXPORT", "PG_FILE_WRITE",
        "PG_FILE_RENAME", "PG_FILE_UNLINK", "DBLINK", "DBLINK_EXEC", "DBLINK_CONNECT",
        "DBLINK_CONNECT_U", "DBLINK_OPEN", "DBLINK_SEND_QUERY", "QUERY_TO_XML",
        "QUERY_TO_XMLSCHEMA", "QUERY_TO_XML_AND_XMLSCHEMA", "TABLE_TO_XML", "SCHEMA_TO_XML",
        "DATABASE_TO_XML", "SET_CONFIG", "PG_TERMINATE_BACKEND", "PG_CANCEL_BACKEND",
        "PG_RELOAD_CONF",
    }
)  # fmt: skip
# word pairs (first, second) that act beyond the database
_FORBIDDEN_PAIRS = {
    **dict.fromkeys(
        [(verb, noun) for verb in ("CREATE", "DROP", "ALTER", "RENAME")
         for noun in ("DATABASE", "SCHEMA", "USER", "ROLE", "SERVER", "TABLESPACE")],
        "acts on another database or on the server",
    ),
    ("INTO", "OUTFILE"): "writes a file on the server",
    ("INTO", "DUMPFILE"): "writes a file on the server",
    ("LOAD", "DATA"): "reads a file",
    ("LOAD", "XML"): "reads a file",
    ("SET", "GLOBAL"): "changes the server's settings",
    ("SET", "PERSIST"): "changes the server's settings",
    ("SET", "PERSIST_ONLY"): "changes the server's settings",
    ("EXECUTE", "IMMEDIATE"): "runs SQL from a string",
    ("INSTALL", "PLUGIN"): "changes the server",
    ("INSTALL", "SONAME"): "changes the server",
    ("UNINSTALL", "PLUGIN"): "changes the server",
    ("UNINSTALL", "SONAME"): "changes the server",
}  # fmt: skip
_FORBIDDEN_WORDS = {
    "GRANT": "changes privileges",
    "REVOKE": "changes privileges",
    "KILL": "acts on other sessions",
    "SHUTDOWN": "stops the server",
}
# MySQL table options that put a table's rows outside the database (other servers, files).
_OUTSIDE_TABLE_OPTIONS = frozenset({"CONNECTION", "FILE_NAME", "DATA_TABLE"})
_OUTSIDE_ENGINES = frozenset({"FEDERATED", "FEDERATEDX", "CONNECT", "SPIDER", "S3", "OQGRAPH"})
# PostgreSQL routine languages that reach the server's files or its operating system.
_UNTRUSTED_LANGUAGES = frozenset(
    {"C", "INTERNAL", "PLPYTHON3U", "PLPYTHONU", "PLPYTHON2U", "PLPERLU", "PLTCLU"}
)
_REGCLASS = frozenset({"REGCLASS", "REGPROC", "REGPROCEDURE", "REGNAMESPACE"})
_SEQUENCE_CALLS = frozenset({"NEXTVAL", "SETVAL", "CURRVAL", "TO_REGCLASS"})


def check_references(
    tokens: list[Token],
    start: int,
    object_type: str,
    label: str,
    schemas: frozenset[str] = frozenset(),
    words: list[Token] | None = None,
) -> None:
    """Raise :class:`UnsafeDumpError` if ``tokens[start:]`` reach beyond the database.

    ``tokens`` are the statement's significant tokens in one lexing
    (:func:`..sql_lexer.significant`); ``start`` is the first token after the object's name.
    ``words`` is :func:`upper_words` of ``tokens``, where the caller has it already.
    """
    words = upper_words(tokens) if words is None else words
    n = len(words)
    for i in range(start, n):
        kind, text = words[i]
        following = words[i + 1] if i + 1 < n else _NOTHING
        if kind == "word":
            if following[1] == "(" and text in _FORBIDDEN_CALLS and not _after_dot(words, i):
                raise UnsafeDumpError(f"{label}: calls {tokens[i][1]}(), which {_CALL_WHY}")
            why = _FORBIDDEN_PAIRS.get((text, following[1] if following[0] == "word" else ""))
            if why is None and text in _FORBIDDEN_WORDS and not _after_dot(words, i):
                why = _FORBIDDEN_WORDS[text]
            if why is not None:
                raise UnsafeDumpError(f"{label}: {tokens[i][1]} ... {why}")
            if text == "EXECUTE" and following not in (("word", "FUNCTION"), ("word", "PROCEDURE")):
                raise UnsafeDumpError(f"{label}: EXECUTE runs SQL from a string")
            if text == "PREPARE" and is_name(following[0]) and _word(words, i + 2) == "FROM":
                raise UnsafeDumpError(f"{label}: PREPARE runs SQL from a string")
            if object_type == "table":
                _check_table_option(words, tokens, i, label)
            if text == "SET":
                _check_search_path(words, tokens, i, label, schemas)
            if text == "LANGUAGE" and _unquoted(following) in _UNTRUSTED_LANGUAGES:
                raise UnsafeDumpError(f"{label}: LANGUAGE {tokens[i + 1][1]} runs outside SQL")
        elif (kind, text) == ("other", "@") and _word(words, i + 1) in ("GLOBAL", "PERSIST"):
            if i > 0 and words[i - 1] == ("other", "@"):
                raise UnsafeDumpError(f"{label}: @@{tokens[i + 1][1]} changes the server")
        elif kind == "single":
            _check_sequence_literal(words, tokens, i, label, schemas)
        if (
            is_name(kind)
            and not _after_dot(words, i)
            and following == ("other", ".")
            and folded(tokens[i]) not in schemas
        ):
            _check_dotted(words, tokens, i, object_type, label)


_CALL_WHY = "reaches the server's files, other databases or runs SQL from a string"


def _word(words: list[Token], i: int) -> str:
    return words[i][1] if 0 <= i < len(words) and words[i][0] == "word" else ""


def _after_dot(words: list[Token], i: int) -> bool:
    return i > 0 and words[i - 1] == ("other", ".")


def _unquoted(token: Token) -> str:
    """An upper-cased word's text, or a quoted name's upper-cased contents."""
    return token.unquoted().upper() if token.kind != "word" else token.text


def _check_dotted(
    words: list[Token],
    tokens: list[Token],
    i: int,
    object_type: str,
    label: str,
) -> None:
    """``a.b`` or ``a.b.c`` starting at token ``i``."""
    parts = [i]
    while (
        parts[-1] + 2 < len(words)
        and words[parts[-1] + 1] == ("other", ".")
        and is_name(words[parts[-1] + 2][0])
    ):
        parts.append(parts[-1] + 2)
    if len(parts) < 2:
        return
    previous = words[i - 1] if i > 0 else _NOTHING
    if previous[1] in (")", "]", "@", ":") and previous[0] == "other":
        return  # a field of an expression, a variable (@@session.x), a cast's type (::s.t)
    first = _unquoted(words[i])
    if words[i][0] == "word" and first.isdigit():
        return  # a number (MySQL lexes 1.5 as words)
    if first == _CATALOG:
        return
    shown = ".".join(tokens[p].unquoted() for p in parts)
    if len(parts) > 2:
        raise UnsafeDumpError(f"{label}: refers to {shown} in another database or schema")
    after = words[parts[-1] + 1] if parts[-1] + 1 < len(words) else _NOTHING
    if after == ("other", "("):
        raise UnsafeDumpError(f"{label}: calls {shown}() of another database or schema")
    if _table_position(words, i, object_type):
        raise UnsafeDumpError(f"{label}: refers to {shown} in another database or schema")


def _table_position(words: list[Token], i: int, object_type: str) -> bool:
    """Whether the name at ``i`` is where a table (sequence, routine) is named."""
    j = i - 1
    if words[j] == ("other", "&") and _word(words, j - 1) == "U":
        j -= 2  # PostgreSQL's U&"..." names
    while j >= 0 and words[j] == ("other", "("):
        j -= 1
    if j < 0:
        return False
    kind, text = words[j]
    if kind == "word":
        return text in _TABLE_WORDS or (object_type == "table" and text == "LIKE")
    if (kind, text) == ("other", "="):  # MySQL: UNION=(db.t) of a MERGE table
        return _word(words, j - 1) == "UNION"
    if (kind, text) == ("other", ","):
        return _comma_in_table_list(words, j, object_type)
    return False


def _comma_in_table_list(words: list[Token], j: int, object_type: str) -> bool:
    """Trace the comma at ``j`` back to the clause (or parenthesis) that opened its list."""
    depth = 0
    for k in range(j - 1, -1, -1):
        kind, text = words[k]
        if kind == "semicolon":
            return False
        if (kind, text) == ("other", ")"):
            depth += 1
        elif (kind, text) == ("other", "("):
            if depth == 0:  # the list is inside these parentheses: a group of tables?
                return _table_position(words, k + 1, object_type) if k + 1 < j else False
            depth -= 1
        elif depth == 0 and kind == "word":
            if text in _LIST_WORDS:
                return True
            if text in _CLAUSE_WORDS:
                return False
    return False


def _check_table_option(words: list[Token], tokens: list[Token], i: int, label: str) -> None:
    """MySQL table options that keep rows on another server or in files outside."""
    text = words[i][1]
    following = words[i + 1] if i + 1 < len(words) else _NOTHING
    value = words[i + 2] if following == ("other", "=") and i + 2 < len(words) else following
    if text in _OUTSIDE_TABLE_OPTIONS and (following[1] == "=" or following[0] == "single"):
        raise UnsafeDumpError(f"{label}: {tokens[i][1]} puts the rows outside the database")
    if text in ("DATA", "INDEX") and following == ("word", "DIRECTORY"):
        raise UnsafeDumpError(f"{label}: {text} DIRECTORY puts files outside the database")
    if text == "ENGINE" and _unquoted(value) in _OUTSIDE_ENGINES:
        raise UnsafeDumpError(f"{label}: ENGINE={value[1]} keeps the rows outside the database")


def _check_sequence_literal(
    words: list[Token],
    tokens: list[Token],
    i: int,
    label: str,
    schemas: frozenset[str] = frozenset(),
) -> None:
    """PostgreSQL names relations in strings: nextval('s.seq'), 's.t'::regclass."""
    as_regclass = words[i + 1 : i + 3] == [("other", ":"), ("other", ":")] and (
        _word(words, i + 3) in _REGCLASS
    )
    in_call = i >= 2 and words[i - 1] == ("other", "(") and _word(words, i - 2) in _SEQUENCE_CALLS
    if not (as_regclass or in_call):
        return
    value = tokens[i][1]
    quote = value[-1]  # ' or, in MySQL without ANSI_QUOTES, "
    body = value[value.index(quote) + 1 : -1].replace(quote * 2, quote)
    outside_quotes = re.sub(r'"(?:[^"]|"")*"', "", body)
    if "." in outside_quotes and _literal_schema(body) not in schemas:
        raise UnsafeDumpError(f"{label}: refers to {body} in another schema")


_NAME_PART = r'"(?:[^"]|"")*"|[A-Za-z_][A-Za-z0-9_$]*'
_TWO_PART = re.compile(rf"\s*({_NAME_PART})\.(?:{_NAME_PART})\s*")


def _literal_schema(body: str) -> str | None:
    """The schema of a two-part name written in a string (``s.t``, ``"S"."t"``)."""
    match = _TWO_PART.fullmatch(body)
    if match is None:
        return None
    first = match.group(1)
    return first[1:-1].replace('""', '"') if first.startswith('"') else first.lower()


# What a routine's own search_path may name: the restored schemas (``public`` in a dump of it
# alone) and PostgreSQL's implicit ones; an empty one (``''``) names nothing.
_SEARCH_PATH = frozenset({"public", "pg_temp", "pg_catalog", "$user"})


def _check_search_path(
    words: list[Token],
    tokens: list[Token],
    i: int,
    label: str,
    schemas: frozenset[str] = frozenset(),
) -> None:
    """``SET [LOCAL|SESSION] search_path TO a, 'b'``: only the restored schema may be named,
    or unqualified names would resolve in another one."""
    j = i + 1
    if _word(words, j) in ("LOCAL", "SESSION"):
        j += 1
    if _word(words, j) != "SEARCH_PATH":
        return
    j += 1
    if j < len(words) and (words[j] == ("word", "TO") or words[j] == ("other", "=")):
        j += 1
    while j < len(words):
        kind = words[j][0]
        if kind == "single":
            values = tokens[j][1].strip("'").replace("''", "'").split(",")
        elif is_name(kind):
            values = [tokens[j].unquoted()]
        else:
            break
        for value in values:
            value = value.strip().strip('"')
            if value and value.lower() not in _SEARCH_PATH and value not in schemas:
                raise UnsafeDumpError(f"{label}: sets search_path to {value!r}")
        if j + 1 < len(words) and words[j + 1] == ("other", ","):
            j += 2
        else:
            break
