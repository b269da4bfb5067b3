"""What a PostgreSQL restore checks of a dump's table and object records before running them.

The restore writer and the dry run's rule pass (:mod:`..preflight`) both call
:class:`PgStatementRules`, so a dry run cannot pass a record the restore would refuse. Kept
apart from :mod:`.postgresql` so the rules load without the driver.

What is checked depends on the dump's header: a dump that lists its schemas holds
schema-qualified statements, each record naming its schema (one of those listed); a dump that
lists none (written before several schemas were covered) holds ``public`` only, unqualified.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ...dump.model import ObjectSpec, RestoreOptions, TableSpec
from ...dump.safety import check_statement
from ...errors import UnsafeDumpError, ZenMigrateError
from ...sql_lexer import POSTGRESQL

#: Object types whose statement may hold semicolons inside its body (BEGIN ATOMIC ... END):
#: the extended protocol runs one statement per call, so nothing can follow the body.
_BODY_TYPES = frozenset({"function", "procedure"})
_UNNAMED: Any = object()
#: Records whose statement the restore never runs: it builds its own from their options.
_CARRIED = frozenset({"schema", "default_privileges"})
#: Options of a record the restore applies (owner, privileges, comment, row security): a
#: record with none of them names no role the restore looks up (a policy's own aside).
META_KEYS = frozenset({"owner", "acl", "comment", "columns", "rls"})
#: Object types whose statement names the object schema-qualified (the others, which belong
#: to a table, name the table qualified and themselves bare).
QUALIFIED_TYPES = frozenset(
    {"table", "view", "materialized_view", "sequence", "type", "domain", "function",
     "procedure", "aggregate", "constraint"}
)  # fmt: skip


def dump_schemas(header: dict[str, Any] | None) -> frozenset[str] | None:
    """The schemas a dump's header lists; ``None`` for a dump that lists none (``public``
    only, with unqualified names)."""
    listed = (header or {}).get("schemas")
    if listed is None:
        return None
    if (
        not isinstance(listed, list)
        or not all(isinstance(n, str) and n and "\x00" not in n for n in listed)
        or len(set(listed)) != len(listed)
    ):
        raise UnsafeDumpError("header: 'schemas' must be a list of distinct schema names")
    return frozenset(listed)


class PgStatementRules:
    """The checks of one dump's records, made from its header (see the module docstring)."""

    def __init__(self, header: dict[str, Any] | None) -> None:
        #: The schemas the dump holds; ``None`` for a dump of ``public`` alone, unqualified.
        self.schemas = dump_schemas(header)

    def refuse_excluded(self, exclude_schemas: Iterable[str]) -> None:
        """A restore told to leave schemas alone refuses a dump that holds one of them."""
        excluded = sorted(set(self.schemas or ()) & set(exclude_schemas))
        if excluded:
            raise ZenMigrateError(
                "the dump holds schemas the restore was told to leave alone: "
                f"{', '.join(excluded)}; nothing was changed"
            )

    def schema_of(self, what: str, name: str, options: dict[str, Any]) -> str:
        """The schema a record's object goes into: one the dump lists. A record that names
        none is in ``public`` with unqualified names (as every record of a dump of ``public``
        alone), which the dump must then list."""
        if self.schemas is None:
            return "public"
        schema = options.get("schema", _UNNAMED)
        if schema is _UNNAMED and "public" in self.schemas:
            return "public"
        if not isinstance(schema, str) or schema not in self.schemas:
            raise UnsafeDumpError(
                f"{what} {name!r}: schema {schema!r} is not one of the dump's schemas"
            )
        return schema

    def check(
        self, statement: str, what: str, name: str, schema: str, named: bool = True, **kw: Any
    ) -> None:
        """Refuse ``statement`` unless it only creates ``name`` (in ``schema``; qualified
        when the record ``named`` its schema), lexed as the restore's sessions lex it
        (standard_conforming_strings on) besides the portable lexings."""
        if self.schemas is None:
            check_statement(statement, what, name, rules=POSTGRESQL, **kw)
        else:
            qualified = schema if what in QUALIFIED_TYPES and named else None
            check_statement(
                statement,
                what,
                name,
                rules=POSTGRESQL,
                schema=qualified,
                schemas=self.schemas,
                **kw,
            )

    def check_table_statement(self, table: TableSpec) -> str:
        """Refuse a table record that does more than create its table, or whose
        ``owned_sequences`` option is not a map of column names to sequence names; returns
        the table's schema."""
        schema = self.schema_of("table", table.name, table.options)
        named = "schema" in table.options
        self.check(table.create_stmt, "table", table.name, schema, named)
        owned = table.options.get("owned_sequences") or {}
        if not isinstance(owned, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in owned.items()
        ):
            raise UnsafeDumpError(f"table {table.name!r}: malformed owned_sequences option")
        return schema

    def check_object_statement(self, obj: ObjectSpec) -> str:
        """Refuse an object record that does more than create the object it names; returns
        the object's schema."""
        if obj.object_type in _CARRIED:
            return self._check_carried(obj)
        schema = self.schema_of(obj.object_type, obj.name, obj.options)
        self.check(
            obj.create_stmt,
            obj.object_type,
            obj.name,
            schema,
            "schema" in obj.options,
            allow_body=obj.object_type in _BODY_TYPES,
        )
        return schema

    def _check_carried(self, obj: ObjectSpec) -> str:
        """A schema's record, or a role's default privileges: the restore runs no statement of
        theirs (it builds its own from their options), so only where they apply is checked."""
        if self.schemas is None:
            raise UnsafeDumpError(
                f"{obj.object_type} {obj.name!r}: only a dump that lists its schemas has one"
            )
        if obj.object_type == "schema":
            if obj.name not in self.schemas:
                raise UnsafeDumpError(f"schema {obj.name!r} is not one of the dump's schemas")
            return obj.name
        where = obj.options.get("in_schema")
        if where is not None and where not in self.schemas:
            raise UnsafeDumpError(
                f"default privileges {obj.name!r}: schema {where!r} is not one of the dump's"
            )
        return where if isinstance(where, str) else ""

    def required_roles(
        self, object_type: str, options: dict[str, Any], restore: RestoreOptions
    ) -> tuple[set[str], set[str]]:
        """The roles a restore with ``restore``'s options looks up for a record
        (``object_type`` ``"table"`` for a table's), as two sets: those whose absence it
        skips with ``skip_missing_roles`` (owners, grants) and those it never skips (the roles
        a policy applies to: leaving them out would change who sees which rows)."""
        policy = object_type == "policy"
        strict = roles_named({"to": options.get("to") or []}) if policy else set()
        if object_type == "default_privileges":
            return (set() if restore.no_privileges else roles_named(options)), strict
        if not set(options) & META_KEYS:
            return set(), strict
        names = roles_named(options)
        owner = options.get("owner")
        if restore.no_owner and isinstance(owner, str):
            names.discard(owner)
        if restore.no_privileges:
            names = {owner} & names if isinstance(owner, str) else set()
        return names, strict


