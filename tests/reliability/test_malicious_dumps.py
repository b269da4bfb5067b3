"""A catalogue of malicious dumps, each correctly sealed: every one is refused by the safety
rules (not by the digest) with an error naming the record and its line, and neither the
restore target nor a victim beside it (another database, schema or file) changes.

The catalogue is the rules of docs/dump-format.md, "What a dump may create", seen from the
attacker's side; each case runs on every dialect whose SQL it is written in. The lexical rules
must hold even for a caller who trusts routines, so the cases restore with allow_routines=True,
except those whose routine only the default refusal of routines can stop.
"""

from __future__ import annotations

import gzip
import json
import time
import tracemalloc
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, cast

import pytest
import sqlalchemy
from sqlalchemy.pool import NullPool

from airflow_provider_zenmigrate.core.dump.reader import MAX_LINE_BYTES, entries_from_stream
from airflow_provider_zenmigrate.core.dump.records import DumpDigest
from airflow_provider_zenmigrate.core.errors import (
    DumpError,
    DumpFormatError,
    UnsafeDumpError,
)
from airflow_provider_zenmigrate.core.restore import restore_entries
from airflow_provider_zenmigrate.core.storage import open_for_read
from tests.support.dumps import sealed
from tests.support.hostile import (
    ROWS,
    LazyStream,
    Record,
    World,
    lazy_worlds,
    line_of,
    world,
)
from tests.support.servers import DIALECTS

ALL = tuple(DIALECTS)
MY, PG, LITE = ("mysql",), ("postgresql",), ("sqlite",)


@pytest.fixture(scope="module")
def worlds(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], World]]:
    """One world per dialect, made when a test first needs it, shared by the module."""
    with lazy_worlds(tmp_path_factory, "hostile") as get:
        yield get


# -- forging ----------------------------------------------------------------------------------
def with_table_stmt(records: list[Record], stmt: str, like_victim: bool = False) -> list[Record]:
    """The table record of ``plain`` with another create_stmt; ``like_victim`` also gives
    ``plain`` the victim's one column ``x`` (and rows for it), so the statement would work."""
    out = []
    for r in records:
        if r["kind"] == "table" and r["table"] == "plain":
            r = {**r, "create_stmt": stmt}
            if like_victim:
                r["columns"], r["key"], r["options"] = [{"name": "x", "codec": "native"}], [], {}
        elif like_victim and r["kind"] == "data" and r["table"] == "plain":
            r = {**r, "data": [{"x": 1 + n % 2} for n, _ in enumerate(r["data"])]}
        elif like_victim and r["kind"] == "object" and r.get("table") == "plain":
            continue  # its index or trigger names a column plain no longer has
        out.append(r)
    return out


def with_object(
    records: list[Record], object_type: str, name: str, stmt: str, phase: str = "post"
) -> list[Record]:
    """An object record added where the backup puts that phase's objects."""
    record = {
        "kind": "object",
        "phase": phase,
        "object_type": object_type,
        "name": name,
        "table": "plain" if object_type in ("trigger", "index", "rule", "constraint") else None,
        "create_stmt": stmt,
    }
    body = [r for r in records if r["kind"] != "trailer"]
    at = 1 if phase == "pre" else len(body)
    return [*body[:at], record, *body[at:]]


@dataclass(frozen=True)
class Case:
    """A forged dump: which dialects, how to make it from the real records, what the error
    must name and which record (predicate) it must point at."""

    dialects: tuple[str, ...]
    forge: Callable[[World], list[Record]]
    names: str
    record: Callable[[Record], bool]
    error: type[DumpError] = UnsafeDumpError
    allow_routines: bool = True  # False: a routine the lexical rules cannot see through


def table_case(
    dialects: tuple[str, ...], stmt: Callable[[World], str], like_victim: bool = False
) -> Case:
    return Case(
        dialects,
        lambda w: with_table_stmt(w.records, stmt(w), like_victim),
        "'plain'",
        lambda r: r.get("kind") == "table" and r.get("table") == "plain",
    )


