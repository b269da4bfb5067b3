"""The "Backups" view's API through Airflow's own API server app, for tests: Airflow's
``create_app`` (the plugin mounted from the provider's entry point, the simple auth manager,
the real metadata database of ``tests/airflow/conftest.py``) in a ``TestClient``, with a JWT
per role of the simple auth manager."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

PREFIX = "/zenmigrate"
SIMPLE_AUTH_MANAGER = (
    "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
)


@dataclass
class ViewClient:
    """Requests to the view as a user of a role (``None``: no token)."""

    client: Any
    tokens: dict[str, str]

    def get(self, path: str, role: str | None = "admin", **params: Any) -> Any:
        return self.client.get(PREFIX + path, params=params, headers=self._auth(role))

    def post(self, path: str, body: dict[str, Any], role: str | None = "admin") -> Any:
        return self.client.post(PREFIX + path, json=body, headers=self._auth(role))

    def _auth(self, role: str | None) -> dict[str, str]:
        if role is None:
            return {}
        return {"Authorization": f"Bearer {self.tokens.get(role, role)}"}


@contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    """``values`` in ``os.environ`` for the block (Airflow reads connections and Variables
    from ``AIRFLOW_CONN_*`` / ``AIRFLOW_VAR_*`` on every lookup)."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def sync_example_dags() -> None:
    """The example DAGs (``zenmigrate_restore`` among them) in the metadata database, as the
    DAG processor would leave them: the view's "Restore…" triggers a DAG Airflow knows."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import sync_bag_to_db

    from tests.support.example_dags import example_dag_bag

    DagBundlesManager().sync_bundles_to_db()
    bag = example_dag_bag()
    assert "zenmigrate_restore" in bag.dags, bag.import_errors
    sync_bag_to_db(bag, "dags-folder", None)


def restore_runs() -> list[tuple[str, dict[str, Any], str | None]]:
    """Every run of ``zenmigrate_restore`` in the metadata database: its id, conf and the
    user who triggered it."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        runs = session.scalars(select(DagRun).where(DagRun.dag_id == "zenmigrate_restore")).all()
        return [(r.run_id, dict(r.conf or {}), r.triggering_user_name) for r in runs]


@contextmanager
def view_client(user_prefix: str) -> Iterator[ViewClient]:
    """Airflow's API server app with the view, and a token per role (users named
    ``<user_prefix>_<role>``). Set ``AIRFLOW__CORE__AUTH_MANAGER`` to
    :data:`SIMPLE_AUTH_MANAGER` (with :func:`environment`) before entering."""
    from airflow.api_fastapi.app import create_app, get_auth_manager, purge_cached_app
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from fastapi.testclient import TestClient

    purge_cached_app()
    app = create_app()
    manager = get_auth_manager()
    tokens = {
        role: manager.generate_jwt(
            SimpleAuthManagerUser(username=f"{user_prefix}_{role}", role=role)
        )
        for role in ("viewer", "user", "admin")
    }
    tokens["forged"] = tokens["admin"][:-4] + "AAAA"  # a signature that does not check out
    with TestClient(app) as client:
        yield ViewClient(client, tokens)
