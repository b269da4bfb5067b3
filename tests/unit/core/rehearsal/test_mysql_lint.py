"""The MySQL/MariaDB rules (core/rehearsal/lint/mysql.py) on offline SQL as Alembic writes it:
each rule fires on what rebuilds a table, blocks writes or breaks running code, and a clean
migration (instant ADD COLUMN, online CREATE INDEX, bounded UPDATE) gets no finding."""

from __future__ import annotations

import pytest

from airflow_provider_zenmigrate.core.rehearsal.lint import linter_for
from airflow_provider_zenmigrate.core.rehearsal.lint.mysql import (
    MySQLLinter,
    split_statements,
    statement_table,
)

#: How Alembic's offline mode (--sql) writes a MySQL revision: version table, comments.
HEADER = """CREATE TABLE alembic_version (
    version_num VARCHAR(32) NOT NULL,
    CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num)
);

-- Running upgrade  -> a1b2c3

"""
FOOTER = "\n\nINSERT INTO alembic_version (version_num) VALUES ('a1b2c3');\n"


def rules(sql: str) -> list[str]:
    return [f.rule for f in MySQLLinter().lint(HEADER + sql + FOOTER)]


def test_linter_for_mysql_and_mariadb() -> None:
    for backend in ("mysql", "mariadb"):
        linter = linter_for(backend)
        assert isinstance(linter, MySQLLinter) and linter.name == "zenmigrate MySQL rules"
        assert linter.unavailable() is None


def test_a_clean_migration_has_no_finding() -> None:
    sql = """
ALTER TABLE orders ADD COLUMN note VARCHAR(200);
ALTER TABLE orders ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;
CREATE INDEX ix_orders_day ON orders (day);
CREATE UNIQUE INDEX ux_orders_ref ON orders (ref);
ALTER TABLE orders DROP COLUMN legacy;
CREATE TABLE notes (id INTEGER NOT NULL AUTO_INCREMENT, body TEXT NOT NULL, PRIMARY KEY (id));
UPDATE orders SET priority = 1 WHERE day < '2020-01-01';
DROP INDEX ix_old ON orders;
UPDATE alembic_version SET version_num='b' WHERE alembic_version.version_num = 'a1b2c3';
"""
    assert MySQLLinter().lint(HEADER + sql + FOOTER) == []


@pytest.mark.parametrize(
    "sql",
    [
        "ALTER TABLE orders MODIFY total BIGINT NOT NULL",
        "ALTER TABLE orders CHANGE total total DECIMAL(12, 2) NULL",
        "ALTER TABLE orders ADD PRIMARY KEY (id)",
        "ALTER TABLE orders DROP PRIMARY KEY, ADD PRIMARY KEY (id, day)",
        "ALTER TABLE orders ADD CONSTRAINT pk_orders PRIMARY KEY (id)",
        "ALTER TABLE orders CONVERT TO CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci",
        "ALTER TABLE orders ENGINE=InnoDB",
        "ALTER TABLE orders ROW_FORMAT=COMPRESSED",
        "ALTER TABLE orders FORCE",
        "OPTIMIZE TABLE orders",
        "ALTER TABLE orders ADD CONSTRAINT fk_c FOREIGN KEY(customer_id) REFERENCES c (id)",
    ],
)
def test_table_rebuild(sql: str) -> None:
    findings = MySQLLinter().lint(sql)
    rebuilds = [f for f in findings if f.rule == "table-rebuild"]
    assert rebuilds, findings
    assert "orders" in rebuilds[0].message and rebuilds[0].linter == "zenmigrate"
    assert rebuilds[0].statement.startswith(sql.split()[0])


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("ALTER TABLE orders ADD COLUMN x INT, ALGORITHM=COPY", {"table-rebuild", "blocks-writes"}),
        ("ALTER TABLE orders ADD INDEX ix (day), LOCK=SHARED", {"blocks-writes"}),
        ("ALTER TABLE orders ADD INDEX ix (day), LOCK = EXCLUSIVE", {"blocks-writes"}),
        ("CREATE FULLTEXT INDEX ft_note ON orders (note)", {"blocks-writes"}),
        ("ALTER TABLE orders ADD SPATIAL INDEX sp (place)", {"blocks-writes"}),
        ("ALTER TABLE orders ADD COLUMN n INT AUTO_INCREMENT UNIQUE", {"blocks-writes"}),
        ("CREATE INDEX ix ON orders (day) ALGORITHM=COPY", {"table-rebuild", "blocks-writes"}),
    ],
)  # fmt: skip
def test_blocks_writes(sql: str, expected: set[str]) -> None:
    assert set(rules(sql + ";")) == expected


