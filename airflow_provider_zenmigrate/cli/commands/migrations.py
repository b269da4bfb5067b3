"""The Alembic commands: upgrade, downgrade, the current revisions and the heads.

Each goes through the :class:`..core.alembic.Alembic` wrapper (so its version-table options
and migration lock apply); the docstring's first paragraph is the command's help.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from ...core.errors import CommandFailed, CommandUsageError
from ..databases import dispose, make_utils
from ..exits import EXIT_OK, interrupted
from ..output import Output, spinner

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from ...core.alembic import Alembic


def _alembic(args: argparse.Namespace, engine: Engine, version_table: str) -> Alembic:
    from ...core.alembic import Alembic

    if not args.scripts and not args.config:
        raise CommandUsageError("--scripts DIR (or --config alembic.ini) is required")
    return Alembic(
        engine,
        script_location=args.scripts,
        config_file=args.config,
        version_table=version_table,
    )


def _migrate(args: argparse.Namespace, out: Output, direction: str) -> int:
    utils = make_utils(args, out, args.db_url)
    try:
        if not utils.database_exists():
            if direction != "upgrade":
                raise CommandFailed(f"database {utils.safe_url} does not exist")
            utils.create_database()
        alembic = _alembic(args, utils.engine, args.version_table)
        before = alembic.current_revisions()
        target = args.revision or "heads"
        with spinner(out, f"{direction} {utils.safe_url} to {target}"):
            try:
                if direction == "upgrade":
                    alembic.upgrade(target)
                else:
                    alembic.downgrade(target)
            except BaseException as exc:
                if not interrupted(exc):
                    raise
                raise CommandFailed(
                    f"interrupted during the {direction}: revisions already applied stay "
                    "applied (each runs in its own transaction)"
                ) from None
        after = alembic.current_revisions()
    finally:
        dispose(utils)
    out.result(
        {"database": utils.safe_url, "before": before, "after": after},
        lambda: out.text(
            f"{direction}: {'+'.join(before) or 'base'} -> {'+'.join(after) or 'base'}"
        ),
    )
    return EXIT_OK


def cmd_upgrade(args: argparse.Namespace, out: Output) -> int:
    """run migrations up to a revision (default: heads)"""
    return _migrate(args, out, "upgrade")


def cmd_downgrade(args: argparse.Namespace, out: Output) -> int:
    """revert migrations down to a revision"""
    return _migrate(args, out, "downgrade")


def cmd_current(args: argparse.Namespace, out: Output) -> int:
    """the database's Alembic revision(s)"""
    from ...core.alembic import current_revisions

    utils = make_utils(args, out, args.db_url)
    try:
        if not utils.database_exists():
            raise CommandFailed(f"database {utils.safe_url} does not exist")
        if args.scripts or args.config:
            alembic = _alembic(args, utils.engine, args.version_table)
            current = sorted(alembic.current_revisions())
            heads = sorted(alembic.head_revisions()) if args.scripts else None
        else:  # no scripts to build the wrapper from: the same read, without heads
            current = sorted(current_revisions(utils.engine, version_table=args.version_table))
            heads = None
    finally:
        dispose(utils)
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
    """the head revision(s) of a scripts folder"""
    import sqlalchemy
    from sqlalchemy.pool import NullPool

    # No database is read: the engine only satisfies the wrapper's constructor.
    engine = sqlalchemy.create_engine("sqlite://", poolclass=NullPool)
    heads = sorted(_alembic(args, engine, "alembic_version").head_revisions())
    out.result({"heads": heads}, lambda: out.text("\n".join(heads) or "(no revisions)"))
    return EXIT_OK
