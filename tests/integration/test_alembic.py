"""The Alembic wrapper on real databases: history with a branch and a merge, locks, failures."""

from __future__ import annotations

import multiprocessing
import os
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import inspect, text
from sqlalchemy.engine import URL

from airflow_provider_zenmigrate.core.alembic import Alembic, AlembicVersion, include_object
from airflow_provider_zenmigrate.core.dialects import get_dialect
from airflow_provider_zenmigrate.core.errors import MigrationError, MigrationLockTimeout
from airflow_provider_zenmigrate.core.utils import MigrationUtils
from tests.support.paths import EXAMPLE_MIGRATIONS, FIXTURES


def tables(utils: MigrationUtils) -> set[str]:
    with utils.engine.connect() as conn:
        return set(inspect(conn).get_table_names())


def test_history_round_trip(utils: MigrationUtils) -> None:
    alembic = Alembic(utils.engine, script_location=EXAMPLE_MIGRATIONS)
    assert alembic.head_revisions() == ["0003"]
    assert alembic.current_revisions() == []
    assert alembic.db_is_empty()

    alembic.upgrade("0002a")
    assert alembic.current_revisions() == ["0002a"]
    assert {"author", "book"} <= tables(utils)

    alembic.upgrade("0002b")  # the other branch: two heads at once
    assert sorted(alembic.current_revisions()) == ["0002a", "0002b"]

    alembic.upgrade()  # the merge
    assert alembic.current_revisions() == ["0003"]
    assert not alembic.db_is_empty()
    with utils.engine.connect() as conn:
        assert "ix_book_title" in {i["name"] for i in inspect(conn).get_indexes("book")}
        assert "email" in {c["name"] for c in inspect(conn).get_columns("author")}

    alembic.downgrade("0001")
    assert alembic.current_revisions() == ["0001"]
    assert "book" not in tables(utils)

    alembic.downgrade("base")
    assert alembic.current_revisions() == []
    assert alembic.db_is_empty()

    alembic.stamp("heads")  # records the revision, runs nothing
    assert alembic.current_revisions() == ["0003"]
    assert tables(utils) == {"alembic_version"}
    assert alembic.db_is_empty()
    alembic.stamp("0001")
    assert alembic.current_revisions() == ["0001"]


def test_version_table_is_configurable(utils: MigrationUtils) -> None:
    ours = Alembic(utils.engine, script_location=EXAMPLE_MIGRATIONS, version_table="zm_version")
    ours.upgrade("0001")
    assert "zm_version" in tables(utils)
    assert "alembic_version" not in tables(utils)
    assert ours.current_revisions() == ["0001"]
    # Another application's history in the default table is independent of ours.
    other = Alembic(utils.engine, script_location=FIXTURES / "failing_migrations")
    assert other.current_revisions() == []
    other.upgrade("f1")
    assert other.current_revisions() == ["f1"]
    assert ours.current_revisions() == ["0001"]


def test_db_is_empty_follows_the_users_schema(utils: MigrationUtils) -> None:
    plain = Alembic(utils.engine, script_location=EXAMPLE_MIGRATIONS)
    with utils.engine.connect() as conn:
        conn.execute(text("CREATE TABLE unrelated (id INTEGER PRIMARY KEY)"))
        conn.commit()
    assert not plain.db_is_empty()  # no metadata: any table but the version table counts

    mine = sa.MetaData()
    sa.Table("author", mine, sa.Column("id", sa.Integer, primary_key=True))
    scoped = Alembic(utils.engine, metadata=mine, script_location=EXAMPLE_MIGRATIONS)
    assert scoped.db_is_empty()  # "unrelated" is not part of the user's models
    scoped.upgrade("0001")
    assert not scoped.db_is_empty()


def test_scripts_by_package_reference(utils: MigrationUtils) -> None:
    alembic = Alembic(utils.engine, script_location="tests.fixtures:failing_migrations")
    assert alembic.head_revisions() == ["f2"]
    alembic.upgrade("f1")
    assert alembic.current_revisions() == ["f1"]


