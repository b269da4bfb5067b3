"""Producing a dump: one consistent snapshot of a database as a stream of records."""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from collections.abc import Callable, Generator, Iterator
from contextlib import closing
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import Engine

from .. import __version__
from .dialects import get_dialect
from .dialects.base import BackupReader, Span
from .dump.codecs import encoders
from .dump.model import BackupScope, ObjectSpec, TableSpec
from .dump.records import FORMAT, VERSION, DumpDigest, Record, data_line, serialize
from .errors import RowsNotRendered
from .storage import open_for_write, safe_uri

if TYPE_CHECKING:
    from .crypto import Encryption

logger = logging.getLogger(__name__)
#: The logger of backup progress lines (for Airflow's task logs): a caller reporting progress
#: from its own ``on_record`` callback, as the command line does, silences this one logger.
PROGRESS_LOGGER = f"{__name__}.progress"
progress_logger = logging.getLogger(PROGRESS_LOGGER)

DEFAULT_CHUNK_ROWS = 2000
#: Rows fetched from the server at a time, and the size a data record aims at.
FETCH_ROWS = 250
RECORD_BYTES = 4 * 1024 * 1024
#: Seconds between two progress lines in the log.
PROGRESS_EVERY = 5.0


@dataclass
class BackupResult:
    """What a finished backup wrote (the operators' XCom manifest)."""

    uri: str
    bytes: int
    tables: dict[str, int]
    checksum: str
    revisions: list[str]
    seconds: float
    created_at: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        return sum(self.tables.values())

    def manifest(self) -> dict[str, Any]:
        return {
            "uri": self.uri,
            "bytes": self.bytes,
            "tables": len(self.tables),
            "rows": self.rows,
            "checksum": self.checksum,
            "revision": "+".join(self.revisions) if self.revisions else None,
            "created_at": self.created_at,
            "duration": round(self.seconds, 3),
            **self.extra,  # PostgreSQL: the schemas held and those left out, with why
        }


class ProgressLog:
    """Logs tables done, rows and rate at most every :data:`PROGRESS_EVERY` seconds (to
    :data:`PROGRESS_LOGGER`)."""

    def __init__(self, action: str, tables: int) -> None:
        self.action = action
        self.tables = tables
        self.done = 0
        self.rows = 0
        self.started = self._last = time.monotonic()

    def add(self, rows: int, table_done: bool = False) -> None:
        self.rows += rows
        self.done += table_done
        now = time.monotonic()
        if now - self._last >= PROGRESS_EVERY or (table_done and self.done == self.tables):
            self._last = now
            rate = self.rows / max(now - self.started, 1e-9)
            progress_logger.info(
                "%s progress: %d/%d tables, %d rows, %.0f rows/s",
                self.action,
                self.done,
                self.tables,
                self.rows,
                rate,
            )


def _revisions(reader: BackupReader, tables: list[TableSpec], version_table: str) -> list[str]:
    """The Alembic revisions as of the snapshot (read through it, so they match the data)."""
    for table in tables:
        if table.name == version_table:
            index = [c.name for c in table.columns].index("version_num")
            return sorted(str(row[index]) for chunk in reader.rows(table, 100) for row in chunk)
    return []


def table_record(table: TableSpec) -> Record:
    return {
        "kind": "table",
        "table": table.name,
        "create_stmt": table.create_stmt,
        "columns": [asdict(c) for c in table.columns],
        "key": list(table.key),
        "options": table.options,
    }


def object_record(obj: ObjectSpec, phase: str) -> Record:
    record: Record = {
        "kind": "object",
        "phase": phase,
        "object_type": obj.object_type,
        "name": obj.name,
        "table": obj.table,
        "create_stmt": obj.create_stmt,
    }
    if obj.options:
        record["options"] = obj.options
    return record


def _rendered_records(
    rendered: Iterator[tuple[int, bytes]], chunk_rows: int, batch_rows: int
) -> Iterator[tuple[int, list[bytes]]]:
    """Group rendered blocks (of at most ``batch_rows`` rows) into data records of at most
    ``chunk_rows`` rows and about :data:`RECORD_BYTES` bytes: (rows, blocks)."""
    blocks: list[bytes] = []
    rows = size = 0
    for count, block in rendered:
        blocks.append(block)
        rows += count
        size += len(block)
        if rows + batch_rows > chunk_rows or size >= RECORD_BYTES:
            yield rows, blocks
            blocks, rows, size = [], 0, 0
    if blocks:
        yield rows, blocks


