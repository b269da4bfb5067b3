"""How PostgreSQL values travel: which codec each type gets, the SQL that renders a column as
its codec's JSON on the server (backup), and bytea in COPY's text form (restore)."""

from __future__ import annotations

import binascii
from collections.abc import Iterable, Sequence
from typing import Any, cast

from ...dump.model import TableSpec
from ..base import decode_base64_column
from ..text_rows import VerbatimColumn, has_none

#: Type OIDs read as Python values; every other type travels as the server's text form.
CODEC_BY_TYPE_OID: dict[int, str] = {
    16: "native",  # boolean
    19: "native",  # name
    20: "native",  # bigint
    21: "native",  # smallint
    23: "native",  # integer
    25: "native",  # text
    1042: "native",  # character(n)
    1043: "native",  # character varying
    17: "bytes",  # bytea
    1700: "decimal",  # numeric (Decimal keeps NaN and ±Infinity too)
    700: "float",  # real
    701: "float",  # double precision
}

#: Types whose text form needs no JSON escaping (digits, signs, separators, letters).
_PLAIN_TEXT_OIDS = frozenset(
    {1082, 1083, 1114, 1184, 1266, 1186, 2950}  # date, time, timestamp(tz), timetz, interval, uuid
)


def json_value_sql(codec: str, type_oid: int) -> str:
    """SQL that renders column ``{c}`` as its codec's JSON value (NULL for SQL NULL)."""
    if codec == "bytes":
        return "'\"' || replace(encode({c}, 'base64'), E'\\n', '') || '\"'"
    if codec in ("decimal", "float") or codec == "text" and type_oid in _PLAIN_TEXT_OIDS:
        return "'\"' || {c}::text || '\"'"
    if codec == "native" and type_oid in (16, 20, 21, 23):  # boolean, integers
        return "{c}::text"
    if codec == "native":
        return "to_json({c})::text"
    return "to_json({c}::text)::text"


#: Types whose binary COPY form ``_copy_out.c`` writes as they are: integers and booleans by
#: value; text, varchar, char(n) and name as their text (padding included, as to_json does).
_BINARY_KIND_BY_OID = {16: "b", 20: "i", 21: "i", 23: "i", 25: "s", 1042: "s", 1043: "s", 19: "s"}


def binary_column(codec: str, type_oid: int) -> tuple[str, str]:
    """SQL for column ``{c}`` in a binary COPY, and its kind for ``_copy_out.c``: what
    :func:`json_value_sql` renders on the server, written by the client instead (every
    other type travels as its text form and is written as a JSON string)."""
    if codec == "bytes":
        return "{c}", "x"
    if codec == "native" and type_oid in _BINARY_KIND_BY_OID:
        return "{c}", _BINARY_KIND_BY_OID[type_oid]
    return "{c}::text", "s"


def bytea_copy_fields(values: list[bytes | None]) -> VerbatimColumn:
    """Bytea values in COPY's text form: hex input, its backslash escaped for COPY (two
    backslashes a value)."""
    nulls = values.count(None) if has_none(values) else 0
    fields: Iterable[str | None] = (
        [None if v is None else "\\\\x" + v.hex() for v in values]
        if nulls
        else map("\\\\x".__add__, map(bytes.hex, cast(list[bytes], values)))
    )
    return VerbatimColumn(fields, backslashes=2 * (len(values) - nulls))


def bytea_copy_column(table: TableSpec, index: int, values: Sequence[Any]) -> VerbatimColumn:
    """Column ``index`` of a chunk, base64 text in the dump, as COPY's bytea fields: each
    value decoded strictly and written as hex in one pass (a third less than decoding the
    column, then writing it); a bad value names the column."""
    a2b = binascii.a2b_base64
    try:
        if has_none(values):
            fields = [
                None if v is None else "\\\\x" + a2b(v, strict_mode=True).hex() for v in values
            ]
            return VerbatimColumn(fields, backslashes=2 * (len(values) - fields.count(None)))
        fields = ["\\\\x" + a2b(v, strict_mode=True).hex() for v in values]
        return VerbatimColumn(fields, backslashes=2 * len(fields))
    except (binascii.Error, TypeError, ValueError):
        decode_base64_column(table, index, values)  # raises, naming the column
        raise
