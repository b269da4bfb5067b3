"""The "Backups" view's API, through Airflow's own API server app (``create_app``: the plugin
mounted by Airflow from the provider's entry point, its real simple auth manager and a real
metadata database), with real backups on disk and in S3 (moto's server).

Users are JWTs the auth manager signs, one per role of the simple auth manager; the cases:
no token, an invalid token, a viewer (reads; Verify and Restore refused), a user (everything).
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from airflow_provider_zenmigrate.core.alembic import Alembic
from airflow_provider_zenmigrate.core.utils import MigrationUtils
from tests.support.backups_view import (
    PREFIX,
    SIMPLE_AUTH_MANAGER,
    ViewClient,
    environment,
    restore_runs,
    sync_example_dags,
    view_client,
)
from tests.support.example_dags import connection_json
from tests.support.object_stores import BUCKET, S3_ACCESS_KEY, S3_SECRET_KEY, s3_client
from tests.support.paths import EXAMPLE_MIGRATIONS
from tests.support.servers import SECRET, server_url, unique_name

pytest_plugins = ["tests.support.object_stores"]

BACKUPS = 7


@dataclass
class View(ViewClient):
    """The view's client (tokens per role, and a forged one) and the backups made for it."""

    folder: Path
    s3_prefix: str
    uris: list[str]
    db_url: Any


@pytest.fixture(scope="module")
def view(
    airflow_db: Path, tmp_path_factory: pytest.TempPathFactory, s3_server: str
) -> Iterator[View]:
    folder = tmp_path_factory.mktemp("hvw_view")
    source = folder / "hvw_source.db"
    utils = MigrationUtils(url=make_url(f"sqlite:///{source}"), connect_args={}, engine_args={})
    Alembic(utils.engine, script_location=EXAMPLE_MIGRATIONS).upgrade("0002a")
    with utils.engine.begin() as conn:
        conn.execute(text("INSERT INTO author (id, name) VALUES (1, 'Ada'), (2, 'Grace')"))
    backups = folder / "backups"
    uris = []
    for n in range(BACKUPS):
        uri = str(backups / f"nightly-{n}.jsonl.zst")
        utils.backup_database_to_file(uri)
        uris.append(uri)
        time.sleep(0.02)  # distinct modification times: the order is newest first
    s3_prefix = f"s3://{BUCKET}/hvw-{secrets.token_hex(4)}/"
    s3_params = {"client": s3_client(s3_server)}
    MigrationUtils(
        url=make_url(f"sqlite:///{source}"),
        connect_args={},
        engine_args={},
        transport_params=s3_params,
    ).backup_database_to_file(s3_prefix + "one.jsonl.zst")
    utils.dispose()
    mysql_user = unique_name("hvw")
    config = {
        "hvw_source": {"prefixes": [str(backups) + "/"]},
        "hvw_s3": {"storage_conn_id": "hvw_store", "prefixes": [s3_prefix]},
        "hvw_missing_folder": [str(folder / "nowhere") + "/"],
        "hvw_bad_bucket": {"storage_conn_id": "hvw_store", "prefixes": ["s3://hvw-no-such/x/"]},
        "hvw_secret_db": [str(backups) + "/"],
    }
    env = {
        "AIRFLOW_VAR_ZENMIGRATE_BACKUP_PREFIXES": json.dumps(config),
        "AIRFLOW_CONN_HVW_SOURCE": connection_json(utils),
        "AIRFLOW_CONN_HVW_S3": connection_json(utils),
        "AIRFLOW_CONN_HVW_MISSING_FOLDER": connection_json(utils),
        "AIRFLOW_CONN_HVW_BAD_BUCKET": connection_json(utils),
        # A MariaDB account that does not exist, with a password: its errors must not leak it.
        "AIRFLOW_CONN_HVW_SECRET_DB": json.dumps(
            {
                "conn_type": "mysql",
                "host": server_url("mysql").host,
                "port": server_url("mysql").port,
                "login": mysql_user,
                "password": SECRET,
                "schema": mysql_user,
            }
        ),
        "AIRFLOW_CONN_HVW_STORE": json.dumps(
            {
                "conn_type": "aws",
                "login": S3_ACCESS_KEY,
                "password": S3_SECRET_KEY,
                "extra": {"endpoint_url": s3_server, "region_name": "us-east-1"},
            }
        ),
        "AIRFLOW__CORE__AUTH_MANAGER": SIMPLE_AUTH_MANAGER,
    }
    with environment(env):
        sync_example_dags()
        with view_client("hvw") as client:
            yield View(client.client, client.tokens, folder, s3_prefix, uris, utils.url)


