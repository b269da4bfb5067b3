"""Data records into PostgreSQL's binary COPY in C (_bulk.binary_rows), against references
written here another way: numeric's base-10000 digits by integer arithmetic, timestamps and
dates by Python's datetime. What the C code declines (None) goes as text, where the server
parses and judges it; tests/integration/test_pg_binary_copy.py holds the server's view.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import struct
import uuid
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airflow_provider_zenmigrate.core.dump import _bulk

EPOCH = dt.datetime(2000, 1, 1)


def binary(value: Any, kind: str) -> bytes | None:
    """One row of one column, its JSON value ``value``, in binary; the row header off."""
    line = b'{"v":' + json.dumps(value, ensure_ascii=False).encode() + b"}]}"
    out = _bulk.binary_rows(line, 0, (b'"v":',), kind.encode())
    if out is None:
        return None
    assert out[:2] == b"\x00\x01"  # one field
    return out[2:]


def field(payload: bytes) -> bytes:
    return struct.pack("!i", len(payload)) + payload


def numeric_reference(text: str) -> bytes:
    """numeric_send's form of decimal text: the value scaled to a whole number of base-10000
    fraction digits, written in base 10000."""
    negative = text.startswith("-")
    whole, _, fraction = text.lstrip("-").partition(".")
    scale = len(fraction)
    pad = -scale % 4
    number = int(whole + fraction + "0" * pad)
    digits: list[int] = []
    while number:
        number, digit = divmod(number, 10000)
        digits.insert(0, digit)
    weight = len(digits) - 1 - (scale + pad) // 4 if digits else 0
    while digits and digits[-1] == 0:
        digits.pop()
    sign = 0x4000 if negative and digits else 0
    return field(struct.pack(f"!hhHH{len(digits)}H", len(digits), weight, sign, scale, *digits))


decimals = st.builds(
    lambda sign, whole, fraction: sign + str(whole) + ("." + fraction if fraction else ""),
    st.sampled_from(["", "-"]),
    st.integers(0, 10**40) | st.integers(0, 99999),
    st.text(alphabet="0123456789", max_size=30),
).filter(lambda t: t.strip("-0.") or not t.startswith("-"))


@settings(max_examples=1000, deadline=None)
@given(decimals)
def test_numeric_is_numeric_send_s_form(text: str) -> None:
    assert binary(text, "d") == numeric_reference(text)


@pytest.mark.parametrize(
    ("text", "ndigits", "weight", "digits"),
    [
        ("0.1429", 1, -1, [1429]),
        ("12345.6", 3, 1, [1, 2345, 6000]),
        ("0.00000000000000000001", 1, -5, [1]),
        ("10000", 1, 1, [1]),
        ("0.0000", 0, 0, []),
    ],
)
def test_numeric_digits_by_hand(text: str, ndigits: int, weight: int, digits: list[int]) -> None:
    scale = len(text.partition(".")[2])
    head = struct.pack("!hhHH", ndigits, weight, 0, scale)
    assert binary(text, "d") == field(head + struct.pack(f"!{ndigits}H", *digits))


timestamps = st.datetimes(min_value=dt.datetime(1, 1, 1), max_value=dt.datetime(9999, 12, 31))


def micros(moment: dt.datetime) -> int:
    return (moment - EPOCH) // dt.timedelta(microseconds=1)


@settings(max_examples=500, deadline=None)
@given(timestamps, st.integers(0, 6))
def test_timestamps_are_microseconds_from_2000(moment: dt.datetime, places: int) -> None:
    moment = moment.replace(
        microsecond=moment.microsecond // 10 ** (6 - places) * 10 ** (6 - places)
    )
    text = f"{moment.year:04d}-{moment:%m-%d %H:%M:%S}" + (
        f".{moment.microsecond:06d}"[: places + 1] if places else ""
    )
    assert binary(text, "t") == field(struct.pack("!q", micros(moment)))
    assert binary(text + "+00", "z") == field(struct.pack("!q", micros(moment)))
    assert binary(text[:10], "D") == field(struct.pack("!i", (moment.date() - EPOCH.date()).days))


@pytest.mark.parametrize(
    ("text", "offset"),
    [("+05", 5 * 3600), ("-03:30", -(3 * 3600 + 1800)), ("+00:53:28", 53 * 60 + 28)],
)
def test_a_zone_offset_is_taken_out(text: str, offset: int) -> None:
    base = dt.datetime(1901, 6, 1, 12, 0, 0)
    expected = micros(base - dt.timedelta(seconds=offset))
    assert binary("1901-06-01 12:00:00" + text, "z") == field(struct.pack("!q", expected))


def test_scalars() -> None:
    assert binary(-(10**18) + 1, "q") == field(struct.pack("!q", -(10**18) + 1))
    assert binary(-(2**31), "i") == field(struct.pack("!i", -(2**31)))
    assert binary(2**15 - 1, "h") == field(struct.pack("!h", 2**15 - 1))
    assert binary(True, "b") == field(b"\x01") and binary(False, "b") == field(b"\x00")
    assert binary(None, "q") == b"\xff\xff\xff\xff"
    assert binary('tab\there é 😀 \\ "', "s") == field('tab\there é 😀 \\ "'.encode())
    assert binary('{"a": [1]}', "j") == field(b'\x01{"a": [1]}')
    blob = bytes(range(256))
    assert binary(base64.b64encode(blob).decode(), "r") == field(blob)
    assert binary("", "r") == field(b"")
    value = uuid.uuid4()
    assert binary(str(value).upper(), "u") == field(value.bytes)


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        (2**31, "i"),
        (-(2**15) - 1, "h"),
        (10**18, "q"),  # beyond the 18 digits the C code reads
        (1, "b"),
        (1, "s"),
        ("a\u0000b", "s"),  # no PostgreSQL text holds NUL: the server's error, as text
        ("NaN", "d"),
        ("Infinity", "d"),
        ("-0", "d"),
        ("1e5", "d"),
        ("01.5", "d"),
        ("1.", "d"),
        ("+1", "d"),
        ("infinity", "t"),
        ("10000-01-01 00:00:00", "t"),
        ("0044-03-15 00:00:00 BC", "t"),
        ("0000-01-01 00:00:00", "t"),
        ("2023-02-29 00:00:00", "t"),
        ("2024-01-01 24:00:00", "t"),
        ("2024-01-01 00:00:60", "t"),
        ("2024-01-01 00:00:00.1234567", "t"),
        ("2024-01-01T00:00:00", "t"),
        ("2024-01-01 00:00:00", "z"),  # no offset
        ("2024-01-01", "t"),
        ("-infinity", "D"),
        ("2024-13-01", "D"),
        ("12345678-1234-5678-1234-56781234567", "u"),
        ("g2345678-1234-5678-1234-567812345678", "u"),
        ("QQ=", "r"),
        ("2024-01-01 00:00:00\\u0000", "t"),
    ],
)
def test_what_it_declines(value: Any, kind: str) -> None:
    assert binary(value, kind) is None


@pytest.mark.parametrize("special", ['"', "\\", "\t", "\n", "\x01", "\x1f", "\x7f", "é", "😀", "/"])
def test_a_run_ends_at_each_place_of_a_word(special: str) -> None:
    """The C code scans a string 8 bytes at a time and stops at the first byte that is not
    plain: put one at every place of the first words, with plain text on either side."""
    for before in range(0, 20):
        text = "a" * before + special + "b" * (19 - before) + special
        assert binary(text, "s") == field(text.encode()), before
        assert binary(text, "j") == field(b"\x01" + text.encode()), before
        line = b'{"v":' + json.dumps(text).encode() + b"}]}"
        escaped = text.translate({92: "\\\\", 9: "\\t", 10: "\\n", 13: "\\r", 0: "\\0"})
        assert _bulk.rows(line, 0, (b'"v":',), b"s") == escaped.encode() + b"\n", before


@pytest.mark.parametrize("size", [0, 1, 2, 3, 4, 5, 6, 7, 8, 31, 32, 33, 64, 100])
def test_bytes_of_every_padding(size: int) -> None:
    blob = bytes((7 * i + 3) % 256 for i in range(size))
    encoded = base64.b64encode(blob).decode()
    assert binary(encoded, "r") == field(blob)
    line = b'{"v":"' + encoded.encode() + b'"}]}'
    assert _bulk.rows(line, 0, (b'"v":',), b"x") == b"\\\\x" + blob.hex().encode() + b"\n"


@pytest.mark.parametrize(
    "name", ["a", "abcdefg", "abcdefgh", "abcdefghijklmno", "a" * 15, "x" * 40]
)
def test_keys_of_every_length_are_matched_exactly(name: str) -> None:
    key = b'"' + name.encode() + b'":'
    line = b"{" + key + b"1}]}"
    assert _bulk.binary_rows(line, 0, (key,), b"q") is not None
    for i in range(len(key) - 1):  # one byte changed anywhere in the key: not taken
        wrong = key[:i] + b"Z" + key[i + 1 :]
        if wrong != key:
            assert _bulk.binary_rows(b"{" + wrong + b"1}]}", 0, (key,), b"q") is None, i
