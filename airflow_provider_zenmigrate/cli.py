"""``zenmigrate``: backups, restores and migrations from a shell, over the same core.

Exit codes: 0 success, 1 operational failure (including a run interrupted with Ctrl-C and a
refused confirmation), 2 usage error. Errors print one line on stderr (``--debug`` adds the
traceback) and never a password. ``--json`` prints the result as one JSON object on
stdout; progress and logs always go to stderr, as a progress bar on a terminal and as plain
log lines otherwise (``--quiet`` silences both).

Airflow is imported only when ``--airflow-conn`` is given.
"""

from __future__ import annotations

import argparse
import getpass
import json
import logging
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.pool import NullPool

from . import __version__
from .core.errors import UnsupportedDatabaseError, ZenMigrateError
from .core.storage import safe_uri, scrub

logger = logging.getLogger("zenmigrate.cli")

#: The default environment variable a database password is read from.
PASSWORD_ENV = "ZENMIGRATE_PASSWORD"
#: Seconds between two progress log lines when stderr is not a terminal.
PROGRESS_INTERVAL = float(os.environ.get("ZENMIGRATE_PROGRESS_INTERVAL", "5"))

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


_interrupted = False


def _on_sigint(signum: int, frame: Any) -> None:
    global _interrupted
    _interrupted = True
    raise KeyboardInterrupt


def interrupted(exc: BaseException) -> bool:
    """Whether ``exc`` comes from Ctrl-C, also when cleanup after the interrupt raised
    something else (a driver whose read was cut off mid-packet)."""
    return isinstance(exc, KeyboardInterrupt) or (_interrupted and isinstance(exc, Exception))


class UsageError(Exception):
    """The command line is wrong (exit code 2)."""


class Failure(Exception):
    """An operation failed in a way already explained by the message (exit code 1)."""


# -- output ------------------------------------------------------------------------------------
class Output:
    """Where results, progress and errors go, and which secrets never may."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.json: bool = args.json
        self.quiet: bool = args.quiet
        self.debug: bool = args.debug
        self.tty = sys.stderr.isatty() and not self.quiet
        self.secrets: list[str] = []
        self._console: Any = None

    @property
    def console(self) -> Any:
        if self._console is None:
            from rich.console import Console

            self._console = Console(stderr=True)
        return self._console

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            if secret:
                text = text.replace(secret, "***")
        return text

    def result(self, data: dict[str, Any], human: Callable[[], None]) -> None:
        """Print the command's result: one JSON object with --json, else text on stdout."""
        if self.json:
            print(self.redact(json.dumps({"ok": True, **data}, default=str)))
        elif not self.quiet:
            human()

    def failed_result(self, data: dict[str, Any], human: Callable[[], None]) -> None:
        """What a failed command found; the one-line error follows on stderr only."""
        if self.json:
            print(self.redact(json.dumps({"ok": False, **data}, default=str)))
            self.json = False
        elif not self.quiet:
            human()

    def text(self, line: str) -> None:
        print(self.redact(line))

    def error(self, message: str) -> None:
        # scrub: URLs in a driver's message lose their user information and query.
        message = scrub(self.redact(message)) if "://" in message else self.redact(message)
        print(f"zenmigrate: error: {message}", file=sys.stderr)
        if self.json:
            print(json.dumps({"ok": False, "error": message}))

    def setup_logging(self) -> None:
        root = logging.getLogger()
        for old in list(root.handlers):
            root.removeHandler(old)
        handler: logging.Handler
        if self.tty:
            from rich.logging import RichHandler

            handler = RichHandler(console=self.console, show_path=False, markup=False)
        else:
            handler = logging.StreamHandler(sys.stderr)
            handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        handler.addFilter(self._filter)
        root.addHandler(handler)
        level = logging.DEBUG if self.debug else logging.ERROR if self.quiet else logging.INFO
        root.setLevel(level)
        for noisy in (
            "botocore",
            "urllib3",
            "google",
            "azure",
            "smart_open",
            "s3transfer",
            "alembic",
        ):
            logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
        logging.getLogger("alembic.runtime.migration").setLevel(level)

    def _filter(self, record: logging.LogRecord) -> bool:
        # The core logs its own backup progress; the CLI reports a richer one itself.
        if record.name.endswith("core.backup") and "progress" in str(record.msg):
            return False
        if record.name == "alembic.runtime.migration" and str(record.msg).startswith(
            ("Context impl", "Will assume")
        ):
            return False
        record.msg = self.redact(record.getMessage())
        record.args = None
        return True


