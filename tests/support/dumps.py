"""Dumps built and read in memory: records to lines, a forger's trailer, and the restore's own
checks without a database (for the unit tier and the hostile-input tests)."""

from __future__ import annotations

import io
import json
from typing import Any

from airflow_provider_zenmigrate.core.dump.model import TableSpec
from airflow_provider_zenmigrate.core.dump.reader import DumpVerifier, entries_from_stream
from airflow_provider_zenmigrate.core.dump.records import FORMAT, VERSION, DumpDigest, serialize
from airflow_provider_zenmigrate.core.dump.typed_data import DataDecoders

Record = dict[str, Any]
HEADER: Record = {"kind": "header", "format": FORMAT, "version": VERSION}


def table_record(name: str, columns: dict[str, str]) -> Record:
    """A table record declaring ``columns`` (name -> codec)."""
    return {
        "kind": "table",
        "table": name,
        "create_stmt": f"CREATE TABLE {name} (x int)",
        "columns": [{"name": column, "codec": codec} for column, codec in columns.items()],
    }


def to_bytes(records: list[Record]) -> bytes:
    """The records as dump lines, exactly as serialised (no trailer added)."""
    return b"".join(serialize(r) + b"\n" for r in records)


def reseal(records: list[Record]) -> list[Record]:
    """Recompute the trailer, as a forger who knows the format would."""
    body = [r for r in records if r.get("kind") != "trailer"]
    digest = DumpDigest()
    for record in body:
        digest.add_line(serialize(record), record)
    return [*body, digest.trailer()]


def sealed(records: list[Record]) -> bytes:
    """A dump with a valid trailer: a refusal then comes from the checks, not the digest."""
    return to_bytes(reseal(records))


def records_of(data: bytes) -> list[Record]:
    return [json.loads(line) for line in data.splitlines()]


def read_dump(data: bytes, **kwargs: Any) -> list[Record]:
    """Read and verify a dump the way a restore does, without a database."""
    verifier = DumpVerifier(**kwargs)
    records = [verifier.check(n, r, raw) for n, r, raw in entries_from_stream(io.BytesIO(data))]
    verifier.finish()
    return records


def data_rows(table: TableSpec, rows: list[Record]) -> Any:
    """The ``data`` of a data record of ``rows`` as the reader hands it on: checked (and
    later decoded) by typed_data for a line in the backup's own shape, else parsed
    generically."""
    decoders = DataDecoders()
    columns = {c.name: c.codec for c in table.columns}
    decoders.declare(table_record(table.name, columns))
    line = serialize({"kind": "data", "table": table.name, "data": rows})
    record = decoders.decode(line) or json.loads(line)
    return record["data"]
