"""How a run ends: exit codes, Ctrl-C, and the one line an error becomes.

Exit codes: 0 success, 1 operational failure (including a run interrupted with Ctrl-C and a
refused confirmation), 2 usage error, 3 a rehearsal's gate failed (``rehearse``), 141 the
standard output was closed by its reader (``zenmigrate ... | head``), as a Unix tool ended
by SIGPIPE exits.

SQLAlchemy is not imported here: importing it costs more than the rest of a ``--version``
run. :func:`describe` looks it up in ``sys.modules`` instead; an exception cannot be a
``SQLAlchemyError`` when SQLAlchemy was never imported.
"""

from __future__ import annotations

import os
import select
import sys
from types import FrameType

from ..core.errors import ZenMigrateError

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
#: ``rehearse`` ran and its gate failed: a finding, not an error of the command.
EXIT_GATE = 3
#: Standard output's reader went away: 128 + SIGPIPE, what a shell shows for such a tool.
EXIT_STDOUT_CLOSED = 141

_interrupted = False


def on_sigint(signum: int, frame: FrameType | None) -> None:
    """SIGINT handler: remember the interrupt, then interrupt as Python does."""
    global _interrupted
    _interrupted = True
    raise KeyboardInterrupt


def interrupted(exc: BaseException) -> bool:
    """Whether ``exc`` comes from Ctrl-C, also when cleanup after the interrupt raised
    something else (a driver whose read was cut off mid-packet)."""
    return isinstance(exc, KeyboardInterrupt) or (_interrupted and isinstance(exc, Exception))


def _is_database_error(exc: BaseException) -> bool:
    """Whether ``exc`` is a ``SQLAlchemyError``, without importing SQLAlchemy to find out."""
    sa_exc = sys.modules.get("sqlalchemy.exc")
    return sa_exc is not None and isinstance(exc, sa_exc.SQLAlchemyError)


def describe(exc: BaseException) -> str:
    """One line for an error: the driver's message for database errors, else the text."""
    if _is_database_error(exc):
        orig = getattr(exc, "orig", None)
        text = str(orig) if orig is not None else str(exc).split("\n")[0]
        text = text.strip().split("\n")[0]
        return f"database error: {text}"
    if isinstance(exc, ZenMigrateError):
        return str(exc).split("\n")[0]
    return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}".rstrip(": ")


def stdout_closed(exc: BaseException) -> bool:
    """Whether ``exc`` is standard output's pipe broken by its reader, not another pipe or
    socket (a store's connection also raises BrokenPipeError): the pipe then reports an
    error to a poll."""
    if not isinstance(exc, BrokenPipeError):
        return False
    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(event & select.POLLERR for _, event in poller.poll(0))
    except (OSError, ValueError, AttributeError):  # no file descriptor, no poll
        return False


def silence_stdout() -> None:
    """Point standard output at /dev/null, so that nothing more written there (Python's
    flush at exit) fails again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
