"""Restoring a multi-part dump: the schema part first, the data parts by ``jobs`` worker
processes into the staging area (with the indexes and keys the dialect builds there, each
once its tables are loaded: :meth:`.ResumableWriter.staged_builds`), the other objects,
the row counts, the swap.

Where the staging area outlives a failure (a :class:`.dialects.base.ResumableWriter`: a
staging database on MariaDB/MySQL, staging schemas in the target database on PostgreSQL)
each part is loaded in one transaction with its progress record, so a rerun with the same
arguments skips what an earlier attempt loaded. Elsewhere (SQLite restores into a temporary
file; a PostgreSQL dump that cannot be staged, see ``why_not_resumable``, restores in one
transaction) the parts are loaded one after another, and a failed restore starts over.
"""

from __future__ import annotations

import hashlib
import logging
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from ..crypto import Encryption
from ..dialects import get_dialect
from ..dialects.base import PartLoader, ResumableWriter, StagedBuild
from ..dump.model import TableSpec
from ..dump.records import Record
from ..errors import DumpIntegrityError, ResumeMismatchError
from ..preflight import DumpRules, object_spec
from ..restore import (
    Loader,
    RecordObserver,
    RestoreSummary,
    RestoreTarget,
    apply_record,
    restore_lock,
)
from ..storage import drop_idle_connections, safe_uri
from .manifest import PartEntry, PartsManifest
from .reading import checked_part, load_manifest, missing_parts
from .workers import Scheduler, WorkerReport, jobs_allowed, worker_pool

logger = logging.getLogger(__name__)

#: Progress records that are not parts: the dump restored, its schema staged, objects begun.
DUMP, SCHEMA, OBJECTS = "@dump", "@schema", "@objects"
#: Attempts at a part that met a lock wait or deadlock (its transaction rolled back).
PART_ATTEMPTS = 5
#: Progress records of the objects after the data built early: this, then the record's line.
POST = "@post:"


def resume_label(database: str, uri: str) -> str:
    """The label of a restore of ``uri`` into ``database``: the same on every attempt, so
    a rerun finds the staging area the last one left."""
    return "p" + hashlib.sha256(f"{database}\n{safe_uri(uri)}".encode()).hexdigest()[:12]


@dataclass
class _Run:
    """What loading a part needs, the same in every worker."""

    uri: str
    transport_params: dict[str, Any] | None
    manifest: PartsManifest
    table_records: dict[str, Record]
    specs: dict[str, TableSpec]
    rules: Callable[[], DumpRules]
    retryable: Callable[[BaseException], bool]
    #: An earlier attempt may have left rows of a part it did not finish (non-transactional
    #: tables): delete a part's rows before loading it.
    clear_first: bool = False


def _retried(run: _Run, loader: PartLoader, what: str, once: Callable[[int], int]) -> int:
    """``once(attempt)``, one transaction on ``loader``; a lock wait or deadlock (what the
    dialect retries) rolls it back and runs it again, out of the other worker's way."""
    for attempt in range(1, PART_ATTEMPTS + 1):
        try:
            return once(attempt)
        except BaseException as exc:
            loader.rollback()
            if attempt < PART_ATTEMPTS and run.retryable(exc):
                logger.info("%s: %s; running it again", what, exc)
                time.sleep(random.uniform(0.1, 0.5) * attempt)
                continue
            raise
    raise AssertionError("unreachable")  # pragma: no cover


def load_part(run: _Run, loader: PartLoader, entry: PartEntry) -> int:
    """Load one data part in one transaction, committed with its progress record (retried,
    see :func:`_retried`). Returns its rows."""
    table = entry.table
    assert table is not None
    spec = run.specs[table]
    staged = Loader.staged(spec)

    def once(attempt: int) -> int:
        loader.begin()
        rows = 0
        if run.clear_first or attempt > 1:
            loader.clear(spec, entry.span)
        for _line, record, _raw in checked_part(
            run.uri,
            run.transport_params,
            run.manifest,
            entry,
            run.rules(),
            run.table_records,
        ):
            if record["kind"] == "data":
                loader.load(spec, staged.chunk(record["data"]))
                rows += len(record["data"])
        loader.commit(entry.name, entry.digest, table, rows)
        return rows

    return _retried(run, loader, f"part {entry.name}", once)


