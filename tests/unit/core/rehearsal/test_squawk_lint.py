"""SquawkLinter runs the real squawk binary (squawk-cli, installed with the [rehearse] extra)
on offline SQL as Alembic writes it; no server is needed."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from airflow_provider_zenmigrate.core.errors import RehearsalError
from airflow_provider_zenmigrate.core.rehearsal.lint import linter_for
from airflow_provider_zenmigrate.core.rehearsal.lint.base import shorten
from airflow_provider_zenmigrate.core.rehearsal.lint.squawk import (
    INSTALL_HINT,
    SquawkLinter,
    find_squawk,
    split_statements,
)

#: Alembic's offline SQL for one PostgreSQL revision, with its version-table bookkeeping.
ALEMBIC_SQL = """\
BEGIN;

CREATE TABLE alembic_version (
    version_num VARCHAR(32) NOT NULL,
    CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num)
);

-- Running upgrade a1 -> b2

ALTER TABLE orders ADD COLUMN customer_id BIGINT NOT NULL;

UPDATE alembic_version SET version_num='b2' WHERE alembic_version.version_num = 'a1';

COMMIT;
"""

CLEAN_SQL = """\
BEGIN;

-- Running upgrade b2 -> c3

SET lock_timeout = '2s';

SET statement_timeout = '5s';

ALTER TABLE orders ADD COLUMN note TEXT;

UPDATE alembic_version SET version_num='c3' WHERE alembic_version.version_num = 'b2';

COMMIT;
"""


@pytest.fixture(scope="module")
def linter() -> SquawkLinter:
    found = SquawkLinter()
    assert found.unavailable() is None, "squawk-cli must be installed in the test environment"
    return found


def test_the_binary_is_found_and_named_with_its_version(linter: SquawkLinter) -> None:
    assert find_squawk() is not None
    assert linter.name.startswith("squawk ")
    assert any(ch.isdigit() for ch in linter.name)
    assert isinstance(linter_for("postgresql"), SquawkLinter)


def test_a_required_column_without_default_is_flagged_on_its_statement(
    linter: SquawkLinter,
) -> None:
    findings = linter.lint(ALEMBIC_SQL)
    rules = {f.rule for f in findings}
    assert "adding-required-field" in rules
    required = next(f for f in findings if f.rule == "adding-required-field")
    assert required.statement == "ALTER TABLE orders ADD COLUMN customer_id BIGINT NOT NULL;"
    assert required.linter == "squawk"
    assert required.level == "warning"
    assert "NOT NULL" in required.message
    assert "default" in required.message.lower()  # squawk's help is appended


def test_findings_on_alembic_version_statements_are_dropped(linter: SquawkLinter) -> None:
    findings = linter.lint(ALEMBIC_SQL)
    # squawk flags alembic_version's VARCHAR(32) as prefer-text-field; that is Alembic's.
    assert "prefer-text-field" not in {f.rule for f in findings}
    assert all("alembic_version" not in f.statement for f in findings)
    # the version table's own name is configurable
    other = SquawkLinter(version_table="my_versions").lint(ALEMBIC_SQL)
    assert "prefer-text-field" in {f.rule for f in other}


def test_clean_sql_gives_no_findings(linter: SquawkLinter) -> None:
    assert linter.lint(CLEAN_SQL) == []
    assert linter.lint("") == []


def test_a_column_type_change_is_flagged(linter: SquawkLinter) -> None:
    findings = linter.lint("ALTER TABLE big ALTER COLUMN n TYPE bigint;\n")
    flagged = [f for f in findings if f.rule == "changing-column-type"]
    assert flagged and flagged[0].statement == "ALTER TABLE big ALTER COLUMN n TYPE bigint;"
    assert "ACCESS EXCLUSIVE" in flagged[0].message


def test_a_syntax_error_is_a_finding_at_error_level(linter: SquawkLinter) -> None:
    findings = linter.lint("SELECT 1;\nALTER TABLE t ADD COLUMN;\n")
    errors = [f for f in findings if f.rule == "syntax-error"]
    assert errors and errors[0].level == "error"
    assert errors[0].statement == "ALTER TABLE t ADD COLUMN;"


def test_statements_split_as_postgresql_lexes_them() -> None:
    sql = (
        "CREATE FUNCTION f() RETURNS int AS $$ SELECT 1; $$ LANGUAGE sql;\n"
        "-- a; comment\nSELECT ';';"
    )
    statements = split_statements(sql)
    assert [s.text for s in statements] == [
        "CREATE FUNCTION f() RETURNS int AS $$ SELECT 1; $$ LANGUAGE sql;",
        "SELECT ';';",
    ]
    assert statements[0].names >= {"create", "function", "f"}


def test_long_statements_are_shortened_to_one_line() -> None:
    text = "ALTER TABLE t\n   " + ", ".join(f"ADD COLUMN c{i} int" for i in range(40))
    short = shorten(text)
    assert len(short) == 120 and short.endswith("...") and "\n" not in short


def test_missing_squawk_says_how_to_install(tmp_path: Path) -> None:
    missing = SquawkLinter.__new__(SquawkLinter)
    missing.binary = None
    assert missing.unavailable() == INSTALL_HINT
    with pytest.raises(RehearsalError, match="squawk-cli|rehearse"):
        missing.lint("SELECT 1;")


def test_a_crashing_squawk_is_a_clear_error(tmp_path: Path) -> None:
    fake = tmp_path / "squawk"
    fake.write_text("#!/bin/sh\necho 'squawk 0.0.0'\n[ \"$1\" = --version ] && exit 0\n"
                    "echo 'thread main panicked: boom' >&2\nexit 101\n")  # fmt: skip
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    crashing = SquawkLinter(str(fake))
    assert crashing.name == "squawk 0.0.0"
    with pytest.raises(RehearsalError, match=r"squawk failed \(exit code 101\): .*panicked"):
        crashing.lint("SELECT 1;")
