"""Our backup and restore side by side with the standard tools, on MariaDB and PostgreSQL.

Usage: python -m bench [--rows N] [--runs N] [--datasets abcd] [--dialect mysql|postgresql]
                       [--only tools|rehearsal]

For each dataset (see :mod:`bench.datasets`) and each tool, every run times a backup and a
restore into an empty database, then checks the restored tables against the source
(``CHECKSUM TABLE`` / ordered md5), so a fast wrong answer cannot win. Every figure is the
median of ``--runs`` runs. Each dataset has its own source database, generated once, and
every run goes through all datasets and all tools in turn, so that a ratio (ours / tool,
(b) / (a)) compares figures taken minutes apart, not one taken before a slow spell of the
machine with one taken during it; each run starts a dataset with a different tool. Every
command starts on a settled server and disk (:func:`settle`). Times are whole-process wall times
(our interpreter's start-up included); peak RSS is ``ru_maxrss`` of the command (through
``/usr/bin/time``; for a pipeline, its largest process), never of a fork of this process.
The tables and the issue's targets (PASS/MISS) go to stdout and ``build/bench/results.txt``.
After the tools, each server gets the rehearsal row (:mod:`bench.rehearsal`, on (a));
``--only`` runs one of the two parts.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.pool import NullPool

from airflow_provider_zenmigrate.core.utils import MigrationUtils
from bench import datasets, rehearsal
from bench.throughput import ROOT, child_env, ours_command

SERVERS = {
    "mysql": "mysql+pymysql://root@127.0.0.1:3306/",
    "postgresql": "postgresql+psycopg://postgres@127.0.0.1:5432/",
}
TITLES = {"mysql": "MariaDB", "postgresql": "PostgreSQL"}
SRC, DST = "zm_bench_src_{key}", "zm_bench_dst"  # a source database per dataset


# -- running and measuring one command --------------------------------------------------------
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


def timed(command: Command, workdir: Path) -> Sample:
    rss_file = workdir / "rss.txt"
    argv = ["/usr/bin/time", "-f", "%M", "-o", str(rss_file), *command.argv]
    stdin = open(command.stdin, "rb") if command.stdin else subprocess.DEVNULL  # noqa: SIM115
    stdout = open(command.stdout, "wb") if command.stdout else subprocess.PIPE  # noqa: SIM115
    try:
        start = time.perf_counter()
        proc = subprocess.run(
            argv, stdin=stdin, stdout=stdout, stderr=subprocess.PIPE, cwd=ROOT, env=child_env()
        )
        seconds = time.perf_counter() - start
    finally:
        for handle in (stdin, stdout):
            if not isinstance(handle, int):
                handle.close()
    if proc.returncode:
        raise RuntimeError(
            f"{' '.join(command.argv[:3])}... exited {proc.returncode}: "
            f"{proc.stderr.decode(errors='replace')[-2000:]}"
        )
    peak_kb = int(rss_file.read_text().split()[-1])
    inner = None
    if proc.stdout and proc.stdout.strip().startswith(b"{"):
        inner = json.loads(proc.stdout.strip().splitlines()[-1])["seconds"]
    return Sample(seconds, peak_kb / 1024, inner)


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
    It did not explain the first-command slowdown noted in :func:`run_dialect`."""

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


# -- the tools ----------------------------------------------------------------------------------
@dataclass
class Tool:
    name: str
    output: str  # file or directory name in the work directory
    backup: Callable[[Path], Command]
    restore: Callable[[Path], Command] | None = None
    zst: bool = False  # compared with the other compressed tool
    ours: bool = False
    only: str = "abcd"  # the datasets it runs on (the .zst targets are on (a) alone)


def _ours(name: str, output: str, src: URL, dst: URL, restore: bool, zst: bool) -> Tool:
    return Tool(
        name,
        output,
        lambda out: Command(ours_command("backup", src, str(out))),
        (lambda out: Command(ours_command("restore", dst, str(out)))) if restore else None,
        zst=zst,
        ours=True,
        only="a" if zst else "abcd",
    )