def build_post(run: _Run, loader: PartLoader, build: StagedBuild) -> int:
    """Build one index or key in the staging area, committed with its progress record
    (retried, see :func:`_retried`)."""

    def once(_attempt: int) -> int:
        loader.build(build, f"{POST}{build.line}", run.manifest.digest)
        return 0

    return _retried(run, loader, build.label, once)


@dataclass
class _PartScheduler(Scheduler[PartEntry]):
    """Parts in the manifest's order; a table's first part loads alone (two loads into one
    empty InnoDB table deadlock), the rest of it once that one is in."""

    todo: list[PartEntry]
    opened: set[str]
    on_done: Callable[[PartEntry, int], None]
    _starting: set[str] = field(default_factory=set)
    _in_flight: int = 0

    def next_task(self) -> PartEntry | None:
        for i, part in enumerate(self.todo):
            table = str(part.table)
            if table in self.opened or table not in self._starting:
                self._starting.add(table)
                self._in_flight += 1
                return self.todo.pop(i)
        return None

    def done(self, task: PartEntry, result: Any) -> None:
        self._in_flight -= 1
        self.opened.add(str(task.table))
        self.on_done(task, int(result))

    def finished(self) -> bool:
        return not self.todo and self._in_flight == 0


_Task = PartEntry | StagedBuild


@dataclass
class _RestoreScheduler(Scheduler[_Task]):
    """The parts (as :class:`_PartScheduler` hands them out), and the indexes and keys
    built early: each once its tables' parts are all in, not beside another build that
    conflicts with its lock (only two CREATE INDEX share a table), foreign keys after
    every other build (they need the referenced tables' unique indexes)."""

    parts: _PartScheduler
    builds: list[StagedBuild]
    _running: list[StagedBuild] = field(default_factory=list)
    _loading: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for part in self.parts.todo:
            self._loading[str(part.table)] = self._loading.get(str(part.table), 0) + 1

    def size(self) -> int:
        return len(self.parts.todo) + len(self.builds)

    def _ready(self, build: StagedBuild, early_left: bool) -> bool:
        return (
            not (build.late and early_left)
            and not any(self._loading.get(t) for t in build.tables)
            and not any(
                r.tables & build.tables and not (r.shared and build.shared) for r in self._running
            )
        )

    def next_task(self) -> _Task | None:
        early_left = any(not b.late for b in (*self.builds, *self._running))
        for i, build in enumerate(self.builds):
            if self._ready(build, early_left):
                self._running.append(build)
                return self.builds.pop(i)
        return self.parts.next_task()

    def done(self, task: _Task, result: Any) -> None:
        if isinstance(task, StagedBuild):
            self._running.remove(task)
            return
        self._loading[str(task.table)] -= 1
        self.parts.done(task, result)

    def finished(self) -> bool:
        return self.parts.finished() and not self.builds and not self._running


def _resumed_parts(
    writer: ResumableWriter, manifest: PartsManifest, fresh: bool, uri: str
) -> dict[str, str] | None:
    """The parts an earlier attempt loaded (name -> digest), with :data:`SCHEMA` when it
    staged the schema; None when the staging area starts empty (then it is made so)."""
    progress = writer.progress() if writer.resumed else None
    reason = ""
    if writer.resumed:
        if fresh:
            reason = "fresh=True"
        elif progress is None or DUMP not in progress:
            reason = "it holds no progress record"
        elif progress[DUMP] != manifest.digest:
            raise ResumeMismatchError(
                f"an earlier restore of {safe_uri(uri)} into this database stopped with a dump "
                f"of digest {progress[DUMP]}; the dump there now has digest {manifest.digest}: "
                "it changed since. Nothing was changed; restore again with fresh=True "
                "(--fresh) to start over with the dump as it is now"
            )
        elif SCHEMA not in progress:
            reason = "it stopped while creating the tables"
        if reason:
            logger.warning("discarding the staging area of an earlier attempt (%s)", reason)
            writer.discard_staging()
            progress = None
        else:
            logger.info(
                "resuming an earlier restore: %d of %d parts are loaded",
                len([k for k in progress or {} if not k.startswith("@")]),
                len(manifest.data_parts()),
            )
    if progress is None:
        writer.start_progress()
        writer.mark(DUMP, manifest.digest)
    return progress


