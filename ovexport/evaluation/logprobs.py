"""Log-probabilities from logits: what both reference sides store (its own module so that the reference cache's
key digests only the code that decides those numbers, not the metrics computed from them)."""
from __future__ import annotations

import numpy as np


def log_softmax(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float64)
    m = x.max(-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(-1, keepdims=True))
