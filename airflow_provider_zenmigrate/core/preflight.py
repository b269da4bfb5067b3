"""Every rule a restore applies to a dump, in one pass that restores and dry runs share.

A dry run (``zenmigrate verify``, ``restore --dry-run``, :func:`.catalog.verify_backup`) is
only worth something if it never passes a dump the restore would refuse. So the restore
itself (:func:`.restore.restore_entries`) checks each record through :class:`DumpRules`
before running it, and the dry runs read the same records through the same class:

- the dump's integrity (:class:`.dump.reader.DumpVerifier`: header, trailer, digests);
  a dump without header and trailer only with ``allow_unverified``;
- routines (functions, procedures, aggregates, events) only with ``allow_routines`` or
  from a dump authenticated under the caller's key (:func:`.dump.safety.routines_trusted`);
- each table and object statement through the checks the dialect's restore writer calls
  (:func:`.dialects.statement_rules`): the target's dialect when there is a target, else the
  dialect the dump's header names (MySQL for a dump without header: ZenML's legacy
  format comes from MySQL only);
- with a target: the roles records name (PostgreSQL: as owner, grantee, policy or
  default-privilege role, as far as the restore's options keep them) and the extensions
  they create exist on the target server, or can be created there
  (:meth:`.dialects.base.DialectOps.missing_requirements`). A restore that skips what names
  a missing role (``skip_missing_roles``) is refused only for the roles it never skips.

What it cannot see is what only the server finds out by running a statement (a view on a
column that does not exist): a dry run passes those, the restore then fails and changes
nothing.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Engine

from .dialects import get_dialect, statement_rules
from .dialects.base import DialectOps, StatementRules
from .dump.model import ObjectSpec, RestoreOptions, TableSpec
from .dump.reader import DumpVerifier
from .dump.records import Record
from .dump.safety import check_routine_allowed, routines_trusted
from .errors import DumpError, DumpFormatError, MissingRequirementError, UnsupportedDatabaseError

#: The dialect of a dump without header: ZenML's legacy format comes from MySQL only.
LEGACY_DIALECT = "mysql"
#: Errors a malformed record's value raises in a check: the dump's fault, reported as such.
_MALFORMED = (ValueError, TypeError, AttributeError, KeyError, ArithmeticError)


def table_spec(record: Record) -> TableSpec:
    """The table a checked table record describes, as the restore builds it."""
    from .restore import table_spec as restore_table_spec  # the restore imports this module

    return restore_table_spec(record)


def object_spec(record: Record) -> ObjectSpec:
    """The object a checked object record describes (the restore's loader builds it here too,
    so both check the same object)."""
    return ObjectSpec(
        object_type=record["object_type"],
        name=record["name"],
        create_stmt=record["create_stmt"],
        table=record.get("table"),
        options=dict(record.get("options") or {}),
    )


def _label(record: Record) -> str:
    if record["kind"] == "table":
        return f"table {record['table']!r}"
    return f"{record['object_type']} {record['name']!r}"


class DumpRules:
    """Checks a record stream in order, as a restore does; raises a :class:`DumpError`
    naming the record's line at the first record the restore would refuse.

    ``dialect`` is whose statement rules apply (a backend name); ``None`` takes the
    target's, else the one the dump's header names. ``target``, the engine of the database
    to restore into, adds the target rules (roles and extensions). ``options`` are the
    restore's (which roles it looks up, and whether a missing one refuses the dump).
    ``authenticated``: the dump decrypted and authenticated under the caller's key, so its
    routines are trusted without ``allow_routines`` (:func:`.dump.safety.routines_trusted`).
    """

    def __init__(
        self,
        dialect: str | None = None,
        *,
        allow_unverified: bool = False,
        allow_routines: bool = False,
        authenticated: bool = False,
        target: Engine | None = None,
        options: RestoreOptions | None = None,
    ) -> None:
        self.verifier = DumpVerifier(allow_unverified=allow_unverified)
        self.allow_routines = routines_trusted(allow_routines, authenticated)
        #: The restore's options where they decide a refusal (missing roles skipped or not).
        self.options = options or RestoreOptions()
        self.target = target
        self._ops: DialectOps | None = get_dialect(target) if target is not None else None
        if dialect is None and self._ops is not None:
            dialect = self._ops.name
        if dialect is not None:
            statement_rules(dialect, None)  # an unknown one fails here, not mid-stream
        self.dialect = dialect
        #: Made from the header (or at the first record of a dump without one).
        self._statements: StatementRules | None = None
        #: Every role the records name and every extension they create, so far.
        self.roles: set[str] = set()
        self.extensions: set[str] = set()
        self._present_roles: set[str] = set()
        self._present_extensions: set[str] = set()

    @property
    def target_checked(self) -> bool:
        """Whether the target rules were applied (only with a target)."""
        return self._ops is not None

    def check(self, line: int, record: Any, raw: bytes | None = None) -> Record:
        """Check one record; returns it in v1 shape (as :meth:`DumpVerifier.check`)."""
        checked = self.verifier.check(line, record, raw)
        kind = checked["kind"]
        if kind == "header":
            self._statements = self._header_rules(line, checked)
        if kind not in ("table", "object"):
            return checked
        if self._statements is None:  # no header: the legacy (unverified) format
            self._statements = statement_rules(self.dialect or LEGACY_DIALECT, None)
        try:
            if kind == "object":  # refused before anything of it runs
                check_routine_allowed(checked["object_type"], checked["name"], self.allow_routines)
                self._statements.check_object_statement(object_spec(checked))
            else:
                self._statements.check_table_statement(table_spec(checked))
        except DumpError as exc:  # refused by the dialect's rules: name the record's line
            if exc.line is not None:
                raise
            raise type(exc)(str(exc), line) from exc
        except _MALFORMED as exc:
            raise DumpFormatError(
                f"{kind} record of {checked.get('table') or checked.get('name')!r} cannot be "
                f"restored ({type(exc).__name__}: {exc})",
                line,
            ) from exc
        self._require(line, checked)
        return checked

    def finish(self) -> None:
        """The stream has ended: raise unless it was complete (or legacy and allowed)."""
        self.verifier.finish()

    def _header_rules(self, line: int, header: Record) -> StatementRules:
        dialect = self.dialect or header.get("dialect")
        try:
            if not isinstance(dialect, str):
                raise UnsupportedDatabaseError("no dialect")
            rules = statement_rules(dialect, header)
            refuse_excluded = getattr(rules, "refuse_excluded", None)
            if refuse_excluded is not None:  # a dump holding a schema the restore leaves alone
                refuse_excluded(self.options.exclude_schemas)
            return rules
        except UnsupportedDatabaseError:
            raise DumpFormatError(
                f"the header names dialect {dialect!r}, which this version does not restore",
                line,
            ) from None
        except DumpError as exc:  # the header itself is refused (PostgreSQL: its schemas)
            raise type(exc)(str(exc), line) from exc

    def _require(self, line: int, record: Record) -> None:
        """Collect the roles and extensions ``record`` needs; with a target, refuse it where
        the restore would: an extension the server cannot give it, a role it lacks (unless
        the restore skips what names missing roles; each name is looked up once)."""
        roles_of = getattr(self._statements, "required_roles", None)
        roles: set[str] = set()
        strict: set[str] = set()
        if roles_of is not None:  # the dialect's records name roles (PostgreSQL's options)
            kind = record["object_type"] if record["kind"] == "object" else "table"
            options = record.get("options") or {}
            if not isinstance(options, dict):
                raise DumpFormatError(f"{_label(record)}: options is not an object", line)
            try:
                roles, strict = roles_of(kind, options, self.options)
            except DumpError as exc:
                raise type(exc)(f"{_label(record)}: {exc}", line) from exc
            except _MALFORMED as exc:
                raise DumpFormatError(
                    f"{_label(record)}: malformed options ({type(exc).__name__}: {exc})", line
                ) from exc
        extensions = set()
        if record["kind"] == "object" and record["object_type"] == "extension":
            extensions.add(record["name"])
        self.roles |= roles | strict
        self.extensions |= extensions
        if self._ops is None or self.target is None:
            return
        if not self.options.skip_missing_roles:
            strict = strict | roles
        new_roles = strict - self._present_roles
        new_extensions = extensions - self._present_extensions
        if not new_roles and not new_extensions:
            return
        missing = self._ops.missing_requirements(self.target, new_roles, new_extensions)
        if missing:
            raise MissingRequirementError(
                f"{_label(record)} needs what the target server lacks: {'; '.join(missing)}",
                line,
            )
        self._present_roles |= new_roles
        self._present_extensions |= new_extensions