def object_case(
    dialects: tuple[str, ...],
    object_type: str,
    name: str,
    stmt: Callable[[World], str],
    phase: str = "post",
) -> Case:
    return Case(
        dialects,
        lambda w: with_object(w.records, object_type, name, stmt(w), phase),
        repr(name),
        lambda r: r.get("kind") == "object" and r.get("name") == name,
    )


def called_during_load(body: str) -> Case:
    """A PL/pgSQL function running ``body`` (a write into the victim schema), called by a
    CHECK constraint on ``plain`` for every row while the restore loads it. Its body is a
    string no lexical rule reads: only the refusal of routines stops it."""

    def forge(w: World) -> list[Record]:
        function = (
            "CREATE FUNCTION f_spy(n int) RETURNS boolean LANGUAGE plpgsql AS $$ BEGIN "
            f"{body}; RETURN true; END $$"
        )
        records = with_object(w.records, "function", "f_spy", function)
        check = "ALTER TABLE plain ADD CONSTRAINT c_spy CHECK (f_spy(id))"
        return with_object(records, "constraint", "c_spy", check)

    return Case(
        PG,
        forge,
        "function 'f_spy'",
        lambda r: r.get("kind") == "object" and r.get("name") == "f_spy",
        allow_routines=False,
    )


# How the function writes into the victim: plain SQL, or SQL built at run time.
ROUTINE_WRITES = {
    "sql": "INSERT INTO victim.keep VALUES (n)",
    "execute": "EXECUTE format('INSERT INTO %I.keep VALUES (%s)', 'vic' || 'tim', n)",
}


def v(w: World) -> str:
    """How a dump names the victim (a database, a schema, an attachable file)."""
    return w.victim.name


def victim_drop(w: World) -> str:
    return {
        "mysql": f"DROP DATABASE `{v(w)}`",
        "postgresql": "DROP SCHEMA victim CASCADE",
        "sqlite": "DROP TABLE existing",
    }[w.dialect]


