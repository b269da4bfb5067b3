"""The MySQL/MariaDB dialect's backup reader and restore writer, on the real MariaDB."""

from __future__ import annotations

import logging
import os
import re
import threading
import time
import tracemalloc
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pymysql.err
import pytest
import sqlalchemy
from sqlalchemy.engine import Engine
from sqlalchemy.pool import NullPool

from airflow_provider_zenmigrate.core.dialects import get_dialect
from airflow_provider_zenmigrate.core.dialects import mysql as mysql_dialect
from airflow_provider_zenmigrate.core.dialects.mysql import MySQLOps, MySQLRestoreWriter
from airflow_provider_zenmigrate.core.dialects.mysql import reader as mysql_reader
from airflow_provider_zenmigrate.core.dialects.mysql import swap as mysql_swap
from airflow_provider_zenmigrate.core.dump.model import ColumnSpec, ObjectSpec, TableSpec
from airflow_provider_zenmigrate.core.errors import UnsafeDumpError, ZenMigrateError
from airflow_provider_zenmigrate.core.utils import MigrationUtils
from tests.support.dialect_harness import copy_via_dialect, rendered_batches
from tests.support.engine_support import restore_side_objects
from tests.support.paths import FIXTURES
from tests.support.sakila import load_mysql_sakila, run_mysql_script
from tests.support.servers import database_url, server_url

MakeDb = Callable[[], Engine]


@pytest.fixture
def server() -> Iterator[Engine]:
    engine = sqlalchemy.create_engine(server_url("mysql"), poolclass=NullPool)
    yield engine
    engine.dispose()


@pytest.fixture
def make_db(tmp_path: Path, server: Engine) -> Iterator[MakeDb]:
    """Create fresh databases (dropped after the test); returns an engine on each."""
    made: list[Engine] = []

    def make() -> Engine:
        url = database_url("mysql", tmp_path)
        sql(server, f"CREATE DATABASE `{url.database}`")
        engine = sqlalchemy.create_engine(url, poolclass=NullPool)
        made.append(engine)
        return engine

    yield make
    for engine in made:
        sql(server, f"DROP DATABASE IF EXISTS `{engine.url.database}`")
        engine.dispose()


def sql(engine: Engine, *statements: str, params: Any = None) -> list[tuple[Any, ...]]:
    """Run statements on the driver directly (no ``%`` formatting unless ``params``)."""
    rows: list[tuple[Any, ...]] = []
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        for statement in statements:
            cursor.execute(statement, params)
            rows = [tuple(r) for r in cursor.fetchall()] if cursor.description else []
        raw.commit()
    finally:
        raw.close()
    return rows


def load_sql_file(engine: Engine, path: Path) -> None:
    """Run a script with the mysql client (it understands DELIMITER)."""
    run_mysql_script(engine.url, path.read_text(encoding="utf-8"))


