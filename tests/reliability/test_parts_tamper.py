"""A multi-part dump that was tampered with is refused, naming the part, before the target
changes: a data part's bytes changed, a part deleted, a part listed twice under two names
(the manifest re-digested, so only the overlap of spans gives it away), a part swapped for
another dump's. Also bad input: ``jobs`` below 1, and ``jobs`` on a single stream.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_zenmigrate.core.errors import ZenMigrateError
from airflow_provider_zenmigrate.core.parts.backup import backup_parts
from airflow_provider_zenmigrate.core.utils import MigrationUtils
from tests.reliability._outage import (
    fill_parts_source,
    fill_previous,
    manifest_of,
    parts_per_table,
    rel_database,
    side_objects,
    split_into_parts,
)
from tests.support.identity import fingerprint

pytestmark = pytest.mark.parametrize("dialect", ["mysql", "postgresql"])


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


def _dump(source: MigrationUtils, folder: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    split_into_parts(monkeypatch)
    source.backup_database_to_file(str(folder), jobs=2)
    assert parts_per_table(manifest_of(folder))["big"] >= 4, "the table was not cut into parts"
    return folder


def _rewrite_manifest(folder: Path, manifest: dict[str, Any]) -> None:
    """Save ``manifest`` with its digest recomputed as the product does (SHA-256 over every
    part's name and digest), so only the deeper checks can find what was changed."""
    whole = hashlib.sha256()
    for part in manifest["parts"]:
        whole.update(f"{part['name']}\t{part['digest']}\n".encode())
    manifest["digest"] = whole.hexdigest()
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=1))


def _refused(target: MigrationUtils, folder: Path, *names: str) -> str:
    """Restore ``folder`` into ``target`` (jobs=2): refused, naming every one of ``names``,
    the target exactly as it was."""
    before = fingerprint(target.url)
    with pytest.raises(ZenMigrateError) as caught:
        target.restore_database_from_file(str(folder), jobs=2)
    message = str(caught.value)
    for name in names:
        assert name in message, message
    assert fingerprint(target.url) == before, "the refused restore changed the target"
    return message


def _middle_part(folder: Path) -> str:
    """A data part of ``big`` that is neither its first nor its last."""
    big = [p["name"] for p in manifest_of(folder)["parts"] if p.get("table") == "big"]
    return str(big[len(big) // 2])


def test_changed_bytes_in_a_data_part(
    source: MigrationUtils, target: MigrationUtils, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = _dump(source, tmp_path / "dump", monkeypatch)
    name = _middle_part(folder)
    data = (folder / name).read_bytes()
    at = data.index(b'"payload":"') + len(b'"payload":"')
    flipped = b"0" if data[at : at + 1] != b"0" else b"1"
    (folder / name).write_bytes(data[:at] + flipped + data[at + 1 :])  # still valid JSON
    _refused(target, folder, name)


def test_missing_data_part(
    source: MigrationUtils, target: MigrationUtils, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = _dump(source, tmp_path / "dump", monkeypatch)
    name = _middle_part(folder)
    (folder / name).unlink()
    message = _refused(target, folder, name)
    assert "missing" in message, message


def test_part_duplicated_under_a_new_name(
    source: MigrationUtils, target: MigrationUtils, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A copy of a part listed under a new name, rows and digest made to add up: the spans
    overlap, which would load its rows twice."""
    folder = _dump(source, tmp_path / "dump", monkeypatch)
    manifest = manifest_of(folder)
    name = _middle_part(folder)
    entry = next(p for p in manifest["parts"] if p["name"] == name)
    copy = f"part-{len(manifest['parts']) + 50:05d}.jsonl"
    shutil.copyfile(folder / name, folder / copy)
    manifest["parts"].append({**entry, "name": copy})
    manifest["tables"]["big"] += entry["rows"]
    manifest["rows"] += entry["rows"]
    _rewrite_manifest(folder, manifest)
    message = _refused(target, folder, name, copy)
    assert "overlap" in message, message


def test_part_replaced_by_another_dumps_part(
    source: MigrationUtils, target: MigrationUtils, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same part (same table, same span, same rows) of a later backup of the same
    database: a valid part of the wrong dump. (The first part of a table: later spans are
    sized by how fast the earlier ones went, so they differ between two backups.)"""
    folder = _dump(source, tmp_path / "dump", monkeypatch)
    other = _dump(source, tmp_path / "other", monkeypatch)
    name = next(p["name"] for p in manifest_of(folder)["parts"] if p.get("table") == "big")
    ours = next(p for p in manifest_of(folder)["parts"] if p["name"] == name)
    theirs = next(p for p in manifest_of(other)["parts"] if p["name"] == name)
    assert (ours["span"], ours["rows"]) == (theirs["span"], theirs["rows"]), "not the same span"
    shutil.copyfile(other / name, folder / name)
    _refused(target, folder, name)


def test_the_untampered_dump_restores_exactly(
    dialect: str,
    source: MigrationUtils,
    target: MigrationUtils,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The control: the same dump, untouched, restores to the source's exact copy, and
    leaves no staging behind."""
    folder = _dump(source, tmp_path / "dump", monkeypatch)
    summary = target.restore_database_from_file(str(folder), jobs=2)
    assert summary.parts == len(manifest_of(folder)["parts"]) and summary.resumed_parts == 0
    assert fingerprint(target.url) == fingerprint(source.url)
    assert side_objects(dialect, target.url) == set()


# -- bad input ------------------------------------------------------------------------------
@pytest.mark.parametrize("jobs", [0, -1])
def test_jobs_below_one_is_refused_naming_jobs(
    source: MigrationUtils, target: MigrationUtils, tmp_path: Path, jobs: int
) -> None:
    before = fingerprint(target.url)
    with pytest.raises(ValueError, match=r"\bjobs\b"):
        source.backup_database_to_file(str(tmp_path / "dump"), jobs=jobs)
    with pytest.raises(ValueError, match=r"\bjobs\b"):
        backup_parts(source.engine, str(tmp_path / "dump"), jobs=jobs)
    assert not (tmp_path / "dump").exists(), "a refused backup wrote something"

    single = tmp_path / "single.jsonl"
    source.backup_database_to_file(str(single))
    with pytest.raises(ValueError, match=r"\bjobs\b"):
        target.restore_database_from_file(str(single), jobs=jobs)
    assert fingerprint(target.url) == before


def test_jobs_on_a_single_stream_restores_it(
    source: MigrationUtils, target: MigrationUtils, tmp_path: Path
) -> None:
    single = tmp_path / "single.jsonl.gz"
    source.backup_database_to_file(str(single))
    target.restore_database_from_file(str(single), jobs=4)
    assert fingerprint(target.url) == fingerprint(source.url)
