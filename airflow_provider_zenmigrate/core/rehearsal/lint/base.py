"""A linter of a revision's offline SQL, for one server kind."""

from __future__ import annotations

from abc import ABC, abstractmethod

from ..model import LintFinding


class Linter(ABC):
    #: Shown in the report: ``"squawk 2.70.0"``, ``"zenmigrate MySQL rules"``.
    name: str = ""

    def unavailable(self) -> str | None:
        """Why this linter cannot run here (for example squawk not installed), or None."""
        return None

    @abstractmethod
    def lint(self, sql: str) -> list[LintFinding]:
        """The findings on one revision's offline SQL (several statements)."""


#: How long a statement may be in a finding, by default.
STATEMENT_CHARS = 120


def shorten(statement: str, limit: int = STATEMENT_CHARS) -> str:
    """A statement for a finding: one line of at most ``limit`` characters."""
    flat = " ".join(statement.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."
