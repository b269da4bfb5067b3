"""``zenmigrate rekey`` of an encrypted multi-part dump, as a subprocess: the JSON result
counts the parts and objects, the text line says what was rewritten, a second run finds the
dump under the new key already; verify with the old key fails naming both key ids, the
restore with the new key alone is exact, and the keys are in no output."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from sqlalchemy.engine import URL

from airflow_provider_zenmigrate.core.parts.layout import PART_NAME
from airflow_provider_zenmigrate.core.utils import MigrationUtils
from tests.support.command_line import assert_one_error_line, parsed, zm
from tests.support.engine_support import populate_library
from tests.support.identity import fingerprint
from tests.support.keys import new_key_b64
from tests.support.servers import url_text


@pytest.mark.parametrize("dialect", ["sqlite"], indirect=True)
def test_rekey_multipart_dump(utils: MigrationUtils, db_url: URL, tmp_path: Path) -> None:
    populate_library(utils)
    utils.dispose()
    original = fingerprint(db_url)
    old, old_id = new_key_b64()
    new, new_id = new_key_b64()
    keys = {"ZM_OLD_KEY": old, "ZM_NEW_KEY": new}
    dump = tmp_path / "multi.jsonl.zst"
    outputs: list[str] = []

    def run(*args: str, as_json: bool = True) -> dict[str, object]:
        result = zm(*args, *(["--json"] if as_json else []), **keys)
        outputs.extend([result.stdout, result.stderr])
        if not as_json:
            assert result.returncode == 0, result.stderr
            return {"text": result.stdout + result.stderr}
        return parsed(result)

    backup = run("backup", url_text(db_url), str(dump), "--jobs", "2", "--key-env", "ZM_OLD_KEY")
    parts = backup["parts"]
    assert isinstance(parts, int) and parts >= 2, backup
    old_names = sorted(p.name for p in dump.iterdir() if PART_NAME.fullmatch(p.name))

    rekey = ("rekey", str(dump), "--key-env", "ZM_OLD_KEY", "--new-key-env", "ZM_NEW_KEY")
    rekeyed = run(*rekey)
    assert (rekeyed["old_key_id"], rekeyed["new_key_id"]) == (old_id, new_id)
    assert (rekeyed["parts"], rekeyed["objects"], rekeyed["reused"]) == (parts, parts + 1, 0)
    assert rekeyed["removed"] == parts and isinstance(rekeyed["segments"], int)
    new_names = sorted(p.name for p in dump.iterdir() if PART_NAME.fullmatch(p.name))
    assert len(new_names) == parts and not set(new_names) & set(old_names)
    manifest = json.loads((dump / "manifest.json").read_text())
    assert manifest["encryption"]["key"]["key_id"] == new_id

    # Run again, as text: already under the new key, nothing left to do.
    again = run(*rekey, as_json=False)["text"]
    assert f"already under key {new_id}" in str(again) and f"{parts} parts" in str(again)

    stale = zm("verify", str(dump), "--key-env", "ZM_OLD_KEY", **keys)
    outputs.extend([stale.stdout, stale.stderr])
    assert_one_error_line(stale, new_id, old_id)
    assert run("verify", str(dump), "--key-env", "ZM_NEW_KEY")["verified"] is True

    target = tmp_path / "restored.db"
    restored = run("restore", str(dump), f"sqlite:///{target}", "--key-env", "ZM_NEW_KEY", "-y")
    assert restored["rows"] == 201
    assert fingerprint(URL.create("sqlite", database=str(target))) == original

    for text in outputs:
        for secret in (old, new, base64.b64decode(old).hex(), base64.b64decode(new).hex()):
            assert secret not in text


@pytest.mark.parametrize("dialect", ["sqlite"], indirect=True)
def test_rekey_text_line_for_a_multipart_dump(
    utils: MigrationUtils, db_url: URL, tmp_path: Path
) -> None:
    populate_library(utils)
    utils.dispose()
    old, old_id = new_key_b64()
    new, new_id = new_key_b64()
    dump = tmp_path / "text.jsonl"
    keys = {"ZM_OLD_KEY": old, "ZM_NEW_KEY": new}
    backup = zm(
        "backup", url_text(db_url), str(dump), "--jobs", "2", "--key-env", "ZM_OLD_KEY", **keys
    )
    assert backup.returncode == 0, backup.stderr
    result = zm(
        "rekey", str(dump), "--key-env", "ZM_OLD_KEY", "--new-key-env", "ZM_NEW_KEY", **keys
    )
    assert result.returncode == 0, result.stderr
    text = result.stdout + result.stderr
    assert f"key {old_id} -> {new_id}" in text and "parts and the manifest" in text, text
    assert "data not re-encrypted" in text and "under the old key deleted" in text
    assert old not in text and new not in text
