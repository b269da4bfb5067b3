"""The rehearsal report for people and beside its backup: Markdown, the three sidecars, and
the JSON read back as the same report (local files; the object stores are in
tests/integration/test_rehearsal_report_stores.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from airflow_provider_zenmigrate.core.errors import StorageError, StorageNotFoundError
from airflow_provider_zenmigrate.core.rehearsal import load_report, render_markdown, store_report
from airflow_provider_zenmigrate.core.rehearsal.model import (
    DowngradeCheck,
    DriftCheck,
    LintFinding,
    LockSeen,
    RehearsalReport,
    RevisionResult,
    SchemaDifference,
)
from airflow_provider_zenmigrate.core.rehearsal.report import render_upgrade_sql

LOCK = LockSeen("orders", "AccessExclusiveLock", "reads and writes", 8)


def _report(failed: bool = False) -> RehearsalReport:
    """A report as the runner would build it for a PostgreSQL database (masked URLs only)."""
    first = RevisionResult(
        revision="a1",
        description="add orders.total | with a default",
        status="ok",
        seconds=1.25,
        rewritten=["orders"],
        strongest_lock=LOCK,
        locks=[LOCK],
        offline_sql="ALTER TABLE orders ADD COLUMN total INTEGER NOT NULL DEFAULT 0;",
        lint=[
            LintFinding(
                rule="adding-required-field",
                message="Adding a NOT NULL field requires a default",
                level="warning",
                statement="ALTER TABLE orders ADD COLUMN total",
                linter="squawk",
            )
        ],
        estimated_seconds=12.5,
    )
    second = RevisionResult(
        revision="b2",
        description="unique index on orders.day",
        status="failed" if failed else "ok",
        seconds=0.5,
        error='could not create unique index "ix_day"\nDETAIL: Key (day)=(1) is duplicated.'
        if failed
        else None,
        offline_sql=None,
        offline_error="the migration reads the database\nline two of the error",
        estimated_seconds=3.0,
    )
    return RehearsalReport(
        database="postgresql+psycopg://app:***@db.example:5432/shop",
        dialect="postgresql",
        scratch_server="postgresql+psycopg://app:***@db.example:5432/shop",
        scratch_name="zenmigrate_scratch_0123abcd_ffee_copy",
        copied_from="backup",
        source_uri="s3://backups/shop/nightly.jsonl.zst",
        started_at="2026-12-06T18:00:00+00:00",
        from_revisions=["0001"],
        to_revisions=["b2"],
        revisions=[first, second],
        drift=DriftCheck(
            revisions=["0001"],
            differences=[
                SchemaDifference("column", "orders.note", "TEXT", None),
                SchemaDifference("index", "orders.ix_orders_day", None, "INDEX (day)"),
            ],
        ),
        downgrade=DowngradeCheck(ok=False, failed_revision="a1", error="column total is used"),
        copy_seconds=4.0,
        total_seconds=9.5,
        estimated_seconds=15.5,
        estimate_basis="rows of production / rows of the copy",
        observability="PostgreSQL: pg_locks sampled, relfilenode compared",
        linter="squawk 1.x",
        fail_on=["error", "drift"],
        max_duration=60.0,
        reason="revision b2 failed: could not create unique index" if failed else None,
    )


def test_markdown_has_the_verdict_the_table_and_every_section() -> None:
    text = render_markdown(_report())
    assert text.startswith("# Migration rehearsal: PASSED\n")
    assert "- **Verdict:** PASSED" in text
    assert "`postgresql+psycopg://app:***@db.example:5432/shop` (postgresql)" in text
    assert "zenmigrate_scratch_0123abcd_ffee_copy" in text
    assert "backup `s3://backups/shop/nightly.jsonl.zst`" in text
    assert "- **Revisions:** 0001 -> b2" in text
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    assert len(rows) == 2
    # The description's "|" is escaped: every row keeps its eight columns.
    assert all(row.replace("\\|", "").count("|") == 9 for row in rows), rows
    assert rows[0].split(" | ")[3:] == [
        "1.25",
        "12.50",
        "orders",
        "AccessExclusiveLock on orders (blocks reads and writes)",
        "1 |",
    ]
    assert "**warning** `adding-required-field` (squawk)" in text
    assert "### a1: add orders.total \\| with a default\n\n- **warning**" in text
    assert "(no offline SQL):\n\n- `b2`: the migration reads the database line two" in text
    assert "- column orders.note: unexpected (TEXT)" in text
    assert "- index orders.ix_orders_day: missing (expected INDEX (day))" in text
    assert "FAILED at revision a1: column total is used" in text
    assert "pg_locks sampled" in text and "squawk 1.x" in text and "rows of production" in text
    assert "fails on error, drift; at most 60 s on production" in text


def test_markdown_of_a_failed_gate_names_the_reason_and_the_error() -> None:
    text = render_markdown(_report(failed=True))
    assert text.startswith("# Migration rehearsal: FAILED\n")
    assert "- **Verdict:** FAILED: revision b2 failed: could not create unique index" in text
    # The multi-line database error is one line in the report.
    assert '**b2 failed:** could not create unique index "ix_day" DETAIL: Key' in text


def test_markdown_of_an_empty_rehearsal() -> None:
    report = RehearsalReport(database="sqlite:///app.db", dialect="sqlite")
    text = render_markdown(report)
    assert "No pending revision" in text
    assert "## Drift\n\nNot checked." in text and "## Downgrade check\n\nNot run." in text
    assert "## Lint findings\n\nNone." in text


def test_upgrade_sql_has_a_header_per_revision() -> None:
    sql = render_upgrade_sql(_report())
    assert "-- revision a1: add orders.total | with a default\nALTER TABLE orders" in sql
    assert "-- revision b2: unique index on orders.day\n-- no offline SQL" in sql
    assert "--   the migration reads the database\n--   line two of the error" in sql
    # Every line that is not the revision's own SQL is a comment.
    sql_lines = [line for line in sql.splitlines() if line and not line.startswith("--")]
    assert sql_lines == ["ALTER TABLE orders ADD COLUMN total INTEGER NOT NULL DEFAULT 0;"]


def test_store_and_load_round_trip_in_a_local_folder(tmp_path: Path) -> None:
    backup = tmp_path / "nightly" / "shop.jsonl.zst"
    backup.parent.mkdir()
    backup.write_bytes(b"the dump")
    report = _report(failed=True)

    stored = store_report(report, str(backup))

    assert stored == {
        "json": f"{backup}.rehearsal.json",
        "markdown": f"{backup}.rehearsal.md",
        "sql": f"{backup}.upgrade.sql",
    }
    assert report.stored == stored
    assert backup.read_bytes() == b"the dump"  # the backup itself is untouched
    loaded = load_report(stored["json"])
    assert loaded == report and not loaded.passed
    assert loaded.revisions[0].strongest_lock == LOCK
    assert loaded.drift is not None and loaded.drift.differences[1].expected == "INDEX (day)"
    assert load_report(str(backup)) == report  # the backup's URI finds its report too
    markdown = Path(stored["markdown"]).read_text()
    assert markdown == render_markdown(report)
    assert f"**Stored json:** `{backup}.rehearsal.json`" in markdown
    assert Path(stored["sql"]).read_text() == render_upgrade_sql(report)
    data = json.loads(Path(stored["json"]).read_text())
    assert data["passed"] is False and data["stored"] == stored
    # No temporary files are left beside the backup.
    assert sorted(p.name for p in backup.parent.iterdir()) == [
        "shop.jsonl.zst",
        "shop.jsonl.zst.rehearsal.json",
        "shop.jsonl.zst.rehearsal.md",
        "shop.jsonl.zst.upgrade.sql",
    ]


def test_file_uris_stay_file_uris(tmp_path: Path) -> None:
    uri = f"file://{tmp_path}/b.jsonl"
    stored = store_report(_report(), uri)
    assert stored["markdown"] == f"file://{tmp_path}/b.jsonl.rehearsal.md"
    assert load_report(uri).database == _report().database


def test_loading_what_is_not_a_report_fails_clearly(tmp_path: Path) -> None:
    with pytest.raises(StorageNotFoundError):
        load_report(str(tmp_path / "missing.jsonl"))
    (tmp_path / "x.jsonl.rehearsal.json").write_text('{"format": "something else"}')
    with pytest.raises(StorageError, match="is not a rehearsal report"):
        load_report(str(tmp_path / "x.jsonl"))
    (tmp_path / "y.jsonl.rehearsal.json").write_text("{not json")
    with pytest.raises(StorageError, match="JSONDecodeError"):
        load_report(str(tmp_path / "y.jsonl.rehearsal.json"))
