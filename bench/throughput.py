"""Rows per second and peak memory of our backup and restore of dataset (a) (1M mixed rows).

Usage: python -m bench.throughput [--rows N] [--dialect mysql|postgresql]

A quick look at our side alone; ``python -m bench`` compares with the standard tools.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from sqlalchemy.engine import URL, make_url

from airflow_provider_zenmigrate.core.utils import MigrationUtils
from bench.datasets import create_mixed

SERVERS = {
    "mysql": "mysql+pymysql://root@127.0.0.1:3306/zm_bench_src",
    "postgresql": "postgresql+psycopg://postgres@127.0.0.1:5432/zm_bench_src",
}
ROOT = Path(__file__).resolve().parent.parent


def ours_command(
    action: str, url: URL, dump: str, jobs: int = 1, key_env: str | None = None
) -> list[str]:
    """The command line of one backup or restore by :mod:`bench.ours` (encrypted with the
    key in environment variable ``key_env`` when given)."""
    return [
        sys.executable,
        "-m",
        "bench.ours",
        action,
        url.render_as_string(hide_password=False),
        dump,
        *(["--jobs", str(jobs)] if jobs != 1 else []),
        *(["--key-env", key_env] if key_env else []),
    ]


def cli_command(
    action: str, url: URL, dump: str, jobs: int = 1, key_env: str | None = None
) -> list[str]:
    """The ``zenmigrate`` command a user runs for one backup or restore, printing its result
    as JSON (``duration`` / ``seconds``: the call alone, without start-up)."""
    shown = url.render_as_string(hide_password=False)
    where = [shown, dump] if action == "backup" else ["--yes", dump, shown]
    return [
        str(Path(sys.executable).with_name("zenmigrate")),
        action,
        "-q",
        "--json",
        *where,
        *(["--jobs", str(jobs)] if jobs != 1 else []),
        *(["--key-env", key_env] if key_env else []),
    ]


def child_env() -> dict[str, str]:
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{path}" if path else str(ROOT)}


def measure(action: str, url: URL, dump: str) -> tuple[float, float, float]:
    """(seconds, peak MB, MB grown during the call) of one run in a fresh interpreter."""
    out = subprocess.run(
        ours_command(action, url, dump),
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=child_env(),
    ).stdout
    result = json.loads(out.strip().splitlines()[-1])
    return result["seconds"], result["peak_mb"], result["growth_mb"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--dialect", choices=sorted(SERVERS), action="append")
    args = parser.parse_args()
    for dialect in args.dialect or sorted(SERVERS):
        src = MigrationUtils(url=make_url(SERVERS[dialect]), connect_args={}, engine_args={})
        src.create_database(drop=True)
        create_mixed(src.engine, args.rows)
        dst_url = src.url._replace(database="zm_bench_dst")
        dst = MigrationUtils(url=dst_url, connect_args={}, engine_args={})
        dst.create_database(drop=True)
        with tempfile.TemporaryDirectory() as folder:
            for suffix in (".jsonl", ".jsonl.zst"):
                dump = str(Path(folder) / f"dump{suffix}")
                b_s, b_peak, b_growth = measure("backup", src.url, dump)
                size = Path(dump).stat().st_size / 1e6
                r_s, r_peak, r_growth = measure("restore", dst_url, dump)
                print(
                    f"{dialect:10} {suffix:10} rows={args.rows} dump={size:.0f}MB "
                    f"backup {b_s:.1f}s ({args.rows / b_s:,.0f} rows/s, peak {b_peak:.0f}MB, "
                    f"+{b_growth:.0f}MB) restore {r_s:.1f}s ({args.rows / r_s:,.0f} rows/s, "
                    f"peak {r_peak:.0f}MB, +{r_growth:.0f}MB)",
                    flush=True,
                )
        dst.drop_database()
        src.drop_database()
        src.dispose()
        dst.dispose()


if __name__ == "__main__":
    main()
