"""The catalog queries of PostgreSQL backups and restores, in one place.

Every query here runs with an empty ``search_path`` (:data:`.connection.READ_SEARCH_PATH`),
so every name outside ``pg_catalog`` that ``pg_get_*`` and ``format_type`` print comes out
schema-qualified. A ``%s`` parameter is the list of the oids of the schemas a backup covers
unless the query's comment says otherwise. Who reads what: the tables (:mod:`.reader`), the
other objects (:mod:`.objects`), owners, privileges and comments (:mod:`.meta`), and what
lies around the schemas (:mod:`.schemas`).
"""

from __future__ import annotations

#: SQL condition on ``n`` (pg_namespace): a schema a backup covers unless told otherwise.
USER_SCHEMA = (
    "n.nspname NOT IN ('pg_catalog', 'information_schema') "
    "AND left(n.nspname, 8) <> 'pg_toast' AND left(n.nspname, 7) <> 'pg_temp'"
)


def not_extension_member(catalog: str, alias: str) -> str:
    """SQL condition: the row is not part of an extension (those come with the extension)."""
    return (
        f"NOT EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = '{catalog}'::regclass "
        f"AND e.objid = {alias}.oid AND e.deptype = 'e')"
    )


def collation_clause(column_collation: str, type_collation: str) -> str:
    """SQL expression: the COLLATE clause's name when it differs from the type's default."""
    return (
        f"(SELECT CASE WHEN n.nspname = 'pg_catalog' THEN quote_ident(co.collname)"
        f" ELSE quote_ident(n.nspname) || '.' || quote_ident(co.collname) END"
        f" FROM pg_collation co JOIN pg_namespace n ON n.oid = co.collnamespace"
        f" WHERE co.oid = {column_collation} AND {column_collation} <> {type_collation})"
    )


# -- tables: schemas, columns, keys, sequences (reader.py) -------------------------------------

SCHEMAS = f"""
SELECT n.oid, n.nspname FROM pg_namespace n
WHERE {USER_SCHEMA} AND {not_extension_member("pg_namespace", "n")}
ORDER BY n.nspname"""

LOCKABLE = f"""
SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relnamespace = ANY(%s) AND c.relkind IN ('r', 'p')
  AND {not_extension_member("pg_class", "c")}
ORDER BY 1, 2"""

TABLES = f"""
SELECT c.oid, n.nspname, c.relname, c.relkind::text, c.relpersistence::text, c.relispartition,
       pg_get_expr(c.relpartbound, c.oid),
       CASE WHEN c.relkind = 'p' THEN pg_get_partkeydef(c.oid) END,
       c.reloptions
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relnamespace = ANY(%s) AND c.relkind IN ('r', 'p')
  AND {not_extension_member("pg_class", "c")}"""

INHERITS = """
SELECT i.inhrelid, i.inhparent FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
WHERE c.relnamespace = ANY(%s) AND c.relkind IN ('r', 'p')
ORDER BY i.inhrelid, i.inhseqno"""

COLUMNS = f"""
SELECT a.attrelid, a.attnum, a.attname, format_type(a.atttypid, a.atttypmod), a.atttypid::int,
       a.attnotnull, pg_get_expr(d.adbin, d.adrelid), a.attidentity::text,
       a.attgenerated::text, a.attislocal, {collation_clause("a.attcollation", "t.typcollation")}
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_type t ON t.oid = a.atttypid
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE c.relnamespace = ANY(%s) AND c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attrelid, a.attnum"""

# The primary key, unique and exclusion constraints of a plain table are added after its
# data, as pg_dump does: building the index once from the loaded rows takes the server less
# than maintaining it row by row (see docs/performance.md). Partitioned tables and
# partitions keep theirs inline: a partition's index attaches to its parent's.
_DEFERRED_KEY = "co.contype IN ('p', 'u', 'x') AND c.relkind = 'r' AND NOT c.relispartition"

# Other keys and validated checks go inside CREATE TABLE; the ones a partition or child
# inherits come with PARTITION OF / INHERITS.
INLINE_CONSTRAINTS = f"""
SELECT co.conrelid, co.conname, pg_get_constraintdef(co.oid, true)
FROM pg_constraint co JOIN pg_class c ON c.oid = co.conrelid
WHERE c.relnamespace = ANY(%s) AND c.relkind IN ('r', 'p') AND co.contype IN ('p', 'u', 'x', 'c')
  AND co.conislocal AND co.conparentid = 0 AND (co.contype <> 'c' OR co.convalidated)
  AND NOT ({_DEFERRED_KEY})
ORDER BY co.conrelid, array_position(ARRAY['p', 'u', 'x', 'c'], co.contype::text), co.conname"""

