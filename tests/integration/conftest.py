"""Fixtures the engine tests share (test_backup_restore, test_catalog, test_storage)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from airflow_provider_zenmigrate.core.utils import MigrationUtils
from tests.support.engine_support import populate_library
from tests.support.servers import database_url


@pytest.fixture
def source(utils: MigrationUtils) -> MigrationUtils:
    """The example migrations at head, 50 authors and 150 books."""
    populate_library(utils)
    return utils


@pytest.fixture
def target(dialect: str, tmp_path: Path) -> Iterator[MigrationUtils]:
    """A second database that already holds other data (a restore must replace it)."""
    url = database_url(dialect, tmp_path / "target" if dialect == "sqlite" else tmp_path)
    (tmp_path / "target").mkdir(exist_ok=True)
    mu = MigrationUtils(url=url, connect_args={}, engine_args={})
    mu.create_database()
    with mu.engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE previous_contents (id INTEGER PRIMARY KEY)")
        conn.exec_driver_sql("INSERT INTO previous_contents (id) VALUES (1), (2)")
    try:
        yield mu
    finally:
        mu.drop_database()
        mu.dispose()
