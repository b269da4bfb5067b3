"""Which objects after the data a staged PostgreSQL restore builds early, by the workers
(:mod:`...postgresql.post_build`), and which stay in the swap's transaction."""

from __future__ import annotations

from airflow_provider_zenmigrate.core.dialects.postgresql.post_build import plan
from airflow_provider_zenmigrate.core.dump.model import ObjectSpec

PLAIN = {"a", "b", "app.c"}


def _member(kind: str, name: str, table: str, stmt: str) -> ObjectSpec:
    return ObjectSpec(kind, name, stmt, table, options={"schema": "public"})


def test_indexes_and_keys_of_plain_tables_are_built_early() -> None:
    objects = [
        (5, _member("index", "a_x", "a", "CREATE INDEX a_x ON public.a USING btree (x)")),
        (6, _member("index", "a_u", "a", 'CREATE UNIQUE INDEX a_u ON ONLY public.a (y)')),
        (7, _member("constraint", "a_pkey", "a",
                    'ALTER TABLE ONLY public.a ADD CONSTRAINT "a_pkey" PRIMARY KEY (id)')),
        (8, _member("constraint", "c_chk", "app.c",
                    "ALTER TABLE ONLY app.c ADD CONSTRAINT c_chk CHECK (n > 0) NOT VALID")),
        (9, _member("constraint", "b_a", "b",
                    "ALTER TABLE ONLY public.b ADD CONSTRAINT b_a FOREIGN KEY (a_id) "
                    "REFERENCES public.a(id)")),
    ]  # fmt: skip
    built = plan(objects, PLAIN)
    assert sorted(built) == [5, 6, 7, 8, 9]
    assert [(b.shared, b.late, sorted(b.tables)) for _o, b in built.values()] == [
        (True, False, ["a"]),
        (True, False, ["a"]),
        (False, False, ["a"]),
        (False, False, ["app.c"]),
        (False, True, ["a", "b"]),
    ]
    assert built[9][1].label == "foreign key 'b_a'"


def test_what_cannot_be_classified_with_certainty_stays_in_the_swap() -> None:
    objects = [
        # a partitioned table (not plain) and the foreign key that needs its unique index
        (1, _member("index", "p_x", "p", "CREATE INDEX p_x ON public.p (x)")),
        (2, _member("constraint", "b_p", "b",
                    "ALTER TABLE ONLY public.b ADD CONSTRAINT b_p FOREIGN KEY (p) "
                    "REFERENCES public.a(id)")),
        (3, _member("index", "a_f", "a", "CREATE INDEX a_f ON public.a (public.f(x))")),
        (4, ObjectSpec("function", "f", "CREATE FUNCTION public.f(int) ...", None,
                       options={"schema": "public"})),
        # a key into a schema the dump does not restore
        (6, _member("constraint", "b_o", "b",
                    "ALTER TABLE ONLY public.b ADD CONSTRAINT b_o FOREIGN KEY (o) "
                    "REFERENCES other.o(id)")),
        (7, _member("index", "b_c", "b", "CREATE INDEX CONCURRENTLY b_c ON public.b (c)")),
        (8, _member("index", "b_w", "b", "CREATE INDEX b_w ON public.a (w)")),  # not its table
        (9, _member("trigger", "b_t", "b", "CREATE TRIGGER b_t AFTER INSERT ON public.b ...")),
    ]  # fmt: skip
    assert plan(objects, PLAIN | {"q"}) == {}  # b_p: a's index a_f stays in the swap


def test_a_foreign_key_is_built_early_when_its_referenced_table_is() -> None:
    key = "ALTER TABLE ONLY public.b ADD CONSTRAINT b_a FOREIGN KEY (a) REFERENCES public.a(id)"
    objects = [
        (1, _member("constraint", "b_a", "b", key)),
        (2, _member("index", "b_x", "b", "CREATE INDEX b_x ON public.b (public.f(x))")),
        (3, ObjectSpec("function", "f", "CREATE FUNCTION public.f(int) ...", None)),
    ]
    # b's own index stays in the swap; the key into a does not need it
    assert sorted(plan(objects, PLAIN)) == [1]
