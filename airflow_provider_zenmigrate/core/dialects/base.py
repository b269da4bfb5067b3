"""The contract every dialect module fulfils, with the behaviour most backends share."""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from typing import ClassVar

from sqlalchemy import Connection, inspect
from sqlalchemy.engine import URL, Engine

# Tables a backend creates for its own bookkeeping; never part of a user's schema.
_NO_INTERNAL_TABLES: frozenset[str] = frozenset()


class DialectOps(ABC):
    """Backend-specific administration: databases, names, locks."""

    name: ClassVar[str]
    #: Longest database name the server accepts, in characters.
    max_name_length: ClassVar[int]
    internal_tables: ClassVar[frozenset[str]] = _NO_INTERNAL_TABLES

    # -- names -----------------------------------------------------------------------------
    def validate_database_name(self, name: str) -> str:
        """Refuse names the server would mangle or reject; quoting handles everything else."""
        if not isinstance(name, str) or name == "":
            raise ValueError("database name must be a non-empty string")
        if "\x00" in name:
            raise ValueError(f"database name {name!r} contains a NUL character")
        if len(name) > self.max_name_length:
            raise ValueError(
                f"database name {name!r} is longer than {self.max_name_length} characters, "
                f"the {self.name} limit"
            )
        return name

    def quote(self, engine: Engine, name: str) -> str:
        """Quote an identifier with the backend's own rules (always quoted, escapes doubled)."""
        return engine.dialect.identifier_preparer.quote_identifier(name)

    # -- URLs --------------------------------------------------------------------------------
    def database_url(self, url: URL, database: str | None) -> URL:
        """URL of ``database`` on the same server; ``None`` means the server-level database."""
        if database is not None:
            self.validate_database_name(database)
        return url._replace(database=database)

    def master_url(self, url: URL) -> URL:
        return self.database_url(url, None)

    def database_name(self, url: URL) -> str:
        """Name of the database an URL points at; administration needs one."""
        if not url.database:
            raise ValueError(
                f"the URL {url.render_as_string(hide_password=True)} names no database"
            )
        return url.database

    # -- administration ----------------------------------------------------------------------
    @abstractmethod
    def database_exists(self, master: Engine, url: URL, name: str) -> bool: ...

    @abstractmethod
    def create_database(self, master: Engine, url: URL, name: str) -> None: ...

    @abstractmethod
    def drop_database(self, master: Engine, url: URL, name: str) -> None: ...

    def is_missing_database_error(self, error: BaseException) -> bool:
        return False

    def user_tables(self, connection: Connection, schema: str | None = None) -> list[str]:
        names = inspect(connection).get_table_names(schema=schema)
        return [n for n in names if n not in self.internal_tables]

    # -- migrations --------------------------------------------------------------------------
    @staticmethod
    def lock_digest(engine: Engine, scope: str) -> bytes:
        """A stable digest naming the lock on ``scope`` in this engine's database."""
        return hashlib.sha256(f"zenmigrate:{engine.url.database or ''}:{scope}".encode()).digest()

    @abstractmethod
    @contextmanager
    def migration_lock(self, engine: Engine, scope: str, timeout: float) -> Iterator[None]:
        """Hold an exclusive, cross-process lock on ``scope`` while the block runs."""
        yield  # pragma: no cover

    @contextmanager
    def migration_engine(self, engine: Engine) -> Iterator[Engine]:
        """Engine to run migrations on; backends whose driver autocommits DDL override it."""
        yield engine

    def migration_options(self) -> dict[str, object]:
        """Extra ``EnvironmentContext.configure`` options this backend needs."""
        return {}