def restore_parts(
    target: RestoreTarget,
    uri: str,
    *,
    jobs: int = 1,
    fresh: bool = False,
    allow_unverified: bool = False,
    allow_routines: bool = False,
    on_record: RecordObserver | None = None,
    encryption: Encryption | None = None,
) -> RestoreSummary:
    """Restore ``target``'s database from the multi-part dump at ``uri`` (see the module
    docstring), every part checked against its trailer and the manifest before anything of
    the target changes. ``fresh`` discards what an earlier attempt left to resume.
    An encrypted dump is read with a key of ``encryption``, each part authenticated before
    it is loaded; being authentic, its routines are trusted (the trust rule)."""
    if not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs must be a whole number of at least 1, not {jobs!r}")
    params = target.transport_params
    manifest = load_manifest(uri, params, encryption)
    missing = missing_parts(uri, params, manifest)
    if missing:
        raise DumpIntegrityError(
            f"{safe_uri(uri)}: {len(missing)} part(s) the manifest names are missing "
            f"({', '.join(missing[:5])}); nothing was changed"
        )
    logger.info(
        "restoring %s from %s (%d parts)", target.safe_url, safe_uri(uri), len(manifest.parts)
    )
    if not target.database_exists():
        target.create_database()
    engine = target.engine
    options = target.restore_options

    def rules() -> DumpRules:
        return DumpRules(
            allow_unverified=allow_unverified,
            allow_routines=allow_routines,
            authenticated=manifest.encryption is not None,
            target=engine,
            options=options,
        )

    # The schema part is read and checked whole before anything of the target changes.
    header, before, post = _schema_part(uri, params, manifest, rules())
    ops = get_dialect(engine)
    refused = ops.why_not_resumable(
        header, [object_spec(r) for _line, r, _raw in before if r["kind"] == "object"]
    )
    table_records = {r["table"]: r for _line, r, _raw in before if r["kind"] == "table"}
    if refused is not None:
        logger.info("this restore cannot resume after a failure: %s", refused)
    if jobs > 1:  # beside the restore's own session, its lock's and its loaders'
        spare = ops.spare_connections(engine)
        jobs = jobs_allowed(None if spare is None else spare - 4, jobs, "restoring")
    label = resume_label(str(engine.url.database), uri)
    summary = RestoreSummary(parts=len(manifest.parts))
    report = WorkerReport()
    builds: dict[int, StagedBuild] = {}
    with (
        restore_lock(engine),
        ops.open_restore(engine, label, options, resumable=refused is None) as writer,
    ):
        resumable = writer if isinstance(writer, ResumableWriter) else None
        progress = _resumed_parts(resumable, manifest, fresh, uri) if resumable else None
        loader = Loader(writer)
        staged_schema = progress is not None and SCHEMA in progress
        writer.begin(header)
        for line, record, raw in before:
            if resumable is not None and staged_schema:
                if record["kind"] == "table":
                    resumable.staged(loader.known(record).spec)
                else:
                    resumable.staged(object_spec(record))
            else:
                apply_record(loader, header, line, record)
            if on_record is not None and record["kind"] == "table":
                on_record(record, raw)
        if resumable is not None and not staged_schema:
            resumable.mark(SCHEMA, manifest.digest)
        done = {p.name for p in manifest.data_parts() if (progress or {}).get(p.name) == p.digest}
        summary.resumed_parts = len(done)
        todo = [p for p in manifest.data_parts() if p.name not in done]

        def seen(part: PartEntry, rows: int) -> None:
            if on_record is not None:
                on_record({"kind": "data", "table": part.table, "rows": rows}, None)

        if resumable is not None:
            run = _Run(
                uri,
                params,
                manifest,
                table_records,
                {name: t.spec for name, t in loader.tables.items()},
                rules,
                resumable.is_retryable,
                clear_first=progress is not None,
            )
            builds = resumable.staged_builds([(line, object_spec(r)) for line, r in post])
            built = {n for n in builds if (progress or {}).get(f"{POST}{n}") == manifest.digest}
            if builds:
                logger.info(
                    "building %d indexes and keys in the staging area (%d built by an "
                    "earlier attempt)",
                    len(builds),
                    len(built),
                )
            scheduler = _RestoreScheduler(
                _PartScheduler(
                    todo, {str(p.table) for p in manifest.data_parts() if p.name in done}, seen
                ),
                [b for n, b in builds.items() if n not in built],
            )
            _load_all(run, resumable, scheduler, jobs, report)
            if progress is not None and OBJECTS in progress:
                resumable.discard_objects()  # those an earlier attempt made, to make anew
            else:
                resumable.mark(OBJECTS, manifest.digest)
            resumable.begin_swap()
        else:
            if jobs > 1:
                logger.info(
                    "a %s restore of this dump loads its parts one by one (one staging "
                    "transaction or file)",
                    ops.name,
                )
            for part in todo:
                rows = 0
                for line, record, _raw in checked_part(
                    uri, params, manifest, part, rules(), table_records
                ):
                    if record["kind"] == "data":
                        apply_record(loader, header, line, record)
                        rows += len(record["data"])
                seen(part, rows)
        for line, record in post:
            if line in builds:  # built in the staging area: what the swap needs of it
                assert resumable is not None
                resumable.staged(object_spec(record))
            else:
                apply_record(loader, header, line, record)
        # What the committed parts' records say the server loaded (a resumable staging):
        # the same check as counting every table, without reading them all again.
        counted = resumable.loaded_rows() if resumable is not None else None
        for name, table in loader.tables.items():
            loaded = counted.get(name, 0) if counted is not None else writer.row_count(table.spec)
            expected = manifest.tables.get(name, 0)
            if loaded != expected:
                raise DumpIntegrityError(
                    f"table {name!r}: {loaded} rows loaded, the dump holds {expected}"
                )
            summary.tables[name] = loaded
        if resumable is not None:
            resumable.forget_progress()
        writer.swap()
    summary.header = header
    summary.worker_peak_mb = round(report.peak_mb, 1)
    logger.info(
        "restored %d tables, %d rows from %d parts (%d loaded by an earlier attempt)",
        len(summary.tables),
        summary.rows,
        len(manifest.parts),
        summary.resumed_parts,
    )
    return summary


