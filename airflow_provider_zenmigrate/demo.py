"""``make demo``: the backup-then-migrate DAG end to end on the embedded default.

Runs ``zenmigrate_backup_then_migrate`` with ``airflow dags test`` against an SQLite
database in ``build/demo`` with backups in a local folder: once with a migration set that
succeeds, then twice with one that fails on purpose (the rehearsal stops it before the
database is touched; with the gate off, the upgrade fails and the backup is restored), and
prints what happened.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import URL

from .core.alembic import Alembic
from .core.utils import MigrationUtils

REPO = Path(__file__).resolve().parent.parent
DAGS = REPO / "example_dags"
DAG_ID = "zenmigrate_backup_then_migrate"


def _airflow(folder: Path) -> dict[str, str]:
    database = folder / "demo.db"
    return {
        **os.environ,
        "AIRFLOW_HOME": str(folder / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
        "ZENMIGRATE_DEMO_FOLDER": str(folder),
        "AIRFLOW_CONN_ZENMIGRATE_DEMO": json.dumps({"conn_type": "sqlite", "host": str(database)}),
    }


def _run(args: list[str], env: dict[str, str]) -> int:
    airflow = str(Path(sys.executable).parent / "airflow")
    return subprocess.run(
        [airflow, *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False
    ).returncode


def _run_states(folder: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(folder / "airflow" / "airflow.db") as conn:
        runs = conn.execute(
            "SELECT run_id, state FROM dag_run WHERE dag_id = ? ORDER BY id", (DAG_ID,)
        ).fetchall()
        tasks = conn.execute(
            "SELECT run_id, task_id, state FROM task_instance WHERE dag_id = ? ORDER BY run_id",
            (DAG_ID,),
        ).fetchall()
    return [(r, s or "?") for r, s in runs] + [(f"{r} {t}", s or "-") for r, t, s in tasks]


def _snapshot(utils: MigrationUtils) -> tuple[list[str], list[tuple[object, ...]]]:
    alembic = Alembic(utils.engine, script_location=DAGS / "migrations")
    with utils.engine.connect() as conn:
        authors = [tuple(r) for r in conn.execute(text("SELECT id, name FROM author ORDER BY id"))]
    return alembic.current_revisions(), authors


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--folder", type=Path, default=REPO / "build" / "demo")
    folder = parser.parse_args(argv).folder.resolve()
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    env = _airflow(folder)
    if _run(["db", "migrate"], env) != 0:
        print("airflow db migrate failed", file=sys.stderr)
        return 1

    url = URL.create("sqlite", database=str(folder / "demo.db"))
    with MigrationUtils(url=url, connect_args={}, engine_args={}) as utils:
        utils.create_database()
        # A database at revision 0002a with some data, so there is something to migrate.
        Alembic(utils.engine, script_location=DAGS / "migrations").upgrade("0002a")
        with utils.engine.begin() as conn:
            conn.execute(text("INSERT INTO author (id, name) VALUES (1, 'Ada'), (2, 'Grace')"))
        print(f"demo database {folder / 'demo.db'} at {_snapshot(utils)[0]}")

        for label, scripts, fail_on in (
            ("succeeds", "migrations", "error"),
            # The rehearsal finds the failure on a scratch copy: production is never touched.
            ("fails on purpose, stopped by the rehearsal", "migrations_failing", "error"),
            # With the gate off the rehearsal only reports; the upgrade fails on the database
            # itself and the backup taken before it is restored.
            ("fails on purpose, gate off, restored", "migrations_failing", ""),
        ):
            before = _snapshot(utils)
            conf = json.dumps({"script_location": str(DAGS / scripts), "fail_on": fail_on})
            code = _run(["dags", "test", DAG_ID, "--conf", conf], env)
            utils.dispose()
            after = _snapshot(utils)
            print(f"\n== migration set that {label} ({scripts}), airflow exit code {code}")
            print(f"revisions: {before[0]} -> {after[0]}")
            print(f"authors unchanged: {before[1] == after[1]} ({after[1]})")
        print("\nDAG runs and task states:")
        for name, state in _run_states(folder):
            print(f"  {name}: {state}")
        print("\nbackups:")
        for path in sorted((folder / "backups").rglob("*.jsonl.zst")):
            print(f"  {path} ({path.stat().st_size} bytes)")
        print("\nrehearsal reports:")
        for path in sorted((folder / "backups").rglob("*.rehearsal.md")):
            print(f"  {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