# After the data: deferred keys, foreign keys (so cycles and self-references load; each
# after the key it references, see DEPENDS) and NOT VALID checks.
LATE_CONSTRAINTS = f"""
SELECT co.oid, n.nspname, co.conname, c.relname, c.relkind::text,
       pg_get_constraintdef(co.oid, true)
FROM pg_constraint co JOIN pg_class c ON c.oid = co.conrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relnamespace = ANY(%s) AND c.relkind IN ('r', 'p') AND co.conparentid = 0
  AND (co.contype = 'f' OR (co.contype = 'c' AND NOT co.convalidated AND co.conislocal)
       OR ({_DEFERRED_KEY}))
ORDER BY n.nspname, c.relname, co.conname"""

TABLE_SEQUENCES = """
SELECT d.refobjid, d.refobjsubid, s.oid, s.relname, d.deptype::text
FROM pg_depend d
JOIN pg_class s ON s.oid = d.objid
JOIN pg_class t ON t.oid = d.refobjid
WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass
  AND d.deptype IN ('a', 'i') AND d.refobjsubid > 0 AND s.relkind = 'S'
  AND t.relnamespace = ANY(%s) AND s.relnamespace = t.relnamespace
ORDER BY s.relname"""

PRIMARY_KEYS = """
SELECT i.indrelid, a.attname
FROM pg_index i
JOIN pg_class c ON c.oid = i.indrelid
CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
WHERE i.indisprimary AND c.relnamespace = ANY(%s)
ORDER BY i.indrelid, k.ord"""

SEQUENCE = """
SELECT format_type(s.seqtypid, NULL), s.seqstart, s.seqincrement, s.seqmin, s.seqmax,
       s.seqcache, s.seqcycle, n.nspname, c.relname
FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE s.seqrelid = %s"""

# The same for every sequence in a list of oids (%s: the oids, not schemas), by oid.
SEQUENCES = """
SELECT s.seqrelid, format_type(s.seqtypid, NULL), s.seqstart, s.seqincrement, s.seqmin,
       s.seqmax, s.seqcache, s.seqcycle, n.nspname, c.relname
FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE s.seqrelid = ANY(%s)"""

# Each table's heap blocks, by oid: where a table is cut into ranges read on two sessions.
RELATION_BLOCKS = """
SELECT c.oid, pg_relation_size(c.oid) / current_setting('block_size')::int
FROM pg_class c WHERE c.relnamespace = ANY(%s) AND c.relkind IN ('r', 'p')"""

FREE_SEQUENCES = f"""
SELECT c.oid, n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relnamespace = ANY(%s) AND c.relkind = 'S' AND {not_extension_member("pg_class", "c")}
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                  AND d.objid = c.oid AND d.deptype = 'i')
ORDER BY c.relname"""


# -- other objects, and the dependencies that order them (objects.py) -------------------------

EXTENSIONS = """
SELECT x.oid, n.nspname, x.extname FROM pg_extension x JOIN pg_namespace n ON n.oid = x.extnamespace
WHERE x.extnamespace = ANY(%s) ORDER BY x.extname"""

_BASE_COLLATION = "(SELECT b.typcollation FROM pg_type b WHERE b.oid = t.typbasetype)"
TYPES = f"""
SELECT t.oid, n.nspname, t.typname, t.typtype::text, format_type(t.typbasetype, t.typtypmod),
       t.typnotnull, pg_get_expr(t.typdefaultbin, 0),
       {collation_clause("t.typcollation", _BASE_COLLATION)}
FROM pg_type t LEFT JOIN pg_class r ON r.oid = t.typrelid
JOIN pg_namespace n ON n.oid = t.typnamespace
WHERE t.typnamespace = ANY(%s) AND t.typtype IN ('e', 'd', 'c', 'r')
  AND (t.typtype <> 'c' OR r.relkind = 'c') AND {not_extension_member("pg_type", "t")}
ORDER BY n.nspname, t.typname"""

ENUM_LABELS = "SELECT enumlabel FROM pg_enum WHERE enumtypid = %s ORDER BY enumsortorder"

DOMAIN_CONSTRAINTS = """
SELECT conname, pg_get_constraintdef(oid, true) FROM pg_constraint
WHERE contypid = %s AND contype = 'c' ORDER BY conname"""

