"""Rehearse a migration on a scratch copy of the database before production sees it.

:func:`rehearse` copies the database (from a backup, or fresh) to a scratch database, runs
every pending revision there one at a time and reports, per revision, its duration, the
tables it rewrote, the strongest lock it held, its offline SQL and lint findings; it also
compares production's schema with the one its scripts give (drift) and, if asked, runs the
way back. A gate (``fail_on``, ``max_duration``) turns the findings into a verdict.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .model import GATES, RehearsalReport

if TYPE_CHECKING:
    from .report import load_report, render_markdown, store_report
    from .runner import rehearse

__all__ = ["GATES", "RehearsalReport", "load_report", "rehearse", "render_markdown", "store_report"]

_LAZY = {
    "rehearse": "runner",
    "render_markdown": "report",
    "store_report": "report",
    "load_report": "report",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(name)
