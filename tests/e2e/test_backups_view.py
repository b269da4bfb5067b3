"""The "Backups" view (our plugin) in a real Airflow 3 deployment, driven in headless Chromium.

The deployment (:mod:`tests.e2e.deployment`) loads the plugin from the installed provider
with no configuration but the Variable ``zenmigrate_backup_prefixes`` (set through
``AIRFLOW_VAR_...``). A MariaDB database at revision 0002a is backed up to S3 (moto) and
migrated to 0003 by ``zenmigrate_backup_then_migrate``. Then, in the browser:

- the admin opens Browse > Backups (the view inside Airflow's UI): the backup, with its
  revision, the run that took it, and the database's history (current revision 0003, the
  last backup, rehearsal and upgrade runs);
- the admin opens the backup's page (tables, objects), verifies it, and restores it into the
  database after the confirmation naming both; the ``zenmigrate_restore`` run completes
  and the database is back at 0002a with the backup's rows;
- a viewer sees the list and the backup but may not restore: the buttons say why, and the
  API refuses the restore with 403.

Screenshots in ``build/e2e/`` (backups_*.png). Run with ``make e2e``.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import sqlalchemy
from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.pool import NullPool

from airflow_provider_zenmigrate.core.alembic import Alembic
from airflow_provider_zenmigrate.core.utils import MigrationUtils
from tests.e2e.browser import chromium_page
from tests.e2e.deployment import USERNAME, Airflow, airflow_deployment
from tests.support.object_stores import BUCKET, S3_ACCESS_KEY, S3_SECRET_KEY
from tests.support.paths import EXAMPLE_MIGRATIONS, REPO
from tests.support.servers import database_url, server_url, unique_name

pytest_plugins = ["tests.support.object_stores"]

MIGRATE = "zenmigrate_backup_then_migrate"
RESTORE = "zenmigrate_restore"
CONN = "zm_hvw_db"
VIEWER = "hvw_viewer"
SCREENSHOTS = REPO / "build" / "e2e"
RUN_TIMEOUT = 180
UI_TIMEOUT = 60_000


@dataclass
class Scenario:
    airflow: Airflow
    url: URL
    password: str
    backup_uri: str
    migrate_run: str


def _authors(url: URL) -> list[str]:
    engine = sqlalchemy.create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            return [r[0] for r in conn.execute(text("SELECT name FROM author ORDER BY id"))]
    finally:
        engine.dispose()


def _revisions(url: URL) -> list[str]:
    engine = sqlalchemy.create_engine(url, poolclass=NullPool)
    try:
        return sorted(Alembic(engine, script_location=EXAMPLE_MIGRATIONS).current_revisions())
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def scenario(s3_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scenario]:
    """The database backed up and migrated by a real run; the deployment up with a viewer."""
    name = unique_name("hvw_e2e")
    password = "Hvw-" + secrets.token_urlsafe(12)
    url = database_url("mysql", Path("."), name).set(username=name, password=password)
    admin = sqlalchemy.create_engine(server_url("mysql"), poolclass=NullPool)
    with admin.connect() as conn:
        conn.execute(text(f"CREATE USER '{name}'@'%' IDENTIFIED BY '{password}'"))
        conn.execute(text(f"GRANT ALL ON *.* TO '{name}'@'%'"))
        conn.commit()
    utils = MigrationUtils(url=url, connect_args={}, engine_args={})
    prefix = f"s3://{BUCKET}/hvw-e2e-{secrets.token_hex(4)}"
    env = {
        f"AIRFLOW_CONN_{CONN.upper()}": json.dumps(
            {
                "conn_type": "mysql",
                "host": url.host,
                "port": url.port,
                "login": name,
                "password": password,
                "schema": url.database,
            }
        ),
        "AIRFLOW_CONN_ZM_HVW_S3": json.dumps(
            {
                "conn_type": "aws",
                "login": S3_ACCESS_KEY,
                "password": S3_SECRET_KEY,
                "extra": {"endpoint_url": s3_server, "region_name": "us-east-1"},
            }
        ),
        "AIRFLOW_VAR_ZENMIGRATE_BACKUP_PREFIXES": json.dumps(
            {CONN: {"storage_conn_id": "zm_hvw_s3", "prefixes": [f"{prefix}/{MIGRATE}/"]}}
        ),
    }
    try:
        utils.create_database()
        Alembic(utils.engine, script_location=EXAMPLE_MIGRATIONS).upgrade("0002a")
        with utils.engine.begin() as conn:
            conn.execute(text("INSERT INTO author (id, name) VALUES (1, 'Ada'), (2, 'Grace')"))
        utils.dispose()
        root = tmp_path_factory.mktemp("airflow-hvw")
        with airflow_deployment(root, env, users={VIEWER: "viewer"}) as airflow:
            airflow.wait_until_healthy(180)
            for dag_id in (MIGRATE, RESTORE):
                airflow.wait_for_dag(dag_id, 180)
                airflow.api("PATCH", f"/dags/{dag_id}", json={"is_paused": False})
            conf = {
                "conn_id": CONN,
                "storage_conn_id": "zm_hvw_s3",
                "backup_prefix": prefix,
                "script_location": str(EXAMPLE_MIGRATIONS),
            }
            run_id = airflow.trigger(MIGRATE, conf)
            run = airflow.wait_for_run(MIGRATE, run_id, RUN_TIMEOUT)
            assert run["state"] == "success", airflow.task_states(MIGRATE, run_id)
            assert _revisions(url) == ["0003"]
            with sqlalchemy.create_engine(url, poolclass=NullPool).begin() as conn:
                conn.execute(text("INSERT INTO author (id, name) VALUES (3, 'Hopper')"))
            backup = f"{prefix}/{MIGRATE}/{run_id.replace(':', '_')}.jsonl.zst"
            yield Scenario(airflow, url, password, backup, run_id)
    finally:
        utils.drop_database()
        utils.dispose()
        with admin.connect() as conn:
            conn.execute(text(f"DROP USER '{name}'@'%'"))
            conn.commit()
        admin.dispose()


def _sign_in(page: Any, airflow: Airflow, user: str) -> None:
    """Sign in through the simple auth manager's form, as a person would."""
    page.goto(airflow.url + "/")
    page.wait_for_url(re.compile(r".*/auth/login\?next=.*"), timeout=UI_TIMEOUT)
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", airflow.passwords[user])
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"^(?!.*/auth/login).*$"), timeout=UI_TIMEOUT)


