"""The one data key of a multi-part backup (SharedKey): wrapped once, a key of its own for
each part, a part of another backup refused, the key never in repr."""

from __future__ import annotations

import io
import os

import pytest

from airflow_provider_zenmigrate.core.crypto import (
    DecryptingReader,
    EncryptingWriter,
    Encryption,
    LocalKey,
    WrappedKey,
)
from airflow_provider_zenmigrate.core.errors import DumpAuthenticationError


class _Counting(LocalKey):
    wraps = 0

    def wrap(self, data_key: bytes) -> WrappedKey:
        type(self).wraps += 1
        return super().wrap(data_key)


def test_one_wrap_a_key_per_part_and_another_backups_part_refused() -> None:
    kek = _Counting(os.urandom(32))
    shared = Encryption(kek, segment_size=4096).share()
    assert _Counting.wraps == 1
    first, first_key = shared.seal_new()
    second, second_key = shared.seal_new()
    assert _Counting.wraps == 1  # parts never call the key service
    assert first.key == second.key and first.stream_id != second.stream_id
    assert len({first_key, second_key, shared.data_key}) == 3
    assert shared.unwrap(first, "part") == first_key

    sink = io.BytesIO()
    writer = EncryptingWriter(sink, first, first_key)
    writer.write(b"rows " * 3000)
    writer.finish()
    body = sink.getvalue()[len(first.encode()) :]
    reader = DecryptingReader(io.BytesIO(body), first, shared.unwrap(first, "part"), "part")
    assert reader.read() == b"rows " * 3000

    other = Encryption(kek).share()
    stranger, _key = other.seal_new()
    with pytest.raises(DumpAuthenticationError, match="another backup"):
        shared.unwrap(stranger, "part-00001")
    assert shared.data_key.hex() not in repr(shared) and "local key" in repr(shared)
