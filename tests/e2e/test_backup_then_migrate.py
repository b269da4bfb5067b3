"""The backup-then-migrate DAG through a real Airflow 3 deployment, its REST API and its UI.

Airflow runs as separate api-server, scheduler, dag-processor and triggerer processes with
the LocalExecutor (see :mod:`tests.e2e.deployment`); the target is a fresh MariaDB database
reached by a dedicated account with a password; backups go to S3 on moto's server. The DAG
is unpaused and triggered three times through ``/api/v2``: with a migration set that
succeeds; with one that fails on purpose, which the rehearsal stops before the database is
touched; and with the same set and the rehearsal's gate off, so the upgrade fails on the
database and the backup is restored. The tests then check the runs, the database, the backup
object and the rehearsal report beside it, the tasks' XCom, extra links and logs through the
API, and the failed run in the UI with headless Chromium (screenshots in ``build/e2e/``).

Run with ``make e2e`` (``ZENMIGRATE_E2E=1 pytest tests/e2e``).
"""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy
from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.pool import NullPool

from airflow_provider_zenmigrate.core.alembic import Alembic
from airflow_provider_zenmigrate.core.catalog import verify_backup
from airflow_provider_zenmigrate.core.utils import MigrationUtils
from airflow_provider_zenmigrate.links import console_url
from tests.e2e.browser import chromium_page
from tests.e2e.deployment import USERNAME, Airflow, airflow_deployment
from tests.support.identity import fingerprint
from tests.support.object_stores import BUCKET, S3_ACCESS_KEY, S3_SECRET_KEY, s3_client
from tests.support.paths import EXAMPLE_MIGRATIONS, REPO
from tests.support.servers import database_url, server_url, unique_name

pytest_plugins = ["tests.support.object_stores"]

DAG_ID = "zenmigrate_backup_then_migrate"
FAILING = REPO / "example_dags" / "migrations_failing"
SCREENSHOTS = REPO / "build" / "e2e"
TASK_IDS = [
    "check_pending",
    "backup",
    "rehearse",
    "upgrade",
    "restore_on_failure",
    "fail_run",
    "fail_run_without_backup",
    "fail_run_after_rehearsal",
]
LIMIT_SECONDS = 600
RUN_TIMEOUT = 180
STARTED = time.monotonic()


@dataclass
class Target:
    """The MariaDB database the DAG migrates, and the account (with a password) it uses."""

    url: URL
    password: str

    def connection_json(self) -> str:
        return json.dumps(
            {
                "conn_type": "mysql",
                "host": self.url.host,
                "port": self.url.port,
                "login": self.url.username,
                "password": self.password,
                "schema": self.url.database,
            }
        )

    def revisions(self) -> list[str]:
        engine = sqlalchemy.create_engine(self.url, poolclass=NullPool)
        try:
            return sorted(Alembic(engine, script_location=EXAMPLE_MIGRATIONS).current_revisions())
        finally:
            engine.dispose()


@dataclass
class Run:
    run_id: str
    state: str
    tasks: dict[str, str | None]
    before: dict[str, Any]
    after: dict[str, Any]
    revisions: list[str]


@dataclass
class Scenario:
    airflow: Airflow
    target: Target
    prefix: str
    endpoint: str
    succeeded: Run
    stopped: Run
    failed: Run

    def transport_params(self) -> dict[str, Any]:
        return {"client": s3_client(self.endpoint)}


@pytest.fixture(scope="module")
def target() -> Iterator[Target]:
    """A fresh MariaDB database at revision 0002a with rows, and an account with a password."""
    name = unique_name("zme2e")
    password = "E2e-" + secrets.token_urlsafe(12)
    url = database_url("mysql", Path("."), name).set(username=name, password=password)
    admin = sqlalchemy.create_engine(server_url("mysql"), poolclass=NullPool)
    with admin.connect() as conn:
        conn.execute(text(f"CREATE USER '{name}'@'%' IDENTIFIED BY '{password}'"))
        # ALL on *.*: the atomic restore loads into a staging database beside the target.
        conn.execute(text(f"GRANT ALL ON *.* TO '{name}'@'%'"))
        conn.commit()
    utils = MigrationUtils(url=url, connect_args={}, engine_args={})
    try:
        utils.create_database()
        Alembic(utils.engine, script_location=EXAMPLE_MIGRATIONS).upgrade("0002a")
        with utils.engine.begin() as conn:
            conn.execute(text("INSERT INTO author (id, name) VALUES (1, 'Ada'), (2, 'Grace')"))
            conn.execute(text("INSERT INTO book (id, author_id, title) VALUES (1, 1, 'Notes')"))
        utils.dispose()
        yield Target(url=url, password=password)
    finally:
        utils.drop_database()
        utils.dispose()
        with admin.connect() as conn:
            conn.execute(text(f"DROP USER '{name}'@'%'"))
            conn.commit()
        admin.dispose()


