"""Give freed memory back to the system, so one part's release makes room for the next part."""
from __future__ import annotations

import ctypes
import ctypes.util
import gc

_LIBC = None


def release_memory() -> None:
    """Collect garbage, then ``malloc_trim(0)``.

    Tensors under glibc's mmap threshold (32 MB at most: every q/k/v/o projection of the LLM) live in
    heap arenas, and freeing them does not shrink the process: without the trim, loading the LLM
    again after releasing it grows the peak by the LLM's size.
    """
    global _LIBC
    gc.collect()
    if _LIBC is None:
        name = ctypes.util.find_library("c")
        _LIBC = ctypes.CDLL(name) if name else False
    if _LIBC and hasattr(_LIBC, "malloc_trim"):
        _LIBC.malloc_trim(0)
