"""``rehearse()``: the pending migration on a scratch copy, measured, then a verdict.

The order of work: check the input (scripts, revisions, servers) before anything is made;
take the rehearsal lock and sweep what a killed rehearsal left; copy the database; check
drift against a reference built from the scripts; run each pending revision alone, measuring
it; optionally run the way back; drop every scratch database; apply the gate. Production is
only ever read.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import time
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import Any

from alembic.script import ScriptDirectory
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from ..alembic import Alembic, _upgrade_steps, current_revisions
from ..errors import MigrationError, RehearsalError
from ..restore import restore_from_uri
from ..storage import safe_uri
from ..utils import MigrationUtils
from .gate import apply_gate, check_gates
from .lint import linter_for
from .model import (
    DowngradeCheck,
    DriftCheck,
    LockSeen,
    RehearsalReport,
    RevisionResult,
)
from .offline import upgrade_sql
from .probes import probe_for
from .probes.base import Probe, distinct, rewritten, strongest
from .scratch import ScratchSession, scratch_session

logger = logging.getLogger(__name__)

Log = Callable[[str], None]


def _schema() -> Any:
    """The schema comparison module, imported when a check needs it (SQLAlchemy's inspector
    is not cheap to import for a rehearsal that checks neither drift nor the way back)."""
    from . import schema

    return schema


def one_line(exc: BaseException) -> str:
    """The database's own message, first line, without SQLAlchemy's statement and links."""
    cause: BaseException = exc
    if isinstance(exc, MigrationError):
        cause = exc.cause
    if isinstance(cause, DBAPIError) and cause.orig is not None:
        cause = cause.orig
    text = str(cause).strip().splitlines()[0] if str(cause).strip() else ""
    return f"{type(cause).__name__}: {text}" if text else type(cause).__name__


def rehearse(
    production: MigrationUtils,
    *,
    script_location: str | os.PathLike[str] | None = None,
    config_file: str | os.PathLike[str] | None = None,
    revision: str = "heads",
    source_uri: str | None = None,
    transport_params: dict[str, Any] | None = None,
    rehearsal_server: MigrationUtils | None = None,
    check_drift: bool = True,
    check_downgrade: bool = False,
    fail_on: Collection[str] = ("error",),
    max_duration: float | None = None,
    lint_ignore: Collection[str] = (),
    allow_routines: bool = False,
    lock_timeout: float = 3600.0,
    log: Log | None = None,
) -> RehearsalReport:
    """Rehearse the upgrade of ``production`` to ``revision`` on a scratch copy.

    Raises:
        RehearsalError: for input that lets no rehearsal run (see the error's docstring).
    """
    say: Log = log or logger.info
    gates = check_gates(fail_on)
    started = time.monotonic()
    server = rehearsal_server or production
    scripts = _load_scripts(production, script_location, config_file)
    from_revisions = _production_revisions(production, scripts.script_directory)
    target = _check_target(scripts.script_directory, revision)
    _check_server(production, server)

    report = RehearsalReport(
        database=production.safe_url,
        dialect=production.dialect.name,
        scratch_server=server.safe_url,
        copied_from="backup" if source_uri else "fresh copy",
        source_uri=safe_uri(source_uri) if source_uri else None,
        started_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        from_revisions=from_revisions,
        to_revisions=target,
        fail_on=sorted(gates),
        max_duration=max_duration,
    )
    probe = probe_for(production.url.get_backend_name())
    report.observability = probe.observability
    try:
        with scratch_session(server, production, lock_timeout=lock_timeout) as session:
            say(f"rehearsing on {server.safe_url} as {session.name('copy')}")
            report.scratch_name = session.name("copy")
            copy = session.create("copy")
            if transport_params is not None:  # the store clients to read source_uri with
                copy.transport_params = transport_params
            _copy(production, copy, source_uri, allow_routines, report, say)
            settled = time.monotonic()
            probe.settle(copy.engine)
            report.settle_seconds = round(time.monotonic() - settled, 3)
            if check_drift:
                report.drift = _drift(
                    production, from_revisions, session, script_location, config_file, say
                )
            collector = _LockCollector(probe)
            copy_scripts = _alembic_for(
                copy, script_location, config_file, on_version_apply=collector
            )
            start = copy_scripts.current_revisions()
            if sorted(start) != sorted(from_revisions):
                say(f"the copy is at {start or ['base']}, production at {from_revisions}")
                report.from_revisions = start
            before = (
                _schema().snapshot(copy.engine, exclude_tables={production.version_table})
                if check_downgrade
                else {}
            )
            _run_revisions(copy, copy_scripts, collector, start, revision, report, say)
            # A probe may narrow its note once it knows which lock source the server offers.
            report.observability = probe.observability
            _lint(report, production.url.get_backend_name(), lint_ignore)
            if check_downgrade and report.failed_revision is None:
                applied = [r.revision for r in report.revisions if r.status == "ok"]
                report.downgrade = _downgrade(copy, copy_scripts, applied, before, say)
    except SQLAlchemyError as exc:
        raise RehearsalError(f"the rehearsal on {server.safe_url} failed: {one_line(exc)}") from exc
    _estimate(report, same_server=rehearsal_server is None)
    report.total_seconds = round(time.monotonic() - started, 3)
    apply_gate(report)
    say(f"rehearsal {'passed' if report.passed else 'FAILED: ' + str(report.reason)}")
    return report


# -- input -----------------------------------------------------------------------------------
def _alembic_for(
    utils: MigrationUtils,
    script_location: str | os.PathLike[str] | None,
    config_file: str | os.PathLike[str] | None,
    **kwargs: Any,
) -> Alembic:
    return Alembic(
        utils.engine,
        script_location=script_location,
        config_file=config_file,
        version_table=utils.version_table,
        **kwargs,
    )


def _load_scripts(
    production: MigrationUtils,
    script_location: str | os.PathLike[str] | None,
    config_file: str | os.PathLike[str] | None,
) -> Alembic:
    """The scripts, every revision file loaded: one that does not import fails here."""
    if script_location is None and config_file is None:
        raise RehearsalError(
            "a rehearsal needs the migration scripts: script_location or config_file"
        )
    where = config_file if config_file is not None else script_location
    try:
        alembic = _alembic_for(production, script_location, config_file)
        revisions = list(alembic.script_directory.walk_revisions())
    except Exception as exc:  # noqa: BLE001 - any error loading user code is bad input
        raise RehearsalError(
            f"the migration scripts at {os.fspath(where or '')!r} do not load: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    if not revisions:
        raise RehearsalError(
            f"the migration scripts at {os.fspath(where or '')!r} hold no revision"
        )
    return alembic


def _production_revisions(production: MigrationUtils, script: ScriptDirectory) -> list[str]:
    try:
        current = _recorded(production)
    except SQLAlchemyError as exc:
        raise RehearsalError(
            f"cannot read the revision of {production.safe_url}: {one_line(exc)}"
        ) from exc
    for rev in current:
        try:
            script.get_revision(rev)
        except Exception as exc:  # noqa: BLE001 - alembic raises several kinds
            raise RehearsalError(
                f"{production.safe_url} is at revision {rev!r}, which the migration scripts "
                "do not know (the wrong scripts, or a revision applied from elsewhere)"
            ) from exc
    return current


def _recorded(utils: MigrationUtils) -> list[str]:
    return sorted(current_revisions(utils.engine, version_table=utils.version_table))


def _check_target(script: ScriptDirectory, revision: str) -> list[str]:
    try:
        found = script.get_revisions(revision)
    except Exception as exc:  # noqa: BLE001
        raise RehearsalError(
            f"revision {revision!r} is unknown to the migration scripts: {exc}"
        ) from exc
    return sorted(r.revision for r in found if r is not None)


def _check_server(production: MigrationUtils, server: MigrationUtils) -> None:
    if server.dialect.name != production.dialect.name:
        raise RehearsalError(
            f"the rehearsal server {server.safe_url} is {server.dialect.name}, production is "
            f"{production.dialect.name}: a rehearsal needs the same kind of server"
        )
    if server is production:
        return
    if server.url.get_backend_name() == "sqlite":
        folder = Path(server.url.database or "").resolve().parent
        if not server.url.database or not folder.is_dir():
            raise RehearsalError(
                f"the rehearsal server {server.safe_url} names no existing folder for the "
                "scratch copy"
            )
        return
    try:
        with server.master_engine.connect():
            pass
    except SQLAlchemyError as exc:
        raise RehearsalError(
            f"the rehearsal server {server.safe_url} cannot be reached: {one_line(exc)}"
        ) from exc


# -- the copy and the reference ----------------------------------------------------------------
def _copy(
    production: MigrationUtils,
    copy: MigrationUtils,
    source_uri: str | None,
    allow_routines: bool,
    report: RehearsalReport,
    say: Log,
) -> None:
    started = time.monotonic()
    if source_uri:
        say(f"restoring {safe_uri(source_uri)} into the scratch copy")
        # An encrypted backup is read with production's keys (the operator's key connection).
        restore_from_uri(
            copy, source_uri, allow_routines=allow_routines, encryption=production.encryption
        )
    else:
        say("copying the database into the scratch copy")
        production.dialect.copy_database(production.engine, copy.engine)
    report.copy_seconds = round(time.monotonic() - started, 3)
    say(f"copy made in {report.copy_seconds:.2f}s")


def _drift(
    production: MigrationUtils,
    current: list[str],
    session: ScratchSession,
    script_location: str | os.PathLike[str] | None,
    config_file: str | os.PathLike[str] | None,
    say: Log,
) -> DriftCheck:
    """Production's schema against a database built by the scripts up to its revisions
    (``current``, as read before the rehearsal started)."""
    check = DriftCheck(revisions=current)
    exclude = {production.version_table}
    actual = _schema().snapshot(production.engine, exclude_tables=exclude)
    ref = session.create("ref")
    try:
        builder = _alembic_for(ref, script_location, config_file)
        for rev in current:
            builder.upgrade(rev)
        expected = _schema().snapshot(ref.engine, exclude_tables=exclude)
        check.differences = _schema().compare(actual, expected)
    except Exception as exc:  # noqa: BLE001 - reported; the gate decides
        check.error = one_line(exc)
        say(f"drift could not be checked: {check.error}")
    finally:
        session.drop("ref")
    if check.differences:
        say(f"drift: {len(check.differences)} differences from revision {current or ['base']}")
    return check


# -- the revisions -----------------------------------------------------------------------------
def _run_revisions(
    copy: MigrationUtils,
    copy_scripts: Alembic,
    collector: _LockCollector,
    start: Sequence[str],
    revision: str,
    report: RehearsalReport,
    say: Log,
) -> None:
    steps = _upgrade_steps(copy_scripts.script_directory, revision, tuple(start))
    failed = False
    for step in steps:
        script = step.revision
        result = RevisionResult(revision=script.revision, description=script.doc or "")
        report.revisions.append(result)
        _offline(copy_scripts, result)
        if failed:
            continue
        failed = not _run_one(copy, copy_scripts, collector, result, say)
    if not failed:
        report.to_revisions = sorted(copy_scripts.current_revisions())


def _offline(alembic: Alembic, result: RevisionResult) -> None:
    try:
        result.offline_sql = upgrade_sql(alembic, result.revision)
    except Exception as exc:  # noqa: BLE001 - a script that needs a database; reported
        result.offline_error = f"{type(exc).__name__}: {exc}".splitlines()[0]


class _LockCollector:
    """Alembic's ``on_version_apply`` hook: reads the locks the migration's own connection
    holds just before the revision's transaction commits."""

    def __init__(self, probe: Probe) -> None:
        self.probe = probe
        self.held: list[LockSeen] = []

    def __call__(self, *, ctx: Any, **_: Any) -> None:
        try:
            self.held.extend(self.probe.locks_held(ctx.connection))
        except Exception:  # noqa: BLE001 - observation must not fail the migration
            logger.debug("could not read the locks held", exc_info=True)


def _run_one(
    copy: MigrationUtils,
    alembic: Alembic,
    collector: _LockCollector,
    result: RevisionResult,
    say: Log,
) -> bool:
    probe = collector.probe
    collector.held = []
    with copy.engine.connect() as conn:
        before = probe.table_identities(conn)
    started = time.monotonic()
    ok = True
    with probe.watching(copy.engine) as sampled:
        try:
            alembic.upgrade(result.revision)
        except MigrationError as exc:
            ok = False
            result.error = one_line(exc)
    result.seconds = round(time.monotonic() - started, 3)
    result.status = "ok" if ok else "failed"
    with copy.engine.connect() as conn:
        after = probe.table_identities(conn)
    result.rewritten = rewritten(before, after)
    # The version table is Alembic's bookkeeping, locked by every revision: not a finding.
    version_table = copy.version_table
    result.locks = [
        lock
        for lock in distinct([*collector.held, *sampled])
        if lock.table.rsplit(".", 1)[-1] != version_table
    ]
    result.strongest_lock = strongest(result.locks)
    say(
        f"revision {result.revision} {result.status} in {result.seconds:.3f}s"
        + (f": {result.error}" if result.error else "")
    )
    return ok


def _lint(report: RehearsalReport, backend: str, ignore: Collection[str]) -> None:
    linter = linter_for(backend)
    if linter is None:
        report.linter = f"no linter for {report.dialect}"
        return
    why_not = linter.unavailable()
    if why_not:
        report.linter = f"not run: {why_not}"
        return
    report.linter = linter.name
    skip = set(ignore)
    for result in report.revisions:
        if not result.offline_sql:
            continue
        try:
            found = linter.lint(result.offline_sql)
        except RehearsalError as exc:  # the linter crashed: noted, and the lint gate fails closed
            report.linter = f"not run: {linter.name} failed on revision {result.revision}: {exc}"
            return
        result.lint = [f for f in found if f.rule not in skip]


# -- the way back ------------------------------------------------------------------------------
def _downgrade(
    copy: MigrationUtils,
    alembic: Alembic,
    applied: Sequence[str],
    before: dict[str, Any],
    say: Log,
) -> DowngradeCheck:
    """Unapply the revisions the rehearsal applied, newest first, then compare the schema
    with the one before the upgrade."""
    check = DowngradeCheck()
    started = time.monotonic()
    for revision in reversed(applied):
        try:
            alembic.unapply(revision)
        except MigrationError as exc:
            check.failed_revision = exc.revision or revision
            check.error = one_line(exc)
            break
    check.seconds = round(time.monotonic() - started, 3)
    after = _schema().snapshot(copy.engine, exclude_tables={copy.version_table})
    check.differences = _schema().compare(after, before)
    check.schema_equal = not check.differences
    check.ok = check.error is None and check.schema_equal
    say(
        "way back: "
        + ("schema restored" if check.ok else (check.error or "the schema differs from before"))
    )
    return check


# -- the estimate ------------------------------------------------------------------------------
def _estimate(report: RehearsalReport, *, same_server: bool) -> None:
    """Production's duration, predicted from the copy: the copy holds the same rows, so a
    revision's time there is the prediction for it (bloat, a cold cache and concurrent load on
    production are not modelled; the basis says so)."""
    total = 0.0
    for result in report.revisions:
        if result.seconds is not None:
            result.estimated_seconds = result.seconds
            total += result.seconds
    report.estimated_seconds = round(total, 3)
    where = "the same server" if same_server else "a separate rehearsal server"
    report.estimate_basis = (
        f"measured per revision on a full copy ({report.copied_from}) on {where}; production's "
        "table bloat, cache state and concurrent load are not modelled"
    )
