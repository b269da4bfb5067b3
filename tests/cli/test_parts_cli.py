"""``zenmigrate`` with multi-part dumps, as a subprocess against MariaDB and PostgreSQL:
``backup --jobs``, then verify, inspect, list and prune treating the dump as one backup,
``restore --jobs`` / ``--fresh`` exact, and ``--jobs`` below 1 a usage error."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import URL

from airflow_provider_zenmigrate.core.utils import MigrationUtils
from tests.support.command_line import assert_one_error_line, zm, zm_json, zm_parallel
from tests.support.engine_support import populate_library
from tests.support.identity import fingerprint
from tests.support.servers import database_url, unique_name, url_text


@pytest.fixture(params=["mysql", "postgresql"])
def library(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[URL, URL]]:
    """A source database with the example library, and the URL of a target not yet made."""
    dialect = str(request.param)
    source = database_url(dialect, tmp_path, unique_name("zmint"))
    target = database_url(dialect, tmp_path, unique_name("zmint"))
    with MigrationUtils(url=source, connect_args={}, engine_args={}) as utils:
        utils.create_database()
        populate_library(utils)
    try:
        yield source, target
    finally:
        for url in (source, target):
            with MigrationUtils(url=url, connect_args={}, engine_args={}) as utils:
                if utils.database_exists():
                    utils.drop_database()


def test_backup_verify_inspect_list_restore_prune(library: tuple[URL, URL], tmp_path: Path) -> None:
    source, target = library
    folder = tmp_path / "backups"
    multi, single = folder / "library.jsonl.zst", folder / "single.jsonl.gz"

    backup = zm_json("backup", url_text(source), str(multi), "--jobs", "2")
    assert backup["layout"] == "parts" and backup["jobs"] >= 1 and backup["parts"] >= 4
    manifest = json.loads((multi / "manifest.json").read_text())
    assert backup["checksum"] == manifest["digest"] and backup["bytes"] == manifest["bytes"]
    assert backup["table_rows"]["author"] == 50 and backup["rows"] == 50 + 150 + 1
    assert sorted(p.name for p in multi.iterdir()) == sorted(
        ["manifest.json", *(p["name"] for p in manifest["parts"])]
    )
    zm_json("backup", url_text(source), str(single))  # --jobs 1: one stream, as before
    assert single.is_file()

    verify, inspect, listing = (
        json.loads(r.stdout)
        for r in zm_parallel(
            ("verify", str(multi), "--json"),
            ("inspect", str(multi), "--json"),
            ("list", f"{folder}/", "--json"),
        )
    )
    assert verify["ok"] and verify["verified"] and verify["parts"] == backup["parts"]
    assert verify["rows"] == backup["rows"] and verify["size"] == manifest["bytes"]
    assert verify["error_part"] is None and verify["manifest_ok"] is True
    assert inspect["ok"] and inspect["parts"] == backup["parts"] and inspect["verified"]
    assert inspect["rows"] == backup["rows"] and inspect["tables"]["book"]["rows"] == 150
    assert inspect["uncompressed"] is None and inspect["revision"] == "0003"
    assert [b["uri"] for b in listing["backups"]] == [str(single), str(multi)]
    assert [b["parts"] for b in listing["backups"]] == [None, backup["parts"]]
    assert listing["backups"][1]["size"] == manifest["bytes"]
    human = zm("list", f"{folder}/")
    assert f"{multi} ({backup['parts']} parts)" in human.stdout, human.stdout

    restored = zm_json("restore", str(multi), url_text(target), "--jobs", "2")
    assert restored["parts"] == backup["parts"] and restored["jobs"] == 2
    assert restored["rows"] == backup["rows"] and restored["verified"] is True
    assert fingerprint(target) == fingerprint(source)
    again = zm_json("restore", str(multi), url_text(target), "--fresh", "--yes")
    assert again["resumed_parts"] == 0 and again["rows"] == backup["rows"]
    assert fingerprint(target) == fingerprint(source)

    pruned = zm_json("prune", f"{folder}/", "--keep-last", "1")
    assert pruned["deleted"] == [str(multi)]
    assert not multi.exists() and single.is_file()

    # A part changed: verify names it and fails.
    zm_json("backup", url_text(source), str(multi), "--jobs", "2")
    part = multi / json.loads((multi / "manifest.json").read_text())["parts"][1]["name"]
    part.write_bytes(part.read_bytes()[:-40])
    failed = zm("verify", str(multi), "--json")
    assert failed.returncode == 1
    assert_one_error_line(failed, "verification failed", part.name)
    assert json.loads(failed.stdout.splitlines()[0])["error_part"] == part.name


def test_jobs_below_one_is_a_usage_error(tmp_path: Path) -> None:
    url = "sqlite:///" + str(tmp_path / "none.db")
    backup, restore, word = zm_parallel(
        ("backup", url, str(tmp_path / "x.jsonl"), "--jobs", "0"),
        ("restore", str(tmp_path / "x.jsonl"), url, "--jobs", "-3", "--fresh"),
        ("backup", url, str(tmp_path / "x.jsonl"), "--jobs", "two"),
    )
    assert backup.returncode == restore.returncode == word.returncode == 2
    assert_one_error_line(backup, "--jobs must be 1 or more", "not 0")
    assert_one_error_line(restore, "--jobs must be 1 or more", "not -3")
    assert "--jobs" in word.stderr and "invalid int value" in word.stderr
    assert not (tmp_path / "none.db").exists()  # refused before anything was opened
