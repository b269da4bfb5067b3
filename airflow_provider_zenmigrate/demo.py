"""``make demo``: the main job on the embedded default (SQLite in a local folder).

Grows with the project; today it creates the demo database and runs the sample Alembic
migration set shipped in ``example_dags/migrations``.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from sqlalchemy.engine import URL

from .core.alembic import Alembic
from .core.utils import MigrationUtils

REPO = Path(__file__).resolve().parent.parent
DEFAULT_SCRIPTS = REPO / "example_dags" / "migrations"
DEFAULT_FOLDER = REPO / "build" / "demo"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--folder", type=Path, default=DEFAULT_FOLDER)
    parser.add_argument("--scripts", type=Path, default=DEFAULT_SCRIPTS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    args.folder.mkdir(parents=True, exist_ok=True)
    url = URL.create("sqlite", database=str(args.folder / "demo.db"))
    with MigrationUtils(url=url, connect_args={}, engine_args={}) as utils:
        utils.create_database(drop=True)
        print(f"database: {utils.safe_url} (exists: {utils.database_exists()})")
        alembic = Alembic(utils.engine, script_location=args.scripts)
        print(f"heads: {alembic.head_revisions()}")
        print(f"current before: {alembic.current_revisions() or ['base']}")
        alembic.upgrade("0002a")
        print(f"after upgrade to 0002a: {alembic.current_revisions()}")
        alembic.upgrade()
        print(f"after upgrade to heads: {alembic.current_revisions()}")
        print(f"database empty: {alembic.db_is_empty()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
