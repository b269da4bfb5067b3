"""Processes of a parallel backup or restore killed with SIGKILL.

Backup: one forked worker is killed while the backup runs (the others go on writing): the
backup fails naming the worker, and nothing is left under the dump's prefix (no manifest,
no part), the source untouched.

Restore: the restore runs in a child process (its own process group, so its workers die with
it) that stops at a chosen point of the real code (a wrapped function) and says so; the
test kills the group there. Then the same restore again: until its swap the target holds
its previous contents, after it exactly the source, and on MariaDB it skipped the parts the
first attempt committed (read from the progress table of the staging database).
"""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import pytest
import smart_open.s3
import sqlalchemy
from sqlalchemy.pool import NullPool

from airflow_provider_zenmigrate.core.errors import WorkerDied
from airflow_provider_zenmigrate.core.parts import backup as parts_backup
from airflow_provider_zenmigrate.core.utils import MigrationUtils
from tests.reliability._outage import (
    BUCKET,
    WAIT,
    fill_parts_source,
    fill_previous,
    manifest_of,
    moto,
    parts_per_table,
    rel_database,
    sessions,
    side_objects,
    split_into_parts,
)
from tests.support.identity import fingerprint
from tests.support.paths import REPO
from tests.support.servers import server_url, url_text

PROGRESS = "_zenmigrate_progress"


@pytest.fixture
def source(dialect: str, tmp_path: Path) -> Iterator[MigrationUtils]:
    with rel_database(dialect, tmp_path) as mu:
        fill_parts_source(mu)
        yield mu


@pytest.fixture
def target(dialect: str, tmp_path: Path) -> Iterator[MigrationUtils]:
    with rel_database(dialect, tmp_path) as mu:
        fill_previous(mu)
        yield mu


# -- a worker killed mid-backup --------------------------------------------------------------
VICTIM = 3  # the part whose worker is killed (parts 1 and 2 are published by then)


