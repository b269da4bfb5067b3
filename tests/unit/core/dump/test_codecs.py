"""Value codecs (core/dump/codecs.py): every declared codec takes a value to JSON and back
exactly, keeps the server's own text where it is not ISO, and refuses malformed input."""

from __future__ import annotations

import binascii
import datetime as dt
import json
import math
from decimal import Decimal
from typing import Any

import pytest

from airflow_provider_zenmigrate.core.dump.codecs import DECODERS, ENCODERS, decoders, encoders
from airflow_provider_zenmigrate.core.dump.model import CODECS

UTC_PLUS_2 = dt.timezone(dt.timedelta(hours=2))

#: (codec, value, its JSON form): decoding the JSON form gives the value back, same type.
ROUND_TRIPS: list[tuple[str, Any, Any]] = [
    ("native", 42, 42),
    ("native", "naïve ☃", "naïve ☃"),
    ("native", True, True),
    ("native", None, None),
    ("bytes", b"\x00\xff\n'\\", "AP8KJ1w="),
    ("bytes", b"", ""),
    ("bytes", None, None),
    ("decimal", Decimal("12.3400"), "12.3400"),  # trailing zeros are the column's scale
    ("decimal", Decimal("-0.000000000000000000000000000001"), "-1E-30"),
    ("decimal", Decimal("123456789012345678901234567890.5"), "123456789012345678901234567890.5"),
    ("float", 0.1, "0.1"),
    ("float", -0.0, "-0.0"),
    ("float", 1e308, "1e+308"),
    ("float", math.inf, "Infinity"),
    ("float", -math.inf, "-Infinity"),
    ("date", dt.date(2024, 2, 29), "2024-02-29"),
    ("time", dt.time(23, 59, 59, 1), "23:59:59.000001"),
    ("datetime", dt.datetime(2024, 2, 29, 23, 59, 59), "2024-02-29T23:59:59.000000"),
    (
        "datetime",
        dt.datetime(2024, 2, 29, 1, 2, 3, 456789, tzinfo=UTC_PLUS_2),
        "2024-02-29T01:02:03.456789+02:00",
    ),
    ("dynamic", 7, 7),
    ("dynamic", "text", "text"),
    ("dynamic", None, None),
    ("dynamic", 2.5, {"float": "2.5"}),
    ("dynamic", b"\x01\x02", {"bytes": "AQI="}),
    ("text", "{1,2,3}", "{1,2,3}"),
    ("text", None, None),
]


@pytest.mark.parametrize(
    ("codec", "value", "encoded"),
    ROUND_TRIPS,
    ids=[f"{c}-{i}" for i, (c, _, _) in enumerate(ROUND_TRIPS)],
)
def test_round_trip_is_exact(codec: str, value: Any, encoded: Any) -> None:
    out = ENCODERS[codec](value)
    assert out == encoded
    back = DECODERS[codec](json.loads(json.dumps(out)))
    assert back == value and type(back) is type(value)
    if isinstance(value, float):
        assert math.copysign(1, back) == math.copysign(1, value)  # -0.0 stays negative
    if isinstance(value, dt.datetime):
        assert back.utcoffset() == value.utcoffset()


def test_nan_round_trips() -> None:
    assert ENCODERS["float"](math.nan) == "NaN"
    assert math.isnan(DECODERS["float"]("NaN"))
    assert ENCODERS["dynamic"](math.nan) == {"float": "NaN"}
    assert math.isnan(DECODERS["dynamic"]({"float": "NaN"}))


@pytest.mark.parametrize(
    ("codec", "text"),
    [
        ("date", "0000-00-00"),  # MySQL's zero date
        ("datetime", "0000-00-00 00:00:00"),
        ("time", "838:59:59.000000"),  # a MySQL TIME beyond a day
        ("time", "-00:00:01"),
    ],
)
def test_server_text_that_is_not_iso_is_kept_for_the_server(codec: str, text: str) -> None:
    assert ENCODERS[codec](text) == text
    assert DECODERS[codec](text) == text


def test_text_codec_stores_the_servers_text_form() -> None:
    assert ENCODERS["text"](dt.timedelta(days=1)) == "1 day, 0:00:00"
    assert ENCODERS["text"](Decimal("1.50")) == "1.50"


@pytest.mark.parametrize(
    ("codec", "value", "error"),
    [
        ("bytes", "not base64!", binascii.Error),
        ("bytes", "AP8", binascii.Error),  # bad padding
        ("decimal", "twelve", ArithmeticError),
        ("float", "fast", ValueError),
        ("dynamic", {"float": "1", "bytes": ""}, ValueError),
        ("dynamic", {"int": 1}, ValueError),
        ("dynamic", {"bytes": "***"}, binascii.Error),
    ],
)
def test_malformed_values_are_refused(codec: str, value: Any, error: type[Exception]) -> None:
    with pytest.raises(error):
        DECODERS[codec](value)


@pytest.mark.parametrize("value", [Decimal("1.5"), dt.date(2024, 1, 1), [1], {"a": 1}])
def test_dynamic_refuses_values_it_cannot_tag(value: Any) -> None:
    with pytest.raises(TypeError, match="no dynamic encoding"):
        ENCODERS["dynamic"](value)


def test_every_declared_codec_has_both_directions() -> None:
    assert set(ENCODERS) == set(DECODERS) == set(CODECS)


def test_codec_lists_follow_the_declared_columns() -> None:
    codecs = ["native", "bytes", "float"]
    row = (1, b"\x00", 0.5)
    encoded = [encode(v) for encode, v in zip(encoders(codecs), row, strict=True)]
    assert encoded == [1, "AA==", "0.5"]
    assert tuple(decode(v) for decode, v in zip(decoders(codecs), encoded, strict=True)) == row
    with pytest.raises(KeyError):
        encoders(["native", "uuid"])
