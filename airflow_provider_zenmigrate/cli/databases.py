"""The database and the object store a command line names, as the core's objects.

A database comes from a URL (its password from the URL, an environment variable or a
prompt) or from an Airflow connection (``--airflow-conn``); object-store credentials from
the environment or an Airflow connection (``--airflow-storage-conn``). Airflow is imported
only when one of those options is given, SQLAlchemy only when a command reaches a database
(the parser imports this module for every run, ``--version`` included).
"""

from __future__ import annotations

import argparse
import getpass
import logging
import os
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..core.errors import CommandUsageError, UnsupportedDatabaseError
from .output import Output, safe_uri

if TYPE_CHECKING:
    from sqlalchemy.engine import URL, Engine

    from ..core.dialects import DialectOps
    from ..core.dump.model import BackupScope, RestoreOptions
    from ..core.engines import Engines
    from ..core.utils import MigrationUtils

logger = logging.getLogger("zenmigrate.cli")

#: The default environment variable a database password is read from.
PASSWORD_ENV = "ZENMIGRATE_PASSWORD"


def parse_db_url(text: str) -> URL:
    """The URL of a supported database that names its database; else a usage error."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    from ..core.dialects import get_dialect

    try:
        url = make_url(text)
    except ArgumentError:
        raise CommandUsageError(f"not a database URL: {safe_uri(text)!r}") from None
    try:
        get_dialect(url)
    except UnsupportedDatabaseError as exc:
        raise CommandUsageError(str(exc)) from None
    if not url.database:
        raise CommandUsageError(
            f"the URL {url.render_as_string(hide_password=True)} names no database"
        )
    return url


def _password(args: argparse.Namespace, url: URL) -> str | None:
    if url.get_backend_name() == "sqlite" or url.password is not None:
        return None
    if args.password_prompt:
        prompt = f"Password for {url.render_as_string(hide_password=True)}: "
        if sys.stdin.isatty():
            return getpass.getpass(prompt, stream=sys.stderr)
        return sys.stdin.readline().rstrip("\r\n")
    value = os.environ.get(args.password_env or PASSWORD_ENV)
    if args.password_env and value is None:
        raise CommandUsageError(f"the environment variable {args.password_env} is not set")
    return value


@dataclass
class Database:
    """A database named on the command line, with its engines and the command's options.

    ``backup`` and ``restore`` use it as it is (it is a ``core.restore.RestoreTarget``); the
    other commands build the core's ``MigrationUtils`` from it (:meth:`utils`). That pydantic
    model's import and class cost about 0.1 s, a quarter of an empty backup's whole command
    (issue 27).
    """

    url: URL
    engines: Engines
    version_table: str
    transport_params: dict[str, Any] | None
    #: PostgreSQL's ``--schema`` / ``--exclude-schema`` and ownership options.
    scope: BackupScope
    restore_options: RestoreOptions

    @property
    def safe_url(self) -> str:
        return self.url.render_as_string(hide_password=True)

    @property
    def engine(self) -> Engine:
        return self.engines.get(self.url.database)

    @property
    def master_engine(self) -> Engine:
        return self.engines.get(None)

    def database_exists(self) -> bool:
        """Whether the database exists. On a server, learnt by connecting to it: the backup or
        restore then reuses that pooled connection, where asking the server's master database
        first would open one more (about 10 ms of an empty PostgreSQL backup). A failed
        connection that does not say why (PostgreSQL's has no SQLSTATE) asks the master."""
        from sqlalchemy.exc import OperationalError

        ops = _dialect(self.url)
        name = ops.database_name(self.url)
        if not ops.connecting_creates_database:
            try:
                with self.engine.connect():
                    return True
            except OperationalError as exc:
                if ops.is_missing_database_error(exc):
                    return False
                if ops.database_exists(self.master_engine, self.url, name):
                    raise  # it exists, so the connection failed for another reason
                return False
        return ops.database_exists(self.master_engine, self.url, name)

    def create_database(self) -> None:
        ops = _dialect(self.url)
        ops.create_database(self.master_engine, self.url, ops.database_name(self.url))

    def utils(self) -> MigrationUtils:
        """The core's object for this database."""
        from ..core.utils import MigrationUtils

        return MigrationUtils(
            url=self.url,
            connect_args=self.engines.connect_args,
            engine_args=self.engines.engine_args,
            version_table=self.version_table,
            transport_params=self.transport_params,
            schemas=list(self.scope.schemas),
            exclude_schemas=list(self.scope.exclude_schemas),
            no_owner=self.restore_options.no_owner,
            no_privileges=self.restore_options.no_privileges,
            skip_missing_roles=self.restore_options.skip_missing_roles,
        )

    def dispose(self) -> None:
        self.engines.dispose()


def _dialect(target: URL | Engine) -> DialectOps:
    from ..core.dialects import get_dialect

    return get_dialect(target)


def _options(args: argparse.Namespace) -> tuple[BackupScope, RestoreOptions]:
    """The schema and ownership options of ``backup`` / ``restore`` (PostgreSQL); other
    commands have none."""
    from ..core.dump.model import BackupScope, RestoreOptions

    excluded = tuple(getattr(args, "exclude_schema", None) or ())
    scope = BackupScope(tuple(getattr(args, "schema", None) or ()), excluded)
    return scope, RestoreOptions(
        no_owner=bool(getattr(args, "no_owner", False)),
        no_privileges=bool(getattr(args, "no_privileges", False)),
        skip_missing_roles=bool(getattr(args, "skip_missing_roles", False)),
        exclude_schemas=excluded,
    )


def database(args: argparse.Namespace, out: Output, db_url: str | None) -> Database:
    """The database named on the command line (a URL or ``--airflow-conn``); every password
    it learns is added to the secrets ``out`` redacts."""
    from ..core.engines import Engines

    if args.airflow_conn:
        if db_url:
            raise CommandUsageError("give either a database URL or --airflow-conn, not both")
        try:
            from ..hooks.zenmigrate import ZenMigrateHook
        except ImportError as exc:
            raise CommandUsageError(f"--airflow-conn needs Apache Airflow ({exc})") from None
        hook = ZenMigrateHook(
            conn_id=args.airflow_conn, storage_conn_id=getattr(args, "airflow_storage_conn", None)
        )
        settings = hook.get_settings()
        out.setup_logging()  # Airflow configured its own (stdout) logging on import
        if settings.url.password:
            out.secrets.append(settings.url.password)
        return Database(
            settings.url,
            Engines(settings.url, settings.connect_args, settings.engine_args),
            settings.version_table,
            hook.get_transport_params(),
            *_options(args),
        )
    if not db_url:
        raise CommandUsageError("a database URL (or --airflow-conn ID) is required")
    url = parse_db_url(db_url)
    if url.password:
        out.secrets.append(str(url.password))
    password = _password(args, url)
    if password is not None:
        out.secrets.append(password)
        url = url.set(password=password)
    return Database(url, Engines(url), args.version_table, transport(args), *_options(args))


def make_utils(args: argparse.Namespace, out: Output, db_url: str | None) -> MigrationUtils:
    """The core's MigrationUtils for the database named on the command line."""
    return database(args, out, db_url).utils()


def transport(args: argparse.Namespace) -> dict[str, Any] | None:
    """Object-store clients from ``--airflow-storage-conn``; ``None``: the environment's."""
    conn_id = getattr(args, "airflow_storage_conn", None)
    if not conn_id:
        return None
    try:
        from ..hooks.zenmigrate import ZenMigrateHook
    except ImportError as exc:
        raise CommandUsageError(f"--airflow-storage-conn needs Apache Airflow ({exc})") from None
    return ZenMigrateHook(storage_conn_id=conn_id).get_transport_params()


def user_tables(engine: Engine) -> list[str]:
    """The tables of ``engine``'s database, sorted."""
    with engine.connect() as conn:
        return sorted(_dialect(engine).user_tables(conn))


def estimate(engine: Engine) -> tuple[int | None, int | None]:
    """Tables and (estimated) rows of a database, for the progress bar's ETA; best effort."""
    from sqlalchemy.exc import SQLAlchemyError

    ops = _dialect(engine)
    try:
        with engine.connect() as conn:
            return len(ops.user_tables(conn)), ops.estimated_rows(conn)
    except SQLAlchemyError:
        logger.debug("no size estimate", exc_info=True)
        return None, None


def dispose(utils: MigrationUtils | Database) -> None:
    """Release every connection, quietly: after an interrupt, the error that ends the run
    is the one to report."""
    try:
        utils.dispose()
    except Exception:  # noqa: BLE001 - a connection broken by an interrupt; the error wins
        logger.debug("dispose failed", exc_info=True)
