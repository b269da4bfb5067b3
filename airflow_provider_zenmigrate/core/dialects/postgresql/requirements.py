"""What a PostgreSQL restore needs from the target server beyond the dump: roles, extensions.

A dump's owner, grant, policy and default-privilege statements name roles, which exist per
server, not per database, and a backup does not carry them. Its extension records run
``CREATE EXTENSION``, which needs the extension's files on the server and, where the target
database does not have it yet, the right to create it. Both fail late in a restore, as a
server error; the rule pass of restores and dry runs (:mod:`..preflight`) asks
:func:`missing_requirements` first and names what is missing.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

#: ``GRANT ... TO PUBLIC`` names every role: no role of that name can exist.
_EVERYONE = "public"

_ROLES = text("SELECT rolname FROM pg_roles WHERE rolname = ANY(:names)")
_EXTENSIONS = text(
    "SELECT a.name, COALESCE(v.trusted, false) FROM pg_available_extensions a"
    " LEFT JOIN pg_available_extension_versions v"
    "   ON v.name = a.name AND v.version = a.default_version"
    " WHERE a.name = ANY(:names)"
)
_INSTALLED = text("SELECT extname FROM pg_extension WHERE extname = ANY(:names)")
_RIGHTS = text(
    "SELECT current_user, current_database(), r.rolsuper,"
    " has_database_privilege(current_database(), 'CREATE')"
    " FROM pg_roles r WHERE r.rolname = current_user"
)


def missing_requirements(engine: Engine, roles: set[str], extensions: set[str]) -> list[str]:
    """One message per role in ``roles`` the server does not have, and per extension in
    ``extensions`` the restore could neither find installed in ``engine``'s database nor
    create there: not available on the server at all (its files are not installed), or
    available but not installed, and the restoring role may not create it (only a superuser
    may, or for a trusted extension a role with CREATE on the database).

    ``engine`` is the target database's; for a database the restore will create, pass the
    server-level (maintenance database's) engine: a new database is a copy of ``template1``,
    which usually holds the same extensions.
    """
    wanted_roles = sorted(r for r in roles if r.lower() != _EVERYONE)
    wanted_extensions = sorted(extensions)
    if not wanted_roles and not wanted_extensions:
        return []
    with engine.connect() as conn:
        missing = _missing_roles(conn, wanted_roles)
        missing += _missing_extensions(conn, wanted_extensions)
    return missing


def _missing_roles(conn: Connection, names: list[str]) -> list[str]:
    if not names:
        return []
    found = set(conn.execute(_ROLES, {"names": names}).scalars())
    return [f"role {name!r} does not exist on the server" for name in names if name not in found]


def _missing_extensions(conn: Connection, names: list[str]) -> list[str]:
    if not names:
        return []
    # name -> trusted (a role with CREATE on the database may create it)
    available = {row[0]: bool(row[1]) for row in conn.execute(_EXTENSIONS, {"names": names})}
    # Installed ones count even without their files (removed since): the restore keeps them.
    installed = set(conn.execute(_INSTALLED, {"names": names}).scalars())
    user, database, superuser, may_create = conn.execute(_RIGHTS).one()
    missing = []
    for name in names:
        if name in installed:
            continue
        if name not in available:
            missing.append(
                f"extension {name!r} is not available on the server (not in "
                "pg_available_extensions: its files are not installed)"
            )
            continue
        trusted = available[name]
        if superuser or (trusted and may_create):
            continue  # the restore creates it
        why = "it is not trusted" if not trusted else f"{user!r} lacks CREATE on {database!r}"
        missing.append(
            f"extension {name!r} is available on the server but not installed in "
            f"{database!r}, and role {user!r} may not create it ({why}; a superuser may)"
        )
    return missing
