"""Score one variant (its IRs) against the reference answers on an eval set."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from ovexport.evaluation import scoring
from ovexport.evaluation.evalset import EvalSet
from ovexport.evaluation.torch_and_ir_sides import IRSide


def evaluate_irs(ir_dir: Path, meta_dir: Path, family, evalset: EvalSet, reference: dict, max_new_tokens: int,
                 ov_config: dict[str, str], device: str = "CPU",
                 progress: Callable[[int, int], None] | None = None) -> dict:
    """Teacher-forced metrics on the reference's answer tokens, free-generation metrics against the reference's
    answers, and task accuracy against the ground truth. ``reference``: what ``reference_answers`` returns."""
    side = IRSide(ir_dir, meta_dir, family, device, ov_config)
    texts, test_logp = [], []
    try:
        n = len(evalset.items)
        for i, item in enumerate(evalset.items):
            prompt = reference["prompt_ids"][i]
            ans = side.answer(item, max_new_tokens)
            texts.append(ans.text)
            test_logp.append(side.teacher_force(item, reference["tokens"][i], prompt, ans.features))
            if progress:
                progress(i + 1, n)
    finally:
        side.close()
    metrics = scoring.teacher_forced(reference["logp"], test_logp, reference["tokens"])
    metrics.update(scoring.free_generation(reference["texts"], texts))
    acc = scoring.task_accuracy([it.answer for it in evalset.items], texts)
    metrics["task_accuracy"] = acc
    kl_per_question = metrics.pop("kl_per_question", None)
    return {"metrics": metrics, "answers": texts, "kl_per_question": kl_per_question}


def reference_metrics(evalset: EvalSet, reference: dict) -> dict:
    """The reference's own row: no divergence by definition, and its task accuracy."""
    return {"positions": int(sum(len(t) for t in reference["tokens"])), "kl_mean": 0.0, "kl_p99": 0.0, "kl_max": 0.0,
            "top1_agreement": 1.0, "ppl_ratio": 1.0, "exact_match": 1.0, "rougeL": 1.0,
            "task_accuracy": scoring.task_accuracy([it.answer for it in evalset.items], reference["texts"]),
            "mean_answer_tokens": float(np.mean([len(t) for t in reference["tokens"]]))}