def test_lock_none_and_inplace_are_not_flagged() -> None:
    assert rules("ALTER TABLE orders ADD INDEX ix (day), ALGORITHM=INPLACE, LOCK=NONE;") == []


@pytest.mark.parametrize(
    "sql",
    [
        "ALTER TABLE orders ADD COLUMN customer_id INTEGER NOT NULL",
        "ALTER TABLE `orders` ADD `customer_id` BIGINT NOT NULL AFTER id",
    ],
)
def test_adding_required_column(sql: str) -> None:
    assert rules(sql + ";") == ["adding-required-column"]


@pytest.mark.parametrize(
    "sql",
    [
        "ALTER TABLE orders ADD COLUMN n INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE orders ADD COLUMN n INTEGER NULL",
        "ALTER TABLE orders ADD CONSTRAINT uq UNIQUE (ref)",
        "ALTER TABLE orders ADD INDEX ix_not_null (day)",
    ],
)
def test_not_a_required_column(sql: str) -> None:
    assert rules(sql + ";") == []


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("RENAME TABLE orders TO purchases", ["rename"]),
        ("ALTER TABLE orders RENAME purchases", ["rename"]),
        ("ALTER TABLE orders RENAME TO purchases", ["rename"]),
        ("ALTER TABLE orders RENAME COLUMN total TO amount", ["rename"]),
        # Alembic's alter_column(new_column_name=...) on MySQL: CHANGE with the full definition
        ("ALTER TABLE orders CHANGE total amount INTEGER NULL", ["table-rebuild", "rename"]),
        ("ALTER TABLE orders RENAME INDEX ix_a TO ix_b", []),
    ],
)
def test_rename(sql: str, expected: list[str]) -> None:
    assert rules(sql + ";") == expected


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("UPDATE orders SET total = 0", ["unbounded-update"]),
        ("DELETE FROM orders", ["unbounded-update"]),
        ("UPDATE orders SET total = 0 WHERE total IS NULL", []),
        ("DELETE FROM orders WHERE id < 10", []),
    ],
)
def test_unbounded_update(sql: str, expected: list[str]) -> None:
    assert rules(sql + ";") == expected


def test_the_version_table_is_never_flagged() -> None:
    sql = (
        "UPDATE alembic_version SET version_num='x';\n"
        "DELETE FROM alembic_version;\n"
        "ALTER TABLE alembic_version MODIFY version_num VARCHAR(255) NOT NULL;\n"
    )
    assert MySQLLinter().lint(sql) == []


def test_semicolons_in_strings_and_comments_do_not_split() -> None:
    sql = (
        "-- a comment; with a semicolon\n"
        "UPDATE orders SET note = 'a; UPDATE orders SET x = 1' WHERE id = 1;\n"
        "/* DELETE FROM orders; */ ALTER TABLE orders ADD COLUMN y INT;"
    )
    statements = split_statements(sql)
    assert len(statements) == 2
    assert MySQLLinter().lint(sql) == []
    assert statements[1].text == "ALTER TABLE orders ADD COLUMN y INT"


def test_finding_names_the_statement_without_comments_and_short() -> None:
    long_default = "x" * 400
    sql = "-- Running upgrade a -> b\n"
    sql += f"ALTER TABLE orders MODIFY note VARCHAR(500) DEFAULT '{long_default}';"
    [finding] = MySQLLinter().lint(sql)
    assert finding.statement.startswith("ALTER TABLE orders MODIFY note")
    assert len(finding.statement) <= 200 and finding.statement.endswith("...")


def test_sql_that_does_not_lex_is_reported_not_ignored() -> None:
    [finding] = MySQLLinter().lint("ALTER TABLE orders ADD COLUMN n INT DEFAULT 'open;")
    assert finding.rule == "unlintable"


@pytest.mark.parametrize(
    ("sql", "table"),
    [
        ("ALTER TABLE shop.`order items` ADD COLUMN x INT", "order items"),
        ("ALTER ONLINE TABLE orders FORCE", "orders"),
        ("CREATE UNIQUE INDEX ux ON orders (ref)", "orders"),
        ("DROP INDEX ix ON `orders`", "orders"),
        ("OPTIMIZE TABLE orders", "orders"),
        ("TRUNCATE TABLE orders", "orders"),
        ("UPDATE LOW_PRIORITY orders SET a = 1", "orders"),
        ("DELETE FROM orders WHERE 1", "orders"),
        ("INSERT INTO orders (a) VALUES (1)", "orders"),
        ("SELECT 1", None),
    ],
)
def test_statement_table(sql: str, table: str | None) -> None:
    [statement] = split_statements(sql)
    assert statement_table(statement.tokens) == table
