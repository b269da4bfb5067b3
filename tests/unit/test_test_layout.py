"""The test tree keeps its shape: tests import shared helpers from tests/support, never from
another test module or from a conftest, and the unit tier imports nothing that reaches a
server or an object store (so ``make unit`` runs anywhere)."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent
#: Helpers that reach a database server or start an object store.
SERVER_HELPERS = {"tests.support.servers", "tests.support.object_stores", "tests.support.hostile"}


def _imports(path: Path) -> set[str]:
    """Every ``tests.*`` module ``path`` imports (``from tests.x import y`` gives both
    ``tests.x`` and ``tests.x.y``: y may be a module)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("tests"):
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("tests"))
    return found


def _python_files() -> list[Path]:
    return sorted(p for p in TESTS.rglob("*.py") if "fixtures" not in p.relative_to(TESTS).parts)


def test_no_module_imports_a_test_module_or_a_conftest() -> None:
    offenders = {
        f"{path.relative_to(TESTS)} imports {name}"
        for path in _python_files()
        for name in _imports(path)
        if name.rsplit(".", 1)[-1].startswith("test_") or name.endswith("conftest")
    }
    assert not offenders, sorted(offenders)


def test_the_unit_tier_imports_no_server_helper() -> None:
    unit = TESTS / "unit"
    offenders = {
        f"{path.relative_to(TESTS)} imports {name}"
        for path in sorted(unit.rglob("*.py"))
        for name in _imports(path) & SERVER_HELPERS
    }
    assert not offenders, sorted(offenders)
    assert len(list(unit.rglob("test_*.py"))) >= 10  # the walk did find the unit tier
