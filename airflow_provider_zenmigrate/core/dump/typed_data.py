"""Data records decoded against their table's declared columns, in C.

Data records are almost all of a dump. Parsed generically, every row becomes a dict whose
keys are then compared with the declared columns and whose values are picked out again
column by column, which dominates a restore's main-thread CPU. msgspec decodes such a line
straight into one small object per row, with a field per declared column, and refuses a
missing or an unknown key while it parses: the same check in less than half the time (see
docs/performance.md).

Lines in exactly the backup's own shape (compact, each row's keys in the declared order,
scalar values) are only checked and counted when read, in C (:mod:`._bulk`); their rows
are decoded when something asks for them, and a restore into MariaDB or PostgreSQL takes
them as bulk text straight from the line instead (:meth:`DecodedRows.bulk`).

This is only a faster way to the same records. A line it does not take (not in the
backup's own shape, a table not declared, a column name msgspec cannot match: one holding
a quote, a backslash or a control character) or that it refuses for any reason is parsed
generically, so that every problem is still found and reported one way (reader.py).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from operator import attrgetter
from typing import Annotated, Any, Literal, Union, overload

import msgspec
import orjson

try:
    from . import _bulk
except ImportError:  # installed where it could not be compiled: the msgspec way for all
    _bulk = None  # type: ignore[assignment]

#: How the backup starts a data line (records.data_line); other lines go the generic way.
_PREFIX = b'{"kind":"data","table":'
_AFTER_NAME = b',"data":['
_UNMATCHABLE = frozenset('"\\' + "".join(map(chr, range(32))))
#: The values it takes, which it reads exactly as orjson does. Any other sends the line to
#: the generic parser: an integer outside signed 64 bits (orjson reads one up to 2^64 - 1
#: exactly and a larger one as a float), an array, an object but SQLite's ``dynamic`` form.
_VALUE = Union[  # noqa: UP007 - a runtime type for msgspec
    Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)], float, str, bool, None, dict[str, str]
]


class DecodedRows(Sequence[dict[str, Any]]):
    """A data record's rows, decoded for its table's declared columns (in that order).

    Read as a sequence, each row is a ``{column: value}`` dict as the generic parser gives
    it (built on demand); :meth:`columns` gives the values column by column, in C. Rows
    only checked so far (:meth:`checked`) are decoded on first use.
    """

    def __init__(
        self, table: _DataRecordDecoder, rows: list[Any] | None, line: _CheckedLine | None = None
    ) -> None:
        self._decoded = rows
        self.names = table.names
        self._getters = table.getters
        self._line = line

    @classmethod
    def checked(cls, table: _DataRecordDecoder, raw: bytes, offset: int, count: int) -> DecodedRows:
        return cls(table, None, _CheckedLine(table, raw, offset, count))

    @property
    def _rows(self) -> list[Any]:
        if self._decoded is None:
            assert self._line is not None
            self._decoded = self._line.decode()
        return self._decoded

    def bulk(self, kinds: bytes) -> bytes | None:
        """The rows as bulk text (text_rows.py's format), one field per column of the kind
        ``kinds`` gives it (see _bulk.c); None where a value needs the Python way."""
        line = self._line
        if line is None or _bulk is None:
            return None
        return _bulk.rows(line.raw, line.offset, line.table.keys, kinds)

    def binary(self, kinds: bytes) -> bytes | None:
        """The rows as the tuples of PostgreSQL's binary COPY, one field per column of the
        kind ``kinds`` gives it (see _bulk.c); None where a value needs the text way."""
        line = self._line
        if line is None or _bulk is None:
            return None
        return _bulk.binary_rows(line.raw, line.offset, line.table.keys, kinds)

    @property
    def line_bytes(self) -> int:
        """The size of the record's rows as the dump holds them (0: not known)."""
        line = self._line
        return 0 if line is None else len(line.raw) - line.offset

    def columns(self) -> list[Sequence[Any]]:
        return [tuple(map(getter, self._rows)) for getter in self._getters]

    def __len__(self) -> int:
        if self._decoded is None and self._line is not None:
            return self._line.count
        return len(self._rows)

    @overload
    def __getitem__(self, index: int) -> dict[str, Any]: ...
    @overload
    def __getitem__(self, index: slice) -> list[dict[str, Any]]: ...
    def __getitem__(self, index: int | slice) -> dict[str, Any] | list[dict[str, Any]]:
        if isinstance(index, slice):
            return [self._as_dict(row) for row in self._rows[index]]
        return self._as_dict(self._rows[index])

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return map(self._as_dict, self._rows)

    def _as_dict(self, row: Any) -> dict[str, Any]:
        return dict(zip(self.names, msgspec.structs.astuple(row), strict=True))


class _CheckedLine:
    """A data line that C checked and counted but nothing has decoded yet."""

    def __init__(self, table: _DataRecordDecoder, raw: bytes, offset: int, count: int) -> None:
        self.table = table
        self.raw = raw
        self.offset = offset
        self.count = count

    def decode(self) -> list[Any]:
        decoded: Any = self.table.decoder.decode(self.raw)
        rows: list[Any] = decoded.data
        if len(rows) != self.count:  # C takes only what msgspec takes: never reached
            raise RuntimeError("a checked data line decoded to another number of rows")
        return rows


class _DataRecordDecoder:
    """Decodes one table's data records straight into row objects of its declared columns."""

    def __init__(self, names: tuple[str, ...]) -> None:
        self.names = names
        self._fields = [f"f{i}" for i in range(len(names))]
        #: Each column's key as the backup writes it (no escapes: see _UNMATCHABLE).
        self.keys = tuple(b'"' + name.encode() + b'":' for name in names)
        self.getters: list[Callable[[Any], Any]] = [attrgetter(f) for f in self._fields]

    @functools.cached_property
    def decoder(self) -> msgspec.json.Decoder[Any]:
        """Built when a record of the table is first decoded: where C checks the records
        and the writer reads the rows from their text, never (the two types cost about
        0.3 ms a table, a restore of many small tables' worth of time)."""
        fields, names = self._fields, self.names
        row = msgspec.defstruct(
            "Row",
            [(field, _VALUE) for field in fields],
            rename=dict(zip(fields, names, strict=True)),
            forbid_unknown_fields=True,
            # Its values are scalars (or a dict of strings): it is in no reference cycle, so
            # the cycle collector need not track the thousands each data record makes.
            gc=False,
        )
        record = msgspec.defstruct(
            "DataRecord",
            [("kind", Literal["data"]), ("table", str), ("data", list[row])],  # type: ignore[valid-type]
            forbid_unknown_fields=True,
        )
        return msgspec.json.Decoder(record)


class DataDecoders:
    """The decoders of one dump's tables, learnt from its table records as they pass."""

    def __init__(self) -> None:
        self._tables: dict[str, _DataRecordDecoder] = {}

    def declare(self, record: Any) -> None:
        """Learn a table record's columns; one the verifier will refuse, or whose names
        msgspec cannot match, leaves its table to the generic parser."""
        name, columns = record.get("table"), record.get("columns")
        if not isinstance(name, str):
            return
        self._tables.pop(name, None)
        if not isinstance(columns, list) or not columns:
            return
        names: list[Any] = [c.get("name") if isinstance(c, dict) else None for c in columns]
        if not all(isinstance(n, str) and _UNMATCHABLE.isdisjoint(n) for n in names):
            return
        if len(set(names)) == len(names):
            self._tables[name] = _DataRecordDecoder(tuple(names))

    def decode(self, raw: bytes) -> dict[str, Any] | None:
        """The data record of ``raw``, or None: then parse it generically."""
        if not self._tables or not raw.startswith(_PREFIX):
            return None
        end = raw.find(_AFTER_NAME, len(_PREFIX))
        try:
            name = orjson.loads(raw[len(_PREFIX) : end]) if end > 0 else None
        except orjson.JSONDecodeError:
            return None
        table = self._tables.get(name) if isinstance(name, str) else None
        if table is None:
            return None
        if _bulk is not None:
            offset = end + len(_AFTER_NAME)
            count = _bulk.rows(raw, offset, table.keys, None)
            if count is not None:
                rows = DecodedRows.checked(table, raw, offset, count)
                return {"kind": "data", "table": name, "data": rows}
        try:
            decoded: Any = table.decoder.decode(raw)
        except (msgspec.DecodeError, RecursionError, UnicodeDecodeError):
            return None
        if decoded.table != name:  # a second "table" key: the generic parser decides
            return None
        return {
            "kind": "data",
            "table": name,
            "data": DecodedRows(table, decoded.data),
        }
