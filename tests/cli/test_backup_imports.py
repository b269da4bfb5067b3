"""What an unencrypted single-stream backup imports (issue 27, start-up of ``zenmigrate
backup``).

Such a backup needs SQLAlchemy, its dialect and the dump writer, nothing else: not pydantic
(the command line backs up without building ``MigrationUtils``, a pydantic model), not the
crypto stack (``cryptography``), not multi-part dumps (``core.parts`` and
``multiprocessing``), not the restore. Each check runs the command in a fresh interpreter
(this one has imported everything already) and lists what it left in ``sys.modules``.
Times are the bench's business (``bench/startup.py``); what is imported is checked here.
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from airflow_provider_zenmigrate.core.crypto import MAGIC
from tests.support.command_line import cli_imports
from tests.support.keys import new_key_b64

#: What an unencrypted single-stream backup must not import.
NOT_NEEDED = (
    "pydantic",
    "airflow_provider_zenmigrate.core.utils",
    "cryptography",
    "multiprocessing",
    "airflow_provider_zenmigrate.core.parts",
    "airflow_provider_zenmigrate.core.restore",
    "airflow_provider_zenmigrate.core.crypto.policy",
    "airflow_provider_zenmigrate.core.crypto.segments",
    "airflow_provider_zenmigrate.core.dump.reader",
)


def _probe(*argv: str, **env: str) -> tuple[int, list[str]]:
    """Exit code of ``zenmigrate *argv`` and the modules of NOT_NEEDED it imported."""
    code, imported, _ = cli_imports(NOT_NEEDED, *argv, env=env)
    return code, imported


def _sqlite(path: Path, rows: int) -> str:
    """A SQLite database at ``path``: empty, or one table of ``rows`` rows."""
    with closing(sqlite3.connect(path)) as conn:
        if rows:
            conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, data BLOB)")
            conn.executemany(
                "INSERT INTO t VALUES (?, ?, ?)",
                [(i, f"n{i}", bytes([i % 256])) for i in range(rows)],
            )
        conn.commit()
    return f"sqlite:///{path}"


def _kinds(dump: Path) -> list[str]:
    return [json.loads(line)["kind"] for line in dump.read_text().splitlines()]


@pytest.mark.parametrize("rows", [0, 50], ids=["empty", "one-table"])
def test_an_unencrypted_single_stream_backup_imports_no_crypto_parts_or_restore(
    tmp_path: Path, rows: int
) -> None:
    url = _sqlite(tmp_path / "source.db", rows)
    dump = tmp_path / "dump.jsonl"
    code, imported = _probe("backup", "-q", url, str(dump))
    assert code == 0
    assert imported == []
    kinds = _kinds(dump)  # the backup was made, complete
    assert kinds[0] == "header" and kinds[-1] == "trailer"
    assert ("data" in kinds) == bool(rows)
    assert (tmp_path / "dump.jsonl.manifest.json").is_file()


def test_an_encrypted_backup_does_import_the_crypto_stack(tmp_path: Path) -> None:
    """The probe sees what a backup imports: with a key, the crypto stack is there (and still
    neither multi-part dumps nor the restore)."""
    url = _sqlite(tmp_path / "source.db", 5)
    dump = tmp_path / "dump.jsonl"
    key, _key_id = new_key_b64()
    code, imported = _probe(
        "backup", "-q", "--key-env", "ZMSC_TEST_KEY", url, str(dump), ZMSC_TEST_KEY=key
    )
    assert code == 0
    assert "cryptography" in imported
    assert "airflow_provider_zenmigrate.core.crypto.segments" in imported
    assert not {"airflow_provider_zenmigrate.core.parts", "multiprocessing", "pydantic"} & set(
        imported
    )
    assert dump.read_bytes().startswith(MAGIC)  # sealed: an envelope, not JSON in the clear


def test_a_single_stream_restore_imports_no_pydantic_or_worker_pool(tmp_path: Path) -> None:
    """``zenmigrate restore`` works on the command line's own database object too: neither
    pydantic nor the worker pool of multi-part dumps, and the target holds the rows after.
    (A restore does read the crypto stack: a manifest may be sealed.)"""
    dump = tmp_path / "dump.jsonl"
    code, _ = _probe("backup", "-q", _sqlite(tmp_path / "source.db", 50), str(dump))
    assert code == 0
    target = tmp_path / "target.db"
    code, imported = _probe("restore", "-q", "--yes", str(dump), f"sqlite:///{target}")
    assert code == 0
    assert not {"pydantic", "airflow_provider_zenmigrate.core.utils", "multiprocessing"} & set(
        imported
    )
    with closing(sqlite3.connect(target)) as conn:
        assert conn.execute("SELECT COUNT(*), SUM(id) FROM t").fetchone() == (50, sum(range(50)))
