"""Schema qualifiers of a dump's statements moved to other schemas, for a restore that
stages its tables in committed schemas of their own (:mod:`.staging`).

Only the places a qualifier names an object that the server resolves when the statement
runs, and stores by its oid, are moved: a name followed by ``.`` in the statement's code,
and the qualifier inside a ``'schema.name'::regclass`` (``regtype``, ...) literal. Strings,
comments and dollar-quoted function bodies stay as written: a body is stored as text and
resolved when it runs, after the staged schemas have been renamed to the dump's names.
Whatever text the statement stores is checked for the staging names before the swap
commits (:func:`.staging.leaked_names`).
"""

from __future__ import annotations

from collections.abc import Mapping

from ...sql_lexer import POSTGRESQL, Token, lex
from .names import quote_ident

_NAMES = frozenset({"word", "double"})
_SKIPPED = frozenset({"space", "comment"})


def _folded(token: Token) -> str:
    """The name a name token stands for: unquoted words fold to lower case."""
    return token.text.lower() if token.kind == "word" else token.unquoted()


def _next(tokens: list[Token], i: int) -> int:
    """Index of the first significant token after ``i`` (``len(tokens)`` if none)."""
    i += 1
    while i < len(tokens) and tokens[i].kind in _SKIPPED:
        i += 1
    return i


def _is_oid_cast(tokens: list[Token], i: int) -> bool:
    """Whether the literal at ``i`` is cast to an oid alias type (``::regclass`` ...)."""
    first = _next(tokens, i)
    second = _next(tokens, first)
    kind = _next(tokens, second)
    return (
        kind < len(tokens)
        and tokens[first].text == ":"
        and tokens[second].text == ":"
        and tokens[kind].kind == "word"
        and tokens[kind].text.lower().startswith("reg")
    )


def _qualifier(value: str) -> tuple[str, int] | None:
    """The schema an object name's text starts with (as the server reads it: quoted, or
    folded to lower case) and where that qualifier ends; ``None`` for an unqualified one."""
    if value.startswith('"'):
        end = 1
        while True:
            end = value.find('"', end)
            if end < 0:
                return None
            if value[end + 1 : end + 2] != '"':
                break
            end += 2
        name, end = value[1:end].replace('""', '"'), end + 1
    else:
        end = value.find(".")
        if end < 0 or '"' in value[:end]:
            return None
        name = value[:end].lower()
    return (name, end) if value[end : end + 1] == "." else None


def _literal(text: str, schemas: Mapping[str, str]) -> str:
    """A plain ``'...'`` literal with its leading schema qualifier moved (if it has one)."""
    if not (text.startswith("'") and text.endswith("'")):
        return text  # E'...' and other prefixed forms are left as written
    value = text[1:-1].replace("''", "'")
    found = _qualifier(value)
    if found is None or found[0] not in schemas:
        return text
    moved = quote_ident(schemas[found[0]]) + value[found[1] :]
    return "'" + moved.replace("'", "''") + "'"


def move_schemas(statement: str, schemas: Mapping[str, str]) -> str:
    """``statement`` with every qualifier naming a schema of ``schemas`` (name -> staged
    name) moved to its staged name (see the module docstring)."""
    if not schemas:
        return statement
    tokens = lex(statement, POSTGRESQL)
    out: list[str] = []
    for i, token in enumerate(tokens):
        text = token.text
        if token.kind in _NAMES:
            name = _folded(token)
            following = _next(tokens, i)
            if name in schemas and following < len(tokens) and tokens[following].text == ".":
                text = quote_ident(schemas[name])
        elif token.kind == "single" and _is_oid_cast(tokens, i):
            text = _literal(text, schemas)
        out.append(text)
    return "".join(out)
