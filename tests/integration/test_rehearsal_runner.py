"""rehearse() on every dialect: the verdict, the input it refuses, and the scratch copy that
never outlives it (failure, Ctrl-C, a name collision)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import URL

from airflow_provider_zenmigrate.core.alembic import Alembic
from airflow_provider_zenmigrate.core.errors import RehearsalError
from airflow_provider_zenmigrate.core.rehearsal import rehearse
from airflow_provider_zenmigrate.core.rehearsal import scratch as scratch_module
from airflow_provider_zenmigrate.core.rehearsal.scratch import SCRATCH_PREFIX, list_scratch
from airflow_provider_zenmigrate.core.utils import MigrationUtils
from tests.support.paths import EXAMPLE_MIGRATIONS, FIXTURES
from tests.support.servers import SECRET

BROKEN = FIXTURES / "rehearsal" / "runner_broken"
INTERRUPT = FIXTURES / "rehearsal" / "runner_interrupt"


def _at_first_revision(utils: MigrationUtils) -> None:
    utils.create_database() if not utils.database_exists() else None
    Alembic(utils.engine, script_location=EXAMPLE_MIGRATIONS).upgrade("0001")
    with utils.engine.begin() as conn:
        conn.execute(text("INSERT INTO author (id, name) VALUES (1, 'Ada'), (2, 'Brian')"))


def _state(utils: MigrationUtils) -> tuple[list[str], list[tuple[object, ...]]]:
    revisions = Alembic(utils.engine, script_location=EXAMPLE_MIGRATIONS).current_revisions()
    with utils.engine.connect() as conn:
        rows = [tuple(r) for r in conn.execute(text("SELECT id, name FROM author ORDER BY id"))]
    return sorted(revisions), rows


def _no_scratch_left(utils: MigrationUtils) -> None:
    # Of this production database only: other tests rehearse on the same server meanwhile.
    assert list_scratch(utils, scratch_module.source_key(utils)) == {}


def test_clean_rehearsal_times_every_revision_and_leaves_production_alone(
    utils: MigrationUtils,
) -> None:
    _at_first_revision(utils)
    before = _state(utils)
    lines: list[str] = []
    report = rehearse(
        utils, script_location=EXAMPLE_MIGRATIONS, check_downgrade=True, log=lines.append
    )
    assert report.passed, report.reason
    assert sorted(r.revision for r in report.revisions) == ["0002a", "0002b", "0003"]
    assert all(r.status == "ok" and r.seconds is not None for r in report.revisions)
    sql = {r.revision: (r.offline_sql or "").upper() for r in report.revisions}
    assert "CREATE TABLE BOOK" in sql["0002a"]
    assert "ADD COLUMN EMAIL" in sql["0002b"]
    # Each revision's own SQL: the merge 0003 renders its index, not its branches again.
    assert "CREATE INDEX IX_BOOK_TITLE" in sql["0003"] and "ADD COLUMN" not in sql["0003"]
    assert all("ALEMBIC_VERSION" in text for text in sql.values())
    assert report.from_revisions == ["0001"] and report.to_revisions == ["0003"]
    assert report.drift is not None and report.drift.differences == []
    assert report.downgrade is not None and report.downgrade.ok, report.downgrade
    assert report.estimated_seconds == pytest.approx(
        sum(r.seconds or 0 for r in report.revisions), abs=0.01
    )
    assert report.scratch_name.startswith(SCRATCH_PREFIX)
    assert any(report.scratch_name in line for line in lines)
    assert _state(utils) == before
    _no_scratch_left(utils)


def test_max_duration_gate_names_the_slowest_revision(utils: MigrationUtils) -> None:
    _at_first_revision(utils)
    report = rehearse(
        utils, script_location=EXAMPLE_MIGRATIONS, check_drift=False, max_duration=0.0
    )
    assert not report.passed
    assert "max_duration" in (report.reason or "") and "revision 0" in (report.reason or "")
    _no_scratch_left(utils)


def test_scripts_that_do_not_load_are_refused_before_anything_is_made(
    utils: MigrationUtils,
) -> None:
    _at_first_revision(utils)
    with pytest.raises(RehearsalError, match="do not load.*zenmigrate_no_such_module"):
        rehearse(utils, script_location=BROKEN)
    _no_scratch_left(utils)


def test_unknown_target_revision_and_unknown_production_revision(utils: MigrationUtils) -> None:
    _at_first_revision(utils)
    with pytest.raises(RehearsalError, match="'nope' is unknown to the migration scripts"):
        rehearse(utils, script_location=EXAMPLE_MIGRATIONS, revision="nope")
    with utils.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = 'f00d'"))
    with pytest.raises(RehearsalError, match="at revision 'f00d', which the migration scripts"):
        rehearse(utils, script_location=EXAMPLE_MIGRATIONS)
    _no_scratch_left(utils)


def test_unknown_gate_is_refused(utils: MigrationUtils) -> None:
    _at_first_revision(utils)
    with pytest.raises(RehearsalError, match="'speed', which is not a gate"):
        rehearse(utils, script_location=EXAMPLE_MIGRATIONS, fail_on=["error", "speed"])


def test_ctrl_c_during_a_revision_still_drops_the_scratch_copy(utils: MigrationUtils) -> None:
    Alembic(utils.engine, script_location=INTERRUPT).upgrade("i1")
    with pytest.raises(KeyboardInterrupt):
        rehearse(utils, script_location=INTERRUPT, check_drift=False)
    _no_scratch_left(utils)
    assert Alembic(utils.engine, script_location=INTERRUPT).current_revisions() == ["i1"]


def test_a_real_database_with_the_scratch_name_is_never_touched(
    utils: MigrationUtils, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The random part of the name is pinned so the collision is certain; the database in the
    way has no marker, so the sweep leaves it and the rehearsal refuses to start."""
    _at_first_revision(utils)
    monkeypatch.setattr("secrets.token_hex", lambda _n: "c0111de5")
    key = scratch_module.source_key(utils)
    taken = f"{SCRATCH_PREFIX}{key}_c0111de5_copy"
    utils.create_database(taken)
    squatter = scratch_module._utils_for(utils, utils, taken)
    try:
        with squatter.engine.begin() as conn:
            conn.execute(text("CREATE TABLE precious (id INTEGER PRIMARY KEY)"))
            conn.execute(text("INSERT INTO precious (id) VALUES (7)"))
        squatter.dispose()
        if utils.dialect.name == "sqlite":
            # SQLite keeps no marker: the name alone marks a scratch file, which the sweep
            # removes; a file in the way is then no longer in the way.
            report = rehearse(utils, script_location=EXAMPLE_MIGRATIONS, check_drift=False)
            assert report.passed
        else:
            with pytest.raises(RehearsalError, match="already exists.*not a scratch copy"):
                rehearse(utils, script_location=EXAMPLE_MIGRATIONS, check_drift=False)
            with squatter.engine.connect() as conn:
                assert conn.execute(text("SELECT id FROM precious")).scalar() == 7
    finally:
        squatter.dispose()
        utils.drop_database(taken)


