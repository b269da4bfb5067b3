"""Refuse dump statements that do more than create the object their record names.

A dump may come from anywhere; its statements are executed against a server. Each one must
be a single CREATE (or ALTER TABLE ... ADD CONSTRAINT for deferred constraints) of exactly
the object the record names, and must reach nothing beyond the database being restored
(:mod:`.references`). Quoted names are compared after unquoting.

The checks are lexical, so they run on every lexing that could be the server's
(:mod:`..sql_lexer`): the portable one (which refuses comments MySQL would execute), the
standard-strings one for references, and the restoring dialect's own (``rules``). A statement
passes only if it passes in each, so no quoting or comment trick can show the checks one
statement and the server another. Routines, whose bodies the rules cannot fully read, are
created only when the caller allows them (:func:`check_routine_allowed`).
"""

from __future__ import annotations

import functools

from ..errors import UnsafeDumpError
from ..sql_lexer import PORTABLE, STANDARD, LexerRules, Token, significant_tokens
from .references import (
    check_references,
    folded,
    is_name,
    refuse_qualified_targets,
    upper_words,
)

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


#: Object types whose body is code the server runs, during the restore too (a PostgreSQL
#: function called by a CHECK constraint, a domain, an index or a materialized view) or
#: later (MySQL events on their schedule). The lexical rules cannot read every body (a
#: PostgreSQL body is a string to its parser, and PL/pgSQL runs SQL from strings), so a dump
#: creates them only when its caller trusts it: :func:`check_routine_allowed`.
ROUTINE_TYPES = frozenset({"function", "procedure", "aggregate", "event"})


def routines_trusted(allow_routines: bool, authenticated: bool) -> bool:
    """The trust rule: a dump's routines are created when the caller allows them, or when
    the dump decrypted and authenticated under a key the caller gave (an encrypted dump;
    docs/dump-format.md, "Threat model"). Only a holder of that key could have written it,
    so it is as trusted as the deployment that holds the key. A plaintext dump proves
    nothing about its writer (anyone who can write to the bucket can make one whose
    digests check out), so it keeps the rule of ``allow_routines`` alone."""
    return allow_routines or authenticated


def check_routine_allowed(object_type: str, name: str, allow_routines: bool) -> None:
    """Raise :class:`UnsafeDumpError` for a routine unless the caller allowed routines
    (``allow_routines`` here is the outcome of :func:`routines_trusted`)."""
    if allow_routines or object_type not in ROUTINE_TYPES:
        return
    raise UnsafeDumpError(
        f"{object_type} {name!r}: the dump creates a routine, whose body is code the server "
        "runs and these checks cannot fully read; restore it only from a source you trust, "
        "with allow_routines=True (CLI --allow-routines, RestoreOperator(allow_routines=True)), "
        "or write the dump encrypted under your key (an authenticated dump is trusted)"
    )


def check_statement(
    statement: str,
    object_type: str,
    name: str,
    *,
    rules: LexerRules | None = None,
    allow_body: bool = False,
    schema: str | None = None,
    schemas: frozenset[str] = frozenset(),
) -> None:
    """Raise :class:`UnsafeDumpError` unless ``statement`` only creates ``name``.

    ``rules`` is the restoring server's lexing (:func:`..sql_lexer.LexerRules.mysql`,
    :data:`..sql_lexer.POSTGRESQL`, :data:`..sql_lexer.SQLITE`), checked besides the portable
    lexings; ``None`` checks these alone.

    ``allow_body`` admits semicolons inside a routine or trigger body (MySQL BEGIN ... END);
    use it only where the driver runs one statement per call, so nothing can follow.

    ``schema`` is the schema the object is created in when the statement must name it
    (``schema.name``; PostgreSQL dumps of several schemas), ``None`` when the name must be
    unqualified. ``schemas`` are the schemas the restore replaces: a reference qualified by
    one of them stays inside what is restored; any other qualifier is refused as before.
    """
    args = (statement, object_type, name, rules, allow_body, schema, schemas)
    if all(isinstance(arg, str) for arg in (statement, object_type, name, schema or "")):
        _check_statement(*args)
    else:  # a dump's malformed value (a list, say) is refused by the checks, not by hash()
        _check_statement.__wrapped__(*args)


#: Statements whose checks passed, kept (:func:`check_statement`): a restore checks each
#: record's statements when it reads the record and again when the writer applies it.
CHECKS_KEPT = 32


@functools.lru_cache(maxsize=CHECKS_KEPT)
def _check_statement(
    statement: str,
    object_type: str,
    name: str,
    rules: LexerRules | None,
    allow_body: bool,
    schema: str | None,
    schemas: frozenset[str],
) -> None:
    """:func:`check_statement`'s checks; a statement that passed them with the same
    arguments passes again without them (a failure is not kept: it raises each time)."""
    label = f"{object_type} {name!r}"
    if not isinstance(statement, str) or not statement.strip():
        raise UnsafeDumpError(f"{label}: empty statement")
    tokens = _lexed(statement, PORTABLE, label)
    _check_lexing(tokens, object_type, name, label, allow_body, schema, schemas, PORTABLE)
    try:
        standard = significant_tokens(statement, STANDARD)
    except UnsafeDumpError:
        standard = tokens  # not standard SQL (MySQL's backslash escapes): checked above
    if standard != tokens:
        check_references(standard, 0, object_type, label, schemas)
    if rules is not None:
        own = _lexed(statement, rules, label)
        _check_lexing(own, object_type, name, label, allow_body, schema, schemas, rules)


def _lexed(statement: str, rules: LexerRules, label: str) -> list[Token]:
    try:
        return significant_tokens(statement, rules)
    except UnsafeDumpError as exc:
        raise UnsafeDumpError(f"{label}: {exc}") from None


