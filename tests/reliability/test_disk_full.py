"""Disk full while writing a local backup (and, for SQLite, while restoring).

The disk is a real 2 MiB tmpfs, filled with a filler file until a few KiB are left, so the
backup's writes fail with ENOSPC as on a full disk; a second test limits the file size of a
child process (RLIMIT_FSIZE, EFBIG), which needs no root. Every case checks: an error that
says the disk is full (or the file too large) and names the path, nothing at the final name,
no temporary file left and no space still held by one, the database untouched, and a backup
that succeeds once there is room again.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import URL

from airflow_provider_zenmigrate.core.catalog import list_backups, verify_backup
from airflow_provider_zenmigrate.core.errors import ZenMigrateError
from airflow_provider_zenmigrate.core.storage import StorageError
from airflow_provider_zenmigrate.core.utils import MigrationUtils
from tests.reliability._outage import fill, fill_big, free_bytes, small_filesystem
from tests.support.engine_support import populate_library
from tests.support.identity import fingerprint
from tests.support.paths import REPO
from tests.support.servers import url_text

BIG_ROWS = 200  # x 1 KiB of hex: about 210 KB as JSON Lines, 110 KB gzipped
ROOM = 32 * 1024  # what the filler leaves free: a few pages, far less than the dump


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    with small_filesystem(tmp_path / "disk") as mountpoint:
        yield mountpoint


@pytest.fixture
def source(utils: MigrationUtils) -> MigrationUtils:
    fill_big(utils, BIG_ROWS)
    return utils


CASES = [
    ("sqlite", ".jsonl", 2000),
    ("mysql", ".jsonl", 2000),
    ("postgresql", ".jsonl", 2000),
    ("sqlite", ".jsonl.gz", 2000),  # the compressor's writes fail, its last frame is dropped
    # One row a record: lines shorter than the file's buffer, so the bytes that did not fit
    # stay buffered and closing the temporary file fails a second time.
    ("sqlite", ".jsonl", 1),
]


@pytest.mark.parametrize(("dialect", "suffix", "chunk_rows"), CASES)
def test_backup_onto_a_full_disk(
    disk: Path, source: MigrationUtils, suffix: str, chunk_rows: int
) -> None:
    source.chunk_rows = chunk_rows
    filler = fill(disk, ROOM)
    room = free_bytes(disk)
    before = fingerprint(source.url)
    dump = disk / f"nightly{suffix}"

    with pytest.raises(StorageError) as caught:
        source.backup_database_to_file(str(dump))

    message = str(caught.value)
    assert isinstance(caught.value, ZenMigrateError)
    assert "No space left on device" in message and str(dump) in message, message
    assert sorted(disk.iterdir()) == [filler]  # no dump, no temporary file, no manifest
    assert free_bytes(disk) == room  # nor one deleted but still open, holding the space
    assert list_backups(f"{disk}/") == []
    assert fingerprint(source.url) == before

    filler.unlink()  # room again: the same backup succeeds
    source.backup_database_to_file(str(dump))
    assert [b.uri for b in list_backups(f"{disk}/")] == [str(dump)]
    assert verify_backup(str(dump)).ok


_LIMITED = r"""
import json, resource, sys
from airflow_provider_zenmigrate.core.utils import MigrationUtils

limit = int(sys.argv[3])
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))  # Python ignores SIGXFSZ: EFBIG
try:
    MigrationUtils(url=sys.argv[1], connect_args={}, engine_args={}).backup_database_to_file(
        sys.argv[2])
except Exception as exc:
    print(json.dumps({"type": type(exc).__name__, "message": str(exc),
                      "bases": [c.__name__ for c in type(exc).__mro__]}))
else:
    print(json.dumps({"type": None}))
"""


@pytest.mark.parametrize("dialect", ["sqlite"])
def test_backup_past_the_file_size_limit(source: MigrationUtils, tmp_path: Path) -> None:
    """The same without root: a child whose files may not grow past 64 KiB."""
    folder = tmp_path / "backups"
    folder.mkdir()
    dump = folder / "nightly.jsonl"
    before = fingerprint(source.url)
    done = subprocess.run(
        [sys.executable, "-c", _LIMITED, url_text(source.url), str(dump), str(64 * 1024)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    outcome = json.loads(done.stdout.splitlines()[-1])
    assert "StorageError" in outcome["bases"], outcome
    assert "File too large" in outcome["message"] and str(dump) in outcome["message"], outcome
    assert list(folder.iterdir()) == []
    assert fingerprint(source.url) == before


def test_sqlite_restore_onto_a_full_disk(disk: Path, tmp_path: Path) -> None:
    """SQLite's counterpart of a lost server connection: the storage under the database
    fails in the middle of the restore (its staging file cannot grow)."""
    source = MigrationUtils(
        url=URL.create("sqlite", database=str(tmp_path / "source.db")),
        connect_args={},
        engine_args={},
    )
    populate_library(source, authors=50)
    fill_big(source, BIG_ROWS)
    dump = str(tmp_path / "source.jsonl")
    source.backup_database_to_file(dump)
    target = MigrationUtils(
        url=URL.create("sqlite", database=str(disk / "target.db")),
        connect_args={},
        engine_args={},
    )
    populate_library(target, authors=7)
    target.dispose()
    filler = fill(disk, ROOM)
    contents = sorted(disk.iterdir())
    room = free_bytes(disk)
    before = fingerprint(target.url)

    with pytest.raises(Exception, match="database or disk is full"):  # noqa: B017 - sqlite3's own
        target.restore_database_from_file(dump)

    assert fingerprint(target.url) == before
    assert sorted(disk.iterdir()) == contents  # no staging file left
    assert free_bytes(disk) == room

    filler.unlink()
    target.restore_database_from_file(dump)
    assert fingerprint(target.url) == fingerprint(source.url)
    assert not list(disk.glob("*.zm-*"))
    source.dispose()
    target.dispose()