@pytest.mark.parametrize("dialect", ["mysql", "postgresql"])
def test_unreachable_rehearsal_server_is_a_clear_error_without_the_password(
    utils: MigrationUtils,
) -> None:
    _at_first_revision(utils)
    url = utils.url.set(host="127.0.0.1", port=1, password=SECRET)
    with pytest.raises(RehearsalError, match="cannot be reached") as caught:
        rehearse(
            utils,
            script_location=EXAMPLE_MIGRATIONS,
            rehearsal_server=MigrationUtils(url=url),
        )
    assert SECRET not in str(caught.value)
    assert "***" in str(caught.value)


def test_rehearsal_from_the_backup_just_taken(utils: MigrationUtils, tmp_path: Path) -> None:
    _at_first_revision(utils)
    uri = str(tmp_path / "before-migrate.jsonl.zst")
    utils.backup_database_to_file(uri)
    report = rehearse(utils, script_location=EXAMPLE_MIGRATIONS, source_uri=uri)
    assert report.passed, report.reason
    assert report.copied_from == "backup" and report.source_uri == uri
    assert report.copy_seconds is not None
    assert [r.status for r in report.revisions] == ["ok", "ok", "ok"]
    _no_scratch_left(utils)


@pytest.mark.parametrize("dialect", ["mysql", "postgresql"])
def test_a_rehearsal_server_of_its_own_holds_the_scratch_copy(utils: MigrationUtils) -> None:
    """rehearsal_conn_id's path: the copy goes through a second connection (to the server
    level, as a separate server would be reached), not through production's."""
    _at_first_revision(utils)
    server = MigrationUtils(url=utils.url.set(database=None))
    seen: list[dict[str, bool]] = []

    def log(line: str) -> None:
        if line.startswith("revision "):
            seen.append(list_scratch(server, scratch_module.source_key(utils)))

    report = rehearse(utils, script_location=EXAMPLE_MIGRATIONS, rehearsal_server=server, log=log)
    assert report.passed, report.reason
    assert report.scratch_server == server.safe_url
    assert seen and all(report.scratch_name in names for names in seen)
    assert list_scratch(server, scratch_module.source_key(utils)) == {}


