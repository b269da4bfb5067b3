"""Where the time of each issue 27 target case goes: ``make profile`` (issue 27, point 4).

Usage: python -m bench.profile [--dialect mysql|postgresql] [--cases a,c,g,empty]
                               [--source CHECKOUT]... [--rows N] [--out FILE]

For each server and case (datasets (a), (c) and (g) of :mod:`bench.compare`, and an empty
database), the ``zenmigrate`` command a user runs (``backup -q``, then ``restore -q --yes DUMP URL``
into an empty database) runs once under pyinstrument (:mod:`bench.profiled`), and its time
is summarised: by group (imports by package, then ours by module, each library, waiting on
I/O) and by the functions with the most time of their own. Each ``--source`` (default: this
checkout) is profiled on the same generated data: another checkout's package (an earlier
commit, for "before") is imported instead of this one's, by the same interpreter and
libraries. Pyinstrument samples every 0.5 ms and
adds a few percent; the wall times here are for reading the shares, not for the targets
(those are ``make bench``'s).
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from sqlalchemy.engine import URL, make_url

from airflow_provider_zenmigrate.core.utils import MigrationUtils
from bench import compare, datasets
from bench.measure import log
from bench.throughput import ROOT

PROFILED = Path(__file__).with_name("profiled.py")
#: Groups shown per command: the largest, down to this share of its time.
SHOWN_SHARE = 0.03
FUNCTIONS_SHOWN = 6


def profile(source: Path, argv: list[str], workdir: Path) -> dict[str, Any]:
    """``zenmigrate ARGV`` from ``source``'s package under pyinstrument: the summary."""
    out = workdir / "profile.json"
    env = {**os.environ, "PYTHONPATH": str(source)}
    done = subprocess.run(
        [sys.executable, str(PROFILED), str(out), "airflow_provider_zenmigrate.cli", *argv],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"zenmigrate {' '.join(argv[:1])} failed: {done.stderr[-2000:]}")
    summary: dict[str, Any] = json.loads(out.read_text())
    return summary


def lines(title: str, summary: dict[str, Any]) -> list[str]:
    seconds = summary["seconds"]
    found = [f"{title}: {seconds:.2f} s under the profiler"]
    for group, spent in summary["groups"].items():
        if spent < SHOWN_SHARE * seconds:
            continue
        found.append(f"    {spent * 1000:7.0f} ms {spent / seconds:4.0%}  {group}")
    top = ", ".join(
        f"{name} {spent * 1000:.0f}" for name, spent in summary["functions"][:FUNCTIONS_SHOWN]
    )
    found.append(f"    own time (ms): {top}")
    return found


def _name(source: Path) -> str:
    """The checkout's commit (and "+" when it has changes), or its folder's name."""
    done = subprocess.run(
        ["git", "-C", str(source), "describe", "--always", "--dirty=+"],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip() or source.name


def _fresh(url: URL) -> None:
    utils = MigrationUtils(url=url, connect_args={}, engine_args={})
    utils.create_database(drop=True)
    utils.dispose()


def _drop(url: URL) -> None:
    utils = MigrationUtils(url=url, connect_args={}, engine_args={})
    utils.drop_database()
    utils.dispose()


def run_case(
    dialect: str, case: str, args: argparse.Namespace, workdir: Path
) -> tuple[list[str], dict[str, Any]]:
    server = make_url(compare.SERVERS[dialect])
    src = server._replace(database=f"zmprofile_src_{case}")
    dst = server._replace(database="zmprofile_dst")
    _fresh(src)
    if case != "empty":
        # (d)'s size is asked for by make_datasets although (d) is never profiled.
        sizes = {"rows": args.rows, "tables": args.tables, "table_rows": args.table_rows}
        wanted = argparse.Namespace(**sizes, blob_rows=0, datasets=case)
        (dataset,) = compare.make_datasets(wanted)
        log(f"{compare.TITLES[dialect]}: generating {dataset.title}")
        utils = MigrationUtils(url=src, connect_args={}, engine_args={})
        dataset.create(utils.engine)
        datasets.steady(utils.engine)
        utils.dispose()
    dump = workdir / f"{case}.jsonl"
    shown = {u: u.render_as_string(hide_password=False) for u in (src, dst)}
    title = f"{compare.TITLES[dialect]} {'empty database' if case == 'empty' else f'({case})'}"
    found: list[str] = []
    raw: dict[str, Any] = {}
    try:
        for source in args.source:
            name = _name(source)
            backup = profile(source, ["backup", "-q", shown[src], str(dump)], workdir)
            raw[f"{name} backup"] = backup
            found += lines(f"{title} backup, {name}", backup)
            if case != "empty":
                _fresh(dst)
                argv = ["restore", "-q", "--yes", str(dump), shown[dst]]
                restore = raw[f"{name} restore"] = profile(source, argv, workdir)
                found += lines(f"{title} restore, {name}", restore)
            dump.unlink(missing_ok=True)
    finally:
        dump.unlink(missing_ok=True)
        _drop(src)
        _drop(dst)
    return found, raw


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    parser.add_argument("--dialect", choices=sorted(compare.SERVERS), action="append")
    parser.add_argument("--cases", default="a,c,g,empty", help="of a, c, g, empty")
    parser.add_argument(
        "--source", type=Path, action="append", help="a checkout profiled (repeatable)"
    )
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows of (a)")
    parser.add_argument("--tables", type=int, default=200, help="tables of (c)")
    parser.add_argument("--table-rows", type=int, default=1000, help="rows per table of (c)")
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "bench" / "profile.txt")
    args = parser.parse_args(argv)
    args.source = [path.resolve() for path in args.source or [ROOT]]
    for source in args.source:  # as the bench does: a wheel's modules are compiled
        compileall.compile_dir(str(source / "airflow_provider_zenmigrate"), quiet=1)
    report = [f"python -m bench.profile {' '.join(argv or sys.argv[1:])}".rstrip()]
    every: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="zm-profile-") as folder:
        for dialect in args.dialect or sorted(compare.SERVERS):
            for case in args.cases.split(","):
                found, raw = run_case(dialect, case, args, Path(folder))
                every[f"{dialect} {case}"] = raw
                print("\n".join(found), flush=True)
                report += found
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(report) + "\n")
    args.out.with_suffix(".json").write_text(json.dumps(every, indent=1))
    log(f"written to {args.out} and {args.out.with_suffix('.json')}")


if __name__ == "__main__":
    main()
