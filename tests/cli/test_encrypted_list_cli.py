"""``zenmigrate list`` over encrypted backups: shown as encrypted with their key id, their
tables, rows and revision only with ``--key-env``; the key in no output."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest
from sqlalchemy.engine import URL

from airflow_provider_zenmigrate.core.crypto import LocalKey
from airflow_provider_zenmigrate.core.utils import MigrationUtils
from tests.support.command_line import parsed, zm
from tests.support.engine_support import populate_library
from tests.support.identity import fingerprint
from tests.support.servers import url_text


@pytest.mark.parametrize("dialect", ["sqlite"], indirect=True)
def test_list_shows_encrypted_backups_and_their_contents_only_with_the_key(
    utils: MigrationUtils, db_url: URL, tmp_path: Path
) -> None:
    populate_library(utils)
    utils.dispose()
    raw = os.urandom(32)
    key = base64.b64encode(raw).decode()
    folder = tmp_path / "backups"
    folder.mkdir()
    outputs: list[str] = []

    def run(*args: str) -> dict[str, object]:
        result = zm(*args, "--json", ZM_LIST_KEY=key)
        outputs.extend([result.stdout, result.stderr])
        return parsed(result)

    run("backup", url_text(db_url), str(folder / "n1.jsonl.zst"), "--key-env", "ZM_LIST_KEY")

    blind = run("list", str(folder) + "/")["backups"]
    assert isinstance(blind, list) and len(blind) == 1
    assert blind[0]["encrypted"] is True and blind[0]["key_id"] == LocalKey(raw).key_id
    assert (blind[0]["rows"], blind[0]["tables"], blind[0]["revision"]) == (0, 0, None)
    assert "author" not in json.dumps(blind)

    keyed = run("list", str(folder) + "/", "--key-env", "ZM_LIST_KEY")["backups"]
    assert isinstance(keyed, list)
    assert keyed[0]["encrypted"] is True and keyed[0]["rows"] == 201
    assert keyed[0]["revision"] is not None and keyed[0]["tables"] > 0

    human = zm("list", str(folder) + "/", ZM_LIST_KEY=key)
    outputs.extend([human.stdout, human.stderr])
    assert "[encrypted, key " in human.stdout and "n1.jsonl.zst" in human.stdout
    for output in outputs:
        assert key not in output and raw.hex() not in output


@pytest.mark.parametrize("dialect", ["sqlite"], indirect=True)
def test_multipart_encrypted_backup_inspect_verify_restore(
    utils: MigrationUtils, db_url: URL, tmp_path: Path
) -> None:
    populate_library(utils)
    utils.dispose()
    original = fingerprint(db_url)
    raw = os.urandom(32)
    key = base64.b64encode(raw).decode()
    dump = tmp_path / "multi.jsonl"
    outputs: list[str] = []

    def run(*args: str) -> dict[str, object]:
        result = zm(*args, "--json", ZM_PART_KEY=key)
        outputs.extend([result.stdout, result.stderr])
        return parsed(result)

    backup = run("backup", url_text(db_url), str(dump), "--jobs", "2", "--key-env", "ZM_PART_KEY")
    assert backup["rows"] == 201 and (dump / "manifest.json").exists()
    assert isinstance(backup["parts"], int) and backup["parts"] >= 2, backup

    bare = run("inspect", str(dump))
    assert bare["encrypted"] is True and "author" not in json.dumps(bare)
    blind = zm("verify", str(dump), ZM_PART_KEY=key)
    outputs.extend([blind.stdout, blind.stderr])
    assert blind.returncode == 1 and "without its key" in blind.stderr + blind.stdout

    assert run("verify", str(dump), "--key-env", "ZM_PART_KEY")["verified"] is True
    inspected = run("inspect", str(dump), "--key-env", "ZM_PART_KEY")
    assert inspected["rows"] == 201 and inspected["parts"] == backup["parts"]
    target = tmp_path / "restored.db"
    restored = run("restore", str(dump), f"sqlite:///{target}", "--key-env", "ZM_PART_KEY", "-y")
    assert restored["rows"] == 201
    assert fingerprint(URL.create("sqlite", database=str(target))) == original
    for output in outputs:
        assert key not in output and raw.hex() not in output
