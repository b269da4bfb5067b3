"""Reading dumps: parse lines or records and verify them as they stream.

Verification is incremental: every record is checked against what came before it, and the
trailer is checked against digests taken over everything read. Callers act on records as
they pass (loading a staging area) and commit to nothing until :meth:`DumpVerifier.finish`
has returned.
"""

from __future__ import annotations

import codecs
import contextlib
import itertools
import json
import operator
from collections.abc import Iterable, Iterator
from typing import IO, Any

import orjson

from ..errors import DumpFormatError, DumpIntegrityError
from .legacy import LegacyRecords
from .model import CODECS
from .records import FORMAT, VERSION, DumpDigest, Record, serialize
from .typed_data import DataDecoders, DecodedRows

#: (line number, record, the record's raw line or None when it did not come from a line)
Entry = tuple[int, Record, bytes | None]

#: Longest line (one record, with its newline) accepted, in bytes; longer ones are refused
#: with :class:`DumpFormatError`. A line is held whole to be parsed, so this bounds the memory
#: one record can take (parsed and decoded, a few times this). Data records aim at 4 MiB, but
#: one holds at least a fetch batch of rows, so tables of wide rows make long lines: the limit
#: stays generous (see docs/dump-format.md, "Limits"). Read at call time, so it can be lowered.
MAX_LINE_BYTES = 512 * 1024 * 1024
#: Lines are read in pieces of at most this size: memory follows the line, not the limit, and
#: an over-long line is refused holding at most the limit (never twice it, never all of it).
_PIECE_BYTES = 8 * 1024 * 1024
_LEGACY_BUFFER = 1024 * 1024


