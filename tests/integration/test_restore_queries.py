"""Issue 27, point 3: a restore sends a constant number of statements besides each table's
data loads and one per record of the dump, whatever the number of tables; and sending
several at once still names the record whose statement failed.

Databases of 5 and 40 tables shaped as the benchmark's dataset (c)
(:mod:`tests.support.many_tables`, without views and triggers) are backed up and
restored into fresh databases on the real servers while every statement the drivers send is
recorded (:mod:`tests.support.query_count`). A table's CREATE, its data loads (COPY, LOAD
DATA, INSERT) and its objects after the data (index, key) are records of the dump; what the
restore adds per table (a row count, a sequence's position) must not be a statement per
table. Statements are counted, not timed; a pipeline's statements are counted one each.
"""

from __future__ import annotations

import json
import re
import signal
import time
from collections import Counter
from pathlib import Path

import pytest

from airflow_provider_zenmigrate.core.dialects.postgresql.writer import PostgreSQLRestoreWriter
from airflow_provider_zenmigrate.core.errors import DumpError
from airflow_provider_zenmigrate.core.utils import MigrationUtils
from tests.support.dumps import reseal, to_bytes
from tests.support.identity import fingerprint
from tests.support.many_tables import populate
from tests.support.query_count import counted_fresh, shape
from tests.support.servers import created_databases

#: A data load of one table: PostgreSQL's COPY, MariaDB's LOAD DATA or INSERT, SQLite's INSERT.
DATA_LOAD = re.compile(r"^\s*(COPY\b|LOAD DATA\b|INSERT INTO\b)", re.IGNORECASE)
#: The statements of a record of the dump, one per table or object: its CREATE TABLE (and,
#: on PostgreSQL, the position of its identity sequence, which the table record carries and
#: the restore sends in the CREATE's round trip) and its index or key after the data.
PER_RECORD = re.compile(
    r"^\s*(CREATE (TABLE|INDEX|UNIQUE INDEX)\b|ALTER TABLE\b.*\bADD\b|SELECT setval\()",
    re.IGNORECASE | re.DOTALL,
)


def restore_statements(utils: MigrationUtils, dump: Path) -> tuple[int, Counter[str], int]:
    """Restore ``dump`` into ``utils``' database: the number of statements sent per table
    record (CREATE, objects), the shapes of the other statements except data loads, and
    the number of data loads."""
    with counted_fresh(utils.url) as (fresh, log):
        summary = fresh.restore_database_from_file(str(dump))
    assert summary.rows == 3 * len(summary.tables)
    statements = log.without_database(utils.url)
    loads = sum(1 for s in statements if DATA_LOAD.search(s))
    records = sum(1 for s in statements if PER_RECORD.search(s))
    others = Counter(
        shape(s) for s in statements if not DATA_LOAD.search(s) and not PER_RECORD.search(s)
    )
    return records, others, loads


@pytest.mark.parametrize("dialect", ["sqlite", "mysql", "postgresql"], indirect=True)
def test_restore_statements_do_not_grow_with_tables(dialect: str, tmp_path: Path) -> None:
    with created_databases(dialect, tmp_path, 4, prefix="zmrb") as (small, large, *targets):
        populate(small, dialect, 5)
        populate(large, dialect, 40)
        small.backup_database_to_file(str(tmp_path / "small.jsonl"))
        large.backup_database_to_file(str(tmp_path / "large.jsonl"))
        few_records, few, few_loads = restore_statements(targets[0], tmp_path / "small.jsonl")
        many_records, many, many_loads = restore_statements(targets[1], tmp_path / "large.jsonl")
        assert fingerprint(targets[1].url) == fingerprint(large.url)

    # Each table's rows are loaded (at least once): the loads are told apart.
    assert few_loads >= 5 and many_loads >= 40
    # At most one statement per record of the dump (a batch counts as one).
    assert few_records <= 5 * 5 and many_records <= 5 * 40
    grown = {s: (few[s], many[s]) for s in few.keys() | many.keys() if few[s] != many[s]}
    assert sum(many.values()) == sum(few.values()), (
        f"{sum(few.values())} statements for 5 tables, {sum(many.values())} for 40 (besides "
        f"data loads and one per record); these differ (for 5 tables, for 40): {grown}"
    )


