"""Records (core/dump/records.py): one canonical line per record, and the digests DumpDigest
takes on its background thread are the ones docs/dump-format.md defines, computed here
directly with hashlib: lines of several tables interleaved, small ones and ones larger than
a hashing batch, read back before and after more lines."""

from __future__ import annotations

import hashlib
import json
import math
import random
from typing import Any

import pytest

from airflow_provider_zenmigrate.core.dump.records import DumpDigest, data_line, serialize


def test_digests_are_the_documented_sha256s() -> None:
    rng = random.Random(7)
    digest = DumpDigest()
    whole = hashlib.sha256()
    tables: dict[str, list[bytes]] = {"a": [], "b": [], "c": []}
    rows = dict.fromkeys(tables, 0)

    def add(record: dict[str, object]) -> None:
        line = serialize(record)
        digest.add_line(line, record)
        whole.update(line + b"\n")
        if record["kind"] == "data":
            tables[str(record["table"])].append(line)

    add({"kind": "header", "format": "zenmigrate-dump", "version": 1})
    for name in tables:
        add({"kind": "table", "table": name, "create_stmt": "", "columns": []})
    for n in range(60):
        name = rng.choice(sorted(tables))
        size = rng.choice([10, 1000, 300_000, 5 * 1024 * 1024])
        data = [{"v": "x" * size}] * rng.randint(1, 3)
        rows[name] += len(data)
        add({"kind": "data", "table": name, "data": data})
        if n == 30:  # read midway, then go on: later lines still count
            assert digest.hexdigest() == whole.hexdigest()
    add({"kind": "object", "phase": "post", "object_type": "view", "name": "v"})

    assert digest.hexdigest() == whole.hexdigest()
    expected = {
        name: {"rows": rows[name], "sha256": hashlib.sha256(b"".join(lines)).hexdigest()}
        for name, lines in tables.items()
    }
    assert digest.table_summary() == expected
    assert digest.trailer()["records"] == 1 + len(tables) + 60 + 1


@pytest.mark.parametrize(
    ("record", "line"),
    [
        ({"b": 1, "a": [1, 2]}, b'{"b":1,"a":[1,2]}'),  # key order kept, no spaces
        ({"s": "naïve ☃ 😀"}, '{"s":"naïve ☃ 😀"}'.encode()),  # UTF-8, not \u escapes
        ({"s": 'q"\\\n'}, b'{"s":"q\\"\\\\\\n"}'),
        ({"x": None, "t": True}, b'{"x":null,"t":true}'),
    ],
)
def test_serialize_is_one_canonical_line(record: dict[str, Any], line: bytes) -> None:
    assert serialize(record) == line
    assert b"\n" not in serialize(record)
    assert json.loads(line) == record


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_serialize_refuses_what_json_cannot_hold(value: float) -> None:
    with pytest.raises(ValueError):
        serialize({"v": value})


def test_data_line_is_the_serialized_data_record() -> None:
    rows = [{"id": 1, "s": "é"}, {"id": 2, "s": None}]
    blocks = [serialize(row) for row in rows]
    expected = serialize({"kind": "data", "table": 'we"ird', "data": rows})
    assert data_line('we"ird', blocks) == expected
    assert data_line("t", []) == serialize({"kind": "data", "table": "t", "data": []})


def test_rendered_data_lines_digest_like_parsed_ones() -> None:
    """The backup's rendered rows (add_data_line) and a reader's parsed records (add_line)
    give the same trailer for the same lines."""
    table = {"kind": "table", "table": "t", "create_stmt": "", "columns": []}
    rows = [{"id": i} for i in range(5)]
    line = data_line("t", [serialize(r) for r in rows])
    written, read = DumpDigest(), DumpDigest()
    for digest in (written, read):
        digest.add_line(serialize(table), table)
    written.add_data_line(line, "t", len(rows))
    read.add_line(line, {"kind": "data", "table": "t", "data": rows})
    assert written.trailer() == read.trailer()
    assert written.trailer()["tables"]["t"]["rows"] == 5
    assert written.trailer()["records"] == 2
