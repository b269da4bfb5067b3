"""The typed path for data records (core/dump/typed_data.py) gives what the generic parser
gives, or steps aside.

For any data line, the typed decoder either returns None (the reader then parses the line
generically) or the very rows orjson reads, value for value and type for type, with exactly
the declared columns. Lines in the backup's own shape whose values it takes go the typed
way, so the comparison is never vacuous; problems are reported as before, at their line.
"""

from __future__ import annotations

import io
import json
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_provider_zenmigrate.core.dump.reader import DumpVerifier, entries_from_stream
from airflow_provider_zenmigrate.core.dump.records import serialize
from airflow_provider_zenmigrate.core.dump.typed_data import DataDecoders, DecodedRows
from airflow_provider_zenmigrate.core.errors import DumpFormatError
from tests.support.dumps import sealed

NAMES = ["id", "a b; DROP TABLE x", "Ünïcødé", ""]


def table_record(name: str, columns: list[str]) -> dict[str, Any]:
    return {
        "kind": "table",
        "table": name,
        "create_stmt": f"CREATE TABLE {name} (x int)",
        "columns": [{"name": c, "codec": "native"} for c in columns],
    }


def data_line(table: str, rows: list[dict[str, Any]]) -> bytes:
    return serialize({"kind": "data", "table": table, "data": rows})


def dump(table: str, columns: list[str], chunks: list[list[dict[str, Any]]]) -> bytes:
    """A sealed v1 dump of one table, its data lines as the backup writes them."""
    header = {"kind": "header", "format": "zenmigrate-dump", "version": 1}
    data = [{"kind": "data", "table": table, "data": rows} for rows in chunks]
    return sealed([header, table_record(table, columns), *data])


def read(raw: bytes) -> list[dict[str, Any]]:
    verifier = DumpVerifier()
    records = [verifier.check(n, r, line) for n, r, line in entries_from_stream(io.BytesIO(raw))]
    verifier.finish()
    return records


def exact(value: Any) -> str:
    """A value's JSON with its types kept apart (1, 1.0 and true differ; key order not)."""
    return json.dumps(value, sort_keys=True)


def test_backup_shaped_lines_take_the_typed_path_and_verify() -> None:
    chunks = [
        [{c: i * 10 + j for j, c in enumerate(NAMES)} for i in range(k, k + 3)] for k in (0, 3)
    ]
    records = read(dump("t", NAMES, chunks))
    data = [r["data"] for r in records if r["kind"] == "data"]
    assert all(isinstance(rows, DecodedRows) for rows in data)
    assert [list(rows) for rows in data] == chunks
    assert data[1][0] == chunks[1][0] and data[1][1:] == chunks[1][1:]
    assert data[0].columns() == [tuple(row[c] for row in chunks[0]) for c in NAMES]


@pytest.mark.parametrize("name", ['qu"ote', "back\\slash", "tab\there", "bell\x07"])
def test_names_it_cannot_match_go_the_generic_way(name: str) -> None:
    columns = ["id", name]
    chunks: list[list[dict[str, Any]]] = [[{"id": 1, name: "x"}, {"id": 2, name: None}]]
    records = read(dump("t", columns, chunks))
    data = [r["data"] for r in records if r["kind"] == "data"]
    assert data == chunks and not isinstance(data[0], DecodedRows)


@pytest.mark.parametrize(
    ("row", "why"),
    [
        ({"id": 1}, "missing"),
        ({"id": 1, "v": 2, "w": 3}, "extra"),
        ({"id": 1, "V": 2}, "another name"),
    ],
)
def test_a_row_without_exactly_the_columns_is_refused_at_its_line(
    row: dict[str, Any], why: str
) -> None:
    good = [{"id": 0, "v": 0}]
    raw = dump("t", ["id", "v"], [good, [good[0], row]])
    with pytest.raises(DumpFormatError, match="does not have exactly the declared columns") as err:
        read(raw)
    assert err.value.line == 4, why


# Values as a dump may hold them, and some it should not: integers past 64 bits, arrays,
# objects, unicode and the characters bulk loading escapes.
VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(alphabet=st.characters(codec="utf-8"), max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=4,
)
COLUMNS = ["id", "name", "Ünï"]
ROWS = st.lists(
    st.dictionaries(st.sampled_from([*COLUMNS, "other"]), VALUES, min_size=2, max_size=4),
    min_size=1,
    max_size=4,
)


@settings(
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=600,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(rows=ROWS, reorder=st.booleans())
def test_typed_rows_are_the_generic_rows_or_none(rows: list[dict[str, Any]], reorder: bool) -> None:
    decoders = DataDecoders()
    decoders.declare(table_record("t", COLUMNS))
    if reorder:
        rows = [dict(reversed(row.items())) for row in rows]
    line = data_line("t", rows)
    typed = decoders.decode(line)
    generic = orjson.loads(line)
    plain = all(
        row.keys() == set(COLUMNS)
        and all(
            v is None
            or isinstance(v, bool | float | str)
            or (isinstance(v, int) and -(2**63) <= v < 2**63)
            for v in row.values()
        )
        for row in rows
    )
    if plain:  # the typed path is taken whenever it can be
        assert typed is not None
    if typed is not None:
        assert typed["kind"] == "data" and typed["table"] == "t"
        assert exact(list(typed["data"])) == exact(generic["data"])
        assert all(list(row) == COLUMNS for row in typed["data"])
