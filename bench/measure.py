"""Running and measuring one command of the benchmark: wall time, peak RSS, CPU time.

Shared by :mod:`bench.compare` (the tools' table) and :mod:`bench.parallel` (issue 24's
parallel rows and the resumed restore).

CPU time is counted on both sides of the connection, so that a figure per GB can be carried
to other machines (docs/performance.md): the client's is ``RUSAGE_CHILDREN`` (user + system)
around the command, which holds every process of the command once it has been waited for
(this process is made a child subreaper, so a worker orphaned by its parent is reparented
here and waited for too); the server's is the CPU time of every ``mariadbd`` / ``postgres``
process read from ``/proc/<pid>/stat`` before and after the command, exited backends
included (they are in the postmaster's ``cutime``). The server's figure is the whole
server's: anything else it runs meanwhile is counted as well.
"""

from __future__ import annotations

import ctypes
import datetime as dt
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine
from sqlalchemy.engine import URL
from sqlalchemy.pool import NullPool

from bench import datasets
from bench.throughput import ROOT, child_env

# The processes whose CPU time is the server's share, by backend.
SERVER_PROCESSES = {"mysql": ("mariadbd", "mysqld"), "postgresql": ("postgres",)}
_CLK_TCK = os.sysconf("SC_CLK_TCK")
_PR_SET_CHILD_SUBREAPER = 36


@dataclass
class Command:
    argv: list[str]
    stdin: Path | None = None
    stdout: Path | None = None


@dataclass
class Sample:
    seconds: float
    peak_mb: float
    inner: float | None = None  # our own timing of the call (no interpreter start-up)
    client_cpu: float | None = None  # user + system seconds of all the command's processes
    server_cpu: float | None = None  # CPU seconds of the server's processes meanwhile
    worker_mb: float | None = None  # our largest worker process's VmHWM (jobs > 1)
    other_cpu: float | None = None  # CPU seconds of everything else on the machine meanwhile
    report: dict[str, Any] = field(default_factory=dict)  # zenmigrate's JSON result


@dataclass
class Cell:
    backup: list[Sample] = field(default_factory=list)
    restore: list[Sample] = field(default_factory=list)
    size: int = 0
    wrong: int = 0  # restores whose checksums differed from the source
    failed: str = ""  # why another tool's command failed (its later runs are skipped)


def median(samples: list[Sample], attr: str) -> float | None:
    values = [getattr(s, attr) for s in samples if getattr(s, attr) is not None]
    return statistics.median(values) if values else None


def fmt(value: float | None, spec: str = ".1f") -> str:
    return "-" if value is None else format(value, spec)


def log(message: str) -> None:
    print(f"[{dt.datetime.now():%H:%M:%S}] {message}", file=sys.stderr, flush=True)


# -- CPU accounting ---------------------------------------------------------------------------
def become_subreaper() -> bool:
    """Have orphaned descendants (a worker whose parent exited first) reparented to this
    process, so that their CPU time reaches ``RUSAGE_CHILDREN`` when :func:`reap` waits for
    them rather than being lost with init. False where prctl is not available."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


def reap(timeout: float = 10.0) -> None:
    """Wait for every remaining child (orphans included) for up to ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            if time.monotonic() > deadline:
                return
            time.sleep(0.01)


