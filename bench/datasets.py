"""Benchmark datasets, generated on the server itself (fast, no client round trips).

(a)/(b) ``mixed``: one table of mixed types, N rows (a: N, b: 2N).
(c) ``many``: 200 small tables of 1,000 rows, each with a foreign key to the one before.
(d) ``blobs``: one table of 50,000 rows of 20 KiB (10 KiB BLOB/BYTEA + 10 KiB TEXT).
(e) ``mixed`` again, 10N rows: one large table, for the parallel (multi-part) dumps.
(f) ``wide``: 50 tables ``m00``..``m49`` of (a)'s shape, N/10 rows each.

:func:`checksums` fingerprints every table (MariaDB ``CHECKSUM TABLE``, PostgreSQL an md5
over the rows' text in key order), so a restore can be compared with its source.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

MIXED = {
    "mysql": [
        """CREATE TABLE {name} (
            id BIGINT NOT NULL PRIMARY KEY,
            created DATETIME(6) NOT NULL,
            label VARCHAR(255) NOT NULL,
            amount DECIMAL(12,4) NOT NULL,
            doc JSON,
            token VARBINARY(64),
            flag BOOLEAN NOT NULL
        )""",
        """INSERT INTO {name}
           SELECT seq,
                  TIMESTAMP('2024-01-01') + INTERVAL seq SECOND
                      + INTERVAL MOD(seq, 1000000) MICROSECOND,
                  CONCAT('label-', seq, '-', REPEAT(SUBSTR(MD5(seq), 1, 8), 10)),
                  MOD(seq, 100000) / 7.0,
                  JSON_OBJECT('n', seq, 'tags', JSON_ARRAY('a', 'b', MOD(seq, 7)),
                              'ok', MOD(seq, 2) = 0),
                  UNHEX(SHA2(seq, 256)),
                  MOD(seq, 2)
           FROM seq_1_to_{n}""",
    ],
    "postgresql": [
        """CREATE TABLE {name} (
            id BIGINT NOT NULL PRIMARY KEY,
            created TIMESTAMP(6) NOT NULL,
            label VARCHAR(255) NOT NULL,
            amount NUMERIC(12,4) NOT NULL,
            doc JSONB,
            token BYTEA,
            flag BOOLEAN NOT NULL
        )""",
        """INSERT INTO {name}
           SELECT i,
                  timestamp '2024-01-01' + i * interval '1 second'
                      + mod(i, 1000000) * interval '1 microsecond',
                  'label-' || i || '-' || repeat(substr(md5(i::text), 1, 8), 10),
                  mod(i, 100000) / 7.0,
                  jsonb_build_object('n', i, 'tags', jsonb_build_array('a', 'b', mod(i, 7)),
                                     'ok', mod(i, 2) = 0),
                  sha256(i::text::bytea),
                  mod(i, 2) = 0
           FROM generate_series(1, {n}) i""",
    ],
}

# (c): table t{i} references t{i-1}; {name}, {parent} and {fk} are filled in per table.
MANY = {
    "mysql": [
        """CREATE TABLE {name} (
            id BIGINT NOT NULL PRIMARY KEY,
            parent_id BIGINT{fk},
            name VARCHAR(64) NOT NULL,
            amount DECIMAL(10,2) NOT NULL,
            created DATETIME NOT NULL
        )""",
        """INSERT INTO {name}
           SELECT seq, {parent_value}, CONCAT('row-', seq), seq / 3,
                  TIMESTAMP('2024-01-01') + INTERVAL seq MINUTE
           FROM seq_1_to_{n}""",
    ],
    "postgresql": [
        """CREATE TABLE {name} (
            id BIGINT NOT NULL PRIMARY KEY,
            parent_id BIGINT{fk},
            name VARCHAR(64) NOT NULL,
            amount NUMERIC(10,2) NOT NULL,
            created TIMESTAMP NOT NULL
        )""",
        """INSERT INTO {name}
           SELECT i, {parent_value}, 'row-' || i, round(i / 3.0, 2),
                  timestamp '2024-01-01' + i * interval '1 minute'
           FROM generate_series(1, {n}) i""",
    ],
}

BLOBS = {
    "mysql": [
        """CREATE TABLE blobs (
            id BIGINT NOT NULL PRIMARY KEY,
            payload LONGBLOB NOT NULL,
            note LONGTEXT NOT NULL
        )""",
        # 64 bytes x 160 = 10 KiB of binary, 32 characters x 320 = 10 KiB of text.
        """INSERT INTO blobs
           SELECT seq, REPEAT(UNHEX(SHA2(seq, 512)), 160), REPEAT(MD5(seq), 320)
           FROM seq_1_to_{n}""",
    ],
    "postgresql": [
        """CREATE TABLE blobs (
            id BIGINT NOT NULL PRIMARY KEY,
            payload BYTEA NOT NULL,
            note TEXT NOT NULL
        )""",
        """INSERT INTO blobs
           SELECT i, decode(repeat(encode(sha512(i::text::bytea), 'hex'), 160), 'hex'),
                  repeat(md5(i::text), 320)
           FROM generate_series(1, {n}) i""",
    ],
}


def backend(engine: Engine) -> str:
    return "mysql" if engine.url.get_backend_name() in ("mysql", "mariadb") else "postgresql"


def server_version(engine: Engine) -> str:
    """The first two words of ``SELECT version()`` ("PostgreSQL 15.20"), heading its rows."""
    with engine.connect() as conn:
        return " ".join(str(conn.exec_driver_sql("SELECT version()").scalar()).split()[:2])


def _run(conn: Connection, statements: list[str], **values: object) -> None:
    for statement in statements:
        conn.exec_driver_sql(statement.format(**values))


def create_mixed(engine: Engine, rows: int, name: str = "mixed") -> None:
    with engine.begin() as conn:
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS {name}")
        _run(conn, MIXED[backend(engine)], n=rows, name=name)


def create_wide(engine: Engine, tables: int = 50, rows: int = 100_000) -> None:
    """(f): many tables of (a)'s shape, so that parallel workers can take whole tables."""
    for i in range(tables):
        create_mixed(engine, rows, f"m{i:02d}")


