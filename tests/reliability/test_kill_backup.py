"""SIGKILL of a backup at 20 seeded points, to a local folder and to S3 (moto's server).

Points are drawn per dialect and store from the dry run's trace (see ``killpoints``):
2 while opening/writing the header, 4 in schema records (tables, views, triggers), 10 in data
records, 2 in the trailer, 2 in the publish step (local: fsync and rename of the temporary
file; S3: the last UploadPart and CompleteMultipartUpload of the multipart upload). After each
kill: nothing complete-looking at the final location (no file or key, nothing listed, a
restore of the URI says "not found") and the database unchanged.

One more point per dialect and store is after the commit, before the manifest: the dump is
then complete and verifiable but not listed (the documented "complete but unproven" state).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import URL

from airflow_provider_zenmigrate.core.catalog import list_backups, verify_backup
from airflow_provider_zenmigrate.core.storage import StorageNotFoundError
from airflow_provider_zenmigrate.core.utils import MigrationUtils
from tests.reliability.killpoints import (
    BACKUP_QUOTAS,
    CHUNK_ROWS,
    Event,
    Job,
    build_dataset,
    dry_run,
    kill_at,
    plan,
    slots,
)
from tests.support.identity import fingerprint
from tests.support.servers import database_url, unique_name

pytest_plugins = ["tests.support.object_stores"]


def s3_client(endpoint: str) -> Any:
    # Imported late: pytest_plugins registers (and assertion-rewrites) the module first.
    from tests.support.object_stores import s3_client

    return s3_client(endpoint)


def _s3_keys() -> tuple[str, str]:
    from tests.support.object_stores import S3_ACCESS_KEY, S3_SECRET_KEY

    return S3_ACCESS_KEY, S3_SECRET_KEY


BUCKET = "zenmigrate-test"  # tests.support.object_stores.BUCKET, created by the s3_server fixture

STORES = ["local", "s3"]
#: Compressed both ways, so the compressor's final frame is part of the publish step too.
SUFFIX = {"local": ".jsonl.gz", "s3": ".jsonl.zst"}


@dataclass
class World:
    """One populated source database per dialect, shared by all its kill points (a backup
    never changes it, which every point checks)."""

    dialect: str
    url: URL
    rows: dict[str, int]
    expected: dict[str, Any]
    root: Path
    s3_endpoint: str
    context: Any
    scratch: URL
    run: str = field(default_factory=lambda: uuid.uuid4().hex[:10])
    traces: dict[str, list[Event]] = field(default_factory=dict)
    client: Any = None

    def location(self, store: str, point: str) -> str:
        """A fresh, empty folder or prefix for one point; the dump's URI in it."""
        if store == "local":
            folder = self.root / store / point
            folder.mkdir(parents=True)
            return f"{folder}/backup{SUFFIX[store]}"
        return f"s3://{BUCKET}/kill-{self.run}/{self.dialect}/{point}/backup{SUFFIX[store]}"

    def params(self, store: str) -> dict[str, Any] | None:
        if store == "local":
            return None
        if self.client is None:
            self.client = s3_client(self.s3_endpoint)
        return {"client": self.client}

    def job(self, store: str, uri: str, report: Path, point: int | None) -> Job:
        return Job(
            kind="backup",
            url=self.url.render_as_string(hide_password=False),
            uri=uri,
            report=str(report),
            kill_at=point,
            s3_endpoint=self.s3_endpoint if store == "s3" else None,
            s3_keys=_s3_keys(),
        )

    def trace(self, store: str) -> list[Event]:
        """The dry run's events (a complete backup, which must be listed)."""
        if store not in self.traces:
            uri = self.location(store, "dry-run")
            events = dry_run(self.context, self.job(store, uri, self.root / f"{store}.json", None))
            found = list_backups(uri.rsplit("/", 1)[0] + "/", self.params(store))
            assert [b.tables for b in found] == [self.rows], "the dry run's backup is not listed"
            self.traces[store] = events
        return self.traces[store]

    def points(self, store: str) -> list[Event]:
        return plan(self.trace(store), BACKUP_QUOTAS, f"backup:{self.dialect}:{store}")

    def visible(self, store: str, uri: str) -> list[str]:
        """What a reader of the folder/prefix sees: every non-hidden file, every object."""
        prefix = uri.rsplit("/", 1)[0] + "/"
        if store == "local":
            return sorted(p.name for p in Path(prefix).iterdir() if not p.name.startswith("."))
        key = prefix.split("/", 3)[3]
        self.params(store)
        listed = self.client.list_objects_v2(Bucket=BUCKET, Prefix=key)
        return sorted(item["Key"] for item in listed.get("Contents", []))


