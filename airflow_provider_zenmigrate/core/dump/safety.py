"""Refuse dump statements that do more than create the object their record names.

A dump may come from anywhere; its statements are executed against a server. Each one must
be a single CREATE (or ALTER TABLE ... ADD CONSTRAINT for deferred constraints) of exactly
the object the record names. Quoted names are compared after unquoting.
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
  | (?P<dollar>\$(?P<tag>[A-Za-z_][A-Za-z0-9_]*)?\$.*?\$(?P=tag)?\$)
  | (?P<single>'(?:[^'\\]|\\.|'')*')
  | (?P<double>"(?:[^"]|"")*")
  | (?P<backtick>`(?:[^`]|``)*`)
  | (?P<semicolon>;)
  | (?P<word>[A-Za-z_][A-Za-z0-9_$]*)
  | (?P<other>.)
    """,
    re.VERBOSE | re.DOTALL,
)


def _tokens(statement: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    while pos < len(statement):
        match = _TOKEN.match(statement, pos)
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


def check_statement(
    statement: str, object_type: str, name: str, *, allow_body: bool = False
) -> None:
    """Raise :class:`UnsafeDumpError` unless ``statement`` only creates ``name``.

    ``allow_body`` admits semicolons inside a routine or trigger body (MySQL BEGIN ... END);
    use it only where the driver runs one statement per call, so nothing can follow.
    """
    label = f"{object_type} {name!r}"
    if not isinstance(statement, str) or not statement.strip():
        raise UnsafeDumpError(f"{label}: empty statement")
    tokens = _tokens(statement)
    while tokens and tokens[-1][0] == "semicolon":
        tokens.pop()
    if not allow_body and any(kind == "semicolon" for kind, _ in tokens):
        raise UnsafeDumpError(f"{label}: more than one statement")
    words = [(k, t.upper() if k == "word" else t) for k, t in tokens]
    if object_type == "constraint":
        _check_constraint(words, tokens, name, label)
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
    _expect_name(tokens, i, name, label)
    _refuse_qualified_targets(words, tokens, i + 1, object_type, label)


# The table an index, trigger or rule is attached to follows this keyword.
_TARGET_KEYWORD = {"index": "ON", "trigger": "ON", "rule": "TO"}


def _refuse_qualified_targets(
    words: list[tuple[str, str]],
    tokens: list[tuple[str, str]],
    start: int,
    object_type: str,
    label: str,
) -> None:
    """Objects are created in a staging area: a schema- or database-qualified target would
    reach past it into the live database, so the table an index, trigger or rule attaches
    to, and every table a foreign key references, must be unqualified."""
    positions = []
    keyword = _TARGET_KEYWORD.get(object_type)
    if keyword is not None and ("word", keyword) in words[start:]:
        positions.append(words.index(("word", keyword), start) + 1)
    positions += [n + 1 for n in range(start, len(words)) if words[n] == ("word", "REFERENCES")]
    for at in positions:
        if at < len(tokens) and tokens[at] == ("word", "ONLY"):
            at += 1
        if at + 1 < len(tokens) and _is_name(tokens[at][0]) and tokens[at + 1] == ("other", "."):
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


def _expect_name(tokens: list[tuple[str, str]], i: int, name: str, label: str) -> None:
    if i >= len(tokens) or not _is_name(tokens[i][0]):
        raise UnsafeDumpError(f"{label}: no object name after the keyword")
    found = _unquote(*tokens[i])
    if i + 1 < len(tokens) and tokens[i + 1] == ("other", "."):
        raise UnsafeDumpError(f"{label}: qualified names are not allowed ({found}.…)")
    if found != name and not (tokens[i][0] == "word" and found.lower() == name.lower()):
        raise UnsafeDumpError(f"{label}: statement creates {found!r}, not {name!r}")


def _check_constraint(
    words: list[tuple[str, str]], tokens: list[tuple[str, str]], name: str, label: str
) -> None:
    # ALTER TABLE [ONLY] <table> ADD CONSTRAINT <name> ...
    if words[:2] != [("word", "ALTER"), ("word", "TABLE")]:
        raise UnsafeDumpError(f"{label}: statement is not ALTER TABLE ... ADD CONSTRAINT")
    i = 2
    if i < len(words) and words[i] == ("word", "ONLY"):
        i += 1
    if i >= len(tokens) or not _is_name(tokens[i][0]):
        raise UnsafeDumpError(f"{label}: no table name")
    i += 1
    if words[i : i + 2] != [("word", "ADD"), ("word", "CONSTRAINT")]:
        raise UnsafeDumpError(f"{label}: statement is not ALTER TABLE ... ADD CONSTRAINT")
    _expect_name(tokens, i + 2, name, label)
    _refuse_qualified_targets(words, tokens, i + 3, "constraint", label)