class Progress:
    """Tables, rows, bytes, rate and ETA: a rich bar on a terminal, log lines otherwise."""

    def __init__(
        self, out: Output, action: str, tables: int | None = None, rows: int | None = None
    ) -> None:
        self.out = out
        self.action = action
        self.total_tables = tables
        self.total_rows = rows
        self.tables = 0
        self.rows = 0
        self.bytes = 0
        self.started = self._last = time.monotonic()
        self._bar: Any = None
        self._task: Any = None

    def __enter__(self) -> Progress:
        if self.out.tty:
            from rich.progress import (
                BarColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )
            from rich.progress import Progress as Bar

            self._bar = Bar(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                TextColumn("{task.fields[info]}"),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=self.out.console,
                transient=True,
            )
            self._bar.__enter__()
            self._task = self._bar.add_task(self.action, total=self.total_rows, info="")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)
            self._bar = None
        if exc[0] is None:
            self._log(final=True)

    def table(self) -> None:
        self.tables += 1
        self._update()

    def add(self, rows: int, nbytes: int) -> None:
        self.rows += rows
        self.bytes += nbytes
        self._update()

    def _info(self) -> str:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        tables = f"{self.tables}/{self.total_tables}" if self.total_tables else str(self.tables)
        rows = f"{self.rows:,}" + (f"/~{self.total_rows:,}" if self.total_rows else "")
        return (
            f"{tables} tables, {rows} rows, {_size(self.bytes)}, {self.rows / elapsed:,.0f} rows/s"
        )

    def _update(self) -> None:
        if self._bar is not None:
            total = self.total_rows
            if total is not None and self.rows > total:
                total = None  # the estimate was low: no ETA rather than a wrong one
            self._bar.update(self._task, completed=self.rows, total=total, info=self._info())
            return
        now = time.monotonic()
        if now - self._last >= PROGRESS_INTERVAL:
            self._last = now
            self._log()

    def _log(self, final: bool = False) -> None:
        if self.out.quiet or self.out.tty:
            return
        eta = ""
        elapsed = time.monotonic() - self.started
        if not final and self.total_rows and self.rows and self.rows < self.total_rows:
            remaining = (self.total_rows - self.rows) * elapsed / self.rows
            eta = f", ETA {remaining:.0f}s"
        what = "done" if final else "progress"
        logger.info("%s %s: %s%s", self.action, what, self._info(), eta)


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"  # pragma: no cover


def _spinner(out: Output, message: str) -> AbstractContextManager[Any]:
    if out.tty:
        return out.console.status(message)
    if not out.quiet:
        logger.info("%s", message)
    return nullcontext()


# -- databases ---------------------------------------------------------------------------------
def parse_db_url(text: str) -> URL:
    from .core.dialects import get_dialect

    try:
        url = make_url(text)
    except ArgumentError:
        raise UsageError(f"not a database URL: {safe_uri(text)!r}") from None
    try:
        get_dialect(url)
    except UnsupportedDatabaseError as exc:
        raise UsageError(str(exc)) from None
    if not url.database:
        raise UsageError(f"the URL {url.render_as_string(hide_password=True)} names no database")
    return url


def _password(args: argparse.Namespace, out: Output, url: URL) -> str | None:
    if url.get_backend_name() == "sqlite" or url.password is not None:
        return None
    if args.password_prompt:
        prompt = f"Password for {url.render_as_string(hide_password=True)}: "
        if sys.stdin.isatty():
            return getpass.getpass(prompt, stream=sys.stderr)
        return sys.stdin.readline().rstrip("\r\n")
    value = os.environ.get(args.password_env or PASSWORD_ENV)
    if args.password_env and value is None:
        raise UsageError(f"the environment variable {args.password_env} is not set")
    return value


def make_utils(args: argparse.Namespace, out: Output, db_url: str | None) -> Any:
    """The core's MigrationUtils for the database named on the command line."""
    from .core.utils import MigrationUtils

    if args.airflow_conn:
        if db_url:
            raise UsageError("give either a database URL or --airflow-conn, not both")
        try:
            from .hooks.zenmigrate import ZenMigrateHook
        except ImportError as exc:
            raise UsageError(f"--airflow-conn needs Apache Airflow ({exc})") from None
        hook = ZenMigrateHook(
            conn_id=args.airflow_conn, storage_conn_id=getattr(args, "airflow_storage_conn", None)
        )
        base = hook.get_migration_utils()
        out.setup_logging()  # Airflow configured its own (stdout) logging on import
        if base.url.password:
            out.secrets.append(base.url.password)
        return _with_scope(args, base)
    if not db_url:
        raise UsageError("a database URL (or --airflow-conn ID) is required")
    url = parse_db_url(db_url)
    if url.password:
        out.secrets.append(str(url.password))
    password = _password(args, out, url)
    if password is not None:
        out.secrets.append(password)
        url = url.set(password=password)
    return _with_scope(
        args,
        MigrationUtils(
            url=url,
            connect_args={},
            engine_args={},
            version_table=args.version_table,
            transport_params=_transport(args),
        ),
    )


