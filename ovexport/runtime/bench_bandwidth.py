"""The memory-bandwidth floor of decoding: how fast this machine reads RAM, measured now, and the decode speed
that allows when every generated token reads all the language model's weights once."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np


def memory_read_bandwidth(n_bytes: int = 1 << 30, repeats: int = 5) -> float:
    """Bytes/s this machine reads from RAM, measured now: every core sums its share of a buffer much
    larger than the caches (numpy releases the GIL in reductions); best of ``repeats``."""
    import os
    from concurrent.futures import ThreadPoolExecutor

    buf = np.ones(n_bytes // 4, dtype=np.float32)
    workers = os.cpu_count() or 1
    chunks = np.array_split(buf, workers)
    best = float("inf")
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for _ in range(repeats):
            t0 = time.perf_counter()
            list(pool.map(np.sum, chunks))
            best = min(best, time.perf_counter() - t0)
    return buf.nbytes / best


def decode_bound(bundle: Path, bandwidth: float) -> dict:
    """Decode speed limit set by memory bandwidth: every generated token reads all LLM weights once.

    Bytes per token = the bundle's LLM IR's .bin (int4/int8 weights + scales + zero points; the KV cache and
    activations are left out, so the bound is slightly optimistic for long contexts).
    """
    from ovexport.bundle.layout import LANGUAGE_MODEL

    weights = (Path(bundle) / LANGUAGE_MODEL).with_suffix(".bin").stat().st_size
    return {"llm_weight_bytes": weights, "read_bandwidth_gb_s": round(bandwidth / 1e9, 2),
            "decode_limit_tokens_per_s": round(bandwidth / weights, 2)}
