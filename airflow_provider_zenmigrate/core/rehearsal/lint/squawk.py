"""squawk (``pip install squawk-cli``) on a revision's offline SQL, for PostgreSQL.

squawk reads the SQL on stdin and reports in JSON, one object per finding, with the 0-based
line and column where it starts; we map that position back to the statement, so a finding
names the statement it is about. No rule is excluded by default (``require-lock-timeout``
and ``require-statement-timeout`` are real advice for production), but findings on the
statements Alembic adds to keep its version table (``CREATE TABLE alembic_version``,
``UPDATE alembic_version``...) are dropped: they are not the migration's.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from ...errors import RehearsalError, UnsafeDumpError
from ...sql_lexer import NAME_KINDS, POSTGRESQL, lex, statements
from ..model import LintFinding
from .base import Linter, shorten

#: How long squawk may take on one revision's SQL.
TIMEOUT = 30.0
INSTALL_HINT = "squawk is not installed (pip install 'airflow-provider-zenmigrate[rehearse]')"


def find_squawk() -> str | None:
    """The squawk binary: on PATH, or beside this Python (a virtualenv not activated)."""
    found = shutil.which("squawk")
    if found:
        return found
    beside = Path(sys.executable).parent / "squawk"
    return str(beside) if beside.is_file() else None


class _Statement:
    """One statement of the SQL: where it starts and ends, its text, the names it uses."""

    def __init__(self, start: int, end: int, text: str, names: set[str]) -> None:
        self.start, self.end, self.text, self.names = start, end, text, names


def split_statements(sql: str) -> list[_Statement]:
    """The statements of ``sql`` with their offsets, as PostgreSQL lexes them (a ``;``
    inside a string, a comment or a dollar-quoted body does not end one)."""
    try:
        tokens = lex(sql, POSTGRESQL)
    except UnsafeDumpError:
        return [_Statement(0, len(sql), sql.strip(), set())]
    out: list[_Statement] = []
    start = 0
    for piece in statements(tokens):
        end = start + sum(len(token.text) for token in piece)
        first = next((i for i, t in enumerate(piece) if t.kind not in ("space", "comment")), None)
        if first is not None:
            text = "".join(token.text for token in piece[first:]).strip()
            names = {token.unquoted().lower() for token in piece if token.kind in NAME_KINDS}
            out.append(_Statement(start, end, text, names))
        start = end
    return out


def _offset(sql: str, line: int, column: int) -> int:
    """The offset of squawk's 0-based (line, column) in ``sql``."""
    lines = sql.split("\n")
    line = max(0, min(line, len(lines) - 1))
    return sum(len(x) + 1 for x in lines[:line]) + max(column, 0)


class SquawkLinter(Linter):
    """squawk's rules on each revision's offline SQL (see the module docstring)."""

    def __init__(
        self,
        binary: str | None = None,
        *,
        version_table: str = "alembic_version",
        pg_version: str | None = None,
    ) -> None:
        self.binary = binary or find_squawk()
        self.version_table = version_table.lower()
        #: Passed as ``--pg-version`` (rules such as adding-field-with-default depend on it).
        self.pg_version = pg_version
        self.name = self._version() if self.binary else "squawk"

    def _version(self) -> str:
        """``squawk 2.70.0``, as ``squawk --version`` says it."""
        assert self.binary
        try:
            done = subprocess.run(
                [self.binary, "--version"], capture_output=True, text=True, timeout=TIMEOUT
            )
        except (OSError, subprocess.TimeoutExpired):
            return "squawk"
        return done.stdout.strip() or "squawk"

    def unavailable(self) -> str | None:
        return None if self.binary else INSTALL_HINT

    def lint(self, sql: str) -> list[LintFinding]:
        """The findings on ``sql``; squawk's non-zero exit on findings is not an error."""
        if not self.binary:
            raise RehearsalError(INSTALL_HINT)
        command = [self.binary, "--reporter", "json"]
        if self.pg_version:
            command.append(f"--pg-version={self.pg_version}")
        # A scratch working directory: a .squawk.toml wherever we happen to run must not
        # change the rules.
        with tempfile.TemporaryDirectory(prefix="zenmigrate-squawk-") as cwd:
            try:
                done = subprocess.run(
                    command, input=sql, capture_output=True, text=True, timeout=TIMEOUT, cwd=cwd
                )
            except subprocess.TimeoutExpired as exc:
                raise RehearsalError(f"squawk did not finish within {TIMEOUT:.0f} s") from exc
            except OSError as exc:
                raise RehearsalError(f"squawk could not start: {exc}") from exc
        raw = self._parse(done)
        statements = split_statements(sql)
        findings = []
        for item in raw:
            statement = self._statement_at(sql, statements, item)
            if statement is not None and self.version_table in statement.names:
                continue  # Alembic's bookkeeping, not the migration
            message = str(item.get("message") or "").strip()
            if item.get("help"):
                message = f"{message.rstrip('.')}. {str(item['help']).strip()}"
            findings.append(
                LintFinding(
                    rule=str(item.get("rule_name") or "unknown"),
                    message=message,
                    level=str(item.get("level") or "warning").lower(),
                    statement=shorten(statement.text) if statement else "",
                    linter="squawk",
                )
            )
        return findings

    def _parse(self, done: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
        """squawk's JSON list; a crash (no JSON) raises with the first line it printed."""
        out = done.stdout.strip()
        if not out and done.returncode == 0:
            return []
        try:
            data = json.loads(out)
        except ValueError:
            said = (done.stderr.strip() or out or "no output").splitlines()[0]
            raise RehearsalError(f"squawk failed (exit code {done.returncode}): {said}") from None
        if not isinstance(data, list):
            raise RehearsalError(f"squawk printed unexpected JSON: {shorten(out)}")
        return [x for x in data if isinstance(x, dict)]

    @staticmethod
    def _statement_at(
        sql: str, statements: list[_Statement], item: dict[str, Any]
    ) -> _Statement | None:
        """The statement holding the finding's start, if squawk gave a position."""
        line, column = item.get("line"), item.get("column")
        if not isinstance(line, int) or not isinstance(column, int):
            return None
        at = _offset(sql, line, column)
        for statement in statements:
            if statement.start <= at < statement.end:
                return statement
        return statements[-1] if statements and at >= statements[-1].start else None