def _run(airflow: Airflow, target: Target, conf: dict[str, Any]) -> Run:
    before = fingerprint(target.url)
    run_id = airflow.trigger(DAG_ID, conf)
    run = airflow.wait_for_run(DAG_ID, run_id, RUN_TIMEOUT)
    return Run(
        run_id=run_id,
        state=run["state"],
        tasks=airflow.task_states(DAG_ID, run_id),
        before=before,
        after=fingerprint(target.url),
        revisions=target.revisions(),
    )


@pytest.fixture(scope="module")
def scenario(
    target: Target, s3_server: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Scenario]:
    """Airflow up, the DAG unpaused, then the succeeding, the stopped and the failing runs."""
    prefix = f"s3://{BUCKET}/e2e-{secrets.token_hex(4)}"
    env = {
        "AIRFLOW_CONN_ZM_E2E_DB": target.connection_json(),
        "AIRFLOW_CONN_ZM_E2E_S3": json.dumps(
            {
                "conn_type": "aws",
                "login": S3_ACCESS_KEY,
                "password": S3_SECRET_KEY,
                "extra": {"endpoint_url": s3_server, "region_name": "us-east-1"},
            }
        ),
    }
    conf = {"conn_id": "zm_e2e_db", "storage_conn_id": "zm_e2e_s3", "backup_prefix": prefix}
    root = tmp_path_factory.mktemp("airflow-e2e")
    with airflow_deployment(root, env) as airflow:
        airflow.wait_until_healthy(180)
        dag = airflow.wait_for_dag(DAG_ID, 180)
        assert dag["is_paused"], "a new DAG should start paused here"
        unpaused = airflow.api("PATCH", f"/dags/{DAG_ID}", json={"is_paused": False})
        assert unpaused["is_paused"] is False
        succeeded = _run(airflow, target, {**conf, "script_location": str(EXAMPLE_MIGRATIONS)})
        failing = {**conf, "script_location": str(FAILING)}
        stopped = _run(airflow, target, failing)
        failed = _run(airflow, target, {**failing, "fail_on": ""})
        yield Scenario(airflow, target, prefix, s3_server, succeeded, stopped, failed)


def test_succeeding_migration_runs_green_and_keeps_a_verified_backup(scenario: Scenario) -> None:
    run = scenario.succeeded
    assert run.state == "success", run.tasks
    assert run.tasks == {
        "check_pending": "success",
        "backup": "success",
        "rehearse": "success",
        "upgrade": "success",
        "restore_on_failure": "skipped",
        "fail_run": "skipped",
        "fail_run_without_backup": "skipped",
        "fail_run_after_rehearsal": "skipped",
    }
    assert run.revisions == ["0003"]  # the merge head of example_dags/migrations
    assert run.after != run.before

    client = s3_client(scenario.endpoint)
    key = f"{scenario.prefix.split('/', 3)[3]}/{DAG_ID}/{run.run_id}.jsonl.zst"
    listed = client.list_objects_v2(Bucket=BUCKET, Prefix=key)
    sidecars = [".manifest.json", ".rehearsal.json", ".rehearsal.md", ".upgrade.sql"]
    assert [o["Key"] for o in listed.get("Contents", [])] == [key] + [key + s for s in sidecars]
    rehearsal = _xcom(scenario.airflow, run.run_id, "rehearse", "return_value")
    assert rehearsal["passed"] is True
    assert [r["status"] for r in rehearsal["revisions"]] == ["ok", "ok"]  # 0002b, then 0003
    assert all(r["seconds"] is not None for r in rehearsal["revisions"])
    report = verify_backup(f"s3://{BUCKET}/{key}", scenario.transport_params())
    assert report.ok, report
    assert report.manifest_ok, report
    assert report.tables["author"] == 2 and report.tables["book"] == 1
    assert report.header is not None and report.header["revisions"] == ["0002a"]


