"""What ``zenmigrate`` imports before it does any work (issue 27).

``--version``, ``--help`` and building the parser import none of the heavy libraries
(SQLAlchemy, Alembic, pydantic, cryptography, smart_open, the cloud SDKs, the drivers): each
command imports what it needs when it runs. Each check runs in a fresh interpreter, since
this one has imported everything already. Times are not asserted here (they are the bench's
business); what is imported is.
"""

from __future__ import annotations

import importlib.metadata
import json
import logging
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from airflow_provider_zenmigrate.cli import output
from airflow_provider_zenmigrate.core import backup
from tests.support.command_line import assert_one_error_line, cli_imports, python_c, zm

#: What a run that only parses its arguments must not import.
HEAVY = (
    "sqlalchemy",
    "alembic",
    "pydantic",
    "cryptography",
    "smart_open",
    "boto3",
    "botocore",
    "psycopg",
    "pymysql",
    "msgspec",
    "orjson",
    "rich",
    "airflow",
    "importlib.metadata",
)


def _probe(*argv: str, cwd: Path | None = None) -> tuple[int, list[str], str]:
    """Exit code, heavy modules imported, and what the command printed on stdout."""
    return cli_imports(HEAVY, *argv, cwd=cwd)


@pytest.mark.parametrize(
    "argv",
    [
        ("--version",),
        ("--help",),
        ("backup", "--help"),
        ("restore", "--help"),
        ("rekey", "--help"),
        ("rehearse", "--help"),
        ("upgrade", "--help"),
    ],
    ids=" ".join,
)
def test_parsing_the_command_line_imports_no_heavy_module(argv: tuple[str, ...]) -> None:
    code, heavy, printed = _probe(*argv)
    assert code == 0
    assert heavy == []
    assert printed.strip()  # the version or the help was printed, on stdout


def test_a_usage_error_imports_no_heavy_module_either() -> None:
    code, heavy, _ = _probe("backup")  # DEST_URI is missing: argparse's usage error
    assert code == 2
    assert heavy == []


def test_version_prints_the_installed_version_on_stdout() -> None:
    result = zm("--version")
    expected = importlib.metadata.version("airflow-provider-zenmigrate")
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"zenmigrate {expected}\n"
    assert result.stderr == ""


def test_the_package_version_is_the_installed_one_without_importlib_metadata() -> None:
    """``__version__`` comes from the package's _version.py, which pyproject.toml reads at
    build time: the installed distribution's version, read without importlib.metadata."""
    script = (
        "import sys, airflow_provider_zenmigrate as p\n"
        "direct = p.__version__\n"
        "fast = 'importlib.metadata' not in sys.modules\n"
        "import importlib.metadata as m\n"
        "print(direct, m.version('airflow-provider-zenmigrate'), fast)\n"
    )
    direct, by_metadata, fast = python_c(script).split()
    assert direct == by_metadata
    assert fast == "True"


def test_the_progress_logger_the_cli_silences_is_the_cores() -> None:
    assert output.PROGRESS_LOGGER == backup.PROGRESS_LOGGER
    assert logging.getLogger(output.PROGRESS_LOGGER) is backup.progress_logger


def test_a_non_database_error_is_described_without_importing_sqlalchemy() -> None:
    script = (
        "import sys\n"
        "from airflow_provider_zenmigrate.cli.exits import describe\n"
        "print(describe(ValueError('bad value\\nsecond line')))\n"
        "print('sqlalchemy' in sys.modules)\n"
    )
    assert python_c(script).splitlines() == ["ValueError: bad value", "False"]


def test_a_database_error_is_still_one_line_from_the_driver(tmp_path: Path) -> None:
    """SQLAlchemy is imported only when a command runs, and its errors are still told
    apart: the driver's message, exit code 1. Here the version table lacks its column."""
    odd = tmp_path / "odd.db"
    with closing(sqlite3.connect(odd)) as conn:
        conn.execute("CREATE TABLE alembic_version (x INTEGER)")
        conn.commit()
    result = zm("current", f"sqlite:///{odd}")
    assert result.returncode == 1
    line = assert_one_error_line(result)
    assert line == "zenmigrate: error: database error: no such column: alembic_version.version_num"


def test_a_quiet_backup_of_an_empty_database_prints_nothing_and_verifies(
    tmp_path: Path,
) -> None:
    """``-q`` skips the size estimate (only the progress output would show it)."""
    empty = tmp_path / "empty.db"
    empty.write_bytes(b"")  # SQLite's empty database: an existing, empty file
    dump = tmp_path / "out" / "empty.jsonl"
    result = zm("backup", "-q", f"sqlite:///{empty}", str(dump))
    assert result.returncode == 0, result.stderr
    assert (result.stdout, result.stderr) == ("", "")
    lines = [json.loads(line) for line in dump.read_text().splitlines()]
    assert [line["kind"] for line in lines] == ["header", "trailer"]
    assert lines[1]["tables"] == {}
    verified = zm("verify", str(dump), "--json")
    assert verified.returncode == 0, verified.stderr
    assert json.loads(verified.stdout)["verified"] is True


_COLLECTION = """
import gc, json
from airflow_provider_zenmigrate.cli.startup import without_collection

seen = {"before": gc.get_freeze_count()}
with without_collection():
    seen["held"] = not gc.isenabled()
    made = [[i] for i in range(5000)]  # what a block of imports would leave behind
seen["running"] = gc.isenabled()
seen["frozen"] = gc.get_freeze_count()
gc.disable()
with without_collection():
    pass
seen["left_off"] = not gc.isenabled()
print(json.dumps(seen))
"""


def test_start_up_holds_the_collector_then_freezes_what_it_made_and_resumes() -> None:
    """``backup`` and ``restore`` import and connect with the cyclic collector held; after,
    it runs again (it bounds the command's memory) and skips what start-up made. A caller
    that turned it off keeps it off."""
    seen = json.loads(python_c(_COLLECTION))
    assert seen["held"] and seen["running"] and seen["left_off"]
    assert seen["frozen"] >= seen["before"] + 5000