def _exclude_schema(parser: argparse.ArgumentParser, help_: str) -> None:
    parser.add_argument(
        "--exclude-schema", action="append", metavar="NAME", dest="exclude_schema", help=help_
    )


def _with_scope(args: argparse.Namespace, utils: Any) -> Any:
    """The schema and ownership options of ``backup`` / ``restore`` (PostgreSQL)."""
    utils.schemas = list(getattr(args, "schema", None) or [])
    utils.exclude_schemas = list(getattr(args, "exclude_schema", None) or [])
    for option in ("no_owner", "no_privileges", "skip_missing_roles"):
        setattr(utils, option, bool(getattr(args, option, False)))
    return utils


def _airflow_transport(conn_id: str) -> dict[str, Any] | None:
    try:
        from .hooks.zenmigrate import ZenMigrateHook
    except ImportError as exc:
        raise UsageError(f"--airflow-storage-conn needs Apache Airflow ({exc})") from None
    return ZenMigrateHook(storage_conn_id=conn_id).get_transport_params()


def _transport(args: argparse.Namespace) -> dict[str, Any] | None:
    if getattr(args, "airflow_storage_conn", None):
        return _airflow_transport(args.airflow_storage_conn)
    return None


def _user_tables(utils: Any) -> list[str] | None:
    """The target's tables; ``None`` when the database does not exist."""
    if not utils.database_exists():
        return None
    with utils.engine.connect() as conn:
        return sorted(utils.dialect.user_tables(conn))


def _estimate(utils: Any) -> tuple[int | None, int | None]:
    """Tables and (estimated) rows of a database, for the progress bar's ETA; best effort."""
    try:
        with utils.engine.connect() as conn:
            tables = len(utils.dialect.user_tables(conn))
        return tables, utils.estimated_rows()
    except SQLAlchemyError:
        logger.debug("no size estimate", exc_info=True)
        return None, None


def _dispose(utils: Any) -> None:
    try:
        utils.dispose()
    except Exception:  # noqa: BLE001 - a connection broken by an interrupt; the error wins
        logger.debug("dispose failed", exc_info=True)


# -- commands ----------------------------------------------------------------------------------
def cmd_backup(args: argparse.Namespace, out: Output) -> int:
    utils = make_utils(args, out, args.db_url)
    if utils.transport_params is None:
        utils.transport_params = _transport(args)
    try:
        if not utils.database_exists():
            raise Failure(f"database {utils.safe_url} does not exist")
        tables, rows = _estimate(utils)
        with Progress(out, "backup", tables, rows) as progress:

            def observe(record: dict[str, Any], line: bytes) -> None:
                kind = record.get("kind")
                if kind == "data":
                    rows = record["rows"] if "rows" in record else len(record["data"])
                    progress.add(rows, len(line) + 1)
                else:
                    if kind == "table":
                        progress.table()
                    progress.add(0, len(line) + 1)

            try:
                result = utils.backup_database_to_file(args.dest_uri, on_record=observe)
            except BaseException as exc:
                if not interrupted(exc):
                    raise
                raise Failure(
                    f"interrupted: nothing was published at {safe_uri(args.dest_uri)}"
                ) from None
    finally:
        _dispose(utils)
    manifest = result.manifest()
    out.result(
        {**manifest, "table_rows": result.tables},
        lambda: out.text(
            f"backed up {utils.safe_url} to {result.uri}: {len(result.tables)} tables, "
            f"{result.rows:,} rows, {_size(result.bytes)} in {result.seconds:.1f}s "
            f"(revision {manifest['revision'] or 'none'})"
        ),
    )
    return EXIT_OK


def _manifest_totals(uri: str, transport: dict[str, Any] | None) -> tuple[int | None, int | None]:
    from .core.catalog import manifest_key
    from .core.storage import backend_for

    try:
        backend = backend_for(uri, transport)
        manifest = json.loads(backend.read_bytes(manifest_key(backend.location.key)))
        tables = dict(manifest["tables"])
        return len(tables), sum(int(v) for v in tables.values())
    except Exception:  # noqa: BLE001 - no (readable) manifest: progress without totals
        return None, None


