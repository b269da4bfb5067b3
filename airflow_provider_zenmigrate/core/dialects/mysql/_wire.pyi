"""MySQL row packets joined, in C (_wire.c)."""

def joined(
    buffer: bytearray, pos: int, end: int, seq: int, out: bytearray, count: int, room: int, /
) -> tuple[int, int, int]: ...
