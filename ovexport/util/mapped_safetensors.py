"""A safetensors shard mapped read-only: its tensors as zero-copy views, whose pages can be given back after use.

A 16-bit reference model computed in fp32 (a family's ``fp32_compute``) only reads its big weights, a part at a
time. Copied into the process, a multi-GB language model stays resident for a whole validate step; as views of
the shard, its pages are the page cache's, and ``release(tensor)`` after a layer has used them unmaps them
from this process (``madvise(MADV_DONTNEED)`` on a shared read-only mapping: the file and the page cache are
untouched, the next read maps the same bytes back). The mapping is read-only on purpose: code that wrote into a
weight would crash at once instead of having its change silently dropped by a later release.
"""
from __future__ import annotations

import json
import mmap
import struct
import warnings
from pathlib import Path

import torch

_DTYPES = {"BF16": torch.bfloat16, "F16": torch.float16, "F32": torch.float32, "F64": torch.float64,
           "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
           "BOOL": torch.bool}


class MappedSafetensors:
    """``MappedSafetensors(path)``: ``tensor(name)`` views the stored tensor (None where a view is impossible:
    an unknown dtype, an empty or misaligned tensor); ``release(t)`` gives back the pages of a view of this file."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        with open(self.path, "rb") as f:
            self._mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        (header_len,) = struct.unpack("<Q", self._mm[:8])
        self.header = json.loads(self._mm[8:8 + header_len])
        self.header.pop("__metadata__", None)
        self._data_start = 8 + header_len
        self._base = self._view(torch.uint8, 0, 1).data_ptr()

    def _view(self, dtype: torch.dtype, offset: int, count: int) -> torch.Tensor:
        with warnings.catch_warnings():   # "not writable": on purpose (see the module docstring)
            warnings.simplefilter("ignore", UserWarning)
            return torch.frombuffer(self._mm, dtype=dtype, count=count, offset=offset)

    def tensor(self, name: str) -> torch.Tensor | None:
        info = self.header[name]
        dtype = _DTYPES.get(info["dtype"])
        begin, end = info["data_offsets"]
        if dtype is None or end <= begin:
            return None
        item = dtype.itemsize
        offset = self._data_start + begin
        if offset % item or (end - begin) % item:
            return None
        return self._view(dtype, offset, (end - begin) // item).view(info["shape"])

    def holds(self, t: torch.Tensor) -> bool:
        start = t.data_ptr() - self._base
        return 0 <= start and start + t.numel() * t.element_size() <= len(self._mm)

    def release(self, t: torch.Tensor) -> None:
        """Unmap from this process the pages under view ``t`` (whole pages: a neighbour's edge page goes too and is
        mapped back at its next read). A tensor that is not a view of this file is left alone."""
        if not self.holds(t):
            return
        start = t.data_ptr() - self._base
        page = mmap.PAGESIZE
        first = start - start % page
        end = min(len(self._mm), -(-(start + t.numel() * t.element_size()) // page) * page)
        self._mm.madvise(mmap.MADV_DONTNEED, first, end - first)
