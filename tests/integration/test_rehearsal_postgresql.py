"""rehearse() on a real PostgreSQL database with rows: a migration that fails only on production
data, a lock-heavy rewrite that squawk flags, a broken way back, hand-made drift, a clean run,
and a killed rehearsal whose scratch copy the next run removes. Production is never changed,
and no scratch database of its source outlives a rehearsal."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from airflow_provider_zenmigrate.core.alembic import Alembic
from airflow_provider_zenmigrate.core.rehearsal import rehearse
from airflow_provider_zenmigrate.core.rehearsal.scratch import (
    SCRATCH_PREFIX,
    list_scratch,
    source_key,
)
from airflow_provider_zenmigrate.core.utils import MigrationUtils
from tests.support.paths import FIXTURES, REPO
from tests.support.rehearsal import at_revision, lint_gate, new_database
from tests.support.servers import url_text

DUPES = FIXTURES / "rehearsal" / "pg_dupes"
WIDEN = FIXTURES / "rehearsal" / "pg_widen"
WAY_BACK = FIXTURES / "rehearsal" / "pg_way_back"
CLEAN = FIXTURES / "rehearsal" / "pg_clean"
SLEEPY = FIXTURES / "rehearsal" / "pg_sleepy"


@pytest.fixture
def prod(tmp_path: Path) -> Iterator[MigrationUtils]:
    """A fresh PostgreSQL database standing for production; dropped after the test, after
    checking that no scratch copy of it is left."""
    with new_database("postgresql", tmp_path) as mu:
        yield mu
        assert _scratch_of(mu) == {}


def _scratch_of(mu: MigrationUtils) -> dict[str, bool]:
    return list_scratch(mu, source_key(mu))


def _state(mu: MigrationUtils, scripts: Path, table: str) -> tuple[list[str], list[tuple]]:
    """Production's revision and every row of ``table``, to show it was left alone."""
    revisions = sorted(Alembic(mu.engine, script_location=scripts).current_revisions())
    with mu.engine.connect() as conn:
        rows = [tuple(r) for r in conn.execute(text(f"SELECT * FROM {table} ORDER BY 1"))]
    return revisions, rows


def test_a_migration_failing_only_on_production_data_stops_at_the_rehearsal(
    prod: MigrationUtils,
) -> None:
    at_revision(
        prod, DUPES, "d1", "INSERT INTO item (id, code) VALUES (1, 'A'), (2, 'B'), (3, 'A')"
    )
    before = _state(prod, DUPES, "item")
    report = rehearse(prod, script_location=DUPES)
    assert not report.passed
    failed = report.failed_revision
    assert failed is not None and failed.revision == "d2"
    assert failed.error and "UniqueViolation" in failed.error
    assert "could not create unique index" in failed.error
    reason = report.reason or ""
    assert "revision d2" in reason and "could not create unique index" in reason
    assert "\n" not in reason
    # the empty reference database the drift check builds takes d1 fine: no drift, no error
    assert report.drift is not None and report.drift.error is None
    assert report.drift.differences == []
    assert _state(prod, DUPES, "item") == before == (["d1"], [(1, "A"), (2, "B"), (3, "A")])


def test_a_lock_heavy_rewrite_is_measured_and_flagged_by_squawk(prod: MigrationUtils) -> None:
    at_revision(
        prod,
        WIDEN,
        "w1",
        "INSERT INTO counter (id, hits) SELECT g, mod(g, 97) FROM generate_series(1, 20000) g",
    )
    report = rehearse(prod, script_location=WIDEN, check_drift=False)
    assert report.passed, report.reason
    assert [r.revision for r in report.revisions] == ["w2"]
    w2 = report.revisions[0]
    assert w2.status == "ok"
    # measured: the table and both its indexes got new file nodes
    assert "public.counter" in w2.rewritten
    assert "public.ix_counter_hits (index)" in w2.rewritten
    assert w2.strongest_lock is not None
    assert (w2.strongest_lock.table, w2.strongest_lock.mode) == (
        "public.counter",
        "AccessExclusiveLock",
    )
    assert w2.strongest_lock.blocks == "reads and writes"
    # squawk, on the offline SQL
    assert report.linter.startswith("squawk ")
    assert w2.offline_sql and "ALTER COLUMN hits TYPE BIGINT" in w2.offline_sql
    flagged = [f for f in w2.lint if f.rule == "changing-column-type"]
    assert flagged, [f.rule for f in w2.lint]
    assert flagged[0].linter == "squawk"
    assert "ALTER TABLE counter ALTER COLUMN hits TYPE BIGINT" in flagged[0].statement
    assert not any("alembic_version" in f.statement for f in w2.lint)
    # the lint gate turns the findings into a failure naming the revision
    lint_gate(prod, WIDEN, "w2", sorted({f.rule for f in w2.lint}))
    with prod.engine.connect() as conn:
        hits_type = conn.execute(
            text(
                "SELECT data_type FROM information_schema.columns "
                "WHERE table_name = 'counter' AND column_name = 'hits'"
            )
        ).scalar_one()
    assert hits_type == "integer"  # production was only read


