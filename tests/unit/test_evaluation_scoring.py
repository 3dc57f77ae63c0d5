"""Scoring: KL statistics, top-1 agreement, perplexity ratio, answer normalisation, ROUGE-L, task accuracy."""
from __future__ import annotations

import math

import numpy as np
import pytest

from ovexport.evaluation import scoring

pytestmark = pytest.mark.unit


def _logp(rows):
    return scoring.log_softmax(np.asarray(rows, np.float64))


def test_identical_distributions_score_perfectly():
    rng = np.random.default_rng(0)
    ref = [_logp(rng.normal(size=(5, 11))), _logp(rng.normal(size=(3, 11)))]
    toks = [list(r.argmax(-1)) for r in ref]
    m = scoring.teacher_forced(ref, ref, toks)
    assert m["positions"] == 8 and m["kl_max"] < 1e-12 and m["top1_agreement"] == 1.0
    assert m["ppl_ratio"] == pytest.approx(1.0)


def test_kl_matches_the_definition_and_is_pooled_over_questions():
    p = np.array([[0.7, 0.2, 0.1]])
    q = np.array([[0.5, 0.25, 0.25]])
    kl = float((p * np.log(p / q)).sum())
    m = scoring.teacher_forced([np.log(p), np.log(p)], [np.log(q), np.log(p)], [[0], [0]])
    assert m["kl_max"] == pytest.approx(kl) and m["kl_mean"] == pytest.approx(kl / 2)
    # perplexity of token 0: exp(mean NLL_q - mean NLL_p) = exp((-log .5 - log .7)/2 - (-log .7))
    assert m["ppl_ratio"] == pytest.approx(math.exp((-math.log(0.5) - math.log(0.7)) / 2 + math.log(0.7)))


def test_top1_agreement_counts_argmax_matches():
    ref = _logp([[3, 0, 0], [0, 3, 0], [0, 0, 3], [3, 0, 0]])
    test = _logp([[3, 0, 0], [3, 0, 0], [0, 0, 3], [0, 3, 0]])
    assert scoring.teacher_forced([ref], [test], [[0, 1, 2, 0]])["top1_agreement"] == 0.5


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError):
        scoring.teacher_forced([np.zeros((2, 3))], [np.zeros((3, 3))], [[0, 1]])


def test_answers_compare_without_case_space_or_edge_punctuation():
    assert scoring.normalise_answer("  Red  Circle. ") == "red circle"
    assert scoring.free_generation(["red circle"], ["Red circle!"])["exact_match"] == 1.0
    assert scoring.free_generation(["red"], ["blue"])["exact_match"] == 0.0


def test_rouge_l_is_token_overlap_and_counts_cjk_characters():
    assert scoring.rouge_l("a red circle", "a red circle") == 1.0
    assert scoring.rouge_l("a red circle", "red circle") == pytest.approx(0.8)
    assert scoring.rouge_l("红色的圆", "红色") == pytest.approx(2 * 1.0 * 0.5 / 1.5)
    assert scoring.rouge_l("red", "blue") == 0.0


def test_task_accuracy_only_over_questions_with_answers():
    assert scoring.task_accuracy([None, None], ["a", "b"]) is None
    assert scoring.task_accuracy(["3", None, "blue"], ["3", "x", "red"]) == 0.5


def test_teacher_forced_keeps_each_questions_kl_sum():
    rng = np.random.default_rng(1)
    ref = [_logp(rng.normal(size=(n, 11))) for n in (3, 0, 2)]
    test = [_logp(r + rng.normal(scale=0.3, size=r.shape)) for r in ref]
    m = scoring.teacher_forced(ref, test, [[1, 2, 3], [], [4, 5]])
    per_q = m["kl_per_question"]
    assert len(per_q) == 3 and per_q[1] == 0.0
    assert sum(per_q) / 5 == pytest.approx(m["kl_mean"])


def test_kl_ratio_interval_is_exact_for_proportional_variants_and_brackets_noisy_ones():
    kl_ratio_ci = scoring.kl_ratio_ci
    a = np.random.default_rng(0).exponential(size=150)
    same = kl_ratio_ci(a, a)
    assert same["ratio"] == same["lo"] == same["hi"] == pytest.approx(1.0)
    half = kl_ratio_ci(a, 2 * a)
    assert half["lo"] == pytest.approx(0.5) and half["hi"] == pytest.approx(0.5)
    # unrelated noise of the same size: the interval is wide and holds both the estimate and 1
    b = np.random.default_rng(1).exponential(size=150)
    r = kl_ratio_ci(a, b)
    assert r["lo"] < r["ratio"] < r["hi"] and r["lo"] < 1 < r["hi"] and r["hi"] - r["lo"] > 0.2
    # a clear difference is outside 1; the fp32 row (no divergence) cannot be divided by
    assert kl_ratio_ci(3 * a + b, a)["lo"] > 2
    assert kl_ratio_ci(a, np.zeros(150)) is None and kl_ratio_ci(a, a[:10]) is None