COMPOSITE_ATTRS = f"""
SELECT a.attname, format_type(a.atttypid, a.atttypmod),
       {collation_clause("a.attcollation", "at.typcollation")}
FROM pg_type t
JOIN pg_attribute a ON a.attrelid = t.typrelid
JOIN pg_type at ON at.oid = a.atttypid
WHERE t.oid = %s AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum"""

RANGE = """
SELECT format_type(r.rngsubtype, NULL),
       CASE WHEN r.rngsubdiff <> 0 THEN r.rngsubdiff::regproc::text END,
       (SELECT m.typname FROM pg_type m WHERE m.oid = r.rngmultitypid)
FROM pg_range r WHERE r.rngtypid = %s"""

ROUTINES = f"""
SELECT p.oid, n.nspname, p.proname, p.prokind::text,
       CASE WHEN p.prokind <> 'a' THEN pg_get_functiondef(p.oid) END
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE p.pronamespace = ANY(%s) AND {not_extension_member("pg_proc", "p")}
  AND NOT EXISTS (SELECT 1 FROM pg_depend i WHERE i.classid = 'pg_proc'::regclass
                  AND i.objid = p.oid AND i.deptype = 'i')  -- a range type's constructors
ORDER BY n.nspname, p.proname, p.oid"""

AGGREGATE = """
SELECT pg_get_function_arguments(a.aggfnoid), a.aggtransfn::regproc::text,
       format_type(a.aggtranstype, NULL), a.aggtransspace,
       CASE WHEN a.aggfinalfn <> 0 THEN a.aggfinalfn::regproc::text END, a.aggfinalextra,
       CASE WHEN a.aggcombinefn <> 0 THEN a.aggcombinefn::regproc::text END,
       CASE WHEN a.aggserialfn <> 0 THEN a.aggserialfn::regproc::text END,
       CASE WHEN a.aggdeserialfn <> 0 THEN a.aggdeserialfn::regproc::text END,
       a.agginitval,
       (SELECT 'OPERATOR(' || quote_ident(n.nspname) || '.' || o.oprname || ')'
          FROM pg_operator o JOIN pg_namespace n ON n.oid = o.oprnamespace
         WHERE o.oid = a.aggsortop)
FROM pg_aggregate a WHERE a.aggfnoid = %s"""

# Functions that column defaults, generated columns, checks and domains call: they must
# exist before the tables.
PRE_FUNCTIONS = """
SELECT DISTINCT d.refobjid FROM pg_depend d JOIN pg_proc p ON p.oid = d.refobjid
WHERE d.refclassid = 'pg_proc'::regclass AND p.pronamespace = ANY(%s)
  AND d.classid IN ('pg_attrdef'::regclass, 'pg_constraint'::regclass, 'pg_type'::regclass)
  AND NOT EXISTS (SELECT 1 FROM pg_constraint f WHERE d.classid = 'pg_constraint'::regclass
                  AND f.oid = d.objid AND f.contype = 'f')"""

VIEWS = f"""
SELECT c.oid, n.nspname, c.relname, c.relkind::text, pg_get_viewdef(c.oid, true),
       c.relispopulated, c.reloptions
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relnamespace = ANY(%s) AND c.relkind IN ('v', 'm')
  AND {not_extension_member("pg_class", "c")}
ORDER BY n.nspname, c.relname"""

INDEXES = f"""
SELECT i.indexrelid, n.nspname, ic.relname, t.relname,
       pg_get_indexdef(i.indexrelid, 0, true), i.indisunique, quote_ident(ic.relname)
FROM pg_index i
JOIN pg_class ic ON ic.oid = i.indexrelid
JOIN pg_class t ON t.oid = i.indrelid
JOIN pg_namespace n ON n.oid = t.relnamespace
WHERE t.relnamespace = ANY(%s) AND t.relkind IN ('r', 'p', 'm') AND NOT ic.relispartition
  AND {not_extension_member("pg_class", "ic")}
  AND NOT EXISTS (SELECT 1 FROM pg_constraint co WHERE co.conindid = i.indexrelid
                  AND co.conrelid = i.indrelid AND co.contype IN ('p', 'u', 'x'))
ORDER BY 2, ic.relname"""

TRIGGERS = """
SELECT tg.oid, n.nspname, tg.tgname, c.relname, pg_get_triggerdef(tg.oid, true)
FROM pg_trigger tg JOIN pg_class c ON c.oid = tg.tgrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relnamespace = ANY(%s) AND NOT tg.tgisinternal AND tg.tgparentid = 0
ORDER BY n.nspname, c.relname, tg.tgname"""

