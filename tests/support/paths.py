"""Where the tests find the repository, their fixtures and the example migrations."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent
FIXTURES = REPO / "tests" / "fixtures"
EXAMPLE_MIGRATIONS = REPO / "example_dags" / "migrations"
#: The Sakila sample databases (shared with other projects, so outside the repository).
SAKILA_DIR = Path(
    os.environ.get("ZENMIGRATE_SAKILA_DIR", REPO.parent / "shared" / "fixtures" / "sakila")
)