def _detail_url(scenario: Scenario) -> str:
    query = f"conn={quote(CONN)}&uri={quote(scenario.backup_uri, safe='')}"
    return f"{scenario.airflow.url}/zenmigrate/#/backup?{query}"


def _screenshot(page: Any, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / name
    page.screenshot(path=str(path), full_page=True)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000
    return path


def test_admin_lists_inspects_verifies_and_restores_a_backup(scenario: Scenario) -> None:
    airflow = scenario.airflow
    with chromium_page() as page:
        _sign_in(page, airflow, USERNAME)

        # Browse > Backups: the view inside Airflow's UI.
        page.goto(airflow.url + "/")
        page.get_by_role("button", name=re.compile("Browse")).click()
        page.get_by_role("menuitem", name="Backups").click()
        page.wait_for_url(re.compile(r".*/plugin/zenmigrate-backups$"), timeout=UI_TIMEOUT)
        frame = page.frame_locator("iframe")
        row = frame.locator("tr.backup")
        row.first.wait_for(timeout=UI_TIMEOUT)
        assert row.count() == 1
        cells = row.first.inner_text()
        assert "0002a" in cells and scenario.migrate_run in cells and "never" in cells
        assert row.first.get_attribute("data-uri") == scenario.backup_uri
        history = frame.locator(f"section[data-conn={CONN}] .history")
        frame.locator(".history[data-loaded='1']").wait_for(timeout=UI_TIMEOUT)
        assert frame.locator(".current-revision").inner_text() == "0003"
        shown = history.inner_text()
        assert shown.count(scenario.migrate_run) == 3  # backup, rehearsal, upgrade
        assert "task success" in shown and "run success" in shown
        _screenshot(page, "backups_list.png")

        # The backup's page: its tables and objects; Verify.
        page.goto(_detail_url(scenario))
        page.locator("#contents[data-loaded='1']").wait_for(timeout=UI_TIMEOUT)
        assert page.locator("#contents-error").count() == 0
        authors = page.locator("tr[data-table=author]").inner_text()
        assert re.search(r"\b2\b", authors), authors  # columns 2, rows 2
        assert page.locator("tr[data-table=book]").count() == 1
        page.click("#verify")
        result = page.locator("#verify-result")
        result.wait_for(timeout=UI_TIMEOUT)
        assert result.inner_text().startswith("Verified: "), result.inner_text()
        assert "verified" in page.locator("#verification").inner_text()

        # Restore…: the confirmation names the backup and the target.
        page.click("#restore")
        question = page.locator("#restore-question")
        question.wait_for()
        assert question.inner_text() == (
            f"Restore {scenario.backup_uri} into the database of connection {CONN}?"
        )
        _screenshot(page, "backups_restore_confirm.png")
        page.click("#restore-confirm")
        link = page.locator("#restore-run")
        link.wait_for(timeout=UI_TIMEOUT)
        run_id = str(link.get_attribute("data-run-id"))
        assert link.get_attribute("href") == f"../dags/{RESTORE}/runs/{quote(run_id, safe='')}"
        _screenshot(page, "backups_detail.png")

    run = airflow.wait_for_run(RESTORE, run_id, RUN_TIMEOUT)
    assert run["state"] == "success", airflow.task_states(RESTORE, run_id)
    assert run["conf"]["uri"] == scenario.backup_uri and run["conf"]["conn_id"] == CONN
    # Back as the backup was: revision 0002a, and Hopper (added after it) is gone.
    assert _revisions(scenario.url) == ["0002a"]
    assert _authors(scenario.url) == ["Ada", "Grace"]

    with chromium_page() as page:
        _sign_in(page, airflow, USERNAME)
        page.goto(f"{airflow.url}/dags/{RESTORE}/runs/{run_id}")
        page.get_by_text(run_id).first.wait_for(timeout=UI_TIMEOUT)
        _screenshot(page, "backups_restore_run.png")


def test_viewer_reads_but_is_refused_the_restore(scenario: Scenario) -> None:
    airflow = scenario.airflow
    with chromium_page() as page:
        _sign_in(page, airflow, VIEWER)
        page.goto(airflow.url + "/zenmigrate/")
        page.locator("tr.backup").first.wait_for(timeout=UI_TIMEOUT)
        page.goto(_detail_url(scenario))
        page.locator("#contents[data-loaded='1']").wait_for(timeout=UI_TIMEOUT)
        assert page.locator("#restore").is_disabled() and page.locator("#verify").is_disabled()
        assert f"may not trigger {RESTORE}" in page.locator("#why-disabled").inner_text()
        # The server refuses too, whatever the page shows: the viewer's own session.
        status = page.evaluate(
            """async ([conn, uri]) => (await fetch("api/restore", {method: "POST",
                 headers: {"Content-Type": "application/json"},
                 body: JSON.stringify({conn_id: conn, uri, target_conn_id: conn})})).status""",
            [CONN, scenario.backup_uri],
        )
        assert status == 403
        _screenshot(page, "backups_viewer_refused.png")
    token = httpx.post(
        f"{airflow.url}/auth/token",
        json={"username": VIEWER, "password": airflow.passwords[VIEWER]},
        timeout=30,
    ).json()["access_token"]
    body = {"conn_id": CONN, "uri": scenario.backup_uri, "target_conn_id": CONN}
    headers = {"Authorization": f"Bearer {token}"}
    refused = httpx.post(f"{airflow.url}/zenmigrate/api/restore", json=body, headers=headers)
    assert refused.status_code == 403
    anonymous = httpx.post(f"{airflow.url}/zenmigrate/api/restore", json=body)
    assert anonymous.status_code in (401, 403)
    listed = httpx.get(f"{airflow.url}/zenmigrate/api/databases", headers=headers, timeout=30)
    assert listed.status_code == 200 and listed.json()["can_trigger"] is False
    runs = airflow.api("GET", f"/dags/{RESTORE}/dagRuns")["dag_runs"]
    assert len(runs) == 1  # only the admin's


def test_no_secret_reaches_the_browser(scenario: Scenario) -> None:
    token = scenario.airflow.token()
    headers = {"Authorization": f"Bearer {token}"}
    base = f"{scenario.airflow.url}/zenmigrate/api"
    params = {"conn_id": CONN, "uri": scenario.backup_uri}
    answers = [
        httpx.get(f"{base}/databases", headers=headers, timeout=30).text,
        httpx.get(f"{base}/history", params={"conn_id": CONN}, headers=headers, timeout=30).text,
        httpx.get(f"{base}/backup", params=params, headers=headers, timeout=30).text,
        httpx.get(f"{base}/backup/contents", params=params, headers=headers, timeout=30).text,
    ]
    for answer in answers:
        for secret in (scenario.password, S3_SECRET_KEY, "X-Amz-Signature", "Signature="):
            assert secret not in answer
