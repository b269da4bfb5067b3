"""Our backup or restore in a fresh interpreter, for timing and peak memory from outside.

Usage: python -m bench.ours backup|restore URL DUMP

Prints one JSON line: ``seconds`` (the call alone, without interpreter start-up), ``peak_mb``
(VmHWM of this whole process) and ``growth_mb`` (VmHWM counted from just before the call,
after writing "5" to /proc/self/clear_refs). A fresh process, not a fork: ``ru_maxrss`` of a
forked child starts from its parent's, VmHWM of a new program does not.
"""

from __future__ import annotations

import json
import sys
import time

from sqlalchemy.engine import make_url

from airflow_provider_zenmigrate.core.utils import MigrationUtils


def status_mb(field: str) -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return 0.0


def reset_peak() -> float:
    """Restart VmHWM from the current RSS; returns the peak so far."""
    peak = status_mb("VmHWM")
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")
    return peak


def run(action: str, url: str, dump: str) -> dict[str, float]:
    mu = MigrationUtils(url=make_url(url), connect_args={}, engine_args={})
    with mu.engine.connect() as conn:
        conn.exec_driver_sql("SELECT 1")
    before = reset_peak()
    base = status_mb("VmRSS")
    start = time.perf_counter()
    if action == "backup":
        mu.backup_database_to_file(dump)
    elif action == "restore":
        mu.restore_database_from_file(dump)
    else:
        raise SystemExit(f"unknown action {action!r}")
    seconds = time.perf_counter() - start
    peak = status_mb("VmHWM")
    mu.dispose()
    return {"seconds": seconds, "peak_mb": max(before, peak), "growth_mb": peak - base}


if __name__ == "__main__":
    if len(sys.argv) != 4:
        raise SystemExit(__doc__)
    print(json.dumps(run(*sys.argv[1:])), flush=True)
