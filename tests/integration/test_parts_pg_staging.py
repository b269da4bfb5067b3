"""What a PostgreSQL restore staged in schemas of its own (a multi-part dump) leaves in the
target database while it is unfinished, and what it refuses to swap in."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from airflow_provider_zenmigrate.core.dialects.postgresql.objects import ObjectReader
from airflow_provider_zenmigrate.core.dump.model import ObjectSpec
from airflow_provider_zenmigrate.core.errors import DumpIntegrityError, ZenMigrateError
from airflow_provider_zenmigrate.core.parts.restore import resume_label
from airflow_provider_zenmigrate.core.utils import MigrationUtils
from tests.reliability._outage import side_objects
from tests.support.identity import fingerprint
from tests.support.servers import created_databases, pg_script


@pytest.fixture
def databases(tmp_path: Path) -> Iterator[tuple[MigrationUtils, MigrationUtils]]:
    with created_databases("postgresql", tmp_path, 2) as (source, target):
        yield source, target


def _stored_name_source(source: MigrationUtils, text: str) -> None:
    pg_script(
        source.url,
        f"CREATE TABLE t (id serial PRIMARY KEY, note text DEFAULT '{text}');"
        "INSERT INTO t (note) SELECT md5(i::text) FROM generate_series(1, 500) i;",
    )


def test_a_stored_staging_name_is_refused_and_the_target_kept(
    databases: tuple[MigrationUtils, MigrationUtils], tmp_path: Path
) -> None:
    """A definition that still names a staging schema after the rename would point at a
    schema that is gone: the swap refuses it, the target as it was, the staging kept. (A
    default holding the name stands in for a qualifier the renaming missed.)"""
    source, target = databases
    dump = str(tmp_path / "dump")
    staged = "zm_stage_" + resume_label(str(target.url.database), dump)
    _stored_name_source(source, f"{staged}_0.t")
    source.backup_database_to_file(dump, jobs=2)
    pg_script(target.url, "CREATE TABLE kept (id int); INSERT INTO kept VALUES (1)")
    before = fingerprint(target.url)
    with pytest.raises(ZenMigrateError, match=f"still name the staging schema {staged}"):
        target.restore_database_from_file(dump, jobs=2)
    assert fingerprint(target.url) == before
    assert staged in side_objects("postgresql", target.url)


def test_a_backup_leaves_a_kept_staging_out_and_says_so(
    databases: tuple[MigrationUtils, MigrationUtils], tmp_path: Path
) -> None:
    """The staging a failed restore keeps is not the database's contents: a backup of the
    target meanwhile leaves it out and names it in the header."""
    source, target = databases
    dump = str(tmp_path / "dump")
    staged = "zm_stage_" + resume_label(str(target.url.database), dump)
    _stored_name_source(source, f"{staged}_0.t")
    source.backup_database_to_file(dump, jobs=2)
    with pytest.raises(ZenMigrateError):
        target.restore_database_from_file(dump, jobs=2)
    header = target.backup_database_to_memory()[0]
    left_out = {e["schema"]: e["reason"] for e in header["excluded_schemas"]}
    assert left_out[staged] == "kept by a failed restore to resume"
    assert not any(name.startswith("zm_stage_") for name in header["schemas"])


def test_an_index_the_data_breaks_fails_the_restore_and_keeps_the_target(
    databases: tuple[MigrationUtils, MigrationUtils],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A dump whose UNIQUE index cannot be built over its own rows (written here by a
    backup told to call a plain index unique): the workers' build in the staging schemas
    fails the restore naming the index, without the rows the server quotes in its detail;
    the target is as it was."""
    source, target = databases
    pg_script(
        source.url,
        "CREATE TABLE t (id int PRIMARY KEY, label text);"
        "INSERT INTO t SELECT i, 'dup-' || (i % 7) FROM generate_series(1, 400) i;"
        "CREATE INDEX t_label ON t (label);",
    )
    real = ObjectReader.after_data

    def unique_label(self: ObjectReader) -> list[ObjectSpec]:
        unique = "CREATE UNIQUE INDEX"
        return [
            replace(s, create_stmt=s.create_stmt.replace("CREATE INDEX", unique))
            if s.name == "t_label"
            else s
            for s in real(self)
        ]

    monkeypatch.setattr(ObjectReader, "after_data", unique_label)
    dump = str(tmp_path / "dump")
    source.backup_database_to_file(dump, jobs=2)
    pg_script(target.url, "CREATE TABLE kept (id int); INSERT INTO kept VALUES (1)")
    before = fingerprint(target.url)
    with pytest.raises(DumpIntegrityError) as caught:
        target.restore_database_from_file(dump, jobs=2)
    message = str(caught.value)
    assert "index 't_label' of the dump could not be built" in message, message
    assert "could not create unique index" in message, message
    assert "dup-" not in message and "Key (" not in message, message
    assert fingerprint(target.url) == before