CASES: dict[str, Case] = {
    # statements that are not a single CREATE of the named table
    "second-statement": table_case(
        ALL, lambda w: f"CREATE TABLE plain (id INT PRIMARY KEY, note TEXT); {victim_drop(w)}"
    ),
    "second-statement-after-comment": table_case(
        ALL,
        lambda w: f"CREATE TABLE plain (id INT PRIMARY KEY, note TEXT) /* x */;\n{victim_drop(w)}",
    ),
    "drop": table_case(ALL, victim_drop),
    "alter": table_case(ALL, lambda w: "ALTER TABLE existing ADD COLUMN plain INT"),
    "grant": table_case(
        MY + PG,
        lambda w: (
            "GRANT ALL ON *.* TO 'nobody'@'%'"
            if w.dialect == "mysql"
            else "GRANT ALL ON SCHEMA victim TO PUBLIC"
        ),
    ),
    "load-data": table_case(
        MY + PG,
        lambda w: (
            "LOAD DATA INFILE '/etc/passwd' INTO TABLE plain"
            if w.dialect == "mysql"
            else "COPY plain FROM '/etc/passwd'"
        ),
    ),
    "into-outfile": table_case(
        ALL,
        lambda w: {
            "mysql": "SELECT * FROM existing INTO OUTFILE '/tmp/zm-hostile-out'",
            "postgresql": "COPY existing TO '/tmp/zm-hostile-out'",
            "sqlite": "VACUUM INTO '/tmp/zm-hostile-out.db'",
        }[w.dialect],
    ),
    "attach": table_case(LITE, lambda w: f"ATTACH DATABASE '{w.victim.url.database}' AS victim"),
    "create-as-select": table_case(
        ALL, lambda w: f"CREATE TABLE plain AS SELECT * FROM {v(w)}.keep", like_victim=True
    ),
    "create-like-other": table_case(MY, lambda w: f"CREATE TABLE plain LIKE `{v(w)}`.keep"),
    "qualified-table": table_case(
        ALL, lambda w: f"CREATE TABLE {v(w)}.plain (id INT PRIMARY KEY, note TEXT)"
    ),
    "executable-comment": table_case(
        MY,
        lambda w: (
            f"CREATE /*!50000 OR REPLACE TABLE `{v(w)}`.keep (x INT) -- */ "
            "TABLE plain (id INT PRIMARY KEY, note TEXT)"
        ),
    ),
    "merge-over-other": table_case(
        MY,
        lambda w: (
            f"CREATE TABLE plain (x INT) ENGINE=MERGE UNION=(`{v(w)}`.keep) INSERT_METHOD=LAST"
        ),
        like_victim=True,
    ),
    "federated": table_case(
        MY,
        lambda w: (
            "CREATE TABLE plain (id INT PRIMARY KEY, note TEXT) ENGINE=FEDERATED "
            f"CONNECTION='mysql://root@127.0.0.1:3306/{v(w)}/keep'"
        ),
    ),
    "data-directory": table_case(
        MY,
        lambda w: "CREATE TABLE plain (id INT PRIMARY KEY, note TEXT) DATA DIRECTORY='/tmp'",
    ),
    "inherits-other": table_case(
        PG, lambda w: "CREATE TABLE plain (x int) INHERITS (victim.parent)", like_victim=True
    ),
    "partition-of-other": table_case(
        PG,
        lambda w: "CREATE TABLE plain PARTITION OF victim.p FOR VALUES IN (1, 2)",
        like_victim=True,
    ),
    "like-other": table_case(
        PG, lambda w: "CREATE TABLE plain (LIKE victim.keep INCLUDING ALL)", like_victim=True
    ),
    # names: the record's name must be what the statement creates
    "name-injection": Case(
        ALL,
        lambda w: [
            {**r, "table": "plain`; DROP DATABASE x; --"}
            if r.get("table") == "plain" and r["kind"] in ("table", "data")
            else r
            for r in w.records
        ],
        "creates 'plain'",
        lambda r: r.get("kind") == "table" and str(r.get("table")).startswith("plain`"),
    ),
    "nul-in-table-name": Case(
        ALL,
        lambda w: [
            {**r, "table": "pl\x00ain"} if r.get("table") == "plain" else r for r in w.records
        ],
        "'pl\\x00ain'",
        lambda r: r.get("kind") == "table" and r.get("table") == "pl\x00ain",
        DumpFormatError,
    ),
    "nul-in-column-name": Case(
        ALL,
        lambda w: [
            {**r, "columns": [{**c, "name": c["name"] + "\x00"} for c in r["columns"]]}
            if r["kind"] == "table" and r["table"] == "plain"
            else r
            for r in w.records
        ],
        "'plain'",
        lambda r: r.get("kind") == "table" and r.get("table") == "plain",
        DumpFormatError,
    ),
    # views, triggers and routines whose bodies reach another database or schema
    "view-reads-other": object_case(
        ALL, "view", "v_spy", lambda w: f"CREATE VIEW v_spy AS SELECT * FROM {v(w)}.keep"
    ),
    "view-joins-other": object_case(
        ALL,
        "view",
        "v_join",
        lambda w: f"CREATE VIEW v_join AS SELECT p.id FROM plain p, {v(w)}.keep k",
    ),
    "view-subquery-other": object_case(
        ALL,
        "view",
        "v_sub",
        lambda w: (
            "CREATE VIEW v_sub AS SELECT id FROM plain WHERE EXISTS "
            f"(SELECT 1 FROM existing JOIN {v(w)}.keep ON 1 = 1)"
        ),
    ),
    "view-column-of-other": object_case(
        MY + PG,
        "view",
        "v_col",
        lambda w: f"CREATE VIEW v_col AS SELECT {v(w)}.keep.x FROM plain",
    ),
    "view-calls-other": object_case(
        MY + PG, "view", "v_call", lambda w: f"CREATE VIEW v_call AS SELECT {v(w)}.f(1) AS x"
    ),
    "view-reads-files": object_case(
        MY + PG,
        "view",
        "v_file",
        lambda w: (
            "CREATE VIEW v_file AS SELECT "
            + (
                "LOAD_FILE('/etc/passwd')"
                if w.dialect == "mysql"
                else "pg_read_file('/etc/passwd')"
            )
        ),
    ),
    "view-runs-sql-string": object_case(
        PG,
        "view",
        "v_xml",
        lambda w: (
            "CREATE VIEW v_xml AS SELECT query_to_xml("
            "'DELETE FROM victim.keep RETURNING *', true, true, '') AS x"
        ),
    ),
    "view-other-database-link": object_case(
        PG,
        "view",
        "v_link",
        lambda w: "CREATE VIEW v_link AS SELECT * FROM dblink_exec('dbname=postgres', 'SELECT 1')",
    ),
    "view-bumps-other-sequence": object_case(
        PG, "view", "v_seq", lambda w: "CREATE VIEW v_seq AS SELECT nextval('victim.seq') AS n"
    ),
    "view-dollar-quote-trick": object_case(
        PG,
        "view",
        "v_dq",
        lambda w: "CREATE VIEW v_dq AS SELECT $a$ $$ $a$ AS s FROM victim.keep -- $$",
    ),
    "view-unicode-escape-name": object_case(
        PG, "view", "v_u", lambda w: 'CREATE VIEW v_u AS SELECT * FROM U&"\\0076ictim".keep'
    ),
    "view-backslash-trick": object_case(
        PG + LITE,
        "view",
        "v_bs",
        lambda w: "CREATE VIEW v_bs AS SELECT '\\' AS s FROM victim.keep --'",
    ),
    "trigger-writes-other": object_case(
        MY + LITE,
        "trigger",
        "t_spy",
        lambda w: (
            f"CREATE TRIGGER t_spy AFTER INSERT ON plain FOR EACH ROW "
            f"{'BEGIN ' if w.dialect == 'sqlite' else ''}INSERT INTO {v(w)}.keep VALUES (NEW.id)"
            f"{'; END' if w.dialect == 'sqlite' else ''}"
        ),
    ),
    "trigger-updates-list-with-other": object_case(
        MY,
        "trigger",
        "t_multi",
        lambda w: (
            "CREATE TRIGGER t_multi AFTER INSERT ON plain FOR EACH ROW "
            f"UPDATE existing, `{v(w)}`.keep SET x = 0"
        ),
    ),
    "trigger-hidden-by-hash-comment": object_case(
        MY,
        "trigger",
        "t_hash",
        lambda w: (
            "CREATE TRIGGER t_hash AFTER INSERT ON plain FOR EACH ROW "
            f"INSERT INTO #\n `{v(w)}`.keep VALUES (NEW.id)"
        ),
    ),
    "trigger-hidden-by-minus-minus": object_case(
        MY,
        "trigger",
        "t_mm",
        lambda w: (
            "CREATE TRIGGER t_mm AFTER INSERT ON plain FOR EACH ROW "
            f"INSERT INTO existing SELECT 1 --1, (SELECT x FROM `{v(w)}`.keep LIMIT 1)"
        ),
    ),
    "trigger-on-other": object_case(
        ALL,
        "trigger",
        "t_on",
        lambda w: (
            f"CREATE TRIGGER t_on AFTER INSERT ON {v(w)}.keep FOR EACH ROW "
            + {
                "mysql": "SET @x = 1",
                "postgresql": "EXECUTE FUNCTION pg_catalog.now()",
                "sqlite": "BEGIN SELECT 1; END",
            }[w.dialect]
        ),
    ),
    "rule-writes-other": object_case(
        PG,
        "rule",
        "r_spy",
        lambda w: (
            "CREATE RULE r_spy AS ON INSERT TO plain DO ALSO "
            "INSERT INTO victim.keep VALUES (NEW.id)"
        ),
    ),
    "event-writes-other": object_case(
        MY,
        "event",
        "e_spy",
        lambda w: f"CREATE EVENT e_spy ON SCHEDULE EVERY 1 DAY DO DELETE FROM `{v(w)}`.keep",
    ),
    "procedure-drops-database": object_case(
        MY, "procedure", "p_drop", lambda w: f"CREATE PROCEDURE p_drop() DROP DATABASE `{v(w)}`"
    ),
    "procedure-dynamic-sql": object_case(
        MY,
        "procedure",
        "p_dyn",
        lambda w: (
            "CREATE PROCEDURE p_dyn() BEGIN SET @q = CONCAT('DROP ', 'DATABASE x'); "
            "PREPARE s FROM @q; EXECUTE s; END"
        ),
    ),
    "procedure-grants": object_case(
        MY,
        "procedure",
        "p_grant",
        lambda w: "CREATE PROCEDURE p_grant() GRANT ALL ON *.* TO 'nobody'@'%'",
    ),
    "procedure-server-settings": object_case(
        MY,
        "procedure",
        "p_global",
        lambda w: "CREATE PROCEDURE p_global() SET GLOBAL event_scheduler = ON",
    ),
    "procedure-outfile": object_case(
        MY,
        "procedure",
        "p_out",
        lambda w: "CREATE PROCEDURE p_out() SELECT 1 INTO OUTFILE '/tmp/zm-hostile-out'",
    ),
    "unknown-object-type": object_case(
        MY, "extension", "dblink", lambda w: "CREATE EXTENSION dblink"
    ),
    "event-trigger": object_case(
        PG,
        "event",
        "trigger",
        lambda w: "CREATE EVENT TRIGGER et ON ddl_command_start EXECUTE FUNCTION f()",
    ),
    "extension-other-servers": object_case(
        PG, "extension", "dblink", lambda w: 'CREATE EXTENSION IF NOT EXISTS "dblink"', "pre"
    ),
    "untrusted-language": object_case(
        PG,
        "function",
        "f_os",
        lambda w: "CREATE FUNCTION f_os() RETURNS int LANGUAGE plpython3u AS $$ return 1 $$",
        "pre",
    ),
    "function-search-path-other": object_case(
        PG,
        "function",
        "f_path",
        lambda w: (
            "CREATE FUNCTION f_path() RETURNS int LANGUAGE sql "
            "SET search_path TO victim AS $$ SELECT 1 $$"
        ),
        "pre",
    ),
    "index-calls-other": object_case(
        PG, "index", "ix_spy", lambda w: "CREATE INDEX ix_spy ON plain ((victim.f(id)))"
    ),
    # routine bodies the rules cannot read, run during the load: refused as routines
    **{
        f"check-calls-function-{how}": called_during_load(body)
        for how, body in ROUTINE_WRITES.items()
    },
}
PARAMS = [
    pytest.param(name, dialect, id=f"{name}-{dialect}")
    for name, case in CASES.items()
    for dialect in case.dialects
]