def machine_cpu() -> float:
    """Busy CPU seconds of the whole machine so far (/proc/stat: all but idle and iowait)."""
    with open("/proc/stat") as stat:
        fields = [int(f) for f in stat.readline().split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / _CLK_TCK


def client_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def server_cpu(names: tuple[str, ...]) -> float:
    """utime + stime + cutime + cstime of every process named in ``names``, in seconds."""
    ticks = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            raw = stat.read_bytes()
        except OSError:  # exited meanwhile
            continue
        left, right = raw.find(b"("), raw.rfind(b")")
        if raw[left + 1 : right].decode(errors="replace") not in names:
            continue
        fields = raw[right + 2 :].split()  # fields[0] is field 3 (state); 14-17 are times
        ticks += sum(int(f) for f in fields[11:15])
    return ticks / _CLK_TCK


# -- one command ------------------------------------------------------------------------------
def timed(command: Command, workdir: Path, server: tuple[str, ...] = ()) -> Sample:
    """Run ``command`` under /usr/bin/time; ``server`` names the server's processes."""
    rss_file = workdir / "rss.txt"
    argv = ["/usr/bin/time", "-f", "%M", "-o", str(rss_file), *command.argv]
    stdin = open(command.stdin, "rb") if command.stdin else subprocess.DEVNULL  # noqa: SIM115
    stdout = open(command.stdout, "wb") if command.stdout else subprocess.PIPE  # noqa: SIM115
    reap(0)
    cpu_before, server_before, machine_before = client_cpu(), server_cpu(server), machine_cpu()
    try:
        start = time.perf_counter()
        proc = subprocess.run(
            argv, stdin=stdin, stdout=stdout, stderr=subprocess.PIPE, cwd=ROOT, env=child_env()
        )
        seconds = time.perf_counter() - start
        server_after, machine_after = server_cpu(server), machine_cpu()
    finally:
        for handle in (stdin, stdout):
            if not isinstance(handle, int):
                handle.close()
    reap()
    cpu = client_cpu() - cpu_before
    server_used = server_after - server_before
    # The server's share is the whole server's, so only counted out when it is known.
    others = machine_after - machine_before - cpu - (server_used if server else 0.0)
    if proc.returncode:
        raise RuntimeError(
            f"{' '.join(command.argv[:3])}... exited {proc.returncode}: "
            f"{proc.stderr.decode(errors='replace')[-2000:]}"
        )
    peak_kb = int(rss_file.read_text().split()[-1])
    found: dict[str, Any] = {}
    if proc.stdout and proc.stdout.strip().startswith(b"{"):
        found = json.loads(proc.stdout.strip().splitlines()[-1])
    return Sample(
        seconds,
        peak_kb / 1024,
        found.get("seconds", found.get("duration")),  # zenmigrate restore's / backup's
        client_cpu=cpu,
        server_cpu=server_used if server else None,
        worker_mb=found.get("worker_peak_mb"),
        other_cpu=max(others, 0.0),
        report=found,
    )


# -- a quiet server before each command -------------------------------------------------------
def settle(url: URL, timeout: float = 120.0) -> None:
    """Let the server and the disks finish what the previous command left them (InnoDB
    flushing dirty pages and purging, PostgreSQL's checkpoint and autovacuum, the kernel's
    writeback and the disks' pending I/O), so that it is not timed as part of the next
    command: whichever tool ran after a large restore would otherwise pay for it.
    """
    # The previous command's files (mariadb-dump's output is not fsynced) would otherwise
    # be written back by the kernel while the next command runs.
    os.sync()
    engine = create_engine(url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    deadline = time.monotonic() + timeout
    try:
        with engine.connect() as conn:
            if url.get_backend_name() == "mysql":
                _settle_innodb(conn.exec_driver_sql, deadline)
            else:
                conn.exec_driver_sql("CHECKPOINT")
                busy = (
                    "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'autovacuum worker'"
                )
                while conn.exec_driver_sql(busy).scalar() and time.monotonic() < deadline:
                    time.sleep(0.2)
    finally:
        engine.dispose()
    _quiet_disks(deadline)


def _quiet_disks(deadline: float, window: float = 0.5, busy: float = 0.05) -> None:
    """Wait until the disks are less than ``busy`` busy over ``window`` seconds, so that no
    command starts while the last one's I/O (a dropped database, a deleted dump) still runs.
    It did not explain the first-command slowdown noted in :func:`bench.compare.run_dialect`."""

    def busy_ms() -> int:  # io_ticks: milliseconds with I/O in flight, all disks
        total = 0
        for stat in Path("/sys/block").glob("*/stat"):
            if not stat.parent.name.startswith(("loop", "ram", "zram")):
                total += int(stat.read_text().split()[9])
        return total

    while time.monotonic() < deadline:
        before = busy_ms()
        time.sleep(window)
        if busy_ms() - before <= busy * window * 1000:
            return


def _settle_innodb(sql: Callable[[str], Any], deadline: float) -> None:
    def status(name: str) -> int:
        return int(sql(f"SHOW GLOBAL STATUS LIKE '{name}'").one()[1])

    pct = sql("SELECT @@GLOBAL.innodb_max_dirty_pages_pct").scalar()
    sql("SET GLOBAL innodb_max_dirty_pages_pct = 0")  # flush now, not at leisure
    try:
        while time.monotonic() < deadline and (
            status("Innodb_buffer_pool_pages_dirty") > 100
            or status("Innodb_history_list_length") > 1000
        ):
            time.sleep(0.2)
    finally:
        sql(f"SET GLOBAL innodb_max_dirty_pages_pct = {float(pct)}")


# -- files and checks -------------------------------------------------------------------------
def size_of(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size if path.exists() else 0


def remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)
        Path(str(path) + ".manifest.json").unlink(missing_ok=True)


def fingerprint(url: URL) -> dict[str, str]:
    engine = create_engine(url, poolclass=NullPool)
    try:
        return datasets.checksums(engine)
    finally:
        engine.dispose()


@dataclass
class Target:
    text: str
    value: float | None
    limit: float
    unit: str = "x"
    failed: bool = False  # the result was wrong: no time counts

    def line(self) -> str:
        if self.failed:
            verdict, shown = "FAIL", "wrong"
        elif self.value is None:
            verdict, shown = "n/a", "-"
        else:
            verdict = "PASS" if self.value <= self.limit else "MISS"
            shown = f"{self.value:.2f}{self.unit}"
        return f"  {verdict:4}  {self.text:62} {shown:>9}  (<= {self.limit:g}{self.unit})"
