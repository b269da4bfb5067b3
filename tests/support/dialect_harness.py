"""Drive a dialect's BackupReader straight into a RestoreWriter, through JSON and the codecs.

Used by the per-dialect tests to check a dialect module on its own, without the dump
engine on top. Both backup paths run for every table: the rows the engine encodes itself
(``rows`` + encoders) and, where the dialect has it, the rows the server renders
(``rendered_rows``); they must agree value for value, and the rendered ones are loaded
through ``load_encoded`` as a restore loads them.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

from sqlalchemy.engine import Engine

from airflow_provider_zenmigrate.core.dialects import get_dialect
from airflow_provider_zenmigrate.core.dump.codecs import decoders, encoders
from airflow_provider_zenmigrate.core.dump.model import TableSpec


def _comparable(table: TableSpec, rows: list[tuple[Any, ...]]) -> list[str]:
    """Encoded rows in a form where equal values compare equal (decoded and re-encoded;
    a zero date, which stays the server's text, without its separator and the fraction's
    trailing zeros: the server writes six digits, the driver the column's own)."""
    codecs = [c.codec for c in table.columns]
    dec, enc = decoders(codecs), encoders(codecs)
    out = []
    for row in rows:
        values = []
        for d, e, codec, v in zip(dec, enc, codecs, row, strict=True):
            value = e(d(v))
            if codec in ("date", "datetime") and isinstance(d(v), str):
                value = value.replace("T", " ")
                if "." in value:
                    value = value.rstrip("0").removesuffix(".")
            values.append(value)
        out.append(json.dumps(values))
    return out


def rendered_batches(
    rendered: Iterator[tuple[int, bytes]] | None, chunk_rows: int
) -> Iterator[list[dict[str, Any]]]:
    """The rows of a ``rendered_rows`` stream, a decoded batch at a time, each checked
    against the count it came with and ``chunk_rows``."""
    assert rendered is not None
    for count, block in rendered:
        batch = json.loads(b"[" + block + b"]")
        assert len(batch) == count <= chunk_rows, (count, len(batch), block[:300])
        yield batch


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
            writer.begin(reader.scope() or None)
            for obj in pre:
                writer.create_object(obj)
            for n, table in enumerate(tables):
                if n == fail_after:
                    raise RuntimeError("simulated failure in the middle of the load")
                codecs = [c.codec for c in table.columns]
                enc = encoders(codecs)
                writer.create_table(table)
                counts[table.name] = 0
                encoded: list[tuple[Any, ...]] = []
                for chunk in reader.rows(table, chunk_rows):
                    assert len(chunk) <= chunk_rows
                    wire = json.dumps(
                        [[e(v) for e, v in zip(enc, row, strict=True)] for row in chunk]
                    )
                    encoded.extend(tuple(row) for row in json.loads(wire))
                rendered = reader.rendered_rows(table, chunk_rows)
                if rendered is not None:
                    names = [c.name for c in table.columns]
                    from_server: list[tuple[Any, ...]] = []
                    for batch in rendered_batches(rendered, chunk_rows):
                        for row in batch:
                            assert list(row) == names, (table.name, list(row))
                            from_server.append(tuple(row[n] for n in names))
                    assert _comparable(table, from_server) == _comparable(table, encoded), (
                        f"{table.name}: rendered rows differ from encoded rows"
                    )
                    encoded = from_server
                for start in range(0, len(encoded), chunk_rows):
                    chunk = encoded[start : start + chunk_rows]
                    writer.load_encoded(table, list(zip(*chunk, strict=True)))
                counts[table.name] = len(encoded)
            for obj in reader.objects():
                writer.create_object(obj)
            for table in tables:
                assert writer.row_count(table) == counts[table.name], table.name
            writer.swap()
    return counts