@pytest.mark.parametrize(("case", "dialect"), PARAMS)
def test_malicious_dump_is_refused(worlds: Callable[[str], World], case: str, dialect: str) -> None:
    w = worlds(dialect)
    spec = CASES[case]
    data = sealed(spec.forge(w))
    path = w.folder / f"{case}.jsonl"
    path.write_bytes(data)
    before = w.snapshot()
    with pytest.raises(spec.error) as refused:
        w.target.restore_database_from_file(str(path), allow_routines=spec.allow_routines)
    w.target.dispose()
    message = str(refused.value)
    assert spec.names in message, message
    assert refused.value.line == line_of(data, spec.record), message
    assert message.startswith(f"line {refused.value.line}: ")
    if not spec.allow_routines:
        assert "allow_routines=True" in message, message
    assert w.snapshot() == before


@pytest.mark.parametrize("write", ROUTINE_WRITES)
def test_allowed_routine_runs_during_the_load(
    tmp_path_factory: pytest.TempPathFactory, write: str
) -> None:
    """The dumps above are real attacks: a caller who allows routines trusts their bodies,
    and the function does write into the victim while the restore loads the table (which is
    why routines are refused by default)."""
    with world("postgresql", tmp_path_factory.mktemp(f"trusted-{write}")) as w:
        path = w.folder / "trusted.jsonl"
        path.write_bytes(sealed(CASES[f"check-calls-function-{write}"].forge(w)))
        w.target.restore_database_from_file(str(path), allow_routines=True)
        w.target.dispose()
        engine = sqlalchemy.create_engine(w.target.url, poolclass=NullPool)
        with engine.connect() as conn:
            written = conn.exec_driver_sql("SELECT x FROM victim.keep ORDER BY x").scalars().all()
        engine.dispose()
        assert written == [*range(1, ROWS + 1), 42]


