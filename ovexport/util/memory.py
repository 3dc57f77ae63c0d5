"""Give memory back to the system: freed heap after one part (``release_memory``), and the pages of a read-only
file mapping once they have been read (``drop_file_pages``, ``FilePageTrimmer``).

OpenVINO reads an IR's ``.bin`` through a read-only shared mapping (``r--s`` in ``/proc/self/maps``): every weight
page the process touches stays in its resident set until the model is freed, although it is a clean page the
kernel can take back at any time. When NNCF compresses the full-size LLM it reads all 5.1 GB of fp16 weights,
so the step's peak RSS was 5.35 GB of such pages plus 3 GB of its own memory (docs/investigations/
2026-12-05-export-memory.md). ``madvise(MADV_DONTNEED)`` on such a mapping unmaps the pages from this process
only: the data stays in the page cache, the file is unchanged, and a later read maps the same bytes back.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import gc
import os
import sys
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path

MADV_DONTNEED = 4

_LIBC = None


def release_memory() -> None:
    """Collect garbage, then ``malloc_trim(0)``.

    Tensors under glibc's mmap threshold (32 MB at most: every q/k/v/o projection of the LLM) live in
    heap arenas, and freeing them does not shrink the process: without the trim, loading the LLM
    again after releasing it grows the peak by the LLM's size.
    """
    gc.collect()
    libc = _libc()
    if libc and hasattr(libc, "malloc_trim"):
        libc.malloc_trim(0)


def _libc():
    global _LIBC
    if _LIBC is None:
        name = ctypes.util.find_library("c")
        _LIBC = ctypes.CDLL(name, use_errno=True) if name else False
    return _LIBC


def read_only_mappings(maps: Iterable[str], files: Iterable[str | os.PathLike]) -> list[tuple[int, int]]:
    """``(start, length)`` of every mapping in ``maps`` (lines of ``/proc/<pid>/maps``) of one of ``files`` that
    is not writable. A writable mapping is left out: dropping its pages could lose changes."""
    wanted = {str(Path(f).resolve()) for f in files}
    out: list[tuple[int, int]] = []
    for line in maps:
        fields = line.split(maxsplit=5)
        if len(fields) < 6 or fields[5].rstrip("\n") not in wanted or "w" in fields[1]:
            continue
        start, end = (int(x, 16) for x in fields[0].split("-"))
        out.append((start, end - start))
    return out


def drop_file_pages(files: Sequence[str | os.PathLike]) -> int:
    """Unmap from this process the resident pages of its read-only mappings of ``files`` (see the module
    docstring); returns the bytes of mappings advised. Does nothing (0) where ``/proc/self/maps`` or
    ``madvise`` is missing."""
    if not files or not sys.platform.startswith("linux"):
        return 0
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as f:
            spans = read_only_mappings(f, files)
    except OSError:
        return 0
    libc = _libc()
    if not libc or not hasattr(libc, "madvise"):
        return 0
    done = 0
    for start, length in spans:
        if libc.madvise(ctypes.c_void_p(start), ctypes.c_size_t(length), MADV_DONTNEED) == 0:
            done += length
    return done


class FilePageTrimmer:
    """``with FilePageTrimmer(files): ...``: every ``interval`` seconds while the block runs, and at its end,
    ``drop_file_pages(files)``. For a block that reads a big mapped file once (NNCF going through the LLM's
    weights): the pages already read leave the resident set instead of adding up to the whole file."""

    def __init__(self, files: Iterable[str | os.PathLike], interval: float = 0.5):
        self.files = [Path(f) for f in files]
        self.interval = interval
        self.dropped = 0       # bytes of mappings advised, summed over the passes
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.dropped += drop_file_pages(self.files)

    def __enter__(self) -> "FilePageTrimmer":
        if self.files:
            self._thread = threading.Thread(target=self._loop, name="ovexport-page-trim", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.dropped += drop_file_pages(self.files)
