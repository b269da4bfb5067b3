"""A parallel backup: one snapshot read by ``jobs`` worker processes, each table (or key or
block range of it) written as a part of its own, the manifest published last."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Engine

from ..backup import (
    DEFAULT_CHUNK_ROWS,
    BackupResult,
    ProgressLog,
    header_record,
    object_record,
    table_data,
    table_record,
)
from ..crypto import Encryption, SharedKey
from ..dialects import get_dialect
from ..dialects.base import BackupReader, SharedSnapshot, SliceDomain, Span
from ..dump.model import BackupScope, TableSpec
from ..dump.records import DumpDigest, Record, serialize
from ..errors import StorageError, StorageNotFoundError, ZenMigrateError
from ..storage import (
    Backend,
    drop_idle_connections,
    open_for_write,
    safe_uri,
    scrub,
    translated_errors,
)
from .layout import MANIFEST_NAME, PART_NAME, child_uri, part_name, part_suffix, prefix_key
from .manifest import PartEntry, PartsManifest, sealed_json
from .workers import Scheduler, WorkerReport, jobs_allowed, worker_pool

logger = logging.getLogger(__name__)

#: A table the server says is smaller than two of these is one part; a larger one is cut
#: into spans whose first is about this size.
PART_BYTES = 64 * 1024 * 1024
#: Seconds a part should take to write: later spans of a table are sized from the time
#: the earlier ones took (as mydumper sizes its chunks), so parts take about as long each.
PART_SECONDS = 1.5
#: A part, or the temporary file of a local part being written (see storage.local).
_LEFT_BY_A_BACKUP = re.compile(rf"\.?{PART_NAME.pattern}(\.[0-9a-f]{{8}}\.partial)?")
#: Attempts at a part whose store failed (a transient error retries that part only).
PART_ATTEMPTS = 3


@dataclass(frozen=True)
class PartTask:
    """One data part to write: the rows of ``table`` in ``span`` (all of them when None)."""

    index: int
    table: TableSpec
    header: Record
    span: Span | None = None
    unit: str | None = None


@dataclass
class PartDone:
    entry: PartEntry
    seconds: float


@dataclass
class _Context:
    """What every part needs (the same in every worker)."""

    uri: str
    suffix: str
    transport_params: dict[str, Any] | None
    chunk_rows: int
    #: The backup's one data key when it is encrypted (every part sealed under it).
    encryption: SharedKey | None = None


def write_stream(
    uri: str,
    transport_params: dict[str, Any] | None,
    lines: Iterator[bytes],
    encryption: SharedKey | None = None,
) -> int:
    """Publish ``lines`` at ``uri`` (each followed by a newline), sealed under the backup's
    data key when ``encryption`` is given; returns the stored size."""
    with open_for_write(uri, transport_params, encryption=encryption) as stream:
        for line in lines:
            stream.write(line)
            stream.write(b"\n")
    backend, _ = prefix_key(uri, transport_params)
    with translated_errors("describing", backend.location):
        info = backend.stat(backend.location.key)
    if info is None:
        raise StorageNotFoundError(f"part {safe_uri(uri)} is missing after its upload")
    return info.size


def _part_lines(
    ctx: _Context, reader: BackupReader, task: PartTask, digest: DumpDigest
) -> Iterator[bytes]:
    span = list(task.span) if task.span is not None else None
    part = {"index": task.index, "table": task.table.name, "span": span, "unit": task.unit}
    yield digest.line_of({**task.header, "part": part})
    yield digest.line_of(table_record(task.table))
    for _record, line in table_data(
        reader, task.table, digest, chunk_rows=ctx.chunk_rows, materialize=False, span=task.span
    ):
        yield line
    yield serialize(digest.trailer())


def write_part(ctx: _Context, reader: BackupReader, task: PartTask) -> PartDone:
    """Write one data part, again (up to :data:`PART_ATTEMPTS` times) when the store fails;
    the snapshot is read again for it, so the part is the same."""
    name = part_name(task.index, ctx.suffix)
    for attempt in range(1, PART_ATTEMPTS + 1):
        started = time.monotonic()
        digest = DumpDigest()
        try:
            with reader.retryable():
                size = write_stream(
                    child_uri(ctx.uri, name),
                    ctx.transport_params,
                    _part_lines(ctx, reader, task, digest),
                    ctx.encryption,
                )
        except StorageNotFoundError:
            raise
        except StorageError as exc:
            if attempt == PART_ATTEMPTS:
                raise
            logger.warning("part %s: %s; writing it again (attempt %d)", name, exc, attempt + 1)
            time.sleep(attempt)
            continue
        rows = digest.rows.get(task.table.name, 0)
        entry = PartEntry(
            name=name,
            kind="data",
            digest=digest.hexdigest(),
            bytes=size,
            rows=rows,
            table=task.table.name,
            span=task.span,
            unit=task.unit,
        )
        return PartDone(entry, time.monotonic() - started)
    raise AssertionError("unreachable")  # pragma: no cover


@dataclass
class _TableCut:
    """How one table is being cut: the next span's start and size, in its domain's units."""

    table: TableSpec
    domain: SliceDomain | None
    next_low: int | None = None
    step: int = 0
    #: The first span's size: later ones never shrink below it. A store's fixed cost per
    #: part (round trips) would otherwise make every part seem slow and halve them to
    #: nothing after one slow part (a store outage).
    min_step: int = 0
    dispensed: int = 0
    done: int = 0
    rows: int = 0
    exhausted: bool = False


@dataclass
class _BackupScheduler(Scheduler[PartTask]):
    """Tables in order; a large one in spans sized to take :data:`PART_SECONDS` each."""

    reader: BackupReader
    tables: list[TableSpec]
    header: Record
    progress: ProgressLog
    on_part: Callable[[PartEntry], None]
    entries: list[PartEntry] = field(default_factory=list)
    _cuts: dict[str, _TableCut] = field(default_factory=dict)
    _position: int = 0
    _index: int = 0
    _outstanding: int = 0

    def _cut(self, table: TableSpec) -> _TableCut:
        domain = self.reader.slice_domain(table)
        if domain is None or domain.bytes < 2 * PART_BYTES or domain.high - domain.low < 2:
            return _TableCut(table, None)
        width = domain.high - domain.low
        step = max(1, int(width * PART_BYTES / max(domain.bytes, 1)))
        return _TableCut(table, domain, next_low=domain.low, step=step, min_step=step)

    def next_task(self) -> PartTask | None:
        while self._position < len(self.tables):
            table = self.tables[self._position]
            cut = self._cuts.get(table.name)
            if cut is None:
                cut = self._cuts[table.name] = self._cut(table)
            if cut.exhausted:
                self._position += 1
                continue
            self._index += 1
            self._outstanding += 1
            cut.dispensed += 1
            if cut.domain is None or cut.next_low is None:
                cut.exhausted = True
                return PartTask(self._index, table, self.header)
            low = cut.next_low
            high = low + cut.step
            first = low == cut.domain.low
            if high >= cut.domain.high:
                cut.exhausted = True
                span: Span = (None if first else low, None)
            else:
                cut.next_low = high
                span = (None if first else low, high)
            return PartTask(self._index, table, self.header, span, cut.domain.unit)
        return None

    def done(self, task: PartTask, result: PartDone) -> None:
        self._outstanding -= 1
        self.entries.append(result.entry)
        cut = self._cuts[task.table.name]
        cut.done += 1
        cut.rows += result.entry.rows
        if cut.domain is not None and task.span is not None and result.seconds > 0:
            low = cut.domain.low if task.span[0] is None else task.span[0]
            high = task.span[1]
            if high is not None:  # the rate this span went at sizes the next ones
                rate = (high - low) / result.seconds
                wanted = max(cut.step // 2, int(rate * PART_SECONDS))
                cut.step = max(cut.min_step, min(cut.step * 2, wanted))
        self.progress.add(result.entry.rows, table_done=cut.exhausted and cut.done == cut.dispensed)
        self.on_part(result.entry)

    def finished(self) -> bool:
        """No part in flight and none left to hand out."""
        return self._outstanding == 0 and all(
            t.name in self._cuts and self._cuts[t.name].exhausted
            for t in self.tables[self._position :]
        )

    def rows(self) -> dict[str, int]:
        return {t.name: self._cuts[t.name].rows for t in self.tables}


def _schema_lines(
    header: Record, reader: BackupReader, tables: list[TableSpec], digest: DumpDigest
) -> Iterator[bytes]:
    yield digest.line_of({**header, "part": {"index": 0, "kind": "schema"}})
    for obj in list(getattr(reader, "pre_objects", list)()):
        yield digest.line_of(object_record(obj, "pre"))
    for table in tables:
        yield digest.line_of(table_record(table))
    for obj in reader.objects():
        yield digest.line_of(object_record(obj, "post"))
    yield serialize(digest.trailer())


def backup_parts(
    engine: Engine,
    uri: str,
    *,
    jobs: int,
    transport_params: dict[str, Any] | None = None,
    version_table: str = "alembic_version",
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    scope: BackupScope | None = None,
    on_record: Callable[[Record, bytes], None] | None = None,
    encryption: Encryption | None = None,
) -> BackupResult:
    """Back ``engine``'s database up to a multi-part dump at ``uri`` with ``jobs`` worker
    processes in one snapshot (see :mod:`.parts`). Nothing is published unless every part
    was: the manifest comes last, and the parts of a failed backup are deleted.

    ``on_record`` sees the header, then one ``{"kind": "data", "table", "rows"}`` per part
    written (for progress), then the manifest's summary as a ``trailer``.

    With a key in ``encryption``, one data key is made and wrapped (the key service is
    called once, before anything is written); every part is sealed under it and the
    manifest carries it wrapped, with what it says of the data sealed
    (:func:`.manifest.sealed_json`).
    """
    if jobs < 1:
        raise ValueError(f"jobs must be at least 1, not {jobs}")
    started = time.monotonic()
    sealing = encryption.share() if encryption is not None and encryption.encrypts else None
    backend, prefix = prefix_key(uri, transport_params)
    with translated_errors("describing", backend.location):
        if backend.stat(prefix + MANIFEST_NAME) is not None:
            raise ZenMigrateError(
                f"a multi-part backup already exists at {safe_uri(uri)}; back up to a new "
                "location (or delete that one first)"
            )
    ops = get_dialect(engine)
    # Two connections of the owner's: its snapshot and (MariaDB) the lock.
    spare = ops.spare_connections(engine) if jobs > 1 else None
    jobs = jobs_allowed(None if spare is None else spare - 2, jobs, "backing up")
    suffix = part_suffix(uri)
    report = WorkerReport()
    written: list[str] = []
    if transport_params and transport_params.get("client") is not None:
        drop_idle_connections(transport_params["client"])
    try:
        with ops.open_shared_backup(engine, scope, jobs) as shared:
            if shared.jobs < jobs:
                logger.warning(
                    "backing up on %d process(es), not %d: %s", shared.jobs, jobs, shared.why
                )
            ctx = _Context(uri, suffix, transport_params, chunk_rows, sealing)
            with _workers(engine, shared, scope, ctx, report) as run_all:
                shared.release()
                reader = shared.reader
                tables = reader.tables()
                header = header_record(engine, reader, tables, version_table)
                if on_record is not None:
                    on_record(header, b"")
                digest = DumpDigest()
                schema_name = part_name(0, suffix)
                size = write_stream(
                    child_uri(uri, schema_name),
                    transport_params,
                    _schema_lines(header, reader, tables, digest),
                    sealing,
                )
                written.append(schema_name)
                schema = PartEntry(schema_name, "schema", digest.hexdigest(), size)

                def seen(entry: PartEntry) -> None:
                    written.append(entry.name)
                    if on_record is not None:
                        on_record({"kind": "data", "table": entry.table, "rows": entry.rows}, b"")

                scheduler = _BackupScheduler(
                    reader, tables, header, ProgressLog("backup", len(tables)), seen
                )
                run_all(scheduler)
        entries = sorted(scheduler.entries, key=lambda e: e.name)
        manifest = PartsManifest(
            header=header,
            parts=[schema, *entries],
            tables=scheduler.rows(),
            jobs=shared.jobs,
            seconds=time.monotonic() - started,
        )
        with translated_errors("publishing", backend.location):
            backend.write_bytes(
                prefix + MANIFEST_NAME,
                manifest.to_json() if sealing is None else sealed_json(manifest, sealing),
            )
    except BaseException:
        _discard(backend, prefix, written)
        raise
    _remove_strays(backend, prefix, {p.name for p in manifest.parts})
    if on_record is not None:
        on_record({"kind": "trailer", "digest": manifest.digest, "tables": manifest.tables}, b"")
    logger.info(
        "backed up %d tables, %d rows in %d parts on %d process(es) to %s",
        len(tables),
        sum(manifest.tables.values()),
        len(manifest.parts),
        shared.jobs,
        safe_uri(uri),
    )
    return BackupResult(
        uri=safe_uri(uri),
        bytes=manifest.size,
        tables=dict(manifest.tables),
        checksum=manifest.digest,
        revisions=list(header.get("revisions") or []),
        seconds=time.monotonic() - started,
        created_at=str(header.get("created_at", "")),
        extra={
            **{k: header[k] for k in ("schemas", "excluded_schemas") if k in header},
            "layout": "parts",
            "parts": len(manifest.parts),
            "jobs": shared.jobs,
            "worker_peak_mb": round(report.peak_mb, 1),
        },
    )


@contextmanager
def _workers(
    engine: Engine,
    shared: SharedSnapshot,
    scope: BackupScope | None,
    ctx: _Context,
    report: WorkerReport,
) -> Iterator[Callable[[_BackupScheduler], None]]:
    """``run_all(scheduler)``: every part written, by worker processes in the shared
    snapshot (forked here, so before ``shared.release``), or here on the owner's reader
    when the snapshot cannot be shared."""
    if shared.jobs <= 1:

        def here(scheduler: _BackupScheduler) -> None:
            while (task := scheduler.next_task()) is not None:
                scheduler.done(task, write_part(ctx, shared.reader, task))

        yield here
        return
    ops = get_dialect(engine)

    @contextmanager
    def open_state() -> Iterator[BackupReader]:
        engine.dispose(close=False)  # the parent's pooled connections are not ours
        with ops.join_backup(engine, shared.token, scope) as reader:
            yield reader

    prepared: list[bool] = []

    def run(reader: BackupReader, task: PartTask) -> PartDone:
        if not prepared:
            reader.tables()  # what the reader learns of the tables (MySQL's column facts)
            prepared.append(True)
        return write_part(ctx, reader, task)

    with worker_pool(shared.jobs, open_state, run, report) as drive:
        yield drive


def _discard(backend: Backend, prefix: str, names: list[str]) -> None:
    """Delete what a failed backup wrote under ``prefix`` (which holds no complete dump: a
    backup into one is refused): the parts it knows of and any other part or temporary
    file of a part there, such as a killed worker's (best effort: without a manifest they
    are no backup anyway)."""
    found = set(names)
    with suppress(Exception):
        found |= {
            info.key[len(prefix) :]
            for info in backend.list(prefix)
            if _LEFT_BY_A_BACKUP.fullmatch(info.key[len(prefix) :])
        }
    for name in sorted(found):
        with suppress(Exception):
            backend.delete(prefix + name)
    with suppress(Exception):  # a killed worker's upload (S3 keeps its parts until aborted)
        backend.abort_uploads(prefix)


def _remove_strays(backend: Backend, prefix: str, keep: set[str]) -> None:
    """Delete parts under ``prefix`` that the manifest does not name (left by an earlier
    attempt that died), so the prefix holds exactly the dump."""
    try:
        for info in list(backend.list(prefix)):
            name = info.key[len(prefix) :]
            if PART_NAME.fullmatch(name) and name not in keep:
                backend.delete(info.key)
    except Exception as exc:  # noqa: BLE001 - the backup is complete; strays are harmless
        logger.warning("could not remove stray parts under %s: %s", prefix, scrub(str(exc)))