def mysql_tools(src: URL, dst: URL) -> list[Tool]:
    conn = ["-h", "127.0.0.1", "-P", "3306", "-u", "root"]
    source, target = str(src.database), str(dst.database)
    dump = ["mariadb-dump", *conn, "--single-transaction", source]
    mydump = ["mydumper", *conn, "-B", source, "-t", "2", "--trx-consistency-only"]
    return [
        _ours("ours", "ours.jsonl", src, dst, restore=True, zst=False),
        _ours("ours .zst", "ours.jsonl.zst", src, dst, restore=False, zst=True),
        Tool(
            "mariadb-dump / mariadb",
            "dump.sql",
            lambda out: Command(dump, stdout=out),
            lambda out: Command(["mariadb", *conn, target], stdin=out),
        ),
        Tool(
            "mariadb-dump | zstd",
            "dump.sql.zst",
            lambda out: Command(
                ["bash", "-o", "pipefail", "-c", f"{' '.join(dump)} | zstd -q -f -o {out}"]
            ),
            zst=True,
            only="a",
        ),
        Tool(
            "mydumper / myloader -t2",
            "mydumper",
            lambda out: Command([*mydump, "-o", str(out)]),
            lambda out: Command(["myloader", *conn, "-d", str(out), "-B", target, "-t", "2", "-o"]),
        ),
    ]


def postgresql_tools(src: URL, dst: URL) -> list[Tool]:
    conn = ["-h", "127.0.0.1", "-p", "5432", "-U", "postgres"]
    source, target = str(src.database), str(dst.database)
    return [
        _ours("ours", "ours.jsonl", src, dst, restore=True, zst=False),
        _ours("ours .zst", "ours.jsonl.zst", src, dst, restore=False, zst=True),
        Tool(
            "pg_dump / psql",
            "dump.sql",
            lambda out: Command(["pg_dump", *conn, "-d", source, "-f", str(out)]),
            lambda out: Command(
                ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", *conn, "-d", target], stdin=out
            ),
        ),
        Tool(
            "pg_dump -Fd -j2 / pg_restore -j2",
            "pgdir",
            lambda out: Command(["pg_dump", *conn, "-d", source, "-Fd", "-j", "2", "-f", str(out)]),
            lambda out: Command(["pg_restore", *conn, "-d", target, "-j", "2", str(out)]),
        ),
    ]


# -- datasets -----------------------------------------------------------------------------------
@dataclass
class Dataset:
    key: str
    title: str
    rows: int
    create: Callable[[Engine], None]


def make_datasets(args: argparse.Namespace) -> list[Dataset]:
    table_rows = args.table_rows
    every = [
        Dataset(
            "a",
            f"(a) mixed, {args.rows:,} rows",
            args.rows,
            lambda e: datasets.create_mixed(e, args.rows),
        ),
        Dataset(
            "b",
            f"(b) mixed, {2 * args.rows:,} rows",
            2 * args.rows,
            lambda e: datasets.create_mixed(e, 2 * args.rows),
        ),
        Dataset(
            "c",
            f"(c) {args.tables} tables x {table_rows:,} rows, FKs",
            args.tables * table_rows,
            lambda e: datasets.create_many(e, args.tables, table_rows),
        ),
        Dataset(
            "d",
            f"(d) {args.blob_rows:,} rows x 20 KiB BLOB+TEXT",
            args.blob_rows,
            lambda e: datasets.create_blobs(e, args.blob_rows),
        ),
    ]
    return [d for d in every if d.key in args.datasets]


# -- one dialect ----------------------------------------------------------------------------------
@dataclass
class Cell:
    backup: list[Sample] = field(default_factory=list)
    restore: list[Sample] = field(default_factory=list)
    size: int = 0
    wrong: int = 0  # restores whose checksums differed from the source


def _median(samples: list[Sample], attr: str) -> float | None:
    values = [getattr(s, attr) for s in samples if getattr(s, attr) is not None]
    return statistics.median(values) if values else None


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size if path.exists() else 0


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)
        Path(str(path) + ".manifest.json").unlink(missing_ok=True)


def _fingerprint(url: URL) -> dict[str, str]:
    engine = create_engine(url, poolclass=NullPool)
    try:
        return datasets.checksums(engine)
    finally:
        engine.dispose()


