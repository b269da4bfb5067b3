"""SIGKILL a backup or a restore at a chosen point of its real code path.

Events
    In the child, a few real functions are wrapped so that each call is an *event* with a
    category and a label: the dump stream's ``write`` (header, schema, data and trailer
    records), the store's commit (``os.fsync`` / ``os.replace`` of the local upload, the S3
    ``CreateMultipartUpload`` / ``UploadPart`` / ``CompleteMultipartUpload`` calls, through
    botocore's event hooks), the restore writer's ``create_table`` / ``load_chunk`` /
    ``create_object`` / ``row_counts`` / ``swap``, and every statement, commit, fsync, unlink
    and rename inside and after the swap. MariaDB's swap block (one statement that the server
    runs to its end, see ``MySQLRestoreWriter.swap``) has one more event, ``sent ...``, once
    its bytes are written to the socket: killed there, the process is gone while the server
    runs the block. Nothing else is changed: the events only count.

Dry run, then kill runs
    A dry run (no kill) records the trace of events. Kill points are drawn from that trace
    with a seeded RNG, stratified by category, so they are reproducible and cover every phase.
    A kill run counts the same events; at event ``k`` it writes ``k`` and its label to its
    report file, then ``os.kill(os.getpid(), SIGKILL)``. The parent checks that the child
    died by SIGKILL and that the label it reached is the dry run's event ``k`` (the trace is
    deterministic: same data, same chunk size), so a point that is never reached fails.

Fork server
    Children come from multiprocessing's ``forkserver`` with this module preloaded: the
    server imports SQLAlchemy, the drivers, boto3 and the package once, and each kill point
    is a plain ``fork()`` of it (a few milliseconds, not a new interpreter). The fork server
    never opens a database or store connection; every engine and client is created in the
    child after the fork, and each child checks that it inherited no TCP socket.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import signal
import sqlite3
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Imported here so the fork server loads them once for every child.
import boto3
import psycopg
import pymysql
import pymysql.connections
import smart_open  # noqa: F401
import smart_open.s3  # noqa: F401
import sqlalchemy
from sqlalchemy.engine import URL, make_url
from sqlalchemy.pool import NullPool

from airflow_provider_zenmigrate.core import backup as backup_module
from airflow_provider_zenmigrate.core.dialects import mysql as mysql_dialect
from airflow_provider_zenmigrate.core.dialects import sqlite as sqlite_dialect
from airflow_provider_zenmigrate.core.dialects.mysql import session as mysql_session
from airflow_provider_zenmigrate.core.dialects.postgresql import connection as pg_connection
from airflow_provider_zenmigrate.core.dialects.postgresql.writer import PostgreSQLRestoreWriter
from airflow_provider_zenmigrate.core.utils import MigrationUtils

#: Every kill point comes from this seed (with the scenario, dialect and store mixed in).
SEED = 20_251_126
#: Rows per data record: small, so the data spans dozens of records.
CHUNK_ROWS = 50

#: Kill points per category, in test-id order (20 each).
BACKUP_QUOTAS = {"header": 2, "schema": 4, "data": 10, "trailer": 2, "publish": 2}
RESTORE_QUOTAS = {"table": 2, "load": 5, "object": 3, "verify": 1, "swap": 8, "after": 1}

# Restore labels are random per run; events name them with a placeholder.
_RESTORE_LABEL = re.compile(r"(zm[_-]?(?:stage|old|trash)[_-])[0-9a-f]{8}")


def slots(quotas: dict[str, int]) -> list[str]:
    """Test ids of the kill points: ``p07-data`` is the 8th point, a data event."""
    out: list[str] = []
    for category, count in quotas.items():
        out += [category] * count
    return [f"p{i:02d}-{category}" for i, category in enumerate(out)]


@dataclass(frozen=True)
class Job:
    """What a child does: a backup or restore of ``url`` to/from ``uri``, killed at event
    ``kill_at`` (``None``: a dry run that records its trace)."""

    kind: str  # "backup" or "restore"
    url: str
    uri: str
    report: str
    kill_at: int | None = None
    s3_endpoint: str | None = None
    #: Kill at the first event whose label starts with this (instead of an index).
    kill_on: str | None = None
    s3_keys: tuple[str, str] = ("", "")


@dataclass(frozen=True)
class Event:
    index: int
    category: str
    label: str


class Tracer:
    """Counts events; kills the process at event ``kill_at`` (or the first labelled
    ``kill_on...``)."""

    def __init__(self, kill_at: int | None, report: Path, kill_on: str | None = None) -> None:
        self.kill_at = kill_at
        self.kill_on = kill_on
        self.report = report
        self.events: list[tuple[str, str]] = []
        #: "load" until the restore's swap starts, then "swap", then "after".
        self.phase = "load"
        #: Categories with a call in progress (nested calls are not events).
        self.busy: set[str] = set()

    def event(self, category: str, label: str) -> None:
        index = len(self.events)
        label = _RESTORE_LABEL.sub(r"\1*", label)
        self.events.append((category, label))
        if index == self.kill_at or (self.kill_on and label.startswith(self.kill_on)):
            reached = {"reached": index, "category": category, "label": label}
            self.report.write_text(json.dumps(reached))
            os.kill(os.getpid(), signal.SIGKILL)
            os._exit(70)  # SIGKILL to ourselves is delivered before kill() returns

    def finish(self, error: str | None) -> None:
        self.report.write_text(json.dumps({"events": self.events, "error": error}))


# -- the child ---------------------------------------------------------------------------------
_BOTO = boto3.session.Session()
# Loads the S3 service model into the session once, in the fork server (no connection).
_BOTO.client("s3", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")


def child_main(job: Job) -> None:
    """Entry point of a forked child: run the job under a tracer, never return normally."""
    tracer = Tracer(job.kill_at, Path(job.report), job.kill_on)
    error: str | None = None
    try:
        inherited = _tcp_sockets()
        assert not inherited, f"the child inherited TCP connections (fds {inherited})"
        state = _BackupState()
        params = None
        if job.s3_endpoint is not None:
            client = _s3_client(job)
            if job.kind == "backup":
                _hook_s3(client, tracer, state, job.uri)
            params = {"client": client}
        utils = MigrationUtils(
            url=make_url(job.url),
            connect_args={},
            engine_args={"poolclass": NullPool},
            chunk_rows=CHUNK_ROWS,
            transport_params=params,
        )
        if job.kind == "backup":
            _hook_backup(tracer, state, job.uri)
            utils.backup_database_to_file(job.uri)
        else:
            _hook_restore(tracer, utils.url.get_backend_name())
            utils.restore_database_from_file(job.uri, allow_routines=True)
            tracer.event("after", "restore returned")
        utils.dispose()
    except BaseException:
        error = traceback.format_exc()
    tracer.finish(error)
    os._exit(3 if error else 0)


def _tcp_sockets() -> list[str]:
    """This process's file descriptors that are TCP sockets (database or store connections)."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as rows:
            inodes |= {row.split()[9] for row in list(rows)[1:]}
    found = []
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            link = os.readlink(f"/proc/self/fd/{fd}")
            if link.startswith("socket:[") and link[8:-1] in inodes:
                found.append(fd)
    return found


