"""What an unencrypted single-stream backup imports (issue 27, start-up of ``zenmigrate
backup``).

Such a backup needs SQLAlchemy, pydantic, its dialect and the dump writer, nothing else: not
the crypto stack (``cryptography``), not multi-part dumps (``core.parts`` and
``multiprocessing``), not the restore. Each check runs the command in a fresh interpreter
(this one has imported everything already) and lists what it left in ``sys.modules``.
Times are the bench's business (``bench/startup.py``); what is imported is checked here.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest

from airflow_provider_zenmigrate.core.crypto import MAGIC
from tests.support.command_line import child_env
from tests.support.keys import new_key_b64

#: What an unencrypted single-stream backup must not import.
NOT_NEEDED = (
    "cryptography",
    "multiprocessing",
    "airflow_provider_zenmigrate.core.parts",
    "airflow_provider_zenmigrate.core.restore",
    "airflow_provider_zenmigrate.core.crypto.policy",
    "airflow_provider_zenmigrate.core.crypto.segments",
    "airflow_provider_zenmigrate.core.dump.reader",
)

#: Runs ``main(argv)`` in a fresh interpreter and prints, as one JSON line after whatever
#: the command printed, its exit code and which of NOT_NEEDED it imported.
PROBE = """
import json, sys
from airflow_provider_zenmigrate.cli import main
try:
    code = main(sys.argv[2:])
except SystemExit as exc:
    code = exc.code
found = sorted(m for m in sys.modules if m in NOT_NEEDED or m.split(".")[0] in NOT_NEEDED)
print("\\nPROBE " + json.dumps({"code": code, "imported": found}))
"""


def _probe(*argv: str, **env: str) -> tuple[int, list[str]]:
    """Exit code of ``zenmigrate *argv`` and the modules of NOT_NEEDED it imported."""
    source = f"NOT_NEEDED = {NOT_NEEDED!r}\n{PROBE}"
    done = subprocess.run(
        [sys.executable, "-c", source, "probe", *argv],
        capture_output=True,
        text=True,
        env=child_env(**env),
        timeout=120,
        check=False,
    )
    _, _, probe = done.stdout.rpartition("\nPROBE ")
    assert probe, done.stderr
    found = json.loads(probe)
    return int(found["code"] or 0), list(found["imported"])


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
    assert not {"airflow_provider_zenmigrate.core.parts", "multiprocessing"} & set(imported)
    assert dump.read_bytes().startswith(MAGIC)  # sealed: an envelope, not JSON in the clear
