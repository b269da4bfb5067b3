"""The PostgreSQL dialect package imports its driver only where it needs it.

Checking a dump's statements (a dry run, ``verify``, the restore's rule pass on a machine
without psycopg) must not import psycopg: the registry points at ``postgresql.statements``
and the package's ``__init__`` exports lazily. Each check runs in a fresh interpreter, where
nothing has imported psycopg yet.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

PACKAGE = "airflow_provider_zenmigrate.core.dialects.postgresql"


def _modules_after(code: str) -> set[str]:
    """The modules a fresh interpreter holds after running ``code``."""
    script = textwrap.dedent(code) + "\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))\n"
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    return set(json.loads(done.stdout.strip().splitlines()[-1]))


def _drivers(modules: set[str]) -> set[str]:
    return {m for m in modules if m == "psycopg" or m.startswith("psycopg.")}


def test_statement_checks_do_not_import_psycopg() -> None:
    modules = _modules_after(
        f"""
        from airflow_provider_zenmigrate.core.dialects import statement_rules
        rules = statement_rules("postgresql", {{"dialect": "postgresql", "schemas": ["public"]}})
        assert type(rules).__module__ == "{PACKAGE}.statements", type(rules).__module__
        """
    )
    assert f"{PACKAGE}.statements" in modules
    assert _drivers(modules) == set()


def test_importing_the_package_imports_no_driver() -> None:
    modules = _modules_after(f"import {PACKAGE}")
    assert PACKAGE in modules
    assert _drivers(modules) == set()
    assert f"{PACKAGE}.admin" not in modules


def test_exports_load_their_modules_on_first_use() -> None:
    modules = _modules_after(
        f"""
        from {PACKAGE} import PostgreSQLOps, PostgreSQLBackupReader, PostgreSQLRestoreWriter
        from {PACKAGE} import statement_rules_for
        assert PostgreSQLOps.__module__ == "{PACKAGE}.admin"
        assert PostgreSQLBackupReader.__module__ == "{PACKAGE}.reader"
        assert PostgreSQLRestoreWriter.__module__ == "{PACKAGE}.writer"
        assert statement_rules_for.__module__ == "{PACKAGE}.statements"
        """
    )
    assert "psycopg" in modules  # the reader and writer do need the driver


def test_an_unknown_name_is_an_attribute_error() -> None:
    modules = _modules_after(
        f"""
        import {PACKAGE} as package
        try:
            package.no_such_name
        except AttributeError as error:
            assert "no_such_name" in str(error)
        else:
            raise SystemExit("no AttributeError")
        """
    )
    assert _drivers(modules) == set()
