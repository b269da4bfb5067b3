"""Refuse dump statements that do more than create the object their record names.

A dump may come from anywhere; its statements are executed against a server. Each one must
be a single CREATE (or ALTER TABLE ... ADD CONSTRAINT for deferred constraints) of exactly
the object the record names. Quoted names are compared after unquoting.

Nothing in a statement may reach beyond the database being restored (docs/dump-format.md,
"What a dump may create"): no reference qualified by another database or schema to a table,
view, sequence or function; no statement or call that acts on the server, its files or other
databases; no dynamic SQL. The rules are lexical; :func:`check_references` applies them to
any dialect's tokens (MySQL's own lexer calls it too). Routines, whose bodies the rules cannot
fully read, are created only when the caller allows them (:func:`check_routine_allowed`).
"""

from __future__ import annotations

import re

from ..errors import UnsafeDumpError

# The keyword(s) that must follow CREATE (after modifiers) for each object type.
_KEYWORDS: dict[str, tuple[str, ...]] = {
    "table": ("TABLE",),
    "view": ("VIEW",),
    "materialized_view": ("MATERIALIZED", "VIEW"),
    "trigger": ("TRIGGER",),
    "procedure": ("PROCEDURE",),
    "function": ("FUNCTION",),
    "aggregate": ("AGGREGATE",),
    "event": ("EVENT",),
    "sequence": ("SEQUENCE",),
    "type": ("TYPE",),
    "domain": ("DOMAIN",),
    "index": ("INDEX",),
    "extension": ("EXTENSION",),
    "rule": ("RULE",),
    "policy": ("POLICY",),
}
# Words allowed between CREATE and the object keyword.
_MODIFIERS = frozenset(
    {
        "OR",
        "REPLACE",
        "UNIQUE",
        "UNLOGGED",
        "CONSTRAINT",
        "SQL",
        "SECURITY",
        "DEFINER",
        "INVOKER",
        "ALGORITHM",
        "UNDEFINED",
        "MERGE",
        "TEMPTABLE",
        "AGGREGATE",
        "RECURSIVE",
    }
)

_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<line_comment>--[^\n]*)
  | (?P<block_comment>/\*.*?\*/)
  | (?P<dollar>\$\$.*?\$\$|\$(?P<tag>[A-Za-z_][A-Za-z0-9_]*)\$.*?\$(?P=tag)\$)
  | (?P<single>'(?:[^'\\]|\\.|'')*')
  | (?P<double>"(?:[^"]|"")*")
  | (?P<backtick>`(?:[^`]|``)*`)
  | (?P<semicolon>;)
  | (?P<word>[A-Za-z_\u0080-\U0010ffff][A-Za-z0-9_$\u0080-\U0010ffff]*)
  | (?P<other>.)
    """,
    re.VERBOSE | re.DOTALL,
)


# Standard SQL strings (PostgreSQL, SQLite): a backslash is an ordinary character, except in
# E'...'. The references are checked in both lexings, so neither can hide one.
_TOKEN_STANDARD = re.compile(
    _TOKEN.pattern.replace(
        r"""(?P<single>'(?:[^'\\]|\\.|'')*')""",
        r"""(?P<single>[Ee]'(?:[^'\\]|\\.|'')*'|'(?:[^']|'')*')""",
    ),
    re.VERBOSE | re.DOTALL,
)
assert _TOKEN_STANDARD.pattern != _TOKEN.pattern


def _tokens(statement: str, pattern: re.Pattern[str] = _TOKEN) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    while pos < len(statement):
        match = pattern.match(statement, pos)
        if match is None or match.end() == pos:  # unterminated quote or comment
            raise UnsafeDumpError(f"unterminated quote or comment at offset {pos}")
        kind = match.lastgroup or "other"
        if kind == "tag":
            kind = "dollar"
        if kind == "block_comment" and match.group()[2:3] in ("!", "M"):
            # MySQL executes the contents of /*! ... */ and /*M! ... */ comments.
            raise UnsafeDumpError(f"executable comment at offset {pos}")
        if kind not in ("space", "line_comment", "block_comment"):
            out.append((kind, match.group()))
        pos = match.end()
    return out


def _unquote(kind: str, text: str) -> str:
    if kind == "double":
        return text[1:-1].replace('""', '"')
    if kind == "backtick":
        return text[1:-1].replace("``", "`")
    return text


