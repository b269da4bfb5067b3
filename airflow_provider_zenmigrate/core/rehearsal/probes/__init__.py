"""The probe for a server kind (see :mod:`.base`); imported on first use, as the dialects are."""

from __future__ import annotations

import importlib

from .base import Probe

_BY_BACKEND = {
    "mysql": ("mysql", "MySQLProbe"),
    "mariadb": ("mysql", "MySQLProbe"),
    "postgresql": ("postgresql", "PostgreSQLProbe"),
    "sqlite": ("sqlite", "SQLiteProbe"),
}


def probe_for(backend: str) -> Probe:
    """The probe for a SQLAlchemy backend name (``mysql``, ``postgresql``, ``sqlite``)."""
    module, cls = _BY_BACKEND[backend]
    probe: Probe = getattr(importlib.import_module(f"{__name__}.{module}"), cls)()
    return probe
