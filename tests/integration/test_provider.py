"""The package is a real Airflow provider: Airflow's own CLI finds it without warnings."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from airflow_provider_zenmigrate.get_provider_info import get_provider_info

AIRFLOW = Path(sys.executable).parent / "airflow"


def test_provider_info_names_the_distribution() -> None:
    info = get_provider_info()
    assert info["package-name"] == "airflow-provider-zenmigrate"
    assert info["versions"] and all(isinstance(v, str) for v in info["versions"])


def _providers(tmp_path: Path, what: str) -> tuple[list[dict[str, str]], str]:
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    result = subprocess.run(
        [str(AIRFLOW), "providers", what, "--output", "json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=True,
    )
    return json.loads(result.stdout), result.stderr


def test_airflow_providers_list_shows_it_without_warnings(tmp_path: Path) -> None:
    providers, stderr = _providers(tmp_path, "list")
    assert "airflow-provider-zenmigrate" in {p["package_name"] for p in providers}
    assert "warning" not in stderr.lower(), stderr
    assert "zenmigrate" not in stderr.lower(), stderr


def test_airflow_lists_the_connection_type_and_the_link(tmp_path: Path) -> None:
    hooks, stderr = _providers(tmp_path, "hooks")
    ours = [h for h in hooks if h.get("connection_type") == "zenmigrate"]
    assert ours, hooks
    assert ours[0]["class"] == "airflow_provider_zenmigrate.hooks.zenmigrate.ZenMigrateHook"
    assert ours[0]["package_name"] == "airflow-provider-zenmigrate"
    links, stderr = _providers(tmp_path, "links")
    assert "airflow_provider_zenmigrate.links.BackupLink" in {
        link["extra_link_class_name"] for link in links
    }
    assert "zenmigrate" not in stderr.lower(), stderr
