"""Where a command's results, progress and errors go, and which secrets never may.

``--json`` prints the result as one JSON object on stdout; progress and logs always go to
stderr, as a progress bar on a terminal and as plain log lines otherwise (``--quiet``
silences both). Progress comes only from the core's callbacks (``on_record``), never from
its log lines: the core's own backup progress lines, meant for Airflow's task logs, are
switched off here.

Nothing heavy is imported at module level (the parser imports this module for every run,
``--version`` included): :mod:`rich` when a bar or a rich log line is first shown, the
storage layer (which brings the crypto stack) when a URI is first scrubbed.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress as Bar
    from rich.progress import TaskID

logger = logging.getLogger("zenmigrate.cli")

#: Seconds between two progress log lines when stderr is not a terminal.
PROGRESS_INTERVAL = float(os.environ.get("ZENMIGRATE_PROGRESS_INTERVAL", "5"))

#: The core's backup progress logger (``core.backup.PROGRESS_LOGGER``), named here rather
#: than imported: importing :mod:`..core.backup` imports SQLAlchemy, which commands that
#: read dumps do not need. A test checks that the two names agree.
PROGRESS_LOGGER = "airflow_provider_zenmigrate.core.backup.progress"

#: Loggers of libraries that say too much at INFO.
_NOISY = ("botocore", "urllib3", "google", "azure", "smart_open", "s3transfer", "alembic")


class Output:
    """Where results, progress and errors go, and which secrets never may."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.json: bool = args.json
        self.quiet: bool = args.quiet
        self.debug: bool = args.debug
        self.tty = sys.stderr.isatty() and not self.quiet
        self.secrets: list[str] = []
        self._console: Console | None = None

    @property
    def console(self) -> Console:
        """The stderr console of bars, spinners and rich log lines (made on first use)."""
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
        """Log lines on stderr (rich on a terminal), redacted, at the level the flags ask."""
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
        for noisy in _NOISY:
            logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
        logging.getLogger("alembic.runtime.migration").setLevel(level)
        # The command reports backup progress from its callback (Progress below).
        logging.getLogger(PROGRESS_LOGGER).setLevel(logging.WARNING)

    def _filter(self, record: logging.LogRecord) -> bool:
        if record.name == "alembic.runtime.migration" and str(record.msg).startswith(
            ("Context impl", "Will assume")
        ):
            return False  # Alembic's set-up chatter, not a migration step
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
        self._bar: Bar | None = None
        self._task: TaskID | None = None

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
            self._bar.__exit__(*exc)  # type: ignore[arg-type]
            self._bar = None
        if exc[0] is None:
            self._log(final=True)

    def record(self, record: dict[str, Any], line: bytes | None) -> None:
        """Count one record of a dump, as the core's ``on_record`` callbacks pass it: a
        table, the rows of a data record (its ``data``, or the ``rows`` count a backup
        gives instead), and the bytes of its line."""
        size = len(line) + 1 if line is not None else 0
        kind = record.get("kind")
        if kind == "table":
            self.tables += 1
        if kind == "data":
            self.rows += record["rows"] if "rows" in record else len(record["data"])
        self.bytes += size
        self._update()

    def _info(self) -> str:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        tables = f"{self.tables}/{self.total_tables}" if self.total_tables else str(self.tables)
        rows = f"{self.rows:,}" + (f"/~{self.total_rows:,}" if self.total_rows else "")
        return (
            f"{tables} tables, {rows} rows, {size(self.bytes)}, {self.rows / elapsed:,.0f} rows/s"
        )

    def _update(self) -> None:
        if self._bar is not None and self._task is not None:
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


def safe_uri(uri: str) -> str:
    """``uri`` without credentials, as :func:`..core.storage.safe_uri` makes it (imported
    on first use: the storage layer brings the crypto stack)."""
    from ..core.storage import safe_uri as core_safe_uri

    return core_safe_uri(uri)


def scrub(text: str) -> str:
    """``text`` with URL user information, query strings and key=value secrets removed, by
    :func:`..core.storage.scrub` (imported on first use, as for :func:`safe_uri`)."""
    from ..core.storage import scrub as core_scrub

    return core_scrub(text)


def size(n: float) -> str:
    """A byte count for people: ``812 B``, ``3.4 MiB``."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"  # pragma: no cover


def spinner(out: Output, message: str) -> AbstractContextManager[object]:
    """A spinner on a terminal, one log line otherwise, for work without a progress count."""
    if out.tty:
        return out.console.status(message)
    if not out.quiet:
        logger.info("%s", message)
    return nullcontext()


def confirm(question: str) -> bool:
    """Ask on stderr, read the answer from stdin (no terminal needed): only yes is yes."""
    print(question + " [y/N] ", end="", file=sys.stderr, flush=True)
    answer = sys.stdin.readline()
    if not sys.stdin.isatty():  # the answer was not echoed: end the prompt's line
        print(answer.strip(), file=sys.stderr)
    return answer.strip().lower() in ("y", "yes")
