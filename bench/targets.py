"""The targets the tools' part is held to, from its medians: issue 7's first ones, issue 26's
cost of encryption, and issue 27's second round ((a) and (c) closer to the C tools, (g) a real
application's database, and the time per table of (c)).

Every figure is a ratio of medians taken in the same run (see :mod:`bench.compare`).
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable

from bench.measure import Cell, Target, median

#: Our one-stream rows, as :mod:`bench.compare` names them.
OURS, ENCRYPTED = "ours", "ours encrypted"
MARIADB_TOOL, PG_TOOL = "mariadb-dump / mariadb", "pg_dump / psql"

Cells = dict[tuple[str, str], Cell]


class _Medians:
    """Median seconds (or another attribute) of one cell, and ratios of two."""

    def __init__(self, cells: Cells) -> None:
        self.cells = cells

    def of(self, ds: str, tool: str, what: str, attr: str = "seconds") -> float | None:
        cell = self.cells.get((ds, tool))
        return median(getattr(cell, what), attr) if cell else None

    def ratio(self, a: float | None, b: float | None) -> float | None:
        return a / b if a is not None and b else None

    def versus(self, ds: str, tool: str, what: str) -> float | None:
        """Ours over ``tool`` on ``ds``."""
        return self.ratio(self.of(ds, OURS, what), self.of(ds, tool, what))

    def wrong(self, ds: str, *tools: str) -> bool:
        return any(self.cells[(ds, t)].wrong for t in tools if (ds, t) in self.cells)


def _reference(dialect: str) -> str:
    return MARIADB_TOOL if dialect == "mysql" else PG_TOOL


def first_round(dialect: str, rows: dict[str, int], cells: Cells) -> list[Target]:
    """Issue 7's targets (and issue 26's cost of encryption)."""
    m = _Medians(cells)
    found: list[Target] = []
    if "a" in rows:
        if dialect == "mysql":
            found += [
                Target(
                    "(a) backup, file: ours / mariadb-dump --single-transaction",
                    m.versus("a", MARIADB_TOOL, "backup"),
                    2.0,
                ),
                Target(
                    "(a) backup, .zst: ours / mariadb-dump | zstd",
                    m.ratio(
                        m.of("a", "ours .zst", "backup"), m.of("a", "mariadb-dump | zstd", "backup")
                    ),
                    2.0,
                ),
                Target(
                    "(a) restore: ours / mariadb < dump.sql",
                    m.versus("a", MARIADB_TOOL, "restore"),
                    1.0,
                ),
            ]
        else:
            found += [
                Target("(a) backup: ours / pg_dump", m.versus("a", PG_TOOL, "backup"), 2.5),
                Target(
                    "(a) restore: ours / psql < dump.sql", m.versus("a", PG_TOOL, "restore"), 1.5
                ),
            ]
        for what in ("backup", "restore"):
            found.append(
                Target(
                    f"(a) {what}: ours encrypted / ours (encryption's cost)",
                    m.ratio(m.of("a", ENCRYPTED, what), m.of("a", OURS, what)),
                    1.1,
                )
            )
    for what in ("backup", "restore"):
        if "b" in rows:
            peak_b = m.of("b", OURS, what, "peak_mb")
            found.append(Target(f"(b) {what}: our peak RSS", peak_b, 200, " MB"))
            if "a" in rows:
                found.append(
                    Target(
                        f"(b)/(a) {what}: our peak RSS",
                        m.ratio(peak_b, m.of("a", OURS, what, "peak_mb")),
                        1.2,
                    )
                )
                found.append(
                    Target(
                        f"(b)/(a) {what}: our time (linear scaling)",
                        m.ratio(m.of("b", OURS, what), m.of("a", OURS, what)),
                        2.2,
                    )
                )
        if "c" in rows and "a" in rows:
            per_c = m.ratio(m.of("c", OURS, what), rows["c"])
            per_a = m.ratio(m.of("a", OURS, what), rows["a"])
            found.append(Target(f"(c)/(a) {what}: our time per row", m.ratio(per_c, per_a), 3.0))
    return found


#: Issue 27's limits: (dataset, backup, restore) over the dialect's standard tool.
ROUND_TWO = {
    "mysql": (("a", 1.2, 0.6), ("c", 1.5, 1.0), ("g", 1.5, 1.5)),
    "postgresql": (("a", 1.3, 1.0), ("c", 2.0, 1.2), ("g", 1.5, 1.5)),
}


def second_round(dialect: str, rows: dict[str, int], cells: Cells) -> list[Target]:
    """Issue 27's targets: ours over ``mariadb-dump``/``mariadb`` or ``pg_dump``/``psql``."""
    m = _Medians(cells)
    tool = _reference(dialect)
    found = []
    for ds, backup, restore in ROUND_TWO[dialect]:
        if ds not in rows:
            continue
        # Ours restoring wrong data fails the target; the tool's, it is said beside it.
        theirs = " (its restore WRONG)" if m.wrong(ds, tool) else ""
        for what, limit in (("backup", backup), ("restore", restore)):
            name = tool.split(" / ")[what == "restore"]
            found.append(
                Target(
                    f"({ds}) {what}: ours / {name}{theirs if what == 'restore' else ''}",
                    m.versus(ds, tool, what),
                    limit,
                    failed=m.wrong(ds, OURS),
                )
            )
    return found


def per_table(rows: dict[str, int], tables: int, cells: Cells, names: Iterable[str]) -> list[str]:
    """Each tool's time per table on (c), backup and restore (issue 27, point 3)."""
    if "c" not in rows or tables <= 0:
        return []
    m = _Medians(cells)
    shown = []
    for name in names:
        parts = []
        for what in ("backup", "restore"):
            seconds = m.of("c", name, what)
            if seconds is not None:
                parts.append(f"{what} {1000 * seconds / tables:.1f}")
        if parts:
            shown.append(f"{name}: {', '.join(parts)}")
    return [f"  (c) ms per table (whole command / {tables} tables): {'; '.join(shown)}"]


def tool_scaling(names: Iterable[str], cells: Cells) -> list[str]:
    """Every tool's (b)/(a) time, ours included: what the server's own scaling is on the
    day, next to the linear-scaling target."""
    m = _Medians(cells)
    lines = []
    names = list(names)
    for what in ("backup", "restore"):
        shown = []
        for name in names:
            ta, tb = m.of("a", name, what), m.of("b", name, what)
            if ta and tb:
                shown.append(f"{name} {tb / ta:.2f}x")
        if shown:
            lines.append(f"  (b)/(a) {what} time, every tool: {'; '.join(shown)}")
    return lines


def startup_share(cells: Cells) -> list[str]:
    """How much of our whole-command times is interpreter start-up and imports."""
    startup = [
        s.seconds - s.inner
        for (_, name), cell in cells.items()
        if name == OURS
        for s in cell.backup + cell.restore
        if s.inner is not None
    ]
    if not startup:
        return []
    return [
        f"  (our times include {statistics.median(startup):.2f}s of interpreter "
        "start-up and imports)"
    ]