def create_many(engine: Engine, tables: int = 200, rows: int = 1000) -> None:
    kind = backend(engine)
    with engine.begin() as conn:
        for i in range(tables):
            name = f"t{i:03d}"
            fk = f" REFERENCES t{i - 1:03d} (id)" if i else ""
            # Every row points at an existing parent: 1 + (id mod rows).
            parent = f"1 + MOD({'seq' if kind == 'mysql' else 'i'}, {rows})" if i else "NULL"
            _run(conn, MANY[kind], name=name, fk=fk, parent_value=parent, n=rows)


def create_blobs(engine: Engine, rows: int = 50_000) -> None:
    with engine.begin() as conn:
        _run(conn, BLOBS[backend(engine)], n=rows)


def steady(engine: Engine) -> None:
    """Leave freshly generated tables as a production database's are before the first timed
    command. On PostgreSQL, VACUUM (FREEZE, ANALYZE) writes the hint bits and visibility map
    that the first reader would otherwise write, and leaves autovacuum nothing to start on
    these tables in the middle of a later command (on another dataset's, too)."""
    if backend(engine) == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM (FREEZE, ANALYZE)")


def data_bytes(engine: Engine) -> int:
    """The base tables' data as the server counts it: the denominator of CPU seconds per GB.

    MariaDB: ``DATA_LENGTH`` (InnoDB's clustered index, which holds the rows; off-page BLOBs
    included), after ``ANALYZE TABLE`` so that it is not a stale estimate. PostgreSQL:
    ``pg_table_size`` (heap, TOAST, free space and visibility maps; no indexes).
    """
    with engine.connect() as conn:
        if backend(engine) == "mysql":
            names = conn.scalars(
                text(
                    "SELECT TABLE_NAME FROM information_schema.TABLES "
                    "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_TYPE = 'BASE TABLE'"
                )
            ).all()
            if names:
                conn.exec_driver_sql("ANALYZE TABLE " + ", ".join(f"`{n}`" for n in names)).all()
            return int(
                conn.exec_driver_sql(
                    "SELECT COALESCE(SUM(DATA_LENGTH), 0) FROM information_schema.TABLES "
                    "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_TYPE = 'BASE TABLE'"
                ).scalar()
                or 0
            )
        return int(
            conn.exec_driver_sql(
                "SELECT COALESCE(SUM(pg_table_size(c.oid)), 0) FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = 'public' AND c.relkind = 'r'"
            ).scalar()
            or 0
        )


def checksums(engine: Engine) -> dict[str, str]:
    """A fingerprint of every base table's rows: equal when the data is equal."""
    with engine.connect() as conn:
        if backend(engine) == "mysql":
            names = conn.scalars(
                text(
                    "SELECT TABLE_NAME FROM information_schema.TABLES "
                    "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_TYPE = 'BASE TABLE'"
                )
            ).all()
            if not names:
                return {}
            listed = ", ".join(f"`{n}`" for n in names)
            rows = conn.exec_driver_sql(f"CHECKSUM TABLE {listed}").all()
            return {str(name).split(".", 1)[1]: str(value) for name, value in rows}
        names = conn.scalars(
            text("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename")
        ).all()
        result = {}
        for name in names:
            # In the rows' own hash order: any table, with a key named ``id`` or not ((g)).
            result[name] = str(
                conn.exec_driver_sql(
                    "SELECT count(*) || ':' || md5(string_agg(h, '' ORDER BY h)) "
                    f'FROM (SELECT md5(t::text) AS h FROM "{name}" t) r'
                ).scalar()
            )
        return result
