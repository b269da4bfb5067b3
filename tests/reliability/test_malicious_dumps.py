"""A catalogue of malicious dumps, each correctly sealed: every one is refused by the safety
rules (not by the digest) with an error naming the record and its line, and neither the
restore target nor a victim beside it (another database, schema or file) changes.

The catalogue is the rules of docs/dump-format.md, "What a dump may create", seen from the
attacker's side; each case runs on every dialect whose SQL it is written in. The lexical rules
must hold even for a caller who trusts routines, so the cases restore with allow_routines=True,
except those whose routine only the default refusal of routines can stop.
"""

from __future__ import annotations

import gzip
import json
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, cast

import pytest
import sqlalchemy
from sqlalchemy.pool import NullPool

from airflow_provider_zenmigrate.core.dump.reader import MAX_LINE_BYTES, entries_from_stream
from airflow_provider_zenmigrate.core.dump.records import DumpDigest
from airflow_provider_zenmigrate.core.errors import (
    DumpFormatError,
)
from airflow_provider_zenmigrate.core.restore import restore_entries
from airflow_provider_zenmigrate.core.storage import open_for_read
from tests.support.dumps import sealed
from tests.support.hostile import (
    ROWS,
    LazyStream,
    Record,
    World,
    lazy_worlds,
    line_of,
    world,
)
from tests.support.malicious_cases import CASES, PARAMS, ROUTINE_WRITES
from tests.support.servers import DIALECTS


@pytest.fixture(scope="module")
def worlds(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], World]]:
    """One world per dialect, made when a test first needs it, shared by the module."""
    with lazy_worlds(tmp_path_factory, "hostile") as get:
        yield get


@pytest.mark.parametrize(("case", "dialect"), PARAMS)
def test_malicious_dump_is_refused(worlds: Callable[[str], World], case: str, dialect: str) -> None:
    w = worlds(dialect)
    spec = CASES[case]
    data = sealed(spec.forge(w))
    path = w.folder / f"{case}.jsonl"
    path.write_bytes(data)
    before = w.snapshot()
    with pytest.raises(spec.error) as refused:
        w.target.restore_database_from_file(str(path), allow_routines=spec.allow_routines)
    w.target.dispose()
    message = str(refused.value)
    assert spec.names in message, message
    assert refused.value.line == line_of(data, spec.record), message
    assert message.startswith(f"line {refused.value.line}: ")
    if not spec.allow_routines:
        assert "allow_routines=True" in message, message
    assert w.snapshot() == before


@pytest.mark.parametrize("write", ROUTINE_WRITES)
def test_allowed_routine_runs_during_the_load(
    tmp_path_factory: pytest.TempPathFactory, write: str
) -> None:
    """The dumps above are real attacks: a caller who allows routines trusts their bodies,
    and the function does write into the victim while the restore loads the table (which is
    why routines are refused by default)."""
    with world("postgresql", tmp_path_factory.mktemp(f"trusted-{write}")) as w:
        path = w.folder / "trusted.jsonl"
        path.write_bytes(sealed(CASES[f"check-calls-function-{write}"].forge(w)))
        w.target.restore_database_from_file(str(path), allow_routines=True)
        w.target.dispose()
        engine = sqlalchemy.create_engine(w.target.url, poolclass=NullPool)
        with engine.connect() as conn:
            written = conn.exec_driver_sql("SELECT x FROM victim.keep ORDER BY x").scalars().all()
        engine.dispose()
        assert written == [*range(1, ROWS + 1), 42]


# -- JSON-level bombs ------------------------------------------------------------------------
def _raw_sealed(lines: list[bytes], shapes: list[Record]) -> bytes:
    """Seal raw lines (which Python's json could not write) with a correct trailer."""
    digest = DumpDigest()
    for line, shape in zip(lines, shapes, strict=True):
        digest.add_line(line, shape)
    trailer = json.dumps(digest.trailer(), separators=(",", ":")).encode()
    return b"".join(line + b"\n" for line in lines) + trailer + b"\n"


def _bomb_dump(w: World, depth: int) -> tuple[bytes, int]:
    """A sealed dump whose first data record of ``plain`` holds a value nested ``depth``
    arrays deep; returns it and the bomb's line number."""
    body = [r for r in w.records if r["kind"] != "trailer"]
    at = next(i for i, r in enumerate(body) if r["kind"] == "data" and r["table"] == "plain")
    lines = [json.dumps(r, separators=(",", ":"), ensure_ascii=False).encode() for r in body]
    row = body[at]["data"][0]
    bomb = b"[" * depth + b"1" + b"]" * depth
    lines[at] = (
        b'{"kind":"data","table":"plain","data":[{"id":'
        + json.dumps(row["id"]).encode()
        + b',"note":'
        + bomb
        + b"}]}"
    )
    shapes = [*body[:at], {"kind": "data", "table": "plain", "data": [None]}, *body[at + 1 :]]
    return _raw_sealed(lines, shapes), at + 1


