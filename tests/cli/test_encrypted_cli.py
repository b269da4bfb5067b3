"""``zenmigrate`` with encrypted dumps, as a subprocess: backup with ``--key-env``, inspect and
verify with and without the key, restore with ``--require-encryption``, rekey then restore,
bad keys as usage errors, and the key in no output."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest
from sqlalchemy.engine import URL

from airflow_provider_zenmigrate.core.crypto import MAGIC
from airflow_provider_zenmigrate.core.utils import MigrationUtils
from tests.support.command_line import assert_one_error_line, parsed, zm
from tests.support.engine_support import populate_library
from tests.support.identity import fingerprint
from tests.support.keys import new_key_b64
from tests.support.servers import url_text


@pytest.mark.parametrize("dialect", ["sqlite"], indirect=True)
def test_encrypted_backup_inspect_verify_rekey_restore(
    utils: MigrationUtils, db_url: URL, tmp_path: Path
) -> None:
    populate_library(utils)
    utils.dispose()
    original = fingerprint(db_url)
    old, old_id = new_key_b64()
    new, new_id = new_key_b64()
    keys = {"ZM_OLD_KEY": old, "ZM_NEW_KEY": new}
    dump = tmp_path / "library.jsonl.zst"
    outputs: list[str] = []

    def run(*args: str) -> dict[str, object]:
        result = zm(*args, "--json", **keys)
        outputs.extend([result.stdout, result.stderr])
        return parsed(result)

    backup = run("backup", url_text(db_url), str(dump), "--key-env", "ZM_OLD_KEY")
    assert backup["rows"] == 201 and dump.read_bytes().startswith(MAGIC)

    # Without the key: inspect shows the envelope only, verify says it cannot verify.
    bare = run("inspect", str(dump))
    assert bare["encrypted"] is True and bare["encryption"]["key"]["key_id"] == old_id  # type: ignore[index]
    assert "tables" not in bare and "author" not in json.dumps(bare)
    refused = zm("verify", str(dump), **keys)
    outputs.extend([refused.stdout, refused.stderr])
    assert refused.returncode == 1
    assert_one_error_line(refused, "encrypted", "without its key")

    # With the key: everything.
    inspected = run("inspect", str(dump), "--key-env", "ZM_OLD_KEY")
    assert inspected["verified"] is True and inspected["rows"] == 201
    assert run("verify", str(dump), "--key-env", "ZM_OLD_KEY")["verified"] is True

    rekeyed = run("rekey", str(dump), "--key-env", "ZM_OLD_KEY", "--new-key-env", "ZM_NEW_KEY")
    assert (rekeyed["old_key_id"], rekeyed["new_key_id"]) == (old_id, new_id)
    stale = zm("verify", str(dump), "--key-env", "ZM_OLD_KEY", **keys)
    outputs.extend([stale.stdout, stale.stderr])
    assert_one_error_line(stale, new_id, old_id)

    target = tmp_path / "restored.db"
    dry = run("restore", str(dump), f"sqlite:///{target}", "--key-env", "ZM_NEW_KEY", "--dry-run")
    assert dry["verified"] is True and dry["would_replace"] is False
    restored = run(
        "restore",
        str(dump),
        f"sqlite:///{target}",
        "--key-env",
        "ZM_NEW_KEY",
        "--require-encryption",
        "-y",
    )
    assert restored["rows"] == 201
    assert fingerprint(URL.create("sqlite", database=str(target))) == original

    # A plaintext dump is refused when encryption is required.
    plain = tmp_path / "plain.jsonl"
    run("backup", url_text(db_url), str(plain))
    required = zm(
        "restore", str(plain), f"sqlite:///{target}", "--require-encryption", "-y", **keys
    )
    outputs.extend([required.stdout, required.stderr])
    assert required.returncode == 1
    assert_one_error_line(required, "not encrypted", "required")

    for text in outputs:
        for secret in (old, new, base64.b64decode(old).hex(), base64.b64decode(new).hex()):
            assert secret not in text


def test_bad_keys_are_usage_errors(tmp_path: Path) -> None:
    short = base64.b64encode(os.urandom(16)).decode()
    dump = str(tmp_path / "x.jsonl")
    cases = [
        ({}, "ZM_UNSET_KEY holds no key"),
        ({"ZM_UNSET_KEY": "%%%not-base64"}, "ZM_UNSET_KEY is not base64"),
        ({"ZM_UNSET_KEY": short}, "holds 16 bytes; a key is 32 bytes"),
    ]
    for env, message in cases:
        result = zm("inspect", dump, "--key-env", "ZM_UNSET_KEY", **env)
        assert result.returncode == 2, result.stderr
        line = assert_one_error_line(result, message)
        assert short not in line
