"""Benchmark datasets, generated on the server itself (fast, no client round trips)."""

from __future__ import annotations

from sqlalchemy.engine import Engine

# Dataset (a)/(b): one table of mixed types, N rows.
MIXED = {
    "mysql": [
        """CREATE TABLE mixed (
            id BIGINT NOT NULL PRIMARY KEY,
            created DATETIME(6) NOT NULL,
            label VARCHAR(255) NOT NULL,
            amount DECIMAL(12,4) NOT NULL,
            doc JSON,
            token VARBINARY(64),
            flag BOOLEAN NOT NULL
        )""",
        """INSERT INTO mixed
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
        """CREATE TABLE mixed (
            id BIGINT NOT NULL PRIMARY KEY,
            created TIMESTAMP(6) NOT NULL,
            label VARCHAR(255) NOT NULL,
            amount NUMERIC(12,4) NOT NULL,
            doc JSONB,
            token BYTEA,
            flag BOOLEAN NOT NULL
        )""",
        """INSERT INTO mixed
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


def create_mixed(engine: Engine, rows: int) -> None:
    backend = "mysql" if engine.url.get_backend_name() in ("mysql", "mariadb") else "postgresql"
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE IF EXISTS mixed")
        for statement in MIXED[backend]:
            conn.exec_driver_sql(statement.format(n=rows))
