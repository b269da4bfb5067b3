"""The schema snapshot and compare behind drift and the way back, on the real MariaDB and
PostgreSQL: Sakila backed up to a file and restored into a new database compares equal to
the original, and three hand-made changes on the copy (a column added, an index dropped, a
view redefined) are found exactly. Every database is named for its test and dropped after.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from airflow_provider_zenmigrate.core.rehearsal.model import SchemaDifference
from airflow_provider_zenmigrate.core.rehearsal.schema import Snapshot, compare, snapshot
from airflow_provider_zenmigrate.core.utils import MigrationUtils
from tests.support.rehearsal import new_database
from tests.support.sakila import load_sakila

#: Each server's hand-made change on the copy: a column added, an index dropped, a view
#: redefined (``staff_list`` to a query of one column).
CHANGES = {
    "mysql": [
        "ALTER TABLE film ADD COLUMN note VARCHAR(40) NULL",
        "ALTER TABLE actor DROP INDEX idx_actor_last_name",
        "CREATE OR REPLACE VIEW staff_list AS SELECT s.staff_id AS ID FROM staff s",
    ],
    "postgresql": [
        "ALTER TABLE film ADD COLUMN note VARCHAR(40) NULL",
        "DROP INDEX idx_actor_last_name",
        "DROP VIEW staff_list",
        "CREATE VIEW staff_list AS SELECT s.staff_id AS id FROM staff s",
    ],
}
#: ``staff_list`` as each server gives the redefinition back.
REDEFINED = {
    "mysql": "select `s`.`staff_id` AS `ID` from `staff` `s`",
    "postgresql": "SELECT s.staff_id AS id FROM staff s",
}


def _round_trip(dialect: str, tmp_path: Path, copy: MigrationUtils) -> Snapshot:
    """Sakila loaded into a new database, backed up to a file in ``tmp_path`` and restored
    into ``copy``; returns the original's snapshot (taken before its database is dropped)."""
    with new_database(dialect, tmp_path) as original:
        load_sakila(original.url)
        dump = str(tmp_path / "sakila.jsonl")
        original.backup_database_to_file(dump)
        copy.restore_database_from_file(dump, allow_routines=True)
        return snapshot(original.engine)


@pytest.mark.sakila
@pytest.mark.parametrize("dialect", ["mysql", "postgresql"])
def test_sakila_restored_compares_equal_and_hand_made_changes_are_found_exactly(
    dialect: str, tmp_path: Path
) -> None:
    with new_database(dialect, tmp_path) as copy:
        original = _round_trip(dialect, tmp_path, copy)
        restored = snapshot(copy.engine)

        assert compare(restored, original) == []
        assert compare(original, restored) == []
        # What was compared is Sakila, not two empty schemas.
        assert {"actor", "film", "rental", "payment", "staff"} <= set(original["tables"])
        assert {"actor_info", "customer_list", "film_list", "staff_list"} <= set(original["views"])
        actor = original["tables"]["actor"]
        assert "idx_actor_last_name" in [i["key"] for i in actor["indexes"]]
        assert sum(len(t["foreign_keys"]) for t in original["tables"].values()) >= 20
        if dialect == "postgresql":  # the rows came through too (partitioned payment and all)
            with copy.engine.connect() as conn:
                assert conn.exec_driver_sql("SELECT count(*) FROM rental").scalar() == 16044

        with copy.engine.begin() as conn:
            for statement in CHANGES[dialect]:
                conn.exec_driver_sql(statement)
        found = compare(snapshot(copy.engine), original)

    assert [(d.kind, d.name) for d in found] == [
        ("column", "film.note"),
        ("index", "actor.idx_actor_last_name"),
        ("view", "staff_list"),
    ]
    column, index, view = found
    assert column == SchemaDifference("column", "film.note", "VARCHAR(40) NULL", None)
    assert index == SchemaDifference("index", "actor.idx_actor_last_name", None, "(last_name)")
    # The copy's definition as its server shows it, without the copy's database name.
    assert view == SchemaDifference(
        "view", "staff_list", REDEFINED[dialect], original["views"]["staff_list"]
    )
    assert "address" in original["views"]["staff_list"]
