"""A real Airflow metadata database (SQLite in build/) for DAG tests."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

AIRFLOW = str(Path(sys.executable).parent / "airflow")


@pytest.fixture(scope="session")
def airflow_db() -> Iterator[Path]:
    home = Path(os.environ["AIRFLOW_HOME"])
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    result = subprocess.run(
        [AIRFLOW, "db", "migrate"], env=os.environ, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    yield home
