"""Write safetensors shards tensor by tensor: peak memory is one tensor, whatever the shard size.

The format is an 8-byte little-endian header length, a JSON header of
``name -> {dtype, shape, data_offsets}``, then the raw bytes in header order.
"""
from __future__ import annotations

import json
import os
import struct
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

_DTYPES = {torch.float32: ("F32", 4), torch.float16: ("F16", 2), torch.bfloat16: ("BF16", 2),
           torch.int64: ("I64", 8), torch.int32: ("I32", 4)}


def nbytes(shape: Sequence[int], dtype: torch.dtype) -> int:
    n = 1
    for s in shape:
        n *= int(s)
    return n * _DTYPES[dtype][1]


def write_shard(path: Path, specs: Sequence[tuple[str, tuple[int, ...]]], dtype: torch.dtype,
                make: Callable[[str, tuple[int, ...]], torch.Tensor],
                on_tensor: Callable[[int], None] | None = None, metadata: dict[str, str] | None = None) -> int:
    """Write ``specs`` (name, shape) to ``path``; ``make(name, shape)`` returns each tensor when its turn comes.

    Returns the number of data bytes. The file is written to ``path`` + ".partial" and renamed at the end.
    """
    header: dict[str, object] = {"__metadata__": metadata or {"format": "pt"}}
    offset = 0
    for name, shape in specs:
        size = nbytes(shape, dtype)
        header[name] = {"dtype": _DTYPES[dtype][0], "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)                      # the data starts 8-byte aligned
    tmp = Path(str(path) + ".partial")
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        for name, shape in specs:
            t = make(name, shape).to(dtype).contiguous()
            if tuple(t.shape) != tuple(shape):
                raise ValueError(f"{name}: made shape {tuple(t.shape)}, declared {shape}")
            f.write(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
            if on_tensor:
                on_tensor(t.numel())
            del t
    os.replace(tmp, path)
    return offset
