"""``_wire.rendered`` on row packets built here: what it writes, where it stops, what it
refuses. tests/integration/test_mysql_wire.py holds it to the server's own rendering."""

from __future__ import annotations

import base64
import json

import pytest

from airflow_provider_zenmigrate.core.dialects.mysql import wire

KEYS = (b'{"id":', b',"name":', b',"raw":')


def lenenc(value: bytes | None) -> bytes:
    if value is None:
        return b"\xfb"
    if len(value) < 251:
        return bytes([len(value)]) + value
    if len(value) < 1 << 16:
        return b"\xfc" + len(value).to_bytes(2, "little") + value
    return b"\xfd" + len(value).to_bytes(3, "little") + value


def packet(seq: int, payload: bytes) -> bytes:
    return len(payload).to_bytes(3, "little") + bytes([seq]) + payload


def row(seq: int, *fields: bytes | None) -> bytes:
    return packet(seq, b"".join(lenenc(f) for f in fields))


EOF = packet(9, b"\xfe\x00\x00\x22\x00")


def render(buf: bytes, kinds: bytes = b"nsx", room: int = 100) -> tuple[int, int, int, int, bytes]:
    rendered = vars(wire)["_wire"]
    assert rendered is not None, "the _wire extension was not built"
    out = bytearray()
    pos, seq, count, lost = rendered.rendered(
        bytearray(buf), 0, len(buf), 0, out, 0, room, kinds, KEYS
    )
    return pos, seq, count, lost, bytes(out)


def test_rows_are_written_as_json_objects_until_the_end_packet() -> None:
    text = "".join(map(chr, range(32))) + '"\\/\x7fé😀'
    blobs = [b"", b"\x00", b"\xff\xfe", b"abc", bytes(range(256)) * 2]
    rows = [row(i, str(-i).encode(), text.encode(), blob) for i, blob in enumerate(blobs)]
    rows.append(row(len(rows), b"18446744073709551615", None, None))
    buf = b"".join(rows) + packet(len(rows), b"\xfe\x00\x00\x22\x00")
    pos, seq, count, lost, out = render(buf)
    assert (pos, seq, count, lost) == (len(buf) - 9, len(rows), len(rows), 0)
    got = json.loads(b"[" + out + b"]")
    assert got[:-1] == [
        {"id": -i, "name": text, "raw": base64.b64encode(blob).decode()}
        for i, blob in enumerate(blobs)
    ]
    assert got[-1] == {"id": 18446744073709551615, "name": None, "raw": None}
    # JSON_QUOTE's escapes: upper-case hex, DEL and '/' as they are.
    assert b'"\\u0000\\u0001' in out and b"\\u001F" in out and b'\\"\\\\/\x7f' in out


def test_it_stops_where_the_loop_must_read() -> None:
    first = row(0, b"1", b"a", b"b")
    # An error packet, a partial packet, a wrong sequence number, the room used up.
    for tail, taken in [
        (packet(1, b"\xff\x10\x04#HY000boom"), 1),
        (row(1, b"2", b"a", b"b")[:-1], 1),
        (row(5, b"2", b"a", b"b"), 1),
    ]:
        pos, seq, count, _, out = render(first + tail)
        assert (pos, seq, count) == (len(first), 1, taken)
        assert out == b'{"id":1,"name":"a","raw":"Yg=="}'
    pos, _, count, _, _ = render(first + row(1, b"2", b"a", b"b"), room=1)
    assert (pos, count) == (len(first), 1)


def test_a_null_where_the_column_has_none_loses_the_row() -> None:
    """Upper-case kinds: a NULL is a value the server could not render (the CONCAT it
    replaces was NULL); the row is counted, not written, and the caller drops its batch."""
    buf = row(0, b"1", None, b"x") + row(1, b"2", b"b", b"y") + EOF
    _, _, count, lost, out = render(buf, kinds=b"nSx")
    assert (count, lost) == (2, 1)
    assert json.loads(b"[" + out + b"]") == [{"id": 2, "name": "b", "raw": "eQ=="}]


@pytest.mark.parametrize(
    "payload",
    [
        lenenc(b"1") + lenenc(b"a"),  # a column short
        lenenc(b"1") + lenenc(b"a") + lenenc(b"b") + b"\x00",  # a byte after the last field
        lenenc(b"1") + lenenc(b"a") + b"\x05ab",  # a field longer than its packet
        lenenc(b"1x") + lenenc(b"a") + lenenc(b"b"),  # not a number
        lenenc(b"-") + lenenc(b"a") + lenenc(b"b"),
        b"\xfe" + bytes(8) + lenenc(b"a") + lenenc(b"b"),  # an 8-byte length
    ],
)
def test_a_row_not_in_its_columns_shape_is_refused(payload: bytes) -> None:
    with pytest.raises(ValueError, match="do not fill it"):
        render(packet(0, payload))
