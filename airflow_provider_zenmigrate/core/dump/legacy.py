"""The legacy (unverified) record format (ZenML's file dumps) turned into v1 records.

ZenML 0.9x writes, per table, one create record ``{"table", "create_stmt",
"self_references"}``, then one ``{"table", "index_create_stmt"}`` record per secondary index,
then its ``{"table", "data"}`` records (docs/dump-format.md, "Dumps written by ZenML").
Every field is known here: a record with any other field, or with two kinds of content, is
refused, because what it asks for could not be restored faithfully.
"""

from __future__ import annotations

from collections.abc import KeysView
from typing import Any

from ..errors import DumpFormatError, UnsafeDumpError
from ..sql_lexer import PORTABLE, Token, lex, significant
from .records import Record
from .safety import check_statement

#: The fields each kind of record may hold (the key that names the kind first).
_FIELDS = {
    "create_stmt": frozenset({"table", "create_stmt", "self_references"}),
    "index_create_stmt": frozenset({"table", "index_create_stmt"}),
    "data": frozenset({"table", "data"}),
}
_NAMES = ("word", "double", "backtick")


class LegacyRecords:
    """Checks the legacy format's records in order and returns each in v1 shape."""

    def __init__(self) -> None:
        #: Tables declared so far, each with the indexes its records created.
        self.indexes: dict[str, set[str]] = {}
        self.last_table: str | None = None
        #: The columns of each table's first row.
        self.columns: dict[str, KeysView[str] | None] = {}

    def check(self, line: int, record: dict[str, Any]) -> Record:
        name = record.get("table")
        if not isinstance(name, str) or not name:
            raise DumpFormatError("record without a table name", line)
        kinds = [key for key in _FIELDS if key in record]
        if len(kinds) != 1:
            what = " and ".join(kinds) or "neither create_stmt, index_create_stmt nor data"
            raise DumpFormatError(f"record of {name!r} has {what}", line)
        kind = kinds[0]
        unknown = sorted(record.keys() - _FIELDS[kind])
        if unknown:
            raise DumpFormatError(
                f"record of {name!r} has fields this version cannot restore: {unknown}", line
            )
        if kind == "create_stmt":
            return self._table(line, name, record)
        if kind == "index_create_stmt":
            return self._index(line, name, record["index_create_stmt"])
        if name not in self.indexes:
            raise DumpFormatError(f"data for table {name!r}, which the dump never declared", line)
        rows = record["data"]
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise DumpFormatError(f"data record of {name!r} has no list of rows", line)
        # The seed declares no columns: the first row's are the table's, and every row must
        # have exactly those (a missing or extra value would be guessed or dropped).
        if rows and self.columns.get(name) is None:
            self.columns[name] = rows[0].keys()
        keys = self.columns.get(name)
        if keys is not None and not all(row.keys() == keys for row in rows):
            raise DumpFormatError(
                f"a row of {name!r} does not have the columns of the table's first row", line
            )
        return {"kind": "data", "table": name, "data": rows}

    def _table(self, line: int, name: str, record: dict[str, Any]) -> Record:
        if name in self.indexes:
            raise DumpFormatError(f"table {name!r} is declared twice", line)
        if not isinstance(record["create_stmt"], str):
            raise DumpFormatError(f"table {name!r} has no create_stmt", line)
        # Every writer loads its staging area with foreign keys unchecked (MySQL sessions
        # with FOREIGN_KEY_CHECKS = 0 that end with the restore, SQLite without the
        # foreign_keys pragma), so rows that reference later rows load as ZenML's restore
        # loads them; the flag asks for nothing more, but it must be what ZenML writes.
        if not isinstance(record.get("self_references", False), bool):
            raise DumpFormatError(f"table {name!r}: self_references is not true or false", line)
        self.indexes[name] = set()
        self.last_table = name
        return {"kind": "table", "table": name, "create_stmt": record["create_stmt"]}

    def _index(self, line: int, table: str, statement: Any) -> Record:
        if table != self.last_table:
            raise DumpFormatError(
                f"index record of {table!r} does not follow that table's create record", line
            )
        if not isinstance(statement, str):
            raise DumpFormatError(f"index record of {table!r} has no statement", line)
        try:
            index = index_name(statement, table)
        except UnsafeDumpError as exc:
            raise UnsafeDumpError(str(exc), line) from None
        if index.lower() in self.indexes[table]:
            raise DumpFormatError(f"table {table!r}: index {index!r} is created twice", line)
        self.indexes[table].add(index.lower())
        return {
            "kind": "object",
            "phase": "pre",
            "object_type": "index",
            "name": index,
            "table": table,
            "create_stmt": statement,
        }


def index_name(statement: str, table: str) -> str:
    """The index ``statement`` creates, which must be one index on ``table``.

    The record names only the table, so the index's name comes from the statement:
    ``CREATE [UNIQUE] INDEX name ON table (...)``, names unqualified; then the shared rules
    (:func:`check_statement`) apply as to any index record.
    """
    label = f"index of {table!r}"
    try:
        tokens = significant(lex(statement, PORTABLE))
    except UnsafeDumpError as exc:
        raise UnsafeDumpError(f"{label}: {exc}") from None
    words = [t.upper() if k == "word" else t for k, t in tokens]
    i = 2 if words[1:2] == ["UNIQUE"] else 1
    if words[:1] != ["CREATE"] or words[i : i + 1] != ["INDEX"]:
        raise UnsafeDumpError(f"{label}: statement is not CREATE [UNIQUE] INDEX")
    i += 1
    if i >= len(tokens) or tokens[i][0] not in _NAMES or words[i] in ("IF", "ON"):
        raise UnsafeDumpError(f"{label}: no index name after INDEX")
    index = tokens[i].unquoted()
    if words[i + 1 : i + 2] != ["ON"]:
        raise UnsafeDumpError(f"{label}: expected ON {table} after the index name")
    target = tokens[i + 2] if i + 2 < len(tokens) else Token("", "")
    found = target.unquoted() if target[0] in _NAMES else ""
    if words[i + 3 : i + 4] == ["."]:
        raise UnsafeDumpError(f"{label}: qualified names are not allowed ({found}.…)")
    if found != table and not (target[0] == "word" and found.lower() == table.lower()):
        raise UnsafeDumpError(f"{label}: the index is on {found!r}, not on {table!r}")
    check_statement(statement, "index", index)
    return index
