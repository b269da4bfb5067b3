"""The commands that make, check and restore dumps, and copy a database on its server.

Each calls one public core function and prints what it returns; the docstring's first
paragraph is the command's help.
"""

from __future__ import annotations

import argparse
import time
from typing import TYPE_CHECKING, Any

from ...core.errors import CommandFailed, CommandUsageError
from ..databases import database, dispose, estimate, make_utils, user_tables
from ..encryption import encryption_from
from ..exits import EXIT_OK, interrupted
from ..output import Output, Progress, confirm, safe_uri, size, spinner
from ..startup import without_collection

if TYPE_CHECKING:
    from ...core.catalog import VerifyReport
    from ...core.crypto import Encryption
    from ...core.inspection import BackupInspection
    from ..databases import Database

#: What ``verify`` cannot check without a target server.
VERIFY_TARGET_NOTE = (
    "dump rules only: the roles and extensions a target server must have are checked by "
    "restore --dry-run"
)


def jobs_argument(args: argparse.Namespace) -> int:
    """``--jobs``, checked: a usage error below 1 (argparse has made it an int)."""
    jobs: int = args.jobs
    if jobs < 1:
        raise CommandUsageError(f"--jobs must be 1 or more (worker processes), not {jobs}")
    return jobs


def cmd_backup(args: argparse.Namespace, out: Output) -> int:
    """back up a database to a file or object"""
    jobs = jobs_argument(args)
    encryption = encryption_from(args, out)
    with without_collection():
        from ...core.backup import backup_to_uri

        source = database(args, out, args.db_url)
        exists = source.database_exists()  # a failure leaves no pooled connection
    try:
        if not exists:
            raise CommandFailed(f"database {source.safe_url} does not exist")
        # The size estimate only feeds the bar and the progress lines: none when --quiet.
        tables, rows = (None, None) if out.quiet else estimate(source.engine)
        with Progress(out, "backup", tables, rows) as progress:
            try:
                result = backup_to_uri(
                    source.engine,
                    args.dest_uri,
                    transport_params=source.transport_params,
                    encryption=encryption,
                    version_table=source.version_table,
                    scope=source.scope,
                    on_record=progress.record,
                    jobs=jobs,
                )
            except BaseException as exc:
                if not interrupted(exc):
                    raise
                raise CommandFailed(
                    f"interrupted: nothing was published at {safe_uri(args.dest_uri)}"
                ) from None
    finally:
        dispose(source)
    manifest = result.manifest()
    parts = (
        f" in {manifest['parts']} parts by {manifest['jobs']} processes"
        if manifest.get("layout") == "parts"
        else ""
    )
    out.result(
        {**manifest, "table_rows": result.tables},
        lambda: out.text(
            f"backed up {source.safe_url} to {result.uri}: {len(result.tables)} tables, "
            f"{result.rows:,} rows, {size(result.bytes)}{parts} in {result.seconds:.1f}s "
            f"(revision {manifest['revision'] or 'none'})"
        ),
    )
    return EXIT_OK


def cmd_restore(args: argparse.Namespace, out: Output) -> int:
    """restore a database from a dump (atomically; a multi-part dump's interrupted restore
    resumes when run again)"""
    jobs = jobs_argument(args)
    encryption = encryption_from(args, out)
    with without_collection():
        from ...core.catalog import find_backup
        from ...core.restore import restore_dump

        target = database(args, out, args.db_url)
        exists = target.database_exists()  # a failure leaves no pooled connection
    source = safe_uri(args.source_uri)
    try:
        listed = find_backup(args.source_uri, target.transport_params)
        existing = user_tables(target.engine) if exists else None
        if args.dry_run:
            return _restore_dry_run(args, out, target, existing, encryption)
        question = (
            f"{target.safe_url} holds {len(existing or [])} tables; "
            f"replace its contents with {source}?"
        )
        if existing and not args.yes and not confirm(question):
            raise CommandFailed(
                f"not confirmed: {target.safe_url} was left as it was (--yes skips)"
            )
        tables = len(listed.tables) if listed else None
        rows = sum(listed.tables.values()) if listed else None
        started = time.monotonic()
        parted = listed is not None and listed.parts is not None
        with Progress(out, "restore", tables, rows) as progress:
            try:
                summary = restore_dump(
                    target,
                    args.source_uri,
                    allow_unverified=args.allow_unverified,
                    allow_routines=args.allow_routines,
                    jobs=jobs,
                    fresh=args.fresh,
                    on_record=progress.record,
                    encryption=encryption,
                )
            except BaseException as exc:
                if not interrupted(exc):
                    raise
                again = "; run the same command again to resume" if parted else ""
                raise CommandFailed(
                    f"interrupted: {target.safe_url} was left as it was (nothing was replaced)"
                    + again
                ) from None
    finally:
        dispose(target)
    header = summary.header or {}
    data = {
        "source": source,
        "database": target.safe_url,
        "tables": summary.tables,
        "rows": summary.rows,
        "verified": summary.verified,
        "revisions": header.get("revisions"),
        "created_at": header.get("created_at"),
        "seconds": round(time.monotonic() - started, 3),
        "parts": summary.parts or None,
        "resumed_parts": summary.resumed_parts,
        "jobs": jobs,
        "worker_peak_mb": summary.worker_peak_mb or None,
    }
    out.result(
        data,
        lambda: out.text(
            f"restored {target.safe_url} from {source}: {len(summary.tables)} tables, "
            f"{summary.rows:,} rows"
            + (f" from {summary.parts} parts" if summary.parts else "")
            + (
                f" ({summary.resumed_parts} loaded before, resumed)"
                if summary.resumed_parts
                else ""
            )
            + ("" if summary.verified else " (UNVERIFIED: the dump has no trailer)")
        ),
    )
    return EXIT_OK


