"""The manifest of a multi-part dump, as docs/dump-format.md specifies it: its fields, its
one digest, and every manifest a restore could be misled by refused with the part named."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from airflow_provider_zenmigrate.core.errors import DumpFormatError, DumpIntegrityError
from airflow_provider_zenmigrate.core.parts.manifest import (
    FORMAT,
    VERSION,
    PartEntry,
    PartsManifest,
    parse_manifest,
    span_gaps,
)

HEADER = {"kind": "header", "format": "zenmigrate-dump", "version": 1, "dialect": "mysql"}


def _manifest() -> PartsManifest:
    return PartsManifest(
        header=dict(HEADER),
        parts=[
            PartEntry("part-00000.jsonl.zst", "schema", "a" * 64, 700),
            PartEntry("part-00001.jsonl.zst", "data", "b" * 64, 600, 2, "small"),
            PartEntry("part-00002.jsonl.zst", "data", "c" * 64, 9000, 10, "t", (None, 11), "key"),
            PartEntry("part-00003.jsonl.zst", "data", "d" * 64, 9000, 10, "t", (11, 21), "key"),
            PartEntry("part-00004.jsonl.zst", "data", "e" * 64, 4000, 5, "t", (21, None), "key"),
        ],
        tables={"small": 2, "t": 25},
        jobs=2,
        seconds=1.25,
    )


def _raw() -> dict[str, Any]:
    return dict(json.loads(_manifest().to_json()))


def _redigest(raw: dict[str, Any]) -> bytes:
    """The manifest with its digest recomputed as the format defines it (so only the
    check under test can refuse it)."""
    whole = hashlib.sha256()
    for part in raw["parts"]:
        whole.update(f"{part['name']}\t{part.get('digest')}\n".encode())
    raw["digest"] = whole.hexdigest()
    return json.dumps(raw).encode()


def test_fields_and_digest_are_as_documented() -> None:
    raw = _raw()
    assert raw["format"] == FORMAT == "zenmigrate-parts" and raw["version"] == VERSION == 1
    assert raw["header"] == {k: v for k, v in HEADER.items() if k != "kind"}
    assert raw["tables"] == {"small": 2, "t": 25} and raw["rows"] == 27
    assert raw["bytes"] == 700 + 600 + 9000 + 9000 + 4000
    assert raw["jobs"] == 2 and raw["seconds"] == 1.25
    assert raw["parts"][0] == {
        "name": "part-00000.jsonl.zst",
        "kind": "schema",
        "digest": "a" * 64,
        "bytes": 700,
        "rows": 0,
    }
    assert raw["parts"][2]["span"] == [None, 11] and raw["parts"][2]["unit"] == "key"
    assert "span" not in raw["parts"][1] and raw["parts"][1]["table"] == "small"
    expected = hashlib.sha256(
        "".join(f"{p['name']}\t{p['digest']}\n" for p in raw["parts"]).encode()
    ).hexdigest()
    assert raw["digest"] == expected

    parsed = parse_manifest(_manifest().to_json(), "m")
    assert parsed.parts == _manifest().parts and parsed.tables == {"small": 2, "t": 25}
    assert parsed.digest == expected and parsed.size == raw["bytes"] and parsed.jobs == 2
    span_gaps(parsed, "m")  # covers every table exactly


@pytest.mark.parametrize(
    ("change", "error", "message"),
    [
        (lambda r: r.update(format="zenmigrate-manifest"), DumpFormatError, "not a"),
        (lambda r: r.update(version=2), DumpFormatError, "unknown manifest version 2"),
        (lambda r: r.update(parts=r["parts"][1:]), DumpFormatError, "schema part first"),
        (lambda r: r["parts"][1].update(name="part-1.jsonl"), DumpFormatError, "part-1.jsonl"),
        (lambda r: r["parts"][1].update(kind="index"), DumpFormatError, "part-00001"),
        (lambda r: r["parts"][1].pop("digest"), DumpFormatError, "malformed part entry"),
        (lambda r: r["tables"].update(t=26), DumpIntegrityError, "do not add up"),
        (lambda r: r["tables"].pop("small"), DumpIntegrityError, "do not add up"),
        (lambda r: r.pop("tables"), DumpFormatError, "no table row counts"),
    ],
)
def test_malformed_manifests_are_refused(change: Any, error: type, message: str) -> None:
    raw = _raw()
    change(raw)
    with pytest.raises(error, match=message):
        parse_manifest(_redigest(raw), "s3://b/dump/manifest.json")


def test_a_part_listed_twice_or_overlapping_is_refused() -> None:
    raw = _raw()
    raw["parts"].append(dict(raw["parts"][3]))
    raw["tables"]["t"] += 10
    with pytest.raises(DumpIntegrityError, match="part part-00003.jsonl.zst is listed twice"):
        parse_manifest(_redigest(raw), "m")

    raw = _raw()  # the same span again under a new name: its rows would load twice
    raw["parts"].append({**raw["parts"][3], "name": "part-00005.jsonl.zst"})
    raw["tables"]["t"] += 10
    with pytest.raises(DumpIntegrityError, match="part-00003.jsonl.zst and part-00005"):
        parse_manifest(_redigest(raw), "m")

    raw = _raw()  # a whole-table part beside its spans
    raw["parts"].append({**raw["parts"][1], "name": "part-00005.jsonl.zst", "table": "t"})
    raw["tables"]["t"] += 2
    with pytest.raises(DumpIntegrityError, match="whole part and others"):
        parse_manifest(_redigest(raw), "m")


def test_a_changed_digest_is_refused() -> None:
    raw = _raw()
    raw["parts"][2]["digest"] = "f" * 64  # a part replaced, the manifest's digest kept
    with pytest.raises(DumpIntegrityError, match="is not the digest of its parts"):
        parse_manifest(json.dumps(raw).encode(), "m")
    with pytest.raises(DumpFormatError, match="not JSON"):
        parse_manifest(b"{", "m")


def test_a_manifest_with_a_part_left_out_is_refused() -> None:
    raw = _raw()  # the middle span dropped and the rows adjusted: only coverage tells
    del raw["parts"][3]
    raw["tables"]["t"] = 15
    with pytest.raises(DumpIntegrityError, match=r"table 't' miss the span \[11, 21\)"):
        parse_manifest(_redigest(raw), "m")

    raw = _raw()  # the last span dropped: the table's upper end is missing
    del raw["parts"][4]
    raw["tables"]["t"] = 20
    with pytest.raises(DumpIntegrityError, match="miss an end"):
        parse_manifest(_redigest(raw), "m")