def _page(view: View, conn_id: str, prefix: str, role: str = "admin", **params: Any) -> Any:
    response = view.get("/api/backups", role, conn_id=conn_id, prefix=prefix, **params)
    assert response.status_code == 200, response.text
    return response.json()


def _local_prefix(view: View) -> str:
    return str(view.folder / "backups") + "/"


ROUTES = [
    ("GET", "/", None),
    ("GET", "/static/backups.js", None),
    ("GET", "/api/databases", None),
    ("GET", "/api/history?conn_id=hvw_source", None),
    ("GET", "/api/backups?conn_id=hvw_source&prefix=x", None),
    ("GET", "/api/backup?conn_id=hvw_source&uri=x", None),
    ("GET", "/api/backup/contents?conn_id=hvw_source&uri=x", None),
    ("POST", "/api/verify", {"conn_id": "hvw_source", "uri": "x"}),
    ("POST", "/api/restore", {"conn_id": "hvw_source", "uri": "x", "target_conn_id": "y"}),
]


@pytest.mark.parametrize(("method", "path", "body"), ROUTES)
def test_every_route_refuses_requests_without_a_valid_token(
    view: View, method: str, path: str, body: Any
) -> None:
    for headers in ({}, {"Authorization": f"Bearer {view.tokens['forged']}"}):
        response = view.client.request(method, PREFIX + path, json=body, headers=headers)
        assert response.status_code in (401, 403), (path, response.status_code, response.text)
        assert "zenmigrate" not in response.text.lower() or path == "/"


def test_the_page_for_a_signed_out_browser_says_to_sign_in(view: View) -> None:
    response = view.client.get(PREFIX + "/", headers={"Accept": "text/html"})
    assert response.status_code == 401
    assert "Sign in" in response.text and "auth/login" in response.text


def test_plugin_is_mounted_and_listed_by_airflow(view: View) -> None:
    page = view.get("/", "viewer")
    assert page.status_code == 200 and "static/backups.js" in page.text
    script = view.get("/static/backups.js", "viewer")
    assert script.status_code == 200 and script.headers["content-type"].startswith("text/java")
    assert view.get("/static/../app.py", "viewer").status_code == 404
    plugins = view.client.get(
        "/api/v2/plugins", headers={"Authorization": f"Bearer {view.tokens['admin']}"}
    ).json()
    ours = [p for p in plugins["plugins"] if p["name"] == "zenmigrate"]
    assert ours and ours[0]["external_views"][0]["href"] == "zenmigrate/"
    assert ours[0]["external_views"][0]["destination"] == "nav"


def test_databases_are_listed_in_the_variables_order(view: View) -> None:
    found = view.get("/api/databases", "viewer").json()
    assert found["error"] is None
    assert [d["conn_id"] for d in found["databases"]] == [
        "hvw_source",
        "hvw_s3",
        "hvw_missing_folder",
        "hvw_bad_bucket",
        "hvw_secret_db",
    ]
    assert found["can_trigger"] is False and found["user"] == "hvw_viewer"
    assert view.get("/api/databases", "user").json()["can_trigger"] is True


def test_paging_newest_first(view: View) -> None:
    prefix = _local_prefix(view)
    seen: list[str] = []
    offset: int | None = 0
    sizes = []
    while offset is not None:
        page = _page(view, "hvw_source", prefix, "viewer", offset=offset, limit=3)
        assert page["error"] is None and page["found"] == BACKUPS
        sizes.append(len(page["backups"]))
        seen += [b["uri"] for b in page["backups"]]
        offset = page["next_offset"]
    assert sizes == [3, 3, 1]
    assert seen == list(reversed(view.uris))
    first = _page(view, "hvw_source", prefix, limit=1)["backups"][0]
    assert first["state"] == "complete" and first["tables"] >= 2 and first["rows"] >= 3
    assert first["revision"] == "0002a" and first["size"] > 0
    assert first["verification"] is None and first["run"] is None
    too_many = view.get("/api/backups", conn_id="hvw_source", prefix=prefix, limit=1000)
    assert too_many.status_code == 422