def _confirm(question: str) -> bool:
    print(question + " [y/N] ", end="", file=sys.stderr, flush=True)
    answer = sys.stdin.readline()
    if not sys.stdin.isatty():  # the answer was not echoed: end the prompt's line
        print(answer.strip(), file=sys.stderr)
    return answer.strip().lower() in ("y", "yes")


def cmd_restore(args: argparse.Namespace, out: Output) -> int:
    from .core.catalog import verify_backup
    from .core.dump.reader import entries_from_stream
    from .core.dump.typed_data import DecodedRows
    from .core.restore import restore_entries
    from .core.storage import StorageNotFoundError, backend_for, open_for_read

    utils = make_utils(args, out, args.db_url)
    if utils.transport_params is None:
        utils.transport_params = _transport(args)
    source = safe_uri(args.source_uri)
    try:
        backend = backend_for(args.source_uri, utils.transport_params)
        if backend.stat(backend.location.key) is None:
            raise StorageNotFoundError(f"backup not found: {source}")
        existing = _user_tables(utils)
        if args.dry_run:
            # The restore's own rules, with its flags, and the target server's (roles,
            # extensions; a database still to be created is judged by the server's).
            target = utils.engine if existing is not None else utils.master_engine
            with _spinner(out, f"verifying {source}"):
                report = verify_backup(
                    args.source_uri,
                    utils.transport_params,
                    allow_unverified=args.allow_unverified,
                    allow_routines=args.allow_routines,
                    target=target,
                    options=utils.restore_options,
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
                    "database": utils.safe_url,
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
                        f"would replace {utils.safe_url}: {len(existing)} tables "
                        f"({', '.join(existing[:10])}{', ...' if len(existing) > 10 else ''})"
                    )
                else:
                    out.text(f"would restore into {utils.safe_url} (empty or new)")
                out.text("dry run: nothing was changed")

            if not report.ok:
                out.failed_result(data, human)
                raise Failure(f"the dump would not restore: {report.error}")
            out.result(data, human)
            return EXIT_OK
        question = (
            f"{utils.safe_url} holds {len(existing or [])} tables; "
            f"replace its contents with {source}?"
        )
        if existing and not args.yes and not _confirm(question):
            raise Failure(f"not confirmed: {utils.safe_url} was left as it was (--yes skips)")
        tables, rows = _manifest_totals(args.source_uri, utils.transport_params)
        started = time.monotonic()
        with Progress(out, "restore", tables, rows) as progress:

            def observed(entries: Iterator[Any]) -> Iterator[Any]:
                for entry in entries:
                    _line, record, raw = entry
                    size = len(raw) + 1 if raw is not None else 0
                    if isinstance(record, dict) and record.get("kind") == "table":
                        progress.table()
                    rows = record.get("data") if isinstance(record, dict) else None
                    progress.add(len(rows) if isinstance(rows, list | DecodedRows) else 0, size)
                    yield entry

            try:
                logger.info("restoring %s from %s", utils.safe_url, source)
                with open_for_read(args.source_uri, utils.transport_params) as stream:
                    if existing is None:
                        utils.create_database()
                    summary = restore_entries(
                        utils.engine,
                        observed(entries_from_stream(stream)),
                        allow_unverified=args.allow_unverified,
                        allow_routines=args.allow_routines,
                        options=utils.restore_options,
                    )
            except BaseException as exc:
                if not interrupted(exc):
                    raise
                raise Failure(
                    f"interrupted: {utils.safe_url} was left as it was (nothing was replaced)"
                ) from None
    finally:
        _dispose(utils)
    header = summary.header or {}
    data = {
        "source": source,
        "database": utils.safe_url,
        "tables": summary.tables,
        "rows": summary.rows,
        "verified": summary.verified,
        "revisions": header.get("revisions"),
        "created_at": header.get("created_at"),
        "seconds": round(time.monotonic() - started, 3),
    }
    out.result(
        data,
        lambda: out.text(
            f"restored {utils.safe_url} from {source}: {len(summary.tables)} tables, "
            f"{summary.rows:,} rows"
            + ("" if summary.verified else " (UNVERIFIED: the dump has no trailer)")
        ),
    )
    return EXIT_OK


#: What ``verify`` cannot check without a target server.
VERIFY_TARGET_NOTE = (
    "dump rules only: the roles and extensions a target server must have are checked by "
    "restore --dry-run"
)


