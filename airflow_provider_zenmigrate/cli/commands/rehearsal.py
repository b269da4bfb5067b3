"""``zenmigrate rehearse``: run the pending migrations on a scratch copy before production.

It calls :func:`...core.rehearsal.rehearse` and prints its report: Markdown on stdout, or
the report's JSON with ``--json``. A failed gate is not an error of the command: the report
is printed, the reason follows as one line on stderr and the exit code is
:data:`..exits.EXIT_GATE`. Input the rehearsal cannot run with (scripts that do not load, an
unreachable rehearsal server, an unknown revision) is a usage error (exit code 2).
"""

from __future__ import annotations

import argparse
import logging
import os
from typing import TYPE_CHECKING

from ...core.errors import CommandUsageError, RehearsalError, StorageError
from ...core.rehearsal.model import GATES
from ..databases import dispose, make_utils, parse_db_url
from ..exits import EXIT_GATE, EXIT_OK, describe
from ..output import Output

if TYPE_CHECKING:
    from ...core.utils import MigrationUtils

logger = logging.getLogger("zenmigrate.cli")

#: Where the password of a ``--rehearsal-db`` URL without one is read from.
REHEARSAL_PASSWORD_ENV = "ZENMIGRATE_REHEARSAL_PASSWORD"

#: The subcommand's epilog: what the exit codes mean for a rehearsal.
REHEARSE_EPILOG = (
    f"Exit codes: {EXIT_OK} the rehearsal passed its gate; {EXIT_GATE} the gate failed (a "
    "revision failed, or --fail-on / --max-duration found something: the report is printed "
    "and the reason follows on stderr); 1 an operational failure (production unreachable, the "
    "report could not be stored, interrupted); 2 bad input (a usage error, scripts that do not "
    "load, an unreachable --rehearsal-db, a revision unknown to the scripts)."
)


def comma_list(text: str) -> list[str]:
    """``a,b, c`` as ``["a", "b", "c"]`` (for options that take several names)."""
    return [item.strip() for item in text.split(",") if item.strip()]


def gates(text: str) -> list[str]:
    """An argparse type: a comma-separated list of gates, each one of ``GATES``."""
    names = comma_list(text)
    unknown = [name for name in names if name not in GATES]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown gate {', '.join(unknown)} (choose from {', '.join(GATES)})"
        )
    return names


def seconds(text: str) -> float:
    """An argparse type: a positive number of seconds."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("must be more than 0 seconds")
    return value


def add_rehearse_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``rehearse`` (the database, storage and scripts groups are parents)."""
    p.epilog = REHEARSE_EPILOG
    p.add_argument("db_url", nargs="?", metavar="DB_URL", help="production (or use --db)")
    p.add_argument("--db", metavar="URL", dest="db", help="production, as DB_URL")
    p.add_argument("--revision", default="heads", metavar="R", help="target (default: heads)")
    p.add_argument(
        "--from",
        dest="source_uri",
        metavar="URI",
        help="make the copy from this backup (default: a fresh copy of production)",
    )
    p.add_argument(
        "--rehearsal-db",
        metavar="URL",
        help="make the copy on this server instead of production's (a database URL on it; "
        f"its password from the URL or ${REHEARSAL_PASSWORD_ENV})",
    )
    p.add_argument(
        "--check-downgrade",
        action="store_true",
        help="after the upgrade, downgrade the copy to the start and compare the schemas",
    )
    p.add_argument(
        "--no-drift",
        action="store_true",
        help="skip comparing production's schema with its scripts'",
    )
    p.add_argument(
        "--fail-on",
        type=gates,
        default=["error"],
        metavar="GATES",
        help=f"what fails the rehearsal, comma-separated: {', '.join(GATES)} (default: error)",
    )
    p.add_argument(
        "--max-duration",
        type=seconds,
        metavar="SECONDS",
        help="fail when the estimated duration on production is longer",
    )
    p.add_argument(
        "--lint-ignore",
        type=comma_list,
        action="append",
        default=[],
        metavar="RULE,...",
        help="lint rules to ignore (repeatable)",
    )
    p.add_argument(
        "--allow-routines",
        action="store_true",
        help="restore the --from backup's functions, procedures and events into the copy "
        "(trusted dumps only)",
    )
    p.add_argument(
        "--report-uri",
        metavar="URI",
        help="store the report (.rehearsal.json, .rehearsal.md, .upgrade.sql) beside this "
        "URI (default: beside --from when given; else not stored)",
    )


def _production_url(args: argparse.Namespace) -> str | None:
    if args.db and args.db_url and args.db != args.db_url:
        raise CommandUsageError("give the database once: DB_URL or --db, not both")
    return str(args.db or args.db_url or "") or None


def _rehearsal_server(args: argparse.Namespace, out: Output) -> MigrationUtils | None:
    """The separate server of ``--rehearsal-db``; ``None``: production's own server."""
    from ...core.utils import MigrationUtils

    if not args.rehearsal_db:
        return None
    url = parse_db_url(args.rehearsal_db)
    if url.password:
        out.secrets.append(str(url.password))
    elif url.username and url.get_backend_name() != "sqlite":
        password = os.environ.get(REHEARSAL_PASSWORD_ENV)
        if password is not None:
            out.secrets.append(password)
            url = url.set(password=password)
    return MigrationUtils(
        url=url, connect_args={}, engine_args={}, version_table=args.version_table
    )


def cmd_rehearse(args: argparse.Namespace, out: Output) -> int:
    """rehearse the pending migrations on a scratch copy of the database (exit code 3: the
    gate failed)

    The copy is made fresh or from a backup (--from), on production's server or another
    (--rehearsal-db), and always dropped. The report (per revision: seconds, rewritten
    tables, strongest lock, lint; drift; the way back) is printed as Markdown, or as JSON.
    """
    from ...core.rehearsal import rehearse, render_markdown, store_report

    if not args.scripts and not args.config:
        raise CommandUsageError("--scripts DIR (or --config alembic.ini) is required")
    production = make_utils(args, out, _production_url(args))
    server: MigrationUtils | None = None
    try:
        server = _rehearsal_server(args, out)
        try:
            report = rehearse(
                production,
                script_location=args.scripts,
                config_file=args.config,
                revision=args.revision,
                source_uri=args.source_uri,
                transport_params=production.transport_params,
                rehearsal_server=server,
                check_drift=not args.no_drift,
                check_downgrade=args.check_downgrade,
                fail_on=args.fail_on,
                max_duration=args.max_duration,
                lint_ignore=[rule for rules in args.lint_ignore for rule in rules],
                allow_routines=args.allow_routines,
                log=lambda line: logger.info("%s", line),
            )
        except RehearsalError as exc:
            raise CommandUsageError(describe(exc)) from None
    finally:
        dispose(production)
        if server is not None:
            dispose(server)

    store_error: StorageError | None = None
    report_uri = args.report_uri or args.source_uri
    if report_uri:
        try:
            stored = store_report(report, report_uri, production.transport_params)
            logger.info("rehearsal report stored at %s", stored["markdown"])
        except StorageError as exc:
            store_error = exc

    def human() -> None:
        out.text(render_markdown(report).rstrip("\n"))

    data = report.to_dict()
    if report.passed and store_error is None:
        out.result(data, human)
    else:
        out.failed_result(data, human)
    if store_error is not None:
        raise store_error
    if not report.passed:
        out.error(f"rehearsal failed: {report.reason}")
        return EXIT_GATE
    return EXIT_OK
