"""The order a parallel restore hands out its parts and its early builds (indexes, keys)
in: a build once its tables are loaded, never beside a build whose lock conflicts, foreign
keys after every other build."""

from __future__ import annotations

from airflow_provider_zenmigrate.core.dialects.base import StagedBuild
from airflow_provider_zenmigrate.core.parts.manifest import PartEntry
from airflow_provider_zenmigrate.core.parts.restore import _PartScheduler, _RestoreScheduler


def _part(n: int, table: str) -> PartEntry:
    return PartEntry(f"p{n}", "data", "d", 1, 1, table)


def _build(line: int, tables: set[str], shared: bool = False, late: bool = False) -> StagedBuild:
    return StagedBuild(line, f"b{line}", "stmt", frozenset(tables), shared, late)


def _scheduler(parts: list[PartEntry], builds: list[StagedBuild]) -> _RestoreScheduler:
    return _RestoreScheduler(_PartScheduler(parts, set(), lambda _p, _r: None), builds)


def test_a_build_waits_for_its_tables_parts_and_runs_beside_the_others() -> None:
    a1, a2, b1 = _part(1, "a"), _part(2, "a"), _part(3, "b")
    index_a, key_b = _build(10, {"a"}, shared=True), _build(11, {"b"})
    s = _scheduler([a1, a2, b1], [index_a, key_b])
    assert s.next_task() == a1  # a's first part loads alone
    assert s.next_task() == b1
    assert s.next_task() is None
    s.done(b1, 1)
    assert s.next_task() == key_b  # b is loaded: its key builds while a loads
    assert s.next_task() is None  # a2 waits for a's first part, the index for both
    s.done(a1, 1)
    assert s.next_task() == a2
    assert s.next_task() is None
    s.done(a2, 1)
    assert s.next_task() == index_a
    s.done(key_b, 0)
    s.done(index_a, 0)
    assert s.finished()


def test_locks_and_foreign_keys_keep_their_order() -> None:
    idx1, idx2 = _build(1, {"a"}, shared=True), _build(2, {"a"}, shared=True)
    pkey, fk = _build(3, {"a"}), _build(4, {"a", "b"}, late=True)
    s = _scheduler([], [fk, idx1, pkey, idx2])
    assert s.next_task() == idx1
    assert s.next_task() == idx2  # two CREATE INDEX share the table
    assert s.next_task() is None  # the key's ALTER TABLE waits for them; the FK for all
    s.done(idx1, 0)
    assert s.next_task() is None
    s.done(idx2, 0)
    assert s.next_task() == pkey
    assert s.next_task() is None
    s.done(pkey, 0)
    assert s.next_task() == fk
    assert not s.finished()
    s.done(fk, 0)
    assert s.finished()
