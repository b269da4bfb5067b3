"""The rehearsal row (issue 23): how well a rehearsal predicts the real migration's duration.

On dataset (a), for each server: generate the ``mixed`` table and stamp it at revision
``0001`` of ``bench/migrations/rehearsal``, then

1. :func:`rehearse` the pending revision ``0002`` (an index on ``mixed.amount``, which is not
   unique, and a column with a constant default) on a fresh scratch copy of the database;
2. run the same upgrade for real on the database itself (:meth:`Alembic.upgrade`), timed;
3. compare the rehearsal's prediction (``report.estimated_seconds``) with that time.

Every run starts from a newly generated table (the same one each time, so no run inherits the
previous one's altered table) on a settled server, as the other rows do. The target: the
median prediction within 30% of the median actual time.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.engine import make_url

from airflow_provider_zenmigrate.core.alembic import Alembic
from airflow_provider_zenmigrate.core.rehearsal import RehearsalReport, rehearse
from airflow_provider_zenmigrate.core.utils import MigrationUtils
from bench import datasets

SCRIPTS = Path(__file__).resolve().parent / "migrations" / "rehearsal"
DATABASE = "zm_bench_rehearsal"
BASE, TARGET = "0001", "0002"
#: |predicted - actual| at most this share of actual.
TOLERANCE = 0.30


@dataclass
class RunResult:
    """One rehearsal and the real upgrade after it."""

    predicted: float
    actual: float
    on_copy: float | None  # the revision's own time on the scratch copy
    copy: float | None  # seconds to make the copy
    rehearsal: float  # the whole rehearse() call, wall time


@dataclass
class RehearsalRow:
    """The runs of one server and the figures printed from them."""

    dialect: str
    rows: int
    runs: list[RunResult] = field(default_factory=list)
    basis: str = ""
    version: str = ""  # the server's, as the tools' tables head theirs

    def median(self, attr: str) -> float | None:
        values = [v for r in self.runs if (v := getattr(r, attr)) is not None]
        return statistics.median(values) if values else None

    def error(self) -> float | None:
        """|predicted - actual| / actual, of the medians."""
        predicted, actual = self.median("predicted"), self.median("actual")
        if predicted is None or not actual:
            return None
        return abs(predicted - actual) / actual


def _fmt(value: float | None, spec: str = ".2f") -> str:
    return "-" if value is None else format(value, spec)


def _prepare(production: MigrationUtils, rows: int) -> None:
    """Dataset (a) at revision ``0001``, steady (PostgreSQL vacuumed) as the other rows'."""
    production.create_database(drop=True)
    datasets.create_mixed(production.engine, rows)
    datasets.steady(production.engine)
    Alembic(production.engine, script_location=SCRIPTS).stamp(BASE)
    production.dispose()


def _one_run(
    production: MigrationUtils,
    rows: int,
    settle: Callable[[], None],
    log: Callable[[str], None],
) -> tuple[RunResult, RehearsalReport]:
    _prepare(production, rows)
    settle()
    started = time.perf_counter()
    report = rehearse(
        production,
        script_location=SCRIPTS,
        revision=TARGET,
        check_drift=False,  # the row is about the prediction; drift has its own tests
        log=log,
    )
    rehearsal = time.perf_counter() - started
    if not report.passed:
        raise RuntimeError(f"the rehearsal failed: {report.reason}")
    if report.estimated_seconds is None:
        raise RuntimeError(f"the rehearsal predicted no duration ({report.estimate_basis})")
    on_copy = sum(r.seconds or 0.0 for r in report.revisions) if report.revisions else None
    settle()
    alembic = Alembic(production.engine, script_location=SCRIPTS)
    started = time.perf_counter()
    alembic.upgrade(TARGET)
    actual = time.perf_counter() - started
    if alembic.current_revisions() != [TARGET]:
        raise RuntimeError(f"the real upgrade ended at {alembic.current_revisions()}")
    production.dispose()
    result = RunResult(
        predicted=report.estimated_seconds,
        actual=actual,
        on_copy=on_copy,
        copy=report.copy_seconds,
        rehearsal=rehearsal,
    )
    return result, report


def run(
    server_url: str,
    dialect: str,
    rows: int,
    runs: int,
    settle: Callable[[], None],
    log: Callable[[str], None],
) -> RehearsalRow:
    """``runs`` rehearsals of ``0002`` on dataset (a), each followed by the real upgrade."""
    url = make_url(server_url)._replace(database=DATABASE)
    production = MigrationUtils(url=url, connect_args={}, engine_args={})
    row = RehearsalRow(dialect, rows)
    row.version = datasets.server_version(production.master_engine)
    try:
        for number in range(1, runs + 1):
            result, report = _one_run(
                production, rows, settle, lambda line: log(f"  rehearsal: {line}")
            )
            row.runs.append(result)
            row.basis = report.estimate_basis
            log(
                f"{dialect} rehearsal run {number}: predicted {result.predicted:.2f}s, "
                f"actual {result.actual:.2f}s (on the copy {_fmt(result.on_copy)}s, "
                f"copy {_fmt(result.copy, '.1f')}s, rehearsal {result.rehearsal:.1f}s)"
            )
    finally:
        production.drop_database()
        production.dispose()
    return row


def lines(row: RehearsalRow) -> list[str]:
    """The row's table and its target line, in the benchmark's layout."""
    head = (
        f"{'rehearsal':34} {'predicted s':>11} {'actual s':>9} {'pred/actual':>12} "
        f"{'on copy s':>10} {'copy s':>7} {'rehearse s':>11}"
    )
    out = [
        f"Rehearsal (issue 23): (a) mixed, {row.rows:,} rows, revision {TARGET}: "
        "index on mixed.amount + column with a default",
        head,
        "-" * len(head),
    ]
    for number, r in enumerate(row.runs, 1):
        out.append(
            f"  {f'run {number}':32} {r.predicted:>11.2f} {r.actual:>9.2f} "
            f"{r.predicted / r.actual:>11.2f}x {_fmt(r.on_copy):>10} {_fmt(r.copy, '.1f'):>7} "
            f"{r.rehearsal:>11.1f}"
        )
    predicted, actual = row.median("predicted"), row.median("actual")
    ratio = f"{predicted / actual:.2f}x" if predicted is not None and actual else "-"
    out.append(
        f"  {'median':32} {_fmt(predicted):>11} {_fmt(actual):>9} {ratio:>12} "
        f"{_fmt(row.median('on_copy')):>10} {_fmt(row.median('copy'), '.1f'):>7} "
        f"{_fmt(row.median('rehearsal'), '.1f'):>11}"
    )
    out.append(
        "  (in-process wall seconds: actual is Alembic.upgrade() on the database itself, "
        "rehearse s the whole rehearse() call)"
    )
    if row.basis:
        out.append(f"  (estimate: {row.basis})")
    error = row.error()
    verdict = "n/a" if error is None else ("PASS" if error <= TOLERANCE else "MISS")
    shown = "-" if error is None else f"{error:.0%}"
    text = "rehearsal: |predicted - actual| / actual (medians)"
    out.append(f"Target (issue 23):\n  {verdict:4}  {text:62} {shown:>9}  (<= {TOLERANCE:.0%})")
    return out
