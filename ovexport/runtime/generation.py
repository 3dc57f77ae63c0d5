"""The generation loop on a stateful LLM IR: numpy only between infer calls.

``Decoder`` drives ``BundleModels`` (or anything with ``reset()`` and ``lm_step(embeds, mask, pos, beam_idx)``
returning the last position's logits): greedy, sampling and beam search share the prefill and the step.
Per token, Python does: one text-embedding infer of the new id (scaled by the caller's ``embed_next``), one
LLM infer with shared-memory inputs (the attention mask is a view of a preallocated buffer of ones, the
position id a reused 1x1 array), and an argmax or a draw on the logits row, which is a view of the output
tensor (copied only when a processor must change it).
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

import numpy as np

from ovexport.errors import InputError
from ovexport.models import positions as pos_ids
from ovexport.models.interface import GenerationPresets

from .beam import BeamResult, beam_search
from .sampling import Sampler, apply_repetition_penalty

__all__ = ["GenerationConfig", "Decoder", "greedy_decode"]


@dataclass
class GenerationConfig:
    """How to pick tokens. The default is plain greedy; ``sampling(presets)`` and ``beam(presets)`` give the model's
    own defaults (``RuntimeAdapter.generation_presets``: its family's, with its generation_config.json applied).

    ``repetition_penalty`` penalises the tokens generated so far (not the prompt: the original passes only
    embeddings to ``generate``, so HF's processor sees only the new ids). ``stop_strings``: generation stops
    once the answer text contains one of them (the text keeps it, as HF does). ``min_new_tokens``: EOS is
    not allowed before that many tokens (benchmarks use it to decode a fixed number of tokens).
    """

    max_new_tokens: int = 64
    do_sample: bool = False
    num_beams: int = 1
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    repetition_penalty: float = 1.0
    length_penalty: float = 1.0
    seed: int | None = None
    stop_strings: tuple[str, ...] = ()
    min_new_tokens: int = 0

    @classmethod
    def greedy(cls, **overrides) -> "GenerationConfig":
        return cls(**overrides)

    @classmethod
    def sampling(cls, presets: GenerationPresets, **overrides) -> "GenerationConfig":
        """The model's sampling preset (top-p, top-k, temperature, repetition penalty), then ``overrides``."""
        return cls(**{**presets.sampling, "do_sample": True, **overrides})

    @classmethod
    def beam(cls, presets: GenerationPresets, **overrides) -> "GenerationConfig":
        """The model's beam-search preset (number of beams, repetition penalty), then ``overrides``."""
        return cls(**{**presets.beam, **overrides})

    def updated(self, **changes) -> "GenerationConfig":
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    @property
    def mode(self) -> str:
        return "beam" if self.num_beams > 1 else ("sample" if self.do_sample else "greedy")

    def check(self) -> "GenerationConfig":
        """Raise ``InputError`` for values that make no sense; returns self."""
        fix = "see `ovexport chat --help` for the valid ranges"
        if self.max_new_tokens < 1:
            raise InputError(f"max_new_tokens is {self.max_new_tokens}, it must be at least 1", fix=fix)
        if self.num_beams < 1:
            raise InputError(f"num_beams is {self.num_beams}, it must be at least 1", fix=fix)
        if self.num_beams > 1 and self.do_sample:
            raise InputError("beam search and sampling were both asked for",
                             fix="pass either --num-beams N or --sample, not both")
        if self.temperature < 0:
            raise InputError(f"temperature is {self.temperature}, it must be >= 0", fix=fix)
        if not 0.0 < self.top_p <= 1.0:
            raise InputError(f"top_p is {self.top_p}, it must be in (0, 1]", fix=fix)
        if self.top_k < 0:
            raise InputError(f"top_k is {self.top_k}, it must be >= 0 (0 = off)", fix=fix)
        if self.repetition_penalty <= 0:
            raise InputError(f"repetition_penalty is {self.repetition_penalty}, it must be > 0 (1 = off)", fix=fix)
        if self.min_new_tokens < 0:
            raise InputError(f"min_new_tokens is {self.min_new_tokens}, it must be >= 0", fix=fix)
        if any(not s for s in self.stop_strings):
            raise InputError("an empty stop string would stop at once", fix="remove the empty stop string")
        return self


@dataclass
class DecodeStats:
    prefill_s: float = 0.0         # the prefill infer (until the first logits)
    first_token_at: float = 0.0    # perf_counter() when the first token was chosen
    decode_s: float = 0.0          # from the first token to the last
    steps: int = 0                 # LLM infer calls after the prefill


class Decoder:
    """Token generation on a stateful LLM. ``embed_next(ids[B, 1]) -> [B, 1, D]`` gives the (scaled) input
    embeddings of new token ids."""

    def __init__(self, models, embed_next: Callable[[np.ndarray], np.ndarray], eos_ids):
        self.models = models
        self.embed_next = embed_next
        self.eos_ids = frozenset(int(e) for e in eos_ids)
        self._eos = np.asarray(sorted(self.eos_ids), dtype=np.int64)
        self._ones = np.ones(0, dtype=np.int64)
        self._pos = np.zeros((1, 1), dtype=np.int64)
        self.length = 0  # positions in the KV cache
        self.next_pos = 0  # the next token's position id (past the prompt's largest, on every row)
        self.rows = 1      # rows of position ids (1, or e.g. 3 for M-RoPE)
        self.epoch = 0     # counts state resets: a KV cache kept for later is valid while the epoch is unchanged
        self.reused = 0    # positions the last prefill took from the KV cache
        self.stats = DecodeStats()

    # low level ---------------------------------------------------------------------------------------
    def _mask(self, batch: int, length: int) -> np.ndarray:
        """A contiguous [batch, length] view of ones (no allocation per step)."""
        n = batch * length
        if self._ones.size < n:
            self._ones = np.ones(max(n, 2 * self._ones.size, 4096), dtype=np.int64)
        return self._ones[:n].reshape(batch, length)

    def prefill(self, embeds: np.ndarray, positions: np.ndarray | None = None, reuse: int = 0) -> np.ndarray:
        """Run the prompt ``embeds`` [B, T, D] at ``positions`` (the family adapter's ``[T]`` or ``[R, T]``;
        default ``0..T-1``); returns the last position's logits [B, V] (a view). The state is reset first, unless
        ``reuse`` > 0: then the first ``reuse`` positions of this very prompt are the first ones the KV cache holds
        (the conversation so far): the cache is cut to them and only the rest is run."""
        t0 = time.perf_counter()
        b, t = embeds.shape[:2]
        positions = pos_ids.sequential(t) if positions is None else np.asarray(positions, dtype=np.int64)
        if reuse:
            if not 0 < reuse < t or reuse > self.length:
                raise ValueError(f"cannot re-use {reuse} cached positions (the cache holds {self.length}, the "
                                 f"prompt is {t})")
            if reuse < self.length and not self.models.trim_state(reuse, self.length):
                reuse = 0
        if not reuse:
            self.models.reset()
            self.epoch += 1
        self.length = t
        self.rows, self.next_pos = pos_ids.rows_of(positions), pos_ids.next_position(positions)
        self.reused = reuse
        logits = self.models.lm_step(np.ascontiguousarray(embeds[:, reuse:], dtype=np.float32), self._mask(b, t),
                                     pos_ids.batched(positions[..., reuse:], b), np.zeros(b, dtype=np.int32))
        self.stats = DecodeStats(prefill_s=time.perf_counter() - t0)
        return logits

    def step(self, tokens: np.ndarray, beam_idx: np.ndarray | None = None) -> np.ndarray:
        """Feed one token per row (reordering the cache by ``beam_idx`` first); returns logits [B, V] (a view)."""
        b = tokens.shape[0]
        pos = self.next_pos
        self.next_pos += 1
        self.length += 1
        if b == 1 and self.rows == 1:
            self._pos[0, 0] = pos
            position_ids = self._pos
        else:
            position_ids = pos_ids.step(pos, b, self.rows)
        if beam_idx is None:
            beam_idx = np.arange(b, dtype=np.int32)
        emb = self.embed_next(tokens.reshape(b, 1).astype(np.int64, copy=False))
        self.stats.steps += 1
        return self.models.lm_step(np.ascontiguousarray(emb, dtype=np.float32), self._mask(b, self.length),
                                   position_ids, np.ascontiguousarray(beam_idx, dtype=np.int32))

    # decoding ----------------------------------------------------------------------------------------
    def iter_tokens(self, prefill: np.ndarray, config: GenerationConfig,
                    positions: np.ndarray | None = None, reuse: int = 0) -> Iterator[int]:
        """Greedy or sampled tokens, one at a time (EOS included, then the iterator ends). Closing the
        iterator stops generation. ``positions``, ``reuse``: see ``prefill``. Every token but the last is fed
        back: the KV cache then holds the prompt and the answer without its last token."""
        if config.num_beams > 1:
            raise ValueError("iter_tokens does greedy/sampling only; use beam() for beam search")
        logits = self.prefill(prefill, positions, reuse)
        sampler = None
        if config.do_sample:
            sampler = Sampler(config.temperature, config.top_k, config.top_p, config.repetition_penalty,
                              config.seed)
        rep = config.repetition_penalty
        tokens: list[int] = []
        buf = np.empty(0, dtype=np.int64)
        tok_arr = np.zeros((1, 1), dtype=np.int64)
        t_first = None
        try:
            while True:
                row = logits[0]
                n = len(tokens)
                if sampler is not None or rep != 1.0 or n < config.min_new_tokens:
                    row = np.array(row, dtype=np.float32)  # processors change the scores: copy the view
                    if n < config.min_new_tokens and len(self._eos):
                        row[self._eos] = -np.inf
                    if sampler is not None:
                        tok = sampler(row, buf[:n])
                    else:
                        apply_repetition_penalty(row, buf[:n], rep)
                        tok = int(row.argmax())
                else:
                    tok = int(row.argmax())
                if t_first is None:
                    t_first = time.perf_counter()
                    self.stats.first_token_at = t_first
                tokens.append(tok)
                if rep != 1.0:
                    if buf.size < len(tokens):
                        buf = np.resize(buf, max(64, 2 * len(tokens)))
                    buf[n] = tok
                yield tok
                if tok in self.eos_ids or len(tokens) >= config.max_new_tokens:
                    return
                tok_arr[0, 0] = tok
                logits = self.step(tok_arr)
        finally:
            if t_first is not None:
                self.stats.decode_s = time.perf_counter() - t_first

    def beam(self, prefill: np.ndarray, config: GenerationConfig,
             is_stop: Callable[[np.ndarray], bool] | None = None, positions: np.ndarray | None = None) -> BeamResult:
        """Beam search (see ``beam.py``); ``is_stop(new_tokens)`` ends a beam early (stop strings)."""
        first = self.prefill(prefill, positions)
        t0 = time.perf_counter()
        self.stats.first_token_at = t0
        result = beam_search(np.array(first, dtype=np.float32), lambda toks, idx: self.step(toks, idx),
                             num_beams=config.num_beams, max_new_tokens=config.max_new_tokens,
                             eos_ids=self.eos_ids, repetition_penalty=config.repetition_penalty,
                             length_penalty=config.length_penalty, min_new_tokens=config.min_new_tokens,
                             is_stop=is_stop)
        self.stats.decode_s = time.perf_counter() - t0
        return result


def greedy_decode(models, prefill: np.ndarray, embed_next: Callable[[np.ndarray], np.ndarray], eos_ids: set[int],
                  max_new_tokens: int, on_token: Callable[[int], bool | None] | None = None,
                  positions: np.ndarray | None = None) -> list[int]:
    """Greedy tokens after ``prefill`` ([1, T, D] embeddings at ``positions``, default ``0..T-1``). ``on_token``
    returning True stops early."""
    tokens: list[int] = []
    it = Decoder(models, embed_next, eos_ids).iter_tokens(prefill, GenerationConfig(max_new_tokens=max_new_tokens),
                                                          positions)
    for tok in it:
        tokens.append(tok)
        if on_token is not None and on_token(tok) and tok not in eos_ids:
            it.close()
            break
    return tokens
