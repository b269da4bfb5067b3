"""The argument parser, built from the command functions.

A command's name is its function's without ``cmd_`` (``cmd_backup_to_db``: ``backup-to-db``),
its help the first paragraph of the function's docstring; this module adds only the
arguments. Option groups several commands share (output, database, storage, scripts,
trust) are parent parsers.
"""

from __future__ import annotations

import argparse
import inspect
from collections.abc import Callable, Sequence

from .commands import (
    cmd_backup,
    cmd_backup_to_db,
    cmd_current,
    cmd_downgrade,
    cmd_heads,
    cmd_inspect,
    cmd_list,
    cmd_prune,
    cmd_rehearse,
    cmd_rekey,
    cmd_restore,
    cmd_upgrade,
    cmd_verify,
)
from .commands.rehearsal import add_rehearse_arguments
from .databases import PASSWORD_ENV
from .encryption import add_key_options, encryption_options
from .output import Output

#: A command: parsed arguments and where to print, to an exit code.
Command = Callable[[argparse.Namespace, Output], int]


class _Version(argparse.Action):
    """``--version``: the package's version, looked up only when asked for (the
    package's lazy ``__version__``), so that building the parser reads nothing more."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS) -> None:
        super().__init__(
            option_strings,
            dest,
            nargs=0,
            default=argparse.SUPPRESS,
            help="show program's version number and exit",
        )

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[object] | None,
        option_string: str | None = None,
    ) -> None:
        from .. import __version__

        print(f"{parser.prog} {__version__}")  # on stdout, as argparse's own version action
        parser.exit()


def command_name(command: Command) -> str:
    return command.__name__.removeprefix("cmd_").replace("_", "-")


def command_help(command: Command) -> str:
    """The first paragraph of the command's docstring, on one line."""
    doc = inspect.getdoc(command) or ""
    return " ".join(doc.split("\n\n")[0].split())


def _output_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("output")
    group.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    group.add_argument("-q", "--quiet", action="store_true", help="no progress, no log lines")
    group.add_argument("--debug", action="store_true", help="debug logs; tracebacks on errors")
    return common


def _database_options() -> argparse.ArgumentParser:
    database = argparse.ArgumentParser(add_help=False)
    group = database.add_argument_group("database")
    group.add_argument(
        "--airflow-conn",
        metavar="ID",
        help="take the database from this Airflow connection instead of a URL",
    )
    group.add_argument(
        "--password-env",
        metavar="VAR",
        help=f"read the password from this environment variable (default: {PASSWORD_ENV}, "
        "used when set and the URL has a user but no password)",
    )
    group.add_argument(
        "-W",
        "--password-prompt",
        action="store_true",
        help="ask for the password (read from stdin when it is not a terminal)",
    )
    group.add_argument("--version-table", default="alembic_version", help="Alembic version table")
    return database


def _storage_options() -> argparse.ArgumentParser:
    storage = argparse.ArgumentParser(add_help=False)
    storage.add_argument(
        "--airflow-storage-conn",
        metavar="ID",
        help="object-store credentials from this Airflow connection (aws, gcp, wasb)",
    )
    return storage


def _scripts_options() -> argparse.ArgumentParser:
    scripts = argparse.ArgumentParser(add_help=False)
    scripts.add_argument("--scripts", metavar="DIR", help="migration scripts folder")
    scripts.add_argument("--config", metavar="INI", help="alembic.ini of a full Alembic project")
    return scripts


def _trust_options() -> argparse.ArgumentParser:
    trust = argparse.ArgumentParser(add_help=False)
    trust.add_argument(
        "--allow-unverified",
        action="store_true",
        help="accept a dump without header and trailer (the legacy (unverified) format)",
    )
    trust.add_argument(
        "--allow-routines",
        action="store_true",
        help="create the dump's functions, procedures, aggregates and events: their bodies "
        "are code the server runs, which the safety checks cannot fully read (trusted "
        "dumps only)",
    )
    return trust


def _jobs(parser: argparse.ArgumentParser, help_: str) -> None:
    parser.add_argument("--jobs", "-j", type=int, default=1, metavar="N", help=help_)


def _exclude_schema(parser: argparse.ArgumentParser, help_: str) -> None:
    parser.add_argument(
        "--exclude-schema", action="append", metavar="NAME", dest="exclude_schema", help=help_
    )


