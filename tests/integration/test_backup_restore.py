"""The seed's backup and restore methods on all three dialects, through the dump engine."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_zenmigrate.core.alembic import Alembic
from airflow_provider_zenmigrate.core.dump import typed_data
from airflow_provider_zenmigrate.core.dump.chunk import Chunk
from airflow_provider_zenmigrate.core.errors import (
    DumpFormatError,
    DumpIntegrityError,
    UnsafeDumpError,
)
from airflow_provider_zenmigrate.core.storage import StorageNotFoundError
from airflow_provider_zenmigrate.core.utils import MigrationUtils
from tests.support.dumps import reseal
from tests.support.engine_support import (
    line_of,
    read_lines,
    restore_side_objects,
    write_lines,
)
from tests.support.identity import fingerprint
from tests.support.paths import EXAMPLE_MIGRATIONS, FIXTURES


@pytest.mark.parametrize("suffix", [".jsonl", ".jsonl.gz", ".jsonl.zst"])
def test_file_round_trip_is_identical(
    source: MigrationUtils, target: MigrationUtils, tmp_path: Path, suffix: str
) -> None:
    dump = tmp_path / f"backup{suffix}"
    source.backup_database_to_file(str(dump))
    assert dump.exists() and not list(tmp_path.glob(".*.partial"))
    if suffix == ".jsonl.gz":
        assert dump.read_bytes()[:2] == b"\x1f\x8b"
    if suffix == ".jsonl.zst":
        assert dump.read_bytes()[:4] == b"\x28\xb5\x2f\xfd"
    summary = target.restore_database_from_file(str(dump))
    assert summary.tables["book"] == 150 and summary.tables["author"] == 50
    assert fingerprint(target.url) == fingerprint(source.url)
    restored = Alembic(target.engine, script_location=EXAMPLE_MIGRATIONS)
    assert restored.current_revisions() == ["0003"]


def test_header_and_trailer(source: MigrationUtils, dialect: str) -> None:
    records = source.backup_database_to_memory()
    header, trailer = records[0], records[-1]
    assert header["kind"] == "header" and header["format"] == "zenmigrate-dump"
    assert header["version"] == 1 and header["dialect"] == dialect
    assert header["revisions"] == ["0003"]
    assert header["server_version"]
    assert trailer["kind"] == "trailer"
    assert trailer["tables"]["author"]["rows"] == 50
    assert trailer["tables"]["book"]["rows"] == 150
    tables = [r["table"] for r in records if r["kind"] == "table"]
    assert {"author", "book", "alembic_version"} <= set(tables)
    for record in records:  # the seed's keys keep their meaning
        if record["kind"] == "table":
            assert isinstance(record["create_stmt"], str)
        if record["kind"] == "data":
            assert all(isinstance(row, dict) for row in record["data"])


def test_memory_and_storage_round_trips(source: MigrationUtils, target: MigrationUtils) -> None:
    expected = fingerprint(source.url)
    target.restore_database_from_memory(source.backup_database_to_memory())
    assert fingerprint(target.url) == expected

    stored: list[dict[str, Any]] = []
    source.backup_database_to_storage(stored.append)
    with target.engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM book")

    def load() -> Iterator[dict[str, Any]]:
        yield from stored

    target.restore_database_from_storage(load)
    assert fingerprint(target.url) == expected


def test_database_copy_round_trip(source: MigrationUtils, dialect: str) -> None:
    expected = fingerprint(source.url)
    backup = "bk_" + Path(source.url.database or "x").stem
    source.backup_database_to_db(backup)
    try:
        backup_url = source.dialect.database_url(source.url, backup)
        assert fingerprint(backup_url) == expected
        with source.engine.begin() as conn:
            conn.exec_driver_sql("DELETE FROM book")
            conn.exec_driver_sql("CREATE TABLE added_later (id INTEGER PRIMARY KEY)")
        source.restore_database_from_db(backup)
        assert fingerprint(source.url) == expected
    finally:
        source.drop_database(backup)


def test_restore_from_missing_database_raises(source: MigrationUtils) -> None:
    with pytest.raises(RuntimeError, match="does not exist"):
        source.restore_database_from_db("no_such_backup_db")


def test_restore_from_missing_file_says_not_found(target: MigrationUtils, tmp_path: Path) -> None:
    with pytest.raises(StorageNotFoundError, match="not found"):
        target.restore_database_from_file(str(tmp_path / "nope.jsonl"))


# -- bad and untrusted input ---------------------------------------------------------------


def _tamper_cases(records: list[dict[str, Any]]) -> dict[str, tuple[list[dict[str, Any]], Any]]:
    data_line = line_of(records, lambda r: r.get("kind") == "data" and r["table"] == "book")
    n = len(records)

    def flipped() -> list[dict[str, Any]]:
        copy = [dict(r) for r in records]
        rows = [dict(row) for row in copy[data_line - 1]["data"]]
        rows[0]["title"] = rows[0]["title"].replace("B", "C", 1)
        copy[data_line - 1] = {**copy[data_line - 1], "data": rows}
        return copy

    def recount() -> list[dict[str, Any]]:
        sealed = reseal(records)
        sealed[-1]["tables"]["book"] = {**sealed[-1]["tables"]["book"], "rows": 149}
        return sealed

    def dropped_row() -> list[dict[str, Any]]:
        copy = [dict(r) for r in records]
        copy[data_line - 1] = {**copy[data_line - 1], "data": copy[data_line - 1]["data"][1:]}
        resealed = reseal(copy)
        resealed[-1]["tables"] = records[-1]["tables"]  # the digest matches, the counts do not
        return resealed

    version = [dict(r) for r in records]
    version[0] = {**version[0], "version": 99}
    ghost = reseal([*records[:-1], {"kind": "data", "table": "ghost", "data": [{"id": 1}]}])
    return {
        "truncated": (records[:-1], (DumpIntegrityError, "truncated", None)),
        "flipped": (flipped(), (DumpIntegrityError, "does not match|the trailer says", n)),
        "recount": (recount(), (DumpIntegrityError, "'book'", n)),
        "dropped-row": (dropped_row(), (DumpIntegrityError, "'book'", n)),
        "version": (version, (DumpFormatError, "unknown format version 99", 1)),
        "undeclared": (ghost, (DumpFormatError, "'ghost', which the dump never declared", n)),
    }


CASES = ["truncated", "flipped", "recount", "dropped-row", "version", "undeclared"]


@pytest.mark.parametrize("case", CASES)
def test_bad_dumps_are_refused_and_touch_nothing(
    source: MigrationUtils, target: MigrationUtils, tmp_path: Path, case: str
) -> None:
    good = tmp_path / "good.jsonl"
    source.backup_database_to_file(str(good))
    records, (error, message, line) = _tamper_cases(read_lines(good))[case]
    bad = tmp_path / f"{case}.jsonl"
    write_lines(bad, records)
    before = fingerprint(target.url)
    objects = restore_side_objects(target.url, tmp_path / "target")
    with pytest.raises(error, match=message) as failure:
        target.restore_database_from_file(str(bad))
    assert failure.value.line == line
    if line is not None:
        assert f"line {line}:" in str(failure.value)
    assert fingerprint(target.url) == before
    assert not restore_side_objects(target.url, tmp_path / "target") - objects


def test_cut_in_the_middle_of_a_line(
    source: MigrationUtils, target: MigrationUtils, tmp_path: Path
) -> None:
    dump = tmp_path / "cut.jsonl"
    source.backup_database_to_file(str(dump))
    blob = dump.read_bytes()
    dump.write_bytes(blob[: len(blob) // 2])
    before = fingerprint(target.url)
    with pytest.raises(DumpIntegrityError, match="truncated"):
        target.restore_database_from_file(str(dump))
    assert fingerprint(target.url) == before


@pytest.mark.parametrize(
    "statement",
    [
        "CREATE TABLE author (id INTEGER PRIMARY KEY); DROP DATABASE victim",
        "DROP TABLE author",
        "CREATE TABLE other_name (id INTEGER PRIMARY KEY)",
    ],
)
def test_statements_that_do_more_than_create_are_refused(
    source: MigrationUtils, target: MigrationUtils, statement: str
) -> None:
    records = source.backup_database_to_memory()
    for i, record in enumerate(records):
        if record["kind"] == "table" and record["table"] == "author":
            records[i] = {**record, "create_stmt": statement}
    forged = reseal(records)
    before = fingerprint(target.url)
    with pytest.raises(UnsafeDumpError, match="'author'"):
        target.restore_database_from_memory(forged)
    assert fingerprint(target.url) == before


def test_seed_format_needs_explicit_consent(target: MigrationUtils) -> None:
    dump = str(FIXTURES / "seed_dump" / "library.json")
    before = fingerprint(target.url)
    with pytest.raises(DumpFormatError, match="allow_unverified=True"):
        target.restore_database_from_file(dump)
    assert fingerprint(target.url) == before
    summary = target.restore_database_from_file(dump, allow_unverified=True)
    assert summary.verified is False
    assert summary.tables == {"author": 2, "book": 2}
    with target.engine.connect() as conn:
        names = conn.exec_driver_sql("SELECT name FROM author ORDER BY id").scalars().all()
        titles = conn.exec_driver_sql("SELECT title FROM book ORDER BY id").scalars().all()
        tables = set(target.dialect.user_tables(conn))
    assert names == ["Ada Lovelace", "Grace Hopper 😀"]
    assert titles == ["Notes on the Analytical Engine", "café über alles"]
    assert "previous_contents" not in tables


# -- atomicity ---------------------------------------------------------------------------------


class Boom(RuntimeError):
    pass


@pytest.mark.parametrize("where", ["first-table", "middle-of-data", "before-swap"])
def test_failed_restore_leaves_target_as_it_was(
    source: MigrationUtils, target: MigrationUtils, tmp_path: Path, where: str
) -> None:
    source.chunk_rows = 20  # many data records, so "middle" is a real middle
    records = source.backup_database_to_memory()
    data_lines = [i for i, r in enumerate(records) if r["kind"] == "data" and r["table"] == "book"]
    stop = {
        "first-table": line_of(records, lambda r: r["kind"] == "table"),
        "middle-of-data": data_lines[len(data_lines) // 2],
        "before-swap": len(records) - 1,
    }[where]

    def load() -> Iterator[dict[str, Any]]:
        for i, record in enumerate(records):
            if i == stop:
                raise Boom(f"storage failed at record {i}")
            yield record

    before = fingerprint(target.url)
    objects = restore_side_objects(target.url, tmp_path / "target")
    with pytest.raises(Boom):
        target.restore_database_from_storage(load)
    assert fingerprint(target.url) == before
    assert not restore_side_objects(target.url, tmp_path / "target") - objects

    target.restore_database_from_storage(lambda: iter(records))  # a rerun succeeds
    assert fingerprint(target.url) == fingerprint(source.url)
    assert not restore_side_objects(target.url, tmp_path / "target") - objects


def test_restores_take_rows_straight_from_the_record_or_the_python_way(
    source: MigrationUtils,
    target: MigrationUtils,
    dialect: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """MariaDB and PostgreSQL load a backup's data records as bulk text made in C
    (core/dump/_bulk.c); without that module (a machine that could not compile it) every
    dialect decodes the values instead, and the result is the same."""
    dump = tmp_path / "backup.jsonl"
    source.backup_database_to_file(str(dump))
    expected = fingerprint(source.url)
    taken: list[bool] = []
    real_bulk = Chunk.bulk

    def bulk(self: Chunk, kinds: bytes) -> bytes | None:
        text = real_bulk(self, kinds)
        taken.append(text is not None)
        return text

    monkeypatch.setattr(Chunk, "bulk", bulk)
    target.restore_database_from_file(str(dump))
    assert fingerprint(target.url) == expected
    if dialect == "sqlite":
        assert taken == []  # SQLite's writer binds values: no bulk text
    else:
        assert taken and all(taken)

    taken.clear()
    monkeypatch.setattr(typed_data, "_bulk", None)
    with target.engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM book")
    target.restore_database_from_file(str(dump))
    assert fingerprint(target.url) == expected
    assert not any(taken)


_SESSIONS = {
    "mysql": "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE DB = :name",
    "postgresql": "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = :name",
}


@pytest.mark.parametrize("dialect", ["mysql", "postgresql"])
def test_a_failed_backup_lets_go_of_its_session_while_its_error_is_still_held(
    source: MigrationUtils, tmp_path: Path
) -> None:
    """A write that fails mid-backup (the store went away) raises out of the backup; the
    caller keeps the error (a thread pool's future does). The backup's snapshot session must
    be closed by then, not when the error is collected: on MariaDB it holds the tables'
    metadata locks, so a DROP DATABASE would wait for it."""
    from sqlalchemy import text

    def fail_on_data(record: dict[str, Any], _line: bytes) -> None:
        if record["kind"] == "data":
            raise OSError("the store went away")

    with pytest.raises(OSError, match="went away") as held:
        source.backup_database_to_file(str(tmp_path / "dump.jsonl"), on_record=fail_on_data)
    source.dispose()  # the pools' idle connections; one still checked out would stay
    dialect = source.url.get_backend_name()
    with source.master_engine.connect() as conn:
        count = conn.execute(text(_SESSIONS[dialect]), {"name": source.url.database}).scalar()
    assert held.value is not None and count == 0
    assert list(tmp_path.iterdir()) == []  # and nothing was published
