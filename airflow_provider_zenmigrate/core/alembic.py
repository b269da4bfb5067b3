"""The ``Alembic`` wrapper (ZenML's API): run a user's migration scripts against an engine.

Two ways to configure it:

* a scripts folder (``script_location``, a path or ``package:dir``) and no ini file: the
  wrapper builds the Alembic environment itself, with no ``env.py`` needed. The folder
  holds either a ``versions/`` sub-folder or the revision files directly;
* a full Alembic project (``config_file`` pointing at its ``alembic.ini``): upgrade,
  downgrade and stamp go through ``alembic.command``, so the project's ``env.py`` runs.
  The wrapper passes its connection as ``config.attributes["connection"]`` (Alembic's
  "sharing a connection" recipe) and sets ``sqlalchemy.url`` for env.py files that
  build their own engine.

Upgrade, downgrade and stamp hold a cross-process migration lock (see the dialect
modules), so two runners never migrate the same database at once.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.environment import EnvironmentContext
from alembic.runtime.migration import MigrationContext, RevisionStep
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, MetaData, String
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from .dialects import bookkeeping_tables, get_dialect
from .errors import MigrationError

logger = logging.getLogger(__name__)

DEFAULT_VERSION_TABLE = "alembic_version"

MigrationFn = Callable[[str | Sequence[str], MigrationContext], list[Any]]


class Base(DeclarativeBase):
    """Declarative base for the wrapper's own mapped tables."""


class AlembicVersion(Base):
    """Alembic version table."""

    __tablename__ = DEFAULT_VERSION_TABLE
    version_num: Mapped[str] = mapped_column(String(32), primary_key=True)


def include_object(object: Any, name: str, type_: str, *args: Any, **kwargs: Any) -> bool:  # noqa: A002
    """Function used to exclude tables from the migration scripts (backend bookkeeping)."""
    return not (type_ == "table" and name in bookkeeping_tables())


def _escape(value: str) -> str:
    """Alembic's Config is a ConfigParser: a literal ``%`` must be doubled."""
    return value.replace("%", "%%")


def current_revisions(
    engine: Engine,
    *,
    version_table: str = DEFAULT_VERSION_TABLE,
    version_table_schema: str | None = None,
) -> list[str]:
    """The revisions recorded in ``engine``'s database (empty for an unversioned one).

    What :meth:`Alembic.current_revisions` reads, for a caller that has no migration scripts
    to build the wrapper from (``zenmigrate current`` without ``--scripts``).
    """
    opts = {"version_table": version_table, "version_table_schema": version_table_schema}
    with engine.connect() as conn:
        return list(MigrationContext.configure(conn, opts=opts).get_current_heads())


# Alembic exposes no public function that turns (target, current heads) into migration
# steps; alembic.command uses these ScriptDirectory methods itself. They are the only
# private Alembic API this package touches, all here.
def _upgrade_steps(script: ScriptDirectory, target: str, heads: Any) -> list[RevisionStep]:
    return list(script._upgrade_revs(target, heads))


def _downgrade_steps(script: ScriptDirectory, target: str, heads: Any) -> list[RevisionStep]:
    return list(script._downgrade_revs(target, heads))


def single_step(script: ScriptDirectory, revision: str, upgrade: bool) -> RevisionStep:
    """The step that runs one revision's upgrade or downgrade alone."""
    found = script.get_revision(revision)
    if found is None:
        raise ValueError(f"unknown revision {revision!r}")
    return RevisionStep(script.revision_map, found, upgrade)


def _stamp_steps(script: ScriptDirectory, target: str, heads: Any) -> list[Any]:
    return list(script._stamp_revs(target, heads))


