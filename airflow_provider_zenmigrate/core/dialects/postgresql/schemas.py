"""Replacing whole PostgreSQL schemas inside one transaction.

A restore renames each schema it restores away, creates it anew and loads it; the old ones
are dropped at the end, and the commit makes the change visible at once. What lies outside
the restored schemas but depends on them would be dropped with the old ones: foreign keys
are re-pointed at the restored tables, anything else refuses the restore before it starts.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg

from ...errors import ZenMigrateError


def quote_ident(name: str) -> str:
    """Quote an identifier, always."""
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


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


def _all(
    conn: psycopg.Connection[Any], query: str, params: Sequence[Any] | dict[str, Any] = ()
) -> list[Any]:
    with conn.cursor() as cur:
        cur.execute(query.encode(), params or None)
        return list(cur.fetchall())


def existing(conn: psycopg.Connection[Any], names: Iterable[str]) -> dict[str, int]:
    """Those of ``names`` that are schemas of the database, with their oids."""
    rows = _all(
        conn, "SELECT nspname, oid FROM pg_namespace WHERE nspname = ANY(%s)", (list(names),)
    )
    return {name: int(oid) for name, oid in rows}


def schema_meta(conn: psycopg.Connection[Any], oid: int) -> SchemaMeta:
    """A schema's owner, the grants to others than its owner, and its comment."""
    owner, comment = _all(
        conn,
        "SELECT nspowner::regrole::text, obj_description(oid, 'pg_namespace')"
        " FROM pg_namespace WHERE oid = %s",
        (oid,),
    )[0]
    grants = _all(
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


# The namespace of each kind of object that may depend on something in a schema; an object
# of any other kind is taken to be outside (and refuses the restore rather than be dropped).
_DEPENDENT_NAMESPACE = """
CASE d.classid
  WHEN 'pg_class'::regclass THEN (SELECT relnamespace FROM pg_class WHERE oid = d.objid)
  WHEN 'pg_type'::regclass THEN (SELECT typnamespace FROM pg_type WHERE oid = d.objid)
  WHEN 'pg_proc'::regclass THEN (SELECT pronamespace FROM pg_proc WHERE oid = d.objid)
  WHEN 'pg_constraint'::regclass THEN
    (SELECT coalesce(c.relnamespace, co.connamespace) FROM pg_constraint co
     LEFT JOIN pg_class c ON c.oid = co.conrelid WHERE co.oid = d.objid)
  WHEN 'pg_rewrite'::regclass THEN
    (SELECT c.relnamespace FROM pg_rewrite r JOIN pg_class c ON c.oid = r.ev_class
     WHERE r.oid = d.objid)
  WHEN 'pg_trigger'::regclass THEN
    (SELECT c.relnamespace FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
     WHERE t.oid = d.objid)
  WHEN 'pg_attrdef'::regclass THEN
    (SELECT c.relnamespace FROM pg_attrdef a JOIN pg_class c ON c.oid = a.adrelid
     WHERE a.oid = d.objid)
  WHEN 'pg_policy'::regclass THEN
    (SELECT c.relnamespace FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid
     WHERE p.oid = d.objid)
  WHEN 'pg_extension'::regclass THEN (SELECT extnamespace FROM pg_extension WHERE oid = d.objid)
  WHEN 'pg_default_acl'::regclass THEN
    (SELECT defaclnamespace FROM pg_default_acl WHERE oid = d.objid)
  WHEN 'pg_statistic_ext'::regclass THEN
    (SELECT stxnamespace FROM pg_statistic_ext WHERE oid = d.objid)
  WHEN 'pg_collation'::regclass THEN
    (SELECT collnamespace FROM pg_collation WHERE oid = d.objid)
  WHEN 'pg_operator'::regclass THEN (SELECT oprnamespace FROM pg_operator WHERE oid = d.objid)
  WHEN 'pg_opclass'::regclass THEN (SELECT opcnamespace FROM pg_opclass WHERE oid = d.objid)
  WHEN 'pg_opfamily'::regclass THEN (SELECT opfnamespace FROM pg_opfamily WHERE oid = d.objid)
  WHEN 'pg_amop'::regclass THEN
    (SELECT f.opfnamespace FROM pg_amop a JOIN pg_opfamily f ON f.oid = a.amopfamily
     WHERE a.oid = d.objid)
  WHEN 'pg_amproc'::regclass THEN
    (SELECT f.opfnamespace FROM pg_amproc a JOIN pg_opfamily f ON f.oid = a.amprocfamily
     WHERE a.oid = d.objid)
  WHEN 'pg_namespace'::regclass THEN d.objid
END"""

_SQL_OUTSIDE_DEPENDENTS = f"""
WITH inside(classid, objid) AS (
    SELECT 'pg_class'::regclass, oid FROM pg_class WHERE relnamespace = ANY(%(s)s)
    UNION ALL SELECT 'pg_type'::regclass, oid FROM pg_type WHERE typnamespace = ANY(%(s)s)
    UNION ALL SELECT 'pg_proc'::regclass, oid FROM pg_proc WHERE pronamespace = ANY(%(s)s)
    UNION ALL SELECT 'pg_collation'::regclass, oid FROM pg_collation
              WHERE collnamespace = ANY(%(s)s)
    UNION ALL SELECT 'pg_operator'::regclass, oid FROM pg_operator
              WHERE oprnamespace = ANY(%(s)s)
    UNION ALL SELECT 'pg_namespace'::regclass, oid FROM pg_namespace WHERE oid = ANY(%(s)s)
), dependent AS (
    SELECT DISTINCT d.classid, d.objid, {_DEPENDENT_NAMESPACE} AS nsp
    FROM pg_depend d JOIN inside i ON i.classid = d.refclassid AND i.objid = d.refobjid
    WHERE d.deptype IN ('n', 'a')
      -- an extension's members go with the extension, which the restore moves
      AND NOT EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = d.classid
                      AND e.objid = d.objid AND e.deptype = 'e')
)
SELECT pg_describe_object(dp.classid, dp.objid, 0),
       co.contype = 'f' AND co.conrelid <> 0,
       quote_ident(n.nspname) || '.' || quote_ident(c.relname), co.conname,
       pg_get_constraintdef(co.oid)
FROM dependent dp
LEFT JOIN pg_constraint co ON dp.classid = 'pg_constraint'::regclass AND co.oid = dp.objid
LEFT JOIN pg_class c ON c.oid = co.conrelid
LEFT JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE dp.nsp IS NULL OR NOT dp.nsp = ANY(%(s)s)
ORDER BY 1"""


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
    for described, is_key, table, name, definition in _all(
        conn, _SQL_OUTSIDE_DEPENDENTS, {"s": list(oids)}
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


def _own(catalog: str, alias: str) -> str:
    """SQL condition: the row is not an extension's member (those come with it)."""
    return (
        f"NOT EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = '{catalog}'::regclass "
        f"AND e.objid = {alias}.oid AND e.deptype = 'e')"
    )


# Objects a backup does not carry: named in the dump's header (and logged), never dropped
# without a word. Those in the dumped schemas, and the database-wide kinds.
_SQL_NOT_CARRIED = f"""
SELECT 'collation', n.nspname || '.' || c.collname FROM pg_collation c
  JOIN pg_namespace n ON n.oid = c.collnamespace
  WHERE c.collnamespace = ANY(%(s)s) AND {_own("pg_collation", "c")}
UNION ALL
SELECT 'operator', n.nspname || '.' || o.oprname FROM pg_operator o
  JOIN pg_namespace n ON n.oid = o.oprnamespace
  WHERE o.oprnamespace = ANY(%(s)s) AND {_own("pg_operator", "o")}
UNION ALL
SELECT 'operator class', n.nspname || '.' || o.opcname FROM pg_opclass o
  JOIN pg_namespace n ON n.oid = o.opcnamespace
  WHERE o.opcnamespace = ANY(%(s)s) AND {_own("pg_opclass", "o")}
UNION ALL
SELECT 'text search configuration', n.nspname || '.' || t.cfgname FROM pg_ts_config t
  JOIN pg_namespace n ON n.oid = t.cfgnamespace
  WHERE t.cfgnamespace = ANY(%(s)s) AND {_own("pg_ts_config", "t")}
UNION ALL
SELECT 'text search dictionary', n.nspname || '.' || t.dictname FROM pg_ts_dict t
  JOIN pg_namespace n ON n.oid = t.dictnamespace
  WHERE t.dictnamespace = ANY(%(s)s) AND {_own("pg_ts_dict", "t")}
UNION ALL
SELECT 'conversion', n.nspname || '.' || c.conname FROM pg_conversion c
  JOIN pg_namespace n ON n.oid = c.connamespace
  WHERE c.connamespace = ANY(%(s)s) AND {_own("pg_conversion", "c")}
UNION ALL
SELECT 'statistics', n.nspname || '.' || x.stxname FROM pg_statistic_ext x
  JOIN pg_namespace n ON n.oid = x.stxnamespace WHERE x.stxnamespace = ANY(%(s)s)
UNION ALL
SELECT 'foreign table', n.nspname || '.' || c.relname FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE c.relnamespace = ANY(%(s)s) AND c.relkind = 'f' AND {_own("pg_class", "c")}
UNION ALL
SELECT 'cast', format_type(c.castsource, NULL) || ' AS ' || format_type(c.casttarget, NULL)
  FROM pg_cast c WHERE c.oid >= 16384 AND {_own("pg_cast", "c")}
UNION ALL
SELECT 'publication', p.pubname FROM pg_publication p
UNION ALL
SELECT 'event trigger', t.evtname FROM pg_event_trigger t WHERE {_own("pg_event_trigger", "t")}
UNION ALL
SELECT 'large objects', count(*)::text FROM pg_largeobject_metadata HAVING count(*) > 0
ORDER BY 1, 2"""


def not_carried(conn: psycopg.Connection[Any], oids: Sequence[int]) -> list[dict[str, str]]:
    """What the database holds that a backup of the schemas ``oids`` does not carry."""
    rows = _all(conn, _SQL_NOT_CARRIED, {"s": list(oids)})
    return [{"kind": kind, "name": name} for kind, name in rows]