# -- JSON-level bombs ------------------------------------------------------------------------
def _raw_sealed(lines: list[bytes], shapes: list[Record]) -> bytes:
    """Seal raw lines (which Python's json could not write) with a correct trailer."""
    digest = DumpDigest()
    for line, shape in zip(lines, shapes, strict=True):
        digest.add_line(line, shape)
    trailer = json.dumps(digest.trailer(), separators=(",", ":")).encode()
    return b"".join(line + b"\n" for line in lines) + trailer + b"\n"


def _bomb_dump(w: World, depth: int) -> tuple[bytes, int]:
    """A sealed dump whose first data record of ``plain`` holds a value nested ``depth``
    arrays deep; returns it and the bomb's line number."""
    body = [r for r in w.records if r["kind"] != "trailer"]
    at = next(i for i, r in enumerate(body) if r["kind"] == "data" and r["table"] == "plain")
    lines = [json.dumps(r, separators=(",", ":"), ensure_ascii=False).encode() for r in body]
    row = body[at]["data"][0]
    bomb = b"[" * depth + b"1" + b"]" * depth
    lines[at] = (
        b'{"kind":"data","table":"plain","data":[{"id":'
        + json.dumps(row["id"]).encode()
        + b',"note":'
        + bomb
        + b"}]}"
    )
    shapes = [*body[:at], {"kind": "data", "table": "plain", "data": [None]}, *body[at + 1 :]]
    return _raw_sealed(lines, shapes), at + 1