@pytest.mark.parametrize("store", ["local", "s3"])
@pytest.mark.parametrize("dialect", ["mysql", "postgresql"])
def test_worker_killed_mid_backup_publishes_nothing(
    dialect: str,
    store: str,
    source: MigrationUtils,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Part ``VICTIM``'s worker stops before writing it and is SIGKILLed; the other worker
    is meanwhile between parts (each later part waits a little before it is written), so
    it has a part in flight when the backup gives up."""
    split_into_parts(monkeypatch)
    marker = tmp_path / "victim.pid"
    real = parts_backup.write_part

    def write_part(ctx: Any, reader: Any, task: Any) -> Any:
        if task.index == VICTIM:
            (tmp_path / "victim.tmp").write_text(str(os.getpid()))
            os.replace(tmp_path / "victim.tmp", marker)
            time.sleep(WAIT)
        elif task.index > VICTIM:
            time.sleep(0.3)
        return real(ctx, reader, task)

    monkeypatch.setattr(parts_backup, "write_part", write_part)
    before = fingerprint(source.url)
    with _store(store, tmp_path, monkeypatch) as (uri, listing, params):
        source.transport_params = params
        with ThreadPoolExecutor(1) as pool:
            future = pool.submit(source.backup_database_to_file, uri, jobs=2)
            deadline = time.monotonic() + WAIT
            while not marker.exists():
                if future.done():
                    future.result()
                    pytest.fail("the backup finished without reaching the victim part")
                assert time.monotonic() < deadline, "the victim part was never started"
                time.sleep(0.01)
            victim = int(marker.read_text())
            assert victim != os.getpid(), "the part was written in this process, not a worker"
            os.kill(victim, signal.SIGKILL)
            with pytest.raises(WorkerDied) as caught:
                future.result(WAIT)
        message = str(caught.value)
        assert re.search(r"worker \d+ ended \(exit code -9\)", message), message
        left = listing()
    assert left == [], f"a failed backup left {left} under its prefix"
    assert fingerprint(source.url) == before


@contextmanager
def _store(store: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """(uri of a new dump, a function listing everything under it (objects, multipart
    uploads in progress), the transport parameters)."""
    if store == "local":
        folder = tmp_path / "dump"

        def files() -> list[str]:
            return (
                sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))
                if folder.exists()
                else []
            )

        yield str(folder), files, None
        return
    monkeypatch.setattr(smart_open.s3.RETRY, "sleep_seconds", 0)
    with moto(tmp_path) as server:
        client = server.client()
        prefix = f"{uuid.uuid4().hex[:8]}/nightly"

        def objects() -> list[str]:
            found = client.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])
            uploads = client.list_multipart_uploads(Bucket=BUCKET, Prefix=prefix)
            return sorted(o["Key"] for o in found) + [
                "upload " + u["Key"] for u in uploads.get("Uploads", [])
            ]

        yield f"s3://{BUCKET}/{prefix}", objects, {"client": client}


# -- a restore killed, then run again ----------------------------------------------------------
_CHILD = r"""
import json, logging, os, sys, time
logging.basicConfig(level=logging.INFO, stream=sys.stderr)
spec = json.loads(sys.argv[1])
point, nth = spec.get("pause"), spec.get("nth", 1)
MAIN = os.getpid()
seen = {"n": 0}

def emit(event):
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()

def pause(**detail):
    emit({"event": "paused", "point": point, "pid": os.getpid(), **detail})
    if os.getpid() != MAIN:  # a worker (its stdin is closed): the test kills it here
        time.sleep(600)
        os._exit(4)
    if sys.stdin.readline().strip() != "go":
        os._exit(3)
    return False

def nth_time():
    seen["n"] += 1
    return seen["n"] == nth

def wrap(owner, name, before):
    real = getattr(owner, name)
    def wrapper(*args, **kwargs):
        before(*args, **kwargs)
        return real(*args, **kwargs)
    setattr(owner, name, wrapper)

from airflow_provider_zenmigrate.core.dialects import mysql
from airflow_provider_zenmigrate.core.dialects.mysql import parts as mysql_parts
from airflow_provider_zenmigrate.core.dialects.postgresql import staging as pg
from airflow_provider_zenmigrate.core.utils import MigrationUtils

WRITER, LOADER = (
    (mysql.MySQLRestoreWriter, mysql_parts.PartLoader) if spec["url"].startswith("mysql")
    else (pg.PostgreSQLStagedWriter, pg.PartLoader)
)
if point == "schema":  # creating the schema part's tables, before the schema is marked staged
    wrap(WRITER, "create_table", lambda self, table: nth_time() and pause(table=table.name))
elif point == "data":  # in a worker: a part's rows loaded, its transaction not committed
    wrap(LOADER, "commit", lambda self, part, digest, table, rows: nth_time() and pause(part=part))
elif point == "post":  # in a worker: an index or key about to be built in the staging
    wrap(LOADER, "build", lambda self, build, key, digest: nth_time() and pause(key=key))
elif point == "parts-done":  # every part committed, objects not begun
    wrap(WRITER, "mark", lambda self, name, digest: name == "@objects" and pause())
elif point == "objects":  # objects after the data being created
    wrap(WRITER, "begin_swap", lambda self: seen.update(objects=True))
    wrap(WRITER, "create_object",
         lambda self, obj: seen.get("objects") and nth_time() and pause())
elif point == "swap":  # everything staged and counted, the progress table dropped
    wrap(WRITER, "swap", lambda self: pause())
elif point == "one-transaction-data":  # a restore that cannot be staged, loading its data
    from airflow_provider_zenmigrate.core.dialects.postgresql.writer import (
        PostgreSQLRestoreWriter,
    )
    wrap(PostgreSQLRestoreWriter, "load_chunk", lambda self, *a: nth_time() and pause())

mu = MigrationUtils(url=spec["url"], connect_args={}, engine_args={})
try:
    summary = mu.restore_database_from_file(spec["uri"], jobs=spec["jobs"],
                                            fresh=spec.get("fresh", False))
except Exception as exc:
    emit({"event": "failed", "type": type(exc).__name__, "message": str(exc)})
else:
    emit({"event": "finished", "parts": summary.parts, "resumed_parts": summary.resumed_parts,
          "tables": summary.tables})
"""


class Child:
    """A restore in a child process group; events read from its stdout."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", _CHILD, json.dumps(spec)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=REPO,
            text=True,
            start_new_session=True,
        )
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self.stderr: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        self._stderr_reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._stderr_reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with suppress(ValueError):
                self.events.put(json.loads(line))
        self.events.put({"event": "exited"})

    def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        self.stderr.extend(self.process.stderr)

    def log(self) -> str:
        """Everything the child wrote to stderr (its log), once it has ended."""
        self._stderr_reader.join(WAIT)
        return "".join(self.stderr)

    def next(self) -> dict[str, Any]:
        try:
            return self.events.get(timeout=WAIT)
        except queue.Empty:
            pytest.fail(f"the child said nothing for {WAIT:.0f}s:\n{''.join(self.stderr)[-3000:]}")

    def paused(self) -> dict[str, Any]:
        event = self.next()
        assert event["event"] == "paused", f"{event}\n{''.join(self.stderr)[-3000:]}"
        return event

    def go(self) -> dict[str, Any]:
        assert self.process.stdin is not None
        self.process.stdin.write("go\n")
        self.process.stdin.flush()
        return self.outcome()

    def outcome(self) -> dict[str, Any]:
        event = self.next()
        self.process.wait(WAIT)
        return event

    def kill(self) -> None:
        """SIGKILL the restore and its workers at once."""
        with suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(WAIT)


