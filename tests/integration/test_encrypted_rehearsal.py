"""A rehearsal from an encrypted backup (issue 26): the scratch copy is restored with the
production object's keys (the operator's key connection), and refused without them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from airflow_provider_zenmigrate.core.alembic import Alembic
from airflow_provider_zenmigrate.core.crypto import MAGIC, Encryption, LocalKey
from airflow_provider_zenmigrate.core.errors import MissingKeyError
from airflow_provider_zenmigrate.core.rehearsal import rehearse
from airflow_provider_zenmigrate.core.utils import MigrationUtils
from tests.support.paths import EXAMPLE_MIGRATIONS


@pytest.mark.parametrize("dialect", ["sqlite"], indirect=True)
def test_rehearsal_from_an_encrypted_backup(utils: MigrationUtils, tmp_path: Path) -> None:
    Alembic(utils.engine, script_location=EXAMPLE_MIGRATIONS).upgrade("0001")
    uri = str(tmp_path / "before-migrate.jsonl.zst")
    utils.encryption = Encryption(LocalKey(os.urandom(32)))
    utils.backup_database_to_file(uri)
    assert Path(uri).read_bytes().startswith(MAGIC)
    report = rehearse(utils, script_location=EXAMPLE_MIGRATIONS, source_uri=uri)
    assert report.passed, report.reason
    assert report.copied_from == "backup"

    utils.encryption = None
    with pytest.raises(MissingKeyError):
        rehearse(utils, script_location=EXAMPLE_MIGRATIONS, source_uri=uri)
