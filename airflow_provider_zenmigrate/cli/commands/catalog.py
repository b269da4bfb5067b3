"""The commands over the backups under a prefix: list them, prune old ones.

Each calls one public function of :mod:`..core.catalog`; the docstring's first paragraph is
the command's help.
"""

from __future__ import annotations

import argparse
from typing import Any

from ...core.errors import CommandUsageError
from ..databases import transport
from ..encryption import encryption_from
from ..exits import EXIT_OK
from ..output import Output, safe_uri, size


def cmd_list(args: argparse.Namespace, out: Output) -> int:
    """complete backups under a prefix, newest first"""
    from ...core.catalog import list_backups

    backups = list_backups(args.prefix_uri, transport(args), encryption=encryption_from(args, out))
    items: list[dict[str, Any]] = [
        {
            "uri": b.uri,
            "created_at": b.created_at.isoformat(),
            "database": b.database,
            "dialect": b.dialect,
            "revision": b.revision,
            "tables": len(b.tables),
            "rows": sum(b.tables.values()),
            "size": b.size,
            "parts": b.parts,
            "encrypted": b.encrypted,
            "key_id": b.key_id,
        }
        for b in backups
    ]

    def human() -> None:
        if not items:
            out.text(f"no complete backups under {safe_uri(args.prefix_uri)}")
            return
        for item in items:
            out.text(
                f"{item['created_at']}  {item['dialect'] or '-':10} {item['database'] or '-':20} "
                f"rev {item['revision'] or '-':12} {item['rows']:>12,} rows "
                f"{size(item['size']):>10}  {item['uri']}"
                + (f" ({item['parts']} parts)" if item["parts"] else "")
                + (f" [encrypted, key {item['key_id']}]" if item["encrypted"] else "")
            )

    out.result({"backups": items}, human)
    return EXIT_OK


def cmd_prune(args: argparse.Namespace, out: Output) -> int:
    """delete all but the N newest backups under a prefix"""
    from ...core.catalog import prune_backups

    keep_last: int = args.keep_last
    if keep_last < 0:
        raise CommandUsageError("--keep-last must be 0 or more")
    doomed = prune_backups(args.prefix_uri, keep_last, transport(args), dry_run=args.dry_run)
    uris = [b.uri for b in doomed]
    verb = "would delete" if args.dry_run else "deleted"

    def human() -> None:
        for uri in uris:
            out.text(f"{verb} {uri}")
        out.text(f"{verb} {len(uris)} backups, kept the {keep_last} newest")

    out.result({"deleted": uris, "kept": keep_last, "dry_run": args.dry_run}, human)
    return EXIT_OK