def _restore_dry_run(
    args: argparse.Namespace,
    out: Output,
    target: Database,
    existing: list[str] | None,
    encryption: Encryption | None,
) -> int:
    """The restore's own rules, with its flags, and the target server's (roles,
    extensions; a database still to be created is judged by the server's)."""
    from ...core.catalog import verify_backup

    engine = target.engine if existing is not None else target.master_engine
    with spinner(out, f"verifying {safe_uri(args.source_uri)}"):
        report = verify_backup(
            args.source_uri,
            target.transport_params,
            allow_unverified=args.allow_unverified,
            allow_routines=args.allow_routines,
            target=engine,
            options=target.restore_options,
            encryption=encryption,
        )
    header = report.header or {}
    data = {
        "dry_run": True,
        "source": report.uri,
        "verified": report.ok,
        "unverified": report.unverified,
        "error": report.error,
        "error_line": report.error_line,
        "target_checked": report.target_checked,
        "roles": report.roles,
        "extensions": report.extensions,
        "dump": {
            "database": header.get("database"),
            "dialect": header.get("dialect"),
            "created_at": header.get("created_at"),
            "revisions": header.get("revisions"),
            "tables": report.tables,
            "rows": sum(report.tables.values()),
        },
        "target": {
            "database": target.safe_url,
            "exists": existing is not None,
            "tables": existing or [],
        },
        "would_replace": bool(existing),
    }

    def human() -> None:
        out.text(str(report))
        if report.ok and (report.roles or report.extensions):
            found = ", ".join([*report.roles, *report.extensions])
            out.text(f"the target server has the roles and extensions needed: {found}")
        if existing:
            out.text(
                f"would replace {target.safe_url}: {len(existing)} tables "
                f"({', '.join(existing[:10])}{', ...' if len(existing) > 10 else ''})"
            )
        else:
            out.text(f"would restore into {target.safe_url} (empty or new)")
        out.text("dry run: nothing was changed")

    if not report.ok:
        out.failed_result(data, human)
        raise CommandFailed(f"the dump would not restore: {report.error}")
    out.result(data, human)
    return EXIT_OK


def cmd_verify(args: argparse.Namespace, out: Output) -> int:
    """check a dump end to end with every rule a restore applies, without a database
    (the roles and extensions a target needs: restore --dry-run)"""
    from ...core.catalog import verify_backup
    from ..databases import transport

    with spinner(out, f"verifying {safe_uri(args.uri)}"):
        report = verify_backup(
            args.uri,
            transport(args),
            allow_unverified=args.allow_unverified,
            allow_routines=args.allow_routines,
            encryption=encryption_from(args, out),
        )
    data = _verify_data(report)
    if not report.ok:
        out.failed_result(data, lambda: None)
        raise CommandFailed(f"verification failed: {report}")

    def human() -> None:
        out.text(str(report))
        if report.roles or report.extensions:
            needs = [f"roles {', '.join(report.roles)}"] if report.roles else []
            needs += [f"extensions {', '.join(report.extensions)}"] if report.extensions else []
            out.text(f"the dump needs {'; '.join(needs)}")
        out.text(VERIFY_TARGET_NOTE)

    out.result(data, human)
    return EXIT_OK


def _verify_data(report: VerifyReport) -> dict[str, Any]:
    return {
        "uri": report.uri,
        "verified": report.ok,
        "unverified": report.unverified,
        "error": report.error,
        "error_line": report.error_line,
        "tables": report.tables,
        "rows": sum(report.tables.values()),
        "records": report.records,
        "size": report.size,
        "parts": report.parts,
        "error_part": report.error_part,
        "manifest_ok": report.manifest_ok,
        "target_checked": False,
        "roles": report.roles,
        "extensions": report.extensions,
        "note": VERIFY_TARGET_NOTE,
    }


