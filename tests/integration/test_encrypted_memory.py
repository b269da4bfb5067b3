"""Encrypted streams keep memory bounded by one segment: 256 MiB written and read back
(with the restore's authentication pre-pass) through the storage layer, in a fresh process,
grow its peak RSS by a few segments, not by the stream."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

#: 256 MiB of lines; a leak of the stream would show as hundreds of MB.
CHILD = r"""
import os, sys
from airflow_provider_zenmigrate.core.crypto import Encryption, LocalKey
from airflow_provider_zenmigrate.core.storage import open_for_read, open_for_write

def status(field):
    with open("/proc/self/status") as f:
        return int(next(l for l in f if l.startswith(field + ":")).split()[1]) / 1024

uri, = sys.argv[1:]
encryption = Encryption(LocalKey(os.urandom(32)))
line = os.urandom(511).hex().encode() + b"\n"
count = 256 * 1024 * 1024 // len(line)
with open_for_write(uri + ".warm", encryption=encryption) as out:
    out.write(line)
with open("/proc/self/clear_refs", "w") as refs:
    refs.write("5")
before = status("VmRSS")
with open_for_write(uri, encryption=encryption) as out:
    for _ in range(count):
        out.write(os.urandom(511).hex().encode() + b"\n")
read = 0
with open_for_read(uri, encryption=encryption, authenticate_first=True) as stream:
    while chunk := stream.readline():
        read += 1
assert read == count, (read, count)
print(status("VmHWM") - before, os.path.getsize(uri))
"""


@pytest.mark.parametrize("suffix", [".jsonl", ".jsonl.zst"])
def test_memory_follows_the_segment_not_the_stream(tmp_path: Path, suffix: str) -> None:
    uri = str(tmp_path / f"big{suffix}")
    result = subprocess.run(
        [sys.executable, "-c", CHILD, uri],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    growth_mb, stored = result.stdout.split()
    assert int(stored) > 1024 * 1024  # the stream was written (zstd squeezes hex by half)
    print(f"{suffix}: peak RSS +{float(growth_mb):.1f} MB for 256 MiB encrypted")
    assert float(growth_mb) < 40
