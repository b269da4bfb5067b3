"""What the engine and the dialect modules exchange: tables, columns, other objects."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: Value codecs a column may declare. The dump stores every value through its column's
#: codec, so the reader never guesses a type from a value.
#:
#: - ``native``: JSON-native as is (int, str, bool, null)
#: - ``bytes``: base64 of the raw bytes
#: - ``decimal``: the exact decimal text ("12.3400")
#: - ``float``: ``repr`` of the float as a string; "NaN", "Infinity", "-Infinity"
#: - ``date`` / ``time`` / ``datetime``: ISO 8601 with full fractional precision (and the
#:   UTC offset for aware values)
#: - ``dynamic``: for columns without a fixed type (SQLite): int, str and null as is, other
#:   values tagged: ``{"float": "<repr>"}``, ``{"bytes": "<base64>"}``
#: - ``text``: the server's own text form of the value (for example a PostgreSQL array,
#:   interval or range, a MySQL TIME beyond 24h); loaded back through the server's parser
CODECS = frozenset(
    {"native", "dynamic", "bytes", "decimal", "float", "date", "time", "datetime", "text"}
)


@dataclass(frozen=True)
class ColumnSpec:
    name: str
    codec: str
    #: The column's declared type as the server spells it (informational).
    type: str = ""


@dataclass(frozen=True)
class TableSpec:
    """A base table: its CREATE statement and how its rows are read and written."""

    name: str
    create_stmt: str
    columns: tuple[ColumnSpec, ...]
    #: Columns that order rows for keyset reads (primary key or a NOT NULL unique key);
    #: empty when the table has none.
    key: tuple[str, ...] = ()
    #: Dialect-specific extras the restore needs (for example the AUTO_INCREMENT position).
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ObjectSpec:
    """Anything that is not a base table: views, triggers, routines, sequences, types,
    indexes or constraints that are created after the data, ...

    ``object_type`` is one of the dialect's ``object_types``; ``table`` names the table the
    object belongs to, where it belongs to one (triggers, indexes, constraints).
    """

    object_type: str
    name: str
    create_stmt: str
    table: str | None = None
    #: Dialect-specific extras (PostgreSQL: the object's schema, owner, privileges, comment).
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class BackupScope:
    """Which schemas a backup covers, where a database has several (PostgreSQL).

    Empty ``schemas`` means every schema but the system ones, as ``pg_dump`` does;
    ``exclude_schemas`` then leaves some out. Backends with one namespace per database refuse
    a scope that names any.
    """

    schemas: tuple[str, ...] = ()
    exclude_schemas: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.schemas or self.exclude_schemas)


@dataclass(frozen=True)
class RestoreOptions:
    """How a restore treats what a dump says beyond tables and rows.

    - ``no_owner``: every object is left to the restoring role (``pg_restore --no-owner``).
    - ``no_privileges``: no GRANT or REVOKE is restored (``pg_restore --no-privileges``).
    - ``skip_missing_roles``: owners and grants naming roles the target lacks are left out,
      each with a warning; without it such a dump is refused before anything changes.
    - ``exclude_schemas``: schemas the restore must leave alone; a dump holding one is
      refused.
    """

    no_owner: bool = False
    no_privileges: bool = False
    skip_missing_roles: bool = False
    exclude_schemas: tuple[str, ...] = ()
