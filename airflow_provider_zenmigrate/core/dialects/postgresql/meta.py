"""What PostgreSQL objects carry beside their definition: owners, privileges, comments, row
security, and the default privileges of roles.

A backup reads them for every schema it covers in a fixed number of catalog queries and
hands them on as record options, as data: ``owner`` (a role name), ``acl`` (a list of
``[grantee, privilege, grantable]``, grantee ``PUBLIC`` or a role), ``comment``, ``columns``
(per column: ``acl``, ``comment``), ``rls`` (``[enabled, forced]``), ``args`` (a routine's
identity arguments). A restore builds every statement from that data itself, quoting each
name, so a dump cannot slip SQL of its own into a GRANT or a COMMENT.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ...dump.model import ObjectSpec
from ...errors import UnsafeDumpError, ZenMigrateError
from . import catalog
from .names import quote_ident, quote_literal
from .statements import META_KEYS, acl_entries

logger = logging.getLogger(__name__)

#: Runs a catalog query (SQL, its parameters) and returns every row.
Query = Callable[[str, Sequence[Any]], list[tuple[Any, ...]]]
#: A record's options as the backup hands them on (see the module's docstring).
Meta = dict[str, Any]

_POLICY_COMMANDS = {"*": "ALL", "r": "SELECT", "a": "INSERT", "w": "UPDATE", "d": "DELETE"}
#: pg_default_acl's object types, as ALTER DEFAULT PRIVILEGES names them.
DEFAULT_ACL_OBJECTS = {
    "r": "TABLES",
    "S": "SEQUENCES",
    "f": "FUNCTIONS",
    "T": "TYPES",
    "n": "SCHEMAS",
}


@dataclass
class CatalogMeta:
    """Everything :func:`read_meta` reads for one backup, by ``(catalog, oid)``."""

    by_key: dict[tuple[str, int], Meta] = field(default_factory=dict)
    schemas: dict[str, Meta] = field(default_factory=dict)
    policies: list[tuple[tuple[str, int], ObjectSpec]] = field(default_factory=list)
    default_acls: list[tuple[tuple[str, int], ObjectSpec]] = field(default_factory=list)


def read_meta(query: Query, nsp_oids: list[int], display: Callable[[str, str], str]) -> CatalogMeta:
    """Owners, privileges, comments and row security of everything in the schemas, their
    policies and the default privileges that apply there, in eight catalog queries."""
    out = CatalogMeta()
    comments: dict[tuple[str, int, int], str] = {
        (cls, oid, sub): text for cls, oid, sub, text in query(catalog.META_COMMENTS, ())
    }

    def meta(cls: str, oid: int) -> Meta:
        m = out.by_key.setdefault((cls, oid), {})
        if (cls, oid, 0) in comments:
            m["comment"] = comments[(cls, oid, 0)]
        return m

    for oid, owner, kind, acl, rls, force in query(catalog.META_RELATIONS, (nsp_oids,)):
        m = meta("pg_class", oid)
        m.update(owner=owner, acl=acl)
        if kind in ("r", "p") and (rls or force):
            m["rls"] = [bool(rls), bool(force)]
    for relid, attname, acl in query(catalog.META_COLUMN_ACLS, (nsp_oids,)):
        column = meta("pg_class", relid).setdefault("columns", {}).setdefault(attname, {})
        column["acl"] = acl
    for relid, attnum, attname in query(catalog.META_COMMENTED_COLUMNS, (nsp_oids,)):
        column = meta("pg_class", relid).setdefault("columns", {}).setdefault(attname, {})
        column["comment"] = comments[("pg_class", relid, attnum)]
    for oid, owner, acl in query(catalog.META_TYPES, (nsp_oids,)):
        meta("pg_type", oid).update(owner=owner, acl=acl)
    for oid, owner, acl, args, types in query(catalog.META_ROUTINES, (nsp_oids,)):
        meta("pg_proc", oid).update(owner=owner, acl=acl, args=args, types=types)
    for cls, oid, sub in comments:
        if sub == 0:  # indexes, constraints, triggers, rules, extensions: a comment only
            meta(cls, oid)
    for name, owner, acl, comment in query(catalog.META_SCHEMAS, (nsp_oids,)):
        out.schemas[name] = {"owner": owner, "acl": acl}
        if comment is not None:
            out.schemas[name]["comment"] = comment
    for oid, schema, table, name, permissive, cmd, roles, using, check in query(
        catalog.META_POLICIES, (nsp_oids,)
    ):
        stmt = f"CREATE POLICY {quote_ident(name)} ON {quote_ident(schema)}.{quote_ident(table)}"
        stmt += f" AS {'PERMISSIVE' if permissive else 'RESTRICTIVE'}"
        stmt += f" FOR {_POLICY_COMMANDS[cmd]}"
        stmt += " TO " + ", ".join("PUBLIC" if r == "public" else quote_ident(r) for r in roles)
        if using is not None:
            stmt += f" USING ({using})"
        if check is not None:
            stmt += f" WITH CHECK ({check})"
        options = meta("pg_policy", oid) | {"schema": schema, "to": list(roles)}
        spec = ObjectSpec("policy", name, stmt, display(schema, table), options=options)
        out.policies.append((("pg_policy", oid), spec))
    for oid, role, schema, objtype, acl in query(catalog.META_DEFAULT_ACLS, (nsp_oids,)):
        options = {"role": role, "in_schema": schema, "objtype": objtype, "acl": acl}
        where = f" IN SCHEMA {quote_ident(schema)}" if schema is not None else ""
        stmt = f"ALTER DEFAULT PRIVILEGES FOR ROLE {quote_ident(role)}{where} ..."
        spec = ObjectSpec(
            "default_privileges", f"{role}:{schema or ''}:{objtype}", stmt, None, options
        )
        out.default_acls.append((("pg_default_acl", oid), spec))
    return out


_PRIVILEGES = frozenset(
    {"SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER", "USAGE",
     "CREATE", "EXECUTE", "MAINTAIN"}
)  # fmt: skip
# A routine's identity arguments: names, types, modes, array brackets, typmods; no strings,
# no semicolons, parentheses balanced (checked apart).
_ROUTINE_ARGS = re.compile(r'(?:[\w$ ,.\[\]()]|"(?:[^"]|"")*")*')


def _checked_routine_args(args: Any, label: str, schemas: frozenset[str]) -> str:
    """A routine's arguments from a dump, as they go into a GRANT or COMMENT: refused unless
    they are plain (no strings, no semicolons, balanced) and name types of restored schemas
    or ``pg_catalog`` only."""
    if not isinstance(args, str) or not _ROUTINE_ARGS.fullmatch(args):
        raise UnsafeDumpError(f"{label}: malformed routine arguments {args!r}")
    depth = 0
    for char in re.sub(r'"(?:[^"]|"")*"', "", args):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth < 0:
            break
    if depth != 0:
        raise UnsafeDumpError(f"{label}: malformed routine arguments {args!r}")
    for qualifier in re.findall(r'("(?:[^"]|"")*"|[\w$]+)\s*\.', args):
        name = qualifier[1:-1].replace('""', '"') if qualifier.startswith('"') else qualifier
        if name.lower() != "pg_catalog" and name not in schemas:
            raise UnsafeDumpError(f"{label}: arguments name a type of schema {name!r}")
    return args


#: The keyword each object type has in GRANT, ALTER ... OWNER TO and COMMENT ON.
_OBJECT_KEYWORD = {
    "table": "TABLE", "view": "VIEW", "materialized_view": "MATERIALIZED VIEW",
    "sequence": "SEQUENCE", "type": "TYPE", "domain": "DOMAIN", "function": "FUNCTION",
    "procedure": "PROCEDURE", "aggregate": "AGGREGATE", "schema": "SCHEMA",
}  # fmt: skip
_GRANT_ON = {
    "table": "TABLE", "view": "TABLE", "materialized_view": "TABLE", "sequence": "SEQUENCE",
    "type": "TYPE", "domain": "DOMAIN", "function": "FUNCTION", "procedure": "PROCEDURE",
    "aggregate": "FUNCTION", "schema": "SCHEMA",
}  # fmt: skip
_ON_TABLE = {"constraint": "CONSTRAINT", "trigger": "TRIGGER", "rule": "RULE", "policy": "POLICY"}
_ACL_DEFAULT_KIND = {"sequence": "s", "type": "T", "domain": "T", "schema": "n"}
_ACL_DEFAULT_KIND |= dict.fromkeys(("function", "procedure", "aggregate"), "f")


#: SQL giving an object's owner and ACL, by the object's quoted name as a literal.
_OWNER_AND_ACL_SQL = {
    "routine": "SELECT proowner, proacl FROM pg_proc WHERE oid = to_regprocedure({})",
    "type": "SELECT typowner, typacl FROM pg_type WHERE oid = to_regtype({})",
    "relation": "SELECT relowner, relacl FROM pg_class WHERE oid = to_regclass({})",
    "schema": "SELECT nspowner, nspacl FROM pg_namespace WHERE nspname = {}",
}


#: The owner and ACL of relations (their index, quoted name, acldefault kind) in one query.
_RELATION_STATES = (
    "SELECT l.n, pg_get_userbyid(c.relowner), "
    + catalog.acl_as_json("coalesce(c.relacl, acldefault(l.kind, c.relowner))")
    + ' FROM unnest(%s::int[], %s::text[], %s::"char"[]) AS l(n, target, kind)'
    " JOIN pg_class c ON c.oid = to_regclass(l.target)"
)

#: An object's owner and privileges as they stand.
_OwnerAndAcl = tuple[str, set[tuple[str, str, bool]]]


@dataclass
class _PendingMeta:
    """A restored object's owner, privileges and comment, applied before the commit."""

    object_type: str
    target: str  # quoted, qualified (with a routine's arguments)
    lookup: str  # SQL giving the object's current owner and acl
    options: Meta
    relation: bool = False  # a table, view or sequence: found by to_regclass(target)