def _s3_client(job: Job) -> Any:
    return _BOTO.client(
        "s3",
        endpoint_url=job.s3_endpoint,
        region_name="us-east-1",
        aws_access_key_id=job.s3_keys[0],
        aws_secret_access_key=job.s3_keys[1],
    )


# -- backup events -----------------------------------------------------------------------------
_RECORD_CATEGORY = {
    "start": "header",  # opening the upload, before the first record
    "header": "header",
    "table": "schema",
    "object": "schema",
    "data": "data",
    "trailer": "trailer",
}


class _BackupState:
    """Which record is being written, and whether the dump was finished / committed."""

    def __init__(self) -> None:
        self.kind = "start"
        self.name = ""
        self.records = 0
        self.trailer_written = False
        self.committed = False

    def category(self) -> str:
        if self.committed:
            return "committed"
        if self.trailer_written:
            return "publish"
        return _RECORD_CATEGORY[self.kind]


class _TracedStream:
    """The dump stream as the backup sees it; each write is an event, then happens."""

    def __init__(self, stream: Any, tracer: Tracer, state: _BackupState) -> None:
        self._stream = stream
        self._tracer = tracer
        self._state = state

    def write(self, data: bytes) -> int:
        state = self._state
        part = "newline" if data == b"\n" else "line"
        label = f"write {part} of record {state.records} ({state.kind} {state.name})".rstrip()
        self._tracer.event(state.category(), label)
        written: int = self._stream.write(data)
        if part == "newline" and state.kind == "trailer":
            state.trailer_written = True
        return written

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _hook_backup(tracer: Tracer, state: _BackupState, uri: str) -> None:
    real_iter = vars(backup_module)["iter_backup"]
    real_open = vars(backup_module)["open_for_write"]

    def iter_backup(*args: Any, **kwargs: Any) -> Iterator[Any]:
        for record, line in real_iter(*args, **kwargs):
            state.kind = record["kind"]
            state.name = str(record.get("name") or record.get("table") or "")
            yield record, line
            state.records += 1

    @contextlib.contextmanager
    def open_for_write(target: str, params: Any = None, **options: Any) -> Iterator[Any]:
        with real_open(target, params, **options) as stream:
            yield _TracedStream(stream, tracer, state) if target == uri else stream

    # The names backup_to_uri calls them by (its module's globals).
    vars(backup_module)["iter_backup"] = iter_backup
    vars(backup_module)["open_for_write"] = open_for_write
    if "://" in uri and not uri.startswith("file://"):
        return
    final = os.path.abspath(uri)
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: Any) -> None:
        tracer.event(state.category(), "fsync")
        real_fsync(fd)

    def replace(src: Any, dst: Any, **kwargs: Any) -> None:
        name = Path(dst).name
        tracer.event(state.category(), f"before rename into {name}")
        real_replace(src, dst, **kwargs)
        if os.path.abspath(dst) == final:
            state.committed = True
        tracer.event(state.category(), f"after rename into {name}")

    os.fsync = fsync
    os.replace = replace