def test_the_way_back_unapplies_exactly_what_was_applied_on_a_branched_history(
    utils: MigrationUtils,
) -> None:
    """From 0002a, the upgrade applies 0002b then the merge 0003; downgrading "to 0002a"
    would leave 0002b in place, unapplying the two revisions gives the schema back."""
    Alembic(utils.engine, script_location=EXAMPLE_MIGRATIONS).upgrade("0002a")
    report = rehearse(
        utils, script_location=EXAMPLE_MIGRATIONS, check_downgrade=True, fail_on=["downgrade"]
    )
    assert sorted(r.revision for r in report.revisions) == ["0002b", "0003"]
    assert report.downgrade is not None
    assert report.downgrade.ok and report.downgrade.differences == [], report.downgrade
    assert report.passed, report.reason
    _no_scratch_left(utils)


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_a_full_alembic_project_rehearses_through_its_env_py(db_url: URL) -> None:
    """config_file mode: env.py runs for every step (up and back); an env.py without an
    offline branch cannot render SQL, which the report says instead of failing."""
    project = FIXTURES / "alembic_project" / "alembic.ini"
    utils = MigrationUtils(url=db_url, version_table="project_version")
    try:
        report = rehearse(utils, config_file=project, check_downgrade=True)
        assert report.passed, report.reason
        assert [r.revision for r in report.revisions] == ["p1"]
        assert report.revisions[0].status == "ok"
        assert report.to_revisions == ["p1"]
        assert report.downgrade is not None and report.downgrade.ok, report.downgrade
        assert report.revisions[0].offline_sql or report.revisions[0].offline_error
        production = Alembic(utils.engine, config_file=project, version_table="project_version")
        assert production.current_revisions() == []
        _no_scratch_left(utils)
    finally:
        utils.dispose()


@pytest.mark.parametrize("dialect", ["sqlite"])
def test_a_rehearsal_folder_that_does_not_exist_is_bad_input(
    utils: MigrationUtils, tmp_path: Path
) -> None:
    _at_first_revision(utils)
    missing = URL.create("sqlite", database=str(tmp_path / "no-such-folder" / "x.db"))
    elsewhere = MigrationUtils(url=missing)
    with pytest.raises(RehearsalError, match="names no existing folder"):
        rehearse(utils, script_location=EXAMPLE_MIGRATIONS, rehearsal_server=elsewhere)
    assert not (tmp_path / "no-such-folder").exists()
