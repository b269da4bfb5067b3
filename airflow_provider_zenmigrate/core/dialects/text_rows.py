"""Rows as tab-separated text, the bulk format both MySQL's LOAD DATA and PostgreSQL's COPY
read: fields split by tabs, rows by newlines, NULL as ``\\N``, and a backslash escaping a
backslash, tab, newline, carriage return or NUL.

Built from the dump's encoded values so the server parses them (decimal, date and float
text as they are), with one pass of C string operations for most chunks.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import chain, repeat
from operator import is_
from typing import Any, cast

import msgspec

from ..dump.chunk import Chunk
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
#: The field each codec's values become in the C path (_bulk.c): "n" an integer, a boolean
#: (1/0) or text; "s" text only; bytes as the writer asks ("x" PostgreSQL's hex, "v" the
#: base64 text, which MySQL decodes).
_BULK_KINDS = {"native": "n", **dict.fromkeys(_TEXT_CODECS | {"float"}, "s")}
#: Writes a column of integers as one JSON array, in C: its items are their decimal text
#: (what ``str`` gives), a third of the time of ``str`` per value.
_INTEGERS = msgspec.json.Encoder()


def has_none(column: Sequence[Any]) -> bool:
    """Whether ``column`` holds None, by identity: ``None in column`` compares every value
    with None through ``==``, twice as slow on a column of strings."""
    return any(map(is_, column, repeat(None)))


def _integer_fields(column: Sequence[int]) -> list[str]:
    """The decimal text of a column of ints (``str`` of each)."""
    try:
        return _INTEGERS.encode(column)[1:-1].decode("ascii").split(",") if column else []
    except (msgspec.EncodeError, OverflowError):  # beyond what the encoder writes
        return list(map(str, column))


def _column_fields(column: Sequence[Any], text: bool = False) -> tuple[Sequence[str], int, bool]:
    """A column's values as unescaped fields, how many are NULL, and whether they are yet to
    be searched for the characters the format escapes (text; not integers, booleans or a
    :class:`VerbatimColumn`); by the column's value types, so that the usual columns (all
    text, all integers, all booleans) take no Python call per value. ``text``: the
    column's codec holds text; its nulls are found by :func:`_plain_text`, which joins it."""
    if isinstance(column, VerbatimColumn):
        if has_none(column):
            return [_NULL if v is None else v for v in column], column.count(None), False
        return cast(list[str], column), 0, False
    if text:
        return column, -1, True
    kinds = set(map(type, column))
    if not isinstance(column, list | tuple):
        column = list(column)
    nulls = column.count(None) if _NONE in kinds else 0
    if kinds <= {str}:
        return column, 0, True
    if kinds == {int}:
        return _integer_fields(column), 0, False
    if kinds == {bool}:
        return list(map(_BOOL_FIELDS.__getitem__, column)), 0, False
    if kinds <= {str, _NONE}:
        return [_NULL if v is None else v for v in column], nulls, True
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
    return fields, nulls, True


def _plain_text(fields: Sequence[Any], nulls: int) -> Sequence[str] | None:
    """``fields`` with NULL markers, or None when a value holds a character the format
    escapes: searched in C (memchr) over the column's text alone. ``nulls`` -1: not yet
    looked for (a text codec's column: a None fails the join that searches it, and only
    then is it looked for). Raises TypeError for a value that is not text."""
    try:
        joined = "".join(fields)
    except TypeError:
        if nulls >= 0 or not has_none(fields):
            raise
        nulls = fields.count(None)
        fields = [_NULL if v is None else v for v in fields]
        joined = "".join(fields)
    if (joined.count("\\") != nulls) if nulls > 0 else ("\\" in joined):
        return None
    if "\t" in joined or "\n" in joined or "\r" in joined or "\0" in joined:
        return None
    return fields


def tsv(rows: Sequence[tuple[Any, ...]]) -> str:
    """The rows as bulk text, one line per row (newline-terminated)."""
    if not rows:
        return ""
    return tsv_columns(list(zip(*rows, strict=True))).decode("utf-8")


def tsv_columns(columns: list[Sequence[Any]], text: Sequence[bool] = ()) -> bytes:
    """Columns of equal length as bulk text in UTF-8, one line per row (newline-terminated).
    ``text[i]`` says column ``i``'s codec holds text (see :func:`_column_fields`).

    Most values need no escaping, so the fast path joins them as they are, once the text
    columns were searched (in C) for the characters the format escapes; integers, booleans
    and a :class:`VerbatimColumn` cannot hold one. A value holding one sends the chunk to
    be built again with every value escaped (but those of a VerbatimColumn).
    """
    text = list(text) or [False] * len(columns)
    try:
        fields: list[Sequence[str]] = []
        for column, holds_text in zip(columns, text, strict=True):
            field: Sequence[str] | None
            field, nulls, search = _column_fields(column, holds_text)
            if search:
                field = _plain_text(field, nulls)
                if field is None:
                    break
            fields.append(field)
        else:
            return _joined(fields)
    except TypeError:  # a value that is not text in a text column
        pass
    return _joined(
        [
            _column_fields(c)[0] if isinstance(c, VerbatimColumn) else [_field(v) for v in c]
            for c in columns
        ]
    )


def _joined(fields: Sequence[Sequence[str]]) -> bytes:
    # The last line's newline joined in (an empty last line), not added to a copy.
    lines = chain(map("\t".join, zip(*fields, strict=True)), ("",))
    return "\n".join(lines).encode("utf-8")


def bulk_text(table: TableSpec, columns: list[Sequence[Any]]) -> bytes:
    """:func:`tsv_columns` of a chunk of ``table``; a value that cannot be loaded names the
    table."""
    text = [c.codec in _TEXT_CODECS for c in table.columns]
    try:
        return tsv_columns(columns, text)
    except (UnicodeEncodeError, ValueError) as exc:
        raise ZenMigrateError(f"table {table.name!r}: a value cannot be loaded ({exc})") from None


def chunk_text(table: TableSpec, chunk: Chunk, bytes_kind: str) -> bytes | None:
    """A chunk of ``table`` as bulk text taken straight from its data record (bytes columns
    as ``bytes_kind``: "x" or "v"), or None: then build it from :meth:`Chunk.columns`.
    The same text as :func:`bulk_text` gives (tests/unit/core/dump/test_bulk.py)."""
    kinds = {**_BULK_KINDS, "bytes": bytes_kind}
    if not table.columns or any(c.codec not in kinds for c in table.columns):
        return None
    return chunk.bulk("".join(kinds[c.codec] for c in table.columns).encode("ascii"))
