"""Rows per second and peak memory of our backup and restore of dataset (a) (1M mixed rows).

Usage: python -m bench.throughput [--rows N] [--dialect mysql|postgresql]
"""

from __future__ import annotations

import argparse
import multiprocessing
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy.engine import URL, make_url

from airflow_provider_zenmigrate.core.utils import MigrationUtils
from bench.datasets import create_mixed

SERVERS = {
    "mysql": "mysql+pymysql://root@127.0.0.1:3306/zm_bench_src",
    "postgresql": "postgresql+psycopg://postgres@127.0.0.1:5432/zm_bench_src",
}


def _status_mb(field: str) -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return 0.0


def _rss_now() -> float:
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")  # VmHWM restarts from here (ru_maxrss would be the parent's)
    return _status_mb("VmRSS")


def _child(action: str, url: str, dump: str, queue: Any) -> None:
    mu = MigrationUtils(url=make_url(url), connect_args={}, engine_args={})
    with mu.engine.connect() as conn:
        conn.exec_driver_sql("SELECT 1")
    base = _rss_now()
    start = time.perf_counter()
    if action == "backup":
        mu.backup_database_to_file(dump)
    else:
        mu.restore_database_from_file(dump)
    seconds = time.perf_counter() - start
    peak = _status_mb("VmHWM")
    queue.put((seconds, peak, peak - base))


def measure(action: str, url: URL, dump: str) -> tuple[float, float, float]:
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(
        target=_child, args=(action, url.render_as_string(hide_password=False), dump, queue)
    )
    proc.start()
    result = queue.get()
    proc.join()
    return result


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
