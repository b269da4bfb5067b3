"""PostgreSQL binary COPY rows written as JSON, in C (_copy_out.c)."""

def fetch(
    conn: int,
    getcopydata: int,
    freemem: int,
    kinds: bytes,
    keys: tuple[bytes, ...],
    header: bool,
    max_rows: int,
    max_bytes: int,
    /,
) -> tuple[int, int, bytes, bool]: ...
