"""What the catalog says about whole PostgreSQL schemas, for a backup that takes them and
a restore that replaces them (:mod:`.swap`).

Which schemas exist; a schema's owner, privileges and comment; what lies outside the
restored schemas but depends on them (it would be dropped with the old ones: foreign keys
are re-pointed at the restored tables, anything else refuses the restore before it
starts); and what a backup of the schemas does not carry.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg

from ...errors import ZenMigrateError
from . import catalog
from .connection import fetch_all
from .names import quote_ident, quote_literal


@dataclass
class SchemaMeta:
    """What a schema carries beside its objects: owner, privileges, comment."""

    owner: str
    grants: list[tuple[str, str, bool]] = field(default_factory=list)
    comment: str | None = None


@dataclass(frozen=True)
class OutsideKey:
    """A foreign key of a table outside the restored schemas into one of them."""

    table: str  # quoted, qualified
    name: str
    definition: str  # pg_get_constraintdef, names qualified


def existing(conn: psycopg.Connection[Any], names: Iterable[str]) -> dict[str, int]:
    """Those of ``names`` that are schemas of the database, with their oids."""
    rows = fetch_all(
        conn, "SELECT nspname, oid FROM pg_namespace WHERE nspname = ANY(%s)", (list(names),)
    )
    return {name: int(oid) for name, oid in rows}


def schema_meta(conn: psycopg.Connection[Any], oid: int) -> SchemaMeta:
    """A schema's owner, the grants to others than its owner, and its comment."""
    owner, comment = fetch_all(
        conn,
        "SELECT nspowner::regrole::text, obj_description(oid, 'pg_namespace')"
        " FROM pg_namespace WHERE oid = %s",
        (oid,),
    )[0]
    grants = fetch_all(
        conn,
        "SELECT CASE WHEN x.grantee = 0 THEN 'PUBLIC' ELSE x.grantee::regrole::text END,"
        " x.privilege_type, x.is_grantable"
        " FROM pg_namespace n, aclexplode(n.nspacl) x"
        " WHERE n.oid = %s AND x.grantee <> n.nspowner ORDER BY 1, 2",
        (oid,),
    )
    return SchemaMeta(owner, [(g, p, bool(o)) for g, p, o in grants], comment)


def meta_statements(schema: str, meta: SchemaMeta) -> list[str]:
    """The statements that give a new schema ``meta`` (role names as regrole prints them:
    already quoted where they need it)."""
    out = [f"ALTER SCHEMA {quote_ident(schema)} OWNER TO {meta.owner}"]
    for grantee, privilege, grantable in meta.grants:
        option = " WITH GRANT OPTION" if grantable else ""
        out.append(f"GRANT {privilege} ON SCHEMA {quote_ident(schema)} TO {grantee}{option}")
    if meta.comment is not None:
        out.append(f"COMMENT ON SCHEMA {quote_ident(schema)} IS {quote_literal(meta.comment)}")
    return out


def outside_keys(conn: psycopg.Connection[Any], oids: Sequence[int]) -> list[OutsideKey]:
    """The foreign keys from outside the schemas ``oids`` into them, to re-point after the
    swap. Raises :class:`ZenMigrateError` naming every other dependent outside them.

    Call it with ``search_path`` empty: the definitions name every table qualified, so they
    point at the restored tables once the old schemas are gone.
    """
    if not oids:
        return []
    keys: list[OutsideKey] = []
    refused: list[str] = []
    for described, is_key, table, name, definition in fetch_all(
        conn, catalog.OUTSIDE_DEPENDENTS, {"s": list(oids)}
    ):
        if is_key:
            keys.append(OutsideKey(table, name, definition))
        else:
            refused.append(described)
    if refused:
        raise ZenMigrateError(
            "objects outside the restored schemas depend on them and would be dropped with "
            f"the old ones: {'; '.join(refused)}. Nothing was changed: include their schemas "
            "in the backup, or drop or move them first"
        )
    return keys


def not_carried(conn: psycopg.Connection[Any], oids: Sequence[int]) -> list[dict[str, str]]:
    """What the database holds that a backup of the schemas ``oids`` does not carry."""
    rows = fetch_all(conn, catalog.NOT_CARRIED, {"s": list(oids)})
    return [{"kind": kind, "name": name} for kind, name in rows]