RULES = """
SELECT r.oid, n.nspname, r.rulename, c.relname, pg_get_ruledef(r.oid, true)
FROM pg_rewrite r JOIN pg_class c ON c.oid = r.ev_class
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relnamespace = ANY(%s) AND r.rulename <> '_RETURN'
ORDER BY n.nspname, c.relname, r.rulename"""

# Dependencies between objects, with each side mapped to the object we emit: a view's
# rewrite rule to the view, a row type to its relation, an array type to its element type,
# a standalone composite's relation to its type, a domain's check to the domain, a key's
# index to the key (a foreign key depends on the index of the key it references).
DEPENDS = """
WITH norm(cls, oid, ncls, noid) AS (
    SELECT 'pg_rewrite', r.oid, 'pg_class', r.ev_class FROM pg_rewrite r
    UNION ALL
    SELECT 'pg_class', c.oid, 'pg_type', c.reltype FROM pg_class c WHERE c.relkind = 'c'
    UNION ALL
    SELECT 'pg_type', t.oid, 'pg_class', t.typrelid
    FROM pg_type t JOIN pg_class c ON c.oid = t.typrelid WHERE c.relkind <> 'c'
    UNION ALL
    SELECT 'pg_type', t.oid, 'pg_type', t.typelem
    FROM pg_type t WHERE t.typcategory = 'A' AND t.typelem <> 0
    UNION ALL
    SELECT 'pg_constraint', c.oid, 'pg_type', c.contypid FROM pg_constraint c
    WHERE c.contypid <> 0
    UNION ALL
    SELECT 'pg_class', c.conindid, 'pg_constraint', c.oid FROM pg_constraint c
    WHERE c.contype IN ('p', 'u', 'x') AND c.conindid <> 0
)
SELECT coalesce(a.ncls, d.classid::regclass::text), coalesce(a.noid, d.objid)::int8,
       coalesce(b.ncls, d.refclassid::regclass::text), coalesce(b.noid, d.refobjid)::int8
FROM pg_depend d
LEFT JOIN norm a ON a.cls = d.classid::regclass::text AND a.oid = d.objid
LEFT JOIN norm b ON b.cls = d.refclassid::regclass::text AND b.oid = d.refobjid
WHERE d.deptype IN ('n', 'a')"""


# -- owners, privileges, comments, row security, default privileges (meta.py) -----------------

_GRANTEE = "CASE WHEN x.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(x.grantee) END"


def acl_as_json(acl: str) -> str:
    """SQL: the ACL ``acl`` (an aclitem[] expression) as JSON ``[[grantee, privilege,
    grantable], ...]``."""
    return (
        f"(SELECT coalesce(json_agg(json_build_array({_GRANTEE}, x.privilege_type,"
        f" x.is_grantable)), '[]') FROM aclexplode({acl}) x)"
    )


COLUMN_ACL = acl_as_json("a.attacl")  # aclexplode refuses an empty array
ROLE_DEFAULT_ACL = acl_as_json('acldefault(%s::"char", to_regrole(%s))')


def effective_acl_as_json(acl: str, default: str) -> str:
    """SQL: the effective ACL (``acl``, or the owner's default) as JSON ``[[grantee,
    privilege, grantable], ...]``, sorted."""
    return (
        f"(SELECT coalesce(json_agg(json_build_array({_GRANTEE}, x.privilege_type,"
        f" x.is_grantable) ORDER BY 1), '[]') FROM (SELECT * FROM aclexplode(coalesce({acl},"
        f" {default})) ORDER BY grantee, privilege_type) x)"
    )


_REL_DEFAULT = "acldefault((CASE WHEN c.relkind = 'S' THEN 's' ELSE 'r' END)::\"char\", c.relowner)"
META_RELATIONS = f"""
SELECT c.oid, pg_get_userbyid(c.relowner), c.relkind::text,
       {effective_acl_as_json("c.relacl", _REL_DEFAULT)},
       c.relrowsecurity, c.relforcerowsecurity
FROM pg_class c
WHERE c.relnamespace = ANY(%s) AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')"""

META_COLUMN_ACLS = f"""
SELECT a.attrelid, a.attname, {effective_acl_as_json("a.attacl", "NULL::aclitem[]")}
FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
WHERE c.relnamespace = ANY(%s) AND a.attnum > 0 AND NOT a.attisdropped
  AND a.attacl IS NOT NULL"""