@pytest.mark.parametrize("dialect", DIALECTS)
def test_json_nesting_bomb_is_a_format_error(worlds: Callable[[str], World], dialect: str) -> None:
    w = worlds(dialect)
    data, line = _bomb_dump(w, 100_000)
    path = w.folder / "bomb.jsonl"
    path.write_bytes(data)
    before = w.snapshot()
    with pytest.raises(DumpFormatError, match="nested too deeply") as refused:
        w.target.restore_database_from_file(str(path))
    w.target.dispose()
    assert refused.value.line == line
    assert w.snapshot() == before


# -- a 1 GB line ------------------------------------------------------------------------------
GIB = 1 << 30


def _header_line(w: World) -> bytes:
    return json.dumps(w.records[0], separators=(",", ":")).encode() + b"\n"


def test_gigabyte_line_is_refused_holding_at_most_the_limit() -> None:
    """The reader alone, with its default limit: a 1 GiB data line (made lazily) is refused
    at the limit, holding no more than the limit, after reading no more than it."""
    header = b'{"kind":"header","format":"zenmigrate-dump","version":1}\n'
    stream = LazyStream(header + b'{"kind":"data","table":"t","data":[{"x":"', GIB)
    tracemalloc.start()
    started = time.monotonic()
    try:
        with pytest.raises(DumpFormatError, match=f"longer than {MAX_LINE_BYTES} bytes") as err:
            for _ in entries_from_stream(cast(IO[bytes], stream)):
                pass
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert err.value.line == 2
    assert stream.served <= len(header) + MAX_LINE_BYTES + 1
    assert stream.largest <= 8 * 1024 * 1024  # read in pieces, never the limit at once
    assert peak < MAX_LINE_BYTES + 64 * 1024 * 1024, f"peak {peak / 2**20:.0f} MiB"
    assert time.monotonic() - started < 60


