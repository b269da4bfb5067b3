"""What a rehearsal finds, as plain data: JSON for XCom and the stored report, and the gate.

Every class round-trips through :meth:`to_dict` / ``from_dict`` so a stored report can be
read back (the CLI's ``--json``, the operator's XCom, the ``.rehearsal.json`` beside a backup).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

#: What ``fail_on`` may name: a revision that failed, schema drift, lint findings, a
#: downgrade that failed or did not give back the original schema.
GATES: tuple[str, ...] = ("error", "drift", "lint", "downgrade")

RevisionStatus = Literal["ok", "failed", "not run"]


@dataclass
class LockSeen:
    """A lock the migration held on a table, as the server reported it."""

    table: str
    #: The server's own name for the mode (``AccessExclusiveLock``, ``MDL_EXCLUSIVE``...).
    mode: str
    #: What it blocks for other sessions: ``"reads and writes"``, ``"writes"`` or ``"nothing"``.
    blocks: str
    #: Higher is stronger; comparable only within one server kind.
    strength: int = 0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LockSeen:
        return cls(**data)


@dataclass
class LintFinding:
    """One lint finding on a revision's offline SQL."""

    #: The linter's rule name (squawk's ``adding-required-field``, ours ``table-rebuild``...).
    rule: str
    message: str
    #: ``"error"`` or ``"warning"``, as the linter grades it.
    level: str = "warning"
    #: The statement it is about, shortened for the report.
    statement: str = ""
    #: ``"squawk"`` or ``"zenmigrate"``.
    linter: str = "zenmigrate"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LintFinding:
        return cls(**data)


@dataclass
class SchemaDifference:
    """One way two schemas differ (drift, or a downgrade that did not give the schema back)."""

    #: ``table``, ``column``, ``type``, ``nullable``, ``default``, ``index``, ``constraint``
    #: or ``view``.
    kind: str
    #: What differs, qualified: ``"orders"``, ``"orders.total"``, ``"orders.ix_orders_day"``.
    name: str
    #: How each side has it; ``None`` where the side lacks it.
    actual: str | None
    expected: str | None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SchemaDifference:
        return cls(**data)

    def __str__(self) -> str:
        if self.actual is None:
            return f"{self.kind} {self.name}: missing (expected {self.expected})"
        if self.expected is None:
            return f"{self.kind} {self.name}: unexpected ({self.actual})"
        return f"{self.kind} {self.name}: {self.actual} (expected {self.expected})"


@dataclass
class RevisionResult:
    """One pending revision, as it ran on the scratch copy."""

    revision: str
    description: str = ""
    status: RevisionStatus = "not run"
    seconds: float | None = None
    #: The database error, one line, when the revision failed.
    error: str | None = None
    #: Tables whose storage was rewritten or rebuilt (measured, see the probes).
    rewritten: list[str] = field(default_factory=list)
    #: The strongest lock seen, and every lock seen.
    strongest_lock: LockSeen | None = None
    locks: list[LockSeen] = field(default_factory=list)
    #: The upgrade's offline SQL (Alembic's ``--sql``); ``None`` with ``offline_error`` when
    #: the scripts cannot render it (a migration that reads the database, for example).
    offline_sql: str | None = None
    offline_error: str | None = None
    lint: list[LintFinding] = field(default_factory=list)
    #: Predicted seconds on production (see :mod:`.estimate`).
    estimated_seconds: float | None = None

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["strongest_lock"] = self.strongest_lock.to_dict() if self.strongest_lock else None
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RevisionResult:
        data = dict(data)
        lock = data.pop("strongest_lock", None)
        locks = [LockSeen.from_dict(x) for x in data.pop("locks", [])]
        lint = [LintFinding.from_dict(x) for x in data.pop("lint", [])]
        return cls(
            **data,
            strongest_lock=LockSeen.from_dict(lock) if lock else None,
            locks=locks,
            lint=lint,
        )


@dataclass
class DowngradeCheck:
    """The way back: downgrading the copy to the starting revision after the upgrade."""

    ok: bool = False
    #: The revision whose downgrade raised, and the error.
    failed_revision: str | None = None
    error: str | None = None
    seconds: float | None = None
    #: Whether the schema after the downgrade equals the one before the upgrade.
    schema_equal: bool | None = None
    differences: list[SchemaDifference] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DowngradeCheck:
        data = dict(data)
        diffs = [SchemaDifference.from_dict(x) for x in data.pop("differences", [])]
        return cls(**data, differences=diffs)


@dataclass
class DriftCheck:
    """Production's schema against the one its scripts give at its recorded revision."""

    #: The revision(s) production records, which the reference database was built to.
    revisions: list[str] = field(default_factory=list)
    differences: list[SchemaDifference] = field(default_factory=list)
    #: Set when the reference could not be built (a revision failing on an empty database).
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DriftCheck:
        data = dict(data)
        diffs = [SchemaDifference.from_dict(x) for x in data.pop("differences", [])]
        return cls(**data, differences=diffs)


@dataclass
class RehearsalReport:
    """Everything one rehearsal found; :attr:`reason` is set when its gate failed."""

    #: Production, password masked; its dialect (``mysql``, ``postgresql``, ``sqlite``).
    database: str
    dialect: str
    #: Where the copy was made (server URL, masked) and its scratch name.
    scratch_server: str = ""
    scratch_name: str = ""
    #: ``"backup"`` (restored from ``source_uri``) or ``"fresh copy"``.
    copied_from: str = ""
    source_uri: str | None = None
    started_at: str = ""
    from_revisions: list[str] = field(default_factory=list)
    to_revisions: list[str] = field(default_factory=list)
    revisions: list[RevisionResult] = field(default_factory=list)
    drift: DriftCheck | None = None
    downgrade: DowngradeCheck | None = None
    #: Seconds to make the copy, and for the whole rehearsal.
    copy_seconds: float | None = None
    #: Seconds to settle the copy before timing (PostgreSQL: VACUUM (ANALYZE)).
    settle_seconds: float | None = None
    total_seconds: float | None = None
    #: The predicted duration of the upgrade on production, and how it was worked out.
    estimated_seconds: float | None = None
    estimate_basis: str = ""
    #: What the lock and rewrite probes of this server can and cannot see.
    observability: str = ""
    #: Whether squawk (PostgreSQL) or the built-in rules (MySQL) linted, and why not.
    linter: str = ""
    fail_on: list[str] = field(default_factory=lambda: ["error"])
    max_duration: float | None = None
    #: One line naming the revision and the error when the gate failed; ``None`` if it passed.
    reason: str | None = None
    #: Where the report, its Markdown and the offline SQL were stored, when they were.
    stored: dict[str, str] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.reason is None

    @property
    def failed_revision(self) -> RevisionResult | None:
        return next((r for r in self.revisions if r.status == "failed"), None)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["revisions"] = [r.to_dict() for r in self.revisions]
        data["drift"] = self.drift.to_dict() if self.drift else None
        data["downgrade"] = self.downgrade.to_dict() if self.downgrade else None
        data["passed"] = self.passed
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RehearsalReport:
        data = dict(data)
        data.pop("passed", None)
        revisions = [RevisionResult.from_dict(r) for r in data.pop("revisions", [])]
        drift = data.pop("drift", None)
        downgrade = data.pop("downgrade", None)
        return cls(
            **data,
            revisions=revisions,
            drift=DriftCheck.from_dict(drift) if drift else None,
            downgrade=DowngradeCheck.from_dict(downgrade) if downgrade else None,
        )