def q(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def db(engine: Engine) -> str:
    return str(engine.url.database)


def base_tables(engine: Engine) -> list[str]:
    rows = sql(
        engine,
        "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() "
        "AND TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_NAME",
    )
    return [r[0] for r in rows]


def checksums(engine: Engine) -> dict[str, int]:
    out: dict[str, int] = {}
    for name in base_tables(engine):
        ((_, value),) = sql(engine, f"CHECKSUM TABLE {q(name)} EXTENDED")
        out[name] = value
    return out


def definitions(engine: Engine) -> dict[str, Any]:
    """Everything SHOW CREATE says about the database (minus creation times)."""
    out: dict[str, Any] = {}
    for name in base_tables(engine):
        out[f"table {name}"] = sql(engine, f"SHOW CREATE TABLE {q(name)}")[0][1]
    d = db(engine)
    for (name,) in sql(
        engine, f"SELECT TABLE_NAME FROM information_schema.VIEWS WHERE TABLE_SCHEMA = '{d}'"
    ):
        out[f"view {name}"] = sql(engine, f"SHOW CREATE VIEW {q(name)}")[0][1]
    for name, order in sql(
        engine,
        f"SELECT TRIGGER_NAME, ACTION_ORDER FROM "
        f"information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = '{d}'",
    ):
        row = sql(engine, f"SHOW CREATE TRIGGER {q(name)}")[0]
        out[f"trigger {name}"] = (row[1], row[2], order)
    for name, kind in sql(
        engine,
        f"SELECT ROUTINE_NAME, ROUTINE_TYPE FROM "
        f"information_schema.ROUTINES WHERE ROUTINE_SCHEMA = '{d}'",
    ):
        row = sql(engine, f"SHOW CREATE {kind} {q(name)}")[0]
        out[f"{kind.lower()} {name}"] = (row[1], row[2])
    for (name,) in sql(
        engine, f"SELECT EVENT_NAME FROM information_schema.EVENTS WHERE EVENT_SCHEMA = '{d}'"
    ):
        row = sql(engine, f"SHOW CREATE EVENT {q(name)}")[0]
        out[f"event {name}"] = (row[1], row[2], row[3])
    return out


def leftovers(server: Engine, label_or_part: str) -> list[str]:
    rows = sql(
        server,
        "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE %s",
        params=(f"%{label_or_part}%",),
    )
    return [r[0] for r in rows]


def assert_same(source: Engine, target: Engine) -> None:
    assert checksums(target) == checksums(source)
    assert definitions(target) == definitions(source)


def seed_target(target: Engine) -> None:
    """Existing contents of a restore target, all of which a restore must replace."""
    sql(
        target,
        "CREATE TABLE old_stuff (id INT PRIMARY KEY, v VARCHAR(10))",
        "INSERT INTO old_stuff VALUES (1, 'old'), (2, 'older')",
        "CREATE TABLE emp (id INT PRIMARY KEY)",  # same name as a restored table
        "CREATE VIEW old_view AS SELECT id FROM old_stuff",
        "CREATE TRIGGER old_trg BEFORE INSERT ON old_stuff FOR EACH ROW SET NEW.v = 'x'",
        "CREATE PROCEDURE old_proc() SELECT 1",
    )


# -- fidelity ---------------------------------------------------------------------------------
def test_fidelity_every_type_and_object(make_db: MakeDb) -> None:
    source, target = make_db(), make_db()
    load_sql_file(source, FIXTURES / "mysql" / "fidelity.sql")
    every_byte = bytes(range(256))
    sql(
        source,
        "INSERT INTO bins VALUES (4, %s, %s, %s, %s)",
        params=(every_byte[:4], every_byte, every_byte * 3, every_byte * 1000),
    )
    seed_target(target)
    before = restore_side_objects(target.url, Path())

    with get_dialect(source).open_backup(source) as reader:
        assert "MariaDB" in reader.server_version
        specs = {t.name: t for t in reader.tables()}
        assert list(specs) == sorted(specs)
        assert specs["pairs"].key == ("a", "b")
        assert specs["nokey"].key == ()
        assert specs["ukey"].key == ("x",)
        assert [c.name for c in specs["gen"].columns] == ["id", "a", "b"]
        codecs = {c.name: c.codec for c in specs["times"].columns}
        assert codecs == {
            "id": "native",
            "d": "date",
            "t": "text",
            "t6": "text",
            "dt": "datetime",
            "dt6": "datetime",
            "ts6": "datetime",
            "y": "native",
            "dt3": "datetime",
        }
        assert "AUTO_INCREMENT=1000" in specs["autoinc"].create_stmt
        texts = [r for chunk in reader.rows(specs["texts"], 2) for r in chunk]
        assert texts[0][6] == "x,z" and isinstance(texts[0][6], str)
        times = {r[0]: r for chunk in reader.rows(specs["times"], 100) for r in chunk}
        assert times[1][2:4] == ("-838:59:59", "-838:59:59.000000")
        assert times[3][5] == "0000-00-00 00:00:00.000000"
        objects = [(o.object_type, o.name) for o in reader.objects()]
    assert objects.index(("function", "f_double")) < objects.index(("view", "v_fn"))
    assert objects.index(("view", "v_base")) < objects.index(("view", "a_top"))
    assert objects.index(("trigger", "trg_emp_bi")) < objects.index(("trigger", "trg_emp_bi2"))

    counts = copy_via_dialect(source, target, chunk_rows=2)
    assert counts["bins"] == 4 and counts["texts"] == 4

    assert_same(source, target)
    names = set(base_tables(target))
    assert "old_stuff" not in names
    defs = definitions(target)
    assert not [k for k in defs if k.split()[1] in ("old_view", "old_trg", "old_proc")]
    assert {
        "view a_top",
        "view v_fn",
        "trigger trg_emp_bi2",
        "procedure p_count",
        "function f_double",
        "event ev_noop",
    } <= set(defs)
    assert "ANSI_QUOTES" in defs["procedure p_count"][0]
    assert restore_side_objects(target.url, Path()) == before
    # id 0 survived and the counter is still ahead of max(id)
    sql(target, "INSERT INTO autoinc (note) VALUES ('next')")
    assert sql(target, "SELECT MIN(id), MAX(id) FROM autoinc") == [(0, 1000)]
    # the views and routines work in the target
    assert sql(target, "SELECT n FROM a_top") == [(3,)]
    assert sql(target, "SELECT f_double(21)") == [(42,)]


# -- Sakila -----------------------------------------------------------------------------------
SAKILA_ROWS = [
    "INSERT INTO language (language_id, name) SELECT seq, CONCAT('lang', seq) FROM seq_1_to_5",
    "INSERT INTO country (country_id, country) SELECT seq, CONCAT('Country ', seq) "
    "FROM seq_1_to_20",
    "INSERT INTO city (city_id, city, country_id) SELECT seq, CONCAT('City ', seq), "
    "1 + seq % 20 FROM seq_1_to_60",
    "INSERT INTO address (address_id, address, district, city_id, postal_code, phone) "
    "SELECT seq, CONCAT(seq, ' Main St'), 'District', 1 + seq % 60, LPAD(seq, 5, '0'), "
    "CONCAT('555-', seq) FROM seq_1_to_200",
    "INSERT INTO category (category_id, name) SELECT seq, CONCAT('Cat ', seq) FROM seq_1_to_16",
    "INSERT INTO actor (actor_id, first_name, last_name) SELECT seq, CONCAT('Név', seq), "
    "CONCAT('LAST', seq % 37) FROM seq_1_to_200",
    "INSERT INTO staff (staff_id, first_name, last_name, address_id, picture, email, store_id, "
    "username, password) SELECT seq, 'Staff', CONCAT('Member', seq), seq, "
    "UNHEX(REPEAT(HEX(seq), 300)), CONCAT('s', seq, '@example.com'), seq, CONCAT('u', seq), "
    "SHA1(seq) FROM seq_1_to_2",
    "INSERT INTO store (store_id, manager_staff_id, address_id) SELECT seq, seq, seq "
    "FROM seq_1_to_2",
    "INSERT INTO film (film_id, title, description, release_year, language_id, "
    "original_language_id, rental_duration, rental_rate, length, replacement_cost, rating, "
    "special_features) SELECT seq, CONCAT('FILM ', seq), CONCAT('A film about ', seq), "
    "1990 + seq % 30, 1 + seq % 5, IF(seq % 3 = 0, NULL, 1 + seq % 4), 3 + seq % 5, "
    "0.99 + seq % 4, 60 + seq, 9.99 + seq % 20, ELT(1 + seq % 5, 'G','PG','PG-13','R','NC-17'), "
    "ELT(1 + seq % 4, 'Trailers', 'Commentaries,Deleted Scenes', NULL, "
    "'Trailers,Behind the Scenes') FROM seq_1_to_300",
    "INSERT INTO film_actor (actor_id, film_id) SELECT 1 + seq % 200, 1 + seq % 300 "
    "FROM seq_1_to_600 GROUP BY 1 + seq % 200, 1 + seq % 300",
    "INSERT INTO film_category (film_id, category_id) SELECT seq, 1 + seq % 16 FROM seq_1_to_300",
    "INSERT INTO customer (customer_id, store_id, first_name, last_name, email, address_id, "
    "active, create_date) SELECT seq, 1 + seq % 2, 'Cust', CONCAT('Omer', seq), NULL, "
    "3 + seq % 190, seq % 7 <> 0, '2006-02-14 22:04:36' + INTERVAL seq HOUR FROM seq_1_to_300",
    "INSERT INTO inventory (inventory_id, film_id, store_id) SELECT seq, 1 + seq % 300, "
    "1 + seq % 2 FROM seq_1_to_500",
    "INSERT INTO rental (rental_id, rental_date, inventory_id, customer_id, return_date, "
    "staff_id) SELECT seq, '2005-05-24 22:53:30' + INTERVAL seq MINUTE, 1 + seq % 500, "
    "1 + seq % 300, IF(seq % 10 = 0, NULL, '2005-05-26 22:04:30' + INTERVAL seq MINUTE), "
    "1 + seq % 2 FROM seq_1_to_500",
    "INSERT INTO payment (payment_id, customer_id, staff_id, rental_id, amount, payment_date) "
    "SELECT seq, 1 + seq % 300, 1 + seq % 2, IF(seq % 50 = 0, NULL, seq), 0.99 + seq % 10, "
    "'2005-05-25 11:30:37' + INTERVAL seq MINUTE FROM seq_1_to_500",
    "ALTER TABLE payment AUTO_INCREMENT = 16050",
]


@pytest.mark.sakila
def test_sakila_round_trip(make_db: MakeDb, server: Engine) -> None:
    source, target = make_db(), make_db()
    load_mysql_sakila(source.url)
    sql(source, "SET SESSION FOREIGN_KEY_CHECKS = 0", *SAKILA_ROWS)
    assert sql(source, "SELECT COUNT(*) FROM film_text") == [(300,)]  # via trigger ins_film
    seed_target(target)

    counts = copy_via_dialect(source, target, chunk_rows=128)

    assert counts["rental"] == 500 and counts["film_text"] == 300
    assert_same(source, target)
    defs = definitions(target)
    assert len([k for k in defs if k.startswith("view ")]) == 7
    assert len([k for k in defs if k.startswith("trigger ")]) == 3
    assert {"function get_customer_balance", "procedure rewards_report"} <= set(defs)
    assert sql(target, "SELECT COUNT(*) FROM customer_list") == sql(
        source, "SELECT COUNT(*) FROM customer_list"
    )
    assert sql(
        target,
        "SELECT COUNT(*) FROM information_schema.TABLE_CONSTRAINTS WHERE "
        "CONSTRAINT_SCHEMA = DATABASE() AND CONSTRAINT_TYPE = 'FOREIGN KEY'",
    ) == [(22,)]


# -- atomicity --------------------------------------------------------------------------------
def _existing_target(make_db: MakeDb) -> Engine:
    target = make_db()
    seed_target(target)
    sql(target, "INSERT INTO emp VALUES (7), (8)")
    return target


def _spec(name: str, ddl: str, *columns: str) -> TableSpec:
    return TableSpec(
        name=name,
        create_stmt=f"CREATE TABLE `{name}` ({ddl})",
        columns=tuple(ColumnSpec(c, "native") for c in columns),
    )


@pytest.mark.parametrize("failure", ["strict_mode", "not_null", "engine_raises", "bad_object"])
def test_failed_load_leaves_target_untouched(make_db: MakeDb, server: Engine, failure: str) -> None:
    target = _existing_target(make_db)
    before_sums, before_defs = checksums(target), definitions(target)
    label = uuid.uuid4().hex[:8]
    ok = _spec("ok", "id INT PRIMARY KEY, v VARCHAR(5) NOT NULL", "id", "v")
    with (
        pytest.raises(Exception) as caught,  # noqa: B017 - each case fails its own way
        get_dialect(target).open_restore(target, label) as writer,
    ):
        writer.create_table(ok)
        writer.load_rows(ok, [(1, "a"), (2, "b")])
        assert leftovers(server, label)  # the staging database exists meanwhile
        if failure == "strict_mode":
            writer.load_rows(ok, [(3, "c"), (4, "too long for five")])
        elif failure == "not_null":
            writer.load_rows(ok, [(3, "c"), (4, None)])
        elif failure == "engine_raises":
            raise RuntimeError("the dump ended early")
        else:
            writer.create_object(
                ObjectSpec("view", "broken", "CREATE VIEW broken AS SELECT * FROM nowhere")
            )
        writer.swap()
    assert failure != "engine_raises" or "ended early" in str(caught.value)
    assert checksums(target) == before_sums
    assert definitions(target) == before_defs
    assert leftovers(server, label) == []


# Events are not rehearsed in staging (they could fire there), so this one fails only in the
# swap, after the rename: its ENDS is before its STARTS.
_FAILS_IN_SWAP = ObjectSpec(
    "event",
    "zm_fails",
    "CREATE EVENT zm_fails ON SCHEDULE EVERY 1 DAY STARTS '2030-01-02 00:00:00' "
    "ENDS '2030-01-01 00:00:00' DO SET @zm_x = 1",
)


@pytest.mark.parametrize("path", ["one block", "statement by statement"])
def test_swap_failure_after_rename_puts_everything_back(
    make_db: MakeDb, monkeypatch: pytest.MonkeyPatch, path: str
) -> None:
    """A restored object fails in the target half-way through their creation, after the
    rename: the rename is undone and the old objects are back. "one block" is MariaDB's swap
    (one server statement); "statement by statement" is MySQL's (forced here)."""
    source = make_db()
    load_sql_file(source, FIXTURES / "mysql" / "fidelity.sql")
    target = _existing_target(make_db)
    before_sums, before_defs = checksums(target), definitions(target)
    before_side = restore_side_objects(target.url, Path())
    if path == "statement by statement":
        monkeypatch.setattr(mysql_swap, "runs_swap_block", lambda _version: False)
    real_swap = MySQLRestoreWriter.swap

    def swap(self: MySQLRestoreWriter) -> None:
        self.create_object(_FAILS_IN_SWAP)
        self.objects.insert(2, self.objects.pop())  # fail half-way through
        real_swap(self)

    monkeypatch.setattr(MySQLRestoreWriter, "swap", swap)
    with pytest.raises(pymysql.err.MySQLError, match="ENDS is either invalid or before STARTS"):
        copy_via_dialect(source, target)
    assert checksums(target) == before_sums
    assert definitions(target) == before_defs
    assert restore_side_objects(target.url, Path()) == before_side
    # and running it again succeeds
    monkeypatch.undo()
    copy_via_dialect(source, target)
    assert_same(source, target)


def _rename_waiting_for_a_lock(server: Engine, target: Engine, timeout: float = 30) -> int:
    """The session whose RENAME TABLE into ``target`` waits for a metadata lock (the
    processlist shows the block's statement that runs)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = sql(
            server,
            "SELECT ID FROM information_schema.PROCESSLIST WHERE DB = %s "
            "AND INFO LIKE 'RENAME TABLE %%' AND STATE = 'Waiting for table metadata lock'",
            params=(db(target),),
        )
        if rows:
            return int(rows[0][0])
        time.sleep(0.05)
    pytest.fail("the swap's RENAME TABLE never waited for the lock")


def test_swap_block_killed_by_the_server_puts_everything_back(
    make_db: MakeDb, server: Engine
) -> None:
    """MariaDB: the restore's session is killed while the server runs the swap block, after
    it dropped the target's objects and while its RENAME TABLE waits for a metadata lock (a
    reader's open transaction). The swap finds that the rename did not happen and puts the
    old objects back; then the restore runs again."""
    source = make_db()
    load_sql_file(source, FIXTURES / "mysql" / "fidelity.sql")
    target = _existing_target(make_db)
    before_sums, before_defs = checksums(target), definitions(target)
    before_side = restore_side_objects(target.url, Path())
    reader = target.raw_connection()
    failure: list[BaseException] = []

    def restore() -> None:
        try:
            copy_via_dialect(source, target)
        except BaseException as exc:  # noqa: BLE001 - inspected below
            failure.append(exc)

    try:
        cursor = reader.cursor()
        cursor.execute("START TRANSACTION")
        cursor.execute("SELECT COUNT(*) FROM emp")  # holds emp's metadata lock
        cursor.fetchall()
        worker = threading.Thread(target=restore)
        worker.start()
        session = _rename_waiting_for_a_lock(server, target)
        # the block dropped the objects (SHOW CREATE would queue behind the RENAME's lock)
        routines = "SELECT ROUTINE_NAME FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = %s"
        assert sql(target, routines, params=(db(target),)) == []
        sql(server, f"KILL CONNECTION {session}")
    finally:
        reader.rollback()
        reader.close()
    worker.join(60)
    assert not worker.is_alive()
    assert len(failure) == 1 and isinstance(failure[0], pymysql.err.MySQLError), failure
    assert checksums(target) == before_sums
    assert definitions(target) == before_defs
    assert restore_side_objects(target.url, Path()) == before_side
    copy_via_dialect(source, target)
    assert_same(source, target)


# -- safety -----------------------------------------------------------------------------------
UNSAFE_TABLES = [
    ("t", "CREATE TABLE t (id int); DROP DATABASE {victim}"),
    ("t", "DROP DATABASE {victim}"),
    ("t", "DROP TABLE t"),
    ("t", "CREATE TABLE {victim}.t (id int)"),
    ("t", "CREATE TABLE other (id int)"),
    # MySQL runs the contents of /*! */ comments: the shared check sees only `TABLE t`
    ("t", "CREATE /*!50000 OR REPLACE TABLE {victim}.keep (x int) -- */ TABLE t (id int)"),
    # `#` starts a comment for MySQL: the qualified name is {victim}.keep
    ("{victim}", "CREATE OR REPLACE TABLE {victim}#\n.keep (x int)"),
    ("t", "CREATE TABLE t LIKE {victim}.keep"),
    ("t", "CREATE TABLE t AS SELECT * FROM {victim}.keep"),
]


@pytest.mark.parametrize(("name", "statement"), UNSAFE_TABLES)
def test_unsafe_create_table_is_refused_before_running(
    make_db: MakeDb, server: Engine, name: str, statement: str
) -> None:
    target, victim = make_db(), make_db()
    sql(victim, "CREATE TABLE keep (x INT)", "INSERT INTO keep VALUES (42)")
    statement = statement.format(victim=db(victim))
    name = name.format(victim=db(victim))
    label = uuid.uuid4().hex[:8]
    with get_dialect(target).open_restore(target, label) as writer:
        staging = leftovers(server, label)[0]
        with pytest.raises(UnsafeDumpError):
            writer.create_table(TableSpec(name=name, create_stmt=statement, columns=()))
        assert sql(
            server,
            f"SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{staging}'",
        ) == [(0,)]
    assert sql(victim, "SELECT x FROM keep") == [(42,)]
    assert sql(victim, "SHOW CREATE TABLE keep")[0][1].count("`x` int(11)") == 1


UNSAFE_OBJECTS = [
    ObjectSpec("view", "v", "CREATE VIEW v AS SELECT 1; DROP DATABASE {victim}"),
    ObjectSpec("view", "v", "CREATE VIEW {victim}.v AS SELECT 1"),
    ObjectSpec("view", "v", 'CREATE DEFINER="\\" VIEW v" VIEW {victim}.v AS SELECT 1'),
    ObjectSpec("procedure", "p", "CREATE PROCEDURE {victim}.p() SELECT 1"),
    ObjectSpec("trigger", "t", "DROP TRIGGER t"),
    ObjectSpec(
        "procedure", "p", "/* zenmigrate: sql_mode='x'';DROP' */ CREATE PROCEDURE p() SELECT 1"
    ),
    ObjectSpec("table", "t", "CREATE TABLE t (id int)"),
]


@pytest.mark.parametrize("obj", UNSAFE_OBJECTS)
def test_unsafe_objects_are_refused(make_db: MakeDb, obj: ObjectSpec) -> None:
    target, victim = make_db(), make_db()
    spec = ObjectSpec(obj.object_type, obj.name, obj.create_stmt.format(victim=db(victim)))
    with (
        get_dialect(target).open_restore(target, uuid.uuid4().hex[:8]) as writer,
        pytest.raises(UnsafeDumpError),
    ):
        writer.create_object(spec)
    assert definitions(victim) == {}


def test_multi_statement_connections_are_refused(make_db: MakeDb) -> None:
    target = make_db()
    engine = sqlalchemy.create_engine(
        target.url, poolclass=NullPool, connect_args={"client_flag": 1 << 16}
    )
    try:
        with (
            pytest.raises(ZenMigrateError, match="MULTI_STATEMENTS"),
            get_dialect(engine).open_restore(engine, "multi"),
        ):
            pass
    finally:
        engine.dispose()


def test_awkward_names_round_trip(make_db: MakeDb) -> None:
    source, target = make_db(), make_db()
    sql(
        source,
        "CREATE TABLE `we``ird` (`co``l%s` INT PRIMARY KEY, `%(x)s` VARCHAR(10), `sp ace` TEXT)",
        "INSERT INTO `we``ird` VALUES (1, '%s', '%%'), (2, NULL, ');--')",
        "CREATE VIEW `v``iew` AS SELECT `co``l%s` FROM `we``ird`",
    )
    copy_via_dialect(source, target)
    assert_same(source, target)
    assert sql(target, "SELECT `%(x)s`, `sp ace` FROM `we``ird` ORDER BY 1") == [
        (None, ");--"),
        ("%s", "%%"),
    ]


def test_long_target_names_and_labels(server: Engine) -> None:
    name = "t" * 64
    ops = MySQLOps()
    url = server_url("mysql")._replace(database=name)
    sql(server, f"CREATE DATABASE `{name}`")
    engine = sqlalchemy.create_engine(url, poolclass=NullPool)
    try:
        sql(engine, "CREATE TABLE a (id INT)")
        with ops.open_restore(engine, "lbl") as writer:
            writer.create_table(_spec("b", "id INT", "id"))
            writer.load_rows(_spec("b", "id INT", "id"), [(1,)])
            writer.swap()
        assert base_tables(engine) == ["b"]
        with pytest.raises(ValueError), ops.open_restore(engine, "bad-label"):
            pass
    finally:
        sql(server, f"DROP DATABASE `{name}`")
        engine.dispose()
    assert leftovers(server, "_lbl_") == []


# -- streaming --------------------------------------------------------------------------------
def test_rows_stream_in_chunks(make_db: MakeDb) -> None:
    source = make_db()
    sql(
        source,
        "CREATE TABLE big (id INT PRIMARY KEY, pad CHAR(200) NOT NULL)",
        "INSERT INTO big SELECT seq, REPEAT(CHAR(65 + seq % 26), 200) FROM seq_1_to_50000",
    )
    with get_dialect(source).open_backup(source) as reader:
        (table,) = reader.tables()
        sizes = [len(chunk) for chunk in reader.rows(table, 1000)]
        assert sizes == [1000] * 50
        tracemalloc.start()
        try:
            total, last = 0, 0
            for chunk in reader.rows(table, 7000):
                assert chunk[0][0] == last + 1  # keyset order, no gaps
                last = chunk[-1][0]
                total += len(chunk)
                del chunk
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert total == 50000
    # All rows at once would be > 12 MB of str objects; one chunk of 7000 is ~2 MB.
    assert peak < 6 * 1024 * 1024, peak


@pytest.mark.parametrize("charset", ["latin1", "utf8mb3"])
def test_rendered_rows_are_utf8_whatever_the_session_sends(make_db: MakeDb, charset: str) -> None:
    """A session whose results the server converts (here latin1 or utf8mb3) still renders
    the same UTF-8 bytes, emoji included, as a utf8mb4 session."""
    source = make_db()
    sql(
        source,
        "CREATE TABLE t (id INT PRIMARY KEY, s VARCHAR(20) CHARACTER SET utf8mb4, "
        "l VARCHAR(20) CHARACTER SET latin1)",
        "INSERT INTO t VALUES (1, 'ü 😀 \"', 'Ærø'), (2, NULL, NULL)",
    )

    def rendered(engine: Engine) -> bytes:
        with get_dialect(engine).open_backup(engine) as reader:
            (table,) = reader.tables()
            blocks = reader.rendered_rows(table, 10)
            assert blocks is not None
            return b"".join(block for _, block in blocks)

    expected = rendered(source)
    assert expected.decode("utf-8").count("😀") == 1
    other = sqlalchemy.create_engine(
        source.url, poolclass=NullPool, connect_args={"charset": charset}
    )
    try:
        with other.connect() as conn:
            assert conn.exec_driver_sql("SELECT @@character_set_results").scalar() == charset
        assert rendered(other) == expected
    finally:
        other.dispose()


def test_snapshot_is_consistent(make_db: MakeDb) -> None:
    source = make_db()
    sql(source, "CREATE TABLE a (id INT PRIMARY KEY)", "INSERT INTO a VALUES (1)")
    with get_dialect(source).open_backup(source) as reader:
        (table,) = reader.tables()
        sql(source, "INSERT INTO a VALUES (2)")  # committed after the snapshot
        assert [r for chunk in reader.rows(table, 10) for r in chunk] == [(1,)]


# -- rendering on several sessions ---------------------------------------------------------
BIG_ROWS = 40_000  # about 10 MB of InnoDB data: several key ranges of SMALL_RANGE_BYTES
SMALL_RANGE_BYTES = 2 * 1024 * 1024


@pytest.fixture
def small_ranges(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ranges of 2 MiB, so a table of 10 MB is split as larger ones are by default."""
    monkeypatch.setattr(mysql_reader, "RANGE_BYTES", SMALL_RANGE_BYTES)


def _big_table(engine: Engine, name: str = "big", rows: int = BIG_ROWS) -> None:
    sql(
        engine,
        f"CREATE TABLE {name} (id INT PRIMARY KEY, amount INT NOT NULL, pad CHAR(200) NOT NULL)",
        f"INSERT INTO {name} SELECT seq, 1000, REPEAT(CHAR(65 + seq % 26), 200) "
        f"FROM seq_1_to_{rows}",
        f"ANALYZE TABLE {name}",  # DATA_LENGTH now, not when InnoDB gets round to it
    )


def _rendered(reader: Any, table: TableSpec) -> list[dict[str, Any]]:
    batches = rendered_batches(reader.rendered_rows(table, 1000), 1000)
    return [row for batch in batches for row in batch]


def _rendered_on_one_session(engine: Engine) -> list[dict[str, Any]]:
    """The rows of the database's one table, from a backup that could not start other
    sessions in its snapshot."""
    with get_dialect(engine).open_backup(engine) as reader:
        assert isinstance(reader, mysql_dialect.MySQLBackupReader)
        assert reader.helpers == ()
        (table,) = reader.tables()
        return _rendered(reader, table)


def _bytes_sent(session: Any) -> int:
    return int(session.query("SHOW SESSION STATUS LIKE 'Bytes_sent'")[0][1])


@pytest.mark.usefixtures("small_ranges")
def test_large_table_renders_on_several_sessions_in_one_snapshot(make_db: MakeDb) -> None:
    """A large table is rendered in key ranges taken in turn by the reader's session and
    the helpers started in the same snapshot: the rows are exactly the snapshot's (changes
    committed after it, to rows of every range, are not seen), each once and in key order,
    and every session sent at least one range of them."""
    source = make_db()
    _big_table(source)
    expected = sql(source, "SELECT id, amount, pad FROM big ORDER BY id")
    with get_dialect(source).open_backup(source) as reader:
        assert isinstance(reader, mysql_dialect.MySQLBackupReader)
        sessions = (reader.session, *reader.helpers)
        assert len(sessions) == mysql_reader.RENDER_SESSIONS == 3
        (table,) = reader.tables()
        ranges = len(reader._key_ranges(table))
        assert ranges >= 4
        sql(
            source,
            "UPDATE big SET amount = 0 WHERE id % 997 = 0",
            "DELETE FROM big WHERE id % 1009 = 0",
            "INSERT INTO big SELECT seq, 5, 'new' FROM seq_40001_to_41000",
        )
        before = [_bytes_sent(session) for session in sessions]
        rows = _rendered(reader, table)
        shares = [
            _bytes_sent(session) - sent for session, sent in zip(sessions, before, strict=True)
        ]
    assert [(r["id"], r["amount"], r["pad"]) for r in rows] == expected
    assert min(shares) > 0.5 * sum(shares) / ranges, shares


@pytest.mark.usefixtures("small_ranges")
def test_ranges_left_unread_leave_every_session_usable(make_db: MakeDb) -> None:
    """A consumer that stops after the first rows closes the ranges it started, some of
    them only sent: each is read to its end, and every session runs the next query."""
    source = make_db()
    _big_table(source)
    with get_dialect(source).open_backup(source) as reader:
        assert isinstance(reader, mysql_dialect.MySQLBackupReader)
        (table,) = reader.tables()
        for stop_after in (1, 3):
            rendered = reader.rendered_rows(table, 1000)
            assert rendered is not None
            for _, (count, _block) in zip(range(stop_after), rendered, strict=False):
                assert count > 0
            rendered.close()
            for session in (reader.session, *reader.helpers):
                assert session.scalar("SELECT COUNT(*) FROM big") == BIG_ROWS
        assert len(_rendered(reader, table)) == BIG_ROWS


@pytest.mark.usefixtures("small_ranges")
def test_the_sessions_read_one_snapshot_while_money_moves(make_db: MakeDb) -> None:
    """A writer moves amounts between random rows of the large table, one transaction a
    move, while backups open and render it: every rendering adds up. Without the lock
    held while the sessions start, one starts after moves another missed."""
    source = make_db()
    _big_table(source)
    stop = threading.Event()
    moves = 0

    def writer() -> None:
        nonlocal moves
        raw = source.raw_connection()
        try:
            cursor = raw.cursor()
            while not stop.is_set():
                a, b = (int.from_bytes(os.urandom(4), "big") % BIG_ROWS + 1 for _ in range(2))
                cursor.execute("UPDATE big SET amount = amount - 1 WHERE id = %s", (a,))
                cursor.execute("UPDATE big SET amount = amount + 1 WHERE id = %s", (b,))
                raw.commit()
                moves += 1
        finally:
            raw.close()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        time.sleep(0.2)
        for _ in range(10):
            with get_dialect(source).open_backup(source) as reader:
                assert isinstance(reader, mysql_dialect.MySQLBackupReader)
                assert len(reader.helpers) == mysql_reader.RENDER_SESSIONS - 1
                (table,) = reader.tables()
                rows = _rendered(reader, table)
            assert len(rows) == BIG_ROWS
            assert sum(r["amount"] for r in rows) == BIG_ROWS * 1000, f"after {moves} moves"
    finally:
        stop.set()
        thread.join()
    assert moves > 100, "the writer hardly moved: nothing was tested"


@pytest.mark.usefixtures("small_ranges")
def test_a_writer_holding_the_table_leaves_the_backup_on_one_session(make_db: MakeDb) -> None:
    """An open transaction that changed the large table keeps the lock from being taken:
    after _SNAPSHOT_LOCK_WAIT the backup goes on with one session, without the change."""
    source = make_db()
    _big_table(source)
    holder = source.raw_connection()
    try:
        holder.cursor().execute("UPDATE big SET amount = 0 WHERE id = 1")  # not committed
        started = time.monotonic()
        rows = _rendered_on_one_session(source)
        waited = time.monotonic() - started
    finally:
        holder.rollback()
        holder.close()
    assert mysql_reader.SNAPSHOT_LOCK_WAIT <= waited < mysql_reader.SNAPSHOT_LOCK_WAIT + 5
    assert len(rows) == BIG_ROWS
    assert rows[0]["amount"] == 1000


@pytest.mark.usefixtures("small_ranges")
def test_without_the_lock_privilege_the_backup_renders_on_one_session(
    make_db: MakeDb, server: Engine
) -> None:
    """A user who may read but not LOCK TABLES gets the same rows, on one session."""
    source = make_db()
    _big_table(source)
    user = f"zm_ro_{uuid.uuid4().hex[:8]}"
    sql(
        server,
        f"CREATE USER '{user}'@'%' IDENTIFIED BY 'pw-{user}'",
        f"GRANT SELECT, SHOW VIEW ON {q(db(source))}.* TO '{user}'@'%'",
    )
    reading = sqlalchemy.create_engine(
        source.url.set(username=user, password=f"pw-{user}"), poolclass=NullPool
    )
    try:
        rows = _rendered_on_one_session(reading)
    finally:
        reading.dispose()
        sql(server, f"DROP USER '{user}'@'%'")
    assert [r["id"] for r in rows] == list(range(1, BIG_ROWS + 1))


@pytest.mark.parametrize(
    "where", ["in-the-range-being-read", "in-the-range-rendered-ahead", "two-ranges-ahead"]
)
@pytest.mark.usefixtures("small_ranges")
def test_a_row_too_long_to_render_in_a_split_table(
    make_db: MakeDb, tmp_path: Path, where: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A row that cannot be rendered in a table rendered on several sessions, in the range
    being read or in one another session renders ahead: every session is read to the end
    of its range, the backup reads the rest with the Python encoders, and the next large
    table is again rendered on all of them."""
    source, target = make_db(), make_db()
    _big_table(source, "big")
    _big_table(source, "more")
    sql(source, "ALTER TABLE big ADD doc LONGTEXT, ALGORITHM=INSTANT")
    with get_dialect(source).open_backup(source) as reader:
        assert isinstance(reader, mysql_dialect.MySQLBackupReader)
        ranges = {t.name: reader._key_ranges(t) for t in reader.tables()}
    assert len(ranges["big"]) >= 4 and len(ranges["more"]) >= 4, ranges
    starts = [int(re.findall(r"\d+", r)[-1]) for r in ranges["big"][:2]]  # ranges 1 and 2
    # Past the first batch of range 0, or the first row of range 1 or 2 (met while started).
    at = {"in-the-range-being-read": 1000, "in-the-range-rendered-ahead": starts[0]}.get(
        where, starts[1]
    )
    assert 1000 < starts[0] < starts[1]
    # One row, so InnoDB's statistics (hence the ranges) stay as they were. 16 MiB less 4
    # bytes: rendered by the server it would be too long for max_allowed_packet (NULL), and
    # with its key and length prefixes it fills more than one packet, which the C that
    # writes the rows from the columns does not read.
    sql(source, f"UPDATE big SET doc = REPEAT('\"', 16777212) WHERE id = {at}")
    utils = MigrationUtils(url=source.url, connect_args={}, engine_args={})
    copy = MigrationUtils(url=target.url, connect_args={}, engine_args={})
    try:
        dump = str(tmp_path / "dump.jsonl")
        with caplog.at_level(logging.DEBUG, logger="airflow_provider_zenmigrate"):
            utils.backup_database_to_file(dump)
        assert "table big: a row too long for the server to render" in caplog.text
        assert "table more: rendered on 3 sessions" in caplog.text
        copy.restore_database_from_file(dump)
        assert checksums(source) == checksums(target)
    finally:
        utils.dispose()
        copy.dispose()