class DumpVerifier:
    """Checks a record stream in order; raises a :class:`DumpError` naming the line."""

    def __init__(self, allow_unverified: bool = False) -> None:
        self.allow_unverified = allow_unverified
        self.digest = DumpDigest()
        self.header: Record | None = None
        self.trailer: Record | None = None
        self.legacy = False
        self._legacy = LegacyRecords()
        self._columns: dict[str, list[str] | None] = {}
        self._count = 0

    @property
    def verified(self) -> bool:
        return self.trailer is not None

    def check(self, line: int, record: Any, raw: bytes | None = None) -> Record:
        """Verify one record; returns it in v1 shape (legacy records are converted)."""
        if not isinstance(record, dict):
            raise DumpFormatError("a record must be a JSON object", line)
        self._count += 1
        if self._count == 1:
            self._start(line, record)
            if not self.legacy:
                self._account(record, raw)
                return record
        if self.legacy:
            return self._check_legacy(line, record)
        if self.trailer is not None:
            raise DumpIntegrityError("record after the trailer", line)
        kind = record.get("kind")
        if kind == "trailer":
            self._check_trailer(line, record)
            return record
        if kind == "table":
            self._check_table(line, record)
        elif kind == "data":
            self._check_data(line, record)
        elif kind == "object":
            self._check_object(line, record)
        else:
            raise DumpFormatError(f"unknown record kind {kind!r}", line)
        self._account(record, raw)
        return record

    def finish(self) -> None:
        """The stream has ended: raise unless it was complete (or legacy and allowed)."""
        if self._count == 0:
            raise DumpIntegrityError("the dump is empty")
        if self.legacy:
            return
        if self.trailer is None:
            raise DumpIntegrityError(
                f"the dump is truncated: no trailer after {self._count} records"
            )

    # -- v1 ----------------------------------------------------------------------------------
    def _start(self, line: int, record: Record) -> None:
        if record.get("kind") == "header":
            if record.get("format") != FORMAT:
                raise DumpFormatError(f"not a {FORMAT} header: {record.get('format')!r}", line)
            if record.get("version") != VERSION:
                raise DumpFormatError(
                    f"unknown format version {record.get('version')!r} "
                    f"(this version reads {VERSION})",
                    line,
                )
            self.header = record
            return
        if "kind" in record or "table" not in record:
            raise DumpFormatError("the dump does not start with a header", line)
        if not self.allow_unverified:
            raise DumpFormatError(
                "the dump has no header: it looks like a dump in the legacy (unverified) "
                "format; restore it only by passing allow_unverified=True",
                line,
            )
        self.legacy = True

    def _account(self, record: Record, raw: bytes | None) -> None:
        self.digest.add_line(raw if raw is not None else serialize(record), record)

    def _check_table(self, line: int, record: Record) -> None:
        name = record.get("table")
        if not isinstance(name, str) or not name:
            raise DumpFormatError("table record without a table name", line)
        if "\x00" in name:  # no server takes it; drivers cut or refuse it in different ways
            raise DumpFormatError(f"table {name!r}: a name contains a NUL character", line)
        if name in self._columns:
            raise DumpFormatError(f"table {name!r} is declared twice", line)
        if not isinstance(record.get("create_stmt"), str):
            raise DumpFormatError(f"table {name!r} has no create_stmt", line)
        key, options = record.get("key"), record.get("options")
        if key is not None and not (isinstance(key, list) and all(isinstance(k, str) for k in key)):
            raise DumpFormatError(f"table {name!r}: key is not a list of column names", line)
        if options is not None and not isinstance(options, dict):
            raise DumpFormatError(f"table {name!r}: options is not an object", line)
        columns = record.get("columns")
        if not isinstance(columns, list) or not columns:
            raise DumpFormatError(f"table {name!r} declares no columns", line)
        names: list[str] = []
        for column in columns:
            if not isinstance(column, dict) or not isinstance(column.get("name"), str):
                raise DumpFormatError(f"table {name!r}: malformed column {column!r}", line)
            if "\x00" in column["name"]:
                raise DumpFormatError(f"table {name!r}: a column name contains NUL", line)
            codec = column.get("codec")
            if not isinstance(codec, str) or codec not in CODECS:
                raise DumpFormatError(
                    f"table {name!r}: column {column['name']!r} has unknown codec "
                    f"{column.get('codec')!r}",
                    line,
                )
            names.append(column["name"])
        if len(set(names)) != len(names):
            raise DumpFormatError(f"table {name!r} declares a column twice", line)
        self._columns[name] = names

    def _check_data(self, line: int, record: Record) -> None:
        name = record.get("table")
        if not isinstance(name, str) or name not in self._columns:
            raise DumpFormatError(f"data for table {name!r}, which the dump never declared", line)
        rows = record.get("data")
        expected = self._columns[name]
        if isinstance(rows, DecodedRows) and list(rows.names) == expected:
            return  # decoded against these very columns: every row has exactly them
        if not isinstance(rows, list):
            raise DumpFormatError(f"data record of {name!r} has no list of rows", line)
        keys = dict.fromkeys(expected or ()).keys()
        try:  # in C for the common case; the loop below names the problem
            if all(map(operator.eq, itertools.repeat(keys), map(dict.keys, rows))):
                return
        except TypeError:  # a row that is not an object
            pass
        for row in rows:
            if not isinstance(row, dict) or row.keys() != keys:
                raise DumpFormatError(
                    f"a row of {name!r} does not have exactly the declared columns", line
                )

    def _check_object(self, line: int, record: Record) -> None:
        for key in ("object_type", "name", "create_stmt"):
            if not isinstance(record.get(key), str):
                raise DumpFormatError(f"object record without {key}", line)
        if not isinstance(record.get("table"), str | None):
            raise DumpFormatError(f"object {record['name']!r}: table is not a name", line)
        if "\x00" in record["name"]:
            raise DumpFormatError(f"object {record['name']!r}: the name contains NUL", line)
        if record.get("phase") not in ("pre", "post"):
            raise DumpFormatError(f"object {record['name']!r} has no valid phase", line)

    def _check_trailer(self, line: int, record: Record) -> None:
        # Tables first: a mismatch there names the table that was altered.
        expected = record.get("tables")
        actual = self.digest.table_summary()
        if not isinstance(expected, dict) or expected.keys() != actual.keys():
            raise DumpIntegrityError("the trailer lists other tables than the dump", line)
        for name, summary in actual.items():
            if expected[name] != summary:
                raise DumpIntegrityError(
                    f"table {name!r}: the trailer says {expected[name]}, the dump has {summary}",
                    line,
                )
        if record.get("digest") != self.digest.hexdigest():
            raise DumpIntegrityError(
                "the dump's digest does not match its contents (altered or corrupted)", line
            )
        if record.get("records") != self.digest.records:
            raise DumpIntegrityError(
                f"the trailer counts {record.get('records')} records, the dump has "
                f"{self.digest.records}",
                line,
            )
        self.trailer = record

    # -- the seed's format (ZenML's file dumps) ------------------------------------------------
    def _check_legacy(self, line: int, record: Record) -> Record:
        return self._legacy.check(line, record)


def entries_from_records(records: Iterable[Any]) -> Iterator[Entry]:
    """Number in-memory records like lines of a file."""
    for number, record in enumerate(records, start=1):
        yield number, record, None


