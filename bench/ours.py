"""Our backup or restore in a fresh interpreter, for timing and peak memory from outside.

Usage: python -m bench.ours backup|restore URL DUMP [--jobs N] [--key-env NAME]

Prints one JSON line: ``seconds`` (the call alone, without interpreter start-up), ``peak_mb``
(VmHWM of this whole process) and ``growth_mb`` (VmHWM counted from just before the call,
after writing "5" to /proc/self/clear_refs). A fresh process, not a fork: ``ru_maxrss`` of a
forked child starts from its parent's, VmHWM of a new program does not. With ``--jobs N``
(N > 1, a multi-part dump) it adds what the call reports of it: ``worker_peak_mb`` (the
largest VmHWM of one worker process, which this process's own does not include), ``parts``
and, for a restore, ``resumed_parts`` (loaded by an earlier, interrupted attempt). With
``--key-env NAME`` the dump is encrypted (backup) or read (restore) with the base64 key in
that environment variable (the "ours encrypted" rows).
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from sqlalchemy.engine import make_url

from airflow_provider_zenmigrate.core.crypto import Encryption, LocalKey
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


def run(
    action: str, url: str, dump: str, jobs: int = 1, key_env: str | None = None
) -> dict[str, Any]:
    mu = MigrationUtils(url=make_url(url), connect_args={}, engine_args={})
    if key_env:
        mu.encryption = Encryption(LocalKey.from_env(key_env))
    with mu.engine.connect() as conn:
        conn.exec_driver_sql("SELECT 1")
    # jobs=1 calls exactly as before the parallel dumps existed (and still works on that code).
    options: dict[str, Any] = {"jobs": jobs} if jobs != 1 else {}
    before = reset_peak()
    base = status_mb("VmRSS")
    start = time.perf_counter()
    found: dict[str, Any] = {}
    if action == "backup":
        result = mu.backup_database_to_file(dump, **options)
        found = {k: result.extra[k] for k in ("worker_peak_mb", "parts") if k in result.extra}
    elif action == "restore":
        summary = mu.restore_database_from_file(dump, **options)
        worker = getattr(summary, "worker_peak_mb", None)
        found = {"worker_peak_mb": worker} if worker else {}
        if getattr(summary, "parts", 0):
            found |= {"parts": summary.parts, "resumed_parts": summary.resumed_parts}
    else:
        raise SystemExit(f"unknown action {action!r}")
    seconds = time.perf_counter() - start
    peak = status_mb("VmHWM")
    mu.dispose()
    return {"seconds": seconds, "peak_mb": max(before, peak), "growth_mb": peak - base, **found}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.ours", description=__doc__)
    parser.add_argument("action", choices=["backup", "restore"])
    parser.add_argument("url")
    parser.add_argument("dump")
    parser.add_argument("--jobs", type=int, default=1, help="worker processes (default 1)")
    parser.add_argument("--key-env", help="encrypt / decrypt with the base64 key in this variable")
    args = parser.parse_args()
    print(json.dumps(run(args.action, args.url, args.dump, args.jobs, args.key_env)), flush=True)