def build_parser() -> argparse.ArgumentParser:
    common = _output_options()
    database = _database_options()
    storage = _storage_options()
    scripts = _scripts_options()
    trust = _trust_options()
    keys = encryption_options()

    parser = argparse.ArgumentParser(
        prog="zenmigrate",
        description="Back up, restore, verify and migrate MySQL/MariaDB, PostgreSQL and "
        "SQLite databases. DB_URL is an SQLAlchemy URL (mysql+pymysql://user@host/db, "
        "postgresql+psycopg://user@host/db, sqlite:///path.db); storage URIs are local "
        "paths or file://, s3://, gs://, azure:// (.gz / .zst compress).",
        epilog="Exit codes: 0 success, 1 failure (also when interrupted or not confirmed), "
        "2 usage error, 3 rehearse: the gate failed.",
    )
    parser.add_argument("--version", action=_Version)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def add(
        command: Command, *parents: argparse.ArgumentParser, aliases: Sequence[str] = ()
    ) -> argparse.ArgumentParser:
        help_ = command_help(command)
        p = sub.add_parser(
            command_name(command),
            aliases=list(aliases),
            help=help_,
            description=help_,
            parents=[common, *parents],
        )
        p.set_defaults(func=command)
        return p

    p = add(cmd_backup, database, storage, keys)
    p.add_argument("db_url", nargs="?", metavar="DB_URL")
    p.add_argument("dest_uri", metavar="DEST_URI")
    p.add_argument(
        "--schema",
        action="append",
        metavar="NAME",
        help="PostgreSQL: back up only this schema (repeatable; default: every schema but "
        "the system ones)",
    )
    _exclude_schema(p, "PostgreSQL: leave this schema out (repeatable); the dump says so")
    _jobs(
        p,
        "worker processes reading one snapshot (default 1: one stream at DEST_URI); above 1, "
        "DEST_URI is the prefix of a multi-part dump (its parts and manifest.json)",
    )

    p = add(cmd_restore, database, storage, trust, keys)
    p.add_argument(
        "--require-encryption",
        action="store_true",
        help="refuse a dump that is not encrypted (and authenticated by one of the keys)",
    )
    p.add_argument("source_uri", metavar="SOURCE_URI")
    p.add_argument("db_url", nargs="?", metavar="DB_URL")
    p.add_argument("-y", "--yes", action="store_true", help="replace a non-empty database")
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="check the dump with every rule the restore applies, and the target server for "
        "the roles and extensions it needs; report what would be replaced",
    )
    _exclude_schema(p, "PostgreSQL: refuse a dump that holds this schema (repeatable)")
    _jobs(p, "worker processes loading the parts of a multi-part dump (default 1)")
    p.add_argument(
        "--fresh",
        action="store_true",
        help="discard what an interrupted restore of this dump left (its staging area and "
        "progress) and start over; by default a rerun resumes it",
    )
    p.add_argument(
        "--no-owner",
        action="store_true",
        help="PostgreSQL: leave every object to the restoring role (as pg_restore --no-owner)",
    )
    p.add_argument(
        "--no-privileges",
        action="store_true",
        help="PostgreSQL: restore no GRANT or REVOKE (as pg_restore --no-privileges)",
    )
    p.add_argument(
        "--skip-missing-roles",
        action="store_true",
        help="PostgreSQL: leave out, with a warning, owners and grants naming roles the "
        "target lacks (by default such a dump is refused before anything changes)",
    )

    add(cmd_verify, storage, trust, keys).add_argument("uri", metavar="URI")
    add(cmd_inspect, storage, keys).add_argument("uri", metavar="URI")
    p = add(cmd_rekey, storage, keys)
    p.add_argument("uri", metavar="URI")
    add_key_options(p, new=True)
    add(cmd_list, storage, keys).add_argument("prefix_uri", metavar="PREFIX_URI")

    p = add(cmd_prune, storage)
    p.add_argument("prefix_uri", metavar="PREFIX_URI")
    p.add_argument(
        "--keep-last",
        "--keep",
        type=int,
        required=True,
        metavar="N",
        dest="keep_last",
        help="how many of the newest backups to keep (--keep is the older name)",
    )
    p.add_argument("--dry-run", action="store_true", help="only list what would be deleted")

    p = add(cmd_upgrade, database, scripts)
    p.add_argument("db_url", nargs="?", metavar="DB_URL")
    p.add_argument("--revision", metavar="R", help="target revision (default: heads)")

    p = add(cmd_downgrade, database, scripts)
    p.add_argument("db_url", nargs="?", metavar="DB_URL")
    p.add_argument("--revision", metavar="R", required=True, help="target revision or base")

    add(cmd_current, database, scripts).add_argument("db_url", nargs="?", metavar="DB_URL")
    add(cmd_heads, scripts)

    add_rehearse_arguments(add(cmd_rehearse, database, storage, scripts))

    p = add(cmd_backup_to_db, database, aliases=["copy"])
    p.add_argument("db_url", nargs="?", metavar="DB_URL")
    p.add_argument("backup_db", metavar="BACKUP_DB")
    return parser
