"""A PostgreSQL database shaped like production: schemas beside ``public``, an application role
with schema, table, column and sequence grants, owners, comments, row-level security, default
privileges, a trigger function in another schema and a foreign key across schemas.

The oracle is PostgreSQL's own ``pg_dump --schema-only``: a restore must give back the same
text (owners, ACLs, comments, policies and all), and the same rows.
"""

from __future__ import annotations

import contextlib
import logging
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy.engine import URL

from airflow_provider_zenmigrate.core.catalog import verify_backup
from airflow_provider_zenmigrate.core.errors import ZenMigrateError
from airflow_provider_zenmigrate.core.utils import MigrationUtils
from tests.support.servers import database_url, pg_script, unique_name


def _libpq(url: URL, user: str | None = None) -> str:
    url = url.set(drivername="postgresql")
    if user is not None:
        url = url.set(username=user, password=None)
    return url.render_as_string(hide_password=False)


def _rows(url: URL, sql: str, user: str | None = None) -> list[tuple[Any, ...]]:
    with psycopg.connect(_libpq(url, user)) as conn:
        return [tuple(r) for r in conn.execute(sql.encode()).fetchall()]


def schema_dump(url: URL) -> str:
    """``pg_dump --schema-only`` of the database, without what differs from run to run."""
    out = subprocess.run(
        ["pg_dump", "--schema-only", "--no-sync", _libpq(url)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    # The banner names versions; \restrict lines carry a random key per run.
    skip = ("-- Dumped", "\\restrict", "\\unrestrict")
    return "\n".join(line for line in out.splitlines() if not line.startswith(skip))


def data_digest(url: URL) -> dict[str, str]:
    """An ordered md5 of every row of every table, by qualified name."""
    tables = _rows(
        url,
        "SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p') "
        "AND n.nspname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1",
    )
    return {
        name: _rows(
            url,
            f"SELECT md5(coalesce(string_agg(t::text, E'\\n' ORDER BY t::text), '')) "
            f"FROM ONLY {name} t",
        )[0][0]
        for (name,) in tables
    }


def _shape(app: str, owner: str) -> str:
    return f"""
    CREATE SCHEMA app AUTHORIZATION {owner};
    CREATE SCHEMA audit;
    COMMENT ON SCHEMA app IS 'what the application reads and writes';
    GRANT USAGE ON SCHEMA app TO {app};
    CREATE TYPE app.mood AS ENUM ('ok', 'sad');
    COMMENT ON TYPE app.mood IS 'how they feel';
    REVOKE USAGE ON TYPE app.mood FROM PUBLIC;
    GRANT USAGE ON TYPE app.mood TO {app};
    CREATE DOMAIN audit.label AS text CHECK (VALUE <> '');
    ALTER DOMAIN audit.label OWNER TO {owner};
    CREATE EXTENSION IF NOT EXISTS pg_trgm WITH SCHEMA audit;
    CREATE TABLE app.customers (
        id serial PRIMARY KEY, name text NOT NULL, mood app.mood, secret text);
    ALTER TABLE app.customers OWNER TO {owner};
    COMMENT ON TABLE app.customers IS 'people who pay';
    COMMENT ON COLUMN app.customers.name IS 'full name, as written';
    GRANT SELECT, INSERT, UPDATE ON app.customers TO {app};
    REVOKE ALL ON app.customers FROM PUBLIC;
    GRANT USAGE, SELECT ON SEQUENCE app.customers_id_seq TO {app};
    CREATE TABLE audit.events (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        customer_id int REFERENCES app.customers (id),
        what text NOT NULL, at timestamptz NOT NULL DEFAULT '2024-01-01 00:00:00+00');
    CREATE INDEX events_what_trgm ON audit.events USING gin (what audit.gin_trgm_ops);
    COMMENT ON INDEX audit.events_what_trgm IS 'fuzzy search';
    GRANT SELECT (what, at) ON audit.events TO {app};
    GRANT INSERT ON audit.events TO {app};
    CREATE FUNCTION audit.log_change() RETURNS trigger LANGUAGE plpgsql
        SET search_path = '' AS $$
        BEGIN INSERT INTO audit.events (customer_id, what) VALUES (NEW.id, TG_OP);
        RETURN NEW; END $$;
    COMMENT ON FUNCTION audit.log_change() IS 'writes the audit trail';
    REVOKE ALL ON FUNCTION audit.log_change() FROM PUBLIC;
    GRANT EXECUTE ON FUNCTION audit.log_change() TO {app};
    CREATE TRIGGER customers_audit AFTER INSERT OR UPDATE ON app.customers
        FOR EACH ROW EXECUTE FUNCTION audit.log_change();
    COMMENT ON TRIGGER customers_audit ON app.customers IS 'every change is logged';
    ALTER TABLE app.customers ENABLE ROW LEVEL SECURITY;
    ALTER TABLE app.customers FORCE ROW LEVEL SECURITY;
    CREATE POLICY cheerful ON app.customers FOR SELECT TO {app} USING (mood IS DISTINCT FROM 'sad');
    CREATE POLICY writes ON app.customers FOR INSERT TO {app} WITH CHECK (name <> '');
    COMMENT ON POLICY cheerful ON app.customers IS 'sad customers are hidden';
    ALTER DEFAULT PRIVILEGES IN SCHEMA app GRANT SELECT ON TABLES TO {app};
    ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA app GRANT USAGE ON SEQUENCES TO {app};
    CREATE VIEW public.customer_names AS SELECT name FROM app.customers;
    COMMENT ON VIEW public.customer_names IS 'names only';
    GRANT SELECT ON public.customer_names TO {app};
    CREATE MATERIALIZED VIEW audit.daily AS SELECT count(*) AS n FROM audit.events;
    GRANT SELECT ON audit.daily TO {app};
    COMMENT ON MATERIALIZED VIEW audit.daily IS 'events so far';
    ALTER FUNCTION audit.log_change() OWNER TO {owner};
    CREATE TABLE public.notes (id int PRIMARY KEY, body text);
    COMMENT ON CONSTRAINT notes_pkey ON public.notes IS 'one note per id';
    INSERT INTO app.customers (name, mood, secret)
        SELECT 'customer ' || i, CASE WHEN i % 5 = 0 THEN 'sad' ELSE 'ok' END::app.mood,
               md5(i::text) FROM generate_series(1, 200) i;
    INSERT INTO public.notes SELECT i, 'note ' || i FROM generate_series(1, 50) i;
    REFRESH MATERIALIZED VIEW audit.daily;
    """


@pytest.fixture
def roles() -> Iterator[tuple[str, str]]:
    """An application role that logs in, and an owner role; cluster-wide, so dropped after."""
    app, owner = unique_name("zm_app"), unique_name("zm_owner")
    admin = database_url("postgresql", Path("."), "postgres")
    pg_script(admin, f"CREATE ROLE {app} LOGIN; CREATE ROLE {owner}")
    try:
        yield app, owner
    finally:
        for database in _rows(admin, "SELECT datname FROM pg_database WHERE NOT datistemplate"):
            # A role is dropped only once nothing in any database names it.
            with contextlib.suppress(psycopg.Error):
                pg_script(admin.set(database=database[0]), f"DROP OWNED BY {app}, {owner} CASCADE")
        pg_script(admin, f"DROP ROLE IF EXISTS {app}; DROP ROLE IF EXISTS {owner}")


@pytest.fixture
def production(tmp_path: Path, roles: tuple[str, str]) -> Iterator[MigrationUtils]:
    url = database_url("postgresql", tmp_path)
    utils = MigrationUtils(url=url, connect_args={}, engine_args={})
    utils.create_database()
    pg_script(url, _shape(*roles))
    try:
        yield utils
    finally:
        utils.drop_database()
        utils.dispose()


@pytest.fixture
def other(tmp_path: Path) -> Iterator[MigrationUtils]:
    utils = MigrationUtils(
        url=database_url("postgresql", tmp_path), connect_args={}, engine_args={}
    )
    try:
        yield utils
    finally:
        utils.drop_database()
        utils.dispose()


def test_backup_covers_every_schema_and_says_what_it_left_out(
    production: MigrationUtils, tmp_path: Path
) -> None:
    everything = production.backup_database_to_memory()
    header = everything[0]
    assert header["schemas"] == ["app", "audit", "public"]
    assert header["excluded_schemas"] == []
    tables = {r["table"] for r in everything if r["kind"] == "table"}
    assert tables == {"app.customers", "audit.events", "notes"}

    narrowed = production.model_copy(update={"exclude_schemas": ["audit"]})
    header = narrowed.backup_database_to_memory()[0]
    assert header["schemas"] == ["app", "public"]
    assert header["excluded_schemas"] == [{"schema": "audit", "reason": "named by exclude_schemas"}]
    only = production.model_copy(update={"schemas": ["app"]})
    result = only.backup_database_to_file(str(tmp_path / "app.jsonl"))
    assert set(result.tables) == {"app.customers"}
    first = (tmp_path / "app.jsonl").read_text().splitlines()[0]
    assert '"excluded_schemas":[{"schema":"audit","reason":"not named by schemas"}' in first

    # Kinds no backup carries yet are named in the header, never dropped without a word.
    pg_script(
        production.url,
        'CREATE COLLATION app.plain FROM "C";'
        " CREATE STATISTICS app.st ON id, name FROM app.customers",
    )
    header = production.backup_database_to_memory()[0]
    assert header["not_carried"] == [
        {"kind": "collation", "name": "app.plain"},
        {"kind": "statistics", "name": "app.st"},
    ]
    with pytest.raises(ZenMigrateError, match="schemas the database does not have: nope"):
        production.model_copy(update={"schemas": ["nope"]}).backup_database_to_memory()


def test_restore_into_a_new_database_is_what_pg_dump_sees(
    production: MigrationUtils, other: MigrationUtils, tmp_path: Path
) -> None:
    dump = str(tmp_path / "prod.jsonl.zst")
    production.backup_database_to_file(dump)
    other.restore_database_from_file(dump, allow_routines=True)
    assert schema_dump(other.url) == schema_dump(production.url)
    assert data_digest(other.url) == data_digest(production.url)


def test_rollback_over_the_same_database_keeps_grants_owners_and_keys(
    production: MigrationUtils, roles: tuple[str, str], tmp_path: Path
) -> None:
    app, _owner = roles
    url = production.url
    before_schema, before_data = schema_dump(url), data_digest(url)
    dump = str(tmp_path / "prod.jsonl")
    production.backup_database_to_file(dump)
    # A migration that went wrong: privileges lost, a column dropped, rows changed, and a
    # foreign key from a schema the backup left out.
    pg_script(
        url,
        f"""REVOKE ALL ON app.customers FROM {app}; ALTER TABLE app.customers DROP COLUMN secret;
        DELETE FROM public.notes WHERE id > 10; COMMENT ON TABLE app.customers IS NULL;
        CREATE SCHEMA reporting;
        CREATE TABLE reporting.picks (customer_id int REFERENCES app.customers (id));
        INSERT INTO reporting.picks VALUES (1), (2);""",
    )
    # A restore told to leave app alone refuses a dump that holds it, changing nothing.
    changed = schema_dump(url)
    leave_app = production.model_copy(update={"exclude_schemas": ["app"]})
    with pytest.raises(ZenMigrateError, match="told to leave alone: app"):
        leave_app.restore_database_from_file(dump, allow_routines=True)
    assert schema_dump(url) == changed
    # ... and so does its dry run (the same rule).
    report = verify_backup(
        dump, allow_routines=True, target=production.engine, options=leave_app.restore_options
    )
    assert not report.ok and "told to leave alone: app" in str(report.error)
    production.restore_database_from_file(dump, allow_routines=True)
    after = schema_dump(url)
    # reporting (left alone) is still there, its key now pointing at the restored table.
    assert "CREATE TABLE reporting.picks" in after
    assert "REFERENCES app.customers(id)" in after
    assert _rows(url, "SELECT count(*) FROM reporting.picks") == [(2,)]
    pg_script(url, "DROP SCHEMA reporting CASCADE")
    assert schema_dump(url) == before_schema
    assert data_digest(url) == before_data
    # The application, as itself, reads what its policy shows it and writes what it may.
    assert _rows(url, "SELECT count(*) FROM app.customers", user=app) == [(160,)]
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        _rows(url, "SELECT secret FROM audit.events", user=app)


def test_objects_outside_the_restored_schemas_refuse_the_restore(
    production: MigrationUtils, tmp_path: Path
) -> None:
    url = production.url
    dump = str(tmp_path / "app.jsonl")
    production.model_copy(update={"schemas": ["app"]}).backup_database_to_file(dump)
    pg_script(
        url, "CREATE SCHEMA reporting; CREATE VIEW reporting.v AS SELECT id FROM app.customers"
    )
    before = schema_dump(url), data_digest(url)
    with pytest.raises(ZenMigrateError, match=r"view reporting\.v") as refused:
        production.restore_database_from_file(dump)
    assert "Nothing was changed" in str(refused.value)
    assert (schema_dump(url), data_digest(url)) == before


def test_missing_roles_refuse_or_are_skipped_when_asked(
    production: MigrationUtils,
    other: MigrationUtils,
    roles: tuple[str, str],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    app, owner = roles
    admin = database_url("postgresql", tmp_path, "postgres")
    with_policies, without = str(tmp_path / "with.jsonl"), str(tmp_path / "without.jsonl")
    production.backup_database_to_file(with_policies)
    pg_script(
        production.url, "DROP POLICY cheerful ON app.customers; DROP POLICY writes ON app.customers"
    )
    production.backup_database_to_file(without)
    # The role is gone from the server (renamed: what the source granted follows it).
    pg_script(admin, f"ALTER ROLE {app} RENAME TO {app}_gone")
    try:
        lacks = f"role '{app}' does not exist|roles the target server does not have: {app}"
        with pytest.raises(ZenMigrateError, match=lacks):
            other.restore_database_from_file(without, allow_routines=True)
        assert not other.database_exists() or not _rows(
            other.url, "SELECT 1 FROM pg_namespace WHERE nspname = 'app'"
        )
        # A policy names the role too: it is never left out, even when asked to skip.
        skipping = other.model_copy(update={"skip_missing_roles": True})
        with pytest.raises(
            ZenMigrateError, match="policy 'cheerful' (applies to roles|needs what) the target"
        ):
            skipping.restore_database_from_file(with_policies, allow_routines=True)
        with caplog.at_level(logging.WARNING):
            skipping.restore_database_from_file(without, allow_routines=True)
        assert any(app in r.getMessage() for r in caplog.records)
        owner_of = (
            "SELECT relowner::regrole::text FROM pg_class WHERE oid = 'app.customers'::regclass"
        )
        assert _rows(other.url, owner_of) == [(owner,)]
        grantees = (
            "SELECT grantee FROM information_schema.table_privileges WHERE table_schema = 'app'"
        )
        assert app not in {g for (g,) in _rows(other.url, grantees)}
        no_owner = other.model_copy(update={"no_owner": True, "skip_missing_roles": True})
        no_owner.restore_database_from_file(without, allow_routines=True)
        assert _rows(other.url, owner_of) == [("postgres",)]
    finally:
        pg_script(admin, f"ALTER ROLE {app}_gone RENAME TO {app}")


def _staged_shape(app: str, owner: str) -> str:
    """The production shape without its extension: a dump without one is restored staged
    (in parallel, resumable); one with an extension is restored in one transaction."""
    lines = _shape(app, owner).splitlines()
    return "\n".join(line for line in lines if "pg_trgm" not in line and "trgm" not in line)


def test_parallel_rollback_is_what_pg_dump_sees(
    tmp_path: Path, roles: tuple[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    """The rollback above with a multi-part dump restored by two workers into staging
    schemas: pg_dump sees the database as it was (owners, ACLs, comments, policies, the
    key from a schema left out re-pointed), and nothing of the staging is left."""
    app, _owner = roles
    url = database_url("postgresql", tmp_path)
    production = MigrationUtils(url=url, connect_args={}, engine_args={})
    production.create_database()
    try:
        pg_script(url, _staged_shape(*roles))
        before_schema, before_data = schema_dump(url), data_digest(url)
        dump = str(tmp_path / "prod")
        production.backup_database_to_file(dump, jobs=2)
        pg_script(
            url,
            f"""REVOKE ALL ON app.customers FROM {app}; ALTER TABLE app.customers DROP COLUMN
            secret; DELETE FROM public.notes WHERE id > 10; CREATE SCHEMA reporting;
            CREATE TABLE reporting.picks (customer_id int REFERENCES app.customers (id));
            INSERT INTO reporting.picks VALUES (1), (2);""",
        )
        with caplog.at_level(logging.INFO):
            summary = production.restore_database_from_file(dump, jobs=2, allow_routines=True)
        assert "cannot resume" not in caplog.text  # it was staged
        # the keys (three primary, one foreign) built by the workers before the swap
        assert "building 4 indexes and keys in the staging area" in caplog.text, caplog.text
        assert summary.parts > 1 and summary.resumed_parts == 0
        after = schema_dump(url)
        assert "REFERENCES app.customers(id)" in after
        assert _rows(url, "SELECT count(*) FROM reporting.picks") == [(2,)]
        assert "zm_stage_" not in after and "zm_old_" not in after
        pg_script(url, "DROP SCHEMA reporting CASCADE")
        assert schema_dump(url) == before_schema
        assert data_digest(url) == before_data
        assert _rows(url, "SELECT count(*) FROM app.customers", user=app) == [(160,)]
    finally:
        production.drop_database()
        production.dispose()