def test_only_configured_prefixes_and_uris_are_read(view: View) -> None:
    other = view.get("/api/backups", conn_id="hvw_source", prefix="/etc/")
    assert other.status_code == 404 and "not a prefix" in other.json()["detail"]
    unknown = view.get("/api/history", conn_id="hvw_not_configured")
    assert unknown.status_code == 404 and "zenmigrate_backup_prefixes" in unknown.json()["detail"]
    for uri in ("/etc/passwd", _local_prefix(view) + "../hvw_source.db"):
        outside = view.get("/api/backup/contents", conn_id="hvw_source", uri=uri)
        assert outside.status_code == 404, outside.text
        assert "is not under a backup prefix" in outside.json()["detail"]


def test_a_prefix_that_cannot_be_listed_says_why(view: View) -> None:
    missing = _page(view, "hvw_missing_folder", str(view.folder / "nowhere") + "/")
    assert missing["backups"] == [] and "no such folder" in missing["error"]
    bucket = _page(view, "hvw_bad_bucket", "s3://hvw-no-such/x/")
    assert bucket["backups"] == [] and "hvw-no-such" in bucket["error"]
    assert S3_SECRET_KEY not in json.dumps(bucket)


def test_s3_prefix_through_the_storage_connection_sends_no_secret(view: View) -> None:
    page = _page(view, "hvw_s3", view.s3_prefix)
    assert [b["uri"] for b in page["backups"]] == [view.s3_prefix + "one.jsonl.zst"]
    detail = view.get("/api/backup", conn_id="hvw_s3", uri=view.s3_prefix + "one.jsonl.zst")
    contents = view.get(
        "/api/backup/contents", conn_id="hvw_s3", uri=view.s3_prefix + "one.jsonl.zst"
    )
    assert detail.status_code == 200 and contents.status_code == 200
    for response in (json.dumps(page), detail.text, contents.text):
        for secret in (S3_SECRET_KEY, S3_ACCESS_KEY, "X-Amz-", "Signature="):
            assert secret not in response


def test_history_of_a_database_that_refuses_its_login_leaks_no_password(view: View) -> None:
    found = view.get("/api/history", conn_id="hvw_secret_db").json()
    assert found["current"]["revision"] is None and found["current"]["error"]
    assert SECRET not in json.dumps(found)
    source = view.get("/api/history", conn_id="hvw_source").json()
    assert source["current"] == {"revision": "0002a", "error": None}
    assert set(source["runs"]) == {"backup", "rehearsal", "upgrade"}


def test_backup_page_shows_tables_and_objects(view: View) -> None:
    uri = view.uris[0]
    detail = view.get("/api/backup", "viewer", conn_id="hvw_source", uri=uri).json()
    assert detail["backup"]["state"] == "complete" and detail["can_trigger"] is False
    contents = view.get("/api/backup/contents", "viewer", conn_id="hvw_source", uri=uri).json()
    tables = {t["name"]: t for t in contents["tables"]}
    assert tables["author"]["rows"] == 2 and tables["author"]["columns"] == 2
    assert "alembic_version" in tables and contents["verified"] is True
    assert contents["error"] is None and contents["header"]["revision"] == "0002a"
    assert isinstance(contents["objects"], dict)


def test_corrupted_manifest_is_shown_as_such(view: View) -> None:
    victim = view.uris[1]
    Path(victim + ".manifest.json").write_text("{not json")
    page = _page(view, "hvw_source", _local_prefix(view), limit=100)
    rows = {b["uri"]: b for b in page["backups"]}
    assert len(rows) == BACKUPS
    assert rows[victim]["state"] == "damaged" and "corrupted" in rows[victim]["problem"]
    assert all(r["state"] == "complete" for u, r in rows.items() if u != victim)
    detail = view.get("/api/backup", conn_id="hvw_source", uri=victim)
    assert detail.status_code == 200 and detail.json()["backup"]["state"] == "damaged"


