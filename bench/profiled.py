"""One command of ours run as ``python -m MODULE ARGS...`` under pyinstrument, summarised.

Usage: python -m bench.profiled OUT.json MODULE [ARGS...]

The profiler starts before the module is imported, so the summary covers what a user waits
for after the interpreter is up: imports, connecting, the catalog, the data. It is kept
free of heavy imports of its own (only pyinstrument) for that reason. OUT.json receives
``{"seconds": wall, "groups": {group: seconds}, "functions": [[name, seconds], ...]}``:
where each sample's time went (see :func:`group_of`), and the functions with the most time
of their own.
"""

from __future__ import annotations

import json
import runpy
import sys
import time
from collections import defaultdict
from collections.abc import Iterator

from pyinstrument import Profiler
from pyinstrument.frame import Frame

#: Packages named as they are; the rest of site-packages is "other libraries".
LIBRARIES = ("sqlalchemy", "pydantic", "pydantic_core", "pymysql", "psycopg", "smart_open")
#: Where a sample waiting on the network or a disk stops (stdlib and driver leaves).
WAITING = ("socket.py", "ssl.py", "selectors.py", "select", "recv", "send", "wait")
OURS = "airflow_provider_zenmigrate/"


def _package(path: str) -> str | None:
    """``ours: core.dialects.mysql``, a library's name, or None (stdlib, builtins)."""
    if OURS in path:
        module = path.split(OURS, 1)[1].rsplit("/", 1)[0].replace("/", ".")
        if not module or module.endswith(".py"):
            module = "(package root)"
        return f"ours: {module}"
    if "site-packages/" in path:
        top = path.split("site-packages/", 1)[1].split("/", 1)[0]
        return top if top in LIBRARIES else "other libraries"
    return None


def group_of(stack: list[Frame]) -> str:
    """A sample's group, from its stack (outermost first): time under the import machinery
    by whose module body runs (the innermost one; compiling a module from source counts
    as importing it), the rest by the innermost frame of ours or of a named library,
    "waiting" added when the leaf is I/O."""
    if any("importlib._bootstrap" in (frame.file_path or "") for frame in stack):
        body = next((f for f in reversed(stack) if f.function == "<module>" and f.file_path), None)
        owner = _package(body.file_path or "") if body else None
        return f"import {owner.removeprefix('ours: ') if owner else 'stdlib'}"
    owner = next(
        (p for f in reversed(stack) if (p := _package(f.file_path or "")) is not None), "stdlib"
    )
    leaf = stack[-1]
    if any(w in (leaf.file_path or "") or w in (leaf.function or "") for w in WAITING):
        return f"{owner}, waiting (I/O)"
    return owner


def _walk(frame: Frame, stack: list[Frame]) -> Iterator[tuple[list[Frame], float]]:
    here = [*stack, frame]
    own = frame.time - sum(child.time for child in frame.children)
    if own > 0:
        yield here, own
    for child in frame.children:
        yield from _walk(child, here)


def summarise(root: Frame) -> tuple[dict[str, float], dict[str, float]]:
    """Seconds by group, and by function (its own time)."""
    groups: dict[str, float] = defaultdict(float)
    functions: dict[str, float] = defaultdict(float)
    for stack, seconds in _walk(root, []):
        real = [f for f in stack if not f.is_synthetic]
        if not real:
            continue
        groups[group_of(real)] += seconds
        leaf = real[-1]
        where = _package(leaf.file_path or "") or (leaf.file_path_short or "builtin")
        functions[f"{leaf.function} ({where})"] += seconds
    return groups, functions


def main() -> None:
    out, module, *args = sys.argv[1:]
    sys.argv = [module, *args]
    profiler = Profiler(interval=0.0005)
    started = time.perf_counter()
    profiler.start()
    code = 0
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 0
    finally:
        profiler.stop()
    seconds = time.perf_counter() - started
    root = profiler.last_session.root_frame() if profiler.last_session else None
    groups, functions = summarise(root) if root is not None else ({}, {})
    summary = {
        "seconds": seconds,
        "code": code,
        "groups": dict(sorted(groups.items(), key=lambda item: -item[1])),
        "functions": sorted(functions.items(), key=lambda item: -item[1])[:12],
    }
    with open(out, "w") as f:
        json.dump(summary, f)
    sys.exit(code)


if __name__ == "__main__":
    main()
