"""rehearse() on real MariaDB databases: a migration that fails only on production's data stops
at the rehearsal with production untouched; a column type change is measured as a rebuild and
linted as one; a clean migration passes with timings; a broken downgrade and a hand-made
drift are reported. No scratch database outlives a test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from airflow_provider_zenmigrate.core.alembic import Alembic
from airflow_provider_zenmigrate.core.rehearsal import rehearse
from airflow_provider_zenmigrate.core.utils import MigrationUtils
from tests.support.paths import FIXTURES
from tests.support.rehearsal import (
    assert_downgrade_fails_at,
    assert_no_scratch_left,
    at_revision,
    lint_gate,
    new_database,
)

SCRIPTS = FIXTURES / "rehearsal"
DUPES = SCRIPTS / "mysql_dupes"
WIDEN = SCRIPTS / "mysql_widen"
CLEAN = SCRIPTS / "mysql_clean"
WAY_BACK = SCRIPTS / "mysql_way_back"


@pytest.fixture
def production(tmp_path: Path) -> Iterator[MigrationUtils]:
    """An empty MariaDB database standing for production, dropped after the test."""
    with new_database("mysql", tmp_path) as mu:
        yield mu


def _state(production: MigrationUtils, scripts: Path) -> tuple[object, ...]:
    """Production's revision, every table's definition and every row: what must not move."""
    revisions = sorted(Alembic(production.engine, script_location=scripts).current_revisions())
    tables: dict[str, tuple[str, list[tuple[object, ...]]]] = {}
    with production.engine.connect() as conn:
        for (name,) in conn.exec_driver_sql("SHOW TABLES").all():
            create = conn.exec_driver_sql(f"SHOW CREATE TABLE `{name}`").one()[1]
            rows = [tuple(r) for r in conn.exec_driver_sql(f"SELECT * FROM `{name}` ORDER BY 1")]
            tables[str(name)] = (str(create), rows)
    return revisions, tables


def test_a_unique_index_over_duplicates_fails_on_the_copy_and_production_is_untouched(
    production: MigrationUtils,
) -> None:
    at_revision(production, DUPES, "m1", "INSERT INTO item VALUES (1, 'A'), (2, 'B'), (3, 'A')")
    before = _state(production, DUPES)
    report = rehearse(production, script_location=DUPES, check_drift=False)
    assert not report.passed
    failed = report.failed_revision
    assert failed is not None and failed.revision == "m2"
    assert failed.error is not None and "Duplicate entry" in failed.error
    reason = report.reason or ""
    assert "m2" in reason and "Duplicate entry" in reason and "\n" not in reason
    assert _state(production, DUPES) == before
    assert_no_scratch_left(production, report)


def test_a_column_type_change_is_measured_and_linted_as_a_table_rebuild(
    production: MigrationUtils,
) -> None:
    at_revision(production, WIDEN, "w1", "INSERT INTO account SELECT seq, seq FROM seq_1_to_5000")
    before = _state(production, WIDEN)
    report = rehearse(production, script_location=WIDEN, check_drift=False)
    assert report.passed, report.reason
    [w2] = report.revisions
    assert w2.revision == "w2" and w2.status == "ok"
    assert w2.rewritten == ["account"]  # measured: InnoDB gave it a new TABLE_ID; audit kept its
    assert w2.offline_sql is not None and "MODIFY balance BIGINT" in w2.offline_sql
    rebuilds = [f for f in w2.lint if f.rule == "table-rebuild"]
    assert rebuilds and "account" in rebuilds[0].message
    assert report.linter == "zenmigrate MySQL rules"
    assert "TABLE_ID" in report.observability
    assert _state(production, WIDEN) == before
    assert_no_scratch_left(production, report)


def test_the_lint_gate_fails_a_rebuild_and_lint_ignore_lets_it_pass(
    production: MigrationUtils,
) -> None:
    at_revision(production, WIDEN, "w1", "INSERT INTO account VALUES (1, 1)")
    gated, ignored = lint_gate(production, WIDEN, "w2", ["table-rebuild", "blocks-writes"])
    assert_no_scratch_left(production, gated)
    assert_no_scratch_left(production, ignored)


def test_a_clean_migration_passes_with_timings(production: MigrationUtils) -> None:
    at_revision(
        production, CLEAN, "c1", "INSERT INTO note SELECT seq, CONCAT('n', seq) FROM seq_1_to_500"
    )
    before = _state(production, CLEAN)
    lines: list[str] = []
    report = rehearse(production, script_location=CLEAN, check_downgrade=True, log=lines.append)
    assert report.passed, report.reason
    assert report.dialect == "mysql" and report.from_revisions == ["c1"]
    assert report.to_revisions == ["c2"]
    [c2] = report.revisions
    assert c2.status == "ok" and c2.seconds is not None and c2.seconds > 0
    assert c2.rewritten == [] and c2.lint == []  # instant column, index built in place
    assert report.estimated_seconds is not None and report.estimated_seconds > 0
    assert report.total_seconds is not None and report.total_seconds >= c2.seconds
    assert report.copy_seconds is not None
    assert report.drift is not None and report.drift.differences == []
    assert report.downgrade is not None and report.downgrade.ok
    assert report.downgrade.schema_equal is True
    assert any(report.scratch_name in line for line in lines)
    assert _state(production, CLEAN) == before
    assert_no_scratch_left(production, report)


def test_a_broken_downgrade_names_its_revision(production: MigrationUtils) -> None:
    at_revision(production, WAY_BACK, "b1", "INSERT INTO person VALUES (1), (2)")
    before = _state(production, WAY_BACK)
    report = rehearse(
        production,
        script_location=WAY_BACK,
        check_drift=False,
        check_downgrade=True,
        fail_on=["error", "downgrade"],
    )
    assert_downgrade_fails_at(report, "b2", "e_mail")
    assert _state(production, WAY_BACK) == before
    assert_no_scratch_left(production, report)


def test_a_column_added_and_an_index_dropped_by_hand_are_reported_as_drift(
    production: MigrationUtils,
) -> None:
    at_revision(
        production,
        CLEAN,
        "c1",
        "INSERT INTO note VALUES (1, 'one')",
        "ALTER TABLE note ADD COLUMN hotfix INT NULL",  # the hand-made hotfixes
        "DROP INDEX ix_note_body ON note",
    )
    report = rehearse(production, script_location=CLEAN, fail_on=["error", "drift"])
    assert report.drift is not None and report.drift.revisions == ["c1"]
    by_name = {d.name: d for d in report.drift.differences}
    assert set(by_name) == {"note.hotfix", "note.ix_note_body"}, report.drift.differences
    assert (by_name["note.hotfix"].kind, by_name["note.hotfix"].expected) == ("column", None)
    index = by_name["note.ix_note_body"]
    assert (index.kind, index.actual) == ("index", None) and index.expected is not None
    assert not report.passed and "drift" in (report.reason or "")
    # the revisions themselves still rehearsed cleanly
    assert [r.status for r in report.revisions] == ["ok"]
    assert_no_scratch_left(production, report)
