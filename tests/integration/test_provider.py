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


def test_airflow_providers_list_shows_it_without_warnings(tmp_path: Path) -> None:
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    result = subprocess.run(
        [str(AIRFLOW), "providers", "list", "--output", "json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=True,
    )
    providers = {p["package_name"]: p for p in json.loads(result.stdout)}
    assert "airflow-provider-zenmigrate" in providers
    assert "warning" not in result.stderr.lower(), result.stderr
    assert "zenmigrate" not in result.stderr.lower(), result.stderr
