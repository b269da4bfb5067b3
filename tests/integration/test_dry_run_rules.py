"""Dry runs tell the truth: ``verify`` and ``restore --dry-run`` refuse exactly the dumps the
restore refuses, at the same record, because all three run the same rule pass
(:mod:`airflow_provider_zenmigrate.core.preflight`).

Every hostile dump of the reliability catalogue goes through the dry run (with and without a
target) and through the restore, and gets the same verdict; then each kind of refusal is
checked on its own (routines, a dump without header, a role or an extension the target
server lacks), with a good dump passing all three.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy
from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.pool import NullPool

from airflow_provider_zenmigrate.core.catalog import VerifyReport, verify_backup
from airflow_provider_zenmigrate.core.dialects import get_dialect
from airflow_provider_zenmigrate.core.dump.model import RestoreOptions
from airflow_provider_zenmigrate.core.errors import (
    DumpError,
    DumpFormatError,
    MissingRequirementError,
    UnsafeDumpError,
)
from airflow_provider_zenmigrate.core.utils import MigrationUtils
from tests.support.dumps import sealed
from tests.support.hostile import World, lazy_worlds, line_of
from tests.support.malicious_cases import CASES, PARAMS, with_object
from tests.support.servers import database_url, server_url, unique_name

NO_SUCH_EXTENSION = "zm_no_such_ext"


@pytest.fixture(scope="module")
def worlds(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], World]]:
    with lazy_worlds(tmp_path_factory, "dryrun") as get:
        yield get


def dry_runs(
    w: World, path: Path, allow_unverified: bool = False, allow_routines: bool = False
) -> tuple[VerifyReport, VerifyReport]:
    """``verify`` (no target: the header's dialect) and ``restore --dry-run`` (the target)."""
    alone, with_target = (
        verify_backup(
            str(path),
            allow_unverified=allow_unverified,
            allow_routines=allow_routines,
            target=target,
        )
        for target in (None, w.target.engine)
    )
    w.target.dispose()
    assert not alone.target_checked and with_target.target_checked
    return alone, with_target


def restore_error(w: World, path: Path, **flags: Any) -> DumpError | None:
    """The restore's refusal, or None when it restored."""
    try:
        w.target.restore_database_from_file(str(path), **flags)
    except DumpError as exc:
        return exc
    finally:
        w.target.dispose()
    return None


# -- every hostile dump: the same verdict from the dry runs and the restore -------------------
@pytest.mark.parametrize(("case", "dialect"), PARAMS)
def test_hostile_dump_same_verdict(worlds: Callable[[str], World], case: str, dialect: str) -> None:
    w = worlds(dialect)
    spec = CASES[case]
    data = sealed(spec.forge(w))
    path = w.folder / f"dry-{case}.jsonl"
    path.write_bytes(data)
    line = line_of(data, spec.record)
    before = w.snapshot()

    reports = dry_runs(w, path, allow_routines=spec.allow_routines)
    for report in reports:
        assert not report.ok, report
        assert report.error_line == line, report.error
        assert report.error is not None and spec.names in report.error, report.error
    refused = restore_error(w, path, allow_routines=spec.allow_routines)
    assert isinstance(refused, spec.error), refused
    assert refused.line == line and str(refused) == reports[1].error
    assert w.snapshot() == before


@pytest.mark.parametrize("dialect", ["sqlite", "mysql", "postgresql"])
def test_good_dump_passes_dry_runs_and_restore(
    worlds: Callable[[str], World], dialect: str
) -> None:
    w = worlds(dialect)
    path = w.folder / "good.jsonl"
    path.write_bytes(sealed(w.records))
    tables = {r["table"]: 12 for r in w.records if r["kind"] == "table"}
    # PostgreSQL's backup records owners and privileges: the roles they name
    roles = ["pg_database_owner", "postgres"] if dialect == "postgresql" else []
    for report in dry_runs(w, path):
        assert report.ok and report.trailer_ok and report.error is None, report
        assert report.tables == tables and report.roles == roles and report.extensions == []
    # the restore agrees (into a scratch database: the world's target stays as it is)
    summary = restores_cleanly(w, path)
    assert summary.verified and summary.tables == tables


# -- each refusal on its own -------------------------------------------------------------------
def restores_cleanly(w: World, path: Path, **flags: Any) -> Any:
    """Restore ``path`` into a new scratch database (the world's target stays as it is)."""
    scratch = MigrationUtils(
        url=database_url(w.dialect, w.folder, unique_name("zmdry")), connect_args={}, engine_args={}
    )
    scratch.create_database()
    try:
        return scratch.restore_database_from_file(str(path), **flags)
    finally:
        scratch.drop_database()
        scratch.dispose()


def assert_same_refusal(
    w: World, path: Path, line: int, error: type[DumpError], *needles: str, **flags: bool
) -> str:
    """Both dry runs and the restore refuse ``path`` at ``line``, naming ``needles``; the
    target is unchanged. Returns the restore's message."""
    before = w.snapshot()
    alone, with_target = dry_runs(w, path, **flags)
    refused = restore_error(w, path, **flags)
    assert isinstance(refused, error), refused
    assert refused.line == line
    for report in (alone, with_target):
        assert not report.ok and report.error_line == line, report
    assert with_target.error == str(refused)
    for needle in needles:
        assert needle in str(refused), refused
    assert w.snapshot() == before
    return str(refused)


def add_object(
    w: World, object_type: str, name: str, stmt: str, phase: str = "post"
) -> list[dict[str, Any]]:
    """The world's records with an object record added; in a PostgreSQL dump that lists its
    schemas, the record names its schema (``public``), as the backup writes it."""
    records = with_object(w.records, object_type, name, stmt, phase)
    if "schemas" not in w.records[0]:
        return records
    return [{**r, "options": {"schema": "public"}} if r.get("name") == name else r for r in records]


ROUTINES = {
    "mysql": "CREATE FUNCTION f_one() RETURNS INT DETERMINISTIC RETURN 1",
    "postgresql": (
        "CREATE FUNCTION public.f_one() RETURNS int LANGUAGE sql IMMUTABLE AS $$ SELECT 1 $$"
    ),
}


@pytest.mark.parametrize("dialect", ["mysql", "postgresql"])
def test_routine_needs_allow_routines(worlds: Callable[[str], World], dialect: str) -> None:
    w = worlds(dialect)
    records = add_object(w, "function", "f_one", ROUTINES[dialect])
    data = sealed(records)
    path = w.folder / "routine.jsonl"
    path.write_bytes(data)
    line = line_of(data, lambda r: r.get("name") == "f_one")
    assert_same_refusal(w, path, line, UnsafeDumpError, "function 'f_one'", "allow_routines=True")
    for report in dry_runs(w, path, allow_routines=True):
        assert report.ok, report
    assert restores_cleanly(w, path, allow_routines=True).verified


def legacy_dump(create_stmt: str) -> bytes:
    """The seed's format: objects without header or trailer, one over several lines."""
    records = [
        {"table": "legacy_t", "create_stmt": create_stmt},
        {"table": "legacy_t", "data": [{"id": 1}, {"id": 2}]},
    ]
    return b"\n".join(json.dumps(r, indent=2).encode() for r in records) + b"\n"


@pytest.mark.parametrize("dialect", ["sqlite", "mysql", "postgresql"])
def test_legacy_dump_needs_allow_unverified(worlds: Callable[[str], World], dialect: str) -> None:
    w = worlds(dialect)
    path = w.folder / "legacy.json"
    path.write_bytes(legacy_dump("CREATE TABLE legacy_t (id INT PRIMARY KEY)"))
    assert_same_refusal(w, path, 1, DumpFormatError, "allow_unverified=True")
    for report in dry_runs(w, path, allow_unverified=True):
        assert report.ok and report.unverified and not report.trailer_ok, report
        assert report.tables == {} and "UNVERIFIED" in str(report)
    summary = restores_cleanly(w, path, allow_unverified=True)
    assert not summary.verified and summary.tables == {"legacy_t": 2}

    # accepting an unverifiable dump does not accept an unsafe statement in it
    hostile = w.folder / "legacy-hostile.json"
    hostile.write_bytes(legacy_dump("CREATE TABLE legacy_t (id INT); DROP TABLE existing"))
    assert_same_refusal(
        w, hostile, 1, UnsafeDumpError, "more than one statement", allow_unverified=True
    )


def test_missing_extension_is_refused_with_a_target(worlds: Callable[[str], World]) -> None:
    w = worlds("postgresql")
    stmt = f'CREATE EXTENSION IF NOT EXISTS "{NO_SUCH_EXTENSION}"'
    data = sealed(add_object(w, "extension", NO_SUCH_EXTENSION, stmt, "pre"))
    path = w.folder / "no-such-extension.jsonl"
    path.write_bytes(data)
    line = line_of(data, lambda r: r.get("name") == NO_SUCH_EXTENSION)
    before = w.snapshot()

    alone = verify_backup(str(path))  # dump rules only: the extension is listed, not looked up
    assert alone.ok and not alone.target_checked and alone.extensions == [NO_SUCH_EXTENSION]
    with_target = verify_backup(str(path), target=w.target.engine)
    refused = restore_error(w, path)
    assert isinstance(refused, MissingRequirementError) and refused.line == line
    assert not with_target.ok and with_target.error == str(refused)
    assert f"extension '{NO_SUCH_EXTENSION}' is not available on the server" in str(refused)
    assert w.snapshot() == before


def test_available_extension_passes_and_is_created(worlds: Callable[[str], World]) -> None:
    w = worlds("postgresql")
    records = add_object(w, "extension", "citext", "CREATE EXTENSION IF NOT EXISTS citext", "pre")
    path = w.folder / "citext.jsonl"
    path.write_bytes(sealed(records))
    for report in dry_runs(w, path):
        assert report.ok and report.extensions == ["citext"], report
    assert restores_cleanly(w, path).verified


def with_grant(w: World, name: str, grantee: Any) -> list[dict[str, Any]]:
    """The world's records with the view ``v_typed`` granting SELECT to ``grantee`` (as the
    PostgreSQL backup records privileges: ``[grantee, privilege, grantable]`` entries)."""
    out = []
    for r in w.records:
        if r.get("kind") == "object" and r["name"] == name:
            options = dict(r.get("options") or {})
            options["acl"] = [*(options.get("acl") or []), [grantee, "SELECT", False]]
            r = {**r, "options": options}
        out.append(r)
    return out


def test_missing_role_is_refused_with_a_target(worlds: Callable[[str], World]) -> None:
    w = worlds("postgresql")
    missing = unique_name("zmdry_role")
    path = w.folder / "no-such-role.jsonl"
    data = sealed(with_grant(w, "v_typed", missing))
    path.write_bytes(data)
    line = line_of(data, lambda r: r.get("name") == "v_typed")
    before = w.snapshot()
    alone = verify_backup(str(path))  # dump rules only: the role is listed, not looked up
    assert alone.ok and missing in alone.roles and "postgres" in alone.roles
    with_target = verify_backup(str(path), target=w.target.engine)
    refused = restore_error(w, path)
    assert isinstance(refused, MissingRequirementError) and refused.line == line
    assert not with_target.ok and with_target.error == str(refused)
    assert f"view 'v_typed' needs what the target server lacks: role {missing!r}" in str(refused)
    assert w.snapshot() == before

    # A restore told to leave out what names missing roles passes, and so does its dry run.
    skipping = verify_backup(
        str(path), target=w.target.engine, options=RestoreOptions(skip_missing_roles=True)
    )
    assert skipping.ok, skipping
    scratch = MigrationUtils(
        url=database_url("postgresql", w.folder, unique_name("zmdry")),
        connect_args={},
        engine_args={},
        skip_missing_roles=True,
    )
    scratch.create_database()
    try:
        assert scratch.restore_database_from_file(str(path)).verified
    finally:
        scratch.drop_database()
        scratch.dispose()

    # Once the role exists, both pass.
    admin = sqlalchemy.create_engine(server_url("postgresql"), poolclass=NullPool)
    with admin.begin() as conn:
        conn.exec_driver_sql(f'CREATE ROLE "{missing}"')
    try:
        for report in dry_runs(w, path):
            assert report.ok, report
        assert restores_cleanly(w, path).verified
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f'DROP OWNED BY "{missing}"')
            conn.exec_driver_sql(f'DROP ROLE "{missing}"')
        admin.dispose()


