"""The catalogue of malicious dumps (tests/reliability/test_malicious_dumps.py restores
each one, tests/integration/test_dry_run_rules.py dry-runs it): how each is forged, which
dialects it is written for, the error and the words that must name it, and the record
that must be blamed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest

from airflow_provider_zenmigrate.core.errors import DumpError, DumpFormatError, UnsafeDumpError
from tests.support.hostile import Record, World
from tests.support.servers import DIALECTS

ALL = tuple(DIALECTS)
MY, PG, LITE = ("mysql",), ("postgresql",), ("sqlite",)


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
