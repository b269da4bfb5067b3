"""Running the ``zenmigrate`` console script as a subprocess, and reading what it says."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ZENMIGRATE = str(Path(sys.executable).parent / "zenmigrate")


def child_env(**extra: str) -> dict[str, str]:
    """This process's environment without passwords meant for the command, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZENMIGRATE_PASSWORD")}
    env.update(extra)
    return env


def zm(*args: str, stdin: str = "", **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [ZENMIGRATE, *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=child_env(**env),
        timeout=120,
        check=False,
    )


def zm_parallel(
    *commands: tuple[str, ...], stdin: str = "", **env: str
) -> list[subprocess.CompletedProcess[str]]:
    """Run independent invocations at once (each one pays the interpreter's start-up)."""
    processes = [
        subprocess.Popen(
            [ZENMIGRATE, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=child_env(**env),
        )
        for args in commands
    ]
    results = []
    for args, process in zip(commands, processes, strict=True):
        out, err = process.communicate(stdin, timeout=120)
        results.append(
            subprocess.CompletedProcess([ZENMIGRATE, *args], process.returncode, out, err)
        )
    return results


def parsed(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    """The JSON a successful ``--json`` invocation printed."""
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["ok"] is True
    return dict(data)


def zm_json(*args: str, **env: str) -> dict[str, Any]:
    return parsed(zm(*args, "--json", **env))


def assert_one_error_line(result: subprocess.CompletedProcess[str], *needles: str) -> str:
    """A failure is one ``zenmigrate: error:`` line holding every needle, no traceback."""
    errors = [line for line in result.stderr.splitlines() if line.startswith("zenmigrate: error:")]
    assert len(errors) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


def python_c(script: str, *argv: str, **env: str) -> str:
    """What ``python -c script argv...`` prints in a fresh interpreter (it must succeed):
    for what this process, having imported everything, cannot show."""
    done = subprocess.run(
        [sys.executable, "-c", script, *argv],
        capture_output=True,
        text=True,
        env=child_env(**env),
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


#: Runs the CLI's ``main(argv)``, then prints (after whatever the command printed) one JSON
#: line: its exit code and the modules of WATCHED (names, or top-level packages) it imported.
_IMPORTS_PROBE = """
import json, sys
from airflow_provider_zenmigrate.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
found = sorted(m for m in sys.modules if m in WATCHED or m.split(".")[0] in WATCHED)
print("\\nPROBE " + json.dumps({"code": code, "imported": found}))
"""


def cli_imports(
    watched: tuple[str, ...],
    *argv: str,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
) -> tuple[int, list[str], str]:
    """``zenmigrate *argv`` in a fresh interpreter: its exit code, which of ``watched`` it
    imported, and what it printed on stdout."""
    done = subprocess.run(
        [sys.executable, "-c", f"WATCHED = {watched!r}\n{_IMPORTS_PROBE}", *argv],
        capture_output=True,
        text=True,
        env=child_env(**(env or {})),
        cwd=cwd,
        timeout=120,
        check=False,
    )
    printed, _, probe = done.stdout.rpartition("\nPROBE ")
    assert probe, done.stderr
    found = json.loads(probe)
    return int(found["code"] or 0), list(found["imported"]), printed
