"""The command over an encrypted dump's keys: re-wrap its data key (``rekey``).

It calls one public core function (:func:`..core.rekey.rekey_backup`); the docstring's first
paragraph is the command's help.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from ...core.errors import CommandUsageError
from ..databases import transport
from ..encryption import encryption_from
from ..exits import EXIT_OK
from ..output import Output, safe_uri, size, spinner

if TYPE_CHECKING:
    from ...core.rekey import RekeyResult


def cmd_rekey(args: argparse.Namespace, out: Output) -> int:
    """re-wrap an encrypted dump's data key under a new key, without re-encrypting its data
    (a dump, or a multi-part dump's parts and then its manifest, replaced only once complete;
    segments checked as they are copied; a rerun finishes an interrupted rekey)"""
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
        "parts": result.parts,
        "objects": result.objects,
        "reused": result.reused,
        "removed": result.removed,
    }
    out.result(data, lambda: out.text(_summary(result)))
    return EXIT_OK


def _summary(result: RekeyResult) -> str:
    """One line for people: what was rekeyed, how much, and what a rerun found."""
    if result.parts and result.old_key_id == result.new_key_id:
        return (
            f"{result.uri} is already under key {result.new_key_id} ({result.parts} parts, "
            f"{size(result.size)}); {result.removed} object(s) under the old key deleted"
        )
    what = f"{result.segments} segments, {size(result.size)}"
    if result.parts:
        what = f"{result.parts} parts and the manifest, " + what
    line = (
        f"rekeyed {result.uri}: key {result.old_key_id} -> {result.new_key_id} "
        f"({what}, data not re-encrypted)"
    )
    if result.reused:
        line += f"; {result.reused} part(s) kept from an interrupted rekey"
    if result.removed:
        line += f"; {result.removed} object(s) under the old key deleted"
    return line
