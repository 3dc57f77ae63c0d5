"""Scores of one variant against the reference, from per-question arrays. Pure numpy (and rouge-score).

Teacher-forced (both sides read the reference's answer tokens; positions are the answer tokens, EOS
included), pooled over every position of every question:

- ``kl_mean`` / ``kl_p99`` / ``kl_max``: KL(reference || variant) of the next-token distributions, in nats;
- ``top1_agreement``: share of positions whose most likely token is the same on both sides;
- ``ppl_ratio``: perplexity of the reference's answers under the variant over their perplexity under the
  reference (``exp(mean NLL_variant - mean NLL_reference)``; 1.0 = no loss);
- ``kl_per_question``: each question's summed KL, for paired comparisons of two variants on the same questions
  (``kl_ratio_ci``: one variant's mean KL over another's, with a bootstrap confidence interval).

Free generation (each side answers greedily on its own):

- ``exact_match``: share of questions answered with exactly the reference's answer text;
- ``rougeL``: mean ROUGE-L F-measure of the variant's answer against the reference's (Google's
  ``rouge-score``; words are split on whitespace, and CJK characters count one each);
- ``task_accuracy``: share of questions answered right against the eval set's ground truth (after
  ``normalise_answer``), where the set has answers.
"""
from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

import numpy as np

from .logprobs import log_softmax  # noqa: F401 - part of this module's API

_CJK = re.compile(r"([\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af])")
_PUNCT_EDGES = re.compile(r"^[\s\W_]+|[\s\W_]+$", re.UNICODE)


def kl_rows(ref_logp: np.ndarray, test_logp: np.ndarray) -> np.ndarray:
    """KL(P_ref || P_test) per row from log-probabilities [N, V] -> [N]."""
    ref_logp = np.asarray(ref_logp, np.float64)
    test_logp = np.asarray(test_logp, np.float64)
    p = np.exp(ref_logp)
    return np.maximum((p * (ref_logp - test_logp)).sum(-1), 0.0)


def teacher_forced(ref_logp: Sequence[np.ndarray], test_logp: Sequence[np.ndarray],
                   tokens: Sequence[Sequence[int]]) -> dict[str, float]:
    """Pooled teacher-forced metrics over questions (lists of [n_i, V] log-probs and their n_i tokens)."""
    kls, agree, nll_ref, nll_test, per_question = [], [], [], [], []
    for r, t, toks in zip(ref_logp, test_logp, tokens):
        if len(toks) == 0:
            per_question.append(0.0)
            continue
        r = np.asarray(r, np.float64)
        t = np.asarray(t, np.float64)
        if r.shape != t.shape:
            raise ValueError(f"reference log-probs {r.shape} and variant log-probs {t.shape} differ")
        idx = np.asarray(toks, np.int64)
        kls.append(kl_rows(r, t))
        per_question.append(float(kls[-1].sum()))
        agree.append(r.argmax(-1) == t.argmax(-1))
        rows = np.arange(len(idx))
        nll_ref.append(-r[rows, idx])
        nll_test.append(-t[rows, idx])
    if not kls:
        return {"positions": 0, "kl_mean": float("nan"), "kl_p99": float("nan"), "kl_max": float("nan"),
                "top1_agreement": float("nan"), "ppl_ratio": float("nan")}
    kl = np.concatenate(kls)
    return {
        "positions": int(kl.size),
        "kl_mean": float(kl.mean()),
        "kl_p99": float(np.percentile(kl, 99)),
        "kl_max": float(kl.max()),
        "top1_agreement": float(np.concatenate(agree).mean()),
        "ppl_ratio": float(np.exp(np.concatenate(nll_test).mean() - np.concatenate(nll_ref).mean())),
        "kl_per_question": per_question,
    }


def kl_ratio_ci(kl_a: Sequence[float], kl_b: Sequence[float], level: float = 0.95, resamples: int = 2000,
                seed: int = 0) -> dict[str, float] | None:
    """Mean KL of variant A over variant B's, on the same questions (``kl_per_question`` of both), with a paired
    bootstrap interval: questions are resampled with replacement and both sums taken over the same draw, so what
    the questions share (hard ones are hard for both) cancels. None when B has no divergence to divide by."""
    a, b = np.asarray(kl_a, np.float64), np.asarray(kl_b, np.float64)
    if a.shape != b.shape or a.size == 0 or b.sum() <= 0:
        return None
    idx = np.random.default_rng(seed).integers(0, a.size, size=(resamples, a.size))
    sa, sb = a[idx].sum(1), b[idx].sum(1)
    ratios = sa[sb > 0] / sb[sb > 0]
    lo, hi = np.percentile(ratios, [50 * (1 - level), 50 * (1 + level)])
    return {"ratio": float(a.sum() / b.sum()), "lo": float(lo), "hi": float(hi), "level": level}


def normalise_answer(text: str | None) -> str:
    """Case, Unicode form, inner whitespace and punctuation at either end do not count."""
    if text is None:
        return ""
    text = unicodedata.normalize("NFKC", text).casefold()
    text = " ".join(text.split())
    return _PUNCT_EDGES.sub("", text)


class _Words:
    """rouge-score tokenizer: whitespace words, each CJK character a word of its own (rouge-score's default
    tokenizer drops every non-ASCII character)."""

    def tokenize(self, text: str) -> list[str]:
        return _CJK.sub(r" \1 ", normalise_answer(text)).split()


_SCORER = None


def rouge_l(reference: str, candidate: str) -> float:
    global _SCORER
    if _SCORER is None:
        from rouge_score import rouge_scorer
        _SCORER = rouge_scorer.RougeScorer(["rougeL"], tokenizer=_Words())
    if not normalise_answer(reference) and not normalise_answer(candidate):
        return 1.0
    return float(_SCORER.score(reference, candidate)["rougeL"].fmeasure)


def free_generation(ref_texts: Sequence[str], test_texts: Sequence[str]) -> dict[str, float]:
    exact = [normalise_answer(a) == normalise_answer(b) for a, b in zip(ref_texts, test_texts)]
    rouge = [rouge_l(a, b) for a, b in zip(ref_texts, test_texts)]
    return {"exact_match": float(np.mean(exact)) if exact else float("nan"),
            "rougeL": float(np.mean(rouge)) if rouge else float("nan")}


def task_accuracy(truth: Sequence[str | None], answers: Sequence[str]) -> float | None:
    pairs = [(t, a) for t, a in zip(truth, answers) if t is not None]
    if not pairs:
        return None
    return float(np.mean([normalise_answer(t) == normalise_answer(a) for t, a in pairs]))