def cmd_inspect(args: argparse.Namespace, out: Output) -> int:
    """header, tables, rows, sizes and revision of a dump"""
    from dataclasses import asdict

    from ...core.inspection import inspect_backup
    from ..databases import transport

    params = transport(args)
    encryption = encryption_from(args, out)
    envelope = _envelope(args.uri, params)
    if envelope is not None and encryption is None:
        return _envelope_only(out, safe_uri(args.uri), envelope)
    with spinner(out, f"reading {safe_uri(args.uri)}"):
        found = inspect_backup(args.uri, params, encryption=encryption)
    data = {
        "uri": found.uri,
        "size": found.size,
        "uncompressed": found.uncompressed,
        "header": found.header,
        "revision": found.revision,
        "tables": {name: asdict(table) for name, table in found.tables.items()},
        "rows": found.rows,
        "objects": found.objects,
        "verified": found.verified,
        "legacy": found.legacy,
        "error": found.error,
        "parts": found.parts,
        "encryption": envelope,
    }
    if found.error is not None:
        out.failed_result(data, lambda: _print_inspection(found, envelope))
        raise CommandFailed(f"{safe_uri(args.uri)}: {found.error}")
    out.result(data, lambda: _print_inspection(found, envelope))
    return EXIT_OK


def _envelope(uri: str, params: dict[str, Any] | None) -> dict[str, Any] | None:
    """The public envelope of an encrypted dump (a multi-part dump's is in its manifest);
    ``None`` for a plaintext one."""
    from ...core.parts.layout import is_multipart
    from ...core.parts.reading import manifest_envelope
    from ...core.storage import envelope_at

    multi = is_multipart(uri, params)
    envelope = manifest_envelope(uri, params) if multi else envelope_at(uri, params)
    return envelope.public() if envelope is not None else None


def _envelope_only(out: Output, uri: str, envelope: dict[str, Any]) -> int:
    """``inspect`` of an encrypted dump without its key: only what its envelope says."""
    note = "encrypted: give its key (--key-env / --kms-key-id) to see its contents"
    key = envelope["key"]

    def human() -> None:
        out.text(f"{uri}: {note}")
        for label in ("version", "algorithm", "segment_size", "created_at"):
            out.text(f"{label + ':':16}{envelope[label]}")
        out.text(f"{'key:':16}{key['provider']} {key['key_id']} ({key['wrap']})")

    out.result({"uri": uri, "encrypted": True, "encryption": envelope, "note": note}, human)
    return EXIT_OK


def _print_inspection(found: BackupInspection, envelope: dict[str, Any] | None = None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(soft_wrap=True)
    header = found.header

    def line(label: str, value: object) -> None:
        console.print(f"{label + ':':16}{value}", highlight=False)

    for key in ("format", "version", "dialect", "server_version", "database", "created_at"):
        if key in header:
            line(key, header[key])
    line("revision", found.revision or "none")
    if "schemas" in header:
        line("schemas", ", ".join(header["schemas"]))
        left_out = header.get("excluded_schemas") or []
        shown = "; ".join(f"{e.get('schema')} ({e.get('reason')})" for e in left_out)
        line("left out", shown or "none")
        missed = "; ".join(f"{o['kind']} {o['name']}" for o in header.get("not_carried", []))
        if missed:
            line("not carried", missed)
    if found.uncompressed is None:
        line("size", f"{size(found.size or 0)} stored in {found.parts} parts (multi-part dump)")
    else:
        line("size", f"{size(found.size or 0)} stored, {size(found.uncompressed)} uncompressed")
    table = Table("table", "columns", "rows", "bytes" if found.parts is None else "stored")
    for name, t in found.tables.items():
        table.add_row(name, str(t.columns), f"{t.rows:,}", size(t.bytes))
    console.print(table)
    if found.objects:
        line("objects", ", ".join(f"{n} {k}" for k, n in sorted(found.objects.items())))
    legacy = "no trailer (legacy (unverified) format)"
    verified = "yes" if found.verified else (legacy if found.legacy else "NO")
    if found.parts is not None and found.verified:
        verified = "manifest and schema part (verify reads every part)"
    line("verified", verified)
    if envelope is not None:
        key = envelope["key"]
        line("encrypted", f"{envelope['algorithm']}, {key['provider']} key {key['key_id']}")


def cmd_backup_to_db(args: argparse.Namespace, out: Output) -> int:
    """back up a database into another database on the same server (copy is this
    command's older name)"""
    utils = make_utils(args, out, args.db_url)
    started = time.monotonic()
    try:
        if not utils.database_exists():
            raise CommandFailed(f"database {utils.safe_url} does not exist")
        with spinner(out, f"copying {utils.safe_url} to {args.backup_db}"):
            try:
                utils.backup_database_to_db(args.backup_db)
            except BaseException as exc:
                if not interrupted(exc):
                    raise
                raise CommandFailed(
                    f"interrupted: {args.backup_db} was left as it was before the copy"
                ) from None
    finally:
        dispose(utils)
    seconds = time.monotonic() - started
    out.result(
        {"database": utils.safe_url, "backup_db": args.backup_db, "seconds": round(seconds, 3)},
        lambda: out.text(f"copied {utils.safe_url} to {args.backup_db} in {seconds:.1f}s"),
    )
    return EXIT_OK
