"""Fuzzing the dump reader with mutated and truncated real dumps (hypothesis, fixed budget).

The dumps are real: the product's backup of small MariaDB, PostgreSQL and SQLite databases
with every value codec and object records (tests/support/hostile.py). Mutations work on
bytes (flips, insertions, deletions, truncation, lines duplicated, dropped or swapped) and on
JSON (a value of another type, added or removed keys, nesting, records reordered), resealed
or not. Whatever comes out, the reader raises only the documented errors (``DumpError`` and
its subclasses, with a line inside the dump), within a wall-clock guard and a memory bound;
the full restore path into a real SQLite file raises only those or the database's own
refusal (``sqlite3.Error``), and leaves the target exactly as it was whenever it refuses.

Budget: READER_EXAMPLES and RESTORE_EXAMPLES examples, derandomized (the same examples on
every run), no example database: about 100 s together on the 2-core CI machine, a share of
the suite's 15 minutes. A deeper run sets ZENMIGRATE_FUZZ_READER_EXAMPLES and
ZENMIGRATE_FUZZ_RESTORE_EXAMPLES (the suite ran 22,000 and 5,000 until December 2026, every
example passing).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import sqlite3
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import URL

from airflow_provider_zenmigrate.core.dump.reader import DumpVerifier, entries_from_stream
from airflow_provider_zenmigrate.core.errors import DumpError, DumpFormatError
from airflow_provider_zenmigrate.core.utils import MigrationUtils
from tests.support.dumps import records_of, sealed, to_bytes
from tests.support.engine_support import folder_files
from tests.support.hostile import (
    Record,
    real_dump,
    source_database,
)
from tests.support.identity import fingerprint
from tests.support.servers import DIALECTS

READER_EXAMPLES = int(os.environ.get("ZENMIGRATE_FUZZ_READER_EXAMPLES", "10000"))
RESTORE_EXAMPLES = int(os.environ.get("ZENMIGRATE_FUZZ_RESTORE_EXAMPLES", "2500"))
#: Seconds one example may take before it counts as a hang (generous: CI is loaded).
GUARD_SECONDS = 30
#: Memory one example may allocate at its peak (the dumps are a few KiB).
MEMORY_BOUND = 64 * 1024 * 1024

FUZZ = settings(
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    print_blob=False,
)
READER = settings(FUZZ, max_examples=READER_EXAMPLES)
RESTORE = settings(FUZZ, max_examples=RESTORE_EXAMPLES)


class Dumps(dict[str, bytes]):
    """One real dump per dialect (shown short in hypothesis' reports)."""

    def __repr__(self) -> str:
        return f"<real dumps of {', '.join(self)}>"


@pytest.fixture(scope="module")
def dumps(tmp_path_factory: pytest.TempPathFactory) -> Dumps:
    """One real dump per dialect."""
    out = Dumps()
    for dialect in DIALECTS:
        folder = tmp_path_factory.mktemp(f"fuzz-{dialect}")
        with source_database(dialect, folder) as source:
            out[dialect] = real_dump(source, folder)
    return out


@pytest.fixture(scope="module")
def sqlite_target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MigrationUtils]:
    """A real SQLite database file that every refused restore must leave as it was."""
    folder = tmp_path_factory.mktemp("fuzz-target")
    path = folder / "target.db"
    with sqlite3.connect(path) as conn:
        conn.executescript(
            "CREATE TABLE existing (id INTEGER PRIMARY KEY, v TEXT);"
            "INSERT INTO existing VALUES (1, 'kept'), (2, 'also kept');"
            "CREATE VIEW existing_view AS SELECT v FROM existing;"
        )
    conn.close()
    utils = MigrationUtils(
        url=URL.create("sqlite", database=str(path)), connect_args={}, engine_args={}
    )
    yield utils
    utils.dispose()


# -- mutations ---------------------------------------------------------------------------------
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)
KINDS = ["header", "table", "data", "object", "trailer", "nope", ""]
BYTE_OPS = ["flip", "insert", "delete", "truncate", "dup_line", "drop_line", "swap_lines"]
JSON_OPS = ["retype", "add_key", "drop_key", "nest", "kind", "move", "duplicate", "bomb"]


