"""Issue 27, point 3: a backup reads the catalog in a constant number of queries, whatever
the number of tables.

A database of 5 tables and one of 40 (each table referencing the one before it, with a
view and, where the dialect has them without functions, a trigger on each) are backed up
on the real servers while every statement the drivers send is recorded
(:mod:`tests.support.query_count`). The statements that read a table's rows may grow with
the tables (one per table here); every other statement (catalog, session settings,
snapshot) must be sent as often for 40 tables as for 5. A catalog query per table, per
column, index, constraint, view or trigger fails it. No time is measured.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

from airflow_provider_zenmigrate.core.utils import MigrationUtils
from tests.support.many_tables import populate
from tests.support.query_count import counted_fresh, shape
from tests.support.servers import created_databases

#: A statement reading the rows of one of the tables tNNN: COPY (SELECT ... FROM ONLY
#: "public"."t001" ...), SELECT ... FROM `t001`, SELECT ... FROM "t001" ORDER BY ...
ROW_READ = re.compile(r'\bFROM\s+(?:ONLY\s+)?(?:"public"\.)?[`"]?t\d{3}[`"]?(?:\s|$|\))')


def backup_statements(utils: MigrationUtils, dump: Path) -> tuple[Counter[str], list[str]]:
    """The shapes of the statements a backup of ``utils``' database sent, other than row
    reads, and the row reads themselves."""
    with counted_fresh(utils.url) as (fresh, log):
        result = fresh.backup_database_to_file(str(dump))
    assert result.rows == 3 * len(result.tables)
    statements = log.without_database(utils.url)
    reads = [s for s in statements if ROW_READ.search(s)]
    others = Counter(shape(s) for s in statements if not ROW_READ.search(s))
    return others, reads


def test_catalog_queries_do_not_grow_with_tables(dialect: str, tmp_path: Path) -> None:
    with created_databases(dialect, tmp_path, 2, prefix="zmpt") as (small, large):
        populate(small, dialect, 5, views=True)
        populate(large, dialect, 40, views=True)
        few, few_reads = backup_statements(small, tmp_path / "small.jsonl")
        many, many_reads = backup_statements(large, tmp_path / "large.jsonl")

    # Each table's rows are read once: the reads are told apart from catalog queries.
    assert (len(few_reads), len(many_reads)) == (5, 40)
    # Counted, not compared shape by shape: a batch of statements names every table.
    grown = {s: (few[s], many[s]) for s in few.keys() | many.keys() if few[s] != many[s]}
    assert sum(many.values()) == sum(few.values()), (
        f"{sum(few.values())} catalog statements for 5 tables, {sum(many.values())} for 40; "
        f"these differ (sent for 5 tables, for 40): {grown}"
    )