def _is_name(kind: str) -> bool:
    return kind in ("word", "double", "backtick")


#: Object types whose body is code the server runs, during the restore too (a PostgreSQL
#: function called by a CHECK constraint, a domain, an index or a materialized view) or
#: later (MySQL events on their schedule). The lexical rules cannot read every body (a
#: PostgreSQL body is a string to its parser, and PL/pgSQL runs SQL from strings), so a dump
#: creates them only when its caller trusts it: :func:`check_routine_allowed`.
ROUTINE_TYPES = frozenset({"function", "procedure", "aggregate", "event"})


def check_routine_allowed(object_type: str, name: str, allow_routines: bool) -> None:
    """Raise :class:`UnsafeDumpError` for a routine unless the caller allowed routines."""
    if allow_routines or object_type not in ROUTINE_TYPES:
        return
    raise UnsafeDumpError(
        f"{object_type} {name!r}: the dump creates a routine, whose body is code the server "
        "runs and these checks cannot fully read; restore it only from a source you trust, "
        "with allow_routines=True (CLI --allow-routines, RestoreOperator(allow_routines=True))"
    )


def check_statement(
    statement: str,
    object_type: str,
    name: str,
    *,
    allow_body: bool = False,
    schema: str | None = None,
    schemas: frozenset[str] = frozenset(),
) -> None:
    """Raise :class:`UnsafeDumpError` unless ``statement`` only creates ``name``.

    ``allow_body`` admits semicolons inside a routine or trigger body (MySQL BEGIN ... END);
    use it only where the driver runs one statement per call, so nothing can follow.

    ``schema`` is the schema the object is created in when the statement must name it
    (``schema.name``; PostgreSQL dumps of several schemas), ``None`` when the name must be
    unqualified. ``schemas`` are the schemas the restore replaces: a reference qualified by
    one of them stays inside what is restored; any other qualifier is refused as before.
    """
    label = f"{object_type} {name!r}"
    if not isinstance(statement, str) or not statement.strip():
        raise UnsafeDumpError(f"{label}: empty statement")
    try:
        tokens = _tokens(statement)
    except UnsafeDumpError as exc:
        raise UnsafeDumpError(f"{label}: {exc}") from None
    while tokens and tokens[-1][0] == "semicolon":
        tokens.pop()
    if not allow_body and any(kind == "semicolon" for kind, _ in tokens):
        raise UnsafeDumpError(f"{label}: more than one statement")
    words = [(k, t.upper() if k == "word" else t) for k, t in tokens]
    if object_type == "constraint":
        _check_constraint(words, tokens, name, label, schema, schemas)
        return
    keywords = _KEYWORDS.get(object_type)
    if keywords is None:
        raise UnsafeDumpError(f"{label}: unknown object type")
    if not words or words[0] != ("word", "CREATE"):
        raise UnsafeDumpError(f"{label}: statement is not a CREATE")
    i = 1
    while i < len(words) and words[i][1] != keywords[0]:
        if not _is_modifier(words, i):
            raise UnsafeDumpError(f"{label}: unexpected {tokens[i][1]!r} after CREATE")
        i += 1
    for keyword in keywords:
        if i >= len(words) or words[i] != ("word", keyword):
            raise UnsafeDumpError(f"{label}: statement does not create a {object_type}")
        i += 1
    if words[i : i + 3] == [("word", "IF"), ("word", "NOT"), ("word", "EXISTS")]:
        i += 3
    if object_type == "index" and i < len(words) and words[i] == ("word", "CONCURRENTLY"):
        raise UnsafeDumpError(f"{label}: CONCURRENTLY is not allowed")
    start = i
    i = _expect_name(tokens, i, name, label, schema)
    _refuse_qualified_targets(words, tokens, i + 1, object_type, label, schemas)
    if object_type == "table" and words[i + 1 : i + 2] not in ([("other", "(")], [_PARTITION]):
        # Every dialect's backup writes the column list (or PARTITION OF); CREATE TABLE ... AS
        # SELECT / LIKE / OF would fill or shape the table from elsewhere.
        raise UnsafeDumpError(f"{label}: expected the column list after the name")
    if object_type == "event" and words[start] == ("word", "TRIGGER"):
        raise UnsafeDumpError(f"{label}: an event trigger acts on the whole database")
    if object_type == "extension" and _unquote(*tokens[i]).lower() in _OUTSIDE_EXTENSIONS:
        raise UnsafeDumpError(f"{label}: this extension reaches beyond the database")
    check_references(tokens, i + 1, object_type, label, schemas)
    standard = _standard_tokens(statement)
    if standard is not None and standard != tokens:
        check_references(standard, 0, object_type, label, schemas)