@pytest.mark.parametrize("dialect", DIALECTS)
def test_gigabyte_line_restore_leaves_everything(
    worlds: Callable[[str], World], dialect: str
) -> None:
    """Through a real restore, with a lowered limit so the test stays small: the memory the
    refusal takes follows the limit, not the line, and nothing changes."""
    w = worlds(dialect)
    limit = 16 * 1024 * 1024
    stream = LazyStream(
        _header_line(w) + b'{"kind":"data","table":"plain","data":[{"id":1,"note":"', GIB
    )
    before = w.snapshot()
    tracemalloc.start()
    try:
        with pytest.raises(DumpFormatError, match="longer than") as refused:
            entries = entries_from_stream(cast(IO[bytes], stream), max_line_bytes=limit)
            restore_entries(w.target.engine, entries)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        w.target.dispose()
    assert refused.value.line == 2
    assert stream.served < 2 * limit
    assert peak < 4 * limit, f"peak {peak / 2**20:.0f} MiB"
    assert w.snapshot() == before


def test_legacy_object_of_a_gigabyte_is_refused_in_linear_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The seed's format spreads an object over lines: a 1 GiB one (made lazily) is refused
    once it passes the limit, parsing it only a bounded number of times (no quadratic work:
    a parse each time the buffer has doubled, not one per chunk read)."""
    limit = 32 * 1024 * 1024
    parses = []
    raw_decode = json.JSONDecoder.raw_decode

    def counted(self: json.JSONDecoder, s: str, idx: int = 0) -> tuple[Any, int]:
        parses.append(len(s))
        return raw_decode(self, s, idx)

    monkeypatch.setattr(json.JSONDecoder, "raw_decode", counted)
    item = b'"' + b"x" * 1000 + b'",\n'  # few allocations: tracemalloc stays cheap
    stream = LazyStream(b'{"table": "t",\n "data": [\n', GIB, fill=item)
    started = time.monotonic()
    tracemalloc.start()
    try:
        with pytest.raises(DumpFormatError, match="longer than") as refused:
            for _ in entries_from_stream(cast(IO[bytes], stream), max_line_bytes=limit):
                pass
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert refused.value.line == 1
    assert stream.served < limit + 4 * 1024 * 1024
    assert len(parses) <= 2 + (limit // (1 << 20)).bit_length(), len(parses)
    # the text, one parse of it and the next chunk: bounded by the limit, not the stream
    assert peak < 6 * limit, f"peak {peak / 2**20:.0f} MiB"
    assert time.monotonic() - started < 60


def test_gzip_bomb_is_refused_at_the_limit(tmp_path: Path) -> None:
    """A small .gz whose second line inflates to 256 MiB: read through the storage layer, it
    is refused after inflating no more than the limit it was given."""
    limit = 16 * 1024 * 1024
    path = tmp_path / "bomb.jsonl.gz"
    block = b"a" * (1 << 20)
    with gzip.open(path, "wb", compresslevel=1) as out:
        out.write(b'{"kind":"header","format":"zenmigrate-dump","version":1}\n{"x":"')
        for _ in range(256):
            out.write(block)
    assert path.stat().st_size < 2 * 1024 * 1024

    tracemalloc.start()
    try:
        with open_for_read(str(path)) as stream, pytest.raises(DumpFormatError) as refused:
            for _ in entries_from_stream(cast(IO[bytes], stream), max_line_bytes=limit):
                pass
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert refused.value.line == 2
    assert peak < 4 * limit, f"peak {peak / 2**20:.0f} MiB"
