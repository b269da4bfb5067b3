"""Issue 24's part of the benchmark: multi-part dumps with ``jobs`` worker processes.

On (e) (one table of 10x (a)'s rows) and (f) (50 tables of a tenth of (a)'s rows), ours with
``--jobs N`` runs next to ours in one stream and the parallel standard tools (``mydumper``
/ ``myloader -t2``, ``pg_dump -Fd -j2`` / ``pg_restore -j2``); :mod:`bench.compare` times
them like every other tool. This module adds:

- the resumed restore (:func:`measure_resume`): a ``jobs`` restore of (e) started in its own
  process group, killed with SIGKILL (the whole group, workers included) once the parts it
  committed hold 70% of the dump's rows (its progress table, polled every 0.25 s), then
  rerun with the same arguments; its time over the median full restore's is the target,
  and the result is checked against the source like every restore. Two earlier triggers
  measured something else: at 70% of the full restore's time MariaDB's restore had all its
  data in and was finishing; at 70% of the source's bytes on the server's disk (InnoDB
  files) MariaDB's loaded table never got there (it is denser than the source's), so the
  kill fell back to 95% of the time with 18 of 31 parts committed;
- the issue's targets (:func:`targets`);
- CPU seconds per GB (:func:`cpu_table`) of every backup and restore measured.
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from sqlalchemy import create_engine
from sqlalchemy.engine import URL, Engine
from sqlalchemy.exc import ProgrammingError
from sqlalchemy.pool import NullPool

from airflow_provider_zenmigrate.core.parts.reading import load_manifest
from airflow_provider_zenmigrate.core.utils import MigrationUtils
from bench import datasets
from bench.measure import (
    Cell,
    Command,
    Sample,
    Target,
    fingerprint,
    fmt,
    log,
    median,
    reap,
    remove,
    settle,
    timed,
)
from bench.throughput import ROOT, child_env

KILL_AT = 0.7  # of the dump's rows in the parts the restore has committed
LAST_CHANCE = 0.95  # of the median full restore's time: kill then if KILL_AT never comes
GB = 1e9


class _Named(Protocol):
    @property
    def name(self) -> str: ...


class _Keyed(Protocol):
    @property
    def key(self) -> str: ...

    @property
    def title(self) -> str: ...


@dataclass
class Resume:
    """A restore killed part-way and rerun with the same arguments."""

    full: float  # median full restore of the same dump, whole-process wall seconds
    killed_after: float | None  # None: it finished before the kill was due
    committed_at_kill: float | None  # the rows of the parts committed then / the dump's
    rerun: Sample
    ok: bool  # the rerun's result equals the source

    @property
    def ratio(self) -> float:
        return self.rerun.seconds / self.full

    def lines(self) -> list[str]:
        if self.killed_after is None:
            killed = "it finished before the kill was due (nothing measured)"
        else:
            killed = (
                f"killed (SIGKILL, whole process group) after {self.killed_after:.1f}s "
                f"({self.killed_after / self.full:.0%} of it)"
            )
            if self.committed_at_kill is not None:
                killed += (
                    f", when the parts it had committed held {self.committed_at_kill:.0%} "
                    "of the dump's rows"
                )
        parts = self.rerun.report.get("parts")
        resumed = (
            f" ({self.rerun.report.get('resumed_parts', 0)} of {parts} parts already loaded)"
            if parts
            else ""
        )
        return [
            f"  resumed restore of (e): full restore {self.full:.1f}s (median); {killed}; "
            f"rerun {self.rerun.seconds:.1f}s{resumed}, result "
            f"{'equal to the source' if self.ok else 'DIFFERENT FROM THE SOURCE'}"
        ]


def committed_rows(engine: Engine, database: str) -> int:
    """The rows of the parts a restore of ``database`` has committed, from its progress
    table (kept in the staging area across attempts: a ``zmstage_*_<database>`` database on
    MariaDB, a ``zm_stage_*`` schema of the target on PostgreSQL); 0 before it exists."""
    with engine.connect() as conn:
        if datasets.backend(engine) == "mysql":
            found = conn.exec_driver_sql(
                "SELECT TABLE_SCHEMA FROM information_schema.TABLES WHERE TABLE_NAME = "
                "'_zenmigrate_progress' AND TABLE_SCHEMA LIKE 'zmstage\\_%%' "
                f"AND TABLE_SCHEMA LIKE '%%\\_{database}'"
            ).all()
            tables = [f"`{r[0]}`._zenmigrate_progress" for r in found]
        else:
            found = conn.exec_driver_sql(
                "SELECT table_schema FROM information_schema.tables WHERE table_name = "
                "'_zenmigrate_progress' AND table_schema LIKE 'zm\\_stage\\_%%'"
            ).all()
            tables = [f'"{r[0]}"._zenmigrate_progress' for r in found]
        q = "`" if datasets.backend(engine) == "mysql" else '"'
        total = 0
        for table in tables:
            try:
                total += int(
                    conn.exec_driver_sql(
                        f"SELECT COALESCE(SUM({q}rows{q}), 0) FROM {table} "
                        f"WHERE {q}table{q} IS NOT NULL"
                    ).scalar()
                    or 0
                )
            except ProgrammingError:  # dropped by the swap meanwhile: nothing to count
                conn.rollback()
        return total


def _kill_when_loaded(
    proc: subprocess.Popen[bytes], engine: Engine, database: str, rows: int, full: float
) -> tuple[float | None, float | None]:
    """Poll the rows the restore committed; SIGKILL ``proc``'s process group once they
    reach :data:`KILL_AT` of the dump's, or at :data:`LAST_CHANCE` of the full restore's
    time if they never do. (seconds, share) at the kill; (None, None) when it finished."""
    start = time.perf_counter()
    while proc.poll() is None:
        elapsed = time.perf_counter() - start
        share = committed_rows(engine, database) / rows if rows else 0.0
        if share >= KILL_AT or elapsed >= LAST_CHANCE * full:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return time.perf_counter() - start, share
        time.sleep(0.25)
    return None, None


def measure_resume(
    backup: Command,
    restore: Command,
    src_url: URL,
    expected: dict[str, str],
    dst: MigrationUtils,
    full: float,
    server: tuple[str, ...],
    workdir: Path,
    out: Path,
) -> Resume:
    """Back up with ``backup`` to ``out``, then restore, kill and rerun (see the module)."""
    remove(out)
    settle(src_url)
    timed(backup, workdir, server)
    dst.create_database(drop=True)
    dst.dispose()
    settle(src_url)
    engine = create_engine(dst.url, poolclass=NullPool)
    try:
        rows = sum(load_manifest(str(out)).tables.values())
        with tempfile.TemporaryFile(dir=workdir) as errors:
            proc = subprocess.Popen(
                restore.argv,
                stdout=subprocess.DEVNULL,
                stderr=errors,
                cwd=ROOT,
                env=child_env(),
                start_new_session=True,  # its own process group: the workers die with it
            )
            killed_after, share = _kill_when_loaded(proc, engine, str(dst.url.database), rows, full)
            reap()
            if killed_after is None and proc.returncode:
                errors.seek(0)
                raise RuntimeError(f"restore exited {proc.returncode}: {errors.read()[-2000:]!r}")
    finally:
        engine.dispose()
    if killed_after is not None:
        log(f"resume: killed after {killed_after:.1f}s, {share:.0%} of the rows committed")
    settle(src_url)
    rerun = timed(restore, workdir, server)
    ok = fingerprint(dst.url) == expected
    dst.drop_database()
    remove(out)
    return Resume(full, killed_after, share, rerun, ok)


def targets(
    dialect: str,
    keys: Sequence[str],
    ours: str,
    cells: dict[tuple[str, str], Cell],
    resume: Resume | None,
) -> list[Target]:
    """Issue 24's targets on (e) and (f) for ``ours`` (the ``-jN`` tool's name)."""

    def ratio(key: str, what: str, tool: str) -> float | None:
        mine, theirs = cells.get((key, ours)), cells.get((key, tool))
        if mine is None or theirs is None:
            return None
        a, b = median(getattr(mine, what), "seconds"), median(getattr(theirs, what), "seconds")
        return a / b if a is not None and b else None

    if dialect == "mysql":
        tool, short = "mydumper / myloader -t2", ("mydumper -t2", "myloader -t2")
        limits = (2.0, 1.0)
    else:
        tool, short = "pg_dump -Fd -j2 / pg_restore -j2", ("pg_dump -Fd -j2", "pg_restore -j2")
        limits = (1.0, 1.0)
    found = []
    for key in keys:
        # A wrong restore fails both: the backup may be what lost the rows.
        wrong = bool(cells.get((key, ours), Cell()).wrong)
        for what, name, limit in zip(("backup", "restore"), short, limits, strict=True):
            text = f"({key}) {what}: {ours} / {name}" + (" (RESTORED DATA WRONG)" if wrong else "")
            found.append(Target(text, ratio(key, what, tool), limit, failed=wrong))
    for what in ("backup", "restore"):
        samples = [s for key in keys for s in getattr(cells.get((key, ours), Cell()), what)]
        workers = [s.worker_mb for s in samples if s.worker_mb is not None]
        if workers or not samples:
            found.append(
                Target(
                    f"({'/'.join(keys)}) {what}: largest worker's peak RSS",
                    max(workers) if workers else None,
                    150,
                    " MB",
                )
            )
        else:  # no worker figure (one process): the whole command's peak bounds it
            found.append(
                Target(
                    f"({'/'.join(keys)}) {what}: peak RSS (no worker figure reported)",
                    max(s.peak_mb for s in samples),
                    150,
                    " MB",
                )
            )
    if resume is not None:
        found.append(
            Target(
                f"(e) restore killed at ~{KILL_AT:.0%} of its data, rerun / full restore"
                + ("" if resume.ok else " (RESULT WRONG)"),
                resume.ratio if resume.killed_after is not None else None,
                0.40,
                failed=not resume.ok,
            )
        )
    return found


def cpu_table(
    sets: Sequence[_Keyed],
    tools: Sequence[_Named],
    cells: dict[tuple[str, str], Cell],
    data_bytes: dict[str, int],
) -> list[str]:
    """CPU seconds per GB of the source's table data, client and server, medians; "cores"
    is (client + server CPU) / wall time: how many cores the command kept busy; "other" the
    cores everything else on the machine used meanwhile (other work skews the figures)."""
    head = (
        f"{'tool':34} {'data GB':>7} | {'backup: client':>14} {'server':>7} {'cores':>5} "
        f"{'other':>5} | {'restore: client':>15} {'server':>7} {'cores':>5} {'other':>5}"
    )
    lines = [
        "CPU seconds per GB of source table data (MariaDB DATA_LENGTH, PostgreSQL "
        "pg_table_size; GB = 1e9 bytes), medians:",
        head,
        "-" * len(head),
    ]
    for ds in sets:
        gb = data_bytes.get(ds.key, 0) / GB
        if not gb:
            continue
        lines.append(ds.title)
        for tool in tools:
            cell = cells.get((ds.key, tool.name))
            if cell is None or not cell.backup:
                continue
            parts = []
            for samples in (cell.backup, cell.restore):
                client, server = median(samples, "client_cpu"), median(samples, "server_cpu")
                wall, other = median(samples, "seconds"), median(samples, "other_cpu")
                cores = (client + server) / wall if client is not None and server and wall else None
                parts.append(
                    (
                        fmt(client / gb if client is not None else None),
                        fmt(server / gb if server is not None else None),
                        fmt(cores, ".2f"),
                        fmt(other / wall if other is not None and wall else None, ".2f"),
                    )
                )
            (bc, bs, bk, bo), (rc, rs, rk, ro) = parts
            lines.append(
                f"  {tool.name:32} {gb:>7.2f} | {bc:>14} {bs:>7} {bk:>5} {bo:>5} | "
                f"{rc:>15} {rs:>7} {rk:>5} {ro:>5}"
            )
    return lines
