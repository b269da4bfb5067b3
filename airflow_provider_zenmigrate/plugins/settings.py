"""Which backups the "Backups" view shows: the prefixes each database connection's backups
are under, from the Airflow Variable ``zenmigrate_backup_prefixes``.

A Variable rather than a config option: an admin edits it in the UI (or sets
``AIRFLOW_VAR_ZENMIGRATE_BACKUP_PREFIXES``, or keeps it in a secrets backend) and the view
reads it on every request, so no component needs a restart. Its value is JSON, one entry a
database connection::

    {
      "warehouse_db": {"storage_conn_id": "backups_s3",
                       "encryption_conn_id": "backups_key",
                       "prefixes": ["s3://backups/warehouse/"]},
      "demo_db": ["/srv/backups/demo/"]
    }

The short form (a list) means no storage connection: the SDKs' own environment applies.
``encryption_conn_id`` (optional) names the Airflow connection holding the key of the
database's encrypted dumps, as the operators' ``encryption_conn_id`` does
(:mod:`..hooks.encryption`: a base64 key as its password, or a KMS key id in its extra);
with it the view opens encrypted dumps (listing, contents, verify), without it it shows
only their envelope. Only the connection's id is in the Variable, never a key. Keys other
than these three are refused, so a misspelt one is not silently ignored.
Only these prefixes are ever listed or read, so a request cannot make the API server read
any other object or file.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from ..core.errors import SettingsError
from ..core.storage import StorageError, parse_location

VARIABLE = "zenmigrate_backup_prefixes"
#: The DAG the view's "Restore…" action triggers (``example_dags/zenmigrate_restore.py``).
RESTORE_DAG_ID = "zenmigrate_restore"


@dataclass(frozen=True)
class DatabaseBackups:
    """One database connection and the prefixes its backups are under."""

    conn_id: str
    storage_conn_id: str | None
    prefixes: tuple[str, ...]
    #: The connection holding the key of its encrypted dumps (``None``: no key, envelopes only).
    encryption_conn_id: str | None = None

    def holds(self, uri: str) -> str | None:
        """The configured prefix ``uri`` is under, or ``None`` (then it must not be read)."""
        try:
            target = parse_location(uri)
        except StorageError:
            return None
        if ".." in target.key.split("/"):
            return None
        for prefix in self.prefixes:
            where = parse_location(prefix)
            if (
                where.scheme == target.scheme
                and where.bucket == target.bucket
                and target.key.startswith(where.key)
                and len(target.key) > len(where.key)
            ):
                return prefix
        return None


EXAMPLE = json.dumps({"my_db": {"storage_conn_id": "my_s3", "prefixes": ["s3://bucket/backups/"]}})
#: An Airflow connection id (Airflow's own rule).
CONN_ID = re.compile(r"[\w.-]{1,250}")
#: The keys of an entry's long form.
ENTRY_KEYS = ("storage_conn_id", "encryption_conn_id", "prefixes")


def parse_settings(raw: str | None) -> dict[str, DatabaseBackups]:
    """The configured databases, in the Variable's order; a :class:`SettingsError` saying
    what is wrong otherwise."""
    if raw is None or not raw.strip():
        raise SettingsError(
            f"no backup prefixes are configured: set the Airflow Variable {VARIABLE} to JSON "
            f"such as {EXAMPLE} (Admin > Variables, or AIRFLOW_VAR_{VARIABLE.upper()})"
        )
    try:
        value: Any = json.loads(raw)
    except ValueError as exc:
        raise SettingsError(f"the Variable {VARIABLE} is not JSON ({exc}); e.g. {EXAMPLE}") from exc
    if not isinstance(value, dict):
        raise SettingsError(f"the Variable {VARIABLE} must be a JSON object, e.g. {EXAMPLE}")
    found: dict[str, DatabaseBackups] = {}
    for conn_id, entry in value.items():
        storage: Any = None
        key_conn: Any = None
        prefixes: Any = entry
        if isinstance(entry, dict):
            _check_entry_keys(conn_id, entry)
            storage, prefixes = entry.get("storage_conn_id"), entry.get("prefixes")
            key_conn = _connection_id(conn_id, entry, "encryption_conn_id")
        if isinstance(prefixes, str):
            prefixes = [prefixes]
        if (
            not isinstance(prefixes, list)
            or not prefixes
            or not all(isinstance(p, str) and p.strip() for p in prefixes)
            or not (storage is None or isinstance(storage, str))
        ):
            raise SettingsError(
                f"the Variable {VARIABLE}: the entry for {conn_id!r} must be a list of prefixes "
                'or {"storage_conn_id": "...", "encryption_conn_id": "...", "prefixes": ["..."]}'
            )
        for prefix in prefixes:
            try:
                parse_location(prefix)
            except StorageError as exc:
                raise SettingsError(f"the Variable {VARIABLE}, {conn_id!r}: {exc}") from exc
        found[conn_id] = DatabaseBackups(conn_id, storage or None, tuple(prefixes), key_conn)
    return found


def _check_entry_keys(conn_id: str, entry: dict[str, Any]) -> None:
    """A misspelt key (``encryption_conn``) would otherwise be ignored without a word."""
    unknown = sorted(str(k) for k in entry if k not in ENTRY_KEYS)
    if unknown:
        raise SettingsError(
            f"the Variable {VARIABLE}, {conn_id!r}: unknown key(s) {', '.join(map(repr, unknown))}"
            f"; an entry's keys are {', '.join(ENTRY_KEYS)}"
        )


def _connection_id(conn_id: str, entry: dict[str, Any], name: str) -> str | None:
    """An optional connection id of an entry: absent or ``null``, or an id as Airflow spells
    them (letters, digits, ``_``, ``.``, ``-``). The value is never repeated in the message:
    someone may have pasted a key where the connection's id goes (base64 has ``+/=``)."""
    value = entry.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not CONN_ID.fullmatch(value):
        given = "a string that is not one" if isinstance(value, str) else type(value).__name__
        raise SettingsError(
            f"the Variable {VARIABLE}, {conn_id!r}: {name} must be the id of an Airflow "
            f"connection (letters, digits, '_', '.', '-'), not {given}: the connection "
            "holds the key, the Variable only names it"
        )
    return value
