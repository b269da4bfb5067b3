"""The schema qualifiers a staged PostgreSQL restore moves, and those it leaves as written."""

from __future__ import annotations

import pytest

from airflow_provider_zenmigrate.core.dialects.postgresql.remap import move_schemas

STAGED = {"public": "zm_stage_p1_0", "My S": "zm_stage_p1_1"}


@pytest.mark.parametrize(
    ("statement", "expected"),
    [
        # qualified names in code, quoted or not, folded as the server folds them
        ("CREATE TABLE public.t (x public.mood)",
         'CREATE TABLE "zm_stage_p1_0".t (x "zm_stage_p1_0".mood)'),
        ('CREATE TABLE "My S".t (x int)', 'CREATE TABLE "zm_stage_p1_1".t (x int)'),
        ("CREATE TABLE PUBLIC . t (x int)", 'CREATE TABLE "zm_stage_p1_0" . t (x int)'),
        # the qualifier inside an oid alias literal: resolved when the statement runs
        ("CREATE TABLE public.t (id int DEFAULT nextval('public.t_id_seq'::regclass))",
         'CREATE TABLE "zm_stage_p1_0".t (id int DEFAULT '
         "nextval('\"zm_stage_p1_0\".t_id_seq'::regclass))"),
        ("CREATE TABLE public.t (id int DEFAULT nextval('\"My S\".s'::regclass))",
         'CREATE TABLE "zm_stage_p1_0".t (id int DEFAULT '
         "nextval('\"zm_stage_p1_1\".s'::regclass))"),
    ],
)  # fmt: skip
def test_qualifiers_move(statement: str, expected: str) -> None:
    assert move_schemas(statement, STAGED) == expected


@pytest.mark.parametrize(
    "statement",
    [
        # text stays text: a literal that is not an oid alias, a comment, a function body
        "CREATE TABLE other.t (note text DEFAULT 'public.t')",
        "CREATE TABLE other.t (x int) -- public.t",
        "CREATE FUNCTION other.f() RETURNS int LANGUAGE sql AS $$SELECT 1 FROM public.t$$",
        "CREATE FUNCTION other.f() RETURNS int LANGUAGE sql AS 'SELECT 1 FROM public.t'",
        # a name that is not a qualifier, and a schema the dump does not restore
        "CREATE TABLE other.public (x int)",
        "CREATE TABLE elsewhere.t (x elsewhere.mood)",
        # E'' literals are left as written (the swap's checks catch what that misses)
        "CREATE TABLE other.t (id int DEFAULT nextval(E'public.s'::regclass))",
    ],
)
def test_text_and_other_names_stay(statement: str) -> None:
    assert move_schemas(statement, STAGED) == statement


def test_function_header_moves_and_body_stays() -> None:
    statement = (
        "CREATE FUNCTION public.f(a public.mood) RETURNS public.mood LANGUAGE sql "
        "AS $body$SELECT a FROM public.t$body$"
    )
    assert move_schemas(statement, STAGED) == (
        'CREATE FUNCTION "zm_stage_p1_0".f(a "zm_stage_p1_0".mood) RETURNS '
        '"zm_stage_p1_0".mood LANGUAGE sql AS $body$SELECT a FROM public.t$body$'
    )


def test_nothing_to_move_returns_the_statement() -> None:
    assert move_schemas("CREATE TABLE public.t (x int)", {}) == "CREATE TABLE public.t (x int)"
