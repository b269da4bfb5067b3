"""The gate: which findings fail a rehearsal, and the one-line reason it gives."""

from __future__ import annotations

from collections.abc import Collection

from ..errors import RehearsalError
from .model import GATES, RehearsalReport


def check_gates(fail_on: Collection[str] | str) -> set[str]:
    """``fail_on`` as a set, refusing names that are not gates."""
    names = {n.strip() for n in fail_on.split(",")} if isinstance(fail_on, str) else set(fail_on)
    names.discard("")
    unknown = sorted(names - set(GATES))
    if unknown:
        raise RehearsalError(
            f"fail_on names {', '.join(map(repr, unknown))}, which is not a gate "
            f"(the gates: {', '.join(GATES)})"
        )
    return names


def _error(report: RehearsalReport) -> str | None:
    failed = report.failed_revision
    if failed is None:
        return None
    what = f" ({failed.description})" if failed.description else ""
    return f"revision {failed.revision}{what} failed on the scratch copy: {failed.error}"


def _drift(report: RehearsalReport) -> str | None:
    drift = report.drift
    if drift is None:
        return None
    at = ", ".join(drift.revisions) or "base"
    if drift.error:
        return f"drift could not be checked at revision {at}: {drift.error}"
    if not drift.differences:
        return None
    first = drift.differences[0]
    more = f" and {len(drift.differences) - 1} more" if len(drift.differences) > 1 else ""
    return f"production's schema has drifted from revision {at}: {first}{more}"


def _downgrade(report: RehearsalReport) -> str | None:
    check = report.downgrade
    if check is None or check.ok:
        return None
    if check.error and check.failed_revision:
        return f"the downgrade of revision {check.failed_revision} failed: {check.error}"
    if check.error:
        return f"the downgrade could not be checked: {check.error}"
    first = check.differences[0] if check.differences else "the schema differs"
    start = ", ".join(report.from_revisions) or "base"
    return f"after downgrading to {start} the schema is not the original: {first}"


def _lint(report: RehearsalReport) -> str | None:
    if report.linter.startswith(("not run", "no linter")):
        return f"lint was asked for and could not run: {report.linter}"
    for result in report.revisions:
        if result.lint:
            first = result.lint[0]
            more = f" and {len(result.lint) - 1} more" if len(result.lint) > 1 else ""
            return f"revision {result.revision}: lint {first.rule}: {first.message}{more}"
    return None


def _duration(report: RehearsalReport) -> str | None:
    if report.max_duration is None or report.estimated_seconds is None:
        return None
    if report.estimated_seconds <= report.max_duration:
        return None
    timed = [r for r in report.revisions if r.estimated_seconds is not None]
    slowest = max(timed, key=lambda r: r.estimated_seconds or 0.0)
    return (
        f"the upgrade is estimated at {report.estimated_seconds:.1f}s on production, over "
        f"max_duration {report.max_duration:g}s (slowest: revision {slowest.revision}, "
        f"{slowest.estimated_seconds or 0.0:.1f}s)"
    )


_CHECKS = {"error": _error, "drift": _drift, "downgrade": _downgrade, "lint": _lint}


def apply_gate(report: RehearsalReport) -> None:
    """Set ``report.reason`` from the first gate that fails (in the order of GATES, then
    ``max_duration``); a revision that failed always fails a rehearsal asked to gate on it."""
    for name in GATES:
        if name in report.fail_on:
            reason = _CHECKS[name](report)
            if reason:
                report.reason = reason
                return
    report.reason = _duration(report)
