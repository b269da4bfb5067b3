"""Our backup and restore side by side with the standard tools, on MariaDB and PostgreSQL.

Usage: python -m bench [--rows N] [--runs N] [--datasets abcdef] [--dialect mysql|postgresql]
                       [--only tools|parallel|rehearsal] [--jobs N]

For each dataset (see :mod:`bench.datasets`) and each tool, every run times a backup and a
restore into an empty database, then checks the restored tables against the source
(``CHECKSUM TABLE`` / ordered md5), so a fast wrong answer cannot win. Every figure is the
median of ``--runs`` runs. Each dataset has its own source database, generated once, and
every run goes through all datasets and all tools in turn, so that a ratio (ours / tool,
(b) / (a)) compares figures taken minutes apart, not one taken before a slow spell of the
machine with one taken during it; each run starts a dataset with a different tool. Every
command starts on a settled server and disk (:func:`settle`). Ours is the ``zenmigrate``
command a user runs. Times are whole-process wall times (our interpreter's start-up
included); peak RSS is ``ru_maxrss`` of the command (through ``/usr/bin/time``; for a
pipeline, its largest process), never of a fork of this process.
Every command's CPU time is counted too, the client's and the server's (:mod:`bench.measure`),
and printed per GB of the source's table data.
The tables and the issue's targets (PASS/MISS) go to stdout and ``build/bench/results.txt``.
Each server gets three parts, each timed: the rehearsal row (:mod:`bench.rehearsal`, on (a)),
the tools on (a)-(d), and the parallel rows on (e) and (f) with the resumed restore
(:mod:`bench.parallel`); ``--only`` runs one of them.
"""

from __future__ import annotations

import argparse
import base64
import compileall
import datetime as dt
import functools
import os
import platform
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.engine import URL, Engine, make_url

from airflow_provider_zenmigrate.core.utils import MigrationUtils
from bench import airflow_db, datasets, parallel, rehearsal, startup
from bench import targets as goals
from bench.measure import (
    SERVER_PROCESSES,
    Cell,
    Command,
    become_subreaper,
    fingerprint,
    fmt,
    log,
    median,
    remove,
    settle,
    size_of,
    timed,
)
from bench.throughput import ROOT, cli_command

SERVERS = {
    "mysql": "mysql+pymysql://root@127.0.0.1:3306/",
    "postgresql": "postgresql+psycopg://postgres@127.0.0.1:5432/",
}
TITLES = {"mysql": "MariaDB", "postgresql": "PostgreSQL"}
SRC, DST = "zmbench_src_{key}", "zmbench_dst"  # a source database per dataset
SINGLE, PARALLEL = "abcdg", "ef"  # the datasets of the tools' part and of the parallel part


# -- the tools ----------------------------------------------------------------------------------
@dataclass
class Tool:
    name: str
    output: str  # file or directory name in the work directory
    backup: Callable[[Path], Command]
    restore: Callable[[Path], Command] | None = None
    zst: bool = False  # compared with the other compressed tool
    ours: bool = False
    only: str = SINGLE  # the datasets it runs on (the .zst targets are on (a) alone)
    jobs: int = 1  # ours: worker processes (a multi-part dump when more than one)


def _ours(
    name: str,
    output: str,
    src: URL,
    dst: URL,
    restore: bool,
    zst: bool,
    jobs: int = 1,
    only: str | None = None,
    key_env: str | None = None,
) -> Tool:
    return Tool(
        name,
        output,
        lambda out: Command(cli_command("backup", src, str(out), jobs, key_env)),
        (lambda out: Command(cli_command("restore", dst, str(out), jobs, key_env)))
        if restore
        else None,
        zst=zst,
        ours=True,
        only=only or ("a" if zst else SINGLE + PARALLEL),
        jobs=jobs,
    )


#: The variable the "ours encrypted" runs read their key from: a random key of this run.
BENCH_KEY_ENV = "ZENMIGRATE_BENCH_KEY"


ENCRYPTED = goals.ENCRYPTED


def ours_encrypted(src: URL, dst: URL) -> Tool:
    """Ours in one stream, encrypted and authenticated (local key), on dataset (a): its
    times over plain ours are the cost of encryption (issue 26: at most 10%)."""
    os.environ.setdefault(BENCH_KEY_ENV, base64.b64encode(os.urandom(32)).decode())
    return _ours(
        ENCRYPTED, "ours-enc.jsonl", src, dst, True, False, only="a", key_env=BENCH_KEY_ENV
    )