def cmd_verify(args: argparse.Namespace, out: Output) -> int:
    from .core.catalog import verify_backup

    with _spinner(out, f"verifying {safe_uri(args.uri)}"):
        report = verify_backup(
            args.uri,
            _transport(args),
            allow_unverified=args.allow_unverified,
            allow_routines=args.allow_routines,
        )
    data = {
        "uri": report.uri,
        "verified": report.ok,
        "unverified": report.unverified,
        "error": report.error,
        "error_line": report.error_line,
        "tables": report.tables,
        "rows": sum(report.tables.values()),
        "records": report.records,
        "size": report.size,
        "manifest_ok": report.manifest_ok,
        "target_checked": False,
        "roles": report.roles,
        "extensions": report.extensions,
        "note": VERIFY_TARGET_NOTE,
    }
    if not report.ok:
        out.failed_result(data, lambda: None)
        raise Failure(f"verification failed: {report}")

    def human() -> None:
        out.text(str(report))
        if report.roles or report.extensions:
            needs = [f"roles {', '.join(report.roles)}"] if report.roles else []
            needs += [f"extensions {', '.join(report.extensions)}"] if report.extensions else []
            out.text(f"the dump needs {'; '.join(needs)}")
        out.text(VERIFY_TARGET_NOTE)

    out.result(data, human)
    return EXIT_OK


def cmd_inspect(args: argparse.Namespace, out: Output) -> int:
    from .core.dump.reader import DumpVerifier, entries_from_stream
    from .core.errors import DumpError
    from .core.storage import backend_for, open_for_read

    transport = _transport(args)
    verifier = DumpVerifier(allow_unverified=True)
    tables: dict[str, dict[str, Any]] = {}
    objects: dict[str, int] = {}
    error: str | None = None
    total = 0
    try:
        with (
            _spinner(out, f"reading {safe_uri(args.uri)}"),
            open_for_read(args.uri, transport) as stream,
        ):
            for line, record, raw in entries_from_stream(stream):
                size = len(raw) + 1 if raw is not None else 0
                total += size
                checked = verifier.check(line, record, raw)
                kind = checked.get("kind")
                if kind == "table":
                    tables[checked["table"]] = {
                        "rows": 0,
                        "bytes": size,
                        "columns": len(checked.get("columns") or []),
                    }
                elif kind == "data":
                    entry = tables[checked["table"]]
                    entry["rows"] += len(checked["data"])
                    entry["bytes"] += size
                elif kind == "object":
                    kind_name = str(checked.get("object_type"))
                    objects[kind_name] = objects.get(kind_name, 0) + 1
            verifier.finish()
    except DumpError as exc:
        error = str(exc)
    backend = backend_for(args.uri, transport)
    info = backend.stat(backend.location.key)
    header = {k: v for k, v in (verifier.header or {}).items() if k != "kind"}
    revisions = header.get("revisions") or []
    verified = error is None and verifier.trailer is not None
    data = {
        "uri": safe_uri(args.uri),
        "size": info.size if info else None,
        "uncompressed": total,
        "header": header,
        "revision": "+".join(revisions) if revisions else None,
        "tables": tables,
        "rows": sum(t["rows"] for t in tables.values()),
        "objects": objects,
        "verified": verified,
        "legacy": verifier.legacy,
        "error": error,
    }

    stored = info.size if info else 0

    def human() -> None:
        from rich.console import Console
        from rich.table import Table

        console = Console(soft_wrap=True)
        for key in ("format", "version", "dialect", "server_version", "database", "created_at"):
            if key in header:
                console.print(f"{key + ':':16}{header[key]}", highlight=False)
        console.print(f"{'revision:':16}{data['revision'] or 'none'}", highlight=False)
        if "schemas" in header:
            console.print(f"{'schemas:':16}{', '.join(header['schemas'])}", highlight=False)
            left_out = header.get("excluded_schemas") or []
            shown = "; ".join(f"{e.get('schema')} ({e.get('reason')})" for e in left_out)
            console.print(f"{'left out:':16}{shown or 'none'}", highlight=False)
            missed = "; ".join(f"{o['kind']} {o['name']}" for o in header.get("not_carried", []))
            if missed:
                console.print(f"{'not carried:':16}{missed}", highlight=False)
        console.print(
            f"{'size:':16}{_size(stored)} stored, {_size(total)} uncompressed",
            highlight=False,
        )
        table = Table("table", "columns", "rows", "bytes")
        for name, t in tables.items():
            table.add_row(name, str(t["columns"]), f"{t['rows']:,}", _size(t["bytes"]))
        console.print(table)
        if objects:
            listed = ", ".join(f"{n} {k}" for k, n in sorted(objects.items()))
            console.print(f"{'objects:':16}{listed}", highlight=False)
        status = "yes" if verified else ("no trailer (seed format)" if verifier.legacy else "NO")
        console.print(f"{'verified:':16}{status}", highlight=False)

    if error is not None:
        out.failed_result(data, human)
        raise Failure(f"{safe_uri(args.uri)}: {error}")
    out.result(data, human)
    return EXIT_OK


