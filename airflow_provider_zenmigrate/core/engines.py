"""The SQLAlchemy engines of one database server: one per database, made on first use.

``MigrationUtils`` keeps its engines here, and so does the command line's backup, which does
not build ``MigrationUtils`` (a pydantic model whose import and class cost a quarter of an
empty backup's start-up, issue 27): both make engines by the same rules.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import sqlalchemy
from sqlalchemy.pool import NullPool

from .dialects import get_dialect

if TYPE_CHECKING:
    from sqlalchemy.engine import URL, Engine

#: Pool settings that make no sense for the short-lived administrative (master) engine.
_POOL_ARGS = frozenset({"pool_size", "max_overflow", "pool_timeout", "poolclass", "pool"})


class Engines:
    """The engines of the server at ``url``, cached per database until :meth:`dispose`.

    ``None`` names the master engine, used for administration (create, drop, exists): it
    pools nothing, so checks never keep server connections open. For SQLite a database is a
    file name beside the configured file and the master engine an in-memory database.
    """

    def __init__(
        self,
        url: URL,
        connect_args: dict[str, Any] | None = None,
        engine_args: dict[str, Any] | None = None,
    ) -> None:
        self.url = url
        self.connect_args = dict(connect_args or {})
        self.engine_args = dict(engine_args or {})
        self._made: dict[str | None, Engine] = {}

    def get(self, database: str | None) -> Engine:
        """The (cached) engine of ``database``; ``None``: the master engine."""
        if database in self._made:
            return self._made[database]
        ops = get_dialect(self.url)
        if database is None:
            url = ops.master_url(self.url)
            args = {k: v for k, v in self.engine_args.items() if k not in _POOL_ARGS}
            args["poolclass"] = NullPool
        else:
            url = ops.database_url(self.url, database)
            args = dict(self.engine_args)
        engine = sqlalchemy.create_engine(url, connect_args=self.connect_args, **args)
        ops.configure_engine(engine)
        self._made[database] = engine
        return engine

    def forget(self, database: str | None) -> None:
        """Dispose of ``database``'s engine, if one was made (before dropping it, say)."""
        engine = self._made.pop(database, None)
        if engine is not None:
            engine.dispose()

    def dispose(self) -> None:
        """Close every pooled connection of every engine made here."""
        for database in list(self._made):
            self.forget(database)
