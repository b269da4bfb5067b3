"""A revision's upgrade as SQL text (Alembic's offline ``--sql`` mode), for the report and lint.

Offline mode renders what the scripts would send without a database, so a migration that
reads the database (``op.get_bind()``, a data fix that selects first) cannot be rendered:
that is reported as the revision's ``offline_error``, not as a failure of the rehearsal.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

from alembic import command
from alembic.runtime.environment import EnvironmentContext
from alembic.runtime.migration import MigrationContext

from ..alembic import Alembic, _escape, _upgrade_steps, include_object


def upgrade_sql(alembic: Alembic, start: Sequence[str], end: str) -> str:
    """The SQL that upgrades from ``start`` (revisions; empty: base) to ``end``."""
    if len(start) > 1:
        raise ValueError(f"offline SQL starts from one revision, not {len(start)} heads")
    buffer = io.StringIO()
    first = start[0] if start else None
    if alembic._project_mode:
        _project_sql(alembic, first, end, buffer)
    else:
        _wrapper_sql(alembic, first, end, buffer)
    return buffer.getvalue()


def _wrapper_sql(alembic: Alembic, first: str | None, end: str, buffer: io.StringIO) -> None:
    script = alembic.script_directory

    def plan(heads: Any, _ctx: MigrationContext) -> list[Any]:
        return _upgrade_steps(script, end, heads)

    context = EnvironmentContext(
        alembic.config,
        script,
        fn=plan,
        as_sql=True,
        starting_rev=first,
        destination_rev=end,
    )
    options: dict[str, Any] = {
        "url": alembic.engine.url,
        "output_buffer": buffer,
        "target_metadata": alembic.metadata,
        "include_object": include_object,
        "transaction_per_migration": True,
        "literal_binds": True,
        "version_table": alembic.version_table,
        "version_table_schema": alembic.version_table_schema,
    }
    context.configure(**options)
    with context.begin_transaction():
        context.run_migrations()


def _project_sql(alembic: Alembic, first: str | None, end: str, buffer: io.StringIO) -> None:
    config = alembic.config
    previous = config.output_buffer
    config.output_buffer = buffer
    url = alembic.engine.url.render_as_string(hide_password=False)
    config.set_main_option("sqlalchemy.url", _escape(url))
    try:
        command.upgrade(config, f"{first}:{end}" if first else end, sql=True)
    finally:
        config.output_buffer = previous
        config.set_main_option("sqlalchemy.url", "")