def _containers(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Any]]:
    """Every dict and list inside ``value`` with its path."""
    if isinstance(value, dict | list):
        yield path, value
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, child in items:
            yield from _containers(child, (*path, key))


def _byte_op(data: st.DataObject, blob: bytes, op: str) -> bytes:
    if not blob:
        return blob
    at = data.draw(st.integers(0, len(blob) - 1), label="at")
    if op == "flip":
        bit = data.draw(st.integers(0, 7), label="bit")
        return blob[:at] + bytes([blob[at] ^ (1 << bit)]) + blob[at + 1 :]
    if op == "insert":
        junk = data.draw(st.binary(min_size=1, max_size=8), label="junk")
        return blob[:at] + junk + blob[at:]
    if op == "delete":
        size = data.draw(st.integers(1, 64), label="size")
        return blob[:at] + blob[at + size :]
    if op == "truncate":
        return blob[:at]
    lines = blob.split(b"\n")
    i = data.draw(st.integers(0, len(lines) - 1), label="line")
    if op == "dup_line":
        lines.insert(i, lines[i])
    elif op == "drop_line":
        del lines[i]
    else:
        j = data.draw(st.integers(0, len(lines) - 1), label="other line")
        lines[i], lines[j] = lines[j], lines[i]
    return b"\n".join(lines)


def _json_op(data: st.DataObject, records: list[Record], op: str) -> list[Record] | bytes:
    """Mutate parsed records; ``bytes`` when the result cannot be written by ``json``."""
    i = data.draw(st.integers(0, len(records) - 1), label="record")
    record = json.loads(json.dumps(records[i]))  # a deep copy
    if op in ("move", "duplicate"):
        j = data.draw(st.integers(0, len(records) - 1), label="to")
        out = [r for n, r in enumerate(records) if n != i or op == "duplicate"]
        out.insert(j, record)
        return out
    if op == "kind":
        record["kind"] = data.draw(st.sampled_from(KINDS), label="kind")
    else:
        places = list(_containers(record))
        path, container = data.draw(st.sampled_from(places), label="place")
        keys = list(container) if isinstance(container, dict) else list(range(len(container)))
        if op == "add_key" and isinstance(container, dict):
            container[data.draw(st.text(max_size=8), label="key")] = data.draw(JSON_VALUES)
        elif op == "add_key":
            container.append(data.draw(JSON_VALUES, label="item"))
        elif not keys:
            return records
        else:
            key = data.draw(st.sampled_from(keys), label="key")
            if op == "drop_key":
                del container[key]
            elif op == "retype":
                container[key] = data.draw(JSON_VALUES, label="value")
            elif op == "nest":
                depth = data.draw(st.integers(1, 150), label="depth")
                for _ in range(depth):
                    container[key] = [container[key]] if depth % 2 else {"n": container[key]}
            else:  # bomb: deeper than any parser goes, written by hand
                depth = data.draw(st.integers(2_000, 100_000), label="depth")
                container[key] = "\x00BOMB\x00"
                lines = [json.dumps(r, ensure_ascii=False).encode() for r in records]
                bomb = b"[" * depth + b"0" + b"]" * depth
                lines[i] = (
                    json.dumps(record, ensure_ascii=False)
                    .encode()
                    .replace(b'"\\u0000BOMB\\u0000"', bomb)
                )
                return b"\n".join(lines) + b"\n"
    return [*records[:i], record, *records[i + 1 :]]


def mutate(data: st.DataObject, blob: bytes) -> bytes:
    """One to three mutations, byte-level or JSON-level; JSON results resealed or not."""
    for _ in range(data.draw(st.integers(1, 3), label="mutations")):
        op = data.draw(st.sampled_from(BYTE_OPS + JSON_OPS), label="op")
        if op in BYTE_OPS:
            blob = _byte_op(data, blob, op)
            continue
        try:
            records = records_of(blob)
            if not records or not all(isinstance(r, dict) for r in records):
                raise ValueError("not records")
            result = _json_op(data, records, op)
        except (ValueError, RecursionError):
            blob = _byte_op(data, blob, "flip")  # no longer JSON Lines: stay at byte level
            continue
        if isinstance(result, bytes):
            blob = result
            continue
        blob = to_bytes(result)
        if data.draw(st.booleans(), label="reseal"):
            # the trailer agrees, so only the record checks can refuse (records the digest
            # itself cannot take stay unsealed)
            with contextlib.suppress(TypeError, KeyError, AttributeError):
                blob = sealed(result)
    return blob


