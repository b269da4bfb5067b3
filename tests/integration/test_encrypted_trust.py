"""The trust rule (issue 26, point 4): a dump that decrypts and authenticates under the
caller's key was written by a holder of that key, so its functions, procedures and events
are restored without ``allow_routines``; the same dump in plaintext is still refused."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from airflow_provider_zenmigrate.core.catalog import verify_backup
from airflow_provider_zenmigrate.core.crypto import Encryption, LocalKey
from airflow_provider_zenmigrate.core.errors import EncryptionKeyError, UnsafeDumpError
from airflow_provider_zenmigrate.core.utils import MigrationUtils
from tests.support.identity import fingerprint
from tests.support.routines import ROUTINES, query, run, scratch_database

SERVERS = ["mysql", "postgresql"]
TABLES = [
    "CREATE TABLE item (id INT PRIMARY KEY, v VARCHAR(20))",
    "INSERT INTO item VALUES (1, 'a'), (2, 'b')",
]


ROUTINE_NAMES = {
    "mysql": "SELECT ROUTINE_NAME FROM information_schema.ROUTINES "
    "WHERE ROUTINE_SCHEMA = DATABASE() ORDER BY 1",
    "postgresql": "SELECT proname FROM pg_proc "
    "WHERE pronamespace = 'public'::regnamespace ORDER BY 1",
}


@pytest.fixture(params=SERVERS)
def dialect(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def source(dialect: str, tmp_path: Path) -> Iterator[MigrationUtils]:
    """Tables and every routine type the dialect's backup writes."""
    with scratch_database(dialect, tmp_path) as utils:
        run(utils.url, *TABLES, *ROUTINES[dialect].values())
        yield utils


@pytest.fixture
def target(dialect: str, tmp_path: Path) -> Iterator[MigrationUtils]:
    with scratch_database(dialect, tmp_path) as utils:
        run(
            utils.url,
            "CREATE TABLE existing (id INT PRIMARY KEY)",
            "INSERT INTO existing VALUES (1)",
        )
        yield utils


def test_authenticated_dump_restores_routines_plaintext_does_not(
    dialect: str, source: MigrationUtils, target: MigrationUtils, tmp_path: Path
) -> None:
    key = LocalKey(os.urandom(32))
    sealed, plain = str(tmp_path / "sealed.jsonl.zst"), str(tmp_path / "plain.jsonl.zst")
    source.encryption = Encryption(key)
    source.backup_database_to_file(sealed)
    source.encryption = None
    source.backup_database_to_file(plain)
    source.dispose()
    # The deployment's key is given in both cases: only the dump's authenticity differs.
    target.encryption = Encryption(key)

    before = fingerprint(target.url)
    with pytest.raises(UnsafeDumpError, match="allow_routines=True"):
        target.restore_database_from_file(plain)
    target.dispose()
    assert fingerprint(target.url) == before
    refused = verify_backup(plain, encryption=Encryption(key))
    assert not refused.ok and refused.error is not None and "routine" in refused.error

    checked = verify_backup(sealed, encryption=Encryption(key))
    assert checked.ok, checked.error
    summary = target.restore_database_from_file(sealed)
    target.dispose()
    assert summary.tables == {"item": 2}
    assert fingerprint(target.url) == fingerprint(source.url)
    routines = {k: s.split()[2].split("(")[0] for k, s in ROUTINES[dialect].items()}
    expected = sorted(name for kind, name in routines.items() if kind != "event")
    assert [r[0] for r in query(target.url, ROUTINE_NAMES[dialect])] == expected
    if dialect == "mysql":
        events = "SELECT EVENT_NAME FROM information_schema.EVENTS WHERE EVENT_SCHEMA = DATABASE()"
        assert query(target.url, events) == [("e_tidy",)]


def test_dump_sealed_under_another_key_is_not_trusted(
    source: MigrationUtils, target: MigrationUtils, tmp_path: Path
) -> None:
    """Authenticity means under a key the caller gave: a dump whose key is not among them
    is refused outright, never restored as trusted."""
    sealed = str(tmp_path / "other.jsonl")
    source.encryption = Encryption(LocalKey(os.urandom(32)))
    source.backup_database_to_file(sealed)
    source.dispose()
    target.encryption = Encryption(LocalKey(os.urandom(32)))
    before = fingerprint(target.url)
    with pytest.raises(EncryptionKeyError):
        target.restore_database_from_file(sealed)
    target.dispose()
    assert fingerprint(target.url) == before
