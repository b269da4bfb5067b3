"""A data record's rows on their way to a restore writer.

Writers whose server bulk-loads tab-separated text (MariaDB's LOAD DATA, PostgreSQL's
COPY) ask for that text first (:meth:`Chunk.bulk`): for a record in the backup's own shape
it comes straight from the record's line, in C, with no Python object per value. Any other
record, and any writer, can still take the values column by column (:meth:`Chunk.columns`),
the reference way.
"""

from __future__ import annotations

from collections.abc import Sequence
from operator import itemgetter
from typing import Any

from .typed_data import DecodedRows


class Chunk:
    """One data record's rows for the table columns ``names`` (in that order)."""

    def __init__(self, rows: Sequence[dict[str, Any]], names: Sequence[str]) -> None:
        self.rows = rows
        self.names = list(names)
        #: The rows as typed_data decoded them for exactly these columns, if they were.
        self._typed = (
            rows if isinstance(rows, DecodedRows) and list(rows.names) == self.names else None
        )

    def __len__(self) -> int:
        return len(self.rows)

    def columns(self) -> list[Sequence[Any]]:
        """The values column by column, still in the dump's encoding; picked in C with no
        Python call per value (faster than transposing row tuples; docs/performance.md)."""
        if self._typed is not None:
            return self._typed.columns()
        return [tuple(map(itemgetter(name), self.rows)) for name in self.names]

    def bulk(self, kinds: bytes) -> bytes | None:
        """The rows as bulk text, each column's field of the kind ``kinds`` names (see
        _bulk.c), or None: then the writer takes :meth:`columns`."""
        return None if self._typed is None else self._typed.bulk(kinds)

    def binary(self, kinds: bytes) -> bytes | None:
        """The rows as the tuples of PostgreSQL's binary COPY (see _bulk.c), or None: then
        the writer sends them as text."""
        return None if self._typed is None else self._typed.binary(kinds)

    @property
    def line_bytes(self) -> int:
        """The size of the record's rows in the dump, where known (else 0)."""
        return 0 if self._typed is None else self._typed.line_bytes
