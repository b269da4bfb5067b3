"""How MySQL/MariaDB values become the dump's JSON: the codec of each column type, and the
server-side rendering that has the server write a whole row as the JSON object the dump
holds (the client only joins the rows it receives).

Public in the package: the type tables (:data:`CODEC_BY_TYPE`, :data:`INTEGER_TYPES`,
:data:`UNBOUNDED_TYPES`), :func:`data_type_of`, :func:`value_form` and
:func:`rendered_stream` (a rendering query's rows, read off the wire by :mod:`.wire`).
"""

from __future__ import annotations

from collections.abc import Generator
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

import pymysql.cursors
import pymysql.err

from ...errors import RowsNotRendered
from ..base import QUERY_SENT
from .session import ServerSession
from .wire import joined_column, read_result, rendered_columns, send_query

# -- value codecs by information_schema.COLUMNS.DATA_TYPE ------------------------------------
INTEGER_TYPES = ("tinyint", "smallint", "mediumint", "int", "integer", "bigint", "year")
_STRING_TYPES = ("char", "varchar", "tinytext", "text", "mediumtext", "longtext", "enum", "set")
# MariaDB's UUID/INET types come back as their text and are parsed again on load.
_TEXT_LIKE_TYPES = ("json", "uuid", "inet4", "inet6")
_BYTES_TYPES = ("binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob", "bit")
# Geometry values are read in the server's internal form (4-byte SRID + WKB) and written back
# as that binary string; the server accepts it as is (CHECKSUM TABLE identical, tested).
_GEOMETRY_TYPES = (
    "geometry", "point", "linestring", "polygon", "multipoint", "multilinestring",
    "multipolygon", "geometrycollection", "geomcollection",
)  # fmt: skip
CODEC_BY_TYPE: dict[str, str] = {
    **dict.fromkeys(INTEGER_TYPES + _STRING_TYPES + _TEXT_LIKE_TYPES, "native"),
    **dict.fromkeys(_BYTES_TYPES + _GEOMETRY_TYPES, "bytes"),
    "decimal": "decimal",
    "numeric": "decimal",
    "float": "float",
    "double": "float",
    "real": "float",
    "date": "date",
    "datetime": "datetime",
    "timestamp": "datetime",
    "time": "text",
}

# Server-side rendering of a value as the JSON its codec writes (see rendered_rows).
# Each is the cheapest form measured (see docs/performance.md): DATE() 'T' TIME() rather than
# DATE_FORMAT; TO_BASE64 breaks lines only after 57 input bytes, so shorter values skip the
# REPLACE.
# These three are CONCAT's arguments, not a CONCAT: the row's own CONCAT takes them as they
# are (a nested CONCAT builds and copies a string of its own per value: a tenth of the
# server's rendering CPU on the benchmark's tables); a nullable column's IFNULL wraps them in
# one (:func:`value_form`).
_QUOTED = "'\"', {c}, '\"'"
_ISO_DATETIME = "'\"', DATE({c}), 'T', TIME({c}), '{zeros}\"'"
_BASE64 = "'\"', IF(LENGTH({c}) <= 57, TO_BASE64({c}), REPLACE(TO_BASE64({c}), '\n', '')), '\"'"
#: Expressions that are lists of CONCAT arguments.
_ARGUMENT_LISTS = (_QUOTED, _BASE64)
# Character sets in which the server sends a utf8mb4 result unconverted.
UNCONVERTED_RESULTS = (None, "utf8mb4", "binary")


def data_type_of(column_type: str) -> str:
    """DATA_TYPE from a COLUMN_TYPE ("decimal(12,4) unsigned" -> "decimal")."""
    return column_type.split("(")[0].split(" ")[0].lower()


@dataclass(frozen=True)
class ValueForm:
    """How one column's values become the dump's JSON, either way.

    ``server`` renders it on the server: one argument of the row's CONCAT, or several
    (comma-separated) that the CONCAT of a value would take, so a NULL among them makes the
    row NULL either way; ``factor`` is the most bytes of output per stored byte. ``client``
    selects it for ``_wire.rendered`` to write as its ``kind``: ``n`` a number, ``s`` text
    as a JSON string, ``x`` bytes as base64; upper case for a column that cannot be NULL (a
    NULL there is a value the server could not render, as it made the CONCAT NULL).
    """

    server: str
    factor: int
    client: str
    kind: str


