"""The seed's ``MigrationUtils``: database administration (backup and restore follow).

A thin facade: every backend difference is delegated to :mod:`.dialects`.
"""

from __future__ import annotations

import logging
from typing import Any

import sqlalchemy
from pydantic import BaseModel, ConfigDict, PrivateAttr, field_validator
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

from .dialects import DialectOps, get_dialect
from .dialects.mysql import MySQLOps

logger = logging.getLogger(__name__)

# Pool settings that make no sense for the short-lived administrative (master) engine.
_POOL_ARGS = frozenset({"pool_size", "max_overflow", "pool_timeout", "poolclass", "pool"})


class MigrationUtils(BaseModel):
    """Utilities for database migration, backup and recovery.

    Engines are created lazily, cached per database and released by :meth:`dispose` (or
    by using the object as a context manager). The master engine, used for administration
    (create, drop, exists), pools nothing, so checks never keep server connections open.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    url: URL
    connect_args: dict[str, Any]
    engine_args: dict[str, Any]

    _engines: dict[str | None, Engine] = PrivateAttr(default_factory=dict)

    @field_validator("url", mode="before")
    @classmethod
    def _parse_url(cls, value: Any) -> Any:
        return make_url(value) if isinstance(value, str) else value

    # -- engines -----------------------------------------------------------------------------
    @property
    def dialect(self) -> DialectOps:
        return get_dialect(self.url)

    @property
    def safe_url(self) -> str:
        """The URL as it may appear in logs and messages: password masked."""
        return self.url.render_as_string(hide_password=True)

    def create_engine(self, database: str | None = None) -> Engine:
        """Get the (cached) engine for ``database``; ``None`` gives the master engine.

        For SQLite, ``database`` is a file name beside the configured file and the master
        engine is an in-memory database.
        """
        if database in self._engines:
            return self._engines[database]
        ops = self.dialect
        if database is None:
            url = ops.master_url(self.url)
            args = {k: v for k, v in self.engine_args.items() if k not in _POOL_ARGS}
            args["poolclass"] = NullPool
        else:
            url = ops.database_url(self.url, database)
            args = dict(self.engine_args)
        engine = sqlalchemy.create_engine(url, connect_args=self.connect_args, **args)
        self._engines[database] = engine
        return engine

    @property
    def engine(self) -> Engine:
        """The engine of the configured database."""
        return self.create_engine(self.url.database)

    @property
    def master_engine(self) -> Engine:
        """The server-level engine used for administration (see :meth:`create_engine`)."""
        return self.create_engine(None)

    def _forget_engine(self, database: str | None) -> None:
        engine = self._engines.pop(database, None)
        if engine is not None:
            engine.dispose()

    def dispose(self) -> None:
        """Close every pooled connection of every engine this object created."""
        for database in list(self._engines):
            self._forget_engine(database)

    def __enter__(self) -> MigrationUtils:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.dispose()

    # -- administration ----------------------------------------------------------------------
    def _name(self, database: str | None) -> str:
        return database if database is not None else self.dialect.database_name(self.url)

    def database_exists(self, database: str | None = None) -> bool:
        """Check if a database exists (the configured one by default).

        Raises:
            OperationalError: If connecting to the server failed.
        """
        name = self._name(database)
        return self.dialect.database_exists(self.master_engine, self.url, name)

    def create_database(self, database: str | None = None, drop: bool = False) -> None:
        """Create a database (the configured one by default), dropping it first if asked."""
        name = self._name(database)
        if drop:
            self.drop_database(name)
        logger.info("creating database %r on %s", name, self.safe_url)
        self.dialect.create_database(self.master_engine, self.url, name)

    def drop_database(self, database: str | None = None) -> None:
        """Drop a database (the configured one by default) if it exists."""
        name = self._name(database)
        # Our own pooled connections would block or survive the drop.
        self._forget_engine(name)
        logger.info("dropping database %r on %s", name, self.safe_url)
        self.dialect.drop_database(self.master_engine, self.url, name)

    @classmethod
    def is_mysql_missing_database_error(cls, error: OperationalError) -> bool:
        """Whether ``error`` is MySQL's "Unknown database" (error 1049)."""
        return MySQLOps().is_missing_database_error(error)
