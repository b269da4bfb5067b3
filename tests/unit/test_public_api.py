"""The package root is the public API: what it names, that importing it stays cheap, that the
types ship, and that the seed's ``MigrationUtils`` signature and its shorter form both work."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.engine import URL

import airflow_provider_zenmigrate as api
from airflow_provider_zenmigrate.core import alembic, catalog, errors, utils
from tests.support.paths import REPO

LAZY = {
    "Alembic": alembic.Alembic,
    "MigrationUtils": utils.MigrationUtils,
    "list_backups": catalog.list_backups,
    "prune_backups": catalog.prune_backups,
    "verify_backup": catalog.verify_backup,
}


def _error_types(module: object) -> dict[str, type[BaseException]]:
    """The exception classes a module defines (not those it imports)."""
    return {
        name: value
        for name, value in vars(module).items()
        if inspect.isclass(value)
        and issubclass(value, BaseException)
        and value.__module__ == getattr(module, "__name__", None)
    }


def test_every_public_name_is_the_core_object() -> None:
    exported = set(api.__all__) - {"__version__"}
    assert exported == set(LAZY) | set(_error_types(errors))
    for name, expected in {**LAZY, **_error_types(errors)}.items():
        assert getattr(api, name) is expected, name
        namespace: dict[str, object] = {}
        exec(f"from airflow_provider_zenmigrate import {name}", namespace)
        assert namespace[name] is expected, name
    assert isinstance(api.__version__, str) and api.__version__
    assert set(api.__all__) <= set(dir(api))
    with pytest.raises(AttributeError, match="no attribute 'backup_everything'"):
        api.backup_everything  # noqa: B018 - the attribute access is the test


def test_errors_live_in_one_module() -> None:
    """Every exception type of the package is defined in core/errors.py, but the hook's
    ConnectionNotDefined: it subclasses an Airflow exception, and core/ never imports
    Airflow."""
    elsewhere: dict[str, str] = {}
    for info in pkgutil.walk_packages(api.__path__, prefix=f"{api.__name__}."):
        if info.name.endswith(".__main__"):  # runs the command when imported
            continue
        module = importlib.import_module(info.name)
        if module is errors:
            continue
        for name in _error_types(module):
            elsewhere[name] = info.name
    assert elsewhere == {"ConnectionNotDefined": "airflow_provider_zenmigrate.hooks.zenmigrate"}


def test_importing_the_package_loads_no_heavy_dependency() -> None:
    """Airflow imports the package to discover the provider, the CLI at every start: the
    public names that need SQLAlchemy, Alembic or pydantic load them on first use only."""
    heavy = ("sqlalchemy", "alembic", "pydantic", "airflow", "smart_open", "psycopg", "pymysql")
    script = (
        "import sys, airflow_provider_zenmigrate as api\n"
        f"heavy = {heavy!r}\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
        "api.MigrationUtils\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120
    )
    at_import, after_use = result.stdout.splitlines()
    assert at_import == "[]"
    assert "sqlalchemy" in after_use and "pydantic" in after_use


def test_type_information_ships() -> None:
    """PEP 561: py.typed sits in the package and pyproject.toml puts it in the wheel."""
    assert (Path(api.__file__).parent / "py.typed").is_file()
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    package_data = pyproject["tool"]["setuptools"]["package-data"]
    assert "py.typed" in package_data["airflow_provider_zenmigrate"]


@pytest.mark.parametrize("seed_signature", [True, False], ids=["seed-keywords", "url-only"])
def test_connect_and_engine_args_may_be_omitted(tmp_path: Path, seed_signature: bool) -> None:
    url = URL.create("sqlite", database=str(tmp_path / "app.db"))
    if seed_signature:
        mu = api.MigrationUtils(url=url, connect_args={"timeout": 7}, engine_args={"echo": False})
        assert (mu.connect_args, mu.engine_args) == ({"timeout": 7}, {"echo": False})
    else:
        mu = api.MigrationUtils(url=url)
        assert (mu.connect_args, mu.engine_args) == ({}, {})
        assert mu.connect_args is not api.MigrationUtils(url=url).connect_args  # not shared
    with mu:
        mu.create_database()
        with mu.engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE t (id INTEGER PRIMARY KEY)")
        assert mu.database_exists()
        assert sa_inspect(mu.engine).get_table_names() == ["t"]
    # The seed's signature: keyword-only url, connect_args and engine_args.
    parameters = inspect.signature(api.MigrationUtils).parameters
    for name in ("url", "connect_args", "engine_args"):
        assert parameters[name].kind is inspect.Parameter.KEYWORD_ONLY
    assert parameters["url"].default is inspect.Parameter.empty
