"""Encrypted dumps in the "Backups" view: the key a database's entry of the Variable names
(``encryption_conn_id``), and what the view says of a dump it cannot open.

With the key, an encrypted dump is listed, inspected and verified as a plaintext one is (the
catalog and the reader do the work: :mod:`..core.catalog`, :mod:`..core.inspection`).
Without it, or with a key that is not the dump's, the view shows the envelope's public
header (key provider and id, format version, algorithm, creation time: never the wrapped
data key, stream id or nonce) and says why it cannot show more. Every message names keys by
their ids, never by their material; the key itself stays in :class:`Keys` on the API
server. No Airflow import here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..core.crypto import Encryption, Envelope
from ..core.parts.layout import is_multipart
from ..core.parts.reading import manifest_envelope
from ..core.storage import envelope_at
from .settings import VARIABLE

#: What the view answers to "Verify" of an encrypted dump when no key is configured.
NO_KEY = "cannot verify without the key"


@dataclass(frozen=True, repr=False)
class Keys:
    """The key of one configured database, as the view uses it."""

    conn_id: str
    #: The connection named by the Variable (``None``: none is configured).
    encryption_conn_id: str | None = None
    #: Its keys, as the operators read them (``None``: none configured, or unusable).
    encryption: Encryption | None = None
    #: Why the connection gives no key (missing, malformed), for the page.
    error: str | None = None

    def __repr__(self) -> str:
        return f"Keys({self.conn_id!r}, encryption_conn_id={self.encryption_conn_id!r})"

    @property
    def reading(self) -> Encryption | None:
        """The keys for showing a dump: the connection's ``require_encryption`` is a rule
        of restores, not of looking at a plaintext backup, so it does not apply here."""
        if self.encryption is None:
            return None
        return Encryption(self.encryption.keys, require=False)

    def problem(self, envelope: Envelope, where: str) -> str | None:
        """Why the dump whose envelope is ``envelope`` cannot be opened here; ``None`` when
        a configured key can unwrap its data key (it may still fail to: a key service's
        refusal, an altered envelope, which reading then reports)."""
        dump_key = f"{envelope.key.provider} key {envelope.key.key_id}"
        if self.encryption_conn_id is None:
            return (
                f"{where} is encrypted ({dump_key}): {NO_KEY}, nor show its tables and rows. "
                f'Name the Airflow connection holding it as "encryption_conn_id" of '
                f"{self.conn_id!r} in the Variable {VARIABLE}"
            )
        if self.encryption is None:
            return (
                f"{where} is encrypted ({dump_key}), and the key connection "
                f"{self.encryption_conn_id!r} gives no usable key: {self.error}"
            )
        if any(key.can_unwrap(envelope.key) for key in self.encryption.keys):
            return None
        given = ", ".join(f"{key.kind} key {key.key_id}" for key in self.encryption.keys)
        return (
            f"wrong key: {where} is encrypted with {dump_key}; the connection "
            f"{self.encryption_conn_id!r} holds {given}, not that key"
        )

    def restore_problem(self, envelope: Envelope | None, where: str) -> str | None:
        """Why a restore run of the dump (``envelope``: ``None`` for a plaintext one) would
        fail for want of its key, said before the run is triggered; ``None``: the run is
        given the configured key connection's id (or none) and that will do."""
        if self.encryption_conn_id is not None and self.encryption is None:
            return (
                f"the key connection {self.encryption_conn_id!r} of {self.conn_id!r} gives no "
                f"usable key, so a restore would fail: {self.error}"
            )
        if envelope is None:
            return None
        if self.encryption_conn_id is None:
            dump_key = f"{envelope.key.provider} key {envelope.key.key_id}"
            return (
                f"{where} is encrypted ({dump_key}): it cannot be restored without its key. "
                f'Name the Airflow connection holding it as "encryption_conn_id" of '
                f"{self.conn_id!r} in the Variable {VARIABLE}: the restore is then given "
                "that connection's id"
            )
        return self.problem(envelope, where)

    def unopened(self, key_id: str | None) -> str:
        """What a listing row says of an encrypted backup whose manifest did not open, when
        there is no envelope at hand (no key configured, or no usable one)."""
        named = f"key {key_id}" if key_id else "a key"
        if self.encryption_conn_id is None:
            return f"encrypted with {named}: no key configured (encryption_conn_id)"
        if self.encryption is None:
            return f"encrypted with {named}: the key connection gives no usable key: {self.error}"
        return (
            f"encrypted with {named}: the key of {self.encryption_conn_id!r} does not open its "
            "manifest (a key service's refusal, or an altered manifest); verify it"
        )


def envelope_of(uri: str, transport_params: dict[str, Any] | None) -> Envelope | None:
    """The public envelope of the dump at ``uri`` (a multi-part dump's is in its manifest);
    ``None`` for a plaintext dump. Reads only the first bytes (or the manifest).

    Raises:
        StorageNotFoundError: If nothing exists at ``uri``.
    """
    if is_multipart(uri, transport_params):
        return manifest_envelope(uri, transport_params)
    return envelope_at(uri, transport_params)


def envelope_header(envelope: Envelope | None) -> dict[str, Any] | None:
    """What the page shows of an envelope: the key's provider and id and the header's
    fields, not the wrapped data key (useless to a reader, and not the page's business)."""
    if envelope is None:
        return None
    return {
        "version": envelope.version,
        "algorithm": envelope.algorithm,
        "created_at": envelope.created_at,
        "segment_size": envelope.segment_size,
        "key_provider": envelope.key.provider,
        "key_id": envelope.key.key_id,
        "key_wrap": envelope.key.wrap,
    }
