"""The keys a command line names (``--key-env``, ``--kms-key-id``), as an :class:`Encryption`.

A local key is read from the environment variable ``--key-env`` names (base64 of 32 bytes),
never from the command line itself, where process listings and shell histories would show
it. AWS KMS keys are reached through boto3's default chain (``AWS_PROFILE``,
``AWS_DEFAULT_REGION``, ``AWS_ENDPOINT_URL_KMS``...); an ARN's own region is used when no
region is set. A malformed or missing key is a usage error (exit code 2).
"""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING

from ..core.errors import CommandUsageError, EncryptionKeyError
from .output import Output

if TYPE_CHECKING:
    from ..core.crypto import Encryption, KeyProvider


def add_key_options(parser: argparse.ArgumentParser, *, new: bool = False) -> None:
    """``--key-env`` and ``--kms-key-id`` (with ``new``: ``--new-key-env``,
    ``--new-kms-key-id``, the keys ``rekey`` wraps with)."""
    prefix, dest, what = ("--new-", "new_", "the new key") if new else ("--", "", "a key")
    group = parser.add_argument_group("new encryption key" if new else "encryption")
    group.add_argument(
        f"{prefix}key-env",
        action="append",
        metavar="NAME",
        dest=f"{dest}key_env",
        help=f"{what}: environment variable holding a base64 32-byte key (openssl rand "
        "-base64 32); writing encrypts with the first key given, reading tries each "
        "(repeatable)",
    )
    group.add_argument(
        f"{prefix}kms-key-id",
        action="append",
        metavar="ARN",
        dest=f"{dest}kms_key_id",
        help=f"{what}: an AWS KMS key (id, ARN or alias) wrapping each dump's data key "
        "(repeatable)",
    )


def encryption_options() -> argparse.ArgumentParser:
    """The parent parser of the commands that read or write dumps."""
    parent = argparse.ArgumentParser(add_help=False)
    add_key_options(parent)
    return parent


def _providers(
    key_envs: list[str] | None, kms_ids: list[str] | None, out: Output
) -> list[KeyProvider]:
    from ..core.crypto import AwsKmsKey, LocalKey

    providers: list[KeyProvider] = []
    try:
        for name in key_envs or []:
            out.secrets.append(os.environ.get(name, ""))  # redacted, should it ever show
            providers.append(LocalKey.from_env(name))
        for key_id in kms_ids or []:
            providers.append(AwsKmsKey(key_id, region=_arn_region(key_id)))
    except EncryptionKeyError as exc:
        raise CommandUsageError(str(exc)) from None
    return providers


def _arn_region(key_id: str) -> str | None:
    """The region of a KMS key ARN (``arn:aws:kms:REGION:...``) unless one is set."""
    parts = key_id.split(":")
    if len(parts) > 3 and parts[0] == "arn" and parts[2] == "kms":
        return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or parts[3]
    return None


def encryption_from(
    args: argparse.Namespace, out: Output, *, new: bool = False
) -> Encryption | None:
    """The command line's keys (``None``: none given and none required; the crypto stack
    is then not imported here)."""
    prefix = "new_" if new else ""
    key_envs = getattr(args, f"{prefix}key_env", None)
    kms_ids = getattr(args, f"{prefix}kms_key_id", None)
    require = bool(getattr(args, "require_encryption", False)) and not new
    if not key_envs and not kms_ids and not require:
        return None
    from ..core.crypto import Encryption

    providers = _providers(key_envs, kms_ids, out)
    if not providers and not require:
        return None
    return Encryption(providers, require=require)
