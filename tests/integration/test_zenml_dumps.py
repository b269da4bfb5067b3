"""Dumps written by ZenML's own file backup engine restore as ZenML restores them.

ZenML runs from its own virtual environment (``make zenml`` builds ``.zenml-venv`` from the
package index; ``tests/fixtures/zenml/zenml_engine.py`` drives its ``FileDatabaseBackupEngine``).
A real MariaDB database with secondary indexes, a self-referencing foreign key whose rows
point at later rows, reserved words as names and most column types is backed up by ZenML;
the one dump is restored by ZenML into one database and by us into another, and the two are
compared exactly: DDL, indexes, rows, checksums, auto-increment positions.

ZenML writes these JSON dumps only from MySQL/MariaDB (its SQLite backups are file copies),
and their statements are MySQL's, so MariaDB is where they are tested.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy
from sqlalchemy.engine import URL, Engine
from sqlalchemy.pool import NullPool

from airflow_provider_zenmigrate.core.errors import DumpFormatError, UnsafeDumpError
from airflow_provider_zenmigrate.core.utils import MigrationUtils
from tests.support.paths import FIXTURES, REPO
from tests.support.servers import database_url, unique_name

ZENML_PYTHON = REPO / ".zenml-venv" / "bin" / "python"
ENGINE_SCRIPT = FIXTURES / "zenml" / "zenml_engine.py"
STEP_RUNS = 230  # three of ZenML's 100-row data records

SCHEMA = [
    "CREATE TABLE workspace (id CHAR(32) NOT NULL PRIMARY KEY, name VARCHAR(255) NOT NULL, "
    "created DATETIME(6) NOT NULL, UNIQUE KEY uq_workspace_name (name))",
    "CREATE TABLE step_run (id INT NOT NULL AUTO_INCREMENT PRIMARY KEY, "
    "workspace_id CHAR(32) NOT NULL, original_step_run_id INT NULL, name VARCHAR(255) NOT NULL, "
    "status VARCHAR(16) NOT NULL, is_cached BOOLEAN NOT NULL, docstring TEXT, config LONGTEXT, "
    "duration DOUBLE, ratio FLOAT, cost DECIMAL(12,4), start_date DATE, created DATETIME(6), "
    "big BIGINT, payload BLOB, doc JSON, "
    "KEY ix_step_run_name (name), KEY ix_step_run_ws_status (workspace_id, status), "
    "CONSTRAINT fk_step_run_workspace FOREIGN KEY (workspace_id) REFERENCES workspace (id) "
    "ON DELETE CASCADE, "
    "CONSTRAINT fk_step_run_original FOREIGN KEY (original_step_run_id) "
    "REFERENCES step_run (id) ON DELETE SET NULL)",
    "CREATE TABLE `key` (id INT NOT NULL PRIMARY KEY, `values` VARCHAR(40), `keys` VARCHAR(40), "
    "step_run_id INT, KEY ix_key_values (`values`, `keys`), "
    "CONSTRAINT fk_key_step FOREIGN KEY (step_run_id) REFERENCES step_run (id))",
]


def _step_run(i: int) -> dict[str, Any]:
    """Row ``i``; most point at the next row (loaded later), the last one at nothing."""
    return {
        "id": i,
        "ws": "a1" if i % 3 else "b2",
        "orig": i + 1 if i < STEP_RUNS else None,
        "name": f'step {i} \t tab, "quote" \\ backslash, ü 😀' if i % 7 == 0 else f"s{i}",
        "status": ("running", "completed", "failed")[i % 3],
        "cached": i % 2,
        "doc": None if i % 5 == 0 else f"line one\nline two {i}",
        "config": json.dumps({"a": [1, 2], "i": i}),
        "duration": i / 7 if i % 4 else None,
        "ratio": 0.1 * i,
        "cost": f"{i * 1234.5678:.4f}",
        "day": f"2024-01-{i % 28 + 1:02d}",
        "created": f"2024-02-03 04:05:{i % 60:02d}.{i:06d}",
        "big": 2**53 + i,
        "payload": f"utf-8 bytes ü {i}".encode() if i % 6 else None,
        "json": json.dumps({"k": i}),
    }


def _create_source(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.exec_driver_sql("SET SESSION FOREIGN_KEY_CHECKS = 0")  # rows point forward
        for statement in SCHEMA:
            conn.exec_driver_sql(statement)
        conn.exec_driver_sql(
            "INSERT INTO workspace VALUES ('a1', 'default', '2024-05-01 12:00:00.654321'), "
            "('b2', 'Zürich 😀', '2024-05-02 00:00:00')"
        )
        conn.execute(
            sqlalchemy.text(
                "INSERT INTO step_run VALUES (:id, :ws, :orig, :name, :status, :cached, :doc, "
                ":config, :duration, :ratio, :cost, :day, :created, :big, :payload, :json)"
            ),
            [_step_run(i) for i in range(1, STEP_RUNS + 1)],
        )
        conn.exec_driver_sql("INSERT INTO `key` VALUES (1, 'v', 'k', 3), (2, NULL, NULL, NULL)")


def _zenml(action: str, url: URL, dump: Path, home: Path) -> None:
    """Run ZenML's engine (``backup`` or ``restore``) in its own virtual environment."""
    if not ZENML_PYTHON.exists():
        pytest.fail(f"ZenML's test environment is missing at {ZENML_PYTHON}: run `make zenml`")
    env = {
        **os.environ,
        "ZENML_CONFIG_PATH": str(home),
        "ZENML_ANALYTICS_OPT_IN": "false",
        "ZENML_LOGGING_COLORS_DISABLED": "true",
    }
    env.pop("PYTHONPATH", None)
    zen_url = url.set(drivername="mysql").render_as_string(hide_password=False)
    done = subprocess.run(
        [str(ZENML_PYTHON), str(ENGINE_SCRIPT), action, zen_url, str(dump)],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, f"ZenML {action} failed:\n{done.stdout}\n{done.stderr}"


def _records(dump: Path) -> list[dict[str, Any]]:
    """The JSON objects of a ZenML dump (pretty-printed, one after another)."""
    text, decoder, found, at = dump.read_text(encoding="utf-8"), json.JSONDecoder(), [], 0
    while text[at:].strip():
        at += len(text[at:]) - len(text[at:].lstrip())
        record, at = decoder.raw_decode(text, at)
        found.append(record)
    return found


def _write(records: list[dict[str, Any]], path: Path) -> Path:
    """Write records as ZenML's file engine does (``json.dump(indent=4)`` and a newline)."""
    with path.open("w", encoding="utf-8") as out:
        for record in records:
            json.dump(record, out, indent=4)
            out.write("\n")
    return path


def snapshot(engine: Engine) -> dict[str, Any]:
    """Everything a restore must reproduce: per table its DDL, indexes, rows (all of them,
    in key order), CHECKSUM TABLE and auto-increment position."""
    database = engine.url.database
    found: dict[str, Any] = {}
    with engine.connect() as conn:
        tables = conn.exec_driver_sql(
            "SELECT TABLE_NAME, AUTO_INCREMENT FROM information_schema.TABLES "
            "WHERE TABLE_SCHEMA = %s ORDER BY TABLE_NAME",
            (database,),
        ).all()
        for name, auto_increment in tables:
            quoted = f"`{name}`"
            indexes = conn.exec_driver_sql(
                "SELECT INDEX_NAME, SEQ_IN_INDEX, COLUMN_NAME, NON_UNIQUE "
                "FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s "
                "ORDER BY INDEX_NAME, SEQ_IN_INDEX",
                (database, name),
            ).all()
            found[name] = {
                "ddl": conn.exec_driver_sql(f"SHOW CREATE TABLE {quoted}").one()[1],
                "indexes": [tuple(r) for r in indexes],
                "rows": [
                    tuple(r) for r in conn.exec_driver_sql(f"SELECT * FROM {quoted} ORDER BY 1")
                ],
                "checksum": conn.exec_driver_sql(f"CHECKSUM TABLE {quoted} EXTENDED").one()[1],
                "auto_increment": auto_increment,
            }
    return found


@pytest.fixture(scope="module")
def zenml_dump(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, Any]]]:
    """A dump ZenML wrote of the source database, and ZenML's own restore of it."""
    work = tmp_path_factory.mktemp("zenml")
    source, restored = (database_url("mysql", work, unique_name("zmzen")) for _ in range(2))
    engines = [sqlalchemy.create_engine(u, poolclass=NullPool) for u in (source, restored)]
    server = sqlalchemy.create_engine(source._replace(database=None), poolclass=NullPool)
    try:
        with server.connect() as conn:
            conn.exec_driver_sql(f"CREATE DATABASE `{source.database}` CHARACTER SET utf8mb4")
        _create_source(engines[0])
        dump = work / "zenml-backup.json"
        _zenml("backup", source, dump, work / "home")
        _zenml("restore", restored, dump, work / "home")  # drops and creates the database
        yield dump, snapshot(engines[1])
    finally:
        with server.connect() as conn:
            for url in (source, restored):
                conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{url.database}`")
        for engine in (*engines, server):
            engine.dispose()


@pytest.fixture
def target(tmp_path: Path) -> Iterator[MigrationUtils]:
    """An existing MariaDB database with other contents, which a restore replaces."""
    url = database_url("mysql", tmp_path, unique_name("zmzen"))
    utils = MigrationUtils(url=url, connect_args={}, engine_args={})
    utils.create_database()
    with utils.engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE previous_contents (id INT PRIMARY KEY)")
        conn.exec_driver_sql("INSERT INTO previous_contents VALUES (1)")
    try:
        yield utils
    finally:
        utils.drop_database()
        utils.dispose()


def test_zenml_writes_index_records_and_self_references(
    zenml_dump: tuple[Path, dict[str, Any]],
) -> None:
    """What this suite relies on: ZenML's dump holds the records the issue describes."""
    dump, _ = zenml_dump
    records = _records(dump)
    shapes = [(r["table"], sorted(r)) for r in records if "data" not in r]
    assert shapes == [
        ("workspace", ["create_stmt", "self_references", "table"]),
        ("step_run", ["create_stmt", "self_references", "table"]),
        ("step_run", ["index_create_stmt", "table"]),
        ("step_run", ["index_create_stmt", "table"]),
        ("key", ["create_stmt", "self_references", "table"]),
        ("key", ["index_create_stmt", "table"]),
    ]
    flags = {r["table"]: r["self_references"] for r in records if "create_stmt" in r}
    assert flags == {"workspace": False, "step_run": True, "key": False}
    first_data = next(i for i, r in enumerate(records) if r["table"] == "step_run" and "data" in r)
    assert "index_create_stmt" in records[first_data - 1]  # indexes come before the data
    rows = [row for r in records if r["table"] == "step_run" and "data" in r for row in r["data"]]
    assert len(rows) == STEP_RUNS
    assert rows[0]["original_step_run_id"] == 2  # the first row loaded points at a later one


def test_zenml_dump_restores_as_zenml_restores_it(
    zenml_dump: tuple[Path, dict[str, Any]], target: MigrationUtils
) -> None:
    dump, by_zenml = zenml_dump
    with pytest.raises(DumpFormatError, match="allow_unverified=True"):
        target.restore_database_from_file(str(dump))
    summary = target.restore_database_from_file(str(dump), allow_unverified=True)
    assert summary.verified is False
    assert summary.tables == {"workspace": 2, "step_run": STEP_RUNS, "key": 2}
    ours = snapshot(target.engine)
    assert ours.keys() == by_zenml.keys() == {"workspace", "step_run", "key"}
    for name in ours:
        assert ours[name] == by_zenml[name], name
    assert [i[0] for i in ours["step_run"]["indexes"]].count("ix_step_run_ws_status") == 2
    # Foreign keys were unchecked only while the staging area loaded: they hold now.
    with target.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT @@FOREIGN_KEY_CHECKS").scalar() == 1
        with pytest.raises(sqlalchemy.exc.IntegrityError, match="foreign key constraint"):
            conn.exec_driver_sql(
                "INSERT INTO step_run (id, workspace_id, original_step_run_id, name, status, "
                "is_cached) VALUES (100000, 'a1', 99999, 'orphan', 'running', 0)"
            )


def _forge(records: list[dict[str, Any]], case: str) -> list[dict[str, Any]]:
    """A copy of ZenML's records with one thing changed."""
    forged = [dict(r) for r in records]
    index = next(i for i, r in enumerate(forged) if r.get("index_create_stmt"))
    create = next(
        i for i, r in enumerate(forged) if r["table"] == "step_run" and "create_stmt" in r
    )
    statement = {
        "other-table": "CREATE INDEX `ix_evil` ON `workspace` (`name`);",
        "two-statements": "CREATE INDEX `ix_evil` ON `step_run` (`name`); DROP TABLE workspace",
        "qualified": "CREATE INDEX `ix_evil` ON `mysql`.`user` (`User`);",
        "not-an-index": "CREATE TABLE `ix_evil` (id INT)",
        "drop": "DROP INDEX `ix_step_run_name` ON `step_run`",
        "executable-comment": "CREATE INDEX `ix_evil` ON `step_run` (`name`) /*! , DROP x */",
    }.get(case)
    if statement is not None:
        forged[index]["index_create_stmt"] = statement
    elif case == "index-before-its-table":
        forged.insert(create, forged.pop(index))
    elif case == "index-twice":
        forged.insert(index, dict(forged[index]))
    elif case == "self-references-not-a-flag":
        forged[create]["self_references"] = "yes"
    elif case == "unknown-field":
        forged[create]["triggers"] = ["CREATE TRIGGER t ..."]
    elif case == "two-kinds":
        forged[create]["index_create_stmt"] = forged[index]["index_create_stmt"]
    elif case == "row-without-a-column":
        data = next(r for r in forged if r["table"] == "step_run" and "data" in r)
        data["data"] = [dict(row) for row in data["data"]]
        del data["data"][-1]["docstring"]
    else:
        raise AssertionError(case)
    return forged


REFUSED = {
    "other-table": (UnsafeDumpError, "on 'workspace', not on 'step_run'"),
    "two-statements": (UnsafeDumpError, "more than one statement"),
    "qualified": (UnsafeDumpError, "qualified names are not allowed"),
    "not-an-index": (UnsafeDumpError, "not CREATE \\[UNIQUE\\] INDEX"),
    "drop": (UnsafeDumpError, "not CREATE \\[UNIQUE\\] INDEX"),
    "executable-comment": (UnsafeDumpError, "executable comment"),
    "index-before-its-table": (DumpFormatError, "does not follow that table's create record"),
    # ZenML writes a table's indexes in no fixed order (a set): either may come first.
    "index-twice": (DumpFormatError, "index 'ix_step_run_\\w+' is created twice"),
    "self-references-not-a-flag": (DumpFormatError, "self_references is not true or false"),
    "unknown-field": (DumpFormatError, "fields this version cannot restore: \\['triggers'\\]"),
    "two-kinds": (DumpFormatError, "has create_stmt and index_create_stmt"),
    "row-without-a-column": (DumpFormatError, "does not have the columns of the table's first"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_what_cannot_be_restored_is_refused(
    zenml_dump: tuple[Path, dict[str, Any]], target: MigrationUtils, tmp_path: Path, case: str
) -> None:
    dump, _ = zenml_dump
    forged = _write(_forge(_records(dump), case), tmp_path / "forged.json")
    before = snapshot(target.engine)
    error, message = REFUSED[case]
    with pytest.raises(error, match=message) as caught:
        target.restore_database_from_file(str(forged), allow_unverified=True)
    assert caught.value.line is not None  # the error names where in the dump
    assert snapshot(target.engine) == before


def test_self_referencing_rows_load_on_every_dialect(utils: MigrationUtils) -> None:
    """ZenML's shape with portable statements (tests/fixtures/zenml/README.md): the first
    row references a row of a later data record; the index record creates its index, and the
    foreign key holds once the restore is done."""
    summary = utils.restore_database_from_file(
        str(FIXTURES / "zenml" / "node_tree.json"), allow_unverified=True
    )
    assert summary.tables == {"node": 3}
    indexes = sqlalchemy.inspect(utils.engine).get_indexes("node")
    assert [(i["name"], i["column_names"]) for i in indexes if i["name"] == "ix_node_name"] == [
        ("ix_node_name", ["name"])
    ]
    with utils.engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT id, parent_id, name FROM node ORDER BY id").all()
        assert [tuple(r) for r in rows] == [(1, 3, "a"), (2, None, "b"), (3, 2, "c")]
        if utils.engine.dialect.name == "sqlite":
            conn.exec_driver_sql("PRAGMA foreign_keys = ON")
        with pytest.raises(sqlalchemy.exc.IntegrityError):
            conn.exec_driver_sql("INSERT INTO node (id, parent_id) VALUES (4, 99)")