def log(message: str) -> None:
    print(f"[{dt.datetime.now():%H:%M:%S}] {message}", file=sys.stderr, flush=True)


@dataclass
class _Source:
    """One dataset's source database, its checksums and the tools (all of them) that dump it."""

    utils: MigrationUtils
    expected: dict[str, str]
    tools: list[Tool]


def _generate(dialect: str, ds: Dataset, dst_url: URL) -> _Source:
    log(f"{TITLES[dialect]}: generating {ds.title}")
    url = make_url(SERVERS[dialect])._replace(database=SRC.format(key=ds.key))
    src = MigrationUtils(url=url, connect_args={}, engine_args={})
    src.create_database(drop=True)
    ds.create(src.engine)
    datasets.steady(src.engine)
    src.dispose()
    make_tools = mysql_tools if dialect == "mysql" else postgresql_tools
    return _Source(src, _fingerprint(src.url), make_tools(src.url, dst_url))


def _time_tool(tool: Tool, src: _Source, dst: MigrationUtils, cell: Cell, workdir: Path) -> str:
    """One backup (and restore, checked) by ``tool``; the log line's figures."""
    out = workdir / tool.output
    _remove(out)
    settle(src.utils.url)
    sample = timed(tool.backup(out), workdir)
    cell.backup.append(sample)
    cell.size = cell.size or _size(out)
    line = f"backup {sample.seconds:.1f}s {sample.peak_mb:.0f}MB"
    if tool.restore is not None:
        dst.create_database(drop=True)
        dst.dispose()
        settle(src.utils.url)
        sample = timed(tool.restore(out), workdir)
        cell.restore.append(sample)
        ok = _fingerprint(dst.url) == src.expected
        # Gone before the next command: PostgreSQL's autovacuum would otherwise read the
        # restored tables while that command runs.
        dst.drop_database()
        cell.wrong += not ok
        line += f", restore {sample.seconds:.1f}s {sample.peak_mb:.0f}MB"
        line += "" if ok else " CHECKSUM MISMATCH"
    _remove(out)
    return line


def run_dialect(
    dialect: str, sets: list[Dataset], runs: int, workdir: Path
) -> tuple[dict[tuple[str, str], Cell], list[Tool], str]:
    dst_url = make_url(SERVERS[dialect])._replace(database=DST)
    dst = MigrationUtils(url=dst_url, connect_args={}, engine_args={})
    sources: dict[str, _Source] = {}
    cells: dict[tuple[str, str], Cell] = {}
    try:
        for ds in sets:
            sources[ds.key] = _generate(dialect, ds, dst_url)
        version = datasets.server_version(dst.master_engine)
        for run in range(runs):
            for ds in sets:
                src = sources[ds.key]
                # Each run starts with another tool: the first command after the last
                # dataset's was seen up to 3x slower (PostgreSQL, ours 4.0 / 7.8 / 11.7 s
                # when it always came first), whichever tool it was.
                these = [t for t in src.tools if ds.key in t.only]
                turn = run % len(these)
                for tool in these[turn:] + these[:turn]:
                    cell = cells.setdefault((ds.key, tool.name), Cell())
                    line = _time_tool(tool, src, dst, cell, workdir)
                    log(f"{TITLES[dialect]} {ds.key} run {run + 1}: {tool.name}: {line}")
    finally:
        for mu in (*(s.utils for s in sources.values()), dst):
            mu.drop_database()
            mu.dispose()
    return cells, next(iter(sources.values())).tools, version


# -- reporting ----------------------------------------------------------------------------------
def _fmt(value: float | None, spec: str = ".1f") -> str:
    return "-" if value is None else format(value, spec)


