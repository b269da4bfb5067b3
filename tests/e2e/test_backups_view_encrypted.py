"""The "Backups" page with encrypted dumps, in headless Chromium: what the browser shows of an
encrypted backup with its key configured (tables, rows, "Verified") and without it (the
envelope's key id, "encrypted" in the list, "cannot verify without the key" on Verify), and
no key in any page the browser received.

Lighter than tests/e2e/test_backups_view.py: Airflow's own API server app (``create_app``,
the plugin mounted from the provider's entry point, the simple auth manager, a SQLite
metadata database) served by uvicorn in this process, the user's JWT in Airflow's cookie.
The API answers themselves are tested in tests/airflow/test_backups_view_encrypted.py.
Screenshots in ``build/e2e/`` (backups_encrypted_*.png). Run with ``make e2e`` (or
``ZENMIGRATE_E2E=1 pytest tests/e2e/test_backups_view_encrypted.py``).
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from airflow_provider_zenmigrate.core.alembic import Alembic
from airflow_provider_zenmigrate.core.crypto import Encryption, LocalKey
from airflow_provider_zenmigrate.core.utils import MigrationUtils
from tests.e2e.browser import chromium_page
from tests.support.backups_view import SIMPLE_AUTH_MANAGER, environment
from tests.support.example_dags import connection_json
from tests.support.object_stores import free_port
from tests.support.paths import EXAMPLE_MIGRATIONS, REPO

AIRFLOW = str(Path(sys.executable).parent / "airflow")
KEYED, NO_KEY = "zmvk_e2e_keyed", "zmvk_e2e_nokey"
UI_TIMEOUT = 30_000
SCREENSHOTS = REPO / "build" / "e2e"


@dataclass
class Served:
    url: str
    token: str
    encrypted: str
    plain: str
    key: bytes
    key_id: str


def _serve(app: Any, port: int) -> tuple[Any, threading.Thread]:
    import uvicorn

    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, name="zmvk-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    return server, thread


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    migrated = subprocess.run(
        [AIRFLOW, "db", "migrate"], env=os.environ, capture_output=True, text=True, timeout=300
    )
    assert migrated.returncode == 0, migrated.stderr[-2000:]
    folder = tmp_path_factory.mktemp("zmvk_e2e")
    url = make_url(f"sqlite:///{folder / 'zmvk_source.db'}")
    utils = MigrationUtils(url=url, connect_args={}, engine_args={})
    Alembic(utils.engine, script_location=EXAMPLE_MIGRATIONS).upgrade("0002a")
    with utils.engine.begin() as conn:
        conn.execute(text("INSERT INTO author (id, name) VALUES (1, 'Ada'), (2, 'Grace')"))
    key = os.urandom(32)
    backups = folder / "backups"
    plain, encrypted = str(backups / "plain.jsonl.zst"), str(backups / "sealed.jsonl.zst")
    utils.backup_database_to_file(plain)
    keyed = MigrationUtils(
        url=url, connect_args={}, engine_args={}, encryption=Encryption(LocalKey(key))
    )
    keyed.backup_database_to_file(encrypted)
    keyed.dispose()
    prefix = str(backups) + "/"
    env = {
        "AIRFLOW_VAR_ZENMIGRATE_BACKUP_PREFIXES": json.dumps(
            {KEYED: {"encryption_conn_id": "zmvk_e2e_key", "prefixes": [prefix]}, NO_KEY: [prefix]}
        ),
        f"AIRFLOW_CONN_{KEYED.upper()}": connection_json(utils),
        f"AIRFLOW_CONN_{NO_KEY.upper()}": connection_json(utils),
        "AIRFLOW_CONN_ZMVK_E2E_KEY": json.dumps(
            {"conn_type": "generic", "password": base64.b64encode(key).decode()}
        ),
        "AIRFLOW__CORE__AUTH_MANAGER": SIMPLE_AUTH_MANAGER,
    }
    utils.dispose()
    with environment(env):
        from airflow.api_fastapi.app import create_app, get_auth_manager, purge_cached_app
        from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

        purge_cached_app()
        app = create_app()
        token = get_auth_manager().generate_jwt(
            SimpleAuthManagerUser(username="zmvk_admin", role="admin")
        )
        port = free_port()
        server, thread = _serve(app, port)
        try:
            yield Served(
                f"http://127.0.0.1:{port}", token, encrypted, plain, key, LocalKey(key).key_id
            )
        finally:
            server.should_exit = True
            thread.join(timeout=15)


def _signed_in(page: Any, served: Served) -> None:
    page.context.add_cookies([{"name": "_token", "value": served.token, "url": served.url}])


def _detail(served: Served, conn_id: str, uri: str) -> str:
    return f"{served.url}/zenmigrate/#/backup?conn={quote(conn_id)}&uri={quote(uri, safe='')}"


def test_the_page_shows_encrypted_backups_with_and_without_the_key(served: Served) -> None:
    pages: list[str] = []
    with chromium_page() as page:
        _signed_in(page, served)
        page.goto(served.url + "/zenmigrate/")
        for conn_id in (KEYED, NO_KEY):
            page.locator(f"section[data-conn={conn_id}] .prefix[data-loaded='1']").wait_for(
                timeout=UI_TIMEOUT
            )
        row = f"tr[data-uri='{served.encrypted}']"
        keyed = page.locator(f"section[data-conn={KEYED}] {row}").inner_text()
        assert "0002a" in keyed and "encrypted" not in keyed, keyed
        locked = page.locator(f"section[data-conn={NO_KEY}] {row}")
        assert "locked" in str(locked.get_attribute("class"))
        assert "no key configured" in locked.inner_text()
        pages.append(page.content())

        # Without the key: the envelope's key id, the reason, and Verify says why not.
        page.goto(_detail(served, NO_KEY, served.encrypted))
        page.locator("#contents[data-loaded='1']").wait_for(timeout=UI_TIMEOUT)
        assert "cannot verify without the key" in page.locator("#contents-locked").inner_text()
        assert served.key_id in page.locator("#encryption").inner_text()
        assert page.locator("tr[data-table]").count() == 0
        page.click("#verify")
        result = page.locator("#verify-result")
        result.wait_for(timeout=UI_TIMEOUT)
        assert "cannot verify without the key" in result.inner_text()
        assert page.locator("#verify").is_enabled()
        pages.append(page.content())
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "backups_encrypted_no_key.png"), full_page=True)

        # With the key: tables and a real verification.
        page.goto(_detail(served, KEYED, served.encrypted))
        page.locator("#contents[data-loaded='1']").wait_for(timeout=UI_TIMEOUT)
        assert page.locator("#contents-locked").count() == 0
        assert page.locator("tr[data-table=author]").count() == 1
        assert served.key_id in page.locator("#encryption").inner_text()
        page.click("#verify")
        result = page.locator("#verify-result")
        result.wait_for(timeout=60_000)
        assert result.inner_text().startswith("Verified: "), result.inner_text()
        pages.append(page.content())
        page.screenshot(path=str(SCREENSHOTS / "backups_encrypted_keyed.png"), full_page=True)
    for form in (served.key, base64.b64encode(served.key), served.key.hex().encode()):
        for html in pages:
            assert form.decode("latin-1") not in html
