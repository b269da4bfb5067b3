"""A revision's upgrade as SQL text (Alembic's offline ``--sql`` mode), for the report and lint.

Offline mode renders what the scripts would send without a database, so a migration that
reads the database (``op.get_bind()``, a data fix that selects first) cannot be rendered:
that is reported as the revision's ``offline_error``, not as a failure of the rehearsal.
"""

from __future__ import annotations

import io
from typing import Any

from alembic.runtime.environment import EnvironmentContext
from alembic.runtime.migration import MigrationContext

from ..alembic import Alembic, _escape, include_object, single_step


def upgrade_sql(alembic: Alembic, revision: str) -> str:
    """The SQL of ``revision``'s upgrade alone, from its down revision(s) (a merge starts
    from several), in the wrapper's mode or through the project's ``env.py``."""
    script = alembic.script_directory
    step = single_step(script, revision, upgrade=True)
    down = step.revision.down_revision
    start = () if down is None else (down,) if isinstance(down, str) else tuple(down)

    def plan(_heads: Any, _ctx: MigrationContext) -> list[Any]:
        return [step]

    buffer = io.StringIO()
    context = EnvironmentContext(
        alembic.config,
        script,
        fn=plan,
        as_sql=True,
        starting_rev=start or None,
        destination_rev=revision,
    )
    if alembic._project_mode:
        _through_env_py(alembic, context, buffer)
    else:
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
    return buffer.getvalue()


def _through_env_py(alembic: Alembic, context: EnvironmentContext, buffer: io.StringIO) -> None:
    """What ``alembic upgrade --sql`` does, with our one step as the plan."""
    config = alembic.config
    previous = config.output_buffer
    config.output_buffer = buffer
    url = alembic.engine.url.render_as_string(hide_password=False)
    config.set_main_option("sqlalchemy.url", _escape(url))
    try:
        with context:
            alembic.script_directory.run_env()
    finally:
        config.output_buffer = previous
        config.set_main_option("sqlalchemy.url", "")