def _check_lexing(
    tokens: list[Token],
    object_type: str,
    name: str,
    label: str,
    allow_body: bool,
    schema: str | None,
    schemas: frozenset[str],
    rules: LexerRules,
) -> None:
    """Every check of one lexing of the statement: one statement, the CREATE head, the
    created name, the table it attaches to, then the references (:mod:`.references`)."""
    if not allow_body and any(kind == "semicolon" for kind, _ in tokens):
        raise UnsafeDumpError(f"{label}: more than one statement")
    words = upper_words(tokens)
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
    after = words[i + 1 : i + 2]
    if object_type == "index" and not _on_table(words, i + 1):
        raise UnsafeDumpError(f"{label}: expected ON <table> after the name")
    refuse_qualified_targets(words, tokens, i + 1, object_type, label, schemas)
    if object_type == "table" and after not in _COLUMNS_FOLLOW.get(rules.dialect, _COLUMNS):
        # Every dialect's backup writes the column list (or PARTITION OF); CREATE TABLE ... AS
        # SELECT / LIKE / OF would fill or shape the table from elsewhere.
        raise UnsafeDumpError(f"{label}: expected the column list after the name")
    if object_type == "event" and words[start] == ("word", "TRIGGER"):
        raise UnsafeDumpError(f"{label}: an event trigger acts on the whole database")
    if object_type == "extension" and tokens[i].unquoted().lower() in _OUTSIDE_EXTENSIONS:
        raise UnsafeDumpError(f"{label}: this extension reaches beyond the database")
    check_references(tokens, i + 1, object_type, label, schemas, words)


# What may follow a created table's name: its column list (PostgreSQL: or PARTITION OF).
_COLUMNS = [[("other", "(")], [("word", "PARTITION")]]
_COLUMNS_FOLLOW = {"mysql": [[("other", "(")]]}


def _on_table(words: list[Token], i: int) -> bool:
    """Whether ``ON [ONLY] <name>`` starts at ``i`` (an index's table follows its name)."""
    if words[i : i + 1] != [("word", "ON")]:
        return False
    i += 2 if words[i + 1 : i + 2] == [("word", "ONLY")] else 1
    return i < len(words) and is_name(words[i].kind)


def _is_modifier(words: list[Token], i: int) -> bool:
    """Whether word ``i`` may stand between CREATE and the object keyword.

    Besides plain modifiers (OR REPLACE, UNIQUE, ...) MySQL writes ``ALGORITHM=...`` and
    ``DEFINER=`user`@`host``` there: a value (word, name or string) only after ``=`` or ``@``.
    """
    kind, text = words[i]
    if kind == "word" and text in _MODIFIERS:
        return True
    if kind == "other":
        return text in ("=", "@")
    after_sign = i > 1 and words[i - 1] in (("other", "="), ("other", "@"))
    return after_sign and kind in ("word", "backtick", "single", "double")


def _expect_name(
    tokens: list[Token], i: int, name: str, label: str, schema: str | None = None
) -> int:
    """Check the created name at ``i`` (``schema.name`` when ``schema`` is given); return the
    index of its last token."""
    if i >= len(tokens) or not is_name(tokens[i].kind):
        raise UnsafeDumpError(f"{label}: no object name after the keyword")
    found = tokens[i].unquoted()
    qualified = i + 1 < len(tokens) and tokens[i + 1] == ("other", ".")
    if schema is not None:
        if not qualified or folded(tokens[i]) != schema:
            raise UnsafeDumpError(f"{label}: statement does not create it in schema {schema!r}")
        i += 2
        if i >= len(tokens) or not is_name(tokens[i].kind):
            raise UnsafeDumpError(f"{label}: no object name after {found}.")
        found = tokens[i].unquoted()
        if schema != "public" and name.startswith(schema + "."):
            name = name[len(schema) + 1 :]
        qualified = i + 1 < len(tokens) and tokens[i + 1] == ("other", ".")
    if qualified:
        raise UnsafeDumpError(f"{label}: qualified names are not allowed ({found}.…)")
    if found != name and not (tokens[i].kind == "word" and found.lower() == name.lower()):
        raise UnsafeDumpError(f"{label}: statement creates {found!r}, not {name!r}")
    return i


def _check_constraint(
    words: list[Token],
    tokens: list[Token],
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
    if i >= len(tokens) or not is_name(tokens[i].kind):
        raise UnsafeDumpError(f"{label}: no table name")
    if schema is not None:  # the table is named schema.table, the constraint itself bare
        if tokens[i + 1 : i + 2] != [("other", ".")] or folded(tokens[i]) != schema:
            raise UnsafeDumpError(f"{label}: the table is not in schema {schema!r}")
        i += 2
        if i >= len(tokens) or not is_name(tokens[i].kind):
            raise UnsafeDumpError(f"{label}: no table name")
    i += 1
    if words[i : i + 2] != [("word", "ADD"), ("word", "CONSTRAINT")]:
        raise UnsafeDumpError(f"{label}: statement is not ALTER TABLE ... ADD CONSTRAINT")
    _expect_name(tokens, i + 2, name, label)
    refuse_qualified_targets(words, tokens, i + 3, "constraint", label, schemas)
    check_references(tokens, i + 3, "constraint", label, schemas, words)


# PostgreSQL extensions that reach other databases or servers, the server's files or its
# operating system.
_OUTSIDE_EXTENSIONS = frozenset(
    {"dblink", "postgres_fdw", "file_fdw", "adminpack", "plpython3u", "plpythonu",
     "plpython2u", "plperlu", "pltclu", "lo"}
)  # fmt: skip
