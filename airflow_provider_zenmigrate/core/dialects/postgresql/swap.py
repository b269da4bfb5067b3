"""The swap of a PostgreSQL restore: the schemas it replaces, inside its one transaction.

At the start each schema the dump restores that exists is renamed away
(``zm_old_<label>_<n>``) and created anew, so the dump's statements run as they were
written. At the end the old ones are dropped (foreign keys from outside re-pointed at the
restored tables) and the transaction commits: other sessions see the old schemas until then,
the new ones at once after. A failed or killed restore rolls back and leaves nothing behind,
so there is nothing stale to clean up later.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg

from . import connection
from .names import quote_ident
from .schemas import OutsideKey, SchemaMeta, existing, meta_statements, outside_keys, schema_meta

#: Prefix of the names the replaced schemas have until they are dropped.
OLD_PREFIX = "zm_old_"


class SchemaSwap:
    """Replaces whole schemas within a restore's transaction (see the module's docstring)."""

    def __init__(self, conn: psycopg.Connection[Any], label: str) -> None:
        self._conn = conn
        #: Prefix of this restore's renamed schemas.
        self.old = OLD_PREFIX + label
        #: Each replaced schema that existed -> what it was renamed to, until dropped.
        self.renamed: dict[str, str] = {}
        #: The owner, privileges and comment of each replaced schema, for dumps that do not
        #: carry them (those from before several schemas were covered).
        self._kept_meta: dict[str, SchemaMeta] = {}
        self._outside_keys: list[OutsideKey] = []

    def replace(self, names: list[str], *, keep_meta: bool) -> None:
        """Rename the existing schemas of ``names`` away and create them all anew;
        ``keep_meta``: the new ones get the old ones' owner, privileges and comment."""
        conn = self._conn
        found = existing(conn, names)
        self._outside_keys = outside_keys(conn, list(found.values()))
        for n, name in enumerate(sorted(found)):
            if keep_meta:
                self._kept_meta[name] = schema_meta(conn, found[name])
            self.renamed[name] = f"{self.old}_{n}"
            connection.execute_one(
                conn,
                f"ALTER SCHEMA {quote_ident(name)} RENAME TO {quote_ident(self.renamed[name])}",
            )
        for name in names:
            connection.execute_one(conn, f"CREATE SCHEMA {quote_ident(name)}")

    def replace_staged(self, staged: dict[str, str]) -> None:
        """Rename the existing schemas of ``staged`` (name -> the schema built for it) away
        and the built ones to their names (:mod:`.staging`)."""
        conn = self._conn
        found = existing(conn, staged)
        # Taken first: anything outside the old schemas that depends on them (a staged
        # object that names one of them instead of its staged twin) refuses the swap.
        self._outside_keys = outside_keys(conn, list(found.values()))
        for n, name in enumerate(sorted(found)):
            self.renamed[name] = f"{self.old}_{n}"
            connection.execute_one(
                conn,
                f"ALTER SCHEMA {quote_ident(name)} RENAME TO {quote_ident(self.renamed[name])}",
            )
        for name, built in staged.items():
            connection.execute_one(
                conn, f"ALTER SCHEMA {quote_ident(built)} RENAME TO {quote_ident(name)}"
            )

    def drop_old(self, apply_meta: Callable[[], None]) -> None:
        """Give the new schemas what they keep, run ``apply_meta`` (the restored objects'
        owners and privileges), then drop the old schemas, foreign keys from outside
        re-created against the restored tables (and checked). The caller commits."""
        conn = self._conn
        for name, meta in self._kept_meta.items():
            for statement in meta_statements(name, meta):
                connection.execute_one(conn, statement)
        apply_meta()
        for key in self._outside_keys:
            connection.execute_one(
                conn, f"ALTER TABLE {key.table} DROP CONSTRAINT {quote_ident(key.name)}"
            )
        for old in self.renamed.values():
            connection.execute_one(conn, f"DROP SCHEMA {quote_ident(old)} CASCADE")
        for key in self._outside_keys:
            connection.execute_one(
                conn,
                f"ALTER TABLE {key.table} ADD CONSTRAINT {quote_ident(key.name)} {key.definition}",
            )