#: A column type every dialect's checks let through and no server knows.
UNKNOWN_TYPE = "zm_no_such_type"


@pytest.mark.parametrize("dialect", ["sqlite", "mysql", "postgresql"], indirect=True)
@pytest.mark.parametrize("failing", ["t001", "t002"])
def test_failing_create_names_its_record(dialect: str, failing: str, tmp_path: Path) -> None:
    """The 2nd or 3rd of 5 tables cannot be created (MariaDB creates tables on two sessions
    in turn: one of each): the error names its line, the target keeps what it had."""
    with created_databases(dialect, tmp_path, 2, prefix="zmrb") as (source, target):
        populate(source, dialect, 5)
        populate(target, dialect, 2)  # something to keep
        dump = tmp_path / "dump.jsonl"
        source.backup_database_to_file(str(dump))
        records = [json.loads(line) for line in dump.read_bytes().splitlines()]
        line = next(
            n
            for n, r in enumerate(records, start=1)
            if r["kind"] == "table" and r["table"].endswith(failing)
        )
        statement = records[line - 1]["create_stmt"]
        # name VARCHAR(64) -> name zm_no_such_type: SQLite accepts any type name, so there
        # the column list is broken instead (a trailing comma).
        forged = re.sub(r"(?i)(varchar|character varying)\s*\(64\)", UNKNOWN_TYPE, statement)
        if dialect == "sqlite":
            forged = statement.rstrip().removesuffix(")") + ", )"
        assert forged != statement
        records[line - 1]["create_stmt"] = forged
        dump.write_bytes(to_bytes(reseal(records)))
        before = fingerprint(target.url)

        with pytest.raises(Exception) as failed:
            target.restore_database_from_file(str(dump))

        assert fingerprint(target.url) == before
    error = failed.value
    told = [str(error), *getattr(error, "__notes__", ())]
    if isinstance(error, DumpError):
        assert error.line == line, told
    else:  # the server's own error, its record named in a note
        assert any(note.startswith(f"line {line}: ") and failing in note for note in told), told


class Stop(BaseException):
    """What a signal handler raises (as Airflow's SIGTERM handling and Ctrl-C do)."""


def test_a_signal_while_held_statements_run_is_raised_as_itself(tmp_path: Path) -> None:
    """PostgreSQL: a signal's exception raised while the pipeline of held statements waits
    for the server is the one that propagates, not psycopg's "cannot exit pipeline mode
    while busy" that leaving the pipeline then raises (it hid a SIGTERM of a rehearsal)."""

    def stop(signum: int, frame: object) -> None:
        raise Stop

    with created_databases("postgresql", tmp_path, 1, prefix="zmrb") as (target,):
        raw = target.engine.raw_connection()
        previous = signal.signal(signal.SIGALRM, stop)
        try:
            writer = PostgreSQLRestoreWriter(raw.driver_connection, "zmsig")  # type: ignore[arg-type]
            assert writer.batching
            writer._hold("test", "SELECT pg_sleep(2)")
            signal.setitimer(signal.ITIMER_REAL, 0.3)
            started = time.monotonic()
            with pytest.raises(Stop):
                writer.send_held()
            assert time.monotonic() - started < 1.5
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
            raw.invalidate()


def test_held_statements_run_on_the_server_while_the_client_goes_on(tmp_path: Path) -> None:
    """PostgreSQL: a held statement is sent at once (pipeline mode), not when the next COPY
    or query needs the connection: the server runs it while the client reads the next
    records, and send_held only waits for what is left."""
    with created_databases("postgresql", tmp_path, 1, prefix="zmrb") as (target,):
        raw = target.engine.raw_connection()
        try:
            writer = PostgreSQLRestoreWriter(raw.driver_connection, "zmahead")  # type: ignore[arg-type]
            started = time.monotonic()
            writer._hold("test", "SELECT pg_sleep(0.6)")
            sent = time.monotonic() - started
            time.sleep(0.4)  # the client's own work meanwhile
            waiting = time.monotonic()
            writer.send_held()
            waited = time.monotonic() - waiting
        finally:
            raw.invalidate()
    assert sent < 0.2, f"the held statement took {sent:.2f} s to send"
    assert waited < 0.45, f"send_held waited {waited:.2f} s: the statement had not started"
