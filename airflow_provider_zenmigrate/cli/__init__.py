"""``zenmigrate``: backups, restores and migrations from a shell, over the same core.

Exit codes: 0 success, 1 operational failure (including a run interrupted with Ctrl-C and a
refused confirmation), 2 usage error, 3 a rehearsal whose gate failed (``rehearse``).
Errors print one line on stderr (``--debug`` adds the traceback) and never a password.
``--json`` prints the result as one JSON object on stdout; progress and logs always go to
stderr, as a progress bar on a terminal and as plain log lines otherwise (``--quiet``
silences both).

Airflow is imported only when ``--airflow-conn`` is given. Parsing imports nothing heavy:
SQLAlchemy, pydantic, the crypto stack, smart_open and the drivers are imported by the
command that uses them when it runs, so ``--version`` and ``--help`` stay fast
(``tests/cli/test_startup_imports.py`` keeps it so).

Modules: :mod:`.parser` (argparse, built from the commands), :mod:`.commands` (one function
per command, each over one public core function), :mod:`.output` (results, progress,
errors), :mod:`.databases` (a URL or Airflow connection as the command line's ``Database``,
which ``backup`` and ``restore`` use as it is and the other commands turn into
``MigrationUtils``), :mod:`.startup` (imports without the garbage collector), :mod:`.exits`
(exit codes, Ctrl-C, the one line an error becomes).
"""

from __future__ import annotations

import signal
import sys
import traceback
from collections.abc import Sequence

from ..core.errors import CommandUsageError
from .exits import (
    EXIT_FAILURE,
    EXIT_STDOUT_CLOSED,
    EXIT_USAGE,
    describe,
    on_sigint,
    silence_stdout,
    stdout_closed,
)
from .output import Output
from .parser import build_parser

__all__ = ["build_parser", "main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns its exit code (the console script exits with it)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    out = Output(args)
    out.setup_logging()
    signal.signal(signal.SIGINT, on_sigint)
    try:
        return int(args.func(args, out))
    except CommandUsageError as exc:
        out.error(str(exc))
        return EXIT_USAGE
    except KeyboardInterrupt:
        out.error("interrupted")
        return EXIT_FAILURE
    except Exception as exc:  # noqa: BLE001 - every failure becomes one line and exit code 1
        if stdout_closed(exc):  # `zenmigrate ... | head`: nothing to say, nowhere to say it
            silence_stdout()
            return EXIT_STDOUT_CLOSED
        if out.debug:
            print(out.redact(traceback.format_exc()), file=sys.stderr, end="")
        out.error(describe(exc))
        return EXIT_FAILURE
