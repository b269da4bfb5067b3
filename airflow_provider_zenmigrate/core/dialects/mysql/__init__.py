"""MySQL and MariaDB.

Public: :class:`MySQLOps` (what the dialect registry takes), :class:`MySQLBackupReader`,
:class:`MySQLRestoreWriter`, and the statement checks :func:`check_table_statement` and
:func:`check_object_statement` (the registry's ``statement_rules`` and the dry run use them).
Everything else is the package's own. The modules, one concept each:

- ``admin``: :class:`MySQLOps`, databases, the migration lock, opening a backup or restore;
- ``session``: our own server session (:class:`~.session.ServerSession`);
- ``catalog``: every information_schema and SHOW CREATE query;
- ``render``: value codecs by column type, and the server-side rendering of rows as JSON;
- ``reader``: :class:`MySQLBackupReader`, the snapshot on up to three sessions;
- ``wire``: a one-column result read off the wire in bulk;
- ``pymysql_internals``: every use of pymysql's private API;
- ``statements``: the checks of every statement a dump asks the restore to run;
- ``load``: LOAD DATA LOCAL on further connections;
- ``writer``: :class:`MySQLRestoreWriter`, loading the staging database;
- ``swap``: the swap into the target, its side databases and its recovery;
- ``grants``: grants on routines, kept across the swap.

Tested against MariaDB 10.11 only. Known MySQL 8 differences (untested here):

- ``JSON`` is a binary type on MySQL 8: it is read as its normalised text and parsed again on
  load (same value, not necessarily the same text); on MariaDB it is LONGTEXT and kept exactly.
- MySQL 8 writes version comments (``/*!80016 NOT ENFORCED */``, ``/*!50100 PARTITION ...*/``)
  into SHOW CREATE output; the restore inlines their contents before checking and executing
  them (see ``sql_lexer.inline_version_comments``), whatever the version number says.
- ``check_constraint_checks`` exists only on MariaDB; MySQL 8 enforces CHECK constraints while
  the rows are loaded (rows that satisfied them at backup time satisfy them again).
- Administration and locking: GET_LOCK and information_schema behave the same.
"""

from __future__ import annotations

from .admin import MySQLOps
from .reader import MySQLBackupReader
from .statements import check_object_statement, check_table_statement
from .writer import MySQLRestoreWriter

__all__ = [
    "MySQLBackupReader",
    "MySQLOps",
    "MySQLRestoreWriter",
    "check_object_statement",
    "check_table_statement",
]
