"""Data records into bulk text, in C (_bulk.c)."""

from typing import overload

@overload
def rows(line: bytes, offset: int, keys: tuple[bytes, ...], kinds: None, /) -> int | None: ...
@overload
def rows(line: bytes, offset: int, keys: tuple[bytes, ...], kinds: bytes, /) -> bytes | None: ...
def binary_rows(
    line: bytes, offset: int, keys: tuple[bytes, ...], kinds: bytes, /
) -> bytes | None: ...