def cmd_list(args: argparse.Namespace, out: Output) -> int:
    from .core.catalog import list_backups

    backups = list_backups(args.prefix_uri, _transport(args))
    items: list[dict[str, Any]] = [
        {
            "uri": b.uri,
            "created_at": b.created_at.isoformat(),
            "database": b.database,
            "dialect": b.dialect,
            "revision": b.revision,
            "tables": len(b.tables),
            "rows": sum(b.tables.values()),
            "size": b.size,
        }
        for b in backups
    ]

    def human() -> None:
        if not items:
            out.text(f"no complete backups under {safe_uri(args.prefix_uri)}")
            return
        for item in items:
            out.text(
                f"{item['created_at']}  {item['dialect']:10} {item['database'] or '-':20} "
                f"rev {item['revision'] or '-':12} {item['rows']:>12,} rows "
                f"{_size(item['size']):>10}  {item['uri']}"
            )

    out.result({"backups": items}, human)
    return EXIT_OK


def cmd_prune(args: argparse.Namespace, out: Output) -> int:
    from .core.catalog import prune_backups

    if args.keep < 0:
        raise UsageError("--keep must be 0 or more")
    doomed = prune_backups(args.prefix_uri, args.keep, _transport(args), dry_run=args.dry_run)
    uris = [b.uri for b in doomed]
    verb = "would delete" if args.dry_run else "deleted"

    def human() -> None:
        for uri in uris:
            out.text(f"{verb} {uri}")
        out.text(f"{verb} {len(uris)} backups, kept the {args.keep} newest")

    out.result({"deleted": uris, "kept": args.keep, "dry_run": args.dry_run}, human)
    return EXIT_OK


def _alembic(args: argparse.Namespace, utils: Any) -> Any:
    from .core.alembic import Alembic

    if not args.scripts and not args.config:
        raise UsageError("--scripts DIR (or --config alembic.ini) is required")
    return Alembic(
        utils.engine,
        script_location=args.scripts,
        config_file=args.config,
        version_table=args.version_table,
    )


def _migrate(args: argparse.Namespace, out: Output, direction: str) -> int:
    utils = make_utils(args, out, args.db_url)
    try:
        if not utils.database_exists():
            if direction != "upgrade":
                raise Failure(f"database {utils.safe_url} does not exist")
            utils.create_database()
        alembic = _alembic(args, utils)
        before = alembic.current_revisions()
        target = args.revision or "heads"
        with _spinner(out, f"{direction} {utils.safe_url} to {target}"):
            try:
                getattr(alembic, direction)(target)
            except BaseException as exc:
                if not interrupted(exc):
                    raise
                raise Failure(
                    f"interrupted during the {direction}: revisions already applied stay "
                    "applied (each runs in its own transaction)"
                ) from None
        after = alembic.current_revisions()
    finally:
        _dispose(utils)
    out.result(
        {"database": utils.safe_url, "before": before, "after": after},
        lambda: out.text(
            f"{direction}: {'+'.join(before) or 'base'} -> {'+'.join(after) or 'base'}"
        ),
    )
    return EXIT_OK


def cmd_upgrade(args: argparse.Namespace, out: Output) -> int:
    return _migrate(args, out, "upgrade")


def cmd_downgrade(args: argparse.Namespace, out: Output) -> int:
    return _migrate(args, out, "downgrade")


def cmd_current(args: argparse.Namespace, out: Output) -> int:
    from alembic.runtime.migration import MigrationContext

    utils = make_utils(args, out, args.db_url)
    try:
        if not utils.database_exists():
            raise Failure(f"database {utils.safe_url} does not exist")
        with utils.engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"version_table": args.version_table})
            current = sorted(context.get_current_heads())
        heads = sorted(_alembic(args, utils).head_revisions()) if args.scripts else None
    finally:
        _dispose(utils)
    data: dict[str, Any] = {"database": utils.safe_url, "revisions": current}
    if heads is not None:
        data["heads"] = heads
        data["up_to_date"] = set(current) == set(heads)

    def human() -> None:
        line = "+".join(current) or "base (no revision)"
        if heads is not None:
            line += " (head)" if data["up_to_date"] else f" (heads: {'+'.join(heads)})"
        out.text(line)

    out.result(data, human)
    return EXIT_OK