def roles_named(options: dict[str, Any]) -> set[str]:
    """Every role a record's options name (as owner, grantee, policy or default-ACL role)."""
    names: set[str] = set()
    if isinstance(options.get("owner"), str):
        names.add(options["owner"])
    if isinstance(options.get("role"), str):
        names.add(options["role"])
    for entry in acl_entries(options.get("acl")):
        names.add(entry[0])
    for column in (options.get("columns") or {}).values():
        if isinstance(column, dict):
            names.update(entry[0] for entry in acl_entries(column.get("acl")))
    names.update(r for r in options.get("to") or () if isinstance(r, str))  # a policy's
    names.discard("PUBLIC")
    names.discard("public")
    return names


def acl_entries(acl: Any) -> list[tuple[str, str, bool]]:
    if acl is None:
        return []
    if not isinstance(acl, list) or not all(
        isinstance(e, list)
        and len(e) == 3
        and isinstance(e[0], str)
        and isinstance(e[1], str)
        and isinstance(e[2], bool)
        for e in acl
    ):
        raise UnsafeDumpError("malformed acl option: expected [[grantee, privilege, grantable]]")
    return [(e[0], e[1], e[2]) for e in acl]


def statement_rules_for(header: dict[str, Any] | None) -> PgStatementRules:
    """The rules of the dump ``header`` starts (``None``: a dump without header)."""
    return PgStatementRules(header)
