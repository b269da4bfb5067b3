"""Verifying a multi-part dump end to end, as a restore would read it, without running it.

:func:`.catalog.verify_backup` dispatches here for a multi-part dump, so the rules stay in
one place (:mod:`..preflight`'s :class:`DumpRules`, applied to each part by
:func:`.reading.checked_part`). What is checked, in order:

1. the manifest (:func:`.reading.load_manifest`: format, version, parts named once,
   spans that do not overlap, rows that add up, its digest over the parts' digests);
2. every part the manifest names is stored (:func:`.reading.missing_parts`, one listing);
3. every table of the schema part has data parts, and each table's spans cover its whole
   key or block range without a gap (a part dropped from the manifest would lose rows);
4. every part, streamed through a fresh :class:`DumpRules` and matched against the manifest
   and the schema part's table records.

The first problem ends the check; the report names the part it was found in.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..crypto import Encryption
from ..dump.model import RestoreOptions
from ..dump.records import Record
from ..errors import DumpError, DumpIntegrityError, StorageError
from ..preflight import DumpRules
from ..storage import safe_uri, scrub
from .layout import MANIFEST_NAME, child_uri
from .manifest import PartEntry, PartsManifest
from .reading import checked_part, load_manifest, missing_parts

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from ..catalog import VerifyReport


def verify_parts(
    uri: str,
    transport_params: dict[str, Any] | None,
    report: VerifyReport,
    *,
    allow_routines: bool = False,
    target: Engine | None = None,
    options: RestoreOptions | None = None,
    encryption: Encryption | None = None,
) -> VerifyReport:
    """Check the multi-part dump at ``uri`` (see the module docstring) into ``report``.

    A part is always a complete v1 stream with header and trailer, so the legacy
    (unverified) format is never accepted in one, whatever the caller allows for single
    dumps: a part without a header cannot be matched to the manifest.

    Raises:
        StorageNotFoundError: If the dump has no manifest.
        StorageError: If the store cannot be read; problems of the dump itself are reported.
    """

    authenticated = False

    def rules() -> DumpRules:
        return DumpRules(
            allow_unverified=False,
            allow_routines=allow_routines,
            authenticated=authenticated,
            target=target,
            options=options,
        )

    report.target_checked = rules().target_checked
    where = safe_uri(child_uri(uri, MANIFEST_NAME))
    roles: set[str] = set()
    extensions: set[str] = set()
    current: PartEntry | None = None
    part_rules: DumpRules | None = None
    try:
        manifest = load_manifest(uri, transport_params, encryption)
    except DumpError as exc:
        report.error, report.manifest_ok = str(exc), False
        return report
    authenticated = manifest.encryption is not None  # the restore's trust rule
    report.manifest_ok = True
    report.parts = len(manifest.parts)
    report.size = manifest.size
    report.header = manifest.header
    try:
        missing = missing_parts(uri, transport_params, manifest)
        if missing:
            report.error_part = missing[0]
            raise DumpIntegrityError(
                f"{where}: part {missing[0]} is missing"
                + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
            )
        table_records: dict[str, Record] = {}
        for entry in manifest.parts:
            current = entry
            part_rules = rules()
            for _line, record, _raw in checked_part(
                uri,
                transport_params,
                manifest,
                entry,
                part_rules,
                table_records,
                authenticate_first=False,
            ):
                if entry.kind == "schema" and record.get("kind") == "table":
                    table_records[str(record["table"])] = record
            if entry.kind == "schema":
                _same_tables(manifest, table_records, where)
            digest = part_rules.verifier.digest
            for table, rows in digest.rows.items():
                report.tables[table] = report.tables.get(table, 0) + rows
            report.records += digest.records
            roles |= part_rules.roles
            extensions |= part_rules.extensions
        current = None
    except DumpError as exc:
        report.error, report.error_line = _named(exc, uri, current), exc.line
        if current is not None:
            report.error_part = current.name
            if part_rules is not None and part_rules.verifier.header is None:
                report.error = _named(
                    "the part has no header (a part is never in the legacy (unverified) format)",
                    uri,
                    current,
                )
    except StorageError:
        raise
    except Exception as exc:  # noqa: BLE001 - a broken read or a corrupt compressed frame
        report.error = _named(f"{type(exc).__name__}: {scrub(str(exc))}", uri, current)
        report.error_part = current.name if current is not None else None
    report.roles, report.extensions = sorted(roles), sorted(extensions)
    report.trailer_ok = report.error is None
    report.ok = report.error is None
    return report


def _same_tables(manifest: PartsManifest, records: dict[str, Record], where: str) -> None:
    """The schema part's tables are the manifest's, and each has a data part (an empty
    table too: its part holds its table record and no rows)."""
    declared = set(records)
    with_parts = {str(p.table) for p in manifest.data_parts()}
    for table in sorted(declared | set(manifest.tables) | with_parts):
        if table not in declared:
            raise DumpIntegrityError(f"{where}: table {table!r} is not in the schema part")
        if table not in with_parts or table not in manifest.tables:
            raise DumpIntegrityError(f"{where}: table {table!r} has no data part")


def _named(error: DumpError | str, uri: str, part: PartEntry | None) -> str:
    """The error, prefixed with the part's URI unless it names it already."""
    text = str(error)
    if part is None or part.name in text:
        return text
    return f"{safe_uri(child_uri(uri, part.name))}: {text}"
