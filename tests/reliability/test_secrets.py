"""No database or storage secret appears anywhere a user or a log collector can see.

For a MariaDB and a PostgreSQL account with a password (``secret_user``) and an S3 secret
key (moto's server, ``store_secrets``), everything is gathered and scanned at once: the logs
(caplog at DEBUG and the process's streams) of a backup, list, verify and restore; the text,
repr and traceback of failing restores (a wrong password, a refused dump); the dump's bytes,
its header and the manifest beside it; the repr of every result; and stdout/stderr of
``zenmigrate`` subcommands, plain, with ``--json`` and with ``--debug``.

Operators' XCom and task logs are scanned by tests/airflow/test_example_dags.py
(test_s3_backups_and_no_secret_in_logs_or_xcom), on both servers too.
"""

from __future__ import annotations

import gzip
import json
import logging
import secrets
import subprocess
import sys
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import pytest
from sqlalchemy.engine import URL

from airflow_provider_zenmigrate.core.catalog import list_backups, verify_backup
from airflow_provider_zenmigrate.core.errors import UnsafeDumpError
from airflow_provider_zenmigrate.core.utils import MigrationUtils
from tests.support.dumps import reseal
from tests.support.engine_support import populate_library, write_lines
from tests.support.servers import SECRET, database_url

if TYPE_CHECKING:
    from tests.support.object_stores import Store

pytest_plugins = ["tests.support.object_stores"]

ZENMIGRATE = str(Path(sys.executable).parent / "zenmigrate")


def _texts_of(exc: BaseException) -> list[str]:
    """Everything an exception shows: its text, repr and full traceback (causes included)."""
    return [str(exc), repr(exc), "".join(traceback.format_exception(exc))]


