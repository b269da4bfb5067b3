"""Streams on local files (core/storage/streams.py, local.py): a dump appears at its name
only when its block succeeds, compressed by its suffix; a cut or corrupt one is an integrity
error and a missing one "not found", each naming the location."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from airflow_provider_zenmigrate.core.errors import DumpIntegrityError, StorageNotFoundError
from airflow_provider_zenmigrate.core.storage import backend_for, open_for_read, open_for_write

PAYLOAD = b"".join(b'{"kind":"data","n":%d}\n' % i for i in range(20_000))
MAGIC = {".jsonl": b'{"kind"', ".jsonl.gz": b"\x1f\x8b", ".jsonl.zst": b"\x28\xb5\x2f\xfd"}


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.parametrize("suffix", list(MAGIC))
@pytest.mark.parametrize("as_uri", [False, True], ids=["path", "file-uri"])
def test_written_only_when_complete_and_read_back(
    tmp_path: Path, suffix: str, as_uri: bool
) -> None:
    path = tmp_path / "out" / f"db{suffix}"  # the folder is made on the way
    uri = f"file://{path}" if as_uri else str(path)
    with open_for_write(uri) as stream:
        stream.write(PAYLOAD[:1000])
        assert not path.exists()  # nothing at the final name while it is written
        stream.write(PAYLOAD[1000:])
    assert path.read_bytes().startswith(MAGIC[suffix])
    assert _leftovers(path.parent) == [path.name]
    with open_for_read(uri) as stream:
        assert stream.readline() == PAYLOAD.split(b"\n", 1)[0] + b"\n"
        assert stream.read() == PAYLOAD.split(b"\n", 1)[1]


def test_a_failed_block_publishes_nothing_and_keeps_its_error(tmp_path: Path) -> None:
    path = tmp_path / "db.jsonl.zst"
    with (
        pytest.raises(KeyError, match="the writer's own error"),
        open_for_write(str(path)) as stream,
    ):
        stream.write(PAYLOAD)
        raise KeyError("the writer's own error")
    assert _leftovers(tmp_path) == []


def test_a_failed_block_leaves_an_older_dump_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "db.jsonl"
    path.write_bytes(b"older\n")
    with pytest.raises(RuntimeError), open_for_write(str(path)) as stream:
        stream.write(PAYLOAD)
        raise RuntimeError("stop")
    assert path.read_bytes() == b"older\n"
    assert _leftovers(tmp_path) == ["db.jsonl"]


@pytest.mark.parametrize("suffix", [".jsonl.gz", ".jsonl.zst"])
def test_a_cut_compressed_dump_is_an_integrity_error(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"db{suffix}"
    with open_for_write(str(path)) as stream:
        stream.write(PAYLOAD)
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    with (
        pytest.raises(DumpIntegrityError, match="truncated or corrupt") as caught,
        open_for_read(str(path)) as stream,
    ):
        while stream.read(65536):
            pass
    assert str(path) in str(caught.value)


def test_a_corrupt_gzip_is_an_integrity_error(tmp_path: Path) -> None:
    path = tmp_path / "db.jsonl.gz"
    data = bytearray(gzip.compress(PAYLOAD))
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with (
        pytest.raises(DumpIntegrityError, match="truncated or corrupt"),
        open_for_read(str(path)) as stream,
    ):
        stream.read()


def test_a_missing_dump_is_not_found(tmp_path: Path) -> None:
    missing = tmp_path / "none.jsonl"
    with (
        pytest.raises(StorageNotFoundError, match=f"backup not found: {missing}") as caught,
        open_for_read(str(missing)),
    ):
        pass
    assert isinstance(caught.value, FileNotFoundError)  # callers may catch the builtin


def test_local_backend_lists_stats_and_deletes(tmp_path: Path) -> None:
    for name in ("a.jsonl", "b.jsonl.zst"):
        with open_for_write(str(tmp_path / "nightly" / name)) as stream:
            stream.write(b"x" * 10)
    (tmp_path / "other.jsonl").write_bytes(b"y")
    backend = backend_for(str(tmp_path))
    listed = sorted(backend.list(str(tmp_path / "nightly") + "/"))
    assert [Path(info.key).name for info in listed] == ["a.jsonl", "b.jsonl.zst"]
    assert all(info.modified is not None for info in listed)
    key = str(tmp_path / "nightly" / "a.jsonl")
    info = backend.stat(key)
    assert info is not None and info.size == 10
    backend.delete(key)
    assert backend.stat(key) is None
