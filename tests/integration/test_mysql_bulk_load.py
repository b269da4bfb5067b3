"""The MySQL restore's LOAD DATA LOCAL path (core/dialects/mysql/load.py), on the real MariaDB.

The fast path joins values without escaping and checks by counting; these tests feed it the
characters that matter to LOAD DATA (tab, newline, backslash, NUL, a literal ``\\N``) and
the failures LOCAL loads turn into warnings.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import URL

from airflow_provider_zenmigrate.core.dialects.mysql import load as mysql_load
from airflow_provider_zenmigrate.core.dialects.text_rows import tsv
from airflow_provider_zenmigrate.core.errors import ZenMigrateError
from airflow_provider_zenmigrate.core.utils import MigrationUtils
from tests.support.dumps import reseal
from tests.support.engine_support import read_lines, write_lines
from tests.support.servers import database_url

AWKWARD = [
    "tab\there",
    "new\nline",
    "back\\slash",
    "nul\x00byte",
    "\\N",
    "N",
    "",
    "crlf\r\n",
    "emoji \U0001f600 é",
    "\\",
    "\t",
    None,
]


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[MigrationUtils, MigrationUtils]]:
    """Source and target; backups of 10 rows a chunk, so a few rows make several chunks."""
    made = []
    for _ in range(2):
        url: URL = database_url("mysql", tmp_path)
        utils = MigrationUtils(url=url, connect_args={}, engine_args={}, chunk_rows=10)
        utils.create_database()
        made.append(utils)
    yield made[0], made[1]
    for utils in made:
        utils.drop_database()
        utils.dispose()


def _rows(utils: MigrationUtils, sql: str) -> list[tuple[Any, ...]]:
    with utils.engine.connect() as conn:
        return [tuple(r) for r in conn.exec_driver_sql(sql)]


def _backed_up(
    source: MigrationUtils, tmp_path: Path, *statements: str
) -> tuple[Path, list[dict[str, Any]]]:
    """Runs ``statements`` on the source and backs it up: the dump and its records."""
    with source.engine.begin() as conn:
        for statement in statements:
            conn.exec_driver_sql(statement)
    path = tmp_path / "d.jsonl"
    source.backup_database_to_file(str(path))
    return path, read_lines(path)


def test_tsv_escapes_only_when_needed() -> None:
    plain = tsv([(1, "a", None), (2, "b", "c")])
    assert plain == "1\ta\t\\N\n2\tb\tc\n"
    escaped = tsv([(1, "x\ty", "\\N"), (2, "a\nb", "nul\x00")])
    assert escaped == "1\tx\\ty\t\\\\N\n2\ta\\nb\tnul\\0\n"
    assert tsv([(True, False, 1.5)]) == "1\t0\t1.5\n"
    with pytest.raises(ValueError, match="dict"):
        tsv([({"a": 1},)])


def test_awkward_strings_round_trip_through_load_data(
    pair: tuple[MigrationUtils, MigrationUtils], tmp_path: Path
) -> None:
    source, target = pair
    with source.engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TABLE t (id INT PRIMARY KEY, s TEXT, b BLOB, y YEAR, d DECIMAL(30,10))"
        )
        for i, value in enumerate(AWKWARD):
            raw = value.encode() if value is not None else None
            conn.exec_driver_sql(
                "INSERT INTO t VALUES (%s, %s, %s, %s, %s)",
                (i, value, raw, 0 if i % 2 else 2024, "-0.0000000001" if i % 3 else None),
            )
    dump = str(tmp_path / "awkward.jsonl")
    source.backup_database_to_file(dump)
    target.restore_database_from_file(dump)
    query = "SELECT id, s, b, y, CAST(d AS CHAR) FROM t ORDER BY id"
    assert _rows(target, query) == _rows(source, query)
    assert _rows(target, "CHECKSUM TABLE t")[0][1] == _rows(source, "CHECKSUM TABLE t")[0][1]


def test_the_insert_path_gives_the_same_database(
    pair: tuple[MigrationUtils, MigrationUtils], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Servers with local_infile=OFF load through INSERT; the result is the same."""
    source, target = pair
    with source.engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (id INT PRIMARY KEY, s TEXT, y YEAR)")
        for i, value in enumerate(AWKWARD):
            conn.exec_driver_sql("INSERT INTO t VALUES (%s, %s, %s)", (i, value, 0))
    dump = str(tmp_path / "d.jsonl")
    source.backup_database_to_file(dump)
    opened: list[object] = []
    real_open = mysql_load.BulkLoader.open

    def without_local_infile(*args: Any, **kwargs: Any) -> None:
        opened.append(real_open)
        return None

    monkeypatch.setattr(mysql_load.BulkLoader, "open", without_local_infile)
    target.restore_database_from_file(dump)
    assert opened, "the restore did not ask for a bulk loader"
    query = "SELECT id, s, y FROM t ORDER BY id"
    assert _rows(target, query) == _rows(source, query)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("duplicate", "Duplicate entry"),
        ("too_long", "Data truncated"),
        ("bad_base64", "not valid base64"),
    ],
)
def test_a_row_the_server_would_change_fails_the_restore(
    pair: tuple[MigrationUtils, MigrationUtils], tmp_path: Path, change: str, message: str
) -> None:
    """LOCAL loads only warn; every warning must fail the restore, target untouched."""
    source, target = pair
    with target.engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE keep (id INT PRIMARY KEY)")
        conn.exec_driver_sql("INSERT INTO keep VALUES (7)")
    path, records = _backed_up(
        source,
        tmp_path,
        "CREATE TABLE t (id INT PRIMARY KEY, s VARCHAR(5), b VARBINARY(8))",
        "INSERT INTO t VALUES (1, 'a', 'x'), (2, 'b', 'y')",
    )
    data = next(r for r in records if r.get("kind") == "data")
    if change == "duplicate":
        data["data"][1]["id"] = 1
    elif change == "too_long":
        data["data"][1]["s"] = "longer than five"
    else:
        data["data"][1]["b"] = "not base64!"
    write_lines(path, reseal(records))
    with pytest.raises(ZenMigrateError, match=message):
        target.restore_database_from_file(str(path))
    assert _rows(target, "SELECT id FROM keep") == [(7,)]
    assert [r[0] for r in _rows(target, "SHOW TABLES")] == ["keep"]
    leftovers = _rows(target, "SHOW DATABASES LIKE 'zmstage%%'")
    assert not [r for r in leftovers if target.url.database and target.url.database in r[0]]
    assert json.loads(path.read_text().splitlines()[-1])["kind"] == "trailer"