_PARTITION = ("word", "PARTITION")


def _standard_tokens(statement: str) -> list[tuple[str, str]] | None:
    """The statement as PostgreSQL and SQLite lex it; ``None`` if they could not."""
    try:
        tokens = _tokens(statement, _TOKEN_STANDARD)
    except UnsafeDumpError:
        return None  # not standard SQL (MySQL's backslash escapes): MySQL checks it itself
    while tokens and tokens[-1][0] == "semicolon":
        tokens.pop()
    return tokens


# The table an index, trigger or rule is attached to follows this keyword.
_TARGET_KEYWORD = {"index": "ON", "trigger": "ON", "rule": "TO", "policy": "ON"}


def _refuse_qualified_targets(
    words: list[tuple[str, str]],
    tokens: list[tuple[str, str]],
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
        positions.append(words.index(("word", keyword), start) + 1)
    positions += [n + 1 for n in range(start, len(words)) if words[n] == ("word", "REFERENCES")]
    for at in positions:
        if at < len(tokens) and tokens[at] == ("word", "ONLY"):
            at += 1
        if (
            at + 1 < len(tokens)
            and _is_name(tokens[at][0])
            and tokens[at + 1] == ("other", ".")
            and _folded(*tokens[at]) not in schemas
        ):
            raise UnsafeDumpError(
                f"{label}: refers to {_unquote(*tokens[at])}.… outside the restored database"
            )


def _is_modifier(words: list[tuple[str, str]], i: int) -> bool:
    """Whether word ``i`` may stand between CREATE and the object keyword.

    Besides plain modifiers (OR REPLACE, UNIQUE, ...) MySQL writes ``ALGORITHM=...`` and
    ``DEFINER=`user`@`host``` there.
    """
    kind, text = words[i]
    if kind == "word" and text in _MODIFIERS:
        return True
    if kind == "other":
        return text in ("=", "@")
    after_sign = i > 1 and words[i - 1][1] in ("=", "@")
    return kind in ("backtick", "single", "double") or (kind == "word" and after_sign)


def _folded(kind: str, text: str) -> str:
    """A name as PostgreSQL resolves it: unquoted words fold to lower case."""
    return text.lower() if kind == "word" else _unquote(kind, text)


def _expect_name(
    tokens: list[tuple[str, str]], i: int, name: str, label: str, schema: str | None = None
) -> int:
    """Check the created name at ``i`` (``schema.name`` when ``schema`` is given); return the
    index of its last token."""
    if i >= len(tokens) or not _is_name(tokens[i][0]):
        raise UnsafeDumpError(f"{label}: no object name after the keyword")
    found = _unquote(*tokens[i])
    qualified = i + 1 < len(tokens) and tokens[i + 1] == ("other", ".")
    if schema is not None:
        if not qualified or _folded(*tokens[i]) != schema:
            raise UnsafeDumpError(f"{label}: statement does not create it in schema {schema!r}")
        i += 2
        if i >= len(tokens) or not _is_name(tokens[i][0]):
            raise UnsafeDumpError(f"{label}: no object name after {found}.")
        found = _unquote(*tokens[i])
        if schema != "public" and name.startswith(schema + "."):
            name = name[len(schema) + 1 :]
        qualified = i + 1 < len(tokens) and tokens[i + 1] == ("other", ".")
    if qualified:
        raise UnsafeDumpError(f"{label}: qualified names are not allowed ({found}.…)")
    if found != name and not (tokens[i][0] == "word" and found.lower() == name.lower()):
        raise UnsafeDumpError(f"{label}: statement creates {found!r}, not {name!r}")
    return i


def _check_constraint(
    words: list[tuple[str, str]],
    tokens: list[tuple[str, str]],
    name: str,
    label: str,
    schema: str | None = None,
    schemas: frozenset[str] = frozenset(),
) -> None:
    # ALTER TABLE [ONLY] <table> ADD CONSTRAINT <name> ...
    if words[:2] != [("word", "ALTER"), ("word", "TABLE")]:
        raise UnsafeDumpError(f"{label}: statement is not ALTER TABLE ... ADD CONSTRAINT")
    i = 2
    if i < len(words) and words[i] == ("word", "ONLY"):
        i += 1
    if i >= len(tokens) or not _is_name(tokens[i][0]):
        raise UnsafeDumpError(f"{label}: no table name")
    if schema is not None:  # the table is named schema.table, the constraint itself bare
        if tokens[i + 1 : i + 2] != [("other", ".")] or _folded(*tokens[i]) != schema:
            raise UnsafeDumpError(f"{label}: the table is not in schema {schema!r}")
        i += 2
        if i >= len(tokens) or not _is_name(tokens[i][0]):
            raise UnsafeDumpError(f"{label}: no table name")
    i += 1
    if words[i : i + 2] != [("word", "ADD"), ("word", "CONSTRAINT")]:
        raise UnsafeDumpError(f"{label}: statement is not ALTER TABLE ... ADD CONSTRAINT")
    _expect_name(tokens, i + 2, name, label)
    _refuse_qualified_targets(words, tokens, i + 3, "constraint", label, schemas)
    check_references(tokens, i + 3, "constraint", label, schemas)


# -- references beyond the restored database --------------------------------------------------
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
# PostgreSQL extensions and routine languages that reach other databases or servers, the
# server's files or its operating system.
_OUTSIDE_EXTENSIONS = frozenset(
    {"dblink", "postgres_fdw", "file_fdw", "adminpack", "plpython3u", "plpythonu",
     "plpython2u", "plperlu", "pltclu", "lo"}
)  # fmt: skip
_UNTRUSTED_LANGUAGES = frozenset(
    {"C", "INTERNAL", "PLPYTHON3U", "PLPYTHONU", "PLPYTHON2U", "PLPERLU", "PLTCLU"}
)
_REGCLASS = frozenset({"REGCLASS", "REGPROC", "REGPROCEDURE", "REGNAMESPACE"})
_SEQUENCE_CALLS = frozenset({"NEXTVAL", "SETVAL", "CURRVAL", "TO_REGCLASS"})


def check_references(
    tokens: list[tuple[str, str]],
    start: int,
    object_type: str,
    label: str,
    schemas: frozenset[str] = frozenset(),
) -> None:
    """Raise :class:`UnsafeDumpError` if ``tokens[start:]`` reach beyond the database.

    ``tokens`` are the statement's significant tokens, ``(kind, text)`` with kinds ``word``,
    ``double`` / ``backtick`` (quoted names), ``single`` / ``dollar`` (strings),
    ``semicolon`` and ``other``; ``start`` is the first token after the object's name.
    """
    words = [(k, t.upper() if k == "word" else t) for k, t in tokens]
    n = len(words)
    for i in range(start, n):
        kind, text = words[i]
        following = words[i + 1] if i + 1 < n else ("", "")
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
            if text == "PREPARE" and _is_name(following[0]) and _word(words, i + 2) == "FROM":
                raise UnsafeDumpError(f"{label}: PREPARE runs SQL from a string")
            if object_type == "table":
                _check_table_option(words, tokens, i, label)
            if text == "SET":
                _check_search_path(words, tokens, i, label, schemas)
            if text == "LANGUAGE" and _unquoted(*following) in _UNTRUSTED_LANGUAGES:
                raise UnsafeDumpError(f"{label}: LANGUAGE {tokens[i + 1][1]} runs outside SQL")
        elif (kind, text) == ("other", "@") and _word(words, i + 1) in ("GLOBAL", "PERSIST"):
            if i > 0 and words[i - 1] == ("other", "@"):
                raise UnsafeDumpError(f"{label}: @@{tokens[i + 1][1]} changes the server")
        elif kind == "single":
            _check_sequence_literal(words, tokens, i, label, schemas)
        if (
            _is_name(kind)
            and not _after_dot(words, i)
            and following == ("other", ".")
            and _folded(*tokens[i]) not in schemas
        ):
            _check_dotted(words, tokens, i, object_type, label)


_CALL_WHY = "reaches the server's files, other databases or runs SQL from a string"


def _word(words: list[tuple[str, str]], i: int) -> str:
    return words[i][1] if 0 <= i < len(words) and words[i][0] == "word" else ""


def _after_dot(words: list[tuple[str, str]], i: int) -> bool:
    return i > 0 and words[i - 1] == ("other", ".")


def _unquoted(kind: str, text: str) -> str:
    return _unquote(kind, text).upper() if kind != "word" else text


def _check_dotted(
    words: list[tuple[str, str]],
    tokens: list[tuple[str, str]],
    i: int,
    object_type: str,
    label: str,
) -> None:
    """``a.b`` or ``a.b.c`` starting at token ``i``."""
    parts = [i]
    while (
        parts[-1] + 2 < len(words)
        and words[parts[-1] + 1] == ("other", ".")
        and _is_name(words[parts[-1] + 2][0])
    ):
        parts.append(parts[-1] + 2)
    if len(parts) < 2:
        return
    previous = words[i - 1] if i > 0 else ("", "")
    if previous[1] in (")", "]", "@", ":") and previous[0] == "other":
        return  # a field of an expression, a variable (@@session.x), a cast's type (::s.t)
    first = _unquoted(*words[i])
    if words[i][0] == "word" and first.isdigit():
        return  # a number (MySQL lexes 1.5 as words)
    if first == _CATALOG:
        return
    shown = ".".join(_unquote(*tokens[p]) for p in parts)
    if len(parts) > 2:
        raise UnsafeDumpError(f"{label}: refers to {shown} in another database or schema")
    after = words[parts[-1] + 1] if parts[-1] + 1 < len(words) else ("", "")
    if after == ("other", "("):
        raise UnsafeDumpError(f"{label}: calls {shown}() of another database or schema")
    if _table_position(words, i, object_type):
        raise UnsafeDumpError(f"{label}: refers to {shown} in another database or schema")


def _table_position(words: list[tuple[str, str]], i: int, object_type: str) -> bool:
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


def _comma_in_table_list(words: list[tuple[str, str]], j: int, object_type: str) -> bool:
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


def _check_table_option(
    words: list[tuple[str, str]], tokens: list[tuple[str, str]], i: int, label: str
) -> None:
    """MySQL table options that keep rows on another server or in files outside."""
    text = words[i][1]
    following = words[i + 1] if i + 1 < len(words) else ("", "")
    value = words[i + 2] if following == ("other", "=") and i + 2 < len(words) else following
    if text in _OUTSIDE_TABLE_OPTIONS and (following[1] == "=" or following[0] == "single"):
        raise UnsafeDumpError(f"{label}: {tokens[i][1]} puts the rows outside the database")
    if text in ("DATA", "INDEX") and following == ("word", "DIRECTORY"):
        raise UnsafeDumpError(f"{label}: {text} DIRECTORY puts files outside the database")
    if text == "ENGINE" and _unquoted(*value) in _OUTSIDE_ENGINES:
        raise UnsafeDumpError(f"{label}: ENGINE={value[1]} keeps the rows outside the database")


def _check_sequence_literal(
    words: list[tuple[str, str]],
    tokens: list[tuple[str, str]],
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
    body = value[value.index("'") + 1 : -1].replace("''", "'")
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
    words: list[tuple[str, str]],
    tokens: list[tuple[str, str]],
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
        elif _is_name(kind):
            values = [_unquote(*tokens[j])]
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