def _hook_s3(client: Any, tracer: Tracer, state: _BackupState, uri: str) -> None:
    """Events around the S3 calls that make an upload visible (botocore's own hooks)."""
    key = uri.split("/", 3)[3]

    def before(model: Any, params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        # before-parameter-build: the API's own parameters, before the request is sent
        context["zm_object"] = "dump" if params.get("Key") == key else "manifest"
        tracer.event(state.category(), f"before {model.name} ({context['zm_object']})")

    def after(model: Any, context: dict[str, Any], **_: Any) -> None:
        which = context.get("zm_object")
        if model.name == "CompleteMultipartUpload" and which == "dump":
            state.committed = True
        tracer.event(state.category(), f"after {model.name} ({which})")

    for operation in ("CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload"):
        client.meta.events.register(f"before-parameter-build.s3.{operation}", before)
        client.meta.events.register(f"after-call.s3.{operation}", after)


# -- restore events ----------------------------------------------------------------------------
def _hook_restore(tracer: Tracer, backend: str) -> None:
    writer_class: Any = {
        "sqlite": sqlite_dialect.SQLiteRestoreWriter,
        "mysql": mysql_dialect.MySQLRestoreWriter,
        "mariadb": mysql_dialect.MySQLRestoreWriter,
        "postgresql": PostgreSQLRestoreWriter,
    }[backend]
    chunks: dict[str, int] = {}

    def name_of(spec: Any) -> str:
        return str(spec.name)

    def chunk_of(spec: Any, _rows: Any) -> str:
        chunks[spec.name] = chunks.get(spec.name, 0) + 1
        return f"{spec.name} #{chunks[spec.name]}"

    def tables_of(specs: Any) -> str:
        return f"{len(specs)} tables"

    def object_of(obj: Any) -> str:
        return f"{obj.object_type} {obj.name}"

    _around(tracer, writer_class, "create_table", "table", name_of)
    # The engine calls load_chunk (which may call load_encoded, whose base class's decodes
    # and calls load_rows).
    for method in ("load_chunk", "load_encoded", "load_rows"):
        if hasattr(writer_class, method):
            _around(tracer, writer_class, method, "load", chunk_of)
    _around(tracer, writer_class, "create_object", "object", object_of)
    # The restore counts every table's rows in one call (a few statements) to verify them.
    _around(tracer, writer_class, "row_counts", "verify", tables_of, after=False)

    real_swap = writer_class.swap

    def swap(self: Any) -> None:
        tracer.phase = "swap"
        tracer.event("swap", "enter swap")
        real_swap(self)
        tracer.phase = "after"
        tracer.event("after", "swap returned")

    writer_class.swap = swap
    {"sqlite": _hook_sqlite_swap, "postgresql": _hook_pg_swap}.get(backend, _hook_mysql_swap)(
        tracer
    )


def _around(
    tracer: Tracer,
    cls: Any,
    method: str,
    category: str,
    label_of: Callable[..., str],
    after: bool = True,
) -> None:
    """Events before (and after) each call of ``cls.method``; a call made from inside another
    call of the same category (``load_chunk`` calling ``load_encoded``) is not an event."""
    real = getattr(cls, method)

    def wrapper(self: Any, *args: Any) -> Any:
        if category in tracer.busy:
            return real(self, *args)
        label = f"{method} {label_of(*args)}"
        tracer.event(category, f"before {label}")
        tracer.busy.add(category)
        try:
            result = real(self, *args)
        finally:
            tracer.busy.discard(category)
        if after:
            tracer.event(category, f"after {label}")
        return result

    setattr(cls, method, wrapper)


def _statement_events(tracer: Tracer, real: Callable[..., Any], what: str) -> Callable[..., Any]:
    """``real`` with an event before and after each call made during or after the swap."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if tracer.phase == "load":
            return real(*args, **kwargs)
        label = " ".join(str(what or _sql_of(args)).split())[:70]
        tracer.event(tracer.phase, f"before {label}")
        result = real(*args, **kwargs)
        tracer.event(tracer.phase, f"after {label}")
        return result

    return wrapper


def _sql_of(args: tuple[Any, ...]) -> str:
    for arg in args:
        if isinstance(arg, bytes):
            return arg.decode()
        if isinstance(arg, str):
            return arg
    return "?"


#: How MariaDB's swap block starts (see _swap_block in core/dialects/mysql/swap.py); the
#: catalog's blocks of SHOW CREATE statements (core/dialects/mysql/catalog.py) start with
#: "BEGIN NOT ATOMIC" too, and are no swap.
SWAP_BLOCK = b"BEGIN NOT ATOMIC\nDECLARE zm_again"


def _hook_mysql_swap(tracer: Tracer) -> None:
    session = mysql_session.ServerSession
    for method in ("execute", "execute_dump", "query"):
        real = getattr(session, method)
        setattr(session, method, _statement_events(tracer, real, ""))
    connection = pymysql.connections.Connection
    real_send = connection._execute_command

    def send(self: Any, command: int, sql: Any) -> Any:
        """Sends a command; for the swap block, then an event: killed there, the process dies
        while the server runs (or is about to run) the block it has received."""
        result = real_send(self, command, sql)
        data = sql.encode() if isinstance(sql, str) else bytes(sql)
        if tracer.phase != "load" and data.startswith(SWAP_BLOCK):
            tracer.event(tracer.phase, "sent " + " ".join(data.decode().split())[:70])
        return result

    connection._execute_command = send


def _hook_pg_swap(tracer: Tracer) -> None:
    pg_connection.execute_one = _statement_events(tracer, pg_connection.execute_one, "")
    psycopg.Connection.commit = _statement_events(  # type: ignore[method-assign]
        tracer, psycopg.Connection.commit, "COMMIT"
    )


class _TracedSQLite:
    """The staging connection of an SQLite restore; statements of the swap are events."""

    def __init__(self, conn: Any, tracer: Tracer) -> None:
        self._conn = conn
        self.execute = _statement_events(tracer, conn.execute, "")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


def _hook_sqlite_swap(tracer: Tracer) -> None:
    cls = sqlite_dialect.SQLiteRestoreWriter
    real_init = cls.__init__

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        real_init(self, *args, **kwargs)
        self.conn = _TracedSQLite(self.conn, tracer)

    cls.__init__ = init  # type: ignore[method-assign]
    real_fsync_path = vars(sqlite_dialect)["fsync_path"]
    real_replace = os.replace

    def fsync_path(path: Path) -> None:
        _statement_events(tracer, real_fsync_path, f"fsync {Path(path).name}")(path)

    def replace(src: Any, dst: Any, **kwargs: Any) -> None:
        label = f"rename {Path(src).name} to {Path(dst).name}"
        _statement_events(tracer, real_replace, label)(src, dst, **kwargs)

    vars(sqlite_dialect)["fsync_path"] = fsync_path
    os.replace = replace
    real_unlink = Path.unlink

    def unlink(self: Path, missing_ok: bool = False) -> None:
        label = f"unlink {self.name}"
        _statement_events(tracer, real_unlink, label)(self, missing_ok=missing_ok)

    Path.unlink = unlink  # type: ignore[method-assign]


def hot_log_child(path: str, report: str, mode: str) -> None:
    """Leave a "hot" log beside the SQLite database at ``path``, then die by SIGKILL.

    ``wal``: an UPDATE committed in WAL mode, never checkpointed (it lives only in the
    -wal file). ``journal``: a transaction in rollback-journal mode whose pages spilled into
    the database file before it committed (only the -journal can undo them).
    """
    conn = sqlite3.connect(path, isolation_level=None)
    if mode == "wal":
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA wal_autocheckpoint = 0")
        conn.execute("UPDATE account SET balance = balance + 1 WHERE id = 1")
    else:
        conn.execute("PRAGMA cache_size = 2")  # pages: the transaction spills early
        conn.execute("BEGIN")
        conn.execute("UPDATE ledger SET memo = printf('%090d', id)")
    Path(report).write_text("logged")
    os.kill(os.getpid(), signal.SIGKILL)


# -- the parent's side -------------------------------------------------------------------------
@dataclass
class Outcome:
    exitcode: int | None
    report: dict[str, Any]

    @property
    def events(self) -> list[Event]:
        return [Event(i, c, label) for i, (c, label) in enumerate(self.report.get("events", []))]


def run_child(context: Any, job: Job, timeout: float = 90) -> Outcome:
    """Fork a child from the fork server, wait for it, read its report."""
    Path(job.report).unlink(missing_ok=True)
    process = context.Process(target=child_main, args=(job,), daemon=True)
    process.start()
    process.join(timeout)
    if process.exitcode is None:
        process.kill()
        process.join(10)
        raise AssertionError(f"the child ({job.kind}, point {job.kill_at}) hung for {timeout}s")
    report_path = Path(job.report)
    report = json.loads(report_path.read_text()) if report_path.exists() else {}
    return Outcome(process.exitcode, report)


def dry_run(context: Any, job: Job) -> list[Event]:
    """Run ``job`` to the end without killing it; its trace of events."""
    outcome = run_child(context, job)
    assert outcome.exitcode == 0 and not outcome.report.get("error"), (
        f"the dry run failed (exit {outcome.exitcode}):\n{outcome.report.get('error')}"
    )
    return outcome.events


def kill_at(context: Any, job: Job, event: Event) -> Outcome:
    """Run ``job`` killed at ``event``; asserts it died by SIGKILL exactly there."""
    outcome = run_child(context, job)
    report = outcome.report
    assert outcome.exitcode == -signal.SIGKILL, (
        f"the child was not killed at {event} (exit {outcome.exitcode}); "
        f"error: {report.get('error')}; it saw {len(report.get('events', []))} events"
    )
    assert report.get("reached") == event.index, f"killed elsewhere than {event}: {report}"
    assert (report.get("category"), report.get("label")) == (event.category, event.label), (
        f"the trace is not deterministic: the dry run had {event}, the kill run {report}"
    )
    return outcome


def plan(events: list[Event], quotas: dict[str, int], seed: str) -> list[Event]:
    """Kill points drawn from ``events``: ``quotas[c]`` distinct events of each category ``c``,
    in test-id order (see :func:`slots`), from an RNG seeded with :data:`SEED` and ``seed``."""
    rng = random.Random(f"{SEED}:{seed}")
    points: list[Event] = []
    for category, count in quotas.items():
        candidates = [e for e in events if e.category == category]
        assert len(candidates) >= count, (
            f"only {len(candidates)} {category!r} events to draw {count} kill points from"
        )
        points += sorted(rng.sample(candidates, count), key=lambda e: e.index)
    return points


# -- data --------------------------------------------------------------------------------------
_TABLES = {
    "account": "CREATE TABLE account (id INTEGER PRIMARY KEY, owner VARCHAR(40) NOT NULL, "
    "balance BIGINT NOT NULL)",
    "ledger": "CREATE TABLE ledger (id INTEGER PRIMARY KEY, account_id INTEGER NOT NULL, "
    "amount INTEGER NOT NULL, memo VARCHAR(100), "
    "CONSTRAINT fk_ledger_account FOREIGN KEY (account_id) REFERENCES account (id))",
    "note_a": "CREATE TABLE note_a (id INTEGER PRIMARY KEY, body TEXT NOT NULL)",
    "tag_b": "CREATE TABLE tag_b (id INTEGER PRIMARY KEY, label VARCHAR(30) NOT NULL, "
    "weight DOUBLE PRECISION)",
}
_VIEWS = {
    "A": "CREATE VIEW v_totals AS SELECT account_id, SUM(amount) AS total FROM ledger "
    "GROUP BY account_id",
    "B": "CREATE VIEW v_totals AS SELECT account_id, COUNT(*) AS entries FROM ledger "
    "GROUP BY account_id",
}
# A: a trigger after INSERT; B: a differently named one after DELETE.
_TRIGGER_BODY = {
    "A": ("trg_ledger_a", "INSERT", "balance + NEW.amount WHERE id = NEW.account_id"),
    "B": ("trg_ledger_b", "DELETE", "balance - OLD.amount WHERE id = OLD.account_id"),
}


def _trigger_sql(dialect: str, which: str) -> list[str]:
    name, event, update = _TRIGGER_BODY[which]
    action = f"UPDATE account SET balance = {update}"
    if dialect == "sqlite":
        return [f"CREATE TRIGGER {name} AFTER {event} ON ledger BEGIN {action}; END"]
    if dialect == "mysql":
        return [f"CREATE TRIGGER {name} AFTER {event} ON ledger FOR EACH ROW {action}"]
    row = "NEW" if event == "INSERT" else "OLD"
    return [
        f"CREATE FUNCTION {name}_fn() RETURNS trigger LANGUAGE plpgsql AS "
        f"$$ BEGIN {action}; RETURN {row}; END $$",
        f"CREATE TRIGGER {name} AFTER {event} ON ledger FOR EACH ROW EXECUTE FUNCTION {name}_fn()",
    ]


def build_dataset(url: URL, which: str) -> dict[str, int]:
    """Fill the (existing, empty) database at ``url`` with dataset ``which`` ("A" or "B").

    A and B differ in every table's rows, in one table (``note_a`` / ``tag_b``), in the view's
    definition and in the trigger, so any mixture of the two shows in a fingerprint. Returns
    the rows per table.
    """
    dialect = "mysql" if url.get_backend_name() in ("mysql", "mariadb") else url.get_backend_name()
    rng = random.Random(f"{SEED}:data:{which}")
    accounts, entries, extra = (80, 1500, 300) if which == "A" else (60, 1200, 200)
    rows: dict[str, list[dict[str, Any]]] = {
        "account": [
            {"id": i, "owner": f"owner {i} {which} ä€", "balance": rng.randint(0, 10**9)}
            for i in range(1, accounts + 1)
        ],
        "ledger": [
            {
                "id": i,
                "account_id": rng.randint(1, accounts),
                "amount": rng.randint(-500, 500),
                "memo": None if i % 7 == 0 else f"{which} memo {i} «{rng.random():.6f}»",
            }
            for i in range(1, entries + 1)
        ],
    }
    if which == "A":
        rows["note_a"] = [
            {"id": i, "body": f"note {i} " + "x" * rng.randint(0, 120)} for i in range(1, extra + 1)
        ]
    else:
        rows["tag_b"] = [
            {
                "id": i,
                "label": f"tag {i}",
                "weight": None if i % 5 == 0 else rng.uniform(-1e6, 1e6),
            }
            for i in range(1, extra + 1)
        ]
    engine = sqlalchemy.create_engine(url, poolclass=NullPool)
    try:
        with engine.begin() as conn:
            for table, data in rows.items():
                conn.exec_driver_sql(_TABLES[table])
                columns = list(data[0])
                marks = ", ".join(f":{c}" for c in columns)
                conn.execute(
                    sqlalchemy.text(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})"),
                    data,
                )
            conn.exec_driver_sql("CREATE INDEX ix_ledger_account ON ledger (account_id)")
            conn.exec_driver_sql(_VIEWS[which])
            for statement in _trigger_sql(dialect, which):
                conn.exec_driver_sql(statement)
            if dialect == "postgresql":
                rows["side.pick"] = _side_schema(conn, which, accounts)
    finally:
        engine.dispose()
    return {table: len(data) for table, data in rows.items()}


def _side_schema(conn: Any, which: str, accounts: int) -> list[dict[str, Any]]:
    """PostgreSQL: a second schema whose table refers to ``public``, with its own comment and
    grant, so a kill shows any mixture of schemas too."""
    picks = [{"id": i, "account_id": i % accounts + 1} for i in range(1, accounts * 2)]
    grantee = "PUBLIC" if which == "A" else "pg_monitor"
    for statement in (
        "CREATE SCHEMA side",
        "CREATE TABLE side.pick (id int PRIMARY KEY,"
        " account_id int NOT NULL REFERENCES public.account (id))",
        f"COMMENT ON TABLE side.pick IS 'dataset {which}'",
        f"GRANT SELECT ON side.pick TO {grantee}",
    ):
        conn.exec_driver_sql(statement)
    conn.execute(sqlalchemy.text("INSERT INTO side.pick VALUES (:id, :account_id)"), picks)
    return picks