META_COMMENTED_COLUMNS = """
SELECT a.attrelid, a.attnum, a.attname
FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_description d ON d.classoid = 'pg_class'::regclass AND d.objoid = a.attrelid
     AND d.objsubid = a.attnum
WHERE c.relnamespace = ANY(%s) AND a.attnum > 0 AND NOT a.attisdropped"""

META_TYPES = f"""
SELECT t.oid, pg_get_userbyid(t.typowner),
       {effective_acl_as_json("t.typacl", "acldefault('T', t.typowner)")}
FROM pg_type t LEFT JOIN pg_class r ON r.oid = t.typrelid
WHERE t.typnamespace = ANY(%s) AND t.typtype IN ('e', 'd', 'c', 'r')
  AND (t.typtype <> 'c' OR r.relkind = 'c')  -- types a dump creates, not tables' row types"""

META_ROUTINES = f"""
SELECT p.oid, pg_get_userbyid(p.proowner),
       {effective_acl_as_json("p.proacl", "acldefault('f', p.proowner)")},
       pg_get_function_identity_arguments(p.oid), oidvectortypes(p.proargtypes)
FROM pg_proc p WHERE p.pronamespace = ANY(%s)"""

META_SCHEMAS = f"""
SELECT n.nspname, pg_get_userbyid(n.nspowner),
       {effective_acl_as_json("n.nspacl", "acldefault('n', n.nspowner)")},
       obj_description(n.oid, 'pg_namespace')
FROM pg_namespace n WHERE n.oid = ANY(%s)"""

META_COMMENTS = """
SELECT d.classoid::regclass::text, d.objoid, d.objsubid, d.description FROM pg_description d
WHERE d.classoid IN ('pg_class'::regclass, 'pg_type'::regclass, 'pg_proc'::regclass,
                     'pg_constraint'::regclass, 'pg_trigger'::regclass, 'pg_rewrite'::regclass,
                     'pg_policy'::regclass, 'pg_extension'::regclass)
  AND d.objoid >= 16384  -- FirstNormalObjectId: not the thousands of the system's own"""

META_POLICIES = """
SELECT p.oid, n.nspname, c.relname, p.polname, p.polpermissive, p.polcmd::text,
       array(SELECT CASE WHEN r = 0 THEN 'public' ELSE pg_get_userbyid(r) END
             FROM unnest(p.polroles) r ORDER BY 1),
       pg_get_expr(p.polqual, p.polrelid), pg_get_expr(p.polwithcheck, p.polrelid)
FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relnamespace = ANY(%s) ORDER BY n.nspname, c.relname, p.polname"""

META_DEFAULT_ACLS = f"""
SELECT d.oid, pg_get_userbyid(d.defaclrole), n.nspname, d.defaclobjtype::text,
       {effective_acl_as_json("d.defaclacl", "NULL::aclitem[]")}
FROM pg_default_acl d LEFT JOIN pg_namespace n ON n.oid = d.defaclnamespace
WHERE d.defaclnamespace = 0 OR d.defaclnamespace = ANY(%s)
ORDER BY 2, 3 NULLS FIRST, 4"""


# -- what lies around the schemas a backup takes or a restore replaces (schemas.py) ----------


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

OUTSIDE_DEPENDENTS = f"""
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


# Objects a backup does not carry: named in the dump's header (and logged), never dropped
# without a word. Those in the dumped schemas, and the database-wide kinds.
NOT_CARRIED = f"""
SELECT 'collation', n.nspname || '.' || c.collname FROM pg_collation c
  JOIN pg_namespace n ON n.oid = c.collnamespace
  WHERE c.collnamespace = ANY(%(s)s) AND {not_extension_member("pg_collation", "c")}
UNION ALL
SELECT 'operator', n.nspname || '.' || o.oprname FROM pg_operator o
  JOIN pg_namespace n ON n.oid = o.oprnamespace
  WHERE o.oprnamespace = ANY(%(s)s) AND {not_extension_member("pg_operator", "o")}
UNION ALL
SELECT 'operator class', n.nspname || '.' || o.opcname FROM pg_opclass o
  JOIN pg_namespace n ON n.oid = o.opcnamespace
  WHERE o.opcnamespace = ANY(%(s)s) AND {not_extension_member("pg_opclass", "o")}
UNION ALL
SELECT 'text search configuration', n.nspname || '.' || t.cfgname FROM pg_ts_config t
  JOIN pg_namespace n ON n.oid = t.cfgnamespace
  WHERE t.cfgnamespace = ANY(%(s)s) AND {not_extension_member("pg_ts_config", "t")}