def value_form(column_type: str, charset: str | None, nullable: bool) -> ValueForm | None:
    """The column's :class:`ValueForm`; None for types whose text differs from what the
    codec writes.

    Strings go through JSON_QUOTE in utf8mb4 (what the driver decodes them to); integers as
    they are, or through "+ 0" where their text is no JSON number (ZEROFILL, YEAR); dates and
    decimals as their text, DATETIME/TIMESTAMP as Python's isoformat(timespec="microseconds")
    (made by the server either way: DATE() 'T' TIME() is cheap). Written by the client, what
    costs the server most (JSON_QUOTE, TO_BASE64, the row's CONCAT) is the client's.
    """
    lowered = column_type.lower()
    data_type = data_type_of(column_type)
    if data_type in INTEGER_TYPES:
        client = "{c} + 0" if data_type == "year" or "zerofill" in lowered else "{c}"
        server, factor, kind = client, 1, "n"
    elif data_type in _STRING_TYPES or data_type == "json":
        client = "{c}" if charset == "utf8mb4" else "CONVERT({c} USING utf8mb4)"
        server, factor, kind = f"JSON_QUOTE({client})", 6, "s"
    elif data_type in _BYTES_TYPES and data_type != "bit":
        client, server, factor, kind = "{c}", _BASE64, 2, "x"
    elif data_type in ("decimal", "numeric", "date"):
        client, server, factor, kind = "{c}", _QUOTED, 1, "s"
    elif data_type in ("datetime", "timestamp"):
        # TIME() shows the column's own fractional digits; isoformat always has six.
        digits = int(lowered.partition("(")[2].partition(")")[0] or 0)
        zeros = ("" if digits else ".") + "0" * (6 - digits)
        client = f"CONCAT(DATE({{c}}), 'T', TIME({{c}}), '{zeros}')"
        server, factor, kind = _ISO_DATETIME.replace("{zeros}", zeros), 1, "s"
    elif data_type == "time":
        client = "CAST({c} AS CHAR)"
        server, factor, kind = f"JSON_QUOTE({client})", 6, "s"
    else:
        return None
    if nullable:  # argument lists become one argument first
        if server in _ARGUMENT_LISTS or data_type in ("datetime", "timestamp"):
            server = f"CONCAT({server})"
        server = f"IFNULL({server}, 'null')"
    return ValueForm(server, factor, client, kind if nullable else kind.upper())


# Types whose values have no useful length bound in the catalog: measured, or not rendered.
UNBOUNDED_TYPES = frozenset(("mediumtext", "longtext", "json", "mediumblob", "longblob"))

# A rendered row must fit one protocol packet (what .wire reads), with its length prefix.
ONE_PACKET = 0xFFFFFF - 8


@dataclass(frozen=True)
class RenderedColumns:
    """How ``_wire.rendered`` writes a row of a table's columns: a kind each (see
    :class:`ValueForm`) and the text before each value (``{"id":``, ``,"name":``)."""

    kinds: bytes
    keys: tuple[bytes, ...]


def rendered_stream(
    session: ServerSession,
    sql: str,
    names: list[str],
    table: str,
    chunk_rows: int,
    key_range: bool = False,
    columns: RenderedColumns | None = None,
) -> Generator[Any, None, None]:
    """(rows, their JSON objects joined by commas) of a rendering query: its one column
    rendered by the server (``names`` are the CONCAT's parameters), or with ``columns`` the
    table's columns (:attr:`ValueForm.client`), written by C. A row that could not be
    rendered (NULL) raises RowsNotRendered once the result is read to its end, so the
    session goes on. A ``key_range`` yields QUERY_SENT first, once its query is sent, and closed
    early it is read to its end (its session renders the next range); a whole table closed
    early has its connection dropped (its rest could take long to read)."""
    cursor = session.dbapi.cursor(pymysql.cursors.SSCursor)
    batches = None
    sent = False
    args = tuple(names) if columns is None else ()

    def read() -> Generator[tuple[int, bytes] | None, None, None]:
        if columns is None:
            return joined_column(cursor, chunk_rows)
        return rendered_columns(cursor, chunk_rows, columns.kinds, columns.keys)

    try:
        if key_range:
            send_query(cursor, sql, args)
            sent = True
            yield QUERY_SENT
            sent = False
            read_result(cursor)
        else:
            cursor.execute(sql, args)
        batches = read()
        for block in batches:
            if block is None:  # a row too long for max_allowed_packet
                for _ in batches:  # the snapshot's session goes on
                    pass
                raise RowsNotRendered(table)
            yield block
    finally:
        if sent:  # closed before its result was read: read it to its end
            with suppress(pymysql.err.MySQLError):
                read_result(cursor)
                batches = read()
        if batches is not None:
            if key_range:
                with suppress(pymysql.err.MySQLError):
                    for _ in batches:
                        pass
            batches.close()  # stopped early, it closes the connection
        cursor.close()
