"""Logits processing and sampling in numpy, with Hugging Face ``generate`` semantics.

Order, as HF applies them: repetition penalty, then temperature, top-k, top-p, then a draw from the
softmax of what is left. Everything works on one row of ``[V]`` float32 scores; the caller passes a
copy when the scores are a view it must not change (the logits tensor of an infer request).

No OpenVINO here: this module is unit-tested on plain arrays.
"""
from __future__ import annotations

from collections.abc import Iterable

import numpy as np

__all__ = ["log_softmax", "apply_repetition_penalty", "top_k_mask", "top_p_keep", "Sampler"]

NEG_INF = np.float32(-np.inf)


def log_softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """float32 log-softmax along ``axis`` (a new array)."""
    x = np.asarray(x, dtype=np.float32)
    m = x.max(axis=axis, keepdims=True)
    z = x - m
    return z - np.log(np.exp(z).sum(axis=axis, keepdims=True))


def apply_repetition_penalty(scores: np.ndarray, previous: Iterable[int] | np.ndarray | list, penalty: float
                             ) -> np.ndarray:
    """In place, HF's ``RepetitionPenaltyLogitsProcessor``: for every token id already generated, a negative
    score is multiplied by ``penalty`` and a positive one divided by it (each id once, however often it
    occurred). ``scores`` is ``[V]`` with ``previous`` a sequence of ids, or ``[B, V]`` with ``previous`` a
    list of B sequences (or a ``[B, T]`` array). Returns ``scores``."""
    if penalty == 1.0:
        return scores
    p = np.float32(penalty)
    if scores.ndim == 1:
        rows = [(scores, previous)]
    else:
        rows = list(zip(scores, previous))
    for row, ids in rows:
        ids = np.unique(np.asarray(ids, dtype=np.int64).reshape(-1))
        ids = ids[(ids >= 0) & (ids < row.shape[-1])]
        if ids.size == 0:
            continue
        s = row[ids]
        row[ids] = np.where(s < 0, s * p, s / p)
    return scores


def top_k_mask(scores: np.ndarray, k: int) -> np.ndarray:
    """Boolean keep-mask of HF's ``TopKLogitsWarper``: scores >= the k-th largest (ties at the k-th kept)."""
    k = min(int(k), scores.shape[-1])
    kth = np.partition(scores, -k, axis=-1)[..., -k, None]
    return scores >= kth


def top_p_keep(sorted_desc_logits: np.ndarray, top_p: float, log_norm: float | None = None) -> int:
    """How many of the candidates (logits sorted in descending order) HF's ``TopPLogitsWarper`` keeps.

    HF removes a token when the probability mass of the tokens ranked strictly above it is >= ``top_p``
    (it sorts ascending and drops ``cumsum <= 1 - top_p``); at least one token is kept. ``log_norm`` is the
    log-sum-exp of ALL scores when ``sorted_desc_logits`` is only the head of the distribution; None when it is
    the whole (remaining) distribution. Returns 0 when the head does not hold ``top_p`` of the mass (the
    caller must then look at more candidates)."""
    x = np.asarray(sorted_desc_logits, dtype=np.float32)
    if log_norm is None:
        m = x[0]
        e = np.exp(x - m)
        probs = e / e.sum()
    else:
        probs = np.exp(x - np.float32(log_norm))
    above = np.cumsum(probs) - probs  # mass strictly above each token
    keep = int(np.count_nonzero(above < np.float32(top_p)))
    if log_norm is not None and keep == len(x) and float(probs.sum()) < top_p:
        return 0  # the nucleus may extend past the head
    return max(keep, 1)


class Sampler:
    """Draws one token per call from ``[V]`` scores: repetition penalty, temperature, top-k, top-p.

    ``seed`` seeds a numpy ``Generator``: the same seed and the same logits give the same tokens.
    Without top-k, a nucleus that fits in the best ``head`` candidates is found without sorting the
    whole vocabulary.
    """

    def __init__(self, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
                 repetition_penalty: float = 1.0, seed: int | None = None, head: int = 1024):
        self.temperature = float(temperature)
        self.top_k = int(top_k)
        self.top_p = float(top_p)
        self.repetition_penalty = float(repetition_penalty)
        self.rng = np.random.default_rng(seed)
        self.head = int(head)

    def candidates(self, scores: np.ndarray, previous=()) -> tuple[np.ndarray, np.ndarray]:
        """(token ids, probabilities) of the distribution a token is drawn from, best first.

        ``scores`` ([V] float32) is changed in place by the repetition penalty: pass a copy."""
        apply_repetition_penalty(scores, previous, self.repetition_penalty)
        v = scores.shape[-1]
        t = np.float32(self.temperature) if self.temperature > 0 else np.float32(1.0)
        if self.top_k > 0 and self.top_k < v:
            keep = top_k_mask(scores, self.top_k)
            ids = np.flatnonzero(keep)
        else:
            ids = None
        if ids is not None:
            logits = scores[ids] / t if t != 1 else scores[ids]
            order = np.argsort(-logits, kind="stable")
            ids, logits = ids[order], logits[order]
            if self.top_p < 1.0:
                n = top_p_keep(logits, self.top_p)
                ids, logits = ids[:n], logits[:n]
        else:
            scaled = scores / t if t != 1 else scores
            ids = logits = None
            if self.top_p < 1.0 and self.head < v:
                head = np.argpartition(scaled, -self.head)[-self.head:]
                hl = scaled[head]
                order = np.argsort(-hl, kind="stable")
                head, hl = head[order], hl[order]
                m = hl[0]
                log_norm = m + np.log(np.exp(scaled - m).sum())
                n = top_p_keep(hl, self.top_p, float(log_norm))
                if n:
                    ids, logits = head[:n], hl[:n]
            if ids is None:
                order = np.argsort(-scaled, kind="stable")
                ids, logits = order, scaled[order]
                if self.top_p < 1.0:
                    n = top_p_keep(logits, self.top_p)
                    ids, logits = ids[:n], logits[:n]
        e = np.exp(logits - logits[0])
        return ids, e / e.sum()

    def __call__(self, scores: np.ndarray, previous=()) -> int:
        if self.temperature <= 0:  # temperature 0 means greedy, as many UIs use it
            apply_repetition_penalty(scores, previous, self.repetition_penalty)
            return int(scores.argmax())
        ids, probs = self.candidates(scores, previous)
        if len(ids) == 1:
            return int(ids[0])
        c = np.cumsum(probs, dtype=np.float64)
        i = int(np.searchsorted(c, self.rng.random() * c[-1], side="right"))
        return int(ids[min(i, len(ids) - 1)])
