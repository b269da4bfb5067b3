"""A command's start-up: importing its libraries without the cyclic garbage collector.

Importing SQLAlchemy, a driver and the core makes hundreds of thousands of objects, and the
collector scans them over and over as they pile up: 0.05-0.07 s of an empty PostgreSQL
backup's 0.45-0.55 s command (issue 27). Imports make little garbage, so ``backup`` and
``restore`` hold the collector while they import and connect, then freeze what was made
(:func:`gc.freeze`: later collections skip it, and forked workers share it) and let it run
for the rest of the command, whose memory it still bounds.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def without_collection() -> Iterator[None]:
    """Hold the cyclic collector for the block; then freeze and resume it."""
    if not gc.isenabled():  # nested, or the caller turned it off: leave it to them
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        gc.enable()