def test_failing_migration_is_restored_and_fails_the_run(scenario: Scenario) -> None:
    run = scenario.failed
    assert run.state == "failed", run.tasks
    assert run.tasks == {
        "check_pending": "success",
        "backup": "success",
        "rehearse": "success",  # fail_on "": the rehearsal reports the failure, gates nothing
        "upgrade": "failed",
        "restore_on_failure": "success",
        "fail_run": "failed",
        "fail_run_without_backup": "skipped",
        "fail_run_after_rehearsal": "skipped",
    }
    assert run.revisions == ["0003"]
    assert run.after == run.before  # every table's CHECKSUM and DDL as before the run
    logs = _task_log(scenario.airflow, run.run_id, "upgrade")
    assert "upgrade failed at revision 0004" in logs


def test_failing_migration_stops_at_the_rehearsal_and_production_is_never_touched(
    scenario: Scenario,
) -> None:
    run = scenario.stopped
    assert run.state == "failed", run.tasks
    assert run.tasks == {
        "check_pending": "success",
        "backup": "success",
        "rehearse": "failed",
        "upgrade": "upstream_failed",
        "restore_on_failure": "skipped",  # nothing to restore: the upgrade never ran
        "fail_run": "skipped",
        "fail_run_without_backup": "skipped",
        "fail_run_after_rehearsal": "failed",
    }
    assert run.revisions == ["0003"]
    assert run.after == run.before
    reason = "revision 0004"
    assert reason in _task_log(scenario.airflow, run.run_id, "fail_run_after_rehearsal")
    report = _xcom(scenario.airflow, run.run_id, "rehearse", "rehearsal_report")
    assert report["passed"] is False and reason in report["reason"]
    assert report["scratch_name"].startswith("zenmigrate_scratch_")
    uri = f"{scenario.prefix}/{DAG_ID}/{run.run_id}.jsonl.zst"
    links = scenario.airflow.api(
        "GET", scenario.airflow.task_path(DAG_ID, run.run_id, "rehearse") + "/links"
    )
    assert links["extra_links"]["Rehearsal report"] == console_url(uri + ".rehearsal.md")
    body = (
        s3_client(scenario.endpoint)
        .get_object(
            Bucket=BUCKET,
            Key=f"{scenario.prefix.split('/', 3)[3]}/{DAG_ID}/{run.run_id}.jsonl.zst.rehearsal.md",
        )["Body"]
        .read()
        .decode()
    )
    assert "FAILED" in body and reason in body
    # No scratch database survived on the server.
    admin = sqlalchemy.create_engine(server_url("mysql"), poolclass=NullPool)
    try:
        with admin.connect() as conn:
            left = conn.execute(text("SHOW DATABASES LIKE 'zenmigrate\\_scratch\\_%'")).all()
    finally:
        admin.dispose()
    assert not [name for (name,) in left if report["scratch_name"] == name]


def _xcom(airflow: Airflow, run_id: str, task_id: str, key: str) -> Any:
    path = airflow.task_path(DAG_ID, run_id, task_id) + f"/xcomEntries/{key}"
    value = airflow.api("GET", path)["value"]
    return json.loads(value) if isinstance(value, str) else value


def _task_log(airflow: Airflow, run_id: str, task_id: str, try_number: int = 1) -> str:
    path = airflow.task_path(DAG_ID, run_id, task_id) + f"/logs/{try_number}"
    found = airflow.api("GET", path, params={"full_content": "true"})
    content = found["content"]
    if isinstance(content, str):
        return content
    return "\n".join(json.dumps(line) if not isinstance(line, str) else line for line in content)


@pytest.mark.parametrize("which", ["succeeded", "failed"])
def test_backup_xcom_manifest_and_backup_link(scenario: Scenario, which: str) -> None:
    run: Run = getattr(scenario, which)
    manifest = _xcom(scenario.airflow, run.run_id, "backup", "return_value")
    uri = f"{scenario.prefix}/{DAG_ID}/{run.run_id}.jsonl.zst"
    assert manifest["uri"] == uri
    assert manifest["rows"] == 4  # 2 authors, 1 book, 1 alembic_version row (at 0002a or 0003)
    assert re.fullmatch(r"[0-9a-f]{64}", manifest["checksum"]), manifest
    report = verify_backup(uri, scenario.transport_params())
    assert report.ok and report.trailer_ok, report
    assert sum(report.tables.values()) == manifest["rows"]

    links = scenario.airflow.api(
        "GET", scenario.airflow.task_path(DAG_ID, run.run_id, "backup") + "/links"
    )
    expected = console_url(uri)
    assert links["extra_links"]["Backup"] == expected
    assert expected.startswith("https://s3.console.aws.amazon.com/s3/object/" + BUCKET)
    if which == "failed":
        restore = scenario.airflow.api(
            "GET", scenario.airflow.task_path(DAG_ID, run.run_id, "restore_on_failure") + "/links"
        )
        assert restore["extra_links"]["Backup"] == expected