# -- guards ----------------------------------------------------------------------------------
class Hang(BaseException):
    """An example ran longer than GUARD_SECONDS (not an Exception: nothing may catch it)."""


def _alarm(_signum: int, _frame: FrameType | None) -> None:
    raise Hang(f"an example ran longer than {GUARD_SECONDS}s")


def guarded(action: Any, *args: Any) -> tuple[BaseException | None, int, float]:
    """Run ``action(*args)`` under the wall-clock guard and tracemalloc: (error, peak, secs)."""
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, GUARD_SECONDS)
    tracemalloc.start()
    started = time.monotonic()
    error: BaseException | None = None
    try:
        action(*args)
    except Exception as exc:  # noqa: BLE001 - classified by the caller
        error = exc
    finally:
        seconds = time.monotonic() - started
        _current, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    return error, peak, seconds


def _outcome(error: BaseException | None) -> str:
    """What an example ended in, for hypothesis' statistics (--hypothesis-show-statistics)."""
    if error is None:
        return "accepted"
    text = str(error).split(": ", 1)[-1] if isinstance(error, DumpError) else str(error)
    return f"{type(error).__name__} ({' '.join(text.split()[:3])}...)"


def read_all(blob: bytes, allow_unverified: bool) -> None:
    verifier = DumpVerifier(allow_unverified=allow_unverified)
    for line, record, raw in entries_from_stream(io.BytesIO(blob)):
        verifier.check(line, record, raw)
    verifier.finish()


def assert_documented(error: BaseException | None, blob: bytes, *allowed: type) -> None:
    if error is None:
        return
    if not isinstance(error, (DumpError, *allowed)):
        raise AssertionError(f"undocumented {type(error).__name__}: {error}") from error
    if isinstance(error, DumpError):
        assert str(error), "an error without a message"
        lines = blob.count(b"\n") + 1
        assert error.line is None or 1 <= error.line <= lines, (error.line, lines)


# -- the reader alone --------------------------------------------------------------------------
@READER
@given(data=st.data())
def test_reader_raises_only_documented_errors(dumps: Dumps, data: st.DataObject) -> None:
    dialect = data.draw(st.sampled_from(DIALECTS), label="dialect")
    blob = mutate(data, dumps[dialect])
    for allow_unverified in (False, True):  # the seed's format path too
        error, peak, seconds = guarded(read_all, blob, allow_unverified)
        event(f"reader (unverified allowed: {allow_unverified}): {_outcome(error)}")
        assert_documented(error, blob)
        assert peak < MEMORY_BOUND, f"peak {peak / 2**20:.1f} MiB"
        assert seconds < GUARD_SECONDS


# -- the whole restore into a real SQLite file -------------------------------------------------
@RESTORE
@given(data=st.data())
def test_restore_refuses_cleanly_and_touches_nothing(
    dumps: Dumps, sqlite_target: MigrationUtils, data: st.DataObject
) -> None:
    target = sqlite_target
    path = Path(str(target.url.database))
    original = fingerprint(target.url)
    files = folder_files(path.parent)
    blob = mutate(data, dumps["sqlite"])
    dump = path.parent / "fuzz.jsonl"
    dump.write_bytes(blob)
    saved = path.read_bytes()
    try:
        error, peak, seconds = guarded(target.restore_database_from_file, str(dump))
        target.dispose()
        event(f"restore: {_outcome(error)}")
        assert seconds < GUARD_SECONDS
        assert peak < 4 * MEMORY_BOUND, f"peak {peak / 2**20:.1f} MiB"
        assert_documented(error, blob, sqlite3.Error)
        if error is not None:
            assert fingerprint(target.url) == original, f"changed by a refused dump: {error}"
        else:  # still a valid dump (a harmless change, resealed): the reader agrees
            read_all(blob, allow_unverified=False)
        assert folder_files(path.parent) == files | {"fuzz.jsonl"}, "staging leftovers"
    finally:
        dump.unlink()
        if fingerprint(target.url) != original:  # a successful restore: put the target back
            path.write_bytes(saved)
            for side in ("-wal", "-shm", "-journal"):
                Path(f"{path}{side}").unlink(missing_ok=True)
            target.dispose()


