"""Real applications' databases, built by the apps themselves, round-tripped exactly.

MLflow (tracking store + model registry: its Alembic chain runs on the new database), Optuna
(RDB storage) and JupyterHub (its ORM; schema stamped with its Alembic head) each build and fill
a database through their own API, in build/apps-venv (``make apps-venv``; see app_driver.py).
We back it up, restore it (a) into a new database and (b) over the source after the app
changed it (the restore-on-failure path), compare both with the source exactly (tests/identity:
rows, DDL, sequence and auto-increment positions), and the app then reads each restored copy
back: what it sees must equal what it saw in the source.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import URL

from airflow_provider_zenmigrate.core.utils import MigrationUtils
from tests.support.identity import fingerprint
from tests.support.paths import REPO
from tests.support.servers import database_url, unique_name

APPS_PYTHON = REPO / "build" / "apps-venv" / "bin" / "python"
DRIVER = Path(__file__).resolve().parent / "app_driver.py"
APPS = ["mlflow", "optuna", "jupyterhub"]


def drive(command: str, app: str, workdir: Path, *urls: URL) -> Any:
    """Run one driver step in the apps' venv; its JSON answer, parsed."""
    if not APPS_PYTHON.exists():
        pytest.fail(f"{APPS_PYTHON} is missing: run `make apps-venv` first", pytrace=False)
    result = subprocess.run(
        [str(APPS_PYTHON), str(DRIVER), command, app, str(workdir)]
        + [u.render_as_string(hide_password=False) for u in urls],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=workdir,
    )
    assert result.returncode == 0, f"{app} {command} failed:\n{result.stderr[-4000:]}"
    return json.loads(result.stdout) if result.stdout else None


@pytest.fixture
def new_database(dialect: str, tmp_path: Path) -> Iterator[Any]:
    """Makes uniquely named, empty databases (SQLite files each in a folder of their own);
    drops them all afterwards."""
    made: list[MigrationUtils] = []

    def make(label: str) -> MigrationUtils:
        folder = tmp_path / label
        folder.mkdir()
        url = database_url(dialect, folder, unique_name(f"zmapps_{label}"))
        utils = MigrationUtils(url=url, connect_args={}, engine_args={})
        utils.create_database()
        made.append(utils)
        return utils

    yield make
    for utils in made:
        utils.drop_database()
        utils.dispose()


def differences(label: str, actual: dict[str, Any], expected: dict[str, Any]) -> list[str]:
    """What differs between two fingerprints, item by item, for a failure message that names
    the objects (pytest's own diff of two large dicts is cut short)."""
    out = []
    for key in sorted(set(actual) | set(expected)):
        got, want = actual.get(key), expected.get(key)
        if got == want:
            continue
        if isinstance(got, list) and isinstance(want, list):
            lost = [item for item in want if item not in got]
            extra = [item for item in got if item not in want]
            out.append(f"{label} {key}: in the source only {lost}; in the restore only {extra}")
        else:
            out.append(f"{label} {key}: source {want!r}, restored {got!r}")
    return out


@pytest.mark.parametrize("app", APPS)
def test_app_database_round_trips(app: str, new_database: Any, tmp_path: Path) -> None:
    source, copy = new_database("src"), new_database("copy")
    [seen] = drive("build", app, tmp_path, source.url)
    assert seen, f"{app} read nothing back from the database it built"
    expected = fingerprint(source.url)
    dump = tmp_path / "backup.jsonl.gz"
    source.backup_database_to_file(str(dump))

    # (a) into a new database
    copy.restore_database_from_file(str(dump), allow_routines=True)
    mismatches = differences("new database:", fingerprint(copy.url), expected)

    # (b) over the source, after the app changed it
    drive("mutate", app, tmp_path, source.url)
    assert fingerprint(source.url) != expected, f"{app} mutate changed nothing"
    source.restore_database_from_file(str(dump), allow_routines=True)
    mismatches += differences("over the source:", fingerprint(source.url), expected)

    # The app itself reads both restored copies: exactly what it saw before the backup.
    assert drive("read", app, tmp_path, copy.url, source.url) == [seen, seen]
    assert not mismatches, "\n".join(mismatches)
