"""``MigrationUtils``: database administration, backup and restore.

Its names and signatures are those of ZenML's ``MigrationUtils``, kept as a contract so
code written against ZenML's runs unchanged; what runs underneath is this package's. A thin
facade: the dump format lives in :mod:`.dump`, producing and consuming it in :mod:`.backup`
and :mod:`.restore`, locations in :mod:`.storage`, and every backend difference in
:mod:`.dialects`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, PlainValidator, PrivateAttr, field_validator
from sqlalchemy.engine import URL, Engine, make_url

from .backup import DEFAULT_CHUNK_ROWS, BackupResult, backup_to_uri, iter_backup
from .dialects import get_dialect
from .dump.model import BackupScope, RestoreOptions
from .engines import Engines

# What only some paths need is imported where it runs, so that an unencrypted single-stream
# backup pays for none of it (issue 27): the crypto stack (``cryptography``), multi-part
# dumps (core.parts, multiprocessing), the restore and the dump reader.
if TYPE_CHECKING:
    from sqlalchemy.exc import OperationalError

    from .crypto import Encryption
    from .dialects import DialectOps
    from .dump.records import Record
    from .restore import RecordObserver, RestoreSummary

logger = logging.getLogger(__name__)


def _encryption_or_none(value: object) -> Encryption | None:
    """The ``encryption`` field's check: ``None`` or an :class:`.crypto.Encryption`. Done
    here rather than by pydantic's isinstance check of the class so that defining the model
    does not import the crypto stack; a value that is an Encryption was made by a caller who
    imported it already."""
    if value is None:
        return None
    from .crypto import Encryption

    if not isinstance(value, Encryption):
        raise ValueError(f"encryption must be an Encryption or None, not {type(value).__name__}")
    return value


if TYPE_CHECKING:
    _OptionalEncryption = Encryption | None
else:  # pydantic reads this one: no class to import, the check above instead
    _OptionalEncryption = Annotated[Any, PlainValidator(_encryption_or_none)]


class MigrationUtils(BaseModel):
    """Utilities for database migration, backup and recovery.

    Engines are created lazily, cached per database and released by :meth:`dispose` (or
    by using the object as a context manager). The master engine, used for administration
    (create, drop, exists), pools nothing, so checks never keep server connections open.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    url: URL
    #: Passed to the DBAPI's ``connect()`` and to ``create_engine``; both may be omitted.
    connect_args: dict[str, Any] = Field(default_factory=dict)
    engine_args: dict[str, Any] = Field(default_factory=dict)
    #: Alembic version table whose revisions the dump header records.
    version_table: str = "alembic_version"
    #: Rows per data record.
    chunk_rows: int = DEFAULT_CHUNK_ROWS
    #: Clients and options for object stores (see :mod:`.storage`): ``client``,
    #: ``min_part_size`` and anything else smart_open takes. Never shown in ``repr``.
    transport_params: dict[str, Any] | None = Field(default=None, repr=False)
    #: PostgreSQL: the schemas a backup covers (empty: every one but the system schemas, as
    #: pg_dump) and those it leaves out; a restore refuses a dump holding an excluded one.
    schemas: list[str] = Field(default_factory=list)
    exclude_schemas: list[str] = Field(default_factory=list)
    #: PostgreSQL restores: leave owners to the restoring role, restore no privileges, or
    #: leave out (with a warning) what names a role the target lacks; see RestoreOptions.
    no_owner: bool = False
    no_privileges: bool = False
    skip_missing_roles: bool = False
    #: Encrypted dumps (see :mod:`.crypto`): with a key, every dump written to a file or
    #: object is encrypted and authenticated; encrypted dumps are read with its keys, and
    #: ``Encryption(require=True)`` refuses to restore a plaintext one. Never in ``repr``.
    encryption: _OptionalEncryption = Field(default=None, repr=False)

    #: Made from ``url``, ``connect_args`` and ``engine_args`` when the first engine is.
    _engines: Engines | None = PrivateAttr(default=None)

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
        if self._engines is None:
            self._engines = Engines(self.url, self.connect_args, self.engine_args)
        return self._engines.get(database)

    @property
    def engine(self) -> Engine:
        """The engine of the configured database."""
        return self.create_engine(self.url.database)

    @property
    def master_engine(self) -> Engine:
        """The server-level engine used for administration (see :meth:`create_engine`)."""
        return self.create_engine(None)

    def dispose(self) -> None:
        """Close every pooled connection of every engine this object created."""
        if self._engines is not None:
            self._engines.dispose()

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
        if self._engines is not None:
            self._engines.forget(name)
        logger.info("dropping database %r on %s", name, self.safe_url)
        self.dialect.drop_database(self.master_engine, self.url, name)

    @classmethod
    def is_mysql_missing_database_error(cls, error: OperationalError) -> bool:
        """Whether ``error`` is MySQL's "Unknown database" (error 1049)."""
        return get_dialect(URL.create("mysql")).is_missing_database_error(error)

    # -- backup ------------------------------------------------------------------------------
    @property
    def backup_scope(self) -> BackupScope:
        return BackupScope(tuple(self.schemas), tuple(self.exclude_schemas))

    def _backup_records(self, materialize: bool = True) -> Iterable[tuple[Record, bytes]]:
        return iter_backup(
            self.engine,
            version_table=self.version_table,
            chunk_rows=self.chunk_rows,
            materialize=materialize,
            scope=self.backup_scope,
        )

    def backup_database_to_storage(self, store_db_info: Callable[[dict[str, Any]], None]) -> None:
        """Backup the database to a storage location given as a callback.

        ``store_db_info`` is called once per record, in order: the header, object records,
        for each table its schema record (``table``, ``create_stmt``, ``columns``) and data
        records (``table``, ``data``: a list of rows as dicts), and the trailer last. A
        consumer that did not receive the trailer holds an incomplete backup.
        """
        for record, _line in self._backup_records():
            store_db_info(record)

    def backup_database_to_memory(self) -> list[dict[str, Any]]:
        """Backup the database in memory (every record in a list)."""
        return [record for record, _line in self._backup_records()]

    def backup_database_to_file(
        self,
        dump_file: str,
        on_record: Callable[[dict[str, Any], bytes], None] | None = None,
        *,
        jobs: int = 1,
    ) -> BackupResult:
        """Backup the database to a file or object (JSON Lines; ``.gz`` / ``.zst`` compress).

        ``dump_file`` is a local path or a ``file://``, ``s3://``, ``gs://`` or ``azure://``
        URI (clients from :attr:`transport_params`, else the environment). The dump appears
        at ``dump_file`` only once it is complete; a small manifest written beside it then
        lets :func:`.catalog.list_backups` find it without reading it. Returns what was
        written (ZenML's returns nothing; callers that ignore the result lose nothing).
        ``on_record`` sees every record with its line as it is written (for progress); a
        data record may carry only its row count (``rows``) instead of its ``data``.
        ``jobs`` above 1 writes a multi-part dump (``dump_file`` is then its prefix) with
        that many worker processes reading one snapshot (see :mod:`.parts`).
        """
        return backup_to_uri(
            self.engine,
            dump_file,
            transport_params=self.transport_params,
            encryption=self.encryption,
            version_table=self.version_table,
            chunk_rows=self.chunk_rows,
            scope=self.backup_scope,
            on_record=on_record,
            jobs=jobs,
        )

    def estimated_rows(self) -> int | None:
        """Rows in the database, exact or from the server's statistics (for progress)."""
        with self.engine.connect() as conn:
            return self.dialect.estimated_rows(conn)

    def backup_database_to_db(self, backup_db_name: str) -> None:
        """Backup the database to a database on the same server (replacing its contents)."""
        if backup_db_name == self._name(None):
            raise ValueError("the backup database must differ from the database itself")
        self.create_database(backup_db_name)
        self.dialect.copy_database(self.engine, self.create_engine(backup_db_name))

    # -- restore -----------------------------------------------------------------------------
    def _restore(
        self, entries: Any, allow_unverified: bool, allow_routines: bool
    ) -> RestoreSummary:
        from .restore import restore_entries

        if not self.database_exists():
            self.create_database()
        return restore_entries(
            self.engine,
            entries,
            allow_unverified=allow_unverified,
            allow_routines=allow_routines,
            options=self.restore_options,
        )

    @property
    def restore_options(self) -> RestoreOptions:
        return RestoreOptions(
            no_owner=self.no_owner,
            no_privileges=self.no_privileges,
            skip_missing_roles=self.skip_missing_roles,
            exclude_schemas=tuple(self.exclude_schemas),
        )

    def restore_database_from_storage(
        self,
        load_db_info: Callable[[], Iterable[dict[str, Any]]],
        allow_unverified: bool = False,
        *,
        allow_routines: bool = False,
    ) -> RestoreSummary:
        """Restore the database from records yielded by ``load_db_info()``.

        The database is replaced atomically once every record was read and verified.
        ``allow_unverified`` accepts dumps without header and trailer (the legacy
        (unverified) format of ZenML's dumps).
        ``allow_routines`` accepts functions, procedures, aggregates and events: their
        bodies are code the server runs, so pass it only for dumps from a trusted source.
        """
        from .dump.reader import entries_from_records

        return self._restore(entries_from_records(load_db_info()), allow_unverified, allow_routines)

    def restore_database_from_memory(
        self,
        db_dump: list[dict[str, Any]],
        allow_unverified: bool = False,
        *,
        allow_routines: bool = False,
    ) -> RestoreSummary:
        """Restore the database from an in-memory backup (options as for storage)."""
        from .dump.reader import entries_from_records

        return self._restore(entries_from_records(db_dump), allow_unverified, allow_routines)

    def restore_database_from_file(
        self,
        dump_file: str,
        allow_unverified: bool = False,
        *,
        allow_routines: bool = False,
        jobs: int = 1,
        fresh: bool = False,
        on_record: RecordObserver | None = None,
    ) -> RestoreSummary:
        """Restore the database from a backup dump file or object (any URI of
        :meth:`backup_database_to_file`), verifying it as it streams (options as for
        :meth:`restore_database_from_storage`).

        A multi-part dump is found by itself: ``jobs`` worker processes load its parts, and
        a restore that failed resumes when run again with the same arguments (on
        MariaDB/MySQL; ``fresh`` starts over). ``jobs`` does not split a single stream.
        ``on_record`` is told of the restore's progress (see :data:`.restore.RecordObserver`).

        Raises:
            StorageNotFoundError: If nothing exists at ``dump_file``.
        """
        from .restore import restore_dump

        return restore_dump(
            self,
            dump_file,
            jobs=jobs,
            fresh=fresh,
            allow_unverified=allow_unverified,
            allow_routines=allow_routines,
            on_record=on_record,
            encryption=self.encryption,
        )

    def restore_database_from_db(self, backup_db_name: str) -> None:
        """Restore the database from the backup database.

        Raises:
            RuntimeError: If the backup database does not exist.
        """
        if not self.database_exists(backup_db_name):
            raise RuntimeError(f"backup database {backup_db_name!r} does not exist")
        if not self.database_exists():
            self.create_database()
        self.dialect.copy_database(self.create_engine(backup_db_name), self.engine)
