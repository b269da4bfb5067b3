"""The command line's schema options: what a PostgreSQL backup covers, what it left out
(``inspect`` says so), and the restore's ownership options."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import URL

from airflow_provider_zenmigrate.core.utils import MigrationUtils
from tests.support.command_line import assert_one_error_line, zm, zm_json
from tests.support.servers import database_url, url_text


def test_backup_says_what_it_left_out_and_inspect_shows_it(
    two_schemas: URL, tmp_path: Path
) -> None:
    dump = str(tmp_path / "app.jsonl")
    done = zm_json("backup", url_text(two_schemas), dump, "--exclude-schema", "scratch")
    assert done["excluded_schemas"] == [{"schema": "scratch", "reason": "named by exclude_schemas"}]
    assert done["schemas"] == ["app", "public"]
    shown = zm("inspect", dump)
    assert shown.returncode == 0, shown.stderr
    assert "scratch (named by exclude_schemas)" in shown.stdout
    assert "app.t" in shown.stdout and "scratch.x" not in shown.stdout

    only = str(tmp_path / "only.jsonl")
    zm_json("backup", url_text(two_schemas), only, "--schema", "scratch")
    inspected = zm_json("inspect", only)
    assert inspected["header"]["schemas"] == ["scratch"]
    assert set(inspected["tables"]) == {"scratch.x"}

    restored = database_url("postgresql", tmp_path)
    try:
        result = zm_json("restore", dump, url_text(restored), "--yes", "--no-owner")
        assert result["tables"] == {"app.t": 2}
    finally:
        MigrationUtils(url=restored, connect_args={}, engine_args={}).drop_database()


def test_schema_options_are_refused_where_there_are_no_schemas(tmp_path: Path) -> None:
    url = database_url("sqlite", tmp_path)
    with MigrationUtils(url=url, connect_args={}, engine_args={}) as utils:
        utils.create_database()
    failed = zm("backup", url_text(url), str(tmp_path / "x.jsonl"), "--schema", "app")
    assert failed.returncode != 0
    assert_one_error_line(failed, "schemas / exclude_schemas apply to PostgreSQL")
    assert not (tmp_path / "x.jsonl").exists()