def test_failed_migration_names_the_revision(dialect: str, utils: MigrationUtils) -> None:
    alembic = Alembic(utils.engine, script_location=FIXTURES / "failing_migrations")
    with pytest.raises(MigrationError) as failure:
        alembic.upgrade()
    assert failure.value.revision == "f2"
    assert "at revision f2" in str(failure.value)
    assert "boom" in str(failure.value)
    assert isinstance(failure.value.cause, RuntimeError)
    assert alembic.current_revisions() == ["f1"]  # the revision before it stays applied
    assert "t_ok" in tables(utils)
    if dialect in ("postgresql", "sqlite"):
        assert "t_bad" not in tables(utils), "transactional DDL: the failed revision rolls back"
    else:
        assert "t_bad" in tables(utils), "MySQL commits DDL at once; nothing to roll back"


def test_run_migrations_calls_the_given_function(utils: MigrationUtils) -> None:
    alembic = Alembic(utils.engine, script_location=EXAMPLE_MIGRATIONS)
    alembic.upgrade("0001")
    seen: list[Any] = []

    def fn(heads: Any, context: Any) -> list[Any]:
        seen.append((tuple(heads), context.get_current_heads()))
        return []

    alembic.run_migrations(fn)
    assert seen == [(("0001",), ("0001",))]


def test_full_alembic_project(utils: MigrationUtils) -> None:
    project = FIXTURES / "alembic_project"
    alembic = Alembic(
        utils.engine, config_file=project / "alembic.ini", version_table="project_version"
    )
    assert alembic.head_revisions() == ["p1"]
    alembic.upgrade()
    assert alembic.current_revisions() == ["p1"]
    assert {"project_thing", "project_version"} <= tables(utils)
    alembic.downgrade("base")
    assert alembic.current_revisions() == []
    assert "project_thing" not in tables(utils)
    assert alembic.config.get_main_option("sqlalchemy.url") == ""  # no URL left behind


def test_lock_timeout_when_another_migration_runs(utils: MigrationUtils) -> None:
    alembic = Alembic(utils.engine, script_location=EXAMPLE_MIGRATIONS, lock_timeout=0.5)
    ops = get_dialect(utils.engine)
    with ops.migration_lock(utils.engine, "alembic_version", timeout=5):
        started = time.monotonic()
        with pytest.raises(MigrationLockTimeout, match="another migration is running"):
            alembic.upgrade()
        assert time.monotonic() - started >= 0.4
    alembic.upgrade()  # free again
    assert alembic.current_revisions() == ["0003"]


def _upgrade_in_child(url: str, queue: Any) -> None:
    started = time.time()
    engine = sa.create_engine(url)
    alembic = Alembic(engine, script_location=FIXTURES / "slow_migrations")
    alembic.upgrade()
    queue.put((os.getpid(), started, time.time(), alembic.current_revisions()))
    engine.dispose()


def test_two_concurrent_upgrades_never_both_run(utils: MigrationUtils) -> None:
    url = utils.url.render_as_string(hide_password=False)
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    children = [ctx.Process(target=_upgrade_in_child, args=(url, queue)) for _ in range(2)]
    for child in children:
        child.start()
    results = [queue.get(timeout=120) for _ in children]
    for child in children:
        child.join(timeout=60)
        assert child.exitcode == 0
    starts = sorted(r[1] for r in results)
    assert starts[1] - starts[0] < 1.5, "the two upgrades did not overlap; the test proves nothing"
    assert all(r[3] == ["s1"] for r in results)
    with utils.engine.connect() as conn:
        runs = conn.execute(text("SELECT pid FROM migration_runs")).scalars().all()
    assert len(runs) == 1, f"the migration ran {len(runs)} times"
    # The loser waited for the winner: it finished after the winner's migration did.
    ends = {r[0]: r[2] for r in results}
    loser = next(pid for pid in ends if pid != runs[0])
    assert ends[loser] >= ends[runs[0]]


def test_include_object_and_version_model() -> None:
    assert include_object(None, "author", "table") is True
    assert include_object(None, "sqlite_sequence", "table") is False
    assert AlembicVersion.__tablename__ == "alembic_version"
    assert AlembicVersion(version_num="abc").version_num == "abc"


def test_needs_a_script_location(utils: MigrationUtils) -> None:
    with pytest.raises(ValueError, match="script_location"):
        Alembic(utils.engine)


def test_sqlite_lock_file_is_beside_the_database(tmp_path: Path) -> None:
    url = URL.create("sqlite", database=str(tmp_path / "x.db"))
    with MigrationUtils(url=url, connect_args={}, engine_args={}) as mu:
        mu.create_database()
        Alembic(mu.engine, script_location=EXAMPLE_MIGRATIONS).upgrade()
    assert (tmp_path / "x.db.zenmigrate-lock").exists()