# -- what the fuzzing found (fixed; each fails without its fix) -------------------------------
def _first(records: list[Record], kind: str, table: str = "typed") -> int:
    return next(i for i, r in enumerate(records) if r["kind"] == kind and r.get("table") == table)


def _with(records: list[Record], index: int, **changes: Any) -> list[Record]:
    return [{**r, **changes} if i == index else r for i, r in enumerate(records)]


def _found_cases(blob: bytes) -> dict[str, tuple[bytes, bool]]:
    """name: (dump, through a full restore rather than the reader alone)."""
    records = records_of(blob)
    data = _first(records, "data")
    table = _first(records, "table")
    row = records[data]["data"][0]
    return {
        # a data record naming its table with a list: TypeError (unhashable) in the verifier
        "unhashable-table-name": (to_bytes(_with(records, data, table=["typed"])), False),
        # a column's codec given as a list: TypeError (unhashable) in the verifier
        "unhashable-codec": (
            to_bytes(
                _with(
                    records,
                    table,
                    columns=[{**c, "codec": ["bytes"]} for c in records[table]["columns"]],
                )
            ),
            False,
        ),
        # invalid UTF-8 on the first line: UnicodeDecodeError from the seed-format path
        "first-line-not-utf8": (b"\xff\xfe" + blob, False),
        # nesting deeper than the parser goes, first line or later: RecursionError
        "nested-first-line": (b"[" * 50_000 + b"\n" + blob, False),
        "nested-later-line": (blob.replace(b"\n", b"\n" + b"[" * 50_000 + b"\n", 1), False),
        # the seed's format path with a deep object: RecursionError
        "nested-seed-object": (b'{"table": "t",\n"data": ' + b"[" * 50_000, False),
        # key and options of the wrong type: TypeError / ValueError while restoring
        "key-not-a-list": (sealed(_with(records, table, key=7)), True),
        "options-not-an-object": (sealed(_with(records, table, options="abc")), True),
        # a dynamic value its codec cannot decode: binascii.Error / ValueError
        "dynamic-bytes-not-base64": (
            sealed(_with(records, data, data=[{**row, "b": {"bytes": "not base64!"}}])),
            True,
        ),
        "dynamic-float-not-a-number": (
            sealed(_with(records, data, data=[{**row, "f": {"float": "one"}}])),
            True,
        ),
        "dynamic-unknown-tag": (
            sealed(_with(records, data, data=[{**row, "s": {"what": 1}}])),
            True,
        ),
    }


FOUND = [
    "unhashable-table-name",
    "unhashable-codec",
    "first-line-not-utf8",
    "nested-first-line",
    "nested-later-line",
    "nested-seed-object",
    "key-not-a-list",
    "options-not-an-object",
    "dynamic-bytes-not-base64",
    "dynamic-float-not-a-number",
    "dynamic-unknown-tag",
]


@pytest.mark.parametrize("case", FOUND)
def test_what_fuzzing_found_is_a_format_error(
    dumps: Dumps, sqlite_target: MigrationUtils, case: str, tmp_path: Path
) -> None:
    blob, restore = _found_cases(dumps["sqlite"])[case]
    original = fingerprint(sqlite_target.url)
    with pytest.raises(DumpFormatError) as refused:
        if restore:
            dump = tmp_path / "found.jsonl"
            dump.write_bytes(blob)
            sqlite_target.restore_database_from_file(str(dump))
        else:
            read_all(blob, allow_unverified=case == "nested-seed-object")
    sqlite_target.dispose()
    assert refused.value.line is not None and refused.value.line >= 1, str(refused.value)
    assert fingerprint(sqlite_target.url) == original