UNION ALL
SELECT 'text search dictionary', n.nspname || '.' || t.dictname FROM pg_ts_dict t
  JOIN pg_namespace n ON n.oid = t.dictnamespace
  WHERE t.dictnamespace = ANY(%(s)s) AND {not_extension_member("pg_ts_dict", "t")}
UNION ALL
SELECT 'conversion', n.nspname || '.' || c.conname FROM pg_conversion c
  JOIN pg_namespace n ON n.oid = c.connamespace
  WHERE c.connamespace = ANY(%(s)s) AND {not_extension_member("pg_conversion", "c")}
UNION ALL
SELECT 'statistics', n.nspname || '.' || x.stxname FROM pg_statistic_ext x
  JOIN pg_namespace n ON n.oid = x.stxnamespace WHERE x.stxnamespace = ANY(%(s)s)
UNION ALL
SELECT 'foreign table', n.nspname || '.' || c.relname FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE c.relnamespace = ANY(%(s)s) AND c.relkind = 'f' AND {not_extension_member("pg_class", "c")}
UNION ALL
SELECT 'cast', format_type(c.castsource, NULL) || ' AS ' || format_type(c.casttarget, NULL)
  FROM pg_cast c WHERE c.oid >= 16384 AND {not_extension_member("pg_cast", "c")}
UNION ALL
SELECT 'publication', p.pubname FROM pg_publication p
UNION ALL
SELECT 'event trigger', t.evtname FROM pg_event_trigger t
  WHERE {not_extension_member("pg_event_trigger", "t")}
UNION ALL
SELECT 'large objects', count(*)::text FROM pg_largeobject_metadata HAVING count(*) > 0
ORDER BY 1, 2"""


# What the objects of the schemas %(s)s store as text that holds %(p)s: after a staged
# restore renamed its schemas, a staging name in any of it would outlive the rename.
STORED_TEXT_NAMING = """
SELECT pg_describe_object('pg_attrdef'::regclass, d.oid, 0) FROM pg_attrdef d
  JOIN pg_class c ON c.oid = d.adrelid
  WHERE c.relnamespace = ANY(%(s)s) AND strpos(pg_get_expr(d.adbin, d.adrelid), %(p)s) > 0
UNION ALL
SELECT pg_describe_object('pg_constraint'::regclass, co.oid, 0) FROM pg_constraint co
  WHERE co.connamespace = ANY(%(s)s) AND strpos(pg_get_constraintdef(co.oid), %(p)s) > 0
UNION ALL
SELECT pg_describe_object('pg_proc'::regclass, p.oid, 0) FROM pg_proc p
  WHERE p.pronamespace = ANY(%(s)s) AND strpos(concat_ws(' ', p.prosrc, p.proconfig::text,
        CASE WHEN p.prokind <> 'a' THEN pg_get_functiondef(p.oid) END), %(p)s) > 0
UNION ALL
SELECT pg_describe_object('pg_class'::regclass, c.oid, 0) FROM pg_class c
  WHERE c.relnamespace = ANY(%(s)s) AND strpos(concat_ws(' ', c.reloptions::text,
        CASE WHEN c.relkind IN ('v', 'm') THEN pg_get_viewdef(c.oid) END,
        CASE WHEN c.relkind = 'i' THEN pg_get_indexdef(c.oid) END,
        CASE WHEN c.relispartition THEN pg_get_expr(c.relpartbound, c.oid) END,
        CASE WHEN c.relkind = 'p' THEN pg_get_partkeydef(c.oid) END), %(p)s) > 0
UNION ALL
SELECT pg_describe_object('pg_type'::regclass, t.oid, 0) FROM pg_type t
  WHERE t.typnamespace = ANY(%(s)s) AND strpos(coalesce(t.typdefault, ''), %(p)s) > 0
UNION ALL
SELECT pg_describe_object('pg_trigger'::regclass, g.oid, 0) FROM pg_trigger g
  JOIN pg_class c ON c.oid = g.tgrelid
  WHERE c.relnamespace = ANY(%(s)s) AND NOT g.tgisinternal
    AND strpos(pg_get_triggerdef(g.oid), %(p)s) > 0
UNION ALL
SELECT pg_describe_object(d.classoid, d.objoid, d.objsubid) FROM pg_description d
  WHERE strpos(d.description, %(p)s) > 0
ORDER BY 1"""
