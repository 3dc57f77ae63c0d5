"""Beam search in numpy, with the rules of Hugging Face ``generate(num_beams=N)`` (``early_stopping=False``).

Per step, for the running beams (scores = sum of log-probs so far):

1. ``log_softmax`` of the next-token logits, then the logits processors on those log-probs (as HF does in
   beam search): EOS masked before ``min_new_tokens``, repetition penalty over each beam's generated tokens;
2. the ``max(2, 1 + n_eos) * num_beams`` best continuations over all beams (accumulated log-probs);
3. continuations that hit a stop (EOS, the length limit, a stop string) and rank among the first
   ``num_beams`` become finished hypotheses with score ``sum_logprobs / generated_len ** length_penalty``
   (the generated length counts the EOS); the best ``num_beams`` finished hypotheses are kept;
4. the best ``num_beams`` continuations that did not stop are the next running beams; the model's KV cache is
   reordered with their source beam (the stateful IR's ``beam_idx`` input);
5. stop when every finished slot is filled and the best running beam, normalised at the current length,
   cannot beat the worst finished one; or when every continuation stopped.

The first step runs on the prefill's single row (HF runs ``num_beams`` identical rows with the scores of all
beams but the first at -1e9: the same choice). The model is a callback, so this is tested without OpenVINO.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .sampling import apply_repetition_penalty, log_softmax

__all__ = ["BeamResult", "beam_search"]

_NEG = np.float32(-1.0e9)


@dataclass
class BeamResult:
    tokens: list[int]       # the best hypothesis, new tokens only (with its EOS when it ended on one)
    score: float            # sum of (processed) log-probs / len(tokens) ** length_penalty
    sum_logprobs: float
    steps: int              # model steps after the prefill


def _top(x: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest values of a 1-D array, best first (stable among ties)."""
    if k < x.shape[0]:
        idx = np.argpartition(-x, k - 1)[:k]
    else:
        idx = np.arange(x.shape[0])
    return idx[np.argsort(-x[idx], kind="stable")]


def beam_search(first_logits: np.ndarray, step: Callable[[np.ndarray, np.ndarray], np.ndarray], *,
                num_beams: int, max_new_tokens: int, eos_ids, repetition_penalty: float = 1.0,
                length_penalty: float = 1.0, min_new_tokens: int = 0,
                is_stop: Callable[[np.ndarray], bool] | None = None) -> BeamResult:
    """Best hypothesis of a beam search.

    ``first_logits``: [rows, V] next-token logits after the prefill (rows = 1 or ``num_beams`` identical rows).
    ``step(tokens[nb], beam_idx[nb]) -> [nb, V]``: reorder the cache by ``beam_idx`` (source beam of each new
    row in the previous call's batch), feed ``tokens`` and return the next logits.
    ``is_stop(tokens)``: True when a candidate sequence (new tokens) must end here (stop strings).
    """
    nb = int(num_beams)
    eos = np.asarray(sorted(int(e) for e in eos_ids), dtype=np.int64)
    keep = max(2, 1 + len(eos)) * nb
    lp = float(length_penalty)
    max_new = int(max_new_tokens)

    run_tok = np.zeros((nb, max_new), dtype=np.int64)
    run_score = np.full(nb, _NEG, dtype=np.float32)
    run_score[0] = 0.0
    fin_tok = np.zeros((nb, max_new), dtype=np.int64)
    fin_len = np.zeros(nb, dtype=np.int64)
    fin_score = np.full(nb, _NEG, dtype=np.float32)
    fin_done = np.zeros(nb, dtype=bool)
    top_ranks = np.arange(keep) < nb
    unsatisfied = True

    logits = np.asarray(first_logits)[:1]  # identical rows: beams 1.. have score -1e9 and are never picked
    cur, steps = 0, 0
    while True:
        rows, vocab = logits.shape
        logp = log_softmax(logits)
        if cur < min_new_tokens and len(eos):
            logp[:, eos] = -np.inf
        if repetition_penalty != 1.0 and cur > 0:
            apply_repetition_penalty(logp, run_tok[:rows, :cur], repetition_penalty)
        acc = (logp + run_score[:rows, None]).reshape(-1)
        cand = _top(acc, min(keep, acc.shape[0]))
        cand_score = acc[cand].astype(np.float32)
        cand_beam = cand // vocab
        cand_tok = cand % vocab
        hits = np.isin(cand_tok, eos) | (cur + 1 >= max_new)
        if is_stop is not None:
            for c in np.flatnonzero(~hits):
                seq = np.append(run_tok[cand_beam[c], :cur], cand_tok[c])
                hits[c] = bool(is_stop(seq))
        ranks = top_ranks[:len(cand)]

        # next running beams: the best continuations that did not stop
        running_score = cand_score + hits.astype(np.float32) * _NEG
        sel = _top(running_score, nb) if len(cand) >= nb else np.arange(len(cand))
        new_tok = run_tok[cand_beam[sel]]
        new_tok[:, cur] = cand_tok[sel]

        # finished hypotheses: merge the ones that just finished (top num_beams ranks) with the kept ones
        norm = cand_score / np.float32((cur + 1) ** lp)
        if not unsatisfied:
            norm = norm + _NEG
        just = hits & ranks
        norm = norm + (~just).astype(np.float32) * _NEG
        merged = np.concatenate([fin_score, norm])
        best = _top(merged, nb)
        new_fin_tok = np.zeros_like(fin_tok)
        new_fin_len = np.zeros_like(fin_len)
        new_fin_done = np.zeros_like(fin_done)
        for slot, m in enumerate(best):
            if m < nb:
                new_fin_tok[slot], new_fin_len[slot], new_fin_done[slot] = fin_tok[m], fin_len[m], fin_done[m]
            else:
                c = m - nb
                new_fin_tok[slot, :cur] = run_tok[cand_beam[c], :cur]
                new_fin_tok[slot, cur] = cand_tok[c]
                new_fin_len[slot] = cur + 1
                new_fin_done[slot] = just[c]
        fin_tok, fin_len, fin_done, fin_score = new_fin_tok, new_fin_len, new_fin_done, merged[best]

        run_tok = new_tok
        run_score = running_score[sel]
        beam_idx = cand_beam[sel].astype(np.int32)
        cur += 1

        best_possible = run_score[0] / np.float32(cur ** lp)
        worst = np.where(fin_done, fin_score.min(), _NEG)
        unsatisfied = unsatisfied and bool(np.any(best_possible > worst))
        if not unsatisfied or bool(hits.all()):
            break
        logits = step(run_tok[:, cur - 1].copy(), beam_idx)
        steps += 1

    n = int(fin_len[0])
    score = float(fin_score[0])
    return BeamResult(tokens=[int(t) for t in fin_tok[0, :n]], score=score,
                      sum_logprobs=score * (n ** lp) if n else 0.0, steps=steps)