@contextmanager
def child(target: MigrationUtils, uri: str, **spec: Any) -> Iterator[Child]:
    running = Child({"url": url_text(target.url), "uri": uri, "jobs": 2, **spec})
    try:
        yield running
    finally:
        running.kill()


def _settle(dialect: str, target: MigrationUtils) -> None:
    """Wait until the server has ended every session of the killed restore (its locks go
    with them; a rerun before that would find its staging still "in use")."""
    name = str(target.url.database)
    deadline = time.monotonic() + WAIT
    while sessions(dialect, lambda db, _q: db.endswith(name)):
        assert time.monotonic() < deadline, "the killed restore's sessions never ended"
        time.sleep(0.05)


def _progress(dialect: str, target: MigrationUtils) -> dict[str, str]:
    """The progress table a killed restore kept: in the target's staging database
    (MariaDB), in the staging schema named after the restore (PostgreSQL)."""
    if dialect == "mysql":
        staging = [n for n in side_objects(dialect, target.url) if n.startswith("zmstage_")]
        assert len(staging) == 1, f"expected one staging database, found {staging}"
        engine = sqlalchemy.create_engine(server_url(dialect), poolclass=NullPool)
        exists = (
            "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s "
            "AND TABLE_NAME = %s"
        )
        table = f"`{staging[0]}`.`{PROGRESS}`"
    else:
        staging = [
            n
            for n in side_objects(dialect, target.url)
            if re.fullmatch(r"zm_stage_p[0-9a-f]{12}", n)
        ]
        assert len(staging) == 1, f"expected one progress schema, found {staging}"
        engine = sqlalchemy.create_engine(target.url, poolclass=NullPool)
        exists = "SELECT COUNT(*) FROM pg_tables WHERE schemaname = %s AND tablename = %s"
        table = f'"{staging[0]}"."{PROGRESS}"'
    try:
        with engine.connect() as conn:
            if not conn.exec_driver_sql(exists, (staging[0], PROGRESS)).scalar():
                return {}
            rows = conn.exec_driver_sql(f"SELECT part, digest FROM {table}")
            return {str(p): str(d) for p, d in rows}
    finally:
        engine.dispose()