def test_a_broken_downgrade_is_found_and_gated(prod: MigrationUtils) -> None:
    at_revision(prod, WAY_BACK, "b1", "INSERT INTO account (id) VALUES (1), (2)")
    report = rehearse(prod, script_location=WAY_BACK, check_downgrade=True, check_drift=False)
    assert report.revisions[0].status == "ok"
    check = report.downgrade
    assert check is not None and not check.ok
    assert check.failed_revision == "b2"
    assert check.error and "e_mail" in check.error
    assert report.passed  # the downgrade gate was not asked for
    gated = rehearse(
        prod,
        script_location=WAY_BACK,
        check_downgrade=True,
        check_drift=False,
        fail_on=["downgrade"],
    )
    assert not gated.passed
    assert "revision b2" in (gated.reason or "") and "e_mail" in (gated.reason or "")
    assert _state(prod, WAY_BACK, "account") == (["b1"], [(1,), (2,)])


def test_hand_made_drift_is_named_and_gated(prod: MigrationUtils) -> None:
    at_revision(
        prod,
        CLEAN,
        "c1",
        "INSERT INTO note (id, title) VALUES (1, 'first')",
        "ALTER TABLE note ADD COLUMN hotfix integer",  # a hotfix nobody wrote a revision for
        "DROP INDEX ix_note_title",
    )
    report = rehearse(prod, script_location=CLEAN, fail_on=["drift"])
    drift = report.drift
    assert drift is not None and drift.error is None
    assert drift.revisions == ["c1"]
    differences = [str(d) for d in drift.differences]
    column = [d for d in drift.differences if d.kind == "column" and "hotfix" in d.name]
    index = [d for d in drift.differences if d.kind == "index" and "ix_note_title" in d.name]
    assert column and column[0].expected is None, differences
    assert index and index[0].actual is None, differences
    assert not report.passed
    assert "drifted from revision c1" in (report.reason or "")
    assert report.revisions[0].status == "ok"  # the upgrade itself ran fine on the copy


def test_a_clean_migration_passes_with_a_timing_per_revision(prod: MigrationUtils) -> None:
    at_revision(
        prod,
        CLEAN,
        "c1",
        "INSERT INTO note (id, title) SELECT g, 'n' || g FROM generate_series(1, 500) g",
    )
    before = _state(prod, CLEAN, "note")
    lines: list[str] = []
    report = rehearse(prod, script_location=CLEAN, check_downgrade=True, log=lines.append)
    assert report.passed, report.reason
    assert report.from_revisions == ["c1"] and report.to_revisions == ["c2"]
    assert [r.revision for r in report.revisions] == ["c2"]
    c2 = report.revisions[0]
    assert c2.status == "ok" and c2.seconds is not None and c2.seconds > 0
    assert c2.rewritten == []  # a nullable column and a new table rewrite nothing
    # the new table's own lock is left out; note is locked to add the column
    assert c2.strongest_lock is not None and c2.strongest_lock.table == "public.note"
    assert not any("tag" in lock.table for lock in c2.locks)
    assert report.estimated_seconds == pytest.approx(c2.seconds, abs=0.001)
    assert report.drift is not None and report.drift.differences == []
    assert report.downgrade is not None and report.downgrade.ok
    assert report.copy_seconds is not None and report.total_seconds is not None
    assert "file node" in report.observability
    assert any("revision c2 ok" in line for line in lines)
    assert _state(prod, CLEAN, "note") == before


_KILLED_RUN = """
import sys
from airflow_provider_zenmigrate.core.rehearsal import rehearse
from airflow_provider_zenmigrate.core.utils import MigrationUtils
production = MigrationUtils(url=sys.argv[1], connect_args={}, engine_args={})
rehearse(production, script_location=sys.argv[2], check_drift=False)
"""


def _wait_for_sleep(prod: MigrationUtils, key: str, timeout: float = 60.0) -> str:
    """The scratch copy's name, once its revision s2 is sleeping in it."""
    deadline = time.monotonic() + timeout
    with prod.master_engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        while time.monotonic() < deadline:
            name = conn.execute(
                text(
                    "SELECT datname FROM pg_stat_activity WHERE datname LIKE :like "
                    "AND query LIKE 'SELECT pg_sleep(30)%' AND state = 'active'"
                ),
                {"like": f"{SCRATCH_PREFIX}{key}_%".replace("_", r"\_")},
            ).scalar()
            if name:
                return str(name)
            time.sleep(0.1)
    raise AssertionError(f"no scratch copy ran revision s2 within {timeout}s")


def test_a_killed_rehearsal_leaves_a_copy_the_next_run_removes(prod: MigrationUtils) -> None:
    key = source_key(prod)
    child = subprocess.Popen(
        [sys.executable, "-c", _KILLED_RUN, url_text(prod.url), str(SLEEPY)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        leftover = _wait_for_sleep(prod, key)
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(30)
    assert child.returncode == -signal.SIGKILL
    assert leftover.startswith(f"{SCRATCH_PREFIX}{key}_")
    assert _scratch_of(prod) == {leftover: True}  # left behind, with its marker

    lines: list[str] = []
    report = rehearse(
        prod, script_location=SLEEPY, revision="s1", check_drift=False, log=lines.append
    )
    assert report.passed, report.reason
    assert [(r.revision, r.status) for r in report.revisions] == [("s1", "ok")]
    assert report.scratch_name != leftover
    assert _scratch_of(prod) == {}
    assert prod.database_exists(leftover) is False
    # production itself was never migrated
    with prod.engine.connect() as conn:
        tables = conn.execute(
            text("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
        ).scalar_one()
    assert tables == 0
