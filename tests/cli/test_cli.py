"""The ``zenmigrate`` console script, run as a subprocess against real databases."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy
from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.pool import NullPool

from airflow_provider_zenmigrate.core.utils import MigrationUtils
from tests.support.command_line import (
    ZENMIGRATE,
    assert_one_error_line,
    child_env,
    parsed,
    zm,
    zm_json,
    zm_parallel,
)
from tests.support.engine_support import make_library, populate_library, restore_side_objects
from tests.support.identity import fingerprint
from tests.support.paths import EXAMPLE_MIGRATIONS
from tests.support.servers import SECRET, url_text

BIG_ROWS = 400_000  # enough that even the fastest backup (MariaDB) reports progress mid-way


# -- the whole round trip on every dialect ----------------------------------------------------
def test_backup_inspect_restore_round_trip(
    utils: MigrationUtils, db_url: URL, tmp_path: Path
) -> None:
    populate_library(utils)
    utils.dispose()
    original = fingerprint(db_url)
    dump = tmp_path / "backups" / "library.jsonl.gz"

    backup = zm_json("backup", url_text(db_url), str(dump))
    assert dump.is_file()
    assert backup["rows"] == 50 + 150 + 1 and backup["revision"] == "0003"
    assert backup["table_rows"]["author"] == 50 and backup["bytes"] == dump.stat().st_size

    # Change the database, then check that nothing but a confirmed restore touches it.
    with utils.engine.begin() as conn:
        conn.execute(text("DELETE FROM book WHERE id > 10"))
    utils.dispose()
    changed = fingerprint(db_url)
    assert changed != original
    is_sqlite = db_url.get_backend_name() == "sqlite"
    copy_name = "copy.db" if is_sqlite else f"{db_url.database}_copy"

    inspect, listing, refused, dry, copy = zm_parallel(
        ("inspect", str(dump), "--json"),
        ("list", str(tmp_path / "backups") + "/", "--json"),
        ("restore", str(dump), url_text(db_url)),
        ("restore", str(dump), url_text(db_url), "--dry-run", "--json"),
        ("backup-to-db", url_text(db_url), copy_name, "--json"),
        stdin="n\n",
    )
    inspected = parsed(inspect)
    assert inspected["verified"] is True and inspected["revision"] == "0003"
    assert inspected["tables"]["book"]["rows"] == 150 and inspected["tables"]["book"]["bytes"] > 0
    assert inspected["header"]["database"] == db_url.database
    assert [b["uri"] for b in parsed(listing)["backups"]] == [str(dump)]

    assert refused.returncode == 1
    assert "replace its contents" in refused.stderr
    assert_one_error_line(refused, "not confirmed")
    planned = parsed(dry)
    assert planned["would_replace"] is True and planned["verified"] is True
    assert set(planned["target"]["tables"]) >= {"author", "book"}
    assert planned["dump"]["rows"] == 201
    assert fingerprint(db_url) == changed

    assert parsed(copy)["backup_db"] == copy_name
    try:
        assert utils.database_exists(copy_name)
        copy_engine = utils.create_engine(copy_name)
        with copy_engine.connect() as conn:
            assert conn.execute(text("SELECT COUNT(*) FROM book")).scalar() == 10
            assert conn.execute(text("SELECT COUNT(*) FROM author")).scalar() == 50
    finally:
        utils.drop_database(copy_name)
        utils.dispose()

    restored = zm_json("restore", str(dump), url_text(db_url), "--yes")
    assert restored["tables"]["book"] == 150 and restored["verified"] is True
    assert fingerprint(db_url) == original


def test_confirmation_answers_yes_on_stdin(tmp_path: Path) -> None:
    url = URL.create("sqlite", database=str(tmp_path / "app.db"))
    make_library(url)
    dump = tmp_path / "app.jsonl"
    with MigrationUtils(url=url, connect_args={}, engine_args={}) as utils:
        utils.backup_database_to_file(str(dump))
        with utils.engine.begin() as conn:
            conn.execute(text("INSERT INTO author (id, name) VALUES (7, 'late')"))
    result = zm("restore", str(dump), url_text(url), stdin="y\n")
    assert result.returncode == 0, result.stderr
    assert "[y/N]" in result.stderr and "restored" in result.stdout
    engine = sqlalchemy.create_engine(url, poolclass=NullPool)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM author")).scalar() == 0
    engine.dispose()


# -- errors ------------------------------------------------------------------------------------
def test_usage_and_operational_errors_exit_codes(tmp_path: Path) -> None:
    url = URL.create("sqlite", database=str(tmp_path / "app.db"))
    sqlite = url_text(url)
    make_library(url)
    good = tmp_path / "good.jsonl"
    with MigrationUtils(url=url, connect_args={}, engine_args={}) as utils:
        utils.backup_database_to_file(str(good))
    lines = good.read_bytes().splitlines(keepends=True)
    corrupt = tmp_path / "corrupt.jsonl"
    altered = [line.replace(b'"version_num":"0003"', b'"version_num":"0004"') for line in lines]
    assert altered != lines
    corrupt.write_bytes(b"".join(altered))
    truncated = tmp_path / "truncated.jsonl"
    truncated.write_bytes(b"".join(lines[:-1]))
    x = str(tmp_path / "x.jsonl")
    # The restores run at once: each gets its own copy of the target, or one would meet the
    # other's restore lock ("another restore ... is already running") instead of its dump's
    # error.
    targets = []
    for name in ("missing", "corrupt", "truncated"):
        copy = tmp_path / f"{name}.db"
        copy.write_bytes((tmp_path / "app.db").read_bytes())
        targets.append(url_text(URL.create("sqlite", database=str(copy))))

    results = zm_parallel(
        ("backup", "not a url", x),
        ("backup", "oracle://scott:tiger-pw@host/db", x),
        ("backup",),
        ("prune", str(tmp_path)),
        ("frobnicate",),
        ("restore", str(tmp_path / "nope.jsonl"), targets[0], "--yes", "--json"),
        ("verify", str(corrupt), "--json"),
        ("verify", str(truncated), "--json"),
        ("restore", str(corrupt), targets[1], "--yes"),
        ("restore", str(truncated), targets[2], "--yes", "--debug"),
        ("inspect", str(corrupt), "--json"),
        ("restore", str(truncated), sqlite, "--dry-run", "--json"),
        ("backup", "mysql+pymysql://root:pw-on-the-line@127.0.0.1:1/nothing", x),
    )
    bad_url, unsupported, no_args, no_keep, unknown = results[:5]
    missing, verify_corrupt, verify_truncated, restore_corrupt, restore_truncated = results[5:10]
    inspect_corrupt, dry_truncated, refused = results[10:]

    # usage errors: 2
    assert bad_url.returncode == 2
    assert_one_error_line(bad_url, "not a database URL")
    assert unsupported.returncode == 2 and "tiger-pw" not in unsupported.stderr
    assert_one_error_line(unsupported, "unsupported database backend")
    assert no_args.returncode == no_keep.returncode == unknown.returncode == 2

    # operational failures: 1, one line, and a JSON error object with --json
    assert missing.returncode == 1
    line = assert_one_error_line(missing, "backup not found", "nope.jsonl")
    assert json.loads(missing.stdout) == {"ok": False, "error": line.split(": ", 2)[2]}
    assert not list(tmp_path.glob("nope*"))
    for result, reason in ((verify_corrupt, "trailer says"), (verify_truncated, "truncated")):
        assert result.returncode == 1
        assert json.loads(result.stdout)["verified"] is False
        assert_one_error_line(result, reason)
    assert restore_corrupt.returncode == 1
    assert_one_error_line(restore_corrupt, "trailer says")
    assert restore_truncated.returncode == 1 and "truncated" in restore_truncated.stderr
    assert "Traceback" in restore_truncated.stderr  # --debug adds the traceback
    assert inspect_corrupt.returncode == 1
    assert json.loads(inspect_corrupt.stdout)["verified"] is False
    assert dry_truncated.returncode == 1 and json.loads(dry_truncated.stdout)["verified"] is False
    assert refused.returncode == 1 and "pw-on-the-line" not in refused.stderr
    assert_one_error_line(refused, "database error")
    assert not Path(x).exists()


@pytest.mark.parametrize("dialect", ["mysql"])
def test_passwords_from_environment_and_prompt_never_printed(
    db_url: URL, secret_user: str, tmp_path: Path
) -> None:
    # MariaDB checks passwords here; the PostgreSQL server trusts local connections.
    url = db_url.set(username=secret_user, password=None)
    plain = url_text(url)
    dump = tmp_path / "b.jsonl"
    wrong_pw = "Wr0ng-pa55word"
    from_env, named, wrong, wrong_env, unset = zm_parallel(
        ("backup", plain, str(dump), "--json"),
        ("current", plain, "--password-env", "MY_PW", "--json"),
        ("backup", url_text(url.set(password=wrong_pw)), str(tmp_path / "w.jsonl")),
        ("current", "--password-env", "WRONG_PW", plain),
        ("current", plain, "--password-env", "NOT_SET_ANYWHERE"),
        ZENMIGRATE_PASSWORD=SECRET,
        MY_PW=SECRET,
        WRONG_PW=wrong_pw,
    )
    prompted = zm("current", plain, "-W", "--json", stdin=SECRET + "\n")
    assert parsed(from_env)["uri"] == str(dump)
    assert parsed(named)["revisions"] == []
    assert parsed(prompted)["revisions"] == []
    for result in (from_env, named, prompted):
        assert SECRET not in result.stdout + result.stderr
    for result in (wrong, wrong_env):
        assert result.returncode == 1
        assert_one_error_line(result, "Access denied")
        assert wrong_pw not in result.stdout + result.stderr
    assert not (tmp_path / "w.jsonl").exists()
    assert unset.returncode == 2


# -- routines ----------------------------------------------------------------------------------
BOOK_COUNT = {
    "mysql": "CREATE FUNCTION book_count() RETURNS INT READS SQL DATA "
    "RETURN (SELECT COUNT(*) FROM book)",
    "postgresql": "CREATE FUNCTION book_count() RETURNS bigint LANGUAGE sql STABLE "
    "AS $$ SELECT count(*) FROM book $$",
}


@pytest.mark.parametrize("dialect", ["mysql", "postgresql"])
def test_restore_creates_routines_only_with_allow_routines(
    dialect: str, utils: MigrationUtils, db_url: URL, tmp_path: Path
) -> None:
    populate_library(utils)
    with utils.engine.begin() as conn:
        conn.exec_driver_sql(BOOK_COUNT[dialect])
    dump = tmp_path / "library.jsonl"
    utils.backup_database_to_file(str(dump))
    original = fingerprint(db_url)
    with utils.engine.begin() as conn:
        conn.execute(text("DELETE FROM book WHERE id > 10"))
    utils.dispose()
    changed = fingerprint(db_url)

    # The dry runs refuse what the restore refuses, at the same record, with its flags.
    refused, verify_refused, dry_refused, verified, dry = zm_parallel(
        ("restore", str(dump), url_text(db_url), "--yes"),
        ("verify", str(dump)),
        ("restore", str(dump), url_text(db_url), "--dry-run", "--json"),
        ("verify", str(dump), "--allow-routines"),
        ("restore", str(dump), url_text(db_url), "--dry-run", "--allow-routines", "--json"),
    )
    for result in (refused, verify_refused, dry_refused):
        assert result.returncode == 1
        assert_one_error_line(result, "function 'book_count'", "--allow-routines")
    line = assert_one_error_line(refused).split(": ", 2)[2].split(":")[0]  # "line N"
    assert line.startswith("line ") and line in assert_one_error_line(verify_refused)
    failed = json.loads(dry_refused.stdout)
    assert failed["verified"] is False and failed["target_checked"] is True
    assert f"line {failed['error_line']}" == line
    assert verified.returncode == 0, verified.stderr
    assert "OK" in verified.stdout and "restore --dry-run" in verified.stdout
    planned = parsed(dry)
    assert planned["verified"] is True and planned["target_checked"] is True
    assert fingerprint(db_url) == changed
    restored = zm_json("restore", str(dump), url_text(db_url), "--yes", "--allow-routines")
    assert restored["tables"]["book"] == 150
    assert fingerprint(db_url) == original


def test_dry_runs_of_a_seed_dump_need_allow_unverified(tmp_path: Path) -> None:
    """A dump without header or trailer: ``verify`` and ``restore --dry-run`` refuse it as the
    restore does, and accept it with --allow-unverified, saying it is unverified."""
    url = URL.create("sqlite", database=str(tmp_path / "app.db"))
    make_library(url)
    dump = tmp_path / "seed.json"
    records = [
        {"table": "legacy_t", "create_stmt": "CREATE TABLE legacy_t (id INT PRIMARY KEY)"},
        {"table": "legacy_t", "data": [{"id": 1}, {"id": 2}]},
    ]
    dump.write_text("\n".join(json.dumps(r, indent=2) for r in records) + "\n")
    before = fingerprint(url)
    verify, dry, restore, verify_ok, dry_ok = zm_parallel(
        ("verify", str(dump)),
        ("restore", str(dump), url_text(url), "--dry-run"),
        ("restore", str(dump), url_text(url), "--yes"),
        ("verify", str(dump), "--allow-unverified", "--json"),
        ("restore", str(dump), url_text(url), "--dry-run", "--allow-unverified"),
    )
    for result in (verify, dry, restore):
        assert result.returncode == 1
        assert_one_error_line(result, "line 1", "allow_unverified=True")
    accepted = parsed(verify_ok)
    assert accepted["verified"] is True and accepted["unverified"] is True
    assert accepted["target_checked"] is False and "restore --dry-run" in accepted["note"]
    assert dry_ok.returncode == 0, dry_ok.stderr
    assert "UNVERIFIED" in dry_ok.stdout and "dry run: nothing was changed" in dry_ok.stdout
    assert fingerprint(url) == before


# -- Ctrl-C ------------------------------------------------------------------------------------
def _fill(url: URL, rows: int) -> None:
    engine = sqlalchemy.create_engine(url, poolclass=NullPool)
    backend = url.get_backend_name()
    source = {
        "sqlite": "WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s "
        f"WHERE n < {rows}) SELECT n, printf('%080d', n) FROM s",
        "mysql": f"SELECT seq, LPAD(seq, 80, '0') FROM seq_1_to_{rows}",
        "postgresql": f"SELECT n, LPAD(n::text, 80, '0') FROM generate_series(1, {rows}) n",
    }["mysql" if backend in ("mysql", "mariadb") else backend]
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE big (id INTEGER PRIMARY KEY, payload VARCHAR(100))"))
        conn.execute(text(f"INSERT INTO big (id, payload) {source}"))
    engine.dispose()


def _interrupt_when_progressing(args: list[str], action: str) -> tuple[int, str]:
    """Run the CLI, send SIGINT once it reports progress (mid-way), return (rc, stderr)."""
    process = subprocess.Popen(
        [ZENMIGRATE, *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env(ZENMIGRATE_PROGRESS_INTERVAL="0.02"),
    )
    assert process.stderr is not None
    seen: list[str] = []
    deadline = time.monotonic() + 60
    for line in process.stderr:
        seen.append(line)
        if f"{action} progress" in line and " 0 rows" not in line:
            process.send_signal(signal.SIGINT)
            break
        assert time.monotonic() < deadline, "".join(seen)
    else:
        pytest.fail(f"{action} finished before it could be interrupted: {''.join(seen)}")
    _out, rest = process.communicate(timeout=60)
    return process.returncode, "".join(seen) + rest


def test_ctrl_c_publishes_nothing_and_leaves_the_target(
    dialect: str, db_url: URL, tmp_path: Path
) -> None:
    _fill(db_url, BIG_ROWS)
    folder = tmp_path / "dumps"
    folder.mkdir()
    dest = folder / "big.jsonl"

    rc, stderr = _interrupt_when_progressing(["backup", url_text(db_url), str(dest)], "backup")
    assert rc == 1, stderr
    assert "interrupted: nothing was published" in stderr
    assert list(folder.iterdir()) == []

    assert zm("backup", url_text(db_url), str(dest), "-q").returncode == 0
    with sqlalchemy.create_engine(db_url, poolclass=NullPool).begin() as conn:
        conn.execute(text("DELETE FROM big WHERE id > 1000"))
    before = fingerprint(db_url)
    beside = Path(str(db_url.database)).parent  # an SQLite target's folder
    objects = restore_side_objects(db_url, beside)
    rc, stderr = _interrupt_when_progressing(
        ["restore", str(dest), url_text(db_url), "--yes"], "restore"
    )
    assert rc == 1, stderr
    assert "was left as it was" in stderr
    assert fingerprint(db_url) == before
    assert restore_side_objects(db_url, beside) == objects


# -- output modes, migrations, retention, Airflow ----------------------------------------------
def test_quiet_and_plain_progress(tmp_path: Path) -> None:
    url = URL.create("sqlite", database=str(tmp_path / "app.db"))
    make_library(url)
    quiet, loud = zm_parallel(
        ("backup", url_text(url), str(tmp_path / "q.jsonl.zst"), "--quiet"),
        ("backup", url_text(url), str(tmp_path / "l.jsonl")),
    )
    assert quiet.returncode == 0 and quiet.stdout == "" and quiet.stderr == ""
    assert (tmp_path / "q.jsonl.zst").is_file()
    assert loud.returncode == 0
    assert "backup done: 3/3 tables" in loud.stderr  # plain log lines when not on a terminal
    assert "\x1b[" not in loud.stderr  # no terminal control codes
    assert loud.stdout.startswith("backed up sqlite:///")


def _with_stdout(stdout: int, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [ZENMIGRATE, *args], stdout=stdout, stderr=subprocess.PIPE, env=child_env(), check=False
    )


def test_a_closed_stdout_ends_quietly_and_a_broken_pipe_elsewhere_is_an_error(
    tmp_path: Path,
) -> None:
    """``zenmigrate backup ... | head`` whose reader has gone: the backup is done, the result
    has nowhere to go; the command ends as a Unix tool ended by SIGPIPE (141), with no
    traceback. Another broken pipe (a store's socket, here a BrokenPipeError while stdout
    is fine) stays an error naming itself."""
    url = URL.create("sqlite", database=str(tmp_path / "app.db"))
    make_library(url)
    dump = tmp_path / "dump.jsonl"
    read, write = os.pipe()
    os.close(read)  # the reader has gone before the command writes
    try:
        closed = _with_stdout(write, "backup", "-q", "--json", url_text(url), str(dump))
    finally:
        os.close(write)
    assert closed.returncode == 141, closed.stderr
    assert closed.stderr == b""
    assert dump.is_file()  # the work was done before the result was written

    elsewhere = subprocess.run(
        [sys.executable, "-c", _RAISES_BROKEN_PIPE],
        capture_output=True,
        text=True,
        env=child_env(),
        check=False,
    )
    assert elsewhere.returncode == 1, elsewhere.stderr
    assert "zenmigrate: error: BrokenPipeError: [Errno 32] store connection" in elsewhere.stderr
    assert "Traceback" not in elsewhere.stderr


#: A command whose work raises BrokenPipeError while standard output (a pipe read to its
#: end by the test) is fine.
_RAISES_BROKEN_PIPE = """
import sys
from airflow_provider_zenmigrate import cli
from airflow_provider_zenmigrate.cli import parser

