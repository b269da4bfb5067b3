"""Value codecs: Python value <-> JSON value, exact in both directions.

Each column declares its codec in the table record (see :data:`.model.CODECS`); encoding
and decoding are picked once per column, not per value.
"""

from __future__ import annotations

import base64
import datetime as dt
import math
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

Encoder = Callable[[Any], Any]
Decoder = Callable[[Any], Any]

_FLOAT_WORDS = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def _identity(value: Any) -> Any:
    return value


def _encode_bytes(value: Any) -> str:
    return base64.b64encode(value).decode("ascii")


def _decode_bytes(value: Any) -> bytes:
    return base64.b64decode(value.encode("ascii"), validate=True)


def _encode_float(value: Any) -> str:
    value = float(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return repr(value)


def _decode_float(value: Any) -> float:
    word = _FLOAT_WORDS.get(value)
    return word if word is not None else float(value)


def _encode_decimal(value: Any) -> str:
    return str(value)


def _encode_temporal(value: Any) -> str:
    if isinstance(value, dt.datetime | dt.time):
        return value.isoformat(timespec="microseconds")
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)  # a server's text form (MySQL zero dates, TIME intervals)


def _decode_date(value: Any) -> Any:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        return value  # the server's own text (for example 0000-00-00): let it parse it


def _decode_time(value: Any) -> Any:
    try:
        return dt.time.fromisoformat(value)
    except ValueError:
        return value


def _decode_datetime(value: Any) -> Any:
    try:
        return dt.datetime.fromisoformat(value)
    except ValueError:
        return value


def _encode_dynamic(value: Any) -> Any:
    if value is None or isinstance(value, int | str):
        return value
    if isinstance(value, float):
        return {"float": _encode_float(value)}
    if isinstance(value, bytes | bytearray | memoryview):
        return {"bytes": _encode_bytes(bytes(value))}
    raise TypeError(f"no dynamic encoding for {type(value).__name__}")


def _decode_dynamic(value: Any) -> Any:
    if not isinstance(value, dict):
        return value
    if value.keys() == {"float"}:
        return _decode_float(value["float"])
    if value.keys() == {"bytes"}:
        return _decode_bytes(value["bytes"])
    raise ValueError(f"malformed dynamic value {value!r}")


def _null_safe(fn: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def wrapped(value: Any) -> Any:
        return None if value is None else fn(value)

    return wrapped


ENCODERS: dict[str, Encoder] = {
    "native": _identity,
    "dynamic": _encode_dynamic,
    "text": _null_safe(str),
    "bytes": _null_safe(_encode_bytes),
    "decimal": _null_safe(_encode_decimal),
    "float": _null_safe(_encode_float),
    "date": _null_safe(_encode_temporal),
    "time": _null_safe(_encode_temporal),
    "datetime": _null_safe(_encode_temporal),
}
DECODERS: dict[str, Decoder] = {
    "native": _identity,
    "dynamic": _decode_dynamic,
    "text": _identity,
    "bytes": _null_safe(_decode_bytes),
    "decimal": _null_safe(Decimal),
    "float": _null_safe(_decode_float),
    "date": _null_safe(_decode_date),
    "time": _null_safe(_decode_time),
    "datetime": _null_safe(_decode_datetime),
}


def encoders(codecs: Sequence[str]) -> list[Encoder]:
    return [ENCODERS[c] for c in codecs]


def decoders(codecs: Sequence[str]) -> list[Decoder]:
    return [DECODERS[c] for c in codecs]