def entries_from_stream(stream: IO[bytes], max_line_bytes: int | None = None) -> Iterator[Entry]:
    """Parse a dump from a binary stream: JSON Lines, or the legacy format's objects.

    Every problem is a :class:`DumpError` naming the line: invalid UTF-8 or JSON, nesting too
    deep for the parser, a line (or a legacy format's object) longer than ``max_line_bytes``
    (:data:`MAX_LINE_BYTES` by default), a stream cut inside a line.
    """
    limit = MAX_LINE_BYTES if max_line_bytes is None else max_line_bytes
    number = 1
    first = _read_line(stream, limit, number)
    while first and not first.strip():
        number += 1
        first = _read_line(stream, limit, number)
    if not first:
        return
    record: Any = None
    with contextlib.suppress(ValueError):  # not JSON on its own: the legacy format, maybe
        record = _loads(first, number)
    if isinstance(record, dict) and "kind" in record:
        yield from _json_lines(first, stream, limit, number)
    else:
        yield from _concatenated_objects(first, stream, limit, number)


def _read_line(stream: IO[bytes], limit: int, number: int) -> bytes:
    """One line with its newline (without it at the end of the stream), read in pieces."""
    pieces: list[bytes] = []
    size = 0
    while True:
        want = min(_PIECE_BYTES, limit + 1 - size)
        piece = stream.readline(want)
        size += len(piece)
        if size > limit:
            raise DumpFormatError(f"line longer than {limit} bytes (the longest record)", number)
        pieces.append(piece)
        if len(piece) < want or piece.endswith(b"\n"):
            return pieces[0] if len(pieces) == 1 else b"".join(pieces)


def _loads(raw: bytes, number: int) -> Any:
    """Parse one line with orjson (C; about three times faster than ``json`` on a data
    record). Integers are 64-bit in a dump (docs/dump-format.md, Limits); orjson reads a
    larger one as a float, which no integer column takes.

    Raises ``ValueError`` (invalid JSON or UTF-8) or :class:`DumpFormatError` (too deep).
    """
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        if "depth limit" in str(exc):
            raise DumpFormatError("JSON nested too deeply", number) from None
        raise


def _json_lines(first: bytes, stream: IO[bytes], limit: int, number: int) -> Iterator[Entry]:
    decoders = DataDecoders()
    line = first
    while line:
        if not line.endswith(b"\n"):
            # The last line of a complete dump ends with a newline; this one was cut.
            raise DumpIntegrityError("the dump is truncated in the middle of a line", number)
        raw = line[:-1]
        record = decoders.decode(raw)
        if record is None:
            try:
                record = _loads(raw, number)
            except DumpFormatError:
                raise
            except ValueError as exc:  # UnicodeDecodeError included
                raise DumpFormatError(f"not valid JSON ({exc})", number) from None
            if isinstance(record, dict) and record.get("kind") == "table":
                decoders.declare(record)
        yield number, record, raw
        number += 1
        line = _read_line(stream, limit, number)


def _decode(text: codecs.IncrementalDecoder, data: bytes, line: int, final: bool) -> str:
    try:
        return text.decode(data, final=final)
    except UnicodeDecodeError as exc:
        raise DumpFormatError(f"not valid UTF-8 ({exc.reason})", line) from None


def _concatenated_objects(
    first: bytes, stream: IO[bytes], limit: int, number: int
) -> Iterator[Entry]:
    """JSON objects one after another, possibly spread over lines (ZenML's legacy writer).

    An object that is not complete yet is parsed again only once the buffer has doubled, so
    the work stays linear in the object's size; one larger than ``limit`` is refused.
    """
    decoder = json.JSONDecoder()
    text = codecs.getincrementaldecoder("utf-8")()
    buffer = _decode(text, first, number, final=False)
    line = number
    eof = False
    tried = 0  # length of the buffer at the last attempt that found the object incomplete
    while True:
        stripped = buffer.lstrip()
        line += buffer[: len(buffer) - len(stripped)].count("\n")
        buffer = stripped
        if not buffer and eof:
            return
        if eof or len(buffer) >= 2 * tried or len(buffer) > limit:
            try:
                record, end = decoder.raw_decode(buffer)
            except RecursionError:
                raise DumpFormatError("JSON nested too deeply", line) from None
            except ValueError:
                if eof:
                    raise DumpIntegrityError("the dump ends inside a JSON object", line) from None
                if len(buffer) > limit:
                    raise DumpFormatError(
                        f"a JSON object is longer than {limit} bytes", line
                    ) from None
                tried = len(buffer)
            else:
                yield line, record, None
                line += buffer[:end].count("\n")
                buffer = buffer[end:]
                tried = 0
                continue
        chunk = stream.read(_LEGACY_BUFFER)
        eof = not chunk
        buffer += _decode(text, chunk, line, final=eof)