def _cli(*commands: tuple[str, ...], env: dict[str, str]) -> list[subprocess.CompletedProcess[str]]:
    """Run ``zenmigrate`` invocations at once (each pays its interpreter's start-up)."""
    processes = [
        subprocess.Popen(
            [ZENMIGRATE, *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for args in commands
    ]
    done = []
    for args, process in zip(commands, processes, strict=True):
        out, err = process.communicate(timeout=180)
        done.append(subprocess.CompletedProcess([ZENMIGRATE, *args], process.returncode, out, err))
    return done


def _ok(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert result.returncode == 0, result.stderr[-2000:]
    return dict(json.loads(result.stdout)) if result.stdout.startswith("{") else {}


def _failed(result: subprocess.CompletedProcess[str], needle: str) -> None:
    assert result.returncode == 1, result.stdout + result.stderr[-2000:]
    errors = [x for x in result.stderr.splitlines() if x.startswith("zenmigrate: error:")]
    assert errors and needle in errors[-1], result.stderr[-2000:]


@pytest.mark.parametrize("dialect", ["mysql", "postgresql"])
def test_no_secret_in_logs_errors_dumps_or_cli_output(
    dialect: str,
    secret_user: str,
    s3_store: Store,
    store_secrets: dict[str, str],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "Wr0ng-" + secrets.token_hex(6)
    # as they are and as they appear inside URLs (percent-encoded)
    hidden = [SECRET, quote(SECRET, safe=""), store_secrets["s3_secret_key"], wrong]
    url: URL = database_url(dialect, tmp_path).set(username=secret_user, password=SECRET)
    transport = s3_store.transport_params
    utils = MigrationUtils(url=url, connect_args={}, engine_args={}, transport_params=transport)
    seen: dict[str, str] = {}  # where: text
    utils.create_database()  # as the secret user, who then owns it (PostgreSQL)
    try:
        populate_library(utils, authors=5)

        # -- the library, in-process ----------------------------------------------------------
        uri = s3_store.uri("lib.jsonl.gz")
        result = utils.backup_database_to_file(uri)
        seen["backup result"] = repr(result) + json.dumps(result.manifest())
        seen["utils repr"] = repr(utils) + str(utils)
        seen["list"] = repr(list_backups(s3_store.prefix, transport))
        report = verify_backup(uri, transport)
        assert report.ok, report.error
        seen["verify"] = str(report) + repr(report)
        seen["restore summary"] = repr(utils.restore_database_from_file(uri))
        dump = gzip.decompress(s3_store.get(uri)).decode()
        header = json.loads(dump.splitlines()[0])
        assert header["kind"] == "header" and header["database"] == url.database
        seen["dump"] = dump
        seen["manifest"] = s3_store.get(uri + ".manifest.json").decode()

        # a failing connection: MariaDB checks the password; PostgreSQL trusts local
        # connections here, so a role that does not exist fails instead (password still given)
        failing = (
            url.set(password=wrong)
            if dialect == "mysql"
            else url.set(username=f"{secret_user}_nobody", password=wrong)
        )
        bad = MigrationUtils(
            url=failing, connect_args={}, engine_args={}, transport_params=transport
        )
        with pytest.raises(Exception) as refused_login:  # noqa: PT011 - the driver's own error
            bad.restore_database_from_file(uri)
        bad.dispose()
        if dialect == "mysql":
            assert "Access denied" in str(refused_login.value)
        seen["failed login"] = "\n".join(_texts_of(refused_login.value))

        # a refused dump
        records = utils.backup_database_to_memory()
        forged = [
            {**r, "create_stmt": "DROP TABLE book"} if r.get("table") == "author" else r
            for r in records
            if r["kind"] != "data" or r["table"] != "author"
        ]
        forged_path = tmp_path / "forged.jsonl"
        write_lines(forged_path, reseal(forged))
        forged_uri = s3_store.uri("forged.jsonl")
        s3_store.put(forged_uri, forged_path.read_bytes())
        with pytest.raises(UnsafeDumpError, match="'author'") as refused_dump:
            utils.restore_database_from_file(forged_uri)
        seen["refused dump"] = "\n".join(_texts_of(refused_dump.value))
        utils.dispose()

        # -- the command line, credentials from the URL and the environment -----------------
        env = s3_store.environment()
        plain = url.render_as_string(hide_password=False)
        assert quote(SECRET, safe="") in plain  # the password really is on the command line
        bad_url = failing.render_as_string(hide_password=False)
        a, b = s3_store.uri("cli-a.jsonl.zst"), s3_store.uri("cli-b.jsonl.gz")
        first = _cli(
            ("backup", plain, a, "--json", "--debug"),
            ("backup", plain, b),
            ("current", plain, "--json"),
            ("backup", bad_url, s3_store.uri("never.jsonl"), "--debug"),
            env=env,
        )
        assert _ok(first[0])["uri"] == a
        _ok(first[1])
        _ok(first[2])
        _failed(first[3], "Access denied" if dialect == "mysql" else "does not exist")
        second = _cli(
            ("restore", a, plain, "--yes", "--json", "--debug"),
            ("verify", b, "--debug"),
            ("inspect", b, "--json"),
            ("list", s3_store.prefix, "--json", "--debug"),
            ("restore", b, bad_url, "--yes", "--json"),
            env=env,
        )
        assert _ok(second[0])["verified"] is True
        _ok(second[1])
        assert _ok(second[2])["verified"] is True
        assert len(_ok(second[3])["backups"]) == 3  # lib, cli-a, cli-b
        assert second[4].returncode == 1
        # one after the other: a second restore of the same database would find it locked
        third = [
            *_cli(("restore", forged_uri, plain, "--yes", "--json", "--debug"), env=env),
            *_cli(("restore", forged_uri, plain, "--yes"), env=env),
        ]
        for refused in third:
            _failed(refused, "'author'")
        assert "Traceback" in third[0].stderr  # --debug shows the traceback, scanned too
        for n, done in enumerate(first + second + third):
            seen[f"cli {' '.join(done.args[1:2])} #{n}"] = done.stdout + done.stderr
    finally:
        utils.drop_database()
        utils.dispose()
        captured = capfd.readouterr()
        seen["logs"] = caplog.text + captured.out + captured.err

    assert "backup progress" in seen["logs"] or "restored" in seen["logs"], "no logs captured"
    leaks = [
        (where, secret[:4] + "…")
        for where, text in seen.items()
        for secret in hidden
        if secret in text
    ]
    assert not leaks, leaks
