"""Bulk text (COPY / LOAD DATA) built from a chunk's columns: the fast path (text columns
searched in C, integers written by the JSON encoder) gives exactly what escaping every
value gives, and takes the escaping path whenever a value needs it."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any

import pytest

from airflow_provider_zenmigrate.core.dialects.postgresql.render import (
    bytea_copy_column,
    bytea_copy_fields,
)
from airflow_provider_zenmigrate.core.dialects.text_rows import (
    VerbatimColumn,
    _field,
    has_none,
    tsv_columns,
)
from airflow_provider_zenmigrate.core.dump.model import ColumnSpec, TableSpec
from airflow_provider_zenmigrate.core.errors import ZenMigrateError


def _escaped(columns: list[Sequence[Any]]) -> bytes:
    """The chunk with every value escaped one by one: what the fast path must equal."""
    rows = zip(
        *(list(c) if isinstance(c, VerbatimColumn) else [_field(v) for v in c] for c in columns),
        strict=True,
    )
    return "".join(
        "\t".join("\\N" if f is None else f for f in row) + "\n" for row in rows
    ).encode()


@pytest.mark.parametrize(
    ("columns", "text"),
    [
        ([(1, -2, 2**63 - 1, -(2**63)), ("a", "b", "c", "d")], [False, True]),
        ([(2**70, 5), (True, False)], [False, False]),  # beyond 64 bits: str of each
        ([("a", None, "\\N"), ("x", "y", None)], [True, False]),  # a value that reads as NULL
        ([("tab\there", "nl\nx"), ("cr\rx", "nul\x00")], [True, True]),
        ([("back\\slash",), (None,)], [True, True]),
        ([("plain", None), ("\\",)[0:1] + (None,)], [True, True]),
        (
            [
                (1.5, None, "s", True, 7),
            ],
            [False],
        ),
        ([("é", "ü"), (0, 1)], [True, False]),
    ],
)
def test_fast_path_is_what_escaping_every_value_gives(
    columns: list[Sequence[Any]], text: list[bool]
) -> None:
    assert tsv_columns(columns, text) == _escaped(columns)


def test_a_text_column_holding_a_number_takes_the_escaping_path() -> None:
    assert tsv_columns([("1", 2)], [True]) == b"1\n2\n"


def test_a_verbatim_column_is_never_escaped_again() -> None:
    fields = VerbatimColumn(["\\\\x00", None], backslashes=2)
    assert tsv_columns([fields, ("a\tb", "c")]) == b"\\\\x00\ta\\tb\n\\N\tc\n"


def test_has_none_finds_none_by_identity() -> None:
    assert has_none(("a", None))
    assert not has_none(("a", "None", 0, ""))
    assert not has_none(())


_BYTEA = TableSpec("t", "", (ColumnSpec("b", "bytes"),))


@pytest.mark.parametrize(
    "values", [[b"\\", b"", b"\x00\t\n"], [None, b"\\x", None], [bytes(range(256))]]
)
def test_bytea_column_is_the_decoded_values_fields(values: list[bytes | None]) -> None:
    encoded = [None if v is None else base64.b64encode(v).decode() for v in values]
    column = bytea_copy_column(_BYTEA, 0, encoded)
    assert column == bytea_copy_fields(values)
    assert column.backslashes == "".join(filter(None, column)).count("\\")


@pytest.mark.parametrize("bad", ["QQ", "=QUJD", "Q Q==", 5, "é"])
def test_bytea_column_refuses_what_strict_base64_refuses(bad: Any) -> None:
    with pytest.raises(ZenMigrateError, match="column 'b'"):
        bytea_copy_column(_BYTEA, 0, ["QUJD", bad])