class Alembic:
    """Alembic environment and migration API."""

    def __init__(
        self,
        engine: Engine,
        metadata: MetaData = MetaData(),  # noqa: B008 - ZenML's default
        context: EnvironmentContext | None = None,
        *,
        script_location: str | os.PathLike[str] | None = None,
        config_file: str | os.PathLike[str] | None = None,
        version_table: str = DEFAULT_VERSION_TABLE,
        version_table_schema: str | None = None,
        lock_timeout: float = 3600.0,
        on_version_apply: Callable[..., None] | None = None,
        **kwargs: Any,
    ) -> None:
        """Set up the environment.

        Args:
            engine: The database to migrate.
            metadata: The user's models, used by :meth:`db_is_empty` and autogenerate.
            context: An existing environment context (for example the one the Alembic CLI
                made); by default one is built from the configuration below.
            script_location: The migration scripts folder (path or ``package:dir``).
            config_file: An ``alembic.ini`` of a full Alembic project.
            version_table: Name of the table that records the applied revisions.
            version_table_schema: Schema of the version table, if not the default one.
            lock_timeout: Seconds to wait for another migration to finish.
            on_version_apply: Called after each revision is applied, with Alembic's
                ``on_version_apply`` keyword arguments (``step``, ``heads``, ...).
            kwargs: Passed to :class:`EnvironmentContext`.
        """
        if script_location is None and config_file is None and context is None:
            raise ValueError("Alembic needs a script_location, a config_file or a context")
        self.engine = engine
        self.metadata = metadata
        self.version_table = version_table
        self.version_table_schema = version_table_schema
        self.lock_timeout = lock_timeout
        self.on_version_apply = on_version_apply
        #: The revisions the last upgrade/downgrade/stamp found once it held the lock (another
        #: runner may have migrated while it waited); ``None`` before the first one.
        self.revisions_before: list[str] | None = None
        self._dialect = get_dialect(engine)
        self._project_mode = config_file is not None
        if context is not None:
            self.config = context.config
            self.script_directory = context.script
            self.environment_context = context
        else:
            self.config = self._make_config(script_location, config_file)
            self.script_directory = ScriptDirectory.from_config(self.config)
            self.environment_context = EnvironmentContext(
                self.config, self.script_directory, **kwargs
            )

    @staticmethod
    def _make_config(
        script_location: str | os.PathLike[str] | None,
        config_file: str | os.PathLike[str] | None,
    ) -> Config:
        config = Config(os.fspath(config_file)) if config_file is not None else Config()
        if script_location is not None:
            config.set_main_option("script_location", _escape(os.fspath(script_location)))
        if config_file is None:
            folder = ScriptDirectory.from_config(config).dir
            if not os.path.isdir(os.path.join(folder, "versions")):
                config.set_main_option("path_separator", "os")
                config.set_main_option("version_locations", _escape(folder))
        return config

    # -- reading state -----------------------------------------------------------------------
    def _version_opts(self) -> dict[str, Any]:
        return {
            "version_table": self.version_table,
            "version_table_schema": self.version_table_schema,
        }

    def current_revisions(self) -> list[str]:
        """Get the current database revisions (empty for an unversioned database)."""
        return current_revisions(
            self.engine,
            version_table=self.version_table,
            version_table_schema=self.version_table_schema,
        )

    def head_revisions(self) -> list[str]:
        """Get the head revisions of the migration scripts."""
        return list(self.script_directory.get_heads())

    def db_is_empty(self) -> bool:
        """Whether the database holds no table of the user's schema.

        The user's schema is the tables of ``metadata`` when it has any; otherwise every
        table but the version table and the backend's own bookkeeping tables.
        """
        with self.engine.connect() as conn:
            tables = set(self._dialect.user_tables(conn, self.version_table_schema))
        tables.discard(self.version_table)
        if self.metadata.tables:
            tables &= {t.name for t in self.metadata.tables.values()}
        return not tables

    # -- running migrations ------------------------------------------------------------------
    def run_migrations(self, fn: MigrationFn | None) -> None:
        """Run an online migration function in the current migration context.

        Args:
            fn: Migration function to run. If not set, the function configured externally
                (for example by the Alembic CLI command) is used.
        """
        with self._dialect.migration_engine(self.engine) as engine, engine.connect() as conn:
            self._run_in_connection(conn, fn)

    def _run_in_connection(self, conn: Connection, fn: MigrationFn | None) -> None:
        options: dict[str, Any] = {
            "connection": conn,
            "target_metadata": self.metadata,
            "include_object": include_object,
            # One transaction per revision: a failure rolls back only the failing revision
            # where DDL is transactional, and keeps the revisions before it.
            "transaction_per_migration": True,
            **self._dialect.migration_options(),
            **self._version_opts(),
        }
        if fn is not None:
            options["fn"] = fn
        if self.on_version_apply is not None:
            options["on_version_apply"] = self.on_version_apply
        self.environment_context.configure(**options)
        with self.environment_context.begin_transaction():
            self.environment_context.run_migrations()
        if conn.in_transaction():
            conn.commit()

    @contextmanager
    def _locked(self) -> Iterator[None]:
        with self._dialect.migration_lock(self.engine, self.version_table, self.lock_timeout):
            yield

    def _migrate(self, direction: str, target: str) -> None:
        before = self.revisions_before = self.current_revisions()
        logger.info("%s to %s from %s", direction, target, before or ["base"])
        try:
            if self._project_mode:
                self._run_project_command(direction, target)
            elif direction == "unapply":
                self.run_migrations(self._unapply_plan(target))
            else:
                planner = {
                    "upgrade": _upgrade_steps,
                    "downgrade": _downgrade_steps,
                    "stamp": _stamp_steps,
                }[direction]

                def plan(heads: Any, _ctx: MigrationContext) -> list[Any]:
                    return planner(self.script_directory, target, heads)

                self.run_migrations(plan)
        except Exception as exc:  # noqa: BLE001 - re-raised with the revision attached
            failed = self._failing_revision(direction, target)
            shown = "downgrade" if direction == "unapply" else direction
            raise MigrationError(shown, failed, exc) from exc
        logger.info("%s done: now at %s", direction, self.current_revisions() or ["base"])

    def _run_project_command(self, direction: str, target: str) -> None:
        with self._dialect.migration_engine(self.engine) as engine, engine.connect() as conn:
            self.config.attributes["connection"] = conn
            url = engine.url.render_as_string(hide_password=False)
            self.config.set_main_option("sqlalchemy.url", _escape(url))
            try:
                if direction == "unapply":
                    # What alembic.command.downgrade does, with our one step as the plan.
                    with EnvironmentContext(
                        self.config,
                        self.script_directory,
                        fn=self._unapply_plan(target),
                        destination_rev=target,
                    ):
                        self.script_directory.run_env()
                else:
                    getattr(command, direction)(self.config, target)
            finally:
                self.config.attributes.pop("connection", None)
                self.config.set_main_option("sqlalchemy.url", "")
            if conn.in_transaction():
                conn.commit()

    def _unapply_plan(self, revision: str) -> MigrationFn:
        """A plan that runs the downgrade of ``revision`` alone (it must be a head)."""
        step = single_step(self.script_directory, revision, upgrade=False)

        def plan(heads: Any, _ctx: MigrationContext) -> list[Any]:
            if revision not in heads:
                raise ValueError(f"revision {revision!r} is not applied as a head ({heads})")
            return [step]

        return plan

    def _failing_revision(self, direction: str, target: str) -> str | None:
        """The revision that was being applied when a migration raised.

        Worked out from the heads the database reports after the failure: the next step
        towards the target is the one that failed.
        """
        if direction in ("stamp", "unapply"):
            return target
        try:
            heads = tuple(self.current_revisions())
            steps = (
                _upgrade_steps(self.script_directory, target, heads)
                if direction == "upgrade"
                else _downgrade_steps(self.script_directory, target, heads)
            )
        except Exception:  # noqa: BLE001 - best effort on top of the real error
            logger.debug("could not work out the failing revision", exc_info=True)
            return None
        return steps[0].revision.revision if steps else None

    def upgrade(self, revision: str = "heads") -> None:
        """Upgrade the database to a later version."""
        with self._locked():
            self._migrate("upgrade", revision)

    def downgrade(self, revision: str) -> None:
        """Revert the database to a previous version."""
        with self._locked():
            self._migrate("downgrade", revision)

    def unapply(self, revision: str) -> None:
        """Run the downgrade of one applied head revision, and only it.

        ``downgrade(target)`` removes whatever is not an ancestor of the target, which on a
        branched history is not the inverse of the upgrades just made; a rehearsal's way back
        unapplies exactly the revisions it applied, newest first.
        """
        with self._locked():
            self._migrate("unapply", revision)

    def stamp(self, revision: str) -> None:
        """Stamp the revision table with the given revision without running any migrations."""
        with self._locked():
            self._migrate("stamp", revision)
