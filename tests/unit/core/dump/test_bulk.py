"""Data records into bulk text in C (core/dump/_bulk.c) against the Python way.

The C path takes only records in the backup's own shape, and for each it must give
exactly the text the Python way builds from the decoded values (text_rows.bulk_text, bytea
as COPY's hex for PostgreSQL, base64 as it is for MySQL). Whatever it does not take it
hands back (None), and then the Python way decides, errors included. Rows it checked when
read must be what msgspec decodes from the same line.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_provider_zenmigrate.core.dialects.postgresql.render import bytea_copy_column
from airflow_provider_zenmigrate.core.dialects.text_rows import bulk_text, chunk_text
from airflow_provider_zenmigrate.core.dump import _bulk, typed_data
from airflow_provider_zenmigrate.core.dump.chunk import Chunk
from airflow_provider_zenmigrate.core.dump.model import ColumnSpec, TableSpec
from airflow_provider_zenmigrate.core.dump.records import serialize
from airflow_provider_zenmigrate.core.dump.typed_data import DataDecoders, DecodedRows
from airflow_provider_zenmigrate.core.errors import ZenMigrateError
from tests.support.dumps import data_rows, table_record

CODECS = ["native", "text", "decimal", "float", "bytes", "datetime"]
NAMES = ["id", "Ünïcødé", "a b", "dec", "blob", "at"]
TABLE = TableSpec(
    name="t",
    create_stmt="CREATE TABLE t (id int)",
    columns=tuple(ColumnSpec(name=n, codec=c) for n, c in zip(NAMES, CODECS, strict=True)),
)

# Every character class that matters: the five the format escapes, other controls, quotes,
# backslashes, multi-byte and astral characters (which JSON may write as surrogate pairs).
chars = st.sampled_from(list('ab\\"\t\n\r\x00\x01\x1f\x7f/é€😀 '))
texts = st.text(alphabet=chars | st.characters(codec="utf-8"), max_size=12)
native = st.none() | st.booleans() | st.integers(-(10**18) + 1, 10**18 - 1) | texts
blobs = st.none() | st.binary(max_size=12).map(lambda b: base64.b64encode(b).decode())
rows = st.lists(
    st.tuples(native, st.none() | texts, texts, st.none() | texts, blobs, st.none() | texts),
    min_size=1,
    max_size=6,
)


def python_text(table: TableSpec, chunk: Chunk, bytes_kind: str) -> bytes:
    """What each writer builds from the values (copy_in.CopyIn.encoded, mysql's writer)."""
    columns = list(chunk.columns())
    for i, column in enumerate(table.columns):
        if column.codec == "bytes" and bytes_kind == "x":
            columns[i] = bytea_copy_column(table, i, columns[i])
    return bulk_text(table, columns)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(rows)
def test_c_text_is_the_python_text(values: list[tuple[Any, ...]]) -> None:
    data = [dict(zip(NAMES, row, strict=True)) for row in values]
    rows_read = data_rows(TABLE, data)
    assert isinstance(rows_read, DecodedRows) and rows_read.bulk(b"nsssxs") is not None
    assert len(rows_read) == len(data)
    chunk = Chunk(rows_read, NAMES)
    for bytes_kind in ("x", "v"):
        text = chunk_text(TABLE, chunk, bytes_kind)
        assert text is not None  # the backup's own shape: the C path took it
        assert text == python_text(TABLE, chunk, bytes_kind)
    assert list(rows_read) == data  # decoded on demand, as msgspec reads the line


@pytest.mark.parametrize(
    ("value", "why"),
    [
        (10**18, "beyond 18 digits"),
        (2**63, "beyond 64 bits"),
        (1.5, "a float where the codec says native"),
        (-0.0, "a float zero"),
        ({"float": "1.5"}, "an object"),
    ],
)
def test_values_it_does_not_take_go_the_python_way(value: Any, why: str) -> None:
    table = TableSpec("n", "CREATE TABLE n (v int)", (ColumnSpec("v", "native"),))
    rows_read = data_rows(table, [{"v": 1}, {"v": value}])
    chunk = Chunk(rows_read, ["v"])
    assert chunk_text(table, chunk, "x") is None, why
    assert list(chunk.rows) == [{"v": 1}, {"v": value}]


@pytest.mark.parametrize("value", [5, True, None])
def test_a_text_codec_takes_only_text(value: Any) -> None:
    table = TableSpec("s", "CREATE TABLE s (v text)", (ColumnSpec("v", "text"),))
    chunk = Chunk(data_rows(table, [{"v": "x"}, {"v": value}]), ["v"])
    text = chunk_text(table, chunk, "x")
    if value is None:
        assert text == b"x\n\\N\n"
    else:
        assert text is None  # the Python way writes str() of it, as it always has


@pytest.mark.parametrize("blob", ["QQ=", "QQ", "Q===", "QQ==QQ==", "QQ=a", "Q Q=", "*AAA"])
def test_bad_base64_is_the_python_way_s_error(blob: str) -> None:
    table = TableSpec("b", "CREATE TABLE b (v bytea)", (ColumnSpec("v", "bytes"),))
    chunk = Chunk(data_rows(table, [{"v": "QUJD"}, {"v": blob}]), ["v"])
    for kind in ("x", "v"):
        assert chunk_text(table, chunk, kind) is None
    with pytest.raises(ZenMigrateError, match="'v'"):
        python_text(table, chunk, "x")


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet="AQgw+/=", max_size=9))
def test_base64_it_takes_is_what_binascii_strict_takes(blob: str) -> None:
    """What C takes, binascii's strict mode takes alike; canonical base64 (what a backup
    writes) it always takes. binascii takes a few more forms ("AAAA="): those it hands
    back, and the Python way loads them as it always has."""
    try:
        expected: bytes | None = binascii.a2b_base64(blob, strict_mode=True)
    except binascii.Error:
        expected = None
    keys = (b'"v":',)
    line = b'{"v":"' + blob.encode() + b'"}]}'
    hexed = _bulk.rows(line, 0, keys, b"x")
    verbatim = _bulk.rows(line, 0, keys, b"v")
    assert (hexed is None) == (verbatim is None)
    if expected is not None and base64.b64encode(expected).decode() == blob:
        assert hexed is not None
    if hexed is not None:
        assert expected is not None
        assert hexed == b"\\\\x" + expected.hex().encode() + b"\n"
        assert verbatim == blob.encode() + b"\n"


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(rows, st.data())
def test_a_changed_line_it_takes_is_one_msgspec_reads_alike(
    values: list[tuple[Any, ...]], data: st.DataObject
) -> None:
    """One byte of a backup's line changed: whatever C still takes, msgspec decodes to the
    same number of rows, and its text is what the Python way builds from those."""
    data_rows = [dict(zip(NAMES, r, strict=True)) for r in values]
    record = {"kind": "data", "table": "t", "data": data_rows}
    line = bytearray(serialize(record))
    at = data.draw(st.integers(0, len(line) - 1))
    line[at] = data.draw(st.sampled_from(b'{}[]",:\\ 0123456789-.eEtrufalsn\x00\x80\xc3\xff'))
    decoders = DataDecoders()
    decoders.declare(table_record("t", dict(zip(NAMES, CODECS, strict=True))))
    read = decoders.decode(bytes(line))
    if read is None or not isinstance(read["data"], DecodedRows):
        return
    rows_read = read["data"]
    count = len(rows_read)
    assert len(list(rows_read)) == count  # decodes (msgspec), or raises: never differs
    chunk = Chunk(rows_read, NAMES)
    for bytes_kind in ("x", "v"):
        text = chunk_text(TABLE, chunk, bytes_kind)
        if text is not None:
            assert text == python_text(TABLE, chunk, bytes_kind)


def test_without_the_compiled_module_rows_are_decoded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(typed_data, "_bulk", None)
    data = [{n: None for n in NAMES} | {"id": 1, "a b": "x"}]
    rows_read = data_rows(TABLE, data)
    assert isinstance(rows_read, DecodedRows)
    assert chunk_text(TABLE, Chunk(rows_read, NAMES), "x") is None
    assert list(rows_read) == data