def cmd_heads(args: argparse.Namespace, out: Output) -> int:
    import sqlalchemy

    from .core.alembic import Alembic

    if not args.scripts and not args.config:
        raise UsageError("--scripts DIR (or --config alembic.ini) is required")
    # No database is read: the engine only satisfies the wrapper's constructor.
    engine = sqlalchemy.create_engine("sqlite://", poolclass=NullPool)
    alembic = Alembic(engine, script_location=args.scripts, config_file=args.config)
    heads = sorted(alembic.head_revisions())
    out.result({"heads": heads}, lambda: out.text("\n".join(heads) or "(no revisions)"))
    return EXIT_OK


def cmd_copy(args: argparse.Namespace, out: Output) -> int:
    utils = make_utils(args, out, args.db_url)
    started = time.monotonic()
    try:
        if not utils.database_exists():
            raise Failure(f"database {utils.safe_url} does not exist")
        with _spinner(out, f"copying {utils.safe_url} to {args.backup_db}"):
            try:
                utils.backup_database_to_db(args.backup_db)
            except BaseException as exc:
                if not interrupted(exc):
                    raise
                raise Failure(
                    f"interrupted: {args.backup_db} was left as it was before the copy"
                ) from None
    finally:
        _dispose(utils)
    seconds = time.monotonic() - started
    out.result(
        {"database": utils.safe_url, "backup_db": args.backup_db, "seconds": round(seconds, 3)},
        lambda: out.text(f"copied {utils.safe_url} to {args.backup_db} in {seconds:.1f}s"),
    )
    return EXIT_OK


