"""The legacy (unverified) format's index records (core/dump/legacy.py): the record names
only the table, so the index's name is read from its statement, which must create exactly
one index on that table, unqualified, and nothing else."""

from __future__ import annotations

import pytest

from airflow_provider_zenmigrate.core.dump.legacy import LegacyRecords, index_name
from airflow_provider_zenmigrate.core.errors import DumpFormatError, UnsafeDumpError


@pytest.mark.parametrize(
    ("statement", "index"),
    [
        ("CREATE INDEX ix_a ON t (a)", "ix_a"),
        ("CREATE UNIQUE INDEX `ix b` ON `t` (a, b)", "ix b"),
        ('CREATE INDEX "ix" ON T (a)', "ix"),  # an unquoted table name in any case
        ("CREATE INDEX ix ON t (a) /* ; DROP TABLE t */", "ix"),  # a comment is not a statement
        ("CREATE INDEX ix ON t (a) WHERE b = ';'", "ix"),  # nor is a quoted semicolon
    ],
)
def test_the_index_name_comes_from_its_statement(statement: str, index: str) -> None:
    assert index_name(statement, "t") == index


@pytest.mark.parametrize(
    ("statement", "words"),
    [
        ("CREATE TABLE x (a int)", "statement is not CREATE [UNIQUE] INDEX"),
        ("DROP INDEX ix ON t", "statement is not CREATE [UNIQUE] INDEX"),
        ("CREATE INDEX IF NOT EXISTS ix ON t (a)", "no index name after INDEX"),
        ("CREATE INDEX ix t (a)", "expected ON t after the index name"),
        ("CREATE INDEX ix ON other (a)", "the index is on 'other', not on 't'"),
        ("CREATE INDEX ix ON `T` (a)", "the index is on 'T', not on 't'"),  # quoted: exact
        ("CREATE INDEX ix ON db.t (a)", "qualified names are not allowed"),
        ("CREATE INDEX ix ON t (a); DROP TABLE t", "more than one statement"),
    ],
)
def test_an_index_statement_that_does_more_is_refused(statement: str, words: str) -> None:
    with pytest.raises(UnsafeDumpError, match=words.replace("[", r"\[").replace("]", r"\]")):
        index_name(statement, "t")


def test_index_records_follow_their_table_and_are_named_once() -> None:
    records = LegacyRecords()
    records.check(1, {"table": "t", "create_stmt": "CREATE TABLE t (a INT)"})
    index = records.check(2, {"table": "t", "index_create_stmt": "CREATE INDEX ix ON t (a)"})
    assert index == {
        "kind": "object",
        "phase": "pre",
        "object_type": "index",
        "name": "ix",
        "table": "t",
        "create_stmt": "CREATE INDEX ix ON t (a)",
    }
    with pytest.raises(DumpFormatError, match="index 'IX' is created twice") as caught:
        records.check(3, {"table": "t", "index_create_stmt": "CREATE INDEX IX ON t (a)"})
    assert caught.value.line == 3
    records.check(4, {"table": "u", "create_stmt": "CREATE TABLE u (a INT)"})
    with pytest.raises(DumpFormatError, match="does not follow that table's create record"):
        records.check(5, {"table": "t", "index_create_stmt": "CREATE INDEX iy ON t (a)"})


def test_an_unsafe_index_record_names_its_line() -> None:
    records = LegacyRecords()
    records.check(1, {"table": "t", "create_stmt": "CREATE TABLE t (a INT)"})
    with pytest.raises(UnsafeDumpError) as caught:
        records.check(2, {"table": "t", "index_create_stmt": "CREATE INDEX ix ON u (a)"})
    assert caught.value.line == 2


@pytest.mark.parametrize(
    ("record", "words"),
    [
        ({"data": []}, "record without a table name"),
        ({"table": "t", "create_stmt": "x", "data": []}, "has create_stmt and data"),
        ({"table": "t"}, "neither create_stmt, index_create_stmt nor data"),
        ({"table": "t", "create_stmt": 1}, "has no create_stmt"),
        ({"table": "t", "create_stmt": "x", "self_references": "yes"}, "not true or false"),
    ],
)
def test_malformed_legacy_records_are_refused(record: dict[str, object], words: str) -> None:
    with pytest.raises(DumpFormatError, match=words):
        LegacyRecords().check(1, record)
