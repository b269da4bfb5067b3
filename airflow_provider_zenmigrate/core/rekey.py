"""``rekey``: wrap an encrypted dump's data key under another key-encryption key.

The data is not re-encrypted; every segment is authenticated as it is copied, so a dump that
was altered is refused and left as it was.

**A single dump**: a new object is written with the new envelope (same stream id, nonce
prefix, segment size and creation time; another wrapped key) followed by the same sealed
segments, and published in place of the old one only once complete (the store's "published
only when complete" rule). A manifest beside the dump gets the new size, so listings keep
finding it.

**A multi-part dump** (``U/manifest.json`` and ``U/part-NNNNN...``): every part and the
manifest carry the backup's wrapped data key, and a reader refuses a part whose envelope
does not carry the manifest's (:class:`.crypto.SharedKey`), so parts cannot be replaced in
place one by one without a moment where the dump opens under no key. Instead:

1. every part is copied, authenticated, to a **new name** (its index plus one more than the
   largest index in the manifest: ``part-00000..00012`` become ``part-00013..00025``),
   with its envelope under the new key; each is published only once complete;
2. the manifest, naming the new parts (new names and sizes, so a new top-level digest; the
   part digests cover the plaintext and stay) and carrying the new wrapped key, replaces
   the old one in one write: **the switch**;
3. the old parts (and anything else under ``U/`` that looks like a part and is not named,
   temporary files of a killed upload, unfinished uploads) are deleted.

Until the switch the old manifest names only the untouched old parts: the dump restores
with the old key (the new parts are strays no reader looks at). From the switch on it
restores with the new key only. A reader given both keys (``Encryption([new, old])``) reads
it at any moment. A rekey that fails or is killed before the switch leaves the dump as it
was; a refused dump (a part that does not authenticate) also loses the new parts written so
far, while any other failure (the store, the key service, a kill) keeps the complete ones.
Running rekey again (same old and new keys) finishes the job: before the switch, a new part
already there with the expected envelope is authenticated and kept (``reused``), the rest
are written; after it (the manifest opens with the new key, or is already wrapped by it),
only step 3 remains. Cleanup failures after the switch raise, so nobody takes a dump whose
old parts (readable with the old key) are still stored for finished.

A restore that stopped before a rekey cannot resume after it (the top-level digest
changed: ``--fresh``), and a restore running during the switch may find its parts gone
(run it again).
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from typing import IO, Any, cast

from .catalog import MANIFEST_FORMAT, manifest_key
from .crypto import DecryptingReader, Encryption, Envelope, SharedKey, WrappedKey, sniff
from .crypto.metadata import open_json
from .errors import (
    DumpError,
    DumpFormatError,
    EncryptionError,
    EncryptionKeyError,
    StorageError,
    StorageNotFoundError,
)
from .parts.layout import MANIFEST_NAME, PART_NAME, child_uri, is_multipart, part_name, prefix_key
from .parts.manifest import (
    SEALED_PURPOSE,
    PartEntry,
    PartsManifest,
    parse_manifest,
    public_parts,
    sealed_json,
)
from .sealed_manifests import is_sealed, public_encryption
from .storage import backend_for, safe_uri, translated_errors

logger = logging.getLogger(__name__)

#: What a plaintext parts manifest holds besides ``PartsManifest``'s ``extra``.
_MANIFEST_FIELDS = {
    "format",
    "version",
    "header",
    "parts",
    "tables",
    "rows",
    "bytes",
    "digest",
    "jobs",
    "seconds",
}
#: The temporary file of a local upload of a part, left by a killed writer.
_PARTIAL = re.compile(rf"\.{PART_NAME.pattern}\.[0-9a-f]{{8}}\.partial")


@dataclass(frozen=True)
class RekeyResult:
    """What ``rekey`` did: the dump, the key ids before and after, its new size (of all
    parts for a multi-part dump) and the sealed segments authenticated.

    ``parts``: the parts of a multi-part dump (0 for a single stream); ``objects``: the
    objects whose envelope now carries the data key wrapped by the new key (the dump, or
    every part and the manifest); ``reused``: parts an interrupted rekey had already
    written under the new key (authenticated, not written again); ``removed``: objects
    under the old key (old parts, leftovers) deleted after the switch.
    """

    uri: str
    old_key_id: str
    new_key_id: str
    size: int
    segments: int
    parts: int = 0
    objects: int = 1
    reused: int = 0
    removed: int = 0


class _Copied:
    """A reader that writes every byte it reads to ``out`` (the new object)."""

    def __init__(self, source: IO[bytes], out: IO[bytes]) -> None:
        self._source = source
        self._out = out

    def read(self, size: int = -1) -> bytes:
        data = self._source.read(size)
        if data:
            self._out.write(data)
        return data


def rekey_backup(
    uri: str,
    old: Encryption,
    new: Encryption,
    transport_params: dict[str, Any] | None = None,
) -> RekeyResult:
    """Re-wrap the data key of the encrypted dump at ``uri`` (a single stream or a
    multi-part dump): unwrapped with a key of ``old``, wrapped with the first key of
    ``new`` (its key service is called before anything is written). See the module
    docstring for how a multi-part dump is switched and how a rerun finishes the job.

    Raises:
        StorageNotFoundError: If nothing exists at ``uri``.
        DumpFormatError: If the dump is not encrypted.
        EncryptionKeyError: If ``old`` cannot unwrap it or ``new`` has no key.
        DumpAuthenticationError: If a segment does not authenticate (nothing changed).
    """
    if not new.encrypts:
        raise EncryptionKeyError("rekey needs a new key to wrap the data key with")
    if is_multipart(uri, transport_params):
        return _rekey_parts(uri, old, new, transport_params)
    backend = backend_for(uri, transport_params)
    location = backend.location
    with translated_errors("opening", location):
        if backend.stat(location.key) is None:
            raise StorageNotFoundError(f"backup not found: {location.safe}")
        raw = backend.open_reader(location.key)
    with raw:
        with translated_errors("reading", location):
            stream, envelope = sniff(raw, location.safe)
        if envelope is None:
            raise DumpFormatError(f"{location.safe} is not encrypted: there is no key to rewrap")
        data_key = old.unwrap(envelope, location.safe)
        rewrapped = envelope.rewrapped(new.keys[0].wrap(data_key))
        with translated_errors("opening for writing", location):
            upload = backend.upload(location.key)
        with upload as out:
            out.write(rewrapped.encode())
            copied = cast(IO[bytes], _Copied(stream, out))
            reader = DecryptingReader(copied, envelope, data_key, location.safe)
            with translated_errors("reading", location):
                reader.drain()
    with translated_errors("describing", location):
        info = backend.stat(location.key)
        size = info.size if info is not None else 0
        _update_manifest(backend, location.key, size, rewrapped)
    logger.info(
        "rekeyed %s: key %s -> %s", location.safe, envelope.key.key_id, rewrapped.key.key_id
    )
    return RekeyResult(
        uri=location.safe,
        old_key_id=envelope.key.key_id,
        new_key_id=rewrapped.key.key_id,
        size=size,
        segments=reader.segments,
    )


def _update_manifest(backend: Any, key: str, size: int, envelope: Envelope) -> None:
    """Record the dump's new size (and, in a sealed manifest, its new key id: the sealed
    fields stay valid, the data key is the same) in its manifest, if it has one of ours."""
    if backend.stat(manifest_key(key)) is None:
        return
    try:
        manifest = json.loads(backend.read_bytes(manifest_key(key)))
    except ValueError:
        return
    if isinstance(manifest, dict) and manifest.get("format") == MANIFEST_FORMAT:
        manifest["size"] = size
        if is_sealed(manifest):
            manifest["encryption"] = public_encryption(envelope)
        backend.write_bytes(manifest_key(key), json.dumps(manifest).encode())


# -- multi-part dumps -------------------------------------------------------------------------
class _Unwrapped:
    """A key provider that holds one backup's data key, already unwrapped: reopens the
    manifest being written without another call to a key service. Never in a log: ``repr``
    shows the key id only."""

    kind = "unwrapped"

    def __init__(self, wrapped: WrappedKey, data_key: bytes) -> None:
        self._wrapped = wrapped
        self._data_key = data_key

    @property
    def key_id(self) -> str:
        return self._wrapped.key_id

    def __repr__(self) -> str:
        return f"_Unwrapped(key_id={self._wrapped.key_id!r})"

    def wrap(self, data_key: bytes) -> WrappedKey:
        raise EncryptionKeyError("an unwrapped data key wraps nothing")

    def can_unwrap(self, wrapped: WrappedKey) -> bool:
        return wrapped == self._wrapped

    def unwrap(self, wrapped: WrappedKey) -> bytes:
        return self._data_key


@dataclass
class _Copy:
    """One part as the rekey leaves it."""

    entry: PartEntry
    segments: int
    reused: bool


class _PartsRekey:
    """One run of rekey over the multi-part dump at ``uri`` (see the module docstring)."""

    def __init__(self, uri: str, transport_params: dict[str, Any] | None) -> None:
        self.uri = uri
        self.backend, self.prefix = prefix_key(uri, transport_params)
        self.location = self.backend.location
        self.manifest_where = safe_uri(child_uri(uri, MANIFEST_NAME))

    def where(self, name: str) -> str:
        return safe_uri(child_uri(self.uri, name))

    def read_manifest(self) -> bytes:
        with translated_errors("reading", self.location):
            if self.backend.stat(self.prefix + MANIFEST_NAME) is None:
                raise StorageNotFoundError(f"backup not found: {safe_uri(self.uri)}")
            return self.backend.read_bytes(self.prefix + MANIFEST_NAME)

    def envelope_of(self, name: str) -> Envelope | None:
        """The envelope of the object ``name`` under the dump, ``None`` when there is none
        or it is not an encrypted stream (a leftover of anything)."""
        try:
            with translated_errors("reading", self.location):
                if self.backend.stat(self.prefix + name) is None:
                    return None
                with self.backend.open_reader(self.prefix + name) as raw:
                    return sniff(raw, self.where(name))[1]
        except (DumpError, StorageError) as exc:
            logger.info("%s is not reused: %s", self.where(name), exc)
            return None

    def copy(self, entry: PartEntry, target: str, old: SharedKey, new: SharedKey) -> _Copy:
        """Part ``entry`` at ``target`` with its envelope under ``new``: kept when an earlier
        run left it there complete (authenticated again), else copied segment by segment
        from the source, each authenticated under ``old``, and published when complete."""
        where = self.where(entry.name)
        source_key = self.prefix + entry.name
        with translated_errors("opening", self.location):
            if self.backend.stat(source_key) is None:
                raise StorageNotFoundError(f"{where}: the part is missing")
            raw = self.backend.open_reader(source_key)
        with raw:
            with translated_errors("reading", self.location):
                stream, envelope = sniff(raw, where)
            if envelope is None:
                raise DumpFormatError(f"{where}: a plaintext part in an encrypted dump")
            part_key = old.unwrap(envelope, where)  # refuses a part of another backup
            rewrapped = envelope.rewrapped(new.wrapped)
            kept = self._kept(target, rewrapped, new)
            if kept is not None:
                size, segments = kept
                return _Copy(_renamed(entry, target, size), segments, reused=True)
            with translated_errors("opening for writing", self.location):
                upload = self.backend.upload(self.prefix + target)
            with upload as out:
                out.write(rewrapped.encode())
                copied = cast(IO[bytes], _Copied(stream, out))
                reader = DecryptingReader(copied, envelope, part_key, where)
                with translated_errors("reading", self.location):
                    reader.drain()
        with translated_errors("describing", self.location):
            info = self.backend.stat(self.prefix + target)
        if info is None:
            raise StorageNotFoundError(f"{self.where(target)} is missing after its upload")
        return _Copy(_renamed(entry, target, info.size), reader.segments, reused=False)

    def _kept(self, target: str, rewrapped: Envelope, new: SharedKey) -> tuple[int, int] | None:
        """(size, segments) of ``target`` when an earlier run published it with exactly
        the envelope this run would write and all its segments authenticate."""
        if self.envelope_of(target) != rewrapped:
            return None
        where = self.where(target)
        try:
            with translated_errors("reading", self.location):
                with self.backend.open_reader(self.prefix + target) as raw:
                    stream, envelope = sniff(raw, where)
                    assert envelope is not None
                    reader = DecryptingReader(stream, envelope, new.unwrap(envelope, where), where)
                    reader.drain()
                info = self.backend.stat(self.prefix + target)
        except (DumpError, StorageError) as exc:
            logger.warning("%s is written again: %s", where, exc)
            return None
        return (info.size if info is not None else 0), reader.segments

    def adopted_key(
        self, targets: list[str], fresh: WrappedKey, new: Encryption, data_key: bytes
    ) -> WrappedKey:
        """The wrapped key of the new parts an earlier run left, when ``new`` wraps the same
        way (its provider and key id) and it unwraps to this backup's data key, so they can
        be kept (a KMS wraps a key differently each time); else ``fresh``."""
        for target in targets:
            envelope = self.envelope_of(target)
            if envelope is None:
                continue
            found = envelope.key
            if found == fresh or (found.provider, found.key_id) != (fresh.provider, fresh.key_id):
                return fresh
            try:
                if new.unwrap(envelope, self.where(target)) == data_key:
                    return found
            except (EncryptionError, DumpError) as exc:
                logger.info("%s is not reused: %s", self.where(target), exc)
            return fresh
        return fresh

    def remove_strays(self, keep: set[str]) -> int:
        """Delete every part under the dump that ``keep`` does not name, a killed upload's
        temporary files, and unfinished uploads; returns how many objects were deleted.
        Raises a :class:`StorageError` when one cannot be deleted (after trying them all)."""
        with translated_errors("listing", self.location):
            names = [info.key[len(self.prefix) :] for info in self.backend.list(self.prefix)]
        doomed = [
            n for n in names if (PART_NAME.fullmatch(n) and n not in keep) or _PARTIAL.fullmatch(n)
        ]
        failed: list[str] = []
        for name in doomed:
            try:
                with translated_errors("deleting", self.location):
                    self.backend.delete(self.prefix + name)
            except StorageError as exc:
                logger.warning("could not delete %s: %s", self.where(name), exc)
                failed.append(name)
        try:
            with translated_errors("aborting uploads", self.location):
                self.backend.abort_uploads(self.prefix)
        except StorageError as exc:
            logger.warning("unfinished uploads under %s stay: %s", safe_uri(self.uri), exc)
        if failed:
            raise StorageError(
                f"{safe_uri(self.uri)} is rekeyed, but {len(failed)} object(s) under the old "
                f"key could not be deleted (first: {failed[0]}); run rekey again to delete them"
            )
        return len(doomed)

    def discard(self, names: list[str]) -> None:
        """Delete the new parts of a refused rekey (best effort: no manifest names them)."""
        for name in names:
            try:
                with translated_errors("deleting", self.location):
                    self.backend.delete(self.prefix + name)
            except StorageError as exc:
                logger.warning("could not delete %s: %s", self.where(name), exc)


def _renamed(entry: PartEntry, name: str, size: int) -> PartEntry:
    return PartEntry(
        name=name,
        kind=entry.kind,
        digest=entry.digest,
        bytes=size,
        rows=entry.rows,
        table=entry.table,
        span=entry.span,
        unit=entry.unit,
    )


def _targets(parts: list[PartEntry]) -> list[str]:
    """The new name of each part: its index plus one more than the largest index, so no
    new name is an old one and a rerun before the switch picks the same names."""
    found = [PART_NAME.fullmatch(p.name) for p in parts]
    base = max(int(m.group(1)) for m in found if m is not None) + 1
    return [
        part_name(int(m.group(1)) + base, m.group(2) or "")
        for m in found
        if m is not None  # parse_manifest checked every name
    ]


def _rekey_parts(
    uri: str, old: Encryption, new: Encryption, transport_params: dict[str, Any] | None
) -> RekeyResult:
    run = _PartsRekey(uri, transport_params)
    data = run.read_manifest()
    public = public_parts(data, run.manifest_where)
    if public is None:
        raise DumpFormatError(f"{safe_uri(uri)} is not encrypted: there is no key to rewrap")
    try:
        manifest = parse_manifest(data, run.manifest_where, old)
    except EncryptionKeyError as refused:
        try:  # a rerun after the switch: the dump is under the new key already
            manifest = parse_manifest(data, run.manifest_where, new)
        except EncryptionKeyError:
            raise refused from None
        return _finished(run, manifest, public.envelope)
    shared = manifest.encryption
    assert shared is not None  # a sealed manifest opened
    fresh = new.keys[0].wrap(shared.data_key)
    current = public.envelope.key
    if (fresh.provider, fresh.key_id) == (current.provider, current.key_id):
        return _finished(run, manifest, public.envelope)  # switched, not yet cleaned up

    targets = _targets(manifest.parts)
    wrapped = run.adopted_key(targets, fresh, new, shared.data_key)
    sealing = SharedKey(wrapped, shared.data_key, segment_size=public.envelope.segment_size)
    copies: list[_Copy] = []
    written: list[str] = []
    try:
        for entry, target in zip(manifest.parts, targets, strict=True):
            copied = run.copy(entry, target, shared, sealing)
            copies.append(copied)
            if not copied.reused:
                written.append(target)
        inner = open_json(
            shared.data_key,
            public.envelope.stream_id,
            SEALED_PURPOSE,
            str(json.loads(data)["sealed"]),
            run.manifest_where,
        )
        rekeyed = PartsManifest(
            header=manifest.header,
            parts=[c.entry for c in copies],
            tables=manifest.tables,
            jobs=manifest.jobs,
            seconds=manifest.seconds,
            extra={k: v for k, v in inner.items() if k not in _MANIFEST_FIELDS},
        )
        text = sealed_json(rekeyed, sealing)
        # Reopened before the switch: a manifest readers would refuse is never published.
        parse_manifest(text, run.manifest_where, Encryption(_Unwrapped(wrapped, shared.data_key)))
    except DumpError:
        run.discard(targets)  # the dump was refused: it stays exactly as it was
        raise
    with translated_errors("publishing", run.location):
        run.backend.write_bytes(run.prefix + MANIFEST_NAME, text)
    logger.info(
        "rekeyed %s: key %s -> %s (%d parts, %d kept from an earlier run)",
        safe_uri(uri),
        current.key_id,
        wrapped.key_id,
        len(copies),
        sum(c.reused for c in copies),
    )
    removed = run.remove_strays({c.entry.name for c in copies})
    return RekeyResult(
        uri=safe_uri(uri),
        old_key_id=current.key_id,
        new_key_id=wrapped.key_id,
        size=rekeyed.size,
        segments=sum(c.segments for c in copies),
        parts=len(copies),
        objects=len(copies) + 1,
        reused=sum(c.reused for c in copies),
        removed=removed,
    )


def _finished(run: _PartsRekey, manifest: PartsManifest, envelope: Envelope) -> RekeyResult:
    """A dump whose manifest is already under the new key: only the old parts are left to
    delete (a rekey stopped after its switch, or run twice)."""
    removed = run.remove_strays({p.name for p in manifest.parts})
    logger.info(
        "%s is already under key %s; %d object(s) under the old key deleted",
        safe_uri(run.uri),
        envelope.key.key_id,
        removed,
    )
    return RekeyResult(
        uri=safe_uri(run.uri),
        old_key_id=envelope.key.key_id,
        new_key_id=envelope.key.key_id,
        size=manifest.size,
        segments=0,
        parts=len(manifest.parts),
        objects=len(manifest.parts) + 1,
        reused=len(manifest.parts),
        removed=removed,
    )
