"""The gate: which findings fail a rehearsal, in which order, and the reason's wording."""

from __future__ import annotations

import pytest

from airflow_provider_zenmigrate.core.errors import RehearsalError
from airflow_provider_zenmigrate.core.rehearsal.gate import apply_gate, check_gates
from airflow_provider_zenmigrate.core.rehearsal.model import (
    DowngradeCheck,
    DriftCheck,
    LintFinding,
    RehearsalReport,
    RevisionResult,
    SchemaDifference,
)


def _report(**kwargs: object) -> RehearsalReport:
    report = RehearsalReport(database="sqlite:///x.db", dialect="sqlite", linter="squawk 2")
    report.revisions = [
        RevisionResult("a1", "add a column", "ok", 1.5, estimated_seconds=1.5),
        RevisionResult("a2", "unique index", "failed", 0.2, error="IntegrityError: duplicate"),
    ]
    report.estimated_seconds = 1.7
    for key, value in kwargs.items():
        setattr(report, key, value)
    return report


def test_check_gates_accepts_lists_and_comma_strings_and_refuses_unknown_names() -> None:
    assert check_gates("error, drift") == {"error", "drift"}
    assert check_gates(["lint"]) == {"lint"}
    assert check_gates("") == set()
    with pytest.raises(RehearsalError, match="'speed', which is not a gate"):
        check_gates(["error", "speed"])


def test_a_failed_revision_is_the_reason_naming_revision_and_error() -> None:
    report = _report(fail_on=["error"])
    apply_gate(report)
    assert report.reason == (
        "revision a2 (unique index) failed on the scratch copy: IntegrityError: duplicate"
    )
    assert not report.passed


def test_nothing_gated_passes_whatever_was_found() -> None:
    report = _report(fail_on=[])
    apply_gate(report)
    assert report.passed


def test_drift_reason_names_the_revision_and_counts_the_rest() -> None:
    diffs = [
        SchemaDifference("column", "author.nickname", "VARCHAR(20)", None),
        SchemaDifference("index", "author.ix_author_name", None, "name"),
    ]
    report = _report(fail_on=["drift"], drift=DriftCheck(["0001"], diffs))
    apply_gate(report)
    assert report.reason is not None
    assert "drifted from revision 0001" in report.reason
    assert "author.nickname" in report.reason and "1 more" in report.reason


def test_drift_that_could_not_be_checked_fails_closed() -> None:
    report = _report(fail_on=["drift"], drift=DriftCheck(["0001"], error="boom"))
    apply_gate(report)
    assert report.reason == "drift could not be checked at revision 0001: boom"


def test_downgrade_failure_names_the_revision() -> None:
    check = DowngradeCheck(ok=False, failed_revision="a1", error="NotImplementedError")
    report = _report(fail_on=["downgrade"], downgrade=check)
    apply_gate(report)
    assert report.reason == "the downgrade of revision a1 failed: NotImplementedError"


def test_downgrade_that_leaves_a_different_schema() -> None:
    diff = SchemaDifference("column", "author.email", "VARCHAR(320)", None)
    check = DowngradeCheck(ok=False, schema_equal=False, differences=[diff])
    report = _report(fail_on=["downgrade"], downgrade=check, from_revisions=["0001"])
    apply_gate(report)
    assert report.reason is not None
    assert report.reason.startswith("after downgrading to 0001 the schema is not the original")


def test_lint_gate_and_a_linter_that_could_not_run() -> None:
    report = _report(fail_on=["lint"])
    report.revisions[0].lint = [LintFinding("adding-required-field", "NOT NULL, no default")]
    apply_gate(report)
    assert report.reason == "revision a1: lint adding-required-field: NOT NULL, no default"
    missing = _report(fail_on=["lint"], linter="not run: squawk is not installed")
    apply_gate(missing)
    assert missing.reason is not None and "could not run" in missing.reason


def test_max_duration_applies_after_the_gates() -> None:
    report = _report(fail_on=[], max_duration=1.0)
    apply_gate(report)
    assert report.reason is not None
    assert "estimated at 1.7s" in report.reason and "revision a1, 1.5s" in report.reason
    within = _report(fail_on=[], max_duration=5.0)
    apply_gate(within)
    assert within.passed


def test_the_report_round_trips_through_its_dict() -> None:
    report = _report(fail_on=["error"], drift=DriftCheck(["0001"]))
    apply_gate(report)
    again = RehearsalReport.from_dict(report.to_dict())
    assert again == report
    assert report.to_dict()["passed"] is False