@pytest.mark.parametrize("bad_chunk", [0, 1, 6, 9])
def test_chunks_on_every_loading_connection_are_checked(
    pair: tuple[MigrationUtils, MigrationUtils], tmp_path: Path, bad_chunk: int
) -> None:
    """Chunks are dealt to ``LOADERS`` connections in turn. Without a bad row every chunk is
    in; a bad row in any of them (the first, one on the second connection, the last) fails
    the next restore and leaves the first one's result as it was."""
    assert mysql_load.LOADERS >= 2
    source, target = pair
    path, records = _backed_up(
        source,
        tmp_path,
        "CREATE TABLE t (id INT PRIMARY KEY, s VARCHAR(8))",
        "INSERT INTO t SELECT seq, CONCAT('v', seq) FROM seq_1_to_100",
    )
    chunks = [r for r in records if r.get("kind") == "data"]
    assert len(chunks) == 10
    target.restore_database_from_file(str(path))
    query = "SELECT COUNT(*), SUM(id), GROUP_CONCAT(s ORDER BY id) FROM t"
    assert _rows(target, query) == _rows(source, query)

    chunks[bad_chunk]["data"][3]["s"] = "too long for eight"
    write_lines(path, reseal(records))
    with pytest.raises(ZenMigrateError, match="Data truncated"):
        target.restore_database_from_file(str(path))
    assert _rows(target, query) == _rows(source, query)  # the first restore's, intact
    assert [r[0] for r in _rows(target, "SHOW TABLES")] == ["t"]
    assert target.url.database
    leftovers = _rows(target, "SHOW DATABASES LIKE 'zmstage%%'")
    assert not [r for r in leftovers if target.url.database in r[0]]


def test_a_tables_first_chunk_is_in_before_its_next_ones_start(
    pair: tuple[MigrationUtils, MigrationUtils], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two first loads into one empty table deadlock on MariaDB (each holds the intention
    lock the other's table lock waits for). Every connection is used, and each table's
    first chunk has finished before any other chunk of that table starts."""
    source, target = pair
    loads: list[tuple[str, int, float, float]] = []
    real_load = mysql_load.BulkLoader._load

    def timed_load(connection: Any, table: Any, statement: str, handle: Any) -> None:
        start = time.monotonic()
        try:
            real_load(connection, table, statement, handle)
        finally:
            loads.append((table.name, id(connection), start, time.monotonic()))

    path, _ = _backed_up(
        source,
        tmp_path,
        *[f"CREATE TABLE {name} (id INT PRIMARY KEY, s TEXT)" for name in ("t", "u")],
        *[f"INSERT INTO {name} SELECT seq, seq FROM seq_1_to_60" for name in ("t", "u")],
    )
    monkeypatch.setattr(mysql_load.BulkLoader, "_load", staticmethod(timed_load))
    target.restore_database_from_file(str(path))
    assert len({connection for _, connection, _, _ in loads}) == mysql_load.LOADERS
    for name in ("t", "u"):
        mine = sorted((start, end) for table, _, start, end in loads if table == name)
        assert len(mine) == 6
        first_end = mine[0][1]
        assert all(start >= first_end for start, _ in mine[1:]), name