def _skip_rows(
    batches: Iterator[list[tuple[Any, ...]]], skip: int
) -> Iterator[list[tuple[Any, ...]]]:
    """The batches without their first ``skip`` rows: those a rendered stream that stopped
    (RowsNotRendered, rare) had already written; read again rather than asked of every
    dialect as an offset."""
    for batch in batches:
        if skip >= len(batch):
            skip -= len(batch)
            continue
        yield batch[skip:] if skip else batch
        skip = 0


def header_record(
    engine: Engine, reader: BackupReader, tables: list[TableSpec], version_table: str
) -> Record:
    """The dump's first record: what it is, where from, and as of which revision."""
    return {
        "kind": "header",
        "format": FORMAT,
        "version": VERSION,
        "dialect": get_dialect(engine).name,
        "server_version": reader.server_version,
        "database": engine.url.database,
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="microseconds"),
        "revisions": _revisions(reader, tables, version_table),
        "version_table": version_table,
        **reader.scope(),  # PostgreSQL: schemas held, left out (why), not carried
        "tool": "airflow-provider-zenmigrate",
        "tool_version": __version__,
    }


def table_data(
    reader: BackupReader,
    table: TableSpec,
    digest: DumpDigest,
    *,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    materialize: bool = True,
    progress: ProgressLog | None = None,
    span: Span | None = None,
) -> Iterator[tuple[Record, bytes]]:
    """The data records of ``table`` (of its ``span`` only, when given) with their lines,
    each accounted in ``digest``; see :func:`iter_backup` for ``materialize``."""

    def emit(record: Record) -> tuple[Record, bytes]:
        return record, digest.line_of(record)

    def count(rows: int) -> None:
        if progress is not None:
            progress.add(rows)

    batch_rows = min(chunk_rows, FETCH_ROWS)
    rendered = reader.rendered_rows(table, batch_rows, span)
    rows_done = 0
    if rendered is not None:
        # Closed here, not when collected: a stream left open past the reader's
        # session (a failed write) would meet the session's cleanup mid-result.
        try:
            with closing(rendered):
                for rows, blocks in _rendered_records(rendered, chunk_rows, batch_rows):
                    line = data_line(table.name, blocks)
                    digest.add_data_line(line, table.name, rows)
                    rows_done += rows
                    count(rows)
                    if materialize:
                        yield json.loads(line), line
                    else:
                        yield {"kind": "data", "table": table.name, "rows": rows}, line
        except RowsNotRendered:
            logger.info(
                "table %s: a row too long for the server to render; rows after the "
                "first %d are encoded here",
                table.name,
                rows_done,
            )
        else:
            logger.debug("table %s: %d rows (server-rendered)", table.name, rows_done)
            return
    names = [c.name for c in table.columns]
    codecs = [c.codec for c in table.columns]
    native = all(c == "native" for c in codecs)
    encode = encoders(codecs)
    pending: list[dict[str, Any]] = []
    row_bytes = 0.0  # learnt from the first record of the table
    # Rows are fetched in small batches and grouped into records of at most
    # chunk_rows rows and about RECORD_BYTES bytes, so wide rows (large BLOBs) do
    # not make a record, or the memory it takes, grow with chunk_rows.
    # No name holds the row stream: a consumer that stops early finalises it with the
    # loop, before the reader's session is cleaned up.
    for batch in _skip_rows(reader.rows(table, batch_rows, span), rows_done):
        if native:
            pending.extend(dict(zip(names, row, strict=True)) for row in batch)
        else:
            pending.extend(
                {n: e(v) for n, e, v in zip(names, encode, row, strict=True)} for row in batch
            )
        if row_bytes == 0 or len(pending) >= chunk_rows or len(pending) * row_bytes >= RECORD_BYTES:
            record, line = emit({"kind": "data", "table": table.name, "data": pending})
            row_bytes = len(line) / len(pending)
            rows_done += len(pending)
            count(len(pending))
            pending = []
            yield record, line
    if pending:
        rows_done += len(pending)
        count(len(pending))
        yield emit({"kind": "data", "table": table.name, "data": pending})
    logger.debug("table %s: %d rows", table.name, rows_done)


