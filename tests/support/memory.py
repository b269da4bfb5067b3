"""Peak memory of a backup or restore, measured in a fresh process.

A spawned child inherits its parent's ``ru_maxrss`` across exec, so the peak is read from
``VmHWM``, reset to the current RSS right before the work starts.
"""

from __future__ import annotations

import multiprocessing
import time
from typing import Any

from sqlalchemy.engine import make_url

from airflow_provider_zenmigrate.core.utils import MigrationUtils

#: How much a backup or restore of a large table may grow the peak RSS, in MB: memory must
#: follow the chunk size, not the table.
MAX_GROWTH_MB = 150
#: SQL that fills a table ``big (id, payload)`` with ``{n}`` rows of about 1 KiB, per dialect.
FILL_BIG = {
    "sqlite": "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < {n}) "
    "INSERT INTO big (id, payload) SELECT i, hex(randomblob(512)) FROM s",
    "mysql": "INSERT INTO big (id, payload) SELECT seq, REPEAT(MD5(seq), 32) FROM seq_1_to_{n}",
    "postgresql": "INSERT INTO big (id, payload) "
    "SELECT i, repeat(md5(i::text), 32) FROM generate_series(1, {n}) i",
}


def _status_mb(field: str) -> float:
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith(field + ":"))
    return int(line.split()[1]) / 1024


def _measure(action: str, url: str, uri: str, queue: Any) -> None:
    mu = MigrationUtils(url=make_url(url), connect_args={}, engine_args={})
    with mu.engine.connect() as conn:  # imports, dialect and pool warmed up before measuring
        conn.exec_driver_sql("SELECT 1")
    import azure.storage.blob, boto3, google.cloud.storage  # noqa: E401, F401, I001 - warm up

    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")  # VmHWM restarts from the current RSS
    before = _status_mb("VmRSS")
    started = time.monotonic()
    if action == "backup":
        mu.backup_database_to_file(uri)
    else:
        mu.restore_database_from_file(uri)
    queue.put((_status_mb("VmHWM") - before, time.monotonic() - started, before))
    mu.dispose()


def measure_in_child(action: str, url: str, uri: str) -> tuple[float, float, float]:
    """(+MB peak RSS, seconds, MB RSS before) of ``backup`` or ``restore`` in a new process."""
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    child = ctx.Process(target=_measure, args=(action, url, uri, queue))
    child.start()
    try:
        result: tuple[float, float, float] = queue.get(timeout=600)
    finally:
        child.join(timeout=60)
    assert child.exitcode == 0
    return result
