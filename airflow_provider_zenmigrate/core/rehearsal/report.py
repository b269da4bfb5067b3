"""A rehearsal report for people (Markdown) and beside its backup (JSON, Markdown, SQL).

:func:`store_report` writes three sidecars next to a backup, through the same storage
backends the dumps use (local, S3, GCS, Azure): ``<backup>.rehearsal.json`` (the report,
read back by :func:`load_report`), ``<backup>.rehearsal.md`` (what :func:`render_markdown`
gives) and ``<backup>.upgrade.sql`` (every revision's offline SQL, one header a revision).
Their suffixes live in :mod:`..catalog`, which prunes them with their backup and never
lists them as backups.

The report holds masked URLs only (the runner builds it so); the stored locations are the
URIs without their user information, so no credential reaches a sidecar either.
"""

from __future__ import annotations

import json
from typing import Any

from ..catalog import REHEARSAL_JSON_SUFFIX, REHEARSAL_MARKDOWN_SUFFIX, UPGRADE_SQL_SUFFIX
from ..errors import StorageError
from ..storage import backend_for, parse_location, translated_errors
from .model import DowngradeCheck, DriftCheck, LockSeen, RehearsalReport, RevisionResult

__all__ = ["load_report", "render_markdown", "render_upgrade_sql", "store_report"]


def _cell(value: object) -> str:
    """A value for one Markdown table cell: no line breaks, no column separators."""
    text = "" if value is None else str(value)
    return " ".join(text.split()).replace("|", "\\|")


def _code(value: object) -> str:
    """Inline code that survives backticks in the value."""
    text = " ".join(str(value).split())
    fence = "``" if "`" in text else "`"
    return f"{fence}{text}{fence}" if text else ""


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _revisions(revisions: list[str]) -> str:
    return "+".join(revisions) if revisions else "base"


def _lock(lock: LockSeen | None) -> str:
    if lock is None:
        return "-"
    return f"{lock.mode} on {lock.table} (blocks {lock.blocks})"


def _header(report: RehearsalReport) -> list[str]:
    verdict = "PASSED" if report.passed else f"FAILED: {_cell(report.reason)}"
    copied = report.copied_from or "-"
    if report.source_uri:
        copied += f" {_code(report.source_uri)}"
    scratch = _code(report.scratch_server) or "-"
    if report.scratch_name:
        scratch += f" as {_code(report.scratch_name)}"
    gate = ", ".join(report.fail_on) or "nothing"
    if report.max_duration is not None:
        gate += f"; at most {report.max_duration:g} s on production"
    lines = [
        f"# Migration rehearsal: {'PASSED' if report.passed else 'FAILED'}",
        "",
        f"- **Verdict:** {verdict}",
        f"- **Database:** {_code(report.database)} ({report.dialect})",
        f"- **Scratch copy:** {scratch}",
        f"- **Copied from:** {copied}",
        f"- **Revisions:** {_revisions(report.from_revisions)} -> "
        f"{_revisions(report.to_revisions)}",
        f"- **Estimated on production:** {_seconds(report.estimated_seconds)} s",
        f"- **Copy:** {_seconds(report.copy_seconds)} s; "
        f"**settling it:** {_seconds(report.settle_seconds)} s; "
        f"**whole rehearsal:** {_seconds(report.total_seconds)} s",
        f"- **Gate:** fails on {gate}",
    ]
    if report.started_at:
        lines.append(f"- **Started:** {report.started_at}")
    return lines


