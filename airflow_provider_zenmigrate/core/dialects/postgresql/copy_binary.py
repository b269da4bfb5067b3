"""Which restored tables go to PostgreSQL by binary COPY, and how each column is written.

The server parses a timestamp's, a numeric's or a bytea's text for every value of a text
COPY: about a third of its COPY time on a table of (a)'s shape (docs/performance.md). In
binary COPY it takes the stored form as it is. The client writes that form in C, from the
dump's text (:func:`_bulk.binary_rows`), for the column types below; a table with any other
column (a domain, an array, an enum, a float) stays in text, as does a value the C code does
not take (the writer then sends that record as text).

The kinds are chosen from the target's own column types, read once per table from the
catalog, never from the dump's declarations alone: a binary value in a column of another
type would not be refused by the server but stored wrong.
"""

from __future__ import annotations

from typing import Any

import psycopg

from ...dump.model import TableSpec

#: A binary COPY's header: signature, flags, header extension length.
SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
#: Its trailer: a field count of -1.
TRAILER = b"\xff\xff"

#: (the dump's codec, the target column's type OID) -> the column's kind in _bulk.c.
KIND_BY_TYPE: dict[tuple[str, int], str] = {
    ("native", 20): "q",  # bigint
    ("native", 23): "i",  # integer
    ("native", 21): "h",  # smallint
    ("native", 16): "b",  # boolean
    ("native", 25): "s",  # text
    ("native", 1043): "s",  # character varying
    ("native", 1042): "s",  # character(n): its text, padding included
    ("bytes", 17): "r",  # bytea
    ("decimal", 1700): "d",  # numeric
    ("text", 114): "s",  # json
    ("text", 3802): "j",  # jsonb
    ("text", 1114): "t",  # timestamp
    ("text", 1184): "z",  # timestamp with time zone
    ("text", 1082): "D",  # date
    ("text", 2950): "u",  # uuid
}

_COLUMN_TYPES = (
    b"SELECT attname, atttypid::int FROM pg_catalog.pg_attribute"
    b" WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped"
)


def binary_kinds(conn: psycopg.Connection[Any], qualified: str, table: TableSpec) -> bytes | None:
    """The kinds of ``table``'s columns in the target ``qualified``, or None: send it as
    text (a column of a type above or a codec not paired with it)."""
    if not table.columns:
        return None
    if not {c.codec for c in table.columns} <= {codec for codec, _ in KIND_BY_TYPE}:
        return None
    with conn.cursor() as cur:
        cur.execute(_COLUMN_TYPES, (qualified,))
        types = dict(cur.fetchall())
    try:
        return "".join(KIND_BY_TYPE[c.codec, types.get(c.name, 0)] for c in table.columns).encode()
    except KeyError:  # a column binary COPY does not take
        return None