def test_malformed_privileges_are_refused(worlds: Callable[[str], World]) -> None:
    w = worlds("postgresql")
    records = [
        {**r, "options": {**r["options"], "acl": "everyone"}}
        if r.get("kind") == "object" and r["name"] == "v_typed"
        else r
        for r in w.records
    ]
    data = sealed(records)
    path = w.folder / "malformed-acl.jsonl"
    path.write_bytes(data)
    line = line_of(data, lambda r: r.get("name") == "v_typed")
    assert_same_refusal(w, path, line, UnsafeDumpError, "view 'v_typed'", "malformed acl")


def test_roles_are_not_looked_up_where_dumps_do_not_name_them(
    worlds: Callable[[str], World],
) -> None:
    """MySQL and SQLite keep the default: no role or extension is ever missing."""
    for dialect in ("sqlite", "mysql"):
        w = worlds(dialect)
        assert (
            get_dialect(w.target.engine).missing_requirements(
                w.target.engine, {"zm_nobody"}, {NO_SUCH_EXTENSION}
            )
            == []
        )


def test_extension_rights_of_a_role_that_is_not_superuser(
    worlds: Callable[[str], World],
) -> None:
    """Available but not installed: a superuser creates any, a role with CREATE on the
    database a trusted one only; the message says which and why."""
    w = worlds("postgresql")
    role = unique_name("zmdry_user")
    admin = sqlalchemy.create_engine(server_url("postgresql"), poolclass=NullPool)
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE ROLE {role} LOGIN")
    url: URL = w.target.url.set(username=role)
    engine = sqlalchemy.create_engine(url, poolclass=NullPool)
    ops = get_dialect(engine)
    try:
        superuser = ops.missing_requirements(w.target.engine, set(), {"pageinspect", "citext"})
        assert superuser == []
        missing = ops.missing_requirements(engine, {role}, {"pageinspect", "citext", "plpgsql"})
        assert missing == [
            f"extension 'citext' is available on the server but not installed in "
            f"{w.target.url.database!r}, and role {role!r} may not create it ({role!r} lacks "
            f"CREATE on {w.target.url.database!r}; a superuser may)",
            f"extension 'pageinspect' is available on the server but not installed in "
            f"{w.target.url.database!r}, and role {role!r} may not create it (it is not "
            "trusted; a superuser may)",
        ]
        target_admin = sqlalchemy.create_engine(w.target.url, poolclass=NullPool)
        with target_admin.begin() as conn:
            conn.execute(text(f'GRANT CREATE ON DATABASE "{w.target.url.database}" TO {role}'))
        target_admin.dispose()
        missing = ops.missing_requirements(engine, set(), {"pageinspect", "citext"})
        assert len(missing) == 1 and "'pageinspect'" in missing[0]
    finally:
        engine.dispose()
        w.target.dispose()
        with admin.begin() as conn:
            conn.exec_driver_sql(f'REVOKE ALL ON DATABASE "{w.target.url.database}" FROM {role}')
            conn.exec_driver_sql(f"DROP ROLE {role}")
        admin.dispose()
