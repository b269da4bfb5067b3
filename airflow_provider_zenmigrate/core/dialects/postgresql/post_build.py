"""Which objects after the data a staged PostgreSQL restore (:mod:`.staging`) has its
workers build in the staging schemas before the swap, as ``pg_restore -j`` builds them in
parallel after the data; the rest stay in the swap's transaction, in the dump's order.

Built early, each in a committed transaction of its own:

- ``CREATE [UNIQUE] INDEX`` on a plain table (not partitioned, not a partition: their
  index statements depend on the dump's order);
- ``ALTER TABLE [ONLY] t ADD CONSTRAINT c PRIMARY KEY | UNIQUE | CHECK | EXCLUDE`` on one;
- ``... FOREIGN KEY ... REFERENCES`` between two plain tables of the dump, once every
  other build is done, and only when every index and key of the referenced table after the
  data is built early too (the key needs the referenced table's unique index).

A statement that names something the dump creates after the data (a function, an
aggregate, a view: by its bare name anywhere in the statement) or that is not recognised
with certainty stays in the swap's transaction. Indexes and constraints are stored by oid,
so once the staging schemas are renamed they are exactly what the dump says.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from ...dump.model import ObjectSpec
from ...sql_lexer import POSTGRESQL, Token, lex
from ..base import StagedBuild
from .names import display_name

#: Object types created after the data that other statements may call or read by name.
_NAMED_LATER = frozenset({"function", "procedure", "aggregate", "view", "materialized_view"})
#: The keys and checks of ``ADD CONSTRAINT`` built early (the first word after its name).
_KEYS = frozenset({"primary", "unique", "check", "exclude"})
_INSIGNIFICANT = frozenset({"space", "comment"})
_NAMES = frozenset({"word", "double"})


def _significant(statement: str) -> list[Token]:
    return [t for t in lex(statement, POSTGRESQL) if t.kind not in _INSIGNIFICANT]


def _word(tokens: list[Token], i: int) -> str:
    """The unquoted keyword at ``i`` in lower case ('' past the end or for another token)."""
    return tokens[i].text.lower() if i < len(tokens) and tokens[i].kind == "word" else ""


def _name(token: Token) -> str:
    return token.text.lower() if token.kind == "word" else token.unquoted()


def _qualified(tokens: list[Token], i: int) -> tuple[str, str] | None:
    """The ``schema.name`` at ``i`` (as the server reads it); None for anything else."""
    if i + 2 >= len(tokens) or tokens[i + 1].text != ".":
        return None
    if tokens[i].kind not in _NAMES or tokens[i + 2].kind not in _NAMES:
        return None
    if i + 3 < len(tokens) and tokens[i + 3].text == ".":
        return None  # a database-qualified name
    return _name(tokens[i]), _name(tokens[i + 2])


def _index_table(tokens: list[Token]) -> tuple[str, str] | None:
    """The table of ``CREATE [UNIQUE] INDEX name ON [ONLY] schema.table ...``."""
    i = 1
    if _word(tokens, 0) != "create":
        return None
    if _word(tokens, i) == "unique":
        i += 1
    if _word(tokens, i) != "index" or _word(tokens, i + 1) in ("concurrently", "if"):
        return None
    if i + 1 >= len(tokens) or tokens[i + 1].kind not in _NAMES or _word(tokens, i + 2) != "on":
        return None
    i += 3
    if _word(tokens, i) == "only":
        i += 1
    return _qualified(tokens, i)


def _constraint(tokens: list[Token]) -> tuple[tuple[str, str], str, tuple[str, str] | None] | None:
    """(table, kind, referenced table) of ``ALTER TABLE [ONLY] schema.table ADD CONSTRAINT
    name KIND ...`` (kind: primary, unique, check, exclude, foreign)."""
    if _word(tokens, 0) != "alter" or _word(tokens, 1) != "table":
        return None
    i = 2
    if _word(tokens, i) == "only":
        i += 1
    table = _qualified(tokens, i)
    if table is None or _word(tokens, i + 3) != "add" or _word(tokens, i + 4) != "constraint":
        return None
    i += 5
    if i >= len(tokens) or tokens[i].kind not in _NAMES:
        return None
    kind = _word(tokens, i + 1)
    if kind in _KEYS:
        return table, kind, None
    if kind != "foreign":
        return None
    words = [_word(tokens, j) for j in range(i + 2, len(tokens))]
    if words.count("references") != 1:
        return None
    referenced = _qualified(tokens, i + 2 + words.index("references") + 1)
    return (table, kind, referenced) if referenced is not None else None


def plan(
    objects: Sequence[tuple[int, ObjectSpec]], plain_tables: Collection[str]
) -> dict[int, tuple[ObjectSpec, StagedBuild]]:
    """The objects of ``objects`` (``(line, record)`` after the data, in the dump's order)
    built early, by line, with their builds; ``plain_tables`` are the dump's tables (by
    their record names) that are neither partitioned nor partitions. The builds' statements
    are as the dump wrote them (the caller moves them into the staging schemas)."""
    later = {
        name
        for _line, obj in objects
        if obj.object_type in _NAMED_LATER
        for name in (obj.name, obj.name.rsplit(".", 1)[-1])
    }
    chosen: dict[int, tuple[ObjectSpec, StagedBuild]] = {}
    keys: list[tuple[int, ObjectSpec, str, str]] = []
    #: Tables with an index or key after the data that is not built early.
    kept_back: set[str] = set()
    for line, obj in objects:
        if obj.object_type not in ("index", "constraint"):
            continue
        tokens = _significant(obj.create_stmt)
        names = {_name(t) for t in tokens if t.kind in _NAMES}
        found: tuple[tuple[str, str], str, tuple[str, str] | None] | None
        if obj.object_type == "index":
            table = _index_table(tokens)
            found = (table, "index", None) if table is not None else None
        else:
            found = _constraint(tokens)
        own = display_name(*found[0]) if found is not None else ""
        if found is None or own != obj.table or own not in plain_tables or names & later:
            if obj.table is not None and not (found is not None and found[1] == "foreign"):
                kept_back.add(obj.table)
            continue
        kind, referenced = found[1], found[2]
        label = f"{obj.object_type} {obj.name!r}"
        if referenced is None:
            chosen[line] = (
                obj,
                StagedBuild(line, label, obj.create_stmt, frozenset({own}), kind == "index", False),
            )
        else:
            keys.append((line, obj, own, display_name(*referenced)))
    for line, obj, own, ref in keys:
        if ref in plain_tables and ref not in kept_back:
            label = f"foreign key {obj.name!r}"
            chosen[line] = (
                obj,
                StagedBuild(line, label, obj.create_stmt, frozenset({own, ref}), False, True),
            )
    return chosen
