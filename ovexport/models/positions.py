"""Position ids as a family's ``RuntimeAdapter.position_ids`` gives them: int64 ``[T]`` (one row, the usual
``0..T-1``) or ``[R, T]`` (R rows, as M-RoPE's temporal/height/width ids). Every runtime (the generation loop,
the validators, teacher forcing, calibration) turns them into the LLM's ``position_ids`` input with these helpers,
and continues after the prompt at ``max + 1`` on every row (text tokens advance all rows together)."""
from __future__ import annotations

import numpy as np


def sequential(length: int, rows: int = 1, start: int = 0) -> np.ndarray:
    """``start .. start+length-1``: ``[length]``, or the same on each of ``rows`` rows ``[rows, length]``."""
    pos = np.arange(start, start + length, dtype=np.int64)
    return pos if rows == 1 else np.array(np.broadcast_to(pos, (rows, length)))


def rows_of(positions: np.ndarray) -> int:
    return 1 if np.ndim(positions) == 1 else int(np.shape(positions)[0])


def next_position(positions: np.ndarray) -> int:
    """Where the next token goes: one past the largest position used."""
    return int(np.max(positions)) + 1 if np.size(positions) else 0


def batched(positions: np.ndarray, batch: int = 1) -> np.ndarray:
    """The LLM input: ``[B, T]`` for one row, ``[R, B, T]`` for R rows (a new contiguous array)."""
    p = np.asarray(positions, dtype=np.int64)
    if p.ndim == 1:
        return np.array(np.broadcast_to(p, (batch, p.shape[0])))
    return np.array(np.broadcast_to(p[:, None, :], (p.shape[0], batch, p.shape[1])))


def continued(positions: np.ndarray, n: int) -> np.ndarray:
    """``positions`` followed by ``n`` text tokens."""
    return np.concatenate([positions, sequential(n, rows_of(positions), next_position(positions))], axis=-1)


def step(position: int, batch: int = 1, rows: int = 1) -> np.ndarray:
    """One decode step's input: ``[B, 1]`` or ``[R, B, 1]``, every entry ``position``."""
    return np.full((batch, 1) if rows == 1 else (rows, batch, 1), position, dtype=np.int64)
