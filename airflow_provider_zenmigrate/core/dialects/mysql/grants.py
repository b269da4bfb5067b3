"""Grants on a restored database's routines (MySQL/MariaDB), kept across the swap.

The server keeps grants in its ``mysql`` schema, by name. Table, column and database grants
(``tables_priv``, ``columns_priv``, ``db``) name a database and a table (and column):
RENAME TABLE, DROP TABLE and DROP DATABASE leave them alone, so after the swap they apply
to the restored tables of the same names (measured on MariaDB 10.11). Routine grants
(``procs_priv``) do not survive by themselves: with ``automatic_sp_privileges`` on (the
default), DROP PROCEDURE / DROP FUNCTION revokes every account's grants on the routine, and
the swap drops the target's routines and creates the restored ones. So the swap reads those
grants first and grants them again on the restored routines of the same name and type (a
routine the dump does not hold loses its grants with it, as a DROP would).

The grants are given again by the restoring account: it needs GRANT OPTION and the granted
privileges (root has both). ``Grantor`` becomes that account; the rest is as it was.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import pymysql.err

logger = logging.getLogger(__name__)

# Reading mysql.procs_priv refused: ER_TABLEACCESS_DENIED_ERROR, ER_DBACCESS_DENIED_ERROR.
_NO_ACCESS = (1142, 1044)
# Routine kinds the restore replaces, by their ROUTINE_TYPE / procs_priv.Routine_type.
ROUTINE_KINDS = ("PROCEDURE", "FUNCTION")
_MYSQL_VERSION = re.compile(r"\A(\d+)\.")


class _Queries(Protocol):
    """What :func:`read_routine_grants` needs of a session (a :class:`~.session.ServerSession`)."""

    def query(self, sql: str, args: Sequence[Any] = ...) -> list[tuple[Any, ...]]: ...

    def scalar(self, sql: str, args: Sequence[Any] = ...) -> Any: ...


@dataclass(frozen=True)
class RoutineGrant:
    """One row of ``mysql.procs_priv``: an account's privileges on one routine."""

    user: str
    host: str  # '' for a role (MariaDB's PUBLIC too)
    routine: str
    kind: str  # PROCEDURE or FUNCTION
    privileges: frozenset[str]  # of 'Execute', 'Alter Routine', 'Grant'

    def key(self) -> tuple[str, str]:
        """The routine it names: routine names are case-insensitive."""
        return self.kind.upper(), self.routine.lower()

    def statement(self, quote: Callable[[str], str], database: str) -> str:
        """The GRANT that gives these privileges on ``database``'s routine of this name."""
        named = [p.upper() for p in ("Execute", "Alter Routine") if p in self.privileges]
        option = "Grant" in self.privileges
        what = ", ".join(named) or "GRANT OPTION"
        grantee = quote(self.user) if self.host == "" else f"{quote(self.user)}@{quote(self.host)}"
        return (
            f"GRANT {what} ON {self.kind.upper()} {quote(database)}.{quote(self.routine)} "
            f"TO {grantee}" + (" WITH GRANT OPTION" if option and named else "")
        )


def read_routine_grants(session: _Queries, database: str) -> list[RoutineGrant]:
    """Every grant on ``database``'s procedures and functions that a DROP would revoke.

    Empty when the server keeps them over a DROP (``automatic_sp_privileges`` off). Only
    grants to accounts that exist: a GRANT to a missing one would create it (without a
    password) under the restore's sql_mode. An account that may not read ``mysql.procs_priv``
    gets a warning: the restore then drops those grants, as it did before they were kept.
    """
    if not int(session.scalar("SELECT @@automatic_sp_privileges")):
        return []
    try:
        rows = session.query(
            "SELECT p.User, p.Host, p.Routine_name, p.Routine_type, p.Proc_priv "
            "FROM mysql.procs_priv p WHERE p.Db = %s AND p.Routine_type IN (%s, %s) "
            "AND EXISTS (SELECT 1 FROM mysql.user u WHERE u.User = p.User AND u.Host = p.Host) "
            "ORDER BY p.Routine_type, p.Routine_name, p.User, p.Host",
            (database, *ROUTINE_KINDS),
        )
    except pymysql.err.MySQLError as exc:
        if exc.args[0] not in _NO_ACCESS:
            raise
        logger.warning(
            "cannot read the grants on the routines of %s (%s): the restore drops them with "
            "the routines",
            database,
            exc.args[1] if len(exc.args) > 1 else exc,
        )
        return []
    return [
        RoutineGrant(user, host, routine, kind, frozenset(_set_members(privileges)))
        for user, host, routine, kind, privileges in rows
    ]


def _set_members(value: Any) -> Iterable[str]:
    """A SET column's members (pymysql returns its text, or a set where told to)."""
    if isinstance(value, (set, frozenset)):
        return value
    return [p for p in str(value or "").split(",") if p]


def kept_grants(
    grants: list[RoutineGrant], routines: Iterable[tuple[str, str]]
) -> list[RoutineGrant]:
    """The grants whose routine (kind, name) is among ``routines``."""
    present = {(kind.upper(), name.lower()) for kind, name in routines}
    return [g for g in grants if g.key() in present]


def grant_sql_mode(server_version: str, sql_mode: str) -> str:
    """``sql_mode`` for our GRANTs: MariaDB and MySQL before 8 create a missing grantee
    unless NO_AUTO_CREATE_USER is set (MySQL 8 never does, and has no such mode)."""
    match = _MYSQL_VERSION.match(server_version)
    mysql8 = "mariadb" not in server_version.lower() and match and int(match.group(1)) >= 8
    return sql_mode if mysql8 else f"{sql_mode},NO_AUTO_CREATE_USER"