def iter_backup(
    engine: Engine,
    *,
    version_table: str = "alembic_version",
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    materialize: bool = True,
    scope: BackupScope | None = None,
) -> Generator[tuple[Record, bytes], None, None]:
    """Yield every record of a backup of ``engine``'s database with its serialised line.

    The last record is the trailer; a consumer that stops early has an incomplete dump.
    With ``materialize=False`` a data record whose rows the server rendered is yielded as
    ``{"kind": "data", "table": ..., "rows": <count>}`` beside its full line (for writers,
    which need only the line); otherwise every record is whole. ``scope`` narrows a
    PostgreSQL backup to some schemas (the header says which were left out).
    """
    ops = get_dialect(engine)
    digest = DumpDigest()

    def emit(record: Record) -> tuple[Record, bytes]:
        return record, digest.line_of(record)

    with ops.open_backup(engine, scope) as reader:
        tables = reader.tables()
        pre: list[ObjectSpec] = list(getattr(reader, "pre_objects", list)())
        yield emit(header_record(engine, reader, tables, version_table))
        for obj in pre:
            yield emit(object_record(obj, "pre"))
        progress = ProgressLog("backup", len(tables))
        for table in tables:
            yield emit(table_record(table))
            yield from table_data(
                reader,
                table,
                digest,
                chunk_rows=chunk_rows,
                materialize=materialize,
                progress=progress,
            )
            progress.add(0, table_done=True)
        for obj in reader.objects():
            yield emit(object_record(obj, "post"))
    trailer = digest.trailer()
    yield trailer, serialize(trailer)


def backup_to_uri(
    engine: Engine,
    dump_file: str,
    *,
    transport_params: dict[str, Any] | None = None,
    encryption: Encryption | None = None,
    version_table: str = "alembic_version",
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    scope: BackupScope | None = None,
    on_record: Callable[[Record, bytes], None] | None = None,
    jobs: int = 1,
) -> BackupResult:
    """Back ``engine``'s database up to ``dump_file`` (what
    ``MigrationUtils.backup_database_to_file`` documents) and say what was written.

    The dump is published only once complete, then its manifest beside it; ``jobs`` above 1
    writes a multi-part dump (see :mod:`.parts`).
    """
    logger.info(
        "backing up %s to %s", engine.url.render_as_string(hide_password=True), safe_uri(dump_file)
    )
    if not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs must be a whole number of at least 1, not {jobs!r}")
    if jobs > 1:
        from .parts.backup import backup_parts

        return backup_parts(
            engine,
            dump_file,
            jobs=jobs,
            transport_params=transport_params,
            version_table=version_table,
            chunk_rows=chunk_rows,
            scope=scope,
            on_record=on_record,
            encryption=encryption,
        )
    started = time.monotonic()
    header: Record | None = None
    trailer: Record | None = None
    records = iter_backup(
        engine, version_table=version_table, chunk_rows=chunk_rows, materialize=False, scope=scope
    )
    # Closed here, not when the generator is collected: a failed write's traceback keeps this
    # frame, and with it a backup's open snapshot and connection, alive as long as the error.
    with (
        closing(records),
        open_for_write(dump_file, transport_params, encryption=encryption) as stream,
    ):
        for record, line in records:
            if header is None:
                header = record
            trailer = record
            if on_record is not None:
                on_record(record, line)
            stream.write(line)
            stream.write(b"\n")
    assert header is not None and trailer is not None  # iter_backup always yields both
    from .catalog import write_manifest

    manifest = write_manifest(dump_file, header, trailer, transport_params, encryption=encryption)
    return BackupResult(
        uri=safe_uri(dump_file),
        bytes=int(manifest["size"]),
        tables={name: t["rows"] for name, t in trailer["tables"].items()},
        checksum=str(trailer["digest"]),
        revisions=list(header.get("revisions") or []),
        seconds=time.monotonic() - started,
        created_at=str(header.get("created_at", "")),
        extra={k: header[k] for k in ("schemas", "excluded_schemas") if k in header},
    )
