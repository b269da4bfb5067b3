"""The kill tests' fork server (see tests/reliability/killpoints.py)."""

from __future__ import annotations

import multiprocessing
from typing import Any

import pytest


@pytest.fixture(scope="session")
def fork_context() -> Any:
    """multiprocessing's fork server with the kill harness (and so SQLAlchemy, the drivers,
    boto3 and the package) imported once: each kill point is a fork, not a new interpreter."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["tests.reliability.killpoints"])
    return context