@pytest.mark.parametrize("dialect", DIALECTS)
def test_json_nesting_bomb_is_a_format_error(worlds: Callable[[str], World], dialect: str) -> None:
    w = worlds(dialect)
    data, line = _bomb_dump(w, 100_000)
    path = w.folder / "bomb.jsonl"
    path.write_bytes(data)
    before = w.snapshot()
    with pytest.raises(DumpFormatError, match="nested too deeply") as refused:
        w.target.restore_database_from_file(str(path))
    w.target.dispose()
    assert refused.value.line == line
    assert w.snapshot() == before


# -- a 1 GB line ------------------------------------------------------------------------------
GIB = 1 << 30


def _header_line(w: World) -> bytes:
    return json.dumps(w.records[0], separators=(",", ":")).encode() + b"\n"


def test_gigabyte_line_is_refused_holding_at_most_the_limit() -> None:
    """The reader alone, with its default limit: a 1 GiB data line (made lazily) is refused
    at the limit, holding no more than the limit, after reading no more than it."""
    header = b'{"kind":"header","format":"zenmigrate-dump","version":1}\n'
    stream = LazyStream(header + b'{"kind":"data","table":"t","data":[{"x":"', GIB)
    tracemalloc.start()
    started = time.monotonic()
    try:
        with pytest.raises(DumpFormatError, match=f"longer than {MAX_LINE_BYTES} bytes") as err:
            for _ in entries_from_stream(cast(IO[bytes], stream)):
                pass
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert err.value.line == 2
    assert stream.served <= len(header) + MAX_LINE_BYTES + 1
    assert stream.largest <= 8 * 1024 * 1024  # read in pieces, never the limit at once
    assert peak < MAX_LINE_BYTES + 64 * 1024 * 1024, f"peak {peak / 2**20:.0f} MiB"
    assert time.monotonic() - started < 60


@pytest.mark.parametrize("dialect", DIALECTS)
def test_gigabyte_line_restore_leaves_everything(
    worlds: Callable[[str], World], dialect: str
) -> None:
    """Through a real restore, with a lowered limit so the test stays small: the memory the
    refusal takes follows the limit, not the line, and nothing changes."""
    w = worlds(dialect)
    limit = 16 * 1024 * 1024
    stream = LazyStream(
        _header_line(w) + b'{"kind":"data","table":"plain","data":[{"id":1,"note":"', GIB
    )
    before = w.snapshot()
    tracemalloc.start()
    try:
        with pytest.raises(DumpFormatError, match="longer than") as refused:
            entries = entries_from_stream(cast(IO[bytes], stream), max_line_bytes=limit)
            restore_entries(w.target.engine, entries)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        w.target.dispose()
    assert refused.value.line == 2
    assert stream.served < 2 * limit
    assert peak < 4 * limit, f"peak {peak / 2**20:.0f} MiB"
    assert w.snapshot() == before


def test_legacy_object_of_a_gigabyte_is_refused_in_linear_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The seed's format spreads an object over lines: a 1 GiB one (made lazily) is refused
    once it passes the limit, parsing it only a bounded number of times (no quadratic work:
    a parse each time the buffer has doubled, not one per chunk read)."""
    limit = 32 * 1024 * 1024
    parses = []
    raw_decode = json.JSONDecoder.raw_decode

    def counted(self: json.JSONDecoder, s: str, idx: int = 0) -> tuple[Any, int]:
        parses.append(len(s))
        return raw_decode(self, s, idx)

    monkeypatch.setattr(json.JSONDecoder, "raw_decode", counted)
    item = b'"' + b"x" * 1000 + b'",\n'  # few allocations: tracemalloc stays cheap
    stream = LazyStream(b'{"table": "t",\n "data": [\n', GIB, fill=item)
    started = time.monotonic()
    tracemalloc.start()
    try:
        with pytest.raises(DumpFormatError, match="longer than") as refused:
            for _ in entries_from_stream(cast(IO[bytes], stream), max_line_bytes=limit):
                pass
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert refused.value.line == 1
    assert stream.served < limit + 4 * 1024 * 1024
    assert len(parses) <= 2 + (limit // (1 << 20)).bit_length(), len(parses)
    # the text, one parse of it and the next chunk: bounded by the limit, not the stream
    assert peak < 6 * limit, f"peak {peak / 2**20:.0f} MiB"
    assert time.monotonic() - started < 60


def test_gzip_bomb_is_refused_at_the_limit(tmp_path: Path) -> None:
    """A small .gz whose second line inflates to 256 MiB: read through the storage layer, it
    is refused after inflating no more than the limit it was given."""
    limit = 16 * 1024 * 1024
    path = tmp_path / "bomb.jsonl.gz"
    block = b"a" * (1 << 20)
    with gzip.open(path, "wb", compresslevel=1) as out:
        out.write(b'{"kind":"header","format":"zenmigrate-dump","version":1}\n{"x":"')
        for _ in range(256):
            out.write(block)
    assert path.stat().st_size < 2 * 1024 * 1024

    tracemalloc.start()
    try:
        with open_for_read(str(path)) as stream, pytest.raises(DumpFormatError) as refused:
            for _ in entries_from_stream(cast(IO[bytes], stream), max_line_bytes=limit):
                pass
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert refused.value.line == 2
    assert peak < 4 * limit, f"peak {peak / 2**20:.0f} MiB"
