"""``zenmigrate rehearse`` as a user runs it: the real console script on a real SQLite file and
a real PostgreSQL database, with the scripts in tests/fixtures/rehearsal/cli_*."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.engine import URL

from airflow_provider_zenmigrate.core.alembic import Alembic
from airflow_provider_zenmigrate.core.rehearsal import load_report
from airflow_provider_zenmigrate.core.rehearsal.scratch import list_scratch, source_key
from airflow_provider_zenmigrate.core.utils import MigrationUtils
from tests.support.command_line import assert_one_error_line, zm, zm_parallel
from tests.support.paths import FIXTURES
from tests.support.servers import database_url, url_text

CLEAN = FIXTURES / "rehearsal" / "cli_clean"
UNIQUE = FIXTURES / "rehearsal" / "cli_unique"
#: Accepted and ignored by the test server's trust authentication: a leak is detectable.
FAKE_PASSWORD = "Rehearse-pw-7f3a"
EXIT_GATE = 3


def _production(url: URL, scripts: Path, first: str) -> MigrationUtils:
    """A database at the scripts' first revision with 30 items, two of each code."""
    utils = MigrationUtils(url=url, connect_args={}, engine_args={})
    utils.create_database()
    Alembic(utils.engine, script_location=scripts).upgrade(first)
    with utils.engine.begin() as conn:
        conn.execute(
            text("INSERT INTO item (id, code) VALUES (:id, :code)"),
            [{"id": i, "code": f"code-{i % 15}"} for i in range(1, 31)],
        )
    return utils


@pytest.fixture(params=["sqlite", "postgresql"])
def clean(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MigrationUtils]:
    """Production at c1 (the clean scripts), dropped after the test."""
    utils = _production(database_url(request.param, tmp_path), CLEAN, "c1")
    try:
        yield utils
    finally:
        utils.drop_database()
        utils.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def duplicates(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MigrationUtils]:
    """Production at u1 with duplicate codes: u2's unique index fails only on this data."""
    utils = _production(database_url(request.param, tmp_path), UNIQUE, "u1")
    try:
        yield utils
    finally:
        utils.drop_database()
        utils.dispose()


def _cli_url(utils: MigrationUtils) -> str:
    """The URL as a user passes it; PostgreSQL's with a password (trust ignores it)."""
    url = utils.url
    if url.get_backend_name() == "postgresql":
        url = url.set(password=FAKE_PASSWORD)
    return url_text(url)


def _untouched(utils: MigrationUtils, revision: str) -> None:
    """Production is still at ``revision``, with no column or index of the rehearsal, and no
    scratch copy of it is left."""
    with utils.engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == revision
        columns = {c["name"] for c in inspect(conn).get_columns("item")}
        indexes = inspect(conn).get_indexes("item")
    assert columns == {"id", "code"} and indexes == []
    assert list_scratch(utils, source_key(utils)) == {}


def test_a_clean_rehearsal_prints_the_report_and_exits_0(clean: MigrationUtils) -> None:
    result = zm("rehearse", _cli_url(clean), "--scripts", str(CLEAN))

    assert result.returncode == 0, result.stderr
    text_ = result.stdout
    assert text_.startswith("# Migration rehearsal: PASSED\n"), text_
    assert "- **Verdict:** PASSED" in text_
    assert "- **Revisions:** c1 -> c2" in text_
    (row,) = [line for line in text_.splitlines() if line.startswith("| `c2`")]
    assert "| ok |" in row
    assert "## Drift\n\nNone" in text_, text_  # production is what its scripts give at c1
    assert FAKE_PASSWORD not in result.stdout + result.stderr
    assert "zenmigrate: error" not in result.stderr
    _untouched(clean, "c1")


def test_json_has_per_revision_seconds(clean: MigrationUtils, tmp_path: Path) -> None:
    report_at = tmp_path / "reports" / "run"
    result = zm(
        "rehearse",
        "--db",
        _cli_url(clean),
        "--scripts",
        str(CLEAN),
        "--check-downgrade",
        "--report-uri",
        str(report_at),
        "--json",
    )

    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["ok"] is True and data["passed"] is True and data["reason"] is None
    assert data["from_revisions"] == ["c1"] and data["to_revisions"] == ["c2"]
    (revision,) = data["revisions"]
    assert revision["revision"] == "c2" and revision["status"] == "ok"
    assert isinstance(revision["seconds"], float) and revision["seconds"] > 0
    assert revision["offline_sql"] and "ix_item_code" in revision["offline_sql"]
    assert data["downgrade"]["ok"] is True, data["downgrade"]
    assert data["drift"]["differences"] == []
    # Stored where --report-uri said, and read back as the same report.
    assert data["stored"]["json"] == f"{report_at}.rehearsal.json"
    stored = load_report(str(report_at))
    assert stored.to_dict() == {k: v for k, v in data.items() if k != "ok"}
    sql = Path(data["stored"]["sql"]).read_text()
    assert "-- revision c2: A column with a default and an index" in sql
    for path in data["stored"].values():
        assert FAKE_PASSWORD not in Path(path).read_text()
    _untouched(clean, "c1")


