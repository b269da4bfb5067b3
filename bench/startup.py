"""Start-up (issue 27, point 2): what a user waits for before any row moves.

Two whole commands, each the median of several runs on a settled machine: ``zenmigrate
--version`` (interpreter start-up and the CLI's own imports), and ``zenmigrate backup`` of an
empty database to a local file (connecting, reading an empty catalog, writing and publishing
a dump with its header and trailer). The console script of the bench's venv is run as a user
runs it.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy.engine import URL

from airflow_provider_zenmigrate.core.utils import MigrationUtils
from bench.measure import Target

VERSION_LIMIT, EMPTY_BACKUP_LIMIT = 0.15, 0.4
RUNS = 7


def _cli() -> str:
    return str(Path(sys.executable).with_name("zenmigrate"))


def _wall(argv: list[str], runs: int = RUNS, before: Callable[[], None] | None = None) -> float:
    """Median wall seconds of ``argv``, after one untimed run (disk caches warm); ``before``
    runs, untimed, before each."""
    times = []
    for turn in range(runs + 1):
        if before is not None:
            before()
        started = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True)
        if turn:
            times.append(time.perf_counter() - started)
    return statistics.median(times)


def version_seconds() -> float:
    return _wall([_cli(), "--version"])


def empty_backup_seconds(url: URL) -> float:
    """A backup of an empty database at ``url`` (created here, dropped after)."""
    empty = MigrationUtils(url=url, connect_args={}, engine_args={})
    empty.create_database(drop=True)
    empty.dispose()
    try:
        with tempfile.TemporaryDirectory(prefix="zm-bench-empty-") as folder:
            dump = Path(folder) / "empty.jsonl"
            shown = url.render_as_string(hide_password=False)

            def clear() -> None:  # each run publishes a new dump where the last one was
                for old in Path(folder).glob("empty.jsonl*"):
                    old.unlink()

            return _wall([_cli(), "backup", "-q", shown, str(dump)], before=clear)
    finally:
        empty.drop_database()
        empty.dispose()


def lines(url: URL, title: str, with_version: bool) -> list[str]:
    """The start-up figures and their targets for the server at ``url``."""
    found = []
    if with_version:
        found.append(
            Target("zenmigrate --version, wall seconds", version_seconds(), VERSION_LIMIT, " s")
        )
    found.append(
        Target(
            f"backup of an empty {title} database, wall seconds",
            empty_backup_seconds(url),
            EMPTY_BACKUP_LIMIT,
            " s",
        )
    )
    return ["Start-up (issue 27):", *(t.line() for t in found)]


def sqlite_lines() -> list[str]:
    """The empty backup on SQLite (a file of its own)."""
    with tempfile.TemporaryDirectory(prefix="zm-bench-sqlite-") as folder:
        url = URL.create("sqlite", database=str(Path(folder) / "empty.db"))
        return lines(url, "SQLite", with_version=False)[1:]
