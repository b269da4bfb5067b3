"""What the thin command line rests on: restore progress through the core's callback, the
core functions ``inspect`` and ``current`` call, and the commands' older names."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import URL

from airflow_provider_zenmigrate.core.catalog import find_backup
from airflow_provider_zenmigrate.core.errors import StorageNotFoundError
from airflow_provider_zenmigrate.core.inspection import inspect_backup
from airflow_provider_zenmigrate.core.restore import restore_from_uri
from airflow_provider_zenmigrate.core.utils import MigrationUtils
from tests.support.command_line import parsed, zm, zm_json, zm_parallel
from tests.support.engine_support import make_library, populate_library
from tests.support.paths import EXAMPLE_MIGRATIONS
from tests.support.servers import DIALECTS, database_url, url_text


def _library(tmp_path: Path, authors: int = 50, chunk_rows: int = 2000) -> tuple[URL, Path, int]:
    """An SQLite library with rows in every table, its dump, and the dump's row count."""
    url = URL.create("sqlite", database=str(tmp_path / "app.db"))
    dump = tmp_path / "library.jsonl.gz"
    with MigrationUtils(url=url, connect_args={}, engine_args={}, chunk_rows=chunk_rows) as utils:
        utils.create_database()
        populate_library(utils, authors=authors)
        result = utils.backup_database_to_file(str(dump))
    return url, dump, result.rows


def test_restore_reports_progress_through_its_callback(tmp_path: Path) -> None:
    url, dump, total = _library(tmp_path, authors=1000, chunk_rows=500)  # records of 500 rows
    with MigrationUtils(url=url, connect_args={}, engine_args={}) as utils:
        with utils.engine.begin() as conn:
            conn.execute(text("DELETE FROM book"))
        kinds: list[str] = []
        rows_seen: list[int] = []
        bytes_seen = 0

        def on_record(record: dict[str, Any], line: bytes | None) -> None:
            nonlocal bytes_seen
            kinds.append(record["kind"])
            bytes_seen += len(line or b"") + 1
            if record["kind"] == "data":
                rows_seen.append((rows_seen[-1] if rows_seen else 0) + len(record["data"]))

        summary = restore_from_uri(utils, str(dump), on_record=on_record)

    assert total == 1000 + 3000 + 1 and summary.rows == total
    assert kinds[0] == "header" and kinds[-1] == "trailer"
    assert kinds.count("table") == len(summary.tables)
    assert len(rows_seen) > len(summary.tables)  # progress within tables, not only per table
    assert all(a < b for a, b in zip(rows_seen, rows_seen[1:], strict=False))
    assert rows_seen[-1] == total
    assert bytes_seen == inspect_backup(str(dump)).uncompressed


def test_restore_from_uri_creates_the_database_only_for_a_dump_that_exists(
    tmp_path: Path,
) -> None:
    _url, dump, total = _library(tmp_path)
    target = URL.create("sqlite", database=str(tmp_path / "new.db"))
    with MigrationUtils(url=target, connect_args={}, engine_args={}) as utils:
        with pytest.raises(StorageNotFoundError, match="backup not found"):
            restore_from_uri(utils, str(tmp_path / "missing.jsonl"))
        assert not utils.database_exists()
        assert restore_from_uri(utils, str(dump)).rows == total
        assert utils.database_exists()


def test_command_line_progress_comes_from_callbacks_only(tmp_path: Path) -> None:
    url, dump, total = _library(tmp_path)
    backup, restore = zm_parallel(
        ("backup", url_text(url), str(tmp_path / "again.jsonl")),
        ("restore", str(dump), url_text(url), "--yes"),
        ZENMIGRATE_PROGRESS_INTERVAL="0",
    )
    assert backup.returncode == 0, backup.stderr
    assert restore.returncode == 0, restore.stderr
    # The core's own progress lines (for Airflow's logs) are silenced: one reporter only.
    core_line = re.compile(r"backup progress: \d+/\d+ tables, \d+ rows, \d+ rows/s")
    assert not core_line.search(backup.stderr), backup.stderr
    assert "backup progress: 1/3 tables" in backup.stderr
    # The restore's totals come from the dump's manifest, its counts from the callback.
    assert f"restore progress: 1/3 tables, 0/~{total:,} rows" in restore.stderr
    assert f"restore done: 3/3 tables, {total:,}/~{total:,} rows" in restore.stderr


