"""The STREAM construction: round trips at every boundary, and every kind of tampering
(flipped byte, swapped, dropped, duplicated or appended segment, a segment from another
dump, a changed envelope) refused before its plaintext is handed on."""

from __future__ import annotations

import io
import json
import os
import struct

import pytest

from airflow_provider_zenmigrate.core.crypto import (
    DecryptingReader,
    EncryptingWriter,
    Encryption,
    Envelope,
    LocalKey,
    sniff,
)
from airflow_provider_zenmigrate.core.crypto.envelope import MAGIC, PREAMBLE_BYTES
from airflow_provider_zenmigrate.core.crypto.segments import TAG_BYTES
from airflow_provider_zenmigrate.core.errors import (
    DumpAuthenticationError,
    DumpFormatError,
    EncryptionKeyError,
    MissingKeyError,
)

SEGMENT = 4096


def _key() -> LocalKey:
    return LocalKey(os.urandom(32))


def _seal(data: bytes, key: LocalKey, pieces: int = 1) -> bytes:
    envelope, data_key = Encryption(key, segment_size=SEGMENT).seal_new()
    out = io.BytesIO()
    writer = EncryptingWriter(out, envelope, data_key)
    step = max(1, len(data) // pieces)
    for start in range(0, len(data), step):
        writer.write(data[start : start + step])
    writer.finish()
    return out.getvalue()


def _open(sealed: bytes, key: LocalKey) -> io.BufferedReader:
    stream, envelope = sniff(io.BytesIO(sealed), "dump")
    assert envelope is not None
    data_key = Encryption(key).unwrap(envelope, "dump")
    return io.BufferedReader(DecryptingReader(stream, envelope, data_key, "dump"))


def _split(sealed: bytes) -> tuple[bytes, list[bytes]]:
    """The envelope bytes and the segments of a sealed stream."""
    (length,) = struct.unpack(">I", sealed[len(MAGIC) + 2 : PREAMBLE_BYTES])
    head = sealed[: PREAMBLE_BYTES + length]
    body = sealed[len(head) :]
    chunk = SEGMENT + TAG_BYTES
    return head, [body[i : i + chunk] for i in range(0, len(body), chunk)]


@pytest.mark.parametrize("size", [0, 1, SEGMENT - 1, SEGMENT, SEGMENT + 1, 3 * SEGMENT, 10_000])
@pytest.mark.parametrize("pieces", [1, 7])
def test_round_trip_at_every_boundary(size: int, pieces: int) -> None:
    key = _key()
    data = os.urandom(size)
    sealed = _seal(data, key, pieces)
    assert size < 32 or data[:32] not in sealed
    reader = _open(sealed, key)
    assert reader.read() == data
    # Segments: full ones, then a final one holding the rest (at least one byte, or empty).
    segments = max(1, -(-size // SEGMENT))
    assert len(_split(sealed)[1]) == segments


def test_readline_streams_lines() -> None:
    key = _key()
    lines = [json.dumps({"n": i, "pad": "x" * (i % 300)}).encode() + b"\n" for i in range(2000)]
    reader = _open(_seal(b"".join(lines), key, pieces=50), key)
    assert [reader.readline() for _ in lines] == lines
    assert reader.readline() == b""


def _refused(sealed: bytes, key: LocalKey) -> str:
    reader = _open(sealed, key)
    with pytest.raises(DumpAuthenticationError) as caught:
        while reader.read(SEGMENT):
            pass
    return str(caught.value)


def test_flipped_byte_in_any_segment_is_refused() -> None:
    key = _key()
    sealed = _seal(os.urandom(3 * SEGMENT + 10), key)
    head, _ = _split(sealed)
    for offset in (len(head), len(head) + SEGMENT + 20, len(sealed) - 1):
        tampered = bytearray(sealed)
        tampered[offset] ^= 0x01
        assert "does not authenticate" in _refused(bytes(tampered), key)


def test_tampered_segment_hands_on_nothing_of_itself() -> None:
    key = _key()
    data = os.urandom(2 * SEGMENT + 10)
    tampered = bytearray(_seal(data, key))
    tampered[-5] ^= 0x80  # in the final segment
    reader = DecryptingReader(*_reader_parts(bytes(tampered), key))
    got = bytearray()
    with pytest.raises(DumpAuthenticationError):
        while chunk := reader.read(SEGMENT):
            got += chunk
    assert bytes(got) == data[: 2 * SEGMENT]  # the authenticated segments only


def _reader_parts(sealed: bytes, key: LocalKey) -> tuple[io.BytesIO, Envelope, bytes, str]:
    stream, envelope = sniff(io.BytesIO(sealed), "dump")
    assert envelope is not None
    return stream, envelope, Encryption(key).unwrap(envelope, "dump"), "dump"  # type: ignore[return-value]


def test_swapped_segments_are_refused() -> None:
    key = _key()
    head, segments = _split(_seal(os.urandom(3 * SEGMENT + 10), key))
    swapped = [segments[1], segments[0], *segments[2:]]
    assert "segment 0" in _refused(head + b"".join(swapped), key)


@pytest.mark.parametrize("keep", [1, 2, 3])
def test_truncated_at_a_segment_boundary_is_refused(keep: int) -> None:
    key = _key()
    head, segments = _split(_seal(os.urandom(3 * SEGMENT + 10), key))
    assert len(segments) == 4
    _refused(head + b"".join(segments[:keep]), key)


def test_truncated_inside_a_segment_or_before_any_is_refused() -> None:
    key = _key()
    sealed = _seal(os.urandom(2 * SEGMENT + 10), key)
    head, _ = _split(sealed)
    _refused(sealed[:-3], key)
    assert "truncated" in _refused(head, key)


def test_extended_dump_is_refused() -> None:
    key = _key()
    sealed = _seal(os.urandom(SEGMENT + 10), key)
    _refused(sealed + b"\x00", key)
    head, segments = _split(sealed)
    _refused(sealed + segments[-1], key)  # the final segment again
    full = _seal(os.urandom(2 * SEGMENT), key)  # ends on a boundary: last segment is full
    _refused(full + os.urandom(SEGMENT + TAG_BYTES), key)


def test_segment_of_another_dump_under_the_same_key_is_refused() -> None:
    key = _key()
    head_a, segments_a = _split(_seal(os.urandom(2 * SEGMENT + 10), key))
    _head_b, segments_b = _split(_seal(os.urandom(2 * SEGMENT + 10), key))
    _refused(head_a + segments_a[0] + segments_b[1] + segments_a[2], key)


def test_changed_envelope_field_is_refused() -> None:
    key = _key()
    sealed = _seal(os.urandom(SEGMENT + 10), key)
    head, segments = _split(sealed)
    envelope = json.loads(head[PREAMBLE_BYTES:])
    envelope["created_at"] = "2020-01-01T00:00:00+00:00"
    body = json.dumps(envelope).encode()
    forged = MAGIC + struct.pack(">HI", 1, len(body)) + body
    _refused(forged + b"".join(segments), key)


def test_unknown_envelope_version_is_a_format_error() -> None:
    sealed = bytearray(_seal(b"data", _key()))
    sealed[len(MAGIC) : len(MAGIC) + 2] = struct.pack(">H", 7)
    with pytest.raises(DumpFormatError, match="envelope version 7"):
        sniff(io.BytesIO(bytes(sealed)), "dump")


def test_cut_inside_the_envelope_is_a_format_error() -> None:
    sealed = _seal(b"data", _key())
    for size in (len(MAGIC) + 1, PREAMBLE_BYTES + 5):
        with pytest.raises(DumpFormatError, match="cut off inside its envelope"):
            sniff(io.BytesIO(sealed[:size]), "dump")


def test_plaintext_is_recognised_and_given_back_whole() -> None:
    for data in (b"", b"{", b'{"kind":"header"}\n' * 3):
        stream, envelope = sniff(io.BytesIO(data), "dump")
        assert envelope is None
        assert stream.read() == data


def test_wrong_key_names_both_ids_and_no_material() -> None:
    right, wrong = _key(), _key()
    sealed = _seal(b"secret rows", right)
    _stream, envelope = sniff(io.BytesIO(sealed), "dump")
    assert envelope is not None
    with pytest.raises(EncryptionKeyError) as caught:
        Encryption(wrong).unwrap(envelope, "dump")
    assert right.key_id in str(caught.value) and wrong.key_id in str(caught.value)
    with pytest.raises(MissingKeyError) as missing:
        Encryption().unwrap(envelope, "dump")
    assert missing.value.envelope["key"]["key_id"] == right.key_id


def test_envelope_carries_nothing_of_the_data_or_the_keys() -> None:
    raw = os.urandom(32)
    key = LocalKey(raw)
    sealed = _seal(b'{"database":"payroll","table":"salaries"}\n', key)
    head, _ = _split(sealed)
    public = json.loads(head[PREAMBLE_BYTES:])
    assert set(public) == {
        "version",
        "algorithm",
        "segment_size",
        "stream_id",
        "nonce_prefix",
        "created_at",
        "key",
    }
    assert b"payroll" not in sealed and b"salaries" not in sealed
    assert raw not in sealed
    import base64

    assert base64.b64encode(raw) not in sealed and raw.hex().encode() not in sealed