def ours_parallel(src: URL, dst: URL, jobs: int) -> Tool:
    """Ours with ``jobs`` worker processes, on the parallel part's datasets."""
    return _ours(f"ours -j{jobs}", f"ours-j{jobs}.jsonl", src, dst, True, False, jobs, PARALLEL)


def mysql_tools(src: URL, dst: URL, jobs: int) -> list[Tool]:
    conn = ["-h", "127.0.0.1", "-P", "3306", "-u", "root"]
    source, target = str(src.database), str(dst.database)
    dump = ["mariadb-dump", *conn, "--single-transaction", source]
    mydump = ["mydumper", *conn, "-B", source, "-t", "2", "--trx-consistency-only"]
    return [
        _ours("ours", "ours.jsonl", src, dst, restore=True, zst=False),
        _ours("ours .zst", "ours.jsonl.zst", src, dst, restore=False, zst=True),
        ours_encrypted(src, dst),
        ours_parallel(src, dst, jobs),
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
            only=SINGLE + PARALLEL,
        ),
    ]


def postgresql_tools(src: URL, dst: URL, jobs: int) -> list[Tool]:
    conn = ["-h", "127.0.0.1", "-p", "5432", "-U", "postgres"]
    source, target = str(src.database), str(dst.database)
    return [
        _ours("ours", "ours.jsonl", src, dst, restore=True, zst=False),
        _ours("ours .zst", "ours.jsonl.zst", src, dst, restore=False, zst=True),
        ours_encrypted(src, dst),
        ours_parallel(src, dst, jobs),
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
            only=SINGLE + PARALLEL,
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
        # Issue 24's: one table of 10x (a)'s rows, and 50 tables of a tenth of them each.
        Dataset(
            "e",
            f"(e) mixed, {10 * args.rows:,} rows, one table",
            10 * args.rows,
            lambda e: datasets.create_mixed(e, 10 * args.rows),
        ),
        Dataset(
            "f",
            f"(f) 50 tables x {args.rows // 10:,} rows of (a)'s shape",
            50 * (args.rows // 10),
            lambda e: datasets.create_wide(e, 50, args.rows // 10),
        ),
        # Issue 27's: a real application's database (bench/airflow_db.py); rows as it comes.
        Dataset(
            "g",
            "(g) Airflow's metadata database after 3 example DAG runs",
            0,
            airflow_db.create_airflow_metadata,
        ),
    ]
    return [d for d in every if d.key in args.datasets]


# -- one dialect ----------------------------------------------------------------------------------
@dataclass
class _Source:
    """One dataset's source database, its checksums and the tools (all of them) that dump it."""

    utils: MigrationUtils
    expected: dict[str, str]
    tools: list[Tool]
    data_bytes: int  # the tables' data as the server counts it (datasets.data_bytes)


def _generate(dialect: str, ds: Dataset, dst_url: URL, jobs: int) -> _Source:
    log(f"{TITLES[dialect]}: generating {ds.title}")
    started = time.monotonic()
    url = make_url(SERVERS[dialect])._replace(database=SRC.format(key=ds.key))
    src = MigrationUtils(url=url, connect_args={}, engine_args={})
    src.create_database(drop=True)
    ds.create(src.engine)
    datasets.steady(src.engine)
    data = datasets.data_bytes(src.engine)
    src.dispose()
    make_tools = mysql_tools if dialect == "mysql" else postgresql_tools
    log(f"{TITLES[dialect]}: {ds.key} generated in {time.monotonic() - started:.0f}s")
    return _Source(src, fingerprint(src.url), make_tools(src.url, dst_url, jobs), data)


def _time_tool(
    tool: Tool, src: _Source, dst: MigrationUtils, cell: Cell, workdir: Path, dialect: str
) -> str:
    """One backup (and restore, checked) by ``tool``; the log line's figures. Another tool
    that fails (myloader on (g), say) is recorded as failed and skipped from then on; ours
    failing stops the benchmark."""
    if cell.failed:
        return f"skipped: failed before ({cell.failed})"
    try:
        return _run_tool(tool, src, dst, cell, workdir, dialect)
    except RuntimeError as exc:
        if tool.ours:
            raise
        cell.failed = str(exc).splitlines()[0][:60] + " ..."
        remove(workdir / tool.output)
        return f"FAILED: {exc}"


def _run_tool(
    tool: Tool, src: _Source, dst: MigrationUtils, cell: Cell, workdir: Path, dialect: str
) -> str:
    out = workdir / tool.output
    server = SERVER_PROCESSES[dialect]
    remove(out)
    settle(src.utils.url)
    sample = timed(tool.backup(out), workdir, server)
    cell.backup.append(sample)
    cell.size = cell.size or size_of(out)
    line = f"backup {sample.seconds:.1f}s {sample.peak_mb:.0f}MB"
    if tool.restore is not None:
        dst.create_database(drop=True)
        dst.dispose()
        settle(src.utils.url)
        sample = timed(tool.restore(out), workdir, server)
        cell.restore.append(sample)
        ok = fingerprint(dst.url) == src.expected
        # Gone before the next command: PostgreSQL's autovacuum would otherwise read the
        # restored tables while that command runs.
        dst.drop_database()
        cell.wrong += not ok
        line += f", restore {sample.seconds:.1f}s {sample.peak_mb:.0f}MB"
        line += "" if ok else " CHECKSUM MISMATCH"
    remove(out)
    return line


@dataclass
class DialectRun:
    """One part's measurements on one server."""

    cells: dict[tuple[str, str], Cell]
    tools: list[Tool]
    version: str
    data_bytes: dict[str, int]  # per dataset
    missing: dict[str, str] = field(default_factory=dict)  # tool: why it was not run
    resume: parallel.Resume | None = None


After = Callable[[dict[str, _Source], MigrationUtils, DialectRun, Path], None]


def run_dialect(
    dialect: str,
    sets: list[Dataset],
    runs: int,
    workdir: Path,
    jobs: int = 2,
    after: After | None = None,
) -> DialectRun:
    """Every run of every tool on ``sets``; ``after`` runs with the sources still there."""
    dst_url = make_url(SERVERS[dialect])._replace(database=DST)
    dst = MigrationUtils(url=dst_url, connect_args={}, engine_args={})
    sources: dict[str, _Source] = {}
    cells: dict[tuple[str, str], Cell] = {}
    try:
        for ds in sets:
            sources[ds.key] = _generate(dialect, ds, dst_url, jobs)
        version = datasets.server_version(dst.master_engine)
        tools = next(iter(sources.values())).tools
        missing = {t.name: why for t in tools if (why := unavailable(t))}
        for name, why in missing.items():
            log(f"{TITLES[dialect]}: MISSING TOOL {name}: {why}; its rows are not measured")
        for run in range(runs):
            for ds in sets:
                src = sources[ds.key]
                # Each run starts with another tool: the first command after the last
                # dataset's was seen up to 3x slower (PostgreSQL, ours 4.0 / 7.8 / 11.7 s
                # when it always came first), whichever tool it was.
                these = [t for t in src.tools if ds.key in t.only and t.name not in missing]
                turn = run % len(these)
                for tool in these[turn:] + these[:turn]:
                    cell = cells.setdefault((ds.key, tool.name), Cell())
                    line = _time_tool(tool, src, dst, cell, workdir, dialect)
                    log(f"{TITLES[dialect]} {ds.key} run {run + 1}: {tool.name}: {line}")
        result = DialectRun(
            cells,
            tools,
            version,
            {key: source.data_bytes for key, source in sources.items()},
            missing,
        )
        if after is not None:
            after(sources, dst, result, workdir)
    finally:
        for mu in (*(s.utils for s in sources.values()), dst):
            mu.drop_database()
            mu.dispose()
    return result


# -- reporting ----------------------------------------------------------------------------------
def _baseline(tools: list[Tool], key: str, zst: bool) -> Tool | None:
    """Our tool the others are compared with on dataset ``key``: the one with the most jobs."""
    mine = [t for t in tools if t.ours and t.zst == zst and key in t.only and t.name != ENCRYPTED]
    return max(mine, key=lambda t: t.jobs) if mine else None


def table(
    version: str,
    sets: list[Dataset],
    tools: list[Tool],
    cells: dict[tuple[str, str], Cell],
    missing: dict[str, str],
) -> list[str]:
    head = (
        f"{'tool':34} {'backup s':>9} {'MB':>6} {'restore s':>10} {'MB':>6} {'size MB':>8} "
        f"{'ours/tool: backup':>18} {'restore':>8}  check"
    )
    lines = [f"== {version} ==", head, "-" * len(head)]
    for ds in sets:
        lines.append(ds.title)
        for tool in (t for t in tools if ds.key in t.only):
            if tool.name in missing:
                lines.append(f"  {tool.name:32} not measured: {missing[tool.name]}")
                continue
            cell = cells[(ds.key, tool.name)]
            b, r = median(cell.backup, "seconds"), median(cell.restore, "seconds")
            ratio_b = ratio_r = ""
            mine = _baseline(tools, ds.key, tool.zst)
            if not tool.ours and mine is not None:
                ob = median(cells[(ds.key, mine.name)].backup, "seconds")
                orr = median(cells[(ds.key, mine.name)].restore, "seconds")
                ratio_b = f"{ob / b:.2f}x" if ob and b else ""
                ratio_r = f"{orr / r:.2f}x" if orr and r else ""
            check = "-" if tool.restore is None else ("WRONG" if cell.wrong else "ok")
            check = f"FAILED: {cell.failed}" if cell.failed else check
            lines.append(
                f"  {tool.name:32} {fmt(b):>9} {fmt(median(cell.backup, 'peak_mb'), '.0f'):>6} "
                f"{fmt(r):>10} {fmt(median(cell.restore, 'peak_mb'), '.0f'):>6} "
                f"{cell.size / 1e6:>8.0f} {ratio_b:>18} {ratio_r:>8}  {check}"
            )
        lines += _jobs_lines(ds, tools, cells)
    return lines


def _jobs_lines(ds: Dataset, tools: list[Tool], cells: dict[tuple[str, str], Cell]) -> list[str]:
    """For a ``-jN`` tool: its time over ours in one stream, its workers' peak RSS."""
    single = cells.get((ds.key, "ours"))
    lines = []
    for tool in (t for t in tools if t.ours and t.jobs > 1 and ds.key in t.only):
        cell = cells.get((ds.key, tool.name))
        if cell is None or single is None:
            continue
        shown = []
        for what in ("backup", "restore"):
            mine = median(getattr(cell, what), "seconds")
            one = median(getattr(single, what), "seconds")
            worker = median(getattr(cell, what), "worker_mb")
            if mine and one:
                shown.append(f"{what} {mine / one:.2f}x (largest worker {fmt(worker, '.0f')} MB)")
        lines.append(f"  ({tool.name} / ours: {'; '.join(shown)})")
    return lines


def unavailable(tool: Tool) -> str | None:
    """Why ``tool`` cannot run here (a program not installed), or None."""
    commands = [tool.backup(Path("x"))] + ([tool.restore(Path("x"))] if tool.restore else [])
    programs = [c.argv[0] for c in commands if c.argv[0] != "bash"]
    programs += [w for w in ("mariadb-dump", "zstd") if tool.name == "mariadb-dump | zstd"]
    gone = [p for p in programs if shutil.which(p) is None]
    return f"{', '.join(gone)} not installed" if gone else None


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


def _resume_after(dialect: str, jobs: int) -> After:
    """The resumed restore of (e), run while (e)'s source still exists."""

    def after(
        sources: dict[str, _Source], dst: MigrationUtils, run: DialectRun, work: Path
    ) -> None:
        tool = next(
            (t for t in run.tools if t.ours and t.jobs == jobs and t.only == PARALLEL), None
        )
        cell = run.cells.get(("e", tool.name)) if tool else None
        full = median(cell.restore, "seconds") if cell else None
        if tool is None or tool.restore is None or full is None or "e" not in sources:
            return
        log(f"{TITLES[dialect]}: resumed restore of (e) by {tool.name}")
        src, out = sources["e"], work / tool.output
        run.resume = parallel.measure_resume(
            tool.backup(out),
            tool.restore(out),
            src.utils.url,
            src.expected,
            dst,
            full,
            SERVER_PROCESSES[dialect],
            work,
            out,
        )
        log(f"{TITLES[dialect]}: {run.resume.lines()[0].strip()}")

    return after


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--rows", type=int, default=1_000_000, help="rows of (a); (b) is 2x, (e) 10x, (f) 50 x 1/10"
    )
    parser.add_argument("--runs", type=int, default=3, help="runs per figure (median)")
    parser.add_argument("--datasets", default="abcdefg", help="which of a-g (default all)")
    parser.add_argument("--tables", type=int, default=200, help="tables of (c)")
    parser.add_argument("--table-rows", type=int, default=1000, help="rows per table of (c)")
    parser.add_argument("--blob-rows", type=int, default=50_000, help="rows of (d)")
    parser.add_argument("--dialect", choices=sorted(SERVERS), action="append")
    parser.add_argument(
        "--only",
        choices=["tools", "parallel", "rehearsal"],
        help="one part: the tools on (a)-(d), the parallel rows on (e)-(f), or the rehearsal row",
    )
    parser.add_argument(
        "--jobs", type=int, default=2, help="our worker processes in the parallel part (-jN)"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "bench" / "results.txt")
    args = parser.parse_args(argv)
    # A wheel's modules are compiled when pip installs it; an editable checkout run with
    # PYTHONDONTWRITEBYTECODE=1 (as on our machines) would compile ours on every command,
    # 20 ms of --version and more of a backup that no user pays: compile them once here.
    compileall.compile_dir(str(ROOT / "airflow_provider_zenmigrate"), quiet=1)
    # Killed: still remove the work directory (dumps of up to a few GB).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    subreaper = become_subreaper()
    sets = make_datasets(args)
    single = [d for d in sets if d.key in SINGLE]
    wide = [d for d in sets if d.key in PARALLEL]
    started = time.monotonic()
    report = [
        f"zenmigrate benchmark, {dt.datetime.now():%Y-%m-%d %H:%M}, {machine()}",
        f"python -m bench {' '.join(argv if argv is not None else sys.argv[1:])}".rstrip(),
        f"median of {args.runs} run(s); times are whole-process wall seconds, MB is peak RSS.",
        "" if subreaper else "(not a child subreaper: orphaned processes' CPU is not counted)",
    ]
    with tempfile.TemporaryDirectory(prefix="zm-bench-") as folder:
        versioned = False  # `zenmigrate --version` is measured once, with the first server
        for dialect in args.dialect or sorted(SERVERS):
            took: dict[str, float] = {}
            rehearsed: list[str] = []
            if args.only in (None, "rehearsal"):
                begun = time.monotonic()
                row = rehearsal.run(
                    SERVERS[dialect],
                    TITLES[dialect],
                    args.rows,
                    args.runs,
                    functools.partial(settle, make_url(SERVERS[dialect])),
                    log,
                )
                rehearsed = rehearsal.lines(row)
                took["rehearsal"] = time.monotonic() - begun
                if args.only == "rehearsal" or not single:
                    report += [f"== {row.version} ==", *rehearsed]
            if args.only in (None, "tools") and single:
                begun = time.monotonic()
                run = run_dialect(dialect, single, args.runs, Path(folder), args.jobs)
                report += table(run.version, single, run.tools, run.cells, run.missing)
                rows = {d.key: d.rows for d in single}
                report += goals.startup_share(run.cells)
                report.append("Targets (issue 7):")
                report += [t.line() for t in goals.first_round(dialect, rows, run.cells)]
                report.append("Targets (issue 27):")
                report += [t.line() for t in goals.second_round(dialect, rows, run.cells)]
                report += goals.per_table(rows, args.tables, run.cells, [t.name for t in run.tools])
                report += goals.tool_scaling([t.name for t in run.tools], run.cells)
                empty = make_url(SERVERS[dialect])._replace(database="zmbench_empty")
                report += startup.lines(empty, TITLES[dialect], with_version=not versioned)
                if not versioned:
                    report += startup.sqlite_lines()
                versioned = True
                report += rehearsed
                report += parallel.cpu_table(single, run.tools, run.cells, run.data_bytes)
                took["tools (a)-(d)"] = time.monotonic() - begun
            if args.only in (None, "parallel") and wide:
                begun = time.monotonic()
                after = _resume_after(dialect, args.jobs) if "e" in args.datasets else None
                run = run_dialect(dialect, wide, args.runs, Path(folder), args.jobs, after)
                report += table(run.version, wide, run.tools, run.cells, run.missing)
                report.append("Targets (issue 24):")
                keys = [d.key for d in wide]
                ours = f"ours -j{args.jobs}"
                report += [
                    t.line() for t in parallel.targets(dialect, keys, ours, run.cells, run.resume)
                ]
                report += run.resume.lines() if run.resume else []
                report += parallel.cpu_table(wide, run.tools, run.cells, run.data_bytes)
                took["parallel (e)-(f)"] = time.monotonic() - begun
            report.append(
                f"{TITLES[dialect]} took "
                + ", ".join(f"{part} {seconds:.0f}s" for part, seconds in took.items())
            )
            report.append("")
            print("\n".join(report), flush=True)  # so far, in case a later dialect fails
    report.append(f"total benchmark time {time.monotonic() - started:.0f}s")
    print(report[-1])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(report) + "\n")
    log(f"written to {args.out}")


if __name__ == "__main__":
    main()
