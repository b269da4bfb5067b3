"""MySQL row packets joined, in C (_wire.c)."""

def joined(
    buffer: bytearray, pos: int, end: int, seq: int, out: bytearray, count: int, room: int, /
) -> tuple[int, int, int]: ...
def rendered(
    buffer: bytearray,
    pos: int,
    end: int,
    seq: int,
    out: bytearray,
    count: int,
    room: int,
    kinds: bytes,
    keys: tuple[bytes, ...],
    /,
) -> tuple[int, int, int, int]: ...
