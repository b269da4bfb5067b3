"""Helpers for the outage tests: paused child processes, server sessions, a private moto
server and a small filesystem.

A fault has to strike while the work is really in progress, never after a guessed sleep.
So the backup or restore runs in a child process that stops at a chosen point (a callback or
a wrapped function, which is how a child may choose its moment), prints ``paused`` and waits
for a line on stdin. The test then breaks something real (kills the database session
server-side, kills the object-store server) and lets the child go on into the broken world.
"""

from __future__ import annotations

import json
import os
import queue
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy
from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.pool import NullPool

from airflow_provider_zenmigrate.core.utils import MigrationUtils
from tests.support.object_stores import S3_ACCESS_KEY, S3_SECRET_KEY, free_port
from tests.support.paths import REPO
from tests.support.servers import server_url

SEED = 20260408
WAIT = 60.0  # seconds any single step may take before the test fails instead of hanging

# -- deterministic bulk data ----------------------------------------------------------------
_CREATE_BIG = "CREATE TABLE big (id INTEGER PRIMARY KEY, payload TEXT NOT NULL)"


def fill_big(mu: MigrationUtils, rows: int, width: int = 1024) -> None:
    """A table ``big`` of ``rows`` rows of ``width`` hex characters each, the same on every
    run (seeded), and hardly compressible, so its dump size is known in advance."""
    rng = random.Random(SEED)
    data = [{"id": i, "p": rng.randbytes(width // 2).hex()} for i in range(1, rows + 1)]
    with mu.engine.begin() as conn:
        conn.exec_driver_sql(_CREATE_BIG)
        conn.execute(text("INSERT INTO big (id, payload) VALUES (:id, :p)"), data)
    mu.dispose()


# -- a backup or restore that pauses in a child process --------------------------------------
_CHILD = r"""
import json, os, sys, traceback

def emit(event):
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()

spec = json.loads(sys.argv[1])
point, nth = spec["pause"], spec.get("nth", 1)
seen = {"n": 0}

def pause(**detail):
    emit({"event": "paused", "point": point, **detail})
    if sys.stdin.readline().strip() != "go":
        os._exit(3)

def nth_time():
    seen["n"] += 1
    return seen["n"] == nth

from airflow_provider_zenmigrate.core import restore as restore_module
from airflow_provider_zenmigrate.core.dialects import mysql
from airflow_provider_zenmigrate.core.dialects.mysql import swap as mysql_swap
from airflow_provider_zenmigrate.core.dialects.postgresql import connection as pg_connection
from airflow_provider_zenmigrate.core.utils import MigrationUtils

mu = MigrationUtils(url=spec["url"], connect_args={}, engine_args={},
                    chunk_rows=spec.get("chunk_rows", 2000),
                    transport_params=spec.get("transport_params"))

def on_record(record, line):
    if point == "backup-data" and record["kind"] == "data" and nth_time():
        pause(table=record["table"])

def wrap(owner, name, before=None, after=None):
    real = getattr(owner, name)
    def wrapper(*args, **kwargs):
        if before is not None:
            before(*args)
        result = real(*args, **kwargs)
        if after is not None:
            after(*args)
        return result
    setattr(owner, name, wrapper)

if point == "restore-data":
    wrap(restore_module.Loader, "apply",
         before=lambda self, record: record["kind"] == "data" and nth_time()
         and pause(table=record["table"]))
elif point == "mysql-before-swap-block":
    wrap(mysql.MySQLRestoreWriter, "_swap_on_server", before=lambda *a: nth_time() and pause())
elif point == "mysql-before-rename":
    mysql_swap.runs_swap_block = lambda version: False  # MySQL's swap, statement by statement
    wrap(mysql.MySQLRestoreWriter, "_rename", before=lambda *a: nth_time() and pause())
elif point == "mysql-after-rename":
    mysql_swap.runs_swap_block = lambda version: False
    wrap(mysql.MySQLRestoreWriter, "_create_objects", before=lambda *a: nth_time() and pause())
elif point.startswith("pg-after:"):
    prefix = point.split(":", 1)[1]
    wrap(pg_connection, "execute_one",
         after=lambda conn, statement: statement.startswith(prefix) and nth_time() and pause())

try:
    if spec["action"] == "backup":
        mu.backup_database_to_file(spec["uri"], on_record=on_record)
    else:
        mu.restore_database_from_file(spec["uri"], allow_routines=True)  # the test's own dumps
except Exception as exc:
    traceback.print_exc()
    emit({"event": "failed", "type": type(exc).__module__ + "." + type(exc).__qualname__,
          "bases": [c.__name__ for c in type(exc).__mro__], "message": str(exc)})
else:
    emit({"event": "finished", "paused": seen["n"] >= nth})
"""


class PausedChild:
    """A backup or restore in a child process that stops at ``spec["pause"]`` (the
    ``spec["nth"]`` time it gets there) until :meth:`resume` is called."""

    def __init__(self, spec: dict[str, Any], env: dict[str, str] | None = None) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", _CHILD, json.dumps(spec)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=REPO,
            env=env,
            text=True,
        )
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self.stderr: list[str] = []
        threading.Thread(target=self._read_stdout, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()

    def _read_stdout(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with suppress(ValueError):
                self.events.put(json.loads(line))
        self.events.put({"event": "exited"})

    def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        self.stderr.extend(self.process.stderr)

    def _next(self, timeout: float) -> dict[str, Any]:
        try:
            return self.events.get(timeout=timeout)
        except queue.Empty:
            pytest.fail(f"the child said nothing for {timeout:.0f}s:\n{self.log()}")

    def log(self) -> str:
        return "".join(self.stderr)[-4000:]

    def wait_paused(self, timeout: float = WAIT) -> dict[str, Any]:
        event = self._next(timeout)
        if event["event"] != "paused":
            self.process.wait(timeout)
            pytest.fail(f"the child never reached its pause point: {event}\n{self.log()}")
        return event

    def resume(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write("go\n")
        self.process.stdin.flush()

    def outcome(self, timeout: float = WAIT) -> dict[str, Any]:
        event = self._next(timeout)
        self.process.wait(timeout)
        return event

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@contextmanager
def paused_child(spec: dict[str, Any], env: dict[str, str] | None = None) -> Iterator[PausedChild]:
    child = PausedChild(spec, env)
    try:
        yield child
    finally:
        child.close()


# -- database sessions, found and killed server-side -----------------------------------------
def _admin(dialect: str) -> sqlalchemy.Engine:
    return sqlalchemy.create_engine(server_url(dialect), poolclass=NullPool)


Session = Callable[[str, str], bool]


def sessions(dialect: str, match: Session) -> list[int]:
    """Ids of the server sessions (other than ours) for which ``match(database, query)``
    holds (``query`` is the running one on MariaDB, the last one on PostgreSQL)."""
    engine = _admin(dialect)
    try:
        with engine.connect() as conn:
            if dialect == "mysql":
                rows = conn.exec_driver_sql(
                    "SELECT ID, DB, COALESCE(INFO, '') FROM information_schema.PROCESSLIST "
                    "WHERE ID <> CONNECTION_ID() AND DB IS NOT NULL"
                ).all()
            else:
                rows = conn.exec_driver_sql(
                    "SELECT pid, datname, COALESCE(query, '') FROM pg_stat_activity "
                    "WHERE pid <> pg_backend_pid() AND datname IS NOT NULL"
                    # A session back in its pool (the rule pass's look-up of roles and
                    # extensions) is idle: not one that works.
                    " AND state IS DISTINCT FROM 'idle'"
                ).all()
        return sorted(int(i) for i, db, query in rows if match(str(db), str(query)))
    finally:
        engine.dispose()


def restore_sessions(dialect: str, target: str) -> list[int]:
    """The sessions a paused restore of ``target`` does its work on: MariaDB's work in the
    staging database (the main session and the bulk loader's), PostgreSQL's in the target
    database (every session of it but the one holding the restore lock)."""
    if dialect == "mysql":
        found = sessions(dialect, lambda db, _q: db.startswith("zmstage_") and target in db)
    else:
        found = sessions(dialect, lambda db, q: db == target and "advisory" not in q)
        assert len(found) <= 1, f"more than one working session: {found}"
    assert found, "the paused restore has no session"
    return found


def backup_session(dialect: str, database: str) -> int:
    """The one session a paused backup reads its snapshot through."""
    found = sessions(dialect, lambda db, _q: db == database)
    assert len(found) == 1, f"expected exactly one session of the paused backup, found {found}"
    return found[0]


def kill_session(dialect: str, session: int) -> None:
    """Drop a session server-side (KILL / pg_terminate_backend) and wait until it is gone."""
    engine = _admin(dialect)
    try:
        with engine.connect() as conn:
            if dialect == "mysql":
                conn.exec_driver_sql(f"KILL CONNECTION {int(session)}")
            else:
                killed = conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": session})
                assert killed.scalar() is True
        deadline = time.monotonic() + WAIT
        while session in sessions(dialect, lambda _db, _q: True):
            assert time.monotonic() < deadline, f"session {session} survived its kill"
            time.sleep(0.02)
    finally:
        engine.dispose()


def side_objects(dialect: str, url: URL) -> set[str]:
    """What a restore of ``url`` could leave behind: staging/trash databases (MariaDB),
    staging/old schemas (PostgreSQL), staging files (SQLite)."""
    name = Path(url.database or "").name
    if dialect == "sqlite":
        return {p.name for p in Path(url.database or "").parent.glob(f"{name}.zm-*")}
    engine = (
        _admin(dialect) if dialect == "mysql" else sqlalchemy.create_engine(url, poolclass=NullPool)
    )
    try:
        with engine.connect() as conn:
            if dialect == "mysql":
                names = conn.exec_driver_sql("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA")
                return {n for n in names.scalars() if n != name and n.endswith(name)}
            schemas = conn.exec_driver_sql("SELECT nspname FROM pg_namespace").scalars()
            return {n for n in schemas if n.startswith(("zm_stage_", "zm_old_"))}
    finally:
        engine.dispose()


# -- a private moto server --------------------------------------------------------------------
BUCKET = "zm-outage"
_REQUEST = re.compile(r'"(?P<method>[A-Z]+) (?P<path>\S+) HTTP/[\d.]+" (?P<status>\d{3})')


@dataclass
class MotoServer:
    """A moto S3 server of our own, so killing it harms no other test."""

    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self) -> Any:
        """A real boto3 client that gives up on a dead endpoint at once (botocore would
        otherwise retry with back-off), so the test measures our handling, not waiting."""
        import boto3
        from botocore.config import Config

        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=S3_ACCESS_KEY,
            aws_secret_access_key=S3_SECRET_KEY,
            region_name="us-east-1",
            config=Config(retries={"total_max_attempts": 1}, connect_timeout=5, read_timeout=30),
        )

    def kill(self) -> None:
        """SIGKILL: the server vanishes mid-request, as a crashed or unplugged one does."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(WAIT)

    def requests(self) -> list[tuple[str, str, int]]:
        """Every request the server received (method, path with query, status), from its
        access log: the record of what reached the store that outlives the server."""
        lines = self.log.read_text(errors="replace")
        return [(m["method"], m["path"], int(m["status"])) for m in _REQUEST.finditer(lines)]


def start_moto(folder: Path) -> MotoServer:
    port = free_port()
    log = folder / f"moto-{port}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    server = MotoServer(process, port, log)
    deadline = time.monotonic() + WAIT
    while True:
        if process.poll() is not None:
            pytest.fail(f"moto exited with {process.returncode}: {log.read_text()[-2000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                server.kill()
                pytest.fail(f"moto did not listen on {port} within {WAIT:.0f}s")
            time.sleep(0.05)
    server.client().create_bucket(Bucket=BUCKET)
    return server


@contextmanager
def moto(folder: Path) -> Iterator[MotoServer]:
    server = start_moto(folder)
    try:
        yield server
    finally:
        if server.process.poll() is None:
            server.kill()


# -- a small filesystem -----------------------------------------------------------------------
@contextmanager
def small_filesystem(mountpoint: Path, size: str = "2m") -> Iterator[Path]:
    """A tmpfs of ``size`` at ``mountpoint``: writes past it fail with ENOSPC, as on a full
    disk. Needs root (CI runs as root: it starts the database servers)."""
    mountpoint.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(mountpoint)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.fail(
            f"cannot mount a {size} tmpfs at {mountpoint} (uid {os.getuid()}): "
            f"{done.stderr.strip()}; the disk-full tests need root (sudo) to mount one",
            pytrace=False,
        )
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], check=False)


def free_bytes(path: Path) -> int:
    stat = os.statvfs(path)
    return stat.f_bavail * stat.f_frsize


def fill(folder: Path, leave: int) -> Path:
    """A filler file that leaves about ``leave`` bytes (whole pages) free in ``folder``."""
    filler = folder / "filler"
    size = free_bytes(folder) - leave
    assert size > 0, f"{folder} has less than {leave} bytes free"
    with filler.open("wb") as out:
        out.write(b"\0" * size)
    return filler


# -- multi-part dumps (tests/reliability/test_parts_*.py) ----------------------------------------
#: Part sizes small enough that a table of a few hundred KB is cut into several parts.
SMALL_PART_BYTES = 96 * 1024
SMALL_PART_SECONDS = 0.02


def split_into_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the backups of this process (and of the workers it forks) cut small tables into
    several parts: the real sizes would keep every test table whole."""
    from airflow_provider_zenmigrate.core.parts import backup as parts_backup

    monkeypatch.setattr(parts_backup, "PART_BYTES", SMALL_PART_BYTES)
    monkeypatch.setattr(parts_backup, "PART_SECONDS", SMALL_PART_SECONDS)


def rel_url(dialect: str, tmp_path: Path) -> URL:
    """A new database name of the parts tests (prefix ``zmrel_``)."""
    from tests.support.servers import database_url, unique_name

    return database_url(dialect, tmp_path, unique_name("zmrel"))


@contextmanager
def rel_database(dialect: str, tmp_path: Path) -> Iterator[MigrationUtils]:
    """A created ``zmrel_`` database; dropped afterwards with every staging or trash
    database a (killed) restore of it left behind."""
    mu = MigrationUtils(url=rel_url(dialect, tmp_path), connect_args={}, engine_args={})
    mu.create_database()
    try:
        yield mu
    finally:
        mu.dispose()
        if dialect == "mysql":
            engine = _admin(dialect)
            try:
                with engine.connect() as conn:
                    for name in side_objects(dialect, mu.url):
                        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{name}`")
            finally:
                engine.dispose()
        mu.drop_database()
        mu.dispose()


def fill_parts_source(mu: MigrationUtils, rows: int = 900) -> None:
    """``big`` (``rows`` rows of 1 KiB, cut into several parts), ``small`` (one part), an
    index and a view; statistics fresh (MariaDB's DATA_LENGTH, which sizes the parts, is
    stale after a bulk insert until ANALYZE TABLE)."""
    fill_big(mu, rows)
    with mu.engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE small (id INTEGER PRIMARY KEY, label VARCHAR(20))")
        conn.execute(
            text("INSERT INTO small (id, label) VALUES (:id, :label)"),
            [{"id": i, "label": f"label {i}"} for i in range(1, 51)],
        )
        conn.exec_driver_sql("CREATE INDEX small_label ON small (label)")
        conn.exec_driver_sql("CREATE VIEW big_count AS SELECT COUNT(*) AS n FROM big")
        analyze(conn)
    mu.dispose()


def analyze(conn: Any) -> None:
    """Fresh table statistics (parts are sized from them)."""
    if conn.dialect.name in ("mysql", "mariadb"):
        names = conn.exec_driver_sql(
            "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() "
            "AND TABLE_TYPE = 'BASE TABLE'"
        ).scalars()
        for name in list(names):
            conn.exec_driver_sql(f"ANALYZE TABLE `{name}`").all()
    elif conn.dialect.name == "postgresql":
        conn.exec_driver_sql("ANALYZE")


def fill_previous(mu: MigrationUtils) -> None:
    """What a restore target holds before: other tables than the dump's, so a restore that
    touched it shows."""
    with mu.engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE previous (id INTEGER PRIMARY KEY, note VARCHAR(40))")
        conn.execute(
            text("INSERT INTO previous (id, note) VALUES (:id, :n)"),
            [{"id": i, "n": f"kept {i}"} for i in range(20)],
        )
    mu.dispose()


def manifest_of(folder: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((folder / "manifest.json").read_text())
    return data


def parts_per_table(manifest: dict[str, Any]) -> dict[str, int]:
    """How many data parts each table of a multi-part dump's manifest has."""
    counts: dict[str, int] = {}
    for part in manifest["parts"]:
        if part["kind"] == "data":
            counts[part["table"]] = counts.get(part["table"], 0) + 1
    return counts
