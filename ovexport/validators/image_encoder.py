"""Image encoder IR vs PyTorch over the inputs that matter to the model family (``ModelFamily.image_encoder_cases``:
e.g. the trace size, a size where the encoder takes another branch, a single patch, sides that are not multiples
of the patch, what its preprocessing makes of a real image, a batch of several pieces in ONE call as the runtime
sends them). Each case is one image-encoder call's inputs, fed to the PyTorch reference and, through the family's
encoder (``runtime.image_encoder``: one IR or several, fed as the bundle's runtimes feed them), to the IR(s).

Metrics: ``max_abs_diff`` (max over cases) and ``min_cosine`` (min over every image of every case), gated by
``thresholds.image_encoder``; per-case numbers are in the details.
"""
from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from ovexport.parts import part

from .base import CheckResult, cosine, gate, max_abs_diff
from .context import ValidationContext

NAME = "image_encoder"
PART = "image_encoder"
IR = part(PART)


def _cases(ctx: ValidationContext) -> dict[str, Mapping[str, np.ndarray]]:
    """name -> one encoder call's inputs, as the family makes them."""
    return ctx.family.image_encoder_cases(ctx.reference.prepare, ctx.rng_for(NAME), ctx.adapter)


def _shapes(inputs: Mapping[str, np.ndarray]) -> dict[str, list[int]]:
    return {k: list(np.shape(v)) for k, v in inputs.items()}


def _small_values(inputs: Mapping[str, np.ndarray]) -> dict[str, list]:
    """The values of the small integer inputs (a patch grid, sizes): what tells the cases apart."""
    return {k: np.asarray(v).tolist() for k, v in inputs.items()
            if np.issubdtype(np.asarray(v).dtype, np.integer) and np.size(v) <= 8}


def run(ctx: ValidationContext) -> CheckResult:
    thr = ctx.spec.thresholds.image_encoder
    cases = _cases(ctx)

    def compute() -> dict:
        with ctx.torch_part(IR.reference_part) as ref:
            return {name: ref.image_features(inputs) for name, inputs in cases.items()}

    ref_out = ctx.cached_reference(NAME, compute)

    ov_out: dict[str, np.ndarray] = {}
    with ctx.image_encoder() as encoder:
        for name, inputs in cases.items():
            ov_out[name] = encoder.encode(inputs)

    details: dict[str, dict] = {}
    worst_diff, worst_cos = 0.0, 1.0
    for name, inputs in cases.items():
        r, t = ref_out[name], ov_out[name]
        d = max_abs_diff(r, t)
        cos_each = [cosine(r[i], t[i]) for i in range(len(r))] if r.shape == t.shape else [float("nan")]
        c = float(min(cos_each))
        details[name] = {"inputs": _shapes(inputs), "small_inputs": _small_values(inputs), "max_abs_diff": d, "cosine": c,
                         "ref_abs_max": float(np.abs(r).max()), "output": list(t.shape)}
        worst_diff = max(worst_diff, d) if not math.isnan(d) else float("nan")
        worst_cos = min(worst_cos, c) if not math.isnan(c) else float("nan")
    metrics = {"max_abs_diff": worst_diff, "min_cosine": worst_cos}
    gates = [gate("max_abs_diff", worst_diff, thr.max_abs_diff, "max"),
             gate("min_cosine", worst_cos, thr.min_cosine, "min")]
    worst_case = max(details, key=lambda k: details[k]["max_abs_diff"])
    return CheckResult.build(NAME, PART, metrics, gates, {"worst_case": worst_case, "cases": details})
