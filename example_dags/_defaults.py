"""Defaults the example DAGs share: the embedded demo database and a local backup folder."""

from __future__ import annotations

import os
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEMO_FOLDER = Path(os.environ.get("ZENMIGRATE_DEMO_FOLDER", HERE.parent / "build" / "demo"))

DEFAULT_PARAMS = {
    "conn_id": "zenmigrate_demo",
    "storage_conn_id": "",
    "script_location": str(HERE / "migrations"),
    "backup_prefix": str(DEMO_FOLDER / "backups"),
}