def cmd_list(args, out):  # the command's name comes from the function's
    raise BrokenPipeError(32, "store connection")

parser.cmd_list = cmd_list
sys.exit(cli.main(["list", "somewhere"]))
"""


def test_migration_commands(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'app.db'}"
    scripts = ("--scripts", str(EXAMPLE_MIGRATIONS))
    failing_scripts = ("--scripts", str(EXAMPLE_MIGRATIONS.parent / "migrations_failing"))
    heads, first, missing = zm_parallel(
        ("heads", *scripts, "--json"),
        ("upgrade", url, *scripts, "--revision", "0001", "--json"),
        ("upgrade", url),
    )
    assert parsed(heads)["heads"] == ["0003"]
    assert parsed(first)["before"] == [] and parsed(first)["after"] == ["0001"]
    assert missing.returncode == 2
    assert_one_error_line(missing, "--scripts")
    current = zm_json("current", url, *scripts)
    assert current["revisions"] == ["0001"] and current["up_to_date"] is False
    assert zm_json("upgrade", url, *scripts)["after"] == ["0003"]
    failing = zm("upgrade", url, *failing_scripts)
    assert failing.returncode == 1
    assert_one_error_line(failing, "upgrade failed at revision 0004")
    down = zm_json("downgrade", url, *scripts, "--revision", "0001")
    assert down["before"] == ["0003"] and down["after"] == ["0001"]


def test_list_and_prune(tmp_path: Path) -> None:
    url = URL.create("sqlite", database=str(tmp_path / "app.db"))
    make_library(url)
    folder = tmp_path / "backups"
    with MigrationUtils(url=url, connect_args={}, engine_args={}) as utils:
        for name in ("a", "b", "c"):
            utils.backup_database_to_file(str(folder / f"{name}.jsonl.gz"))
    prefix = str(folder) + "/"
    listing, dry = zm_parallel(
        ("list", prefix, "--json"), ("prune", prefix, "--keep-last", "1", "--dry-run", "--json")
    )
    assert [Path(b["uri"]).name for b in parsed(listing)["backups"]] == [
        "c.jsonl.gz",
        "b.jsonl.gz",
        "a.jsonl.gz",
    ]
    assert sorted(Path(u).name for u in parsed(dry)["deleted"]) == ["a.jsonl.gz", "b.jsonl.gz"]
    assert len(list(folder.iterdir())) == 6
    pruned = zm_json("prune", prefix, "--keep-last", "1")
    assert len(pruned["deleted"]) == 2
    assert sorted(p.name for p in folder.iterdir()) == ["c.jsonl.gz", "c.jsonl.gz.manifest.json"]


def test_airflow_is_imported_only_for_airflow_connections(tmp_path: Path) -> None:
    database = tmp_path / "app.db"
    make_library(URL.create("sqlite", database=str(database)))
    probe = (
        "import sys\n"
        "from airflow_provider_zenmigrate.cli import main\n"
        f"code = main(['current', 'sqlite:///{database}', '--json'])\n"
        "assert code == 0, code\n"
        "assert not [m for m in sys.modules if m == 'airflow' or m.startswith('airflow.')]\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", probe], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    conn = json.dumps({"conn_type": "sqlite", "host": str(database)})
    via_airflow = zm_json("current", "--airflow-conn", "cli_app", AIRFLOW_CONN_CLI_APP=conn)
    assert via_airflow["revisions"] == ["0003"]
    assert via_airflow["database"] == f"sqlite:///{database}"
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    assert json.loads(out)["revisions"] == ["0003"]