def test_a_rehearsal_from_a_backup_stores_its_report_beside_it(
    clean: MigrationUtils, tmp_path: Path
) -> None:
    backup = tmp_path / "backups" / "nightly.jsonl.gz"
    clean.backup_database_to_file(str(backup))

    result = zm("rehearse", _cli_url(clean), "--scripts", str(CLEAN), "--from", str(backup))

    assert result.returncode == 0, result.stderr
    assert "- **Copied from:** backup" in result.stdout
    assert sorted(p.name for p in backup.parent.iterdir()) == [
        "nightly.jsonl.gz",
        "nightly.jsonl.gz.manifest.json",
        "nightly.jsonl.gz.rehearsal.json",
        "nightly.jsonl.gz.rehearsal.md",
        "nightly.jsonl.gz.upgrade.sql",
    ]
    markdown = Path(f"{backup}.rehearsal.md").read_text()
    assert markdown.rstrip("\n") == result.stdout.rstrip("\n")
    assert load_report(str(backup)).passed
    # The sidecars are not backups, and the catalog still lists the one backup.
    listed = zm("list", str(backup.parent) + "/", "--json")
    assert [b["uri"] for b in json.loads(listed.stdout)["backups"]] == [str(backup)]


def test_a_migration_failing_on_production_data_fails_the_gate(
    duplicates: MigrationUtils,
) -> None:
    result = zm("rehearse", _cli_url(duplicates), "--scripts", str(UNIQUE))

    assert result.returncode == EXIT_GATE, result.stderr
    assert result.stdout.startswith("# Migration rehearsal: FAILED\n"), result.stdout
    line = assert_one_error_line(result, "rehearsal failed", "u2")
    assert FAKE_PASSWORD not in result.stdout + result.stderr
    # The reason carries the database's own word for it.
    assert any(word in line.lower() for word in ("unique", "duplicate")), line
    _untouched(duplicates, "u1")

    as_json = zm("rehearse", _cli_url(duplicates), "--scripts", str(UNIQUE), "--json")
    assert as_json.returncode == EXIT_GATE
    data = json.loads(as_json.stdout)  # one JSON object: the report, not a second error
    assert data["ok"] is False and data["passed"] is False
    assert [r["status"] for r in data["revisions"]] == ["failed"]
    assert data["revisions"][0]["error"]
    assert_one_error_line(as_json, "rehearsal failed", "u2")


def test_an_unreachable_rehearsal_server_is_bad_input(tmp_path: Path) -> None:
    """PostgreSQL production, its copy asked for on a server nobody listens on."""
    utils = _production(database_url("postgresql", tmp_path), CLEAN, "c1")
    try:
        result = zm(
            "rehearse",
            _cli_url(utils),
            "--scripts",
            str(CLEAN),
            "--rehearsal-db",
            f"postgresql+psycopg://postgres:{FAKE_PASSWORD}@127.0.0.1:1/postgres",
        )
        assert result.returncode == 2, result.stderr
        assert_one_error_line(result, "rehearsal", "127.0.0.1:1")
        assert FAKE_PASSWORD not in result.stdout + result.stderr
        _untouched(utils, "c1")
    finally:
        utils.drop_database()
        utils.dispose()


def test_bad_input_gets_a_clear_error_and_exit_code(clean: MigrationUtils, tmp_path: Path) -> None:
    url = _cli_url(clean)
    missing, unknown, bad_gate, no_scripts = zm_parallel(
        ("rehearse", url, "--scripts", str(tmp_path / "no-such-scripts")),
        ("rehearse", url, "--scripts", str(CLEAN), "--revision", "nosuchrev"),
        ("rehearse", url, "--scripts", str(CLEAN), "--fail-on", "error,typos"),
        ("rehearse", url),
    )
    for result in (missing, unknown, no_scripts):
        assert result.returncode == 2, (result.args, result.stderr)
        assert FAKE_PASSWORD not in result.stdout + result.stderr
    assert_one_error_line(missing, "no-such-scripts")
    assert_one_error_line(unknown, "nosuchrev")
    assert_one_error_line(no_scripts, "--scripts")
    assert bad_gate.returncode == 2 and "unknown gate typos" in bad_gate.stderr
    _untouched(clean, "c1")
