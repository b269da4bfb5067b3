"""Rows as tab-separated text, the bulk format both MySQL's LOAD DATA and PostgreSQL's COPY
read: fields split by tabs, rows by newlines, NULL as ``\\N``, and a backslash escaping a
backslash, tab, newline, carriage return or NUL.

Built from the dump's encoded values so the server parses them (decimal, date and float
text as they are), with one pass of C string operations for most chunks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from ..dump.model import TableSpec
from ..errors import ZenMigrateError

#: Codecs whose dump text the servers' bulk loaders parse as it is (bytes once converted).
BULK_CODECS = frozenset({"native", "text", "decimal", "float", "bytes", "date", "time", "datetime"})

_NULL = "\\N"
_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r", "\0": "\\0"})


class VerbatimColumn(list[str | None]):
    """A column whose fields are already in the bulk text form (never escaped again), e.g.
    ``\\\\x0a`` for a PostgreSQL bytea; None is NULL. Marked as a whole, so building it
    takes no Python call per value."""


def _field(value: Any) -> str:
    """One value as a field (escaped; NULL as ``\\N``)."""
    if value is None:
        return _NULL
    kind = value.__class__
    if kind is str:
        return str(value).translate(_ESCAPES)
    if kind is int:
        return str(value)
    if kind is bool:
        return "1" if value else "0"
    if kind is float:
        return repr(value)
    raise ValueError(f"a {kind.__name__} value cannot be loaded into a column")


_BOOL_FIELDS = {True: "1", False: "0"}
_NONE = type(None)


def _column_fields(column: Sequence[Any]) -> Sequence[str]:
    """A column's values as unescaped fields; by the column's value types, so that the
    usual columns (all text, all integers, all booleans) take no Python call per value."""
    if isinstance(column, VerbatimColumn):
        if None in column:
            return [_NULL if v is None else v for v in column]
        return cast(list[str], column)
    kinds = set(map(type, column))
    if not isinstance(column, list | tuple):
        column = list(column)
    if kinds <= {str}:
        return column
    if kinds == {int}:
        return list(map(str, column))
    if kinds == {bool}:
        return list(map(_BOOL_FIELDS.__getitem__, column))
    if kinds <= {str, _NONE}:
        return [_NULL if v is None else v for v in column]
    return [
        _NULL
        if v is None
        else v
        if v.__class__ is str
        else str(v)
        if v.__class__ is int
        else _field(v)
        for v in column
    ]


def tsv(rows: Sequence[tuple[Any, ...]]) -> str:
    """The rows as bulk text, one line per row (newline-terminated)."""
    if not rows:
        return ""
    return tsv_columns(list(zip(*rows, strict=True)))


def tsv_columns(columns: list[Sequence[Any]]) -> str:
    """Columns of equal length as bulk text, one line per row (newline-terminated).

    Most values need no escaping, so the fast path joins them as they are and then checks
    by counting: one backslash per NULL (plus those a :class:`VerbatimColumn` holds), ``width
    - 1`` tabs per row, one newline between rows, no carriage return and no NUL. A value with
    a special character breaks a count, and the chunk is then built again with every value
    escaped (but those of a :class:`VerbatimColumn`).
    """
    backslashes = sum(column.count(None) for column in columns) + sum(
        "".join(filter(None, c)).count("\\") for c in columns if isinstance(c, VerbatimColumn)
    )
    fields = [_column_fields(column) for column in columns]
    text = "\n".join(map("\t".join, zip(*fields, strict=True)))
    count = len(columns[0])
    if (
        text.count("\\") != backslashes
        or text.count("\t") != count * (len(columns) - 1)
        or text.count("\n") != count - 1
        or "\r" in text
        or "\0" in text
    ):
        fields = [
            _column_fields(c) if isinstance(c, VerbatimColumn) else [_field(v) for v in c]
            for c in columns
        ]
        text = "\n".join(map("\t".join, zip(*fields, strict=True)))
    return text + "\n"


def bulk_text(table: TableSpec, columns: list[Sequence[Any]]) -> bytes:
    """:func:`tsv_columns` as UTF-8; a value that cannot be loaded names the table."""
    try:
        return tsv_columns(columns).encode("utf-8")
    except (UnicodeEncodeError, ValueError) as exc:
        raise ZenMigrateError(f"table {table.name!r}: a value cannot be loaded ({exc})") from None