def _run_task(run: _Run, loader: PartLoader, task: _Task) -> int:
    if isinstance(task, StagedBuild):
        return build_post(run, loader, task)
    return load_part(run, loader, task)


def _load_all(
    run: _Run,
    writer: ResumableWriter,
    scheduler: _RestoreScheduler,
    jobs: int,
    report: WorkerReport,
) -> None:
    """Every part and build the scheduler hands out done: by ``jobs`` forked workers, each
    on its own connection into the staging area, or here on one when ``jobs`` is 1."""
    if jobs <= 1 or scheduler.size() <= 1:
        with writer.part_loader() as loader:
            while (task := scheduler.next_task()) is not None:
                scheduler.done(task, _run_task(run, loader, task))
        return
    if run.transport_params and run.transport_params.get("client") is not None:
        drop_idle_connections(run.transport_params["client"])
    engine = getattr(writer, "engine", None)

    @contextmanager
    def open_state() -> Iterator[PartLoader]:
        if engine is not None:
            engine.dispose(close=False)  # the parent's pooled connections are not ours
        with writer.part_loader() as loader:
            yield loader

    def work(loader: PartLoader, task: _Task) -> int:
        return _run_task(run, loader, task)

    with worker_pool(min(jobs, scheduler.size()), open_state, work, report) as drive:
        drive(scheduler)


def _schema_part(
    uri: str, params: dict[str, Any] | None, manifest: PartsManifest, rules: DumpRules
) -> tuple[Record | None, list[tuple[int, Record, bytes | None]], list[tuple[int, Record]]]:
    """The schema part, checked to its trailer: its header, the table records and objects
    before the data (with their lines and text), and the objects after it."""
    header: Record | None = None
    before: list[tuple[int, Record, bytes | None]] = []
    post: list[tuple[int, Record]] = []
    for line, record, raw in checked_part(uri, params, manifest, manifest.parts[0], rules):
        kind = record["kind"]
        if kind == "header":
            header = record
        elif kind == "object" and record.get("phase") == "post":
            post.append((line, record))
        elif kind in ("table", "object"):
            before.append((line, record, raw))
    return header, before, post