def _verification(view: View, conn_id: str, uri: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = view.get("/api/backup", conn_id=conn_id, uri=uri).json()["backup"]
        state = (found["verification"] or {}).get("state")
        if state in ("ok", "failed"):
            return dict(found["verification"])
        time.sleep(0.2)
    raise AssertionError(f"no verification of {uri} within 60 s")


def test_verify_records_who_when_and_the_outcome(view: View) -> None:
    good, bad = view.uris[2], view.uris[3]
    # Same size, one byte changed in the middle: the listing still trusts its manifest.
    data = bytearray(Path(bad).read_bytes())
    data[len(data) // 2] ^= 0xFF
    Path(bad).write_bytes(bytes(data))
    refused = view.post("/api/verify", {"conn_id": "hvw_source", "uri": good}, "viewer")
    assert refused.status_code == 403
    for uri in (good, bad):
        started = view.post("/api/verify", {"conn_id": "hvw_source", "uri": uri}, "user")
        assert started.status_code == 202, started.text
    ok = _verification(view, "hvw_source", good)
    assert ok["ok"] is True and ok["by"] == "hvw_user" and ok["at"]
    failed = _verification(view, "hvw_source", bad)
    assert failed["ok"] is False and failed["error"]
    row = {
        b["uri"]: b for b in _page(view, "hvw_source", _local_prefix(view), limit=100)["backups"]
    }
    assert row[good]["verification"]["ok"] is True
    assert row[bad]["verification"]["ok"] is False


def test_restore_is_refused_to_a_viewer_and_to_a_missing_target(view: View) -> None:
    runs = restore_runs()  # other modules of the session may have run the DAG already
    body = {"conn_id": "hvw_source", "uri": view.uris[0], "target_conn_id": "hvw_source"}
    refused = view.post("/api/restore", body, "viewer")
    assert refused.status_code == 403
    missing = view.post("/api/restore", {**body, "target_conn_id": "hvw_nowhere"}, "user")
    assert missing.status_code == 400
    assert "the target connection 'hvw_nowhere' does not exist" in missing.json()["detail"]
    gone = view.post("/api/restore", {**body, "uri": view.uris[0] + ".gone"}, "user")
    assert gone.status_code == 400 and "backup not found" in gone.json()["detail"]
    damaged = Path(_local_prefix(view)) / "hvw-damaged.jsonl.zst"
    damaged.write_bytes(Path(view.uris[0]).read_bytes())
    Path(str(damaged) + ".manifest.json").write_text("{}")
    try:
        refused = view.post("/api/restore", {**body, "uri": str(damaged)}, "user")
    finally:
        damaged.unlink()
        Path(str(damaged) + ".manifest.json").unlink()
    assert refused.status_code == 400 and "not a complete backup" in refused.json()["detail"]
    assert restore_runs() == runs


def test_restore_triggers_zenmigrate_restore_with_the_backup_and_target(view: View) -> None:
    uri = view.uris[0]
    body = {"conn_id": "hvw_source", "uri": uri, "target_conn_id": "hvw_s3"}
    response = view.post("/api/restore", body, "user")
    assert response.status_code == 200, response.text
    run = response.json()
    assert run["dag_id"] == "zenmigrate_restore" and run["link"].startswith("dags/")
    runs = [r for r in restore_runs() if r[0] == run["run_id"]]
    assert len(runs) == 1
    _, conf, who = runs[0]
    assert conf == {"conn_id": "hvw_s3", "storage_conn_id": "", "uri": uri}
    assert who == "hvw_user"


def test_bad_variable_is_a_clear_message(view: View) -> None:
    with environment({"AIRFLOW_VAR_ZENMIGRATE_BACKUP_PREFIXES": "{oops"}):
        found = view.get("/api/databases").json()
        assert found["databases"] == [] and "is not JSON" in found["error"]
        page = view.get("/api/backups", conn_id="hvw_source", prefix=_local_prefix(view))
        assert page.status_code == 400 and "is not JSON" in page.json()["detail"]