# -- the parser --------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("output")
    group.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    group.add_argument("-q", "--quiet", action="store_true", help="no progress, no log lines")
    group.add_argument("--debug", action="store_true", help="debug logs; tracebacks on errors")

    database = argparse.ArgumentParser(add_help=False)
    group = database.add_argument_group("database")
    group.add_argument(
        "--airflow-conn",
        metavar="ID",
        help="take the database from this Airflow connection instead of a URL",
    )
    group.add_argument(
        "--password-env",
        metavar="VAR",
        help=f"read the password from this environment variable (default: {PASSWORD_ENV}, "
        "used when set and the URL has a user but no password)",
    )
    group.add_argument(
        "-W",
        "--password-prompt",
        action="store_true",
        help="ask for the password (read from stdin when it is not a terminal)",
    )
    group.add_argument("--version-table", default="alembic_version", help="Alembic version table")

    storage = argparse.ArgumentParser(add_help=False)
    storage.add_argument(
        "--airflow-storage-conn",
        metavar="ID",
        help="object-store credentials from this Airflow connection (aws, gcp, wasb)",
    )

    scripts = argparse.ArgumentParser(add_help=False)
    scripts.add_argument("--scripts", metavar="DIR", help="migration scripts folder")
    scripts.add_argument("--config", metavar="INI", help="alembic.ini of a full Alembic project")

    parser = argparse.ArgumentParser(
        prog="zenmigrate",
        description="Back up, restore, verify and migrate MySQL/MariaDB, PostgreSQL and "
        "SQLite databases. DB_URL is an SQLAlchemy URL (mysql+pymysql://user@host/db, "
        "postgresql+psycopg://user@host/db, sqlite:///path.db); storage URIs are local "
        "paths or file://, s3://, gs://, azure:// (.gz / .zst compress).",
        epilog="Exit codes: 0 success, 1 failure (also when interrupted or not confirmed), "
        "2 usage error.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def add(name: str, help_: str, *parents: argparse.ArgumentParser) -> Any:
        return sub.add_parser(name, help=help_, description=help_, parents=[common, *parents])

    p = add("backup", "back up a database to a file or object", database, storage)
    p.add_argument("db_url", nargs="?", metavar="DB_URL")
    p.add_argument("dest_uri", metavar="DEST_URI")
    p.add_argument(
        "--schema",
        action="append",
        metavar="NAME",
        help="PostgreSQL: back up only this schema (repeatable; default: every schema but "
        "the system ones)",
    )
    _exclude_schema(p, "PostgreSQL: leave this schema out (repeatable); the dump says so")
    p.set_defaults(func=cmd_backup)

    trust = argparse.ArgumentParser(add_help=False)
    trust.add_argument(
        "--allow-unverified",
        action="store_true",
        help="accept a dump without header and trailer (the seed's format)",
    )
    trust.add_argument(
        "--allow-routines",
        action="store_true",
        help="create the dump's functions, procedures, aggregates and events: their bodies "
        "are code the server runs, which the safety checks cannot fully read (trusted "
        "dumps only)",
    )

    p = add("restore", "restore a database from a dump (atomically)", database, storage, trust)
    p.add_argument("source_uri", metavar="SOURCE_URI")
    p.add_argument("db_url", nargs="?", metavar="DB_URL")
    p.add_argument("-y", "--yes", action="store_true", help="replace a non-empty database")
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="check the dump with every rule the restore applies, and the target server for "
        "the roles and extensions it needs; report what would be replaced",
    )
    _exclude_schema(p, "PostgreSQL: refuse a dump that holds this schema (repeatable)")
    p.add_argument(
        "--no-owner",
        action="store_true",
        help="PostgreSQL: leave every object to the restoring role (as pg_restore --no-owner)",
    )
    p.add_argument(
        "--no-privileges",
        action="store_true",
        help="PostgreSQL: restore no GRANT or REVOKE (as pg_restore --no-privileges)",
    )
    p.add_argument(
        "--skip-missing-roles",
        action="store_true",
        help="PostgreSQL: leave out, with a warning, owners and grants naming roles the "
        "target lacks (by default such a dump is refused before anything changes)",
    )
    p.set_defaults(func=cmd_restore)

    p = add(
        "verify",
        "check a dump end to end with every rule a restore applies, without a database "
        "(the roles and extensions a target needs: restore --dry-run)",
        storage,
        trust,
    )
    p.add_argument("uri", metavar="URI")
    p.set_defaults(func=cmd_verify)

    p = add("inspect", "header, tables, rows, sizes and revision of a dump", storage)
    p.add_argument("uri", metavar="URI")
    p.set_defaults(func=cmd_inspect)

    p = add("list", "complete backups under a prefix, newest first", storage)
    p.add_argument("prefix_uri", metavar="PREFIX_URI")
    p.set_defaults(func=cmd_list)

    p = add("prune", "delete all but the N newest backups under a prefix", storage)
    p.add_argument("prefix_uri", metavar="PREFIX_URI")
    p.add_argument("--keep", type=int, required=True, metavar="N")
    p.add_argument("--dry-run", action="store_true", help="only list what would be deleted")
    p.set_defaults(func=cmd_prune)

    p = add("upgrade", "run migrations up to a revision (default: heads)", database, scripts)
    p.add_argument("db_url", nargs="?", metavar="DB_URL")
    p.add_argument("--revision", metavar="R", help="target revision (default: heads)")
    p.set_defaults(func=cmd_upgrade)

    p = add("downgrade", "revert migrations down to a revision", database, scripts)
    p.add_argument("db_url", nargs="?", metavar="DB_URL")
    p.add_argument("--revision", metavar="R", required=True, help="target revision or base")
    p.set_defaults(func=cmd_downgrade)

    p = add("current", "the database's Alembic revision(s)", database, scripts)
    p.add_argument("db_url", nargs="?", metavar="DB_URL")
    p.set_defaults(func=cmd_current)

    p = add("heads", "the head revision(s) of a scripts folder", scripts)
    p.set_defaults(func=cmd_heads)

    p = add("copy", "back up a database into another database on the same server", database)
    p.add_argument("db_url", nargs="?", metavar="DB_URL")
    p.add_argument("backup_db", metavar="BACKUP_DB")
    p.set_defaults(func=cmd_copy)
    return parser


def _describe(exc: BaseException) -> str:
    """One line for an error: the driver's message for database errors, else the text."""
    if isinstance(exc, SQLAlchemyError):
        orig = getattr(exc, "orig", None)
        text = str(orig) if orig is not None else str(exc).split("\n")[0]
        text = text.strip().split("\n")[0]
        return f"database error: {text}"
    if isinstance(exc, ZenMigrateError | Failure | UsageError):
        return str(exc).split("\n")[0]
    return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}".rstrip(": ")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    out = Output(args)
    out.setup_logging()
    signal.signal(signal.SIGINT, _on_sigint)
    try:
        return int(args.func(args, out))
    except UsageError as exc:
        out.error(str(exc))
        return EXIT_USAGE
    except KeyboardInterrupt:
        out.error("interrupted")
        return EXIT_FAILURE
    except Exception as exc:  # noqa: BLE001 - every failure becomes one line and exit code 1
        if out.debug:
            print(out.redact(traceback.format_exc()), file=sys.stderr, end="")
        out.error(_describe(exc))
        return EXIT_FAILURE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