def test_find_backup_reads_the_manifest_and_only_a_matching_one(tmp_path: Path) -> None:
    _url, dump, total = _library(tmp_path)
    found = find_backup(str(dump))
    assert found is not None and sum(found.tables.values()) == total
    assert found.revision == "0003" and found.size == dump.stat().st_size
    copy = tmp_path / "copy.jsonl.gz"
    copy.write_bytes(dump.read_bytes())  # no manifest beside it
    assert find_backup(str(copy)) is None
    manifest = Path(str(dump) + ".manifest.json")
    data = json.loads(manifest.read_text())
    manifest.write_text(json.dumps({**data, "size": data["size"] + 1}))  # replaced dump
    assert find_backup(str(dump)) is None


def test_inspect_describes_a_legacy_dump_as_such(tmp_path: Path) -> None:
    dump = tmp_path / "legacy.json"
    records = [
        {"table": "legacy_t", "create_stmt": "CREATE TABLE legacy_t (id INT PRIMARY KEY)"},
        {"table": "legacy_t", "data": [{"id": 1}, {"id": 2}]},
    ]
    dump.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    found = inspect_backup(str(dump))
    assert found.legacy is True and found.verified is False and found.error is None
    assert found.tables["legacy_t"].rows == 2 and found.rows == 2
    shown = zm("inspect", str(dump))
    assert shown.returncode == 0, shown.stderr
    assert "no trailer (legacy (unverified) format)" in shown.stdout
    assert "seed" not in shown.stdout


def test_current_goes_through_the_wrapper_with_its_version_table(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'app.db'}"
    scripts = ("--scripts", str(EXAMPLE_MIGRATIONS))
    upgraded = zm_json("upgrade", url, *scripts, "--version-table", "library_version")
    assert upgraded["after"] == ["0003"]
    own, default, bare = zm_parallel(
        ("current", url, *scripts, "--version-table", "library_version", "--json"),
        ("current", url, *scripts, "--json"),
        ("current", url, "--version-table", "library_version", "--json"),
    )
    assert parsed(own)["revisions"] == ["0003"] and parsed(own)["up_to_date"] is True
    assert parsed(default)["revisions"] == [] and parsed(default)["up_to_date"] is False
    assert parsed(bare)["revisions"] == ["0003"] and "heads" not in parsed(bare)


def test_older_command_and_option_names_still_work(tmp_path: Path) -> None:
    url = URL.create("sqlite", database=str(tmp_path / "app.db"))
    make_library(url)
    folder = tmp_path / "backups"
    with MigrationUtils(url=url, connect_args={}, engine_args={}) as utils:
        for name in ("a", "b", "c"):
            utils.backup_database_to_file(str(folder / f"{name}.jsonl"))
    prefix = str(folder) + "/"
    new, old, keep_last, keep, help_text = zm_parallel(
        ("backup-to-db", url_text(url), "new.db", "--json"),
        ("copy", url_text(url), "old.db", "--json"),
        ("prune", prefix, "--keep-last", "2", "--dry-run", "--json"),
        ("prune", prefix, "--keep", "1", "--dry-run", "--json"),
        ("--help",),
    )
    assert parsed(new)["backup_db"] == "new.db" and parsed(old)["backup_db"] == "old.db"
    assert (tmp_path / "new.db").is_file() and (tmp_path / "old.db").is_file()
    assert parsed(keep_last)["kept"] == 2 and len(parsed(keep_last)["deleted"]) == 1
    assert parsed(keep)["kept"] == 1 and len(parsed(keep)["deleted"]) == 2
    assert "backup-to-db (copy)" in help_text.stdout
    assert "copy is this command's older name" in " ".join(help_text.stdout.split())
    negative = zm("prune", prefix, "--keep-last", "-1")
    assert negative.returncode == 2 and "--keep-last must be 0 or more" in negative.stderr


@pytest.mark.parametrize("dialect", DIALECTS)
def test_a_backup_of_a_missing_database_says_so_and_creates_nothing(
    tmp_path: Path, dialect: str
) -> None:
    """The command line learns whether the database exists by connecting to it (SQLite by
    its file, which connecting would create): a missing one is named, no dump is published
    and the database is not created. A connection refused for another reason (a role the
    server does not know) gives the server's error, not "does not exist"."""
    url = database_url(dialect, tmp_path)
    dump = tmp_path / "dump.jsonl"
    missing = zm("backup", "-q", url_text(url), str(dump))
    assert missing.returncode == 1, missing.stderr
    said = f"/{url.database} does not exist"
    assert said in missing.stderr
    assert list(tmp_path.iterdir()) == []  # no dump, no manifest, no SQLite file
    with MigrationUtils(url=url, connect_args={}, engine_args={}) as utils:
        assert not utils.database_exists()
    if dialect != "sqlite":
        stranger = url.set(username="zm_no_such_role")
        refused = zm("backup", "-q", url_text(stranger), str(dump))
        assert refused.returncode == 1
        assert "database error" in refused.stderr and said not in refused.stderr
        assert not dump.exists()