def table(
    dialect: str,
    version: str,
    sets: list[Dataset],
    tools: list[Tool],
    cells: dict[tuple[str, str], Cell],
) -> list[str]:
    head = (
        f"{'tool':34} {'backup s':>9} {'MB':>6} {'restore s':>10} {'MB':>6} {'size MB':>8} "
        f"{'ours/tool: backup':>18} {'restore':>8}  check"
    )
    lines = [f"== {version} ==", head, "-" * len(head)]
    for ds in sets:
        lines.append(ds.title)
        ours = {t.zst: cells[(ds.key, t.name)] for t in tools if t.ours and ds.key in t.only}
        for tool in (t for t in tools if ds.key in t.only):
            cell = cells[(ds.key, tool.name)]
            b, r = _median(cell.backup, "seconds"), _median(cell.restore, "seconds")
            ratio_b = ratio_r = ""
            if not tool.ours:
                mine = ours[tool.zst]
                ob, orr = _median(mine.backup, "seconds"), _median(mine.restore, "seconds")
                ratio_b = f"{ob / b:.2f}x" if ob and b else ""
                ratio_r = f"{orr / r:.2f}x" if orr and r else ""
            check = "-" if tool.restore is None else ("WRONG" if cell.wrong else "ok")
            lines.append(
                f"  {tool.name:32} {_fmt(b):>9} {_fmt(_median(cell.backup, 'peak_mb'), '.0f'):>6} "
                f"{_fmt(r):>10} {_fmt(_median(cell.restore, 'peak_mb'), '.0f'):>6} "
                f"{cell.size / 1e6:>8.0f} {ratio_b:>18} {ratio_r:>8}  {check}"
            )
    return lines


@dataclass
class Target:
    text: str
    value: float | None
    limit: float
    unit: str = "x"

    def line(self) -> str:
        if self.value is None:
            verdict, shown = "n/a", "-"
        else:
            verdict = "PASS" if self.value <= self.limit else "MISS"
            shown = f"{self.value:.2f}{self.unit}"
        return f"  {verdict:4}  {self.text:62} {shown:>9}  (<= {self.limit:g}{self.unit})"


def targets(dialect: str, sets: list[Dataset], cells: dict[tuple[str, str], Cell]) -> list[Target]:
    keys = {d.key: d for d in sets}

    def med(ds: str, tool: str, what: str, attr: str = "seconds") -> float | None:
        cell = cells.get((ds, tool))
        return _median(getattr(cell, what), attr) if cell else None

    def ratio(a: float | None, b: float | None) -> float | None:
        return a / b if a is not None and b else None

    found: list[Target] = []
    if "a" in keys:
        if dialect == "mysql":
            found += [
                Target(
                    "(a) backup, file: ours / mariadb-dump --single-transaction",
                    ratio(med("a", "ours", "backup"), med("a", "mariadb-dump / mariadb", "backup")),
                    2.0,
                ),
                Target(
                    "(a) backup, .zst: ours / mariadb-dump | zstd",
                    ratio(
                        med("a", "ours .zst", "backup"), med("a", "mariadb-dump | zstd", "backup")
                    ),
                    2.0,
                ),
                Target(
                    "(a) restore: ours / mariadb < dump.sql",
                    ratio(
                        med("a", "ours", "restore"), med("a", "mariadb-dump / mariadb", "restore")
                    ),
                    1.0,
                ),
            ]
        else:
            found += [
                Target(
                    "(a) backup: ours / pg_dump",
                    ratio(med("a", "ours", "backup"), med("a", "pg_dump / psql", "backup")),
                    2.5,
                ),
                Target(
                    "(a) restore: ours / psql < dump.sql",
                    ratio(med("a", "ours", "restore"), med("a", "pg_dump / psql", "restore")),
                    1.5,
                ),
            ]
    for what in ("backup", "restore"):
        if "b" in keys:
            peak_b = med("b", "ours", what, "peak_mb")
            found.append(Target(f"(b) {what}: our peak RSS", peak_b, 200, " MB"))
            if "a" in keys:
                found.append(
                    Target(
                        f"(b)/(a) {what}: our peak RSS",
                        ratio(peak_b, med("a", "ours", what, "peak_mb")),
                        1.2,
                    )
                )
                found.append(
                    Target(
                        f"(b)/(a) {what}: our time (linear scaling)",
                        ratio(med("b", "ours", what), med("a", "ours", what)),
                        2.2,
                    )
                )
        if "c" in keys and "a" in keys:
            per_c = ratio(med("c", "ours", what), keys["c"].rows)
            per_a = ratio(med("a", "ours", what), keys["a"].rows)
            found.append(Target(f"(c)/(a) {what}: our time per row", ratio(per_c, per_a), 3.0))
    return found