class MetaWriter:
    """Collects the options of restored records and applies them before the commit.

    ``no_owner`` leaves every object to the restoring role (``pg_dump --no-owner``);
    ``no_privileges`` restores no privileges (``--no-privileges``); ``skip_missing_roles``
    leaves out, with a warning, the owners and grants naming roles the target lacks
    (otherwise they refuse the restore, before anything is changed).
    """

    def __init__(
        self,
        query: Query,
        execute: Callable[[str], None],
        *,
        no_owner: bool = False,
        no_privileges: bool = False,
        skip_missing_roles: bool = False,
    ) -> None:
        self._query = query
        self._execute = execute
        self.no_owner = no_owner
        self.no_privileges = no_privileges
        self.skip_missing_roles = skip_missing_roles
        self._known: dict[str, bool] = {}
        self._pending: list[_PendingMeta] = []
        self._default_acls: list[Meta] = []

    # -- roles -------------------------------------------------------------------------------
    def check_roles(self, names: Iterable[str], what: str, skippable: bool = True) -> set[str]:
        """The missing ones of ``names``; raises unless the caller skips missing roles (and
        they may be skipped)."""
        wanted = sorted(set(names) - set(self._known))
        if wanted:
            found = {
                r
                for (r,) in self._query(
                    "SELECT rolname FROM pg_roles WHERE rolname = ANY(%s)", (wanted,)
                )
            }
            self._known.update((n, n in found) for n in wanted)
        missing = {n for n in names if not self._known[n]}
        if missing and not (self.skip_missing_roles and skippable):
            raise ZenMigrateError(
                f"{what} names roles the target server does not have: "
                f"{', '.join(sorted(missing))}. Nothing was changed: create them first "
                "(CREATE ROLE ...), or restore with no_owner=True (owners) and "
                "skip_missing_roles=True (leaves their grants out, with a warning)"
            )
        return missing

    # -- collecting ----------------------------------------------------------------------------
    def add(
        self,
        object_type: str,
        schema: str,
        name: str,
        table: str | None,
        options: Meta,
        schemas: frozenset[str],
    ) -> None:
        """Note what a restored record carries; ``name`` and ``table`` are bare names."""
        label = f"{object_type} {name!r}"
        if not set(options) & META_KEYS:
            return
        relation = False
        if object_type == "schema":
            target, lookup = (
                quote_ident(name),
                f"SELECT nspowner, nspacl FROM pg_namespace WHERE nspname = {quote_literal(name)}",
            )
        elif object_type in _ON_TABLE:
            if set(options) & {"owner", "acl"}:
                raise UnsafeDumpError(f"{label}: a {object_type} has no owner or privileges")
            target, lookup = (
                f"{quote_ident(name)} ON {quote_ident(schema)}.{quote_ident(table or '')}",
                "",
            )
        elif object_type in ("index", "extension"):
            if set(options) & {"owner", "acl"}:
                raise UnsafeDumpError(f"{label}: an {object_type} has no owner or privileges")
            target = (
                quote_ident(name)
                if object_type == "extension"
                else f"{quote_ident(schema)}.{quote_ident(name)}"
            )
            lookup = ""
        elif object_type in _OBJECT_KEYWORD:
            target = f"{quote_ident(schema)}.{quote_ident(name)}"
            if object_type in ("function", "procedure", "aggregate"):
                # Statements name the arguments as the source did (ordered-set aggregates
                # need their ORDER BY); the lookup takes the argument types alone.
                types = _checked_routine_args(options.get("types"), label, schemas)
                lookup = _OWNER_AND_ACL_SQL["routine"].format(quote_literal(f"{target}({types})"))
                target += f"({_checked_routine_args(options.get('args'), label, schemas)})"
            elif object_type in ("type", "domain"):
                lookup = _OWNER_AND_ACL_SQL["type"].format(quote_literal(target))
            else:
                lookup = _OWNER_AND_ACL_SQL["relation"].format(quote_literal(target))
                relation = True
        else:
            raise UnsafeDumpError(
                f"{label}: this object type carries no owner, privileges or comment"
            )
        self._pending.append(_PendingMeta(object_type, target, lookup, options, relation))

    def add_default_acl(self, options: Meta) -> None:
        if self.no_privileges:
            return
        role, objtype = options.get("role"), options.get("objtype")
        if not isinstance(role, str) or objtype not in DEFAULT_ACL_OBJECTS:
            raise UnsafeDumpError("default_privileges record: malformed role or object type")
        acl_entries(options.get("acl"))
        self._default_acls.append(options)

    # -- applying ------------------------------------------------------------------------------
    def apply(self) -> None:
        """Schemas and tables first (a table's new owner also owns its serial sequences),
        each object's owner before its privileges (which the owner's change moves), then
        comments and row security; default privileges last."""
        first = [p for p in self._pending if p.object_type in ("schema", "table")]
        rest = [p for p in self._pending if p.object_type not in ("schema", "table")]
        for batch in (first, rest):  # the rest read after the tables' owners moved theirs
            states = self._states(batch)
            for n, item in enumerate(batch):
                self._apply(item, states.get(n, ("", set())))
        for options in self._default_acls:
            self._apply_default_acl(options)

    def _states(self, items: list[_PendingMeta]) -> dict[int, _OwnerAndAcl]:
        """The current owner and privileges of each item that has them, by its index: in one
        query per 500 items (a query each was a tenth of a restore of 200 small tables)."""
        states: dict[int, _OwnerAndAcl] = {}
        looked = [(n, item) for n, item in enumerate(items) if item.lookup]
        relations = [(n, item) for n, item in looked if item.relation]
        if relations:  # most of them: one join, where a UNION of 200 took the server 40 ms
            found = self._query(
                _RELATION_STATES,
                (
                    [n for n, _ in relations],
                    [item.target for _, item in relations],
                    [_ACL_DEFAULT_KIND.get(item.object_type, "r") for _, item in relations],
                ),
            )
            for n, owner, acl in found:
                states[n] = (owner, {tuple(e) for e in acl})
        others = [(n, item) for n, item in looked if not item.relation]
        for start in range(0, len(others), 500):
            parts = [
                f"SELECT {n}, pg_get_userbyid(o.owner), {self._acl_sql(item.object_type)}"
                f" FROM ({item.lookup}) AS o(owner, acl)"
                for n, item in others[start : start + 500]
            ]
            for n, owner, acl in self._query(" UNION ALL ".join(parts), ()):
                states[n] = (owner, {tuple(e) for e in acl})
        missing = [item.target for n, item in looked if n not in states]
        if missing:
            raise ZenMigrateError(f"restored objects not found to grant on: {missing}")
        return states

    @staticmethod
    def _acl_sql(kind: str) -> str:
        default = _ACL_DEFAULT_KIND.get(kind, "r")
        return catalog.acl_as_json(f"coalesce(o.acl, acldefault('{default}', o.owner))")

    def _apply(self, item: _PendingMeta, state: _OwnerAndAcl) -> None:
        o = item.options
        kind = item.object_type
        owner = o.get("owner")
        if owner is not None and not isinstance(owner, str):
            raise UnsafeDumpError(f"{kind} {item.target}: malformed owner option")
        current_owner, current = state
        if owner and owner != current_owner and not self.no_owner and self._exists(owner):
            self._execute(
                f"ALTER {_OBJECT_KEYWORD[kind]} {item.target} OWNER TO {quote_ident(owner)}"
            )
            current_owner, current = self._current(item.lookup, kind)
        if "acl" in o and not self.no_privileges and item.lookup:
            desired = self._desired(o.get("acl"), owner, current_owner)
            self._grant(_GRANT_ON[kind], item.target, "", current, desired)
        columns = o.get("columns") or {}
        if not isinstance(columns, dict):
            raise UnsafeDumpError(f"{kind} {item.target}: malformed columns option")
        for column, meta in sorted(columns.items()):
            if not isinstance(column, str) or not isinstance(meta, dict):
                raise UnsafeDumpError(f"{kind} {item.target}: malformed columns option")
            if "acl" in meta and not self.no_privileges:
                current = self._column_acl(item.target, column)
                desired = self._desired(meta["acl"], owner, None)
                self._grant("TABLE", item.target, f" ({quote_ident(column)})", current, desired)
            if isinstance(meta.get("comment"), str):
                self._comment(f"COLUMN {item.target}.{quote_ident(column)}", meta["comment"])
        if "comment" in o:
            word = _OBJECT_KEYWORD.get(kind) or _ON_TABLE.get(kind) or kind.upper()
            self._comment(f"{word} {item.target}", o["comment"])
        rls = o.get("rls")
        if rls is not None:
            if not (
                isinstance(rls, list) and len(rls) == 2 and all(isinstance(b, bool) for b in rls)
            ):
                raise UnsafeDumpError(f"{kind} {item.target}: malformed rls option")
            if rls[0]:
                self._execute(f"ALTER TABLE {item.target} ENABLE ROW LEVEL SECURITY")
            if rls[1]:
                self._execute(f"ALTER TABLE {item.target} FORCE ROW LEVEL SECURITY")

    def _exists(self, role: str) -> bool:
        if self._known.get(role, True):
            return True
        logger.warning("role %r does not exist on the target: its ownership is left out", role)
        return False

    def _comment(self, target: str, comment: Any) -> None:
        if not isinstance(comment, str):
            raise UnsafeDumpError(f"comment on {target}: not a string")
        self._execute(f"COMMENT ON {target} IS {quote_literal(comment)}")

    def _current(self, lookup: str, kind: str) -> _OwnerAndAcl:
        rows = self._query(
            f"SELECT pg_get_userbyid(o.owner), {self._acl_sql(kind)}"
            f" FROM ({lookup}) AS o(owner, acl)",
            (),
        )
        if not rows:
            raise ZenMigrateError(f"restored object not found to grant on ({lookup})")
        owner, acl = rows[0]
        return owner, {tuple(e) for e in acl}

    def _column_acl(self, table: str, column: str) -> set[tuple[str, str, bool]]:
        rows = self._query(
            f"SELECT {catalog.COLUMN_ACL} FROM pg_attribute a"
            " WHERE a.attrelid = to_regclass(%s) AND a.attname = %s",
            (table, column),
        )
        return {tuple(e) for e in rows[0][0]} if rows else set()

    def _desired(
        self, acl: Any, owner: Any, current_owner: str | None
    ) -> set[tuple[str, str, bool]]:
        entries = set(acl_entries(acl))
        if self.no_owner and isinstance(owner, str) and current_owner is not None:
            # The source owner's own rights go to whoever owns the object now.
            entries = {(current_owner if g == owner else g, p, o) for g, p, o in entries}
        if self.skip_missing_roles:
            dropped = {e for e in entries if e[0] != "PUBLIC" and not self._known.get(e[0], True)}
            for grantee, privilege, _ in sorted(dropped):
                logger.warning(
                    "left out: %s for role %r, which the target lacks", privilege, grantee
                )
            entries -= dropped
        for _, privilege, _ in entries:
            if privilege not in _PRIVILEGES:
                raise UnsafeDumpError(f"unknown privilege {privilege!r}")
        return entries

    def _grant(
        self,
        on: str,
        target: str,
        columns: str,
        current: set[tuple[str, str, bool]],
        desired: set[tuple[str, str, bool]],
        head: str = "",
    ) -> None:
        """REVOKE what ``current`` has beyond ``desired``, GRANT what it lacks (``head``
        starts each statement: ALTER DEFAULT PRIVILEGES ...)."""

        def who(grantee: str) -> str:
            return "PUBLIC" if grantee == "PUBLIC" else quote_ident(grantee)

        on = f"{on} {target}".strip()
        for grantee, privilege, _ in sorted(current - desired):
            self._execute(f"{head}REVOKE {privilege}{columns} ON {on} FROM {who(grantee)}")
        for grantee, privilege, grantable in sorted(desired - current):
            option = " WITH GRANT OPTION" if grantable else ""
            self._execute(f"{head}GRANT {privilege}{columns} ON {on} TO {who(grantee)}{option}")

    def _apply_default_acl(self, options: Meta) -> None:
        role, schema, objtype = options["role"], options.get("in_schema"), options["objtype"]
        if not self._known.get(role, True):
            logger.warning("default privileges of role %r left out: the target lacks it", role)
            return
        where = f" IN SCHEMA {quote_ident(schema)}" if isinstance(schema, str) else ""
        kind = objtype.lower() if objtype != "T" else "T"  # acldefault's letter
        stored = catalog.acl_as_json('coalesce(d.defaclacl, acldefault(%s::"char", d.defaclrole))')
        rows = self._query(
            f"SELECT {stored} FROM pg_default_acl d WHERE d.defaclrole = to_regrole(%s)"
            " AND d.defaclobjtype = %s AND d.defaclnamespace = coalesce(to_regnamespace(%s), 0)",
            (kind, role, objtype, schema),
        )
        if rows:
            current = {tuple(e) for e in rows[0][0]}
        elif schema is None:
            default = self._query(f"SELECT {catalog.ROLE_DEFAULT_ACL}", (kind, role))
            current = {tuple(e) for e in default[0][0]}
        else:
            current = set()
        desired = self._desired(options.get("acl"), None, None)
        head = f"ALTER DEFAULT PRIVILEGES FOR ROLE {quote_ident(role)}{where} "
        self._grant(DEFAULT_ACL_OBJECTS[objtype], "", "", current, desired, head)
