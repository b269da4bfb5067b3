"""Drive a dialect's BackupReader straight into a RestoreWriter, through JSON and the codecs.

Used by the per-dialect tests to check a dialect module on its own, without the dump
engine on top.
"""

from __future__ import annotations

import json
import uuid

from sqlalchemy.engine import Engine

from airflow_provider_zenmigrate.core.dialects import get_dialect
from airflow_provider_zenmigrate.core.dump.codecs import decoders, encoders


def copy_via_dialect(
    source: Engine, target: Engine, chunk_rows: int = 500, fail_after: int = -1
) -> dict[str, int]:
    """Copy ``source`` into ``target`` (an existing database); returns rows per table.

    Objects a reader lists in ``pre_objects()`` are created before the tables; with
    ``fail_after=n`` the copy raises before the n-th table (to test atomicity).
    """
    counts: dict[str, int] = {}
    with get_dialect(source).open_backup(source) as reader:
        pre = list(getattr(reader, "pre_objects", list)())
        tables = reader.tables()
        label = uuid.uuid4().hex[:8]
        with get_dialect(target).open_restore(target, label) as writer:
            for obj in pre:
                writer.create_object(obj)
            for n, table in enumerate(tables):
                if n == fail_after:
                    raise RuntimeError("simulated failure in the middle of the load")
                codecs = [c.codec for c in table.columns]
                enc, dec = encoders(codecs), decoders(codecs)
                writer.create_table(table)
                counts[table.name] = 0
                for chunk in reader.rows(table, chunk_rows):
                    assert len(chunk) <= chunk_rows
                    wire = json.dumps(
                        [[e(v) for e, v in zip(enc, row, strict=True)] for row in chunk]
                    )
                    rows = [
                        tuple(d(v) for d, v in zip(dec, row, strict=True))
                        for row in json.loads(wire)
                    ]
                    writer.load_rows(table, rows)
                    counts[table.name] += len(rows)
            for obj in reader.objects():
                writer.create_object(obj)
            for table in tables:
                assert writer.row_count(table) == counts[table.name], table.name
            writer.swap()
    return counts
