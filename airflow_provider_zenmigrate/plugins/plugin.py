"""The Airflow plugin of the provider: the "Backups" view (see :mod:`.app`).

Registered twice, as Airflow's own providers do: through the ``airflow.plugins`` entry
point (loaded by every API server, provider discovery lazy or not) and in the provider
info's ``plugins`` (listed with the provider). Nothing else needs configuring; the view
itself reads the Variable of :mod:`.settings`.
"""

from __future__ import annotations

import threading
from typing import Any

from airflow.plugins_manager import AirflowPlugin

URL_PREFIX = "/zenmigrate"


class LazyApp:
    """The app, built on its first request: every Airflow component loads plugins, and
    only the API server should pay for importing the API's security module and FastAPI."""

    def __init__(self) -> None:
        self._app: Any = None
        self._lock = threading.Lock()

    def __call__(self, scope: Any, receive: Any, send: Any) -> Any:
        if self._app is None:
            with self._lock:
                if self._app is None:
                    from .app import create_app

                    self._app = create_app()
        return self._app(scope, receive, send)

    def __repr__(self) -> str:
        return "<zenmigrate backups view>"


class ZenMigratePlugin(AirflowPlugin):
    """The "Backups" entry of the UI's Browse menu, and the app behind it."""

    name = "zenmigrate"
    fastapi_apps = [{"app": LazyApp(), "url_prefix": URL_PREFIX, "name": "zenmigrate backups"}]
    # url_route: the view opens inside Airflow's UI (an iframe at /plugin/zenmigrate-backups)
    # rather than in a new tab. The href is relative: the UI page's <base> is the API
    # server's base URL, so the view is found also when Airflow is served under a path.
    external_views = [
        {
            "name": "Backups",
            "href": URL_PREFIX.lstrip("/") + "/",
            "url_route": "zenmigrate-backups",
            "destination": "nav",
            "category": "browse",
        }
    ]