class Worlds:
    def __init__(self, request: pytest.FixtureRequest, root: Path, context: Any) -> None:
        self.request = request
        self.root = root
        self.context = context
        self.worlds: dict[str, World] = {}
        self.databases: list[URL] = []

    def get(self, dialect: str) -> World:
        if dialect not in self.worlds:
            endpoint = str(self.request.getfixturevalue("s3_server"))
            folder = self.root / dialect
            folder.mkdir()
            url = self._database(dialect, folder)
            rows = build_dataset(url, "A")
            assert min(rows.values()) > CHUNK_ROWS  # every table spans several data records
            self.worlds[dialect] = World(
                dialect=dialect,
                url=url,
                rows=rows,
                expected=fingerprint(url),
                root=folder,
                s3_endpoint=endpoint,
                context=self.context,
                scratch=self._database(dialect, folder),
            )
        return self.worlds[dialect]

    def _database(self, dialect: str, folder: Path) -> URL:
        url = database_url(dialect, folder, unique_name("zmkillb"))
        with MigrationUtils(url=url, connect_args={}, engine_args={}) as utils:
            utils.create_database()
        self.databases.append(url)
        return url

    def close(self) -> None:
        for url in self.databases:
            with MigrationUtils(url=url, connect_args={}, engine_args={}) as utils:
                utils.drop_database()


@pytest.fixture(scope="module")
def worlds(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, fork_context: Any
) -> Iterator[Worlds]:
    found = Worlds(request, tmp_path_factory.mktemp("kill-backup"), fork_context)
    try:
        yield found
    finally:
        found.close()


def _assert_nothing_published(world: World, store: str, uri: str, point: Event) -> None:
    prefix = uri.rsplit("/", 1)[0] + "/"
    assert world.visible(store, uri) == [], f"{point}: something is visible at {prefix}"
    if store == "local":  # only the hidden temporary file may remain
        assert all(p.name.endswith(".partial") for p in Path(prefix).iterdir()), point
    assert list_backups(prefix, world.params(store)) == [], point
    with (
        MigrationUtils(
            url=world.scratch,
            connect_args={},
            engine_args={},
            transport_params=world.params(store),
        ) as scratch,
        pytest.raises(StorageNotFoundError, match="not found"),
    ):
        scratch.restore_database_from_file(uri)


@pytest.mark.parametrize("store", STORES)
@pytest.mark.parametrize("slot", range(len(slots(BACKUP_QUOTAS))), ids=slots(BACKUP_QUOTAS))
def test_killed_backup_publishes_nothing(
    dialect: str, store: str, slot: int, worlds: Worlds, tmp_path: Path
) -> None:
    world = worlds.get(dialect)
    point = world.points(store)[slot]
    uri = world.location(store, f"p{slot:02d}")
    print(f"{dialect}/{store}: SIGKILL at event {point.index} [{point.category}] {point.label}")
    kill_at(world.context, world.job(store, uri, tmp_path / "report.json", point.index), point)

    _assert_nothing_published(world, store, uri, point)
    assert fingerprint(world.url) == world.expected, f"{point}: the database changed"


@pytest.mark.parametrize("store", STORES)
def test_backup_killed_after_commit_is_complete_but_unlisted(
    dialect: str, store: str, worlds: Worlds, tmp_path: Path
) -> None:
    """Killed between the commit and the manifest: the dump is whole (it verifies and
    restores), but a listing does not show it, as catalog.py documents."""
    world = worlds.get(dialect)
    point = next(e for e in world.trace(store) if e.category == "committed")
    uri = world.location(store, "committed")
    print(f"{dialect}/{store}: SIGKILL at event {point.index} [{point.category}] {point.label}")
    kill_at(world.context, world.job(store, uri, tmp_path / "report.json", point.index), point)

    # the test's own backup; PostgreSQL's trigger functions are routines
    report = verify_backup(uri, world.params(store), allow_routines=True)
    assert report.ok and report.tables == world.rows, report
    assert report.manifest_ok is None  # no manifest was written
    assert list_backups(uri.rsplit("/", 1)[0] + "/", world.params(store)) == []
    with MigrationUtils(
        url=world.scratch, connect_args={}, engine_args={}, transport_params=world.params(store)
    ) as scratch:
        # the test's own backup; PostgreSQL's trigger functions are routines
        summary = scratch.restore_database_from_file(uri, allow_routines=True)
    assert summary.tables == world.rows
    assert fingerprint(world.scratch) == world.expected
    assert fingerprint(world.url) == world.expected