def _revision_table(revisions: list[RevisionResult]) -> list[str]:
    lines = [
        "## Revisions",
        "",
    ]
    if not revisions:
        return [*lines, "No pending revision: the database is at the target already."]
    lines += [
        "| Revision | Description | Status | Seconds | Est. s on production "
        "| Rewritten tables | Strongest lock | Lint |",
        "|---|---|---|---:|---:|---|---|---:|",
    ]
    for r in revisions:
        cells = [
            _code(r.revision),
            _cell(r.description),
            _cell(r.status),
            _seconds(r.seconds),
            _seconds(r.estimated_seconds),
            _cell(", ".join(r.rewritten) or "-"),
            _cell(_lock(r.strongest_lock)),
            str(len(r.lint)),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    for r in revisions:
        if r.error:
            lines += ["", f"**{r.revision} failed:** {_cell(r.error)}"]
    return lines


def _lint(revisions: list[RevisionResult]) -> list[str]:
    blocks: list[str] = []
    for r in revisions:
        if r.lint:
            findings = []
            for f in r.lint:
                line = f"- **{f.level}** {_code(f.rule)} ({f.linter}): {_cell(f.message)}"
                findings.append(line + (f" in {_code(f.statement)}" if f.statement else ""))
            blocks.append(f"### {r.revision}: {_cell(r.description)}\n\n" + "\n".join(findings))
    unlinted = [
        f"- {_code(r.revision)}: {_cell(r.offline_error)}" for r in revisions if r.offline_error
    ]
    if unlinted:
        blocks.append("Not linted (no offline SQL):\n\n" + "\n".join(unlinted))
    return ["## Lint findings", "", "\n\n".join(blocks) or "None."]


def _drift(drift: DriftCheck | None) -> list[str]:
    lines = ["## Drift", ""]
    if drift is None:
        return [*lines, "Not checked."]
    at = _revisions(drift.revisions)
    if drift.error:
        return [*lines, f"Could not be checked at revision {at}: {_cell(drift.error)}"]
    if not drift.differences:
        return [*lines, f"None: production's schema is what its scripts give at revision {at}."]
    lines.append(f"Production differs from what its scripts give at revision {at}:")
    lines.append("")
    return lines + [f"- {_cell(d)}" for d in drift.differences]


def _downgrade(check: DowngradeCheck | None) -> list[str]:
    lines = ["## Downgrade check", ""]
    if check is None:
        return [*lines, "Not run."]
    if check.failed_revision or check.error:
        lines.append(
            f"FAILED at revision {check.failed_revision or '?'}: {_cell(check.error or '')}"
        )
    elif check.ok:
        lines.append(f"OK in {_seconds(check.seconds)} s: the schema is back to the original.")
    else:
        lines.append(f"Ran in {_seconds(check.seconds)} s, but the schema is not the original.")
    if check.differences:
        lines += ["", *[f"- {_cell(d)}" for d in check.differences]]
    return lines


def _notes(report: RehearsalReport) -> list[str]:
    lines = ["## Notes", ""]
    lines.append(f"- **Observability:** {report.observability or '-'}")
    lines.append(f"- **Linter:** {report.linter or '-'}")
    lines.append(f"- **Estimate basis:** {report.estimate_basis or '-'}")
    for kind, uri in report.stored.items():
        lines.append(f"- **Stored {kind}:** {_code(uri)}")
    return lines


def render_markdown(report: RehearsalReport) -> str:
    """The report as Markdown, for the task log, the CLI and ``<backup>.rehearsal.md``."""
    sections = [
        _header(report),
        _revision_table(report.revisions),
        _lint(report.revisions),
        _drift(report.drift),
        _downgrade(report.downgrade),
        _notes(report),
    ]
    return "\n\n".join("\n".join(s) for s in sections) + "\n"


def render_upgrade_sql(report: RehearsalReport) -> str:
    """Every pending revision's offline SQL, each under a ``-- revision <id>`` header; a
    revision whose SQL could not be rendered gets a comment saying why."""
    parts = [
        f"-- Offline SQL of the upgrade of {report.database} "
        f"from {_revisions(report.from_revisions)} to {_revisions(report.to_revisions)}",
        "-- (zenmigrate rehearsal; Alembic's --sql mode)",
    ]
    for r in report.revisions:
        header = f"-- revision {r.revision}: {' '.join(r.description.split())}".rstrip(": ")
        if r.offline_sql is not None:
            parts.append(f"{header}\n{r.offline_sql.rstrip()}")
        else:
            why = r.offline_error or "not rendered"
            comment = "\n".join(f"--   {line}" for line in why.splitlines() or [why])
            parts.append(f"{header}\n-- no offline SQL for this revision:\n{comment}")
    return "\n\n".join(parts) + "\n"


def store_report(
    report: RehearsalReport, backup_uri: str, transport_params: dict[str, Any] | None = None
) -> dict[str, str]:
    """Write the report's JSON, Markdown and offline SQL beside ``backup_uri``; returns (and
    sets as ``report.stored``) their locations: ``{"json": ..., "markdown": ..., "sql": ...}``.

    The JSON goes last: whoever finds it finds the other two.

    Raises:
        StorageError: If the store cannot be written.
    """
    backend = backend_for(backup_uri, transport_params)
    location = backend.location
    keys = {
        "json": location.key + REHEARSAL_JSON_SUFFIX,
        "markdown": location.key + REHEARSAL_MARKDOWN_SUFFIX,
        "sql": location.key + UPGRADE_SQL_SUFFIX,
    }
    report.stored = {kind: location.with_key(key) for kind, key in keys.items()}
    contents = {
        "sql": render_upgrade_sql(report),
        "markdown": render_markdown(report),
        "json": json.dumps(report.to_dict(), indent=2, default=str) + "\n",
    }
    with translated_errors("writing the rehearsal report to", location):
        for kind, data in contents.items():
            backend.write_bytes(keys[kind], data.encode())
    return dict(report.stored)


def load_report(uri: str, transport_params: dict[str, Any] | None = None) -> RehearsalReport:
    """The report stored at ``uri`` (its ``.rehearsal.json``, or the backup it sits beside).

    Raises:
        StorageNotFoundError: If there is no report there.
        StorageError: If the store cannot be read, or the object is no rehearsal report.
    """
    backend = backend_for(uri, transport_params)
    key = backend.location.key
    if not key.endswith(REHEARSAL_JSON_SUFFIX):
        key += REHEARSAL_JSON_SUFFIX
    location = parse_location(backend.location.with_key(key))
    with translated_errors("reading the rehearsal report at", location):
        data = json.loads(backend.read_bytes(key))
    try:
        return RehearsalReport.from_dict(data)
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        raise StorageError(f"{location.safe} is not a rehearsal report: {exc}") from None
