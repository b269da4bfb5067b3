"""rehearse() on real SQLite files: a migration that fails only on production's data, a batch
rebuild measured as one, a clean migration timed, a broken downgrade and a hand-made drift.
Production's file never changes and no scratch file is left beside it."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import URL

from airflow_provider_zenmigrate.core.rehearsal import rehearse
from airflow_provider_zenmigrate.core.utils import MigrationUtils
from tests.support.paths import FIXTURES
from tests.support.rehearsal import assert_downgrade_fails_at, assert_no_scratch_left, at_revision

SCRIPTS = FIXTURES / "rehearsal"


@pytest.fixture
def production(tmp_path: Path) -> Iterator[MigrationUtils]:
    url = URL.create("sqlite", database=str(tmp_path / "prod.db"))
    mu = MigrationUtils(url=url, connect_args={}, engine_args={})
    try:
        yield mu
    finally:
        mu.dispose()


def _at(production: MigrationUtils, scripts: str, revision: str, *fill: str) -> str:
    """Production at ``revision`` with ``fill`` run; returns the file's digest."""
    at_revision(production, SCRIPTS / scripts, revision, *fill)
    production.dispose()
    return _digest(production)


def _digest(production: MigrationUtils) -> str:
    return hashlib.sha256(Path(str(production.url.database)).read_bytes()).hexdigest()


def test_a_unique_index_over_duplicates_fails_on_the_copy(production: MigrationUtils) -> None:
    before = _at(
        production, "sqlite_dupes", "d1", "INSERT INTO item VALUES (1,'A'),(2,'B'),(3,'A')"
    )
    report = rehearse(production, script_location=SCRIPTS / "sqlite_dupes", check_drift=False)
    assert not report.passed
    assert report.failed_revision is not None and report.failed_revision.revision == "d2"
    reason = report.reason or ""
    assert "d2" in reason and "UNIQUE constraint failed" in reason and "\n" not in reason
    assert _digest(production) == before
    assert_no_scratch_left(production, report)


def test_a_batch_rebuild_is_measured(production: MigrationUtils) -> None:
    before = _at(production, "sqlite_rebuild", "r1", "INSERT INTO account VALUES (1, 1), (2, 2)")
    report = rehearse(production, script_location=SCRIPTS / "sqlite_rebuild", check_drift=False)
    assert report.passed, report.reason
    [r2] = report.revisions
    assert r2.status == "ok" and r2.rewritten == ["account"]  # audit kept its root page
    assert r2.strongest_lock is not None and r2.strongest_lock.table == "(database)"
    assert r2.strongest_lock.mode in ("RESERVED", "EXCLUSIVE")
    assert "root page" in report.observability
    assert _digest(production) == before
    assert_no_scratch_left(production, report)


def test_a_clean_migration_passes_with_timings(production: MigrationUtils) -> None:
    before = _at(production, "sqlite_clean", "c1", "INSERT INTO note VALUES (1, 'a'), (2, 'b')")
    report = rehearse(production, script_location=SCRIPTS / "sqlite_clean", check_downgrade=True)
    assert report.passed, report.reason
    [c2] = report.revisions
    assert c2.status == "ok" and c2.seconds is not None and c2.seconds > 0
    assert c2.rewritten == []  # ADD COLUMN keeps the table's root page
    assert report.estimated_seconds is not None and report.estimated_seconds > 0
    assert report.drift is not None and report.drift.differences == []
    assert report.downgrade is not None and report.downgrade.ok
    assert report.downgrade.schema_equal is True
    assert _digest(production) == before
    assert_no_scratch_left(production, report)


def test_a_broken_downgrade_names_its_revision(production: MigrationUtils) -> None:
    before = _at(production, "sqlite_way_back", "b1", "INSERT INTO person VALUES (1)")
    report = rehearse(
        production,
        script_location=SCRIPTS / "sqlite_way_back",
        check_drift=False,
        check_downgrade=True,
        fail_on=["error", "downgrade"],
    )
    assert_downgrade_fails_at(report, "b2", "ix_person_e_mail")
    assert _digest(production) == before
    assert_no_scratch_left(production, report)


def test_a_hand_made_drift_is_reported(production: MigrationUtils) -> None:
    before = _at(
        production,
        "sqlite_clean",
        "c1",
        "ALTER TABLE note ADD COLUMN hotfix INT",
        "DROP INDEX ix_note_body",
    )
    report = rehearse(
        production, script_location=SCRIPTS / "sqlite_clean", fail_on=["error", "drift"]
    )
    assert report.drift is not None and report.drift.revisions == ["c1"]
    found = {
        (d.kind, d.name, d.actual is None, d.expected is None) for d in report.drift.differences
    }
    assert found == {
        ("column", "note.hotfix", False, True),
        ("index", "note.ix_note_body", True, False),
    }
    assert not report.passed and "drift" in (report.reason or "")
    assert _digest(production) == before
    assert_no_scratch_left(production, report)