def test_backup_logs_show_progress_and_no_secret(scenario: Scenario) -> None:
    for run in (scenario.succeeded, scenario.failed):
        rehearsal = _task_log(scenario.airflow, run.run_id, "rehearse")
        assert "Migration rehearsal" in rehearsal, rehearsal[-3000:]
        for secret in (scenario.target.password, S3_SECRET_KEY):
            assert secret not in rehearsal
        logs = _task_log(scenario.airflow, run.run_id, "backup")
        assert "backup progress:" in logs, logs[-3000:]
        assert "backup complete:" in logs, logs[-3000:]
        for secret in (scenario.target.password, S3_SECRET_KEY):
            assert secret not in logs
        manifest = json.dumps(_xcom(scenario.airflow, run.run_id, "backup", "return_value"))
        assert scenario.target.password not in manifest and S3_SECRET_KEY not in manifest


UI_TIMEOUT = 60_000  # ms; the first page of a new api-server loads its bundles and translations


def _login(page: Any, airflow: Airflow, url: str) -> None:
    """Open ``url``, get sent to the simple auth manager's form, sign in, land on ``url``."""
    page.goto(url)
    page.wait_for_url(re.compile(r".*/auth/login\?next=.*"))
    page.fill("input[name=username]", USERNAME)
    page.fill("input[name=password]", airflow.password)
    page.click("button[type=submit]")
    page.wait_for_url(url, timeout=UI_TIMEOUT)


def _ui_task_states(page: Any) -> dict[str, str]:
    """The run page's task instance table: task id -> the state it shows."""
    name = "td[data-testid=table-cell-task_display_name]"
    # An exact match: fail_run_without_backup contains the name too.
    page.locator(name, has_text=re.compile(r"^\s*fail_run\s*$")).wait_for(timeout=UI_TIMEOUT)
    states = {}
    for row in page.locator("table tbody tr").all():
        task_id = row.locator(name).inner_text().strip()
        states[task_id] = row.locator("td[data-testid=table-cell-state]").inner_text().strip()
    return states


def test_ui_shows_the_failed_run_and_the_backup_link(scenario: Scenario) -> None:
    airflow, run = scenario.airflow, scenario.failed
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for old in SCREENSHOTS.glob("*.png"):
        old.unlink()
    expected_link = console_url(f"{scenario.prefix}/{DAG_ID}/{run.run_id}.jsonl.zst")
    run_url = f"{airflow.url}/dags/{DAG_ID}/runs/{run.run_id}"
    grid_png = SCREENSHOTS / "failed_run_grid.png"
    details_png = SCREENSHOTS / "backup_task_details.png"
    with chromium_page() as page:
        _login(page, airflow, run_url)

        # The run page: grid on the left, the run's task instances on the right.
        assert _ui_task_states(page) == {
            "check_pending": "Success",
            "backup": "Success",
            "rehearse": "Success",
            "upgrade": "Failed",
            "restore_on_failure": "Success",
            "fail_run": "Failed",
            "fail_run_without_backup": "Skipped",
            "fail_run_after_rehearsal": "Skipped",
        }
        header = page.inner_text("body")
        assert run.run_id in header and DAG_ID in header
        for task_id in TASK_IDS:
            square = page.locator(f"[id='grid-{run.run_id}-{task_id}']")
            assert (
                square.get_attribute("href") == f"/dags/{DAG_ID}/runs/{run.run_id}/tasks/{task_id}"
            )
        # The grid's square of the failed upgrade tells its state on hover.
        page.locator(f"[id='grid-{run.run_id}-upgrade']").hover()
        tooltip = page.locator("[data-scope=tooltip][data-part=content]", has_text="upgrade")
        tooltip.wait_for()
        assert "State: Failed" in tooltip.inner_text()
        page.screenshot(path=str(grid_png))

        # The backup task's details, with its "Backup" extra link to the object it wrote.
        page.goto(f"{run_url}/tasks/backup/details")
        link = page.get_by_role("link", name="Backup", exact=True)
        link.wait_for(timeout=UI_TIMEOUT)
        assert link.is_visible()
        assert link.get_attribute("href") == expected_link
        details = page.inner_text("body")
        assert "Extra Links" in details and "BackupToStorageOperator" in details
        assert run.run_id in details
        page.screenshot(path=str(details_png))
    for png in (grid_png, details_png):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def test_whole_run_within_ten_minutes() -> None:
    elapsed = time.monotonic() - STARTED
    print(f"e2e run took {elapsed:.0f}s")
    assert elapsed < LIMIT_SECONDS
