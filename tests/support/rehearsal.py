"""What the rehearsal tests on each server share: a production database of the test's own,
built at a revision with rows, and the checks that no scratch copy of it is left and that a
broken way back or the lint gate is reported the same way everywhere."""

from __future__ import annotations

from collections.abc import Collection, Iterator
from contextlib import contextmanager
from pathlib import Path

from airflow_provider_zenmigrate.core.alembic import Alembic
from airflow_provider_zenmigrate.core.rehearsal import rehearse
from airflow_provider_zenmigrate.core.rehearsal.model import RehearsalReport
from airflow_provider_zenmigrate.core.rehearsal.scratch import SCRATCH_PREFIX, source_key
from airflow_provider_zenmigrate.core.utils import MigrationUtils
from tests.support.servers import database_url


@contextmanager
def new_database(dialect: str, tmp_path: Path) -> Iterator[MigrationUtils]:
    """A new, empty database with a unique name on ``dialect``'s server, dropped after."""
    mu = MigrationUtils(url=database_url(dialect, tmp_path), connect_args={}, engine_args={})
    mu.create_database()
    try:
        yield mu
    finally:
        mu.dispose()
        mu.drop_database()


def at_revision(production: MigrationUtils, scripts: Path, revision: str, *fill: str) -> None:
    """Production upgraded to ``revision`` of ``scripts``, then the statements ``fill`` run
    on it (its rows, or a hand-made change)."""
    Alembic(production.engine, script_location=scripts).upgrade(revision)
    with production.engine.begin() as conn:
        for statement in fill:
            conn.exec_driver_sql(statement)


def scratch_names(production: MigrationUtils) -> list[str]:
    """Every scratch-named database beside ``production``, read from the server's catalog
    (or the file's folder), not through scratch.py, the code under test."""
    backend = production.url.get_backend_name()
    if backend == "sqlite":
        folder = Path(str(production.url.database)).parent
        return [p.name for p in folder.iterdir() if p.name.startswith(SCRATCH_PREFIX)]
    catalog = (
        "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE %s"
        if backend == "mysql"
        else "SELECT datname FROM pg_database WHERE datname LIKE %s"
    )
    with production.engine.connect() as conn:
        return [str(name) for (name,) in conn.exec_driver_sql(catalog, (f"{SCRATCH_PREFIX}%",))]


def assert_no_scratch_left(production: MigrationUtils, report: RehearsalReport) -> None:
    """No scratch copy of this production is left. On a server other tests rehearse
    meanwhile, so only names of this source, and the report's own, are checked; a SQLite
    file's folder is the test's own, so nothing scratch-named may be left in it at all."""
    left = scratch_names(production)
    if production.url.get_backend_name() == "sqlite":
        assert left == []
        return
    assert report.scratch_name.startswith(SCRATCH_PREFIX)
    assert report.scratch_name not in left
    assert [name for name in left if name.startswith(SCRATCH_PREFIX + source_key(production))] == []


def assert_downgrade_fails_at(report: RehearsalReport, revision: str, error: str) -> None:
    """The upgrade rehearsed fine, the way back failed at ``revision`` with ``error`` in its
    message, and the downgrade gate failed the rehearsal naming ``revision``."""
    assert [r.status for r in report.revisions] == ["ok"]
    assert report.downgrade is not None and not report.downgrade.ok
    assert report.downgrade.failed_revision == revision
    assert error in (report.downgrade.error or "")
    assert not report.passed and revision in (report.reason or "")


def lint_gate(
    production: MigrationUtils, scripts: Path, revision: str, ignore: Collection[str]
) -> tuple[RehearsalReport, RehearsalReport]:
    """The lint gate fails a rehearsal whose ``revision`` has findings, naming it, and the
    same rehearsal passes with the rules ``ignore``d; returns both reports."""
    gated = rehearse(production, script_location=scripts, check_drift=False, fail_on=["lint"])
    assert not gated.passed and f"revision {revision}" in (gated.reason or "")
    ignored = rehearse(
        production,
        script_location=scripts,
        check_drift=False,
        fail_on=["lint"],
        lint_ignore=ignore,
    )
    assert ignored.passed, ignored.reason
    return gated, ignored
