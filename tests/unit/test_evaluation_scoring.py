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
