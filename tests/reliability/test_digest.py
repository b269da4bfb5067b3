"""The digests DumpDigest takes on its background thread are the ones docs/dump-format.md
defines, computed here directly with hashlib: lines of several tables interleaved, small
ones and ones larger than a hashing batch, read back before and after more lines."""

from __future__ import annotations

import hashlib
import random

from airflow_provider_zenmigrate.core.dump.records import DumpDigest, serialize


def test_digests_are_the_documented_sha256s() -> None:
    rng = random.Random(7)
    digest = DumpDigest()
    whole = hashlib.sha256()
    tables: dict[str, list[bytes]] = {"a": [], "b": [], "c": []}
    rows = dict.fromkeys(tables, 0)

    def add(record: dict[str, object]) -> None:
        line = serialize(record)
        digest.add_line(line, record)
        whole.update(line + b"\n")
        if record["kind"] == "data":
            tables[str(record["table"])].append(line)

    add({"kind": "header", "format": "zenmigrate-dump", "version": 1})
    for name in tables:
        add({"kind": "table", "table": name, "create_stmt": "", "columns": []})
    for n in range(60):
        name = rng.choice(sorted(tables))
        size = rng.choice([10, 1000, 300_000, 5 * 1024 * 1024])
        data = [{"v": "x" * size}] * rng.randint(1, 3)
        rows[name] += len(data)
        add({"kind": "data", "table": name, "data": data})
        if n == 30:  # read midway, then go on: later lines still count
            assert digest.hexdigest() == whole.hexdigest()
    add({"kind": "object", "phase": "post", "object_type": "view", "name": "v"})

    assert digest.hexdigest() == whole.hexdigest()
    expected = {
        name: {"rows": rows[name], "sha256": hashlib.sha256(b"".join(lines)).hexdigest()}
        for name, lines in tables.items()
    }
    assert digest.table_summary() == expected
    assert digest.trailer()["records"] == 1 + len(tables) + 60 + 1