def _dump(source: MigrationUtils, folder: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    split_into_parts(monkeypatch)
    source.backup_database_to_file(str(folder), jobs=2)
    assert parts_per_table(manifest_of(folder))["big"] >= 4, "the table was not cut into parts"
    return str(folder)


def _killed_at(
    dialect: str, target: MigrationUtils, uri: str, point: str, nth: int = 1
) -> dict[str, str]:
    """Run the restore until ``point``, SIGKILL it there; the target must be as it was.
    Returns the progress the first attempt left (MariaDB)."""
    before = fingerprint(target.url)
    with child(target, uri, pause=point, nth=nth) as running:
        running.paused()
        running.kill()
    _settle(dialect, target)
    assert fingerprint(target.url) == before, f"killed at {point}: the target changed"
    return _progress(dialect, target) if point != "one-transaction-data" else {}


def _rerun_checked(
    dialect: str, source: MigrationUtils, target: MigrationUtils, uri: str, **spec: Any
) -> dict[str, Any]:
    """The same restore again, stopped just before its swap to check the target is still
    untouched, then finished: the target is exactly the source, nothing left beside it."""
    before = fingerprint(target.url)
    with child(target, uri, pause="swap", **spec) as running:
        running.paused()
        assert fingerprint(target.url) == before, "the rerun changed the target before its swap"
        outcome = running.go()
    assert outcome["event"] == "finished", f"{outcome}\n{''.join(running.stderr)[-3000:]}"
    assert fingerprint(target.url) == fingerprint(source.url), "the rerun is not the source"
    assert side_objects(dialect, target.url) == set()
    outcome["log"] = running.log()
    return outcome


def _parts_of(progress: dict[str, str]) -> set[str]:
    return {name for name in progress if not name.startswith("@")}


@pytest.mark.parametrize(
    ("point", "nth"),
    [("schema", 2), ("data", 3), ("parts-done", 1), ("objects", 1), ("swap", 1)],
)
@pytest.mark.parametrize("dialect", ["mysql", "postgresql"])
def test_restore_killed_then_rerun_is_exact(
    dialect: str,
    source: MigrationUtils,
    target: MigrationUtils,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    point: str,
    nth: int,
) -> None:
    uri = _dump(source, tmp_path / "dump", monkeypatch)
    data_parts = len(manifest_of(Path(uri))["parts"]) - 1
    progress = _killed_at(dialect, target, uri, point, nth)
    loaded = _parts_of(progress)
    expected = {
        "schema": 0,  # the schema was not staged: it starts over
        "data": len(loaded),  # whatever was committed, and only that
        "parts-done": data_parts,
        "objects": data_parts,  # objects begun: made anew, every part kept
        # MariaDB dropped the progress table just before the swap; PostgreSQL drops it in
        # the swap's own transaction, which the kill rolled back
        "swap": 0 if dialect == "mysql" else data_parts,
    }[point]
    if point == "data":
        assert 0 < len(loaded) < data_parts, f"not mid-data: {len(loaded)} of {data_parts}"
    if point in ("parts-done", "objects"):
        assert len(loaded) == data_parts, progress
    outcome = _rerun_checked(dialect, source, target, uri)
    assert outcome["resumed_parts"] == expected, (point, outcome, sorted(progress))


@pytest.mark.parametrize("dialect", ["postgresql"])
def test_restore_killed_while_building_keys_resumes_them(
    dialect: str,
    source: MigrationUtils,
    target: MigrationUtils,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Killed while its workers build the indexes and keys in the staging schemas (big's
    and small's primary keys, small's index; one worker about to start its second): the
    rerun keeps every part and every build the first attempt committed, loads and builds
    the rest, and is exact (its primary keys and index exactly the source's)."""
    uri = _dump(source, tmp_path / "dump", monkeypatch)
    data_parts = len(manifest_of(Path(uri))["parts"]) - 1
    progress = _killed_at(dialect, target, uri, "post", 2)
    built = {name for name in progress if name.startswith("@post:")}
    # a table's builds start once its own parts are in, beside the others' loading
    loaded = _parts_of(progress)
    assert loaded and len(loaded) <= data_parts, progress
    assert 1 <= len(built) < 3, progress
    outcome = _rerun_checked(dialect, source, target, uri)
    assert outcome["resumed_parts"] == len(loaded)
    said = f"building 3 indexes and keys in the staging area ({len(built)} built by an earlier"
    assert said in outcome["log"], outcome["log"][-3000:]


@pytest.mark.parametrize("dialect", ["mysql", "postgresql"])
def test_fresh_discards_the_progress(
    dialect: str,
    source: MigrationUtils,
    target: MigrationUtils,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    uri = _dump(source, tmp_path / "dump", monkeypatch)
    assert _parts_of(_killed_at(dialect, target, uri, "data", 3)), "nothing was committed"
    outcome = _rerun_checked(dialect, source, target, uri, fresh=True)
    assert outcome["resumed_parts"] == 0, outcome


@pytest.mark.parametrize("dialect", ["mysql", "postgresql"])
def test_resume_against_a_changed_dump_is_refused(
    dialect: str,
    source: MigrationUtils,
    target: MigrationUtils,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The first attempt dies mid-data; then the dump at the same place is replaced by a
    newer backup. A rerun must not finish the old attempt with the new dump's parts: it is
    refused naming both digests, the target untouched; ``fresh=True`` then restores the
    new dump."""
    folder = tmp_path / "dump"
    uri = _dump(source, folder, monkeypatch)
    old_digest = manifest_of(folder)["digest"]
    assert _parts_of(_killed_at(dialect, target, uri, "data", 3)), "nothing was committed"
    with source.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE small SET label = 'changed' WHERE id = 7")
    source.dispose()
    _dump(source, tmp_path / "newer", monkeypatch)
    shutil.rmtree(folder)
    shutil.copytree(tmp_path / "newer", folder)
    new_digest = manifest_of(folder)["digest"]
    assert new_digest != old_digest

    before = fingerprint(target.url)
    with child(target, uri) as running:
        outcome = running.outcome()
    assert outcome["event"] == "failed", outcome
    assert outcome["type"] == "ResumeMismatchError", outcome
    assert old_digest in outcome["message"] and new_digest in outcome["message"], outcome
    assert fingerprint(target.url) == before
    outcome = _rerun_checked(dialect, source, target, uri, fresh=True)
    assert outcome["resumed_parts"] == 0


@pytest.mark.parametrize("dialect", ["postgresql"])
def test_postgresql_dump_with_an_extension_restores_in_one_transaction(
    dialect: str,
    source: MigrationUtils,
    target: MigrationUtils,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An extension exists once per database, so a dump holding one cannot be staged
    beside the target: it restores in one transaction. Killed mid-data, nothing of it
    remains, and the rerun starts over (resumed_parts == 0) and is exact."""
    with source.engine.begin() as conn:
        conn.exec_driver_sql("CREATE EXTENSION citext SCHEMA public")
        conn.exec_driver_sql("ALTER TABLE small ADD COLUMN tag public.citext DEFAULT 'Aa'")
    source.dispose()
    uri = _dump(source, tmp_path / "dump", monkeypatch)
    _killed_at(dialect, target, uri, "one-transaction-data", 3)
    assert side_objects(dialect, target.url) == set()
    with child(target, uri) as running:
        outcome = running.outcome()
    assert outcome["event"] == "finished", f"{outcome}\n{''.join(running.stderr)[-3000:]}"
    assert outcome["resumed_parts"] == 0
    assert "holds extensions (citext)" in "".join(running.stderr)
    assert fingerprint(target.url) == fingerprint(source.url)
    assert side_objects(dialect, target.url) == set()