def tool_scaling(tools: list[Tool], cells: dict[tuple[str, str], Cell]) -> list[str]:
    """Every tool's (b)/(a) time, ours included: what the server's own scaling is on the
    day, next to the linear-scaling target."""
    lines = []
    for what in ("backup", "restore"):
        shown = []
        for tool in tools:
            a, b = cells.get(("a", tool.name)), cells.get(("b", tool.name))
            if a is None or b is None:
                continue
            ta, tb = _median(getattr(a, what), "seconds"), _median(getattr(b, what), "seconds")
            if ta and tb:
                shown.append(f"{tool.name} {tb / ta:.2f}x")
        if shown:
            lines.append(f"  (b)/(a) {what} time, every tool: {'; '.join(shown)}")
    return lines


def machine() -> str:
    cpu = ""
    with open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as info:
        mem_gb = int(info.readline().split()[1]) / 1024 / 1024
    return (
        f"{os.cpu_count()} CPU ({cpu}), {mem_gb:.0f} GB RAM, {platform.system()} "
        f"{platform.release()}, Python {platform.python_version()}"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows of (a); (b) is 2x")
    parser.add_argument("--runs", type=int, default=3, help="runs per figure (median)")
    parser.add_argument("--datasets", default="abcd", help="which of a, b, c, d (default all)")
    parser.add_argument("--tables", type=int, default=200, help="tables of (c)")
    parser.add_argument("--table-rows", type=int, default=1000, help="rows per table of (c)")
    parser.add_argument("--blob-rows", type=int, default=50_000, help="rows of (d)")
    parser.add_argument("--dialect", choices=sorted(SERVERS), action="append")
    parser.add_argument(
        "--only", choices=["tools", "rehearsal"], help="the tools' rows or the rehearsal row"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "bench" / "results.txt")
    args = parser.parse_args(argv)
    # Killed: still remove the work directory (dumps of up to a few GB).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sets = make_datasets(args)
    started = time.monotonic()
    report = [
        f"zenmigrate benchmark, {dt.datetime.now():%Y-%m-%d %H:%M}, {machine()}",
        f"python -m bench {' '.join(argv if argv is not None else sys.argv[1:])}".rstrip(),
        f"median of {args.runs} run(s); times are whole-process wall seconds, MB is peak RSS.",
        "",
    ]
    with tempfile.TemporaryDirectory(prefix="zm-bench-") as folder:
        for dialect in args.dialect or sorted(SERVERS):
            if args.only != "tools":
                row = rehearsal.run(
                    SERVERS[dialect],
                    TITLES[dialect],
                    args.rows,
                    args.runs,
                    functools.partial(settle, make_url(SERVERS[dialect])),
                    log,
                )
            if args.only == "rehearsal":
                report += [f"== {row.version} ==", *rehearsal.lines(row), ""]
                print("\n".join(report), flush=True)
                continue
            cells, tools, version = run_dialect(dialect, sets, args.runs, Path(folder))
            report += table(dialect, version, sets, tools, cells)
            startup = [
                s.seconds - s.inner
                for (_, name), cell in cells.items()
                if name == "ours"
                for s in cell.backup + cell.restore
                if s.inner is not None
            ]
            if startup:
                report.append(
                    f"  (our times include {statistics.median(startup):.1f}s of interpreter "
                    "start-up and imports)"
                )
            report.append("Targets (issue 7):")
            report += [t.line() for t in targets(dialect, sets, cells)]
            report += tool_scaling(tools, cells)
            if args.only != "tools":
                report += rehearsal.lines(row)
            report.append("")
            print("\n".join(report), flush=True)  # so far, in case a later dialect fails
    report.append(f"total benchmark time {time.monotonic() - started:.0f}s")
    print(report[-1])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(report) + "\n")
    log(f"written to {args.out}")


if __name__ == "__main__":
    main()
