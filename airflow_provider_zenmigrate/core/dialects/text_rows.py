"""Rows as tab-separated text, the bulk format both MySQL's LOAD DATA and PostgreSQL's COPY
read: fields split by tabs, rows by newlines, NULL as ``\\N``, and a backslash escaping a
backslash, tab, newline, carriage return or NUL.

Built from the dump's encoded values so the server parses them (decimal, date and float
text as they are), with one pass of C string operations for most chunks.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
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
    takes no Python call per value. ``backslashes``: how many its fields hold in all, which
    its maker knows (the escape check counts on it instead of scanning the fields)."""

    def __init__(self, fields: Iterable[str | None], backslashes: int) -> None:
        super().__init__(fields)
        self.backslashes = backslashes


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
#: Codecs whose values a dump holds as text (or null): taken as they are, without looking at
#: each value's type; another type there fails the join and takes the general path.
_TEXT_CODECS = frozenset({"text", "decimal", "bytes", "date", "time", "datetime"})
#: The characters the bulk format escapes, as UTF-8 (which no multi-byte sequence contains).
_SPECIALS = b"\\\t\n\r\0"


def _column_fields(column: Sequence[Any], text: bool = False) -> tuple[Sequence[str], int]:
    """A column's values as unescaped fields, and how many are NULL; by the column's value
    types, so that the usual columns (all text, all integers, all booleans) take no Python
    call per value. ``text``: the column's codec holds text, so only nulls are looked for."""
    if isinstance(column, VerbatimColumn) or text:
        nulls = column.count(None)
        if nulls:
            return [_NULL if v is None else v for v in column], nulls
        return cast(list[str], column), 0
    kinds = set(map(type, column))
    if not isinstance(column, list | tuple):
        column = list(column)
    nulls = column.count(None) if _NONE in kinds else 0
    if kinds <= {str}:
        return column, 0
    if kinds == {int}:
        return list(map(str, column)), 0
    if kinds == {bool}:
        return list(map(_BOOL_FIELDS.__getitem__, column)), 0
    if kinds <= {str, _NONE}:
        return [_NULL if v is None else v for v in column], nulls
    fields = [
        _NULL
        if v is None
        else v
        if v.__class__ is str
        else str(v)
        if v.__class__ is int
        else _field(v)
        for v in column
    ]
    return fields, nulls


def tsv(rows: Sequence[tuple[Any, ...]]) -> str:
    """The rows as bulk text, one line per row (newline-terminated)."""
    if not rows:
        return ""
    return tsv_columns(list(zip(*rows, strict=True))).decode("utf-8")


def tsv_columns(columns: list[Sequence[Any]], text: Sequence[bool] = ()) -> bytes:
    """Columns of equal length as bulk text in UTF-8, one line per row (newline-terminated).
    ``text[i]`` says column ``i``'s codec holds text (see :func:`_column_fields`).

    Most values need no escaping, so the fast path joins them as they are and then checks
    by counting, in one pass over the bytes, the characters the format escapes: one
    backslash per NULL (plus those a :class:`VerbatimColumn` holds), ``width - 1`` tabs per
    row and one newline per row. A value holding any of them adds to the count, and the
    chunk is then built again with every value escaped (but those of a VerbatimColumn).
    """
    text = list(text) or [False] * len(columns)
    try:
        fields, nulls = zip(*map(_column_fields, columns, text), strict=True)
        data = _joined(fields)
    except TypeError:  # a value that is not text in a text column
        pass
    else:
        verbatim = sum(c.backslashes for c in columns if isinstance(c, VerbatimColumn))
        expected = sum(nulls) + verbatim + len(columns[0]) * len(columns)
        if len(data) - len(data.translate(None, _SPECIALS)) == expected:
            return data
    return _joined(
        [
            _column_fields(c)[0] if isinstance(c, VerbatimColumn) else [_field(v) for v in c]
            for c in columns
        ]
    )


def _joined(fields: Sequence[Sequence[str]]) -> bytes:
    return "\n".join(map("\t".join, zip(*fields, strict=True))).encode("utf-8") + b"\n"


def bulk_text(table: TableSpec, columns: list[Sequence[Any]]) -> bytes:
    """:func:`tsv_columns` of a chunk of ``table``; a value that cannot be loaded names the
    table."""
    text = [c.codec in _TEXT_CODECS for c in table.columns]
    try:
        return tsv_columns(columns, text)
    except (UnicodeEncodeError, ValueError) as exc:
        raise ZenMigrateError(f"table {table.name!r}: a value cannot be loaded ({exc})") from None
