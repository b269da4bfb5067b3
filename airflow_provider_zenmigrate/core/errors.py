"""Every exception type of the package, in one place so callers can catch them by kind.

The package root re-exports them all. The one type elsewhere is the hook's
``ConnectionNotDefined``: it subclasses an Airflow exception, and ``core/`` never imports
Airflow (tests/unit/test_public_api.py keeps it so).
"""

from __future__ import annotations

from typing import Any


class ZenMigrateError(Exception):
    """Base of every error the core raises on purpose."""


class UnsupportedDatabaseError(ZenMigrateError, ValueError):
    """The URL names a backend this package has no dialect module for."""


class MigrationLockTimeout(ZenMigrateError, TimeoutError):
    """Another process held the migration lock for longer than we were willing to wait."""


class RestoreInProgressError(ZenMigrateError, RuntimeError):
    """Another restore of the same database is running; this one changed nothing."""


class MigrationError(ZenMigrateError, RuntimeError):
    """A migration script raised; carries the revision that failed so operators can report it."""

    def __init__(self, direction: str, revision: str | None, cause: BaseException) -> None:
        self.direction = direction
        self.revision = revision
        self.cause = cause
        where = f"at revision {revision}" if revision else "(revision unknown)"
        super().__init__(f"{direction} failed {where}: {type(cause).__name__}: {cause}")


class DumpError(ZenMigrateError):
    """A dump cannot be used; the message names the problem and, where known, the line."""

    def __init__(self, message: str, line: int | None = None) -> None:
        self.line = line
        super().__init__(f"line {line}: {message}" if line is not None else message)


class DumpFormatError(DumpError, ValueError):
    """The dump is not in a format (or version) this package reads."""


class DumpIntegrityError(DumpError, RuntimeError):
    """The dump is truncated or its contents do not match its trailer."""


class UnsafeDumpError(DumpError, ValueError):
    """A record asks for something other than creating the object it names."""


class MissingRequirementError(DumpError, RuntimeError):
    """The target server lacks what a record needs (a role, an extension): the restore would
    fail there, so it is refused before anything of it runs."""


class RowsNotRendered(ZenMigrateError):
    """A server could not render a row (MySQL: longer than max_allowed_packet).

    Raised by ``BackupReader.rendered_rows`` once its stream is drained, so the session can
    go on in the same snapshot; rows already handed on stay valid.
    """


class StorageError(ZenMigrateError, OSError):
    """A storage operation failed; the message names the location without credentials."""


class StorageNotFoundError(StorageError, FileNotFoundError):
    """The dump location does not exist."""


class CommandUsageError(ZenMigrateError, ValueError):
    """The ``zenmigrate`` command line is wrong: a missing or contradictory argument, a URL
    that names no database (exit code 2)."""


class CommandFailed(ZenMigrateError, RuntimeError):
    """A ``zenmigrate`` command stopped for a reason its message already explains: a refused
    confirmation, an interrupt, a dump that would not restore (exit code 1)."""


class RehearsalError(ZenMigrateError, RuntimeError):
    """A rehearsal could not run at all (scripts that do not load, a rehearsal server that
    cannot be reached, a scratch name taken by a real database, an unknown revision).

    A rehearsal that ran and found a failing migration does not raise this: its report's
    ``reason`` says why the gate failed."""


class SettingsError(ZenMigrateError, ValueError):
    """A deployment setting (the Airflow Variable the Backups view reads) is missing or
    malformed; the message says what to set."""


class ResumeMismatchError(ZenMigrateError, RuntimeError):
    """A restore found the staging area of an earlier attempt at another dump (the dump at
    its URI changed since): nothing was changed; ``fresh=True`` starts over."""


class WorkerDied(ZenMigrateError, RuntimeError):
    """A worker process of a parallel backup or restore ended without answering (killed,
    out of memory): the run stopped, publishing or replacing nothing."""


class WorkerStopped(BaseException):
    """Raised inside a worker process by its SIGTERM handler, so that a worker told to stop
    (the run failed elsewhere) unwinds and aborts the upload in hand. A BaseException, as
    KeyboardInterrupt is: no handler of ordinary errors should take it for a failure."""


class EncryptionError(ZenMigrateError):
    """An encrypted dump cannot be written or read for a reason of keys or key services;
    the message names the key by its id, never by its material."""


class EncryptionKeyError(EncryptionError, ValueError):
    """A key is missing, malformed (wrong length, not base64), unknown to the dump (another
    key id), or refused by its key service (a disabled or deleted KMS key)."""


class MissingKeyError(EncryptionKeyError, DumpError):
    """The dump is encrypted and no key was given: it can be neither read nor verified.
    ``envelope`` is its public header (what ``inspect`` shows without the key)."""

    def __init__(self, message: str, envelope: dict[str, Any] | None = None) -> None:
        self.envelope = envelope or {}
        DumpError.__init__(self, message)


class KeyServiceError(EncryptionError, RuntimeError):
    """A key service (AWS KMS) could not be reached or answered with an error that is not
    about the key itself; raised before anything is written."""


class DumpAuthenticationError(DumpIntegrityError):
    """An encrypted dump does not authenticate: a segment was altered, reordered, cut off or
    added, or the envelope does not belong to its segments."""


class EncryptionRequiredError(DumpError, ValueError):
    """The dump is plaintext and the caller required an encrypted one."""
