"""Reading and verifying dumps (core/dump/reader.py) with no database: a complete dump reads
back record for record; every malformed, altered or cut dump is refused with the documented
error naming its line, whether the line was altered or the trailer was forged to match."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from typing import Any

import pytest

from airflow_provider_zenmigrate.core.dump.reader import (
    DumpVerifier,
    entries_from_records,
    entries_from_stream,
)
from airflow_provider_zenmigrate.core.dump.typed_data import DecodedRows
from airflow_provider_zenmigrate.core.errors import (
    DumpError,
    DumpFormatError,
    DumpIntegrityError,
)
from tests.support.dumps import HEADER, Record, read_dump, reseal, sealed, table_record, to_bytes

TABLE = table_record("t", {"id": "native", "b": "bytes"})
ROWS = [{"id": 1, "b": "AA=="}, {"id": 2, "b": None}]
VIEW = {
    "kind": "object",
    "phase": "post",
    "object_type": "view",
    "name": "v",
    "table": None,
    "create_stmt": "CREATE VIEW v AS SELECT id FROM t",
}


def body() -> list[Record]:
    """A small dump without its trailer: header, table, two data records, a view."""
    data = [{"kind": "data", "table": "t", "data": [row]} for row in ROWS]
    return [dict(HEADER), dict(TABLE), *data, dict(VIEW)]


def test_a_complete_dump_reads_back_as_written() -> None:
    records = read_dump(sealed(body()))
    assert [r["kind"] for r in records] == ["header", "table", "data", "data", "object", "trailer"]
    data = [list(r["data"]) for r in records if r["kind"] == "data"]
    assert data == [[ROWS[0]], [ROWS[1]]]
    trailer = records[-1]
    assert trailer["tables"]["t"]["rows"] == 2 and trailer["records"] == 5


def test_data_records_of_the_backups_shape_are_decoded_for_their_columns() -> None:
    records = read_dump(sealed(body()))
    rows = next(r["data"] for r in records if r["kind"] == "data")
    assert isinstance(rows, DecodedRows) and rows.names == ("id", "b")


def test_verifier_counts_and_keeps_header_and_trailer() -> None:
    verifier = DumpVerifier()
    for number, record, raw in entries_from_stream(io.BytesIO(sealed(body()))):
        verifier.check(number, record, raw)
    verifier.finish()
    assert verifier.verified and verifier.header == HEADER and not verifier.legacy
    assert verifier.digest.rows == {"t": 2}


def test_in_memory_records_verify_like_lines() -> None:
    """Records that never were lines (backup_database_to_memory's) are serialised for the
    digest, so the same trailer holds."""
    verifier = DumpVerifier()
    for number, record, raw in entries_from_records(reseal(body())):
        assert raw is None
        verifier.check(number, record, raw)
    verifier.finish()
    assert verifier.verified


# -- refusals: (what is done to the dump's records, error, words of the message, line) --------
def _set(index: int, **changes: Any) -> Callable[[list[Record]], list[Record]]:
    def edit(records: list[Record]) -> list[Record]:
        records[index] = {**records[index], **changes}
        return records

    return edit


def _insert(index: int, record: Any) -> Callable[[list[Record]], list[Record]]:
    def edit(records: list[Record]) -> list[Record]:
        records.insert(index, record)
        return records

    return edit


def _columns(*columns: Any) -> Callable[[list[Record]], list[Record]]:
    return _set(1, columns=list(columns))


#: Each edit is applied to the body and then resealed: the checks must refuse it on their own.
REFUSED_EVEN_RESEALED: list[
    tuple[str, Callable[[list[Record]], list[Record]], type[DumpError], str, int]
] = [
    ("wrong format", _set(0, format="pg_dump"), DumpFormatError, "not a zenmigrate-dump", 1),
    ("future version", _set(0, version=2), DumpFormatError, "unknown format version 2", 1),
    ("no header", lambda r: r[1:], DumpFormatError, "does not start with a header", 1),
    ("unknown kind", _set(4, kind="macro"), DumpFormatError, "unknown record kind 'macro'", 5),
    ("table twice", _insert(2, TABLE), DumpFormatError, "declared twice", 3),
    ("nameless table", _set(1, table=""), DumpFormatError, "without a table name", 2),
    ("NUL in a name", _set(1, table="t\x00x"), DumpFormatError, "NUL", 2),
    ("no create_stmt", _set(1, create_stmt=None), DumpFormatError, "has no create_stmt", 2),
    ("no columns", _columns(), DumpFormatError, "declares no columns", 2),
    (
        "unknown codec",
        _columns({"name": "id", "codec": "pickle"}),
        DumpFormatError,
        "unknown codec 'pickle'",
        2,
    ),
    (
        "column twice",
        _columns({"name": "id", "codec": "native"}, {"name": "id", "codec": "native"}),
        DumpFormatError,
        "declares a column twice",
        2,
    ),
    (
        "NUL in a column",
        _columns({"name": "i\x00d", "codec": "native"}),
        DumpFormatError,
        "column name contains NUL",
        2,
    ),
    ("malformed column", _columns("id"), DumpFormatError, "malformed column", 2),
    ("key not names", _set(1, key="id"), DumpFormatError, "key is not a list", 2),
    ("options not object", _set(1, options=[1]), DumpFormatError, "options is not an object", 2),
    ("undeclared table", _set(2, table="u"), DumpFormatError, "never declared", 3),
    ("rows not a list", _set(2, data={"id": 1}), DumpFormatError, "no list of rows", 3),
    (
        "extra column",
        _set(2, data=[{"id": 1, "b": None, "c": 0}]),
        DumpFormatError,
        "exactly the declared columns",
        3,
    ),
    ("missing column", _set(3, data=[{"id": 2}]), DumpFormatError, "exactly the declared", 4),
    ("row not object", _set(3, data=[[2, None]]), DumpFormatError, "exactly the declared", 4),
    ("object without phase", _set(4, phase="during"), DumpFormatError, "no valid phase", 5),
    ("object without name", _set(4, name=None), DumpFormatError, "without name", 5),
    ("object table not name", _set(4, table=3), DumpFormatError, "table is not a name", 5),
]


@pytest.mark.parametrize(
    ("edit", "error", "words", "line"),
    [pytest.param(*case[1:], id=case[0]) for case in REFUSED_EVEN_RESEALED],
)
def test_malformed_records_are_refused_at_their_line(
    edit: Callable[[list[Record]], list[Record]], error: type[DumpError], words: str, line: int
) -> None:
    with pytest.raises(error, match=words) as caught:
        read_dump(sealed(edit(body())))
    assert caught.value.line == line
    assert str(caught.value).startswith(f"line {line}: ")


def _trailer(**changes: Any) -> bytes:
    records = reseal(body())
    records[-1] = {**records[-1], **changes}
    return to_bytes(records)


def _altered_row() -> bytes:
    records = reseal(body())
    records[3] = {**records[3], "data": [{"id": 2, "b": "AQ=="}]}  # changed, trailer kept
    return to_bytes(records)


@pytest.mark.parametrize(
    ("data", "error", "words", "line"),
    [
        pytest.param(
            _altered_row(), DumpIntegrityError, "table 't': the trailer says", 6, id="row"
        ),
        pytest.param(
            _trailer(tables={}), DumpIntegrityError, "other tables than the dump", 6, id="tables"
        ),
        pytest.param(_trailer(digest="0" * 64), DumpIntegrityError, "digest", 6, id="digest"),
        pytest.param(_trailer(records=4), DumpIntegrityError, "counts 4 records", 6, id="count"),
        pytest.param(
            _trailer() + to_bytes([VIEW]), DumpIntegrityError, "after the trailer", 7, id="after"
        ),
        pytest.param(
            to_bytes(body())[:-1], DumpIntegrityError, "middle of a line", 5, id="cut-line"
        ),
        pytest.param(
            to_bytes(body())[:20] + b"\xff\xfe" + to_bytes(body())[20:],
            DumpFormatError,
            "not valid",
            1,
            id="utf-8",
        ),
        pytest.param(
            to_bytes(body()[:2]) + b'{"kind":"data",\n', DumpFormatError, "JSON", 3, id="json"
        ),
        pytest.param(
            to_bytes([*body()[:2], [1, 2]]),  # type: ignore[list-item]
            DumpFormatError,
            "must be a JSON object",
            3,
            id="not-an-object",
        ),
        pytest.param(
            to_bytes(body()[:1]) + b"[" * 100_000 + b"\n",
            DumpFormatError,
            "nested too deeply",
            2,
            id="deep",
        ),
    ],
)
def test_altered_cut_or_garbled_dumps_are_refused(
    data: bytes, error: type[DumpError], words: str, line: int
) -> None:
    with pytest.raises(error, match=words) as caught:
        read_dump(data)
    assert caught.value.line == line


def test_a_dump_without_a_trailer_is_truncated() -> None:
    with pytest.raises(DumpIntegrityError, match="truncated: no trailer after 5 records"):
        read_dump(to_bytes(body()))


def test_an_empty_dump_is_refused() -> None:
    for data in (b"", b"\n\n  \n"):
        with pytest.raises(DumpIntegrityError, match="empty"):
            read_dump(data)


def test_a_line_over_the_limit_is_refused_without_reading_it_all() -> None:
    data = sealed([*body(), {**VIEW, "name": "w", "create_stmt": "x" * 5000}])
    stream = io.BytesIO(data)
    entries = entries_from_stream(stream, max_line_bytes=1000)
    with pytest.raises(DumpFormatError, match="line longer than 1000 bytes") as caught:
        list(entries)
    assert caught.value.line == 6
    assert stream.tell() < len(data) - 3000  # stopped inside the long line
    assert len(read_dump(data)) == 7  # the default limit takes it


# -- the legacy (unverified) format: ZenML's concatenated, pretty-printed objects ------------
LEGACY: list[Record] = [
    {"table": "t", "create_stmt": "CREATE TABLE t (id INT, s TEXT)"},
    {"table": "t", "data": [{"id": 1, "s": "a"}, {"id": 2, "s": None}]},
    {"table": "t", "data": [{"id": 3, "s": "c"}]},
]


def _legacy_bytes() -> bytes:
    return "".join(json.dumps(r, indent=4) for r in LEGACY).encode()


def test_legacy_dumps_are_refused_unless_allowed() -> None:
    with pytest.raises(DumpFormatError, match="allow_unverified=True") as caught:
        read_dump(_legacy_bytes())
    assert caught.value.line == 1


def test_legacy_dumps_read_as_v1_records_when_allowed() -> None:
    records = read_dump(_legacy_bytes(), allow_unverified=True)
    assert [r["kind"] for r in records] == ["table", "data", "data"]
    assert records[0]["create_stmt"] == LEGACY[0]["create_stmt"]
    assert [row["id"] for r in records[1:] for row in r["data"]] == [1, 2, 3]


@pytest.mark.parametrize(
    ("data", "error", "words"),
    [
        (_legacy_bytes()[:-3], DumpIntegrityError, "ends inside a JSON object"),
        (
            _legacy_bytes() + json.dumps({"table": "t", "data": [{"id": 4}]}).encode(),
            DumpFormatError,
            "columns of the table's first row",
        ),
        (
            _legacy_bytes() + json.dumps({"table": "t", "data": [], "x": 1}).encode(),
            DumpFormatError,
            "fields this version cannot restore",
        ),
        (
            _legacy_bytes() + json.dumps({"table": "u", "data": []}).encode(),
            DumpFormatError,
            "never declared",
        ),
    ],
)
def test_legacy_dumps_that_cannot_be_restored_faithfully_are_refused(
    data: bytes, error: type[DumpError], words: str
) -> None:
    with pytest.raises(error, match=words):
        read_dump(data, allow_unverified=True)


def test_every_refusal_is_a_dump_error() -> None:
    """Callers catch one type: the reader raises nothing else on bad input."""
    for case in REFUSED_EVEN_RESEALED:
        with pytest.raises(DumpError):
            read_dump(sealed(case[1](body())))
