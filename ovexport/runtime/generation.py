"""The generation loop on a stateful LLM IR: numpy only between infer calls."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass
class GenerationConfig:
    max_new_tokens: int = 64
    do_sample: bool = False
    num_beams: int = 1
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    repetition_penalty: float = 1.0
    seed: int | None = None
    stop_strings: tuple[str, ...] = ()


def greedy_decode(models, prefill: np.ndarray, embed_next: Callable[[np.ndarray], np.ndarray], eos_ids: set[int],
                  max_new_tokens: int, on_token: Callable[[int], bool | None] | None = None) -> list[int]:
    """Greedy tokens after ``prefill`` ([1, T, D] embeddings). ``on_token`` returning True stops early."""
    t = prefill.shape[1]
    models.reset()
    beam = np.zeros(1, dtype=np.int32)
    logits = models.lm_step(prefill.astype(np.float32, copy=False), np.ones((1, t), np.int64),
                            np.arange(t, dtype=np.int64)[None], beam)
    tokens: list[int] = []
    while len(tokens) < max_new_tokens:
        tok = int(logits[0].argmax())
        tokens.append(tok)
        if tok in eos_ids or (on_token is not None and on_token(tok)) or len(tokens) == max_new_tokens:
            break
        pos = t + len(tokens) - 1
        logits = models.lm_step(embed_next(np.array([[tok]], np.int64)), np.ones((1, pos + 1), np.int64),
                                np.array([[pos]], np.int64), beam)
    return tokens
