"""Dropping the pages of a read-only file mapping from the resident set (``util.memory``): what compress does while
NNCF reads the mapped LLM IR."""
from __future__ import annotations

import mmap
import sys
import time
from pathlib import Path

import pytest

from ovexport.util.memory import FilePageTrimmer, drop_file_pages, read_only_mappings

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from proc_status import rss_file  # noqa: E402

pytestmark = [pytest.mark.unit, pytest.mark.timeout(60)]
linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self")

SIZE = 64 * 2**20


def test_read_only_mappings_of_the_named_files_only(tmp_path):
    target = tmp_path / "model.bin"
    other = tmp_path / "other.bin"
    maps = [
        f"7f0000000000-7f0000100000 r--s 00000000 fe:00 11 {target}\n",
        f"7f0000200000-7f0000300000 rw-s 00000000 fe:00 11 {target}\n",      # writable: never dropped
        f"7f0000400000-7f0000480000 r--p 00100000 fe:00 11 {target}\n",
        f"7f0000500000-7f0000600000 r--s 00000000 fe:00 12 {other}\n",
        "7f0000700000-7f0000800000 rw-p 00000000 00:00 0 \n",                   # anonymous
        "7f0000900000-7f0000a00000 r--s 00000000 fe:00 13 [vvar]\n",
        f"7f0000b00000-7f0000c00000 r--s 00000000 fe:00 11 {target} (deleted)\n",
    ]
    assert read_only_mappings(maps, [target]) == [(0x7f0000000000, 0x100000), (0x7f0000400000, 0x80000)]
    assert read_only_mappings(maps, [other, target]) == [(0x7f0000000000, 0x100000), (0x7f0000400000, 0x80000),
                                                         (0x7f0000500000, 0x100000)]
    assert read_only_mappings(maps, []) == []



def touch(m: mmap.mmap) -> int:
    return sum(m[i] for i in range(0, len(m), mmap.PAGESIZE))


@pytest.fixture
def mapped(tmp_path):
    path = tmp_path / "weights.bin"
    data = bytes(range(256)) * (SIZE // 256)
    path.write_bytes(data)
    with open(path, "rb") as f:
        m = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    try:
        yield path, m, data
    finally:
        m.close()


@linux_only
def test_dropped_pages_leave_the_resident_set_and_read_back_the_same(mapped):
    path, m, data = mapped
    before = rss_file()
    checksum = touch(m)
    assert rss_file() - before > SIZE * 0.9          # reading the mapping made it resident
    assert drop_file_pages([path]) == SIZE
    assert rss_file() - before < SIZE * 0.1
    assert touch(m) == checksum and m[:4096] == data[:4096] and m[-4096:] == data[-4096:]


@linux_only
def test_trimmer_keeps_a_reader_below_the_file_size(mapped):
    path, m, _ = mapped
    base = rss_file()
    peak = 0
    with FilePageTrimmer([path], interval=0.01) as trimmer:
        for start in range(0, SIZE, SIZE // 16):    # read in 16 slices, slowly enough for the trimmer to run
            for i in range(start, start + SIZE // 16, mmap.PAGESIZE):
                m[i]
            time.sleep(0.05)
            peak = max(peak, rss_file() - base)
    assert trimmer.dropped >= SIZE
    assert peak < SIZE / 2
    assert rss_file() - base < SIZE * 0.1


def test_nothing_to_trim_is_a_no_op(tmp_path):
    assert drop_file_pages([]) == 0
    assert drop_file_pages([Path(tmp_path) / "not-mapped.bin"]) == 0
    with FilePageTrimmer([]) as t:
        pass
    assert t.dropped == 0
