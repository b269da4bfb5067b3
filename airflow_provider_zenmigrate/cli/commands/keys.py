"""The command over an encrypted dump's keys: re-wrap its data key (``rekey``).

It calls one public core function (:func:`..core.rekey.rekey_backup`); the docstring's first
paragraph is the command's help.
"""

from __future__ import annotations

import argparse

from ...core.errors import CommandUsageError
from ...core.storage import safe_uri
from ..databases import transport
from ..encryption import encryption_from
from ..exits import EXIT_OK
from ..output import Output, size, spinner


def cmd_rekey(args: argparse.Namespace, out: Output) -> int:
    """re-wrap an encrypted dump's data key under a new key, without re-encrypting its data
    (the dump is replaced atomically; its segments are checked as they are copied)"""
    from ...core.rekey import rekey_backup

    old = encryption_from(args, out)
    new = encryption_from(args, out, new=True)
    if old is None:
        raise CommandUsageError("rekey needs the current key: --key-env or --kms-key-id")
    if new is None:
        raise CommandUsageError("rekey needs the new key: --new-key-env or --new-kms-key-id")
    with spinner(out, f"rekeying {safe_uri(args.uri)}"):
        result = rekey_backup(args.uri, old, new, transport(args))
    data = {
        "uri": result.uri,
        "old_key_id": result.old_key_id,
        "new_key_id": result.new_key_id,
        "size": result.size,
        "segments": result.segments,
    }
    out.result(
        data,
        lambda: out.text(
            f"rekeyed {result.uri}: key {result.old_key_id} -> {result.new_key_id} "
            f"({result.segments} segments, {size(result.size)}, data not re-encrypted)"
        ),
    )
    return EXIT_OK
