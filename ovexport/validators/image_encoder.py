"""Image encoder IR vs PyTorch over the image sizes that matter to the model family
(``ModelFamily.validation_cases``):

- the family's ``image_sizes``: random-pixel images (e.g. the trace size, a size where the encoder takes another
  branch, a single patch, sides that are not multiples of the patch);
- ``wide_source`` / ``tall_source``: what the family's slicer makes of its ``sliced_image`` and of the transposed
  image (non-square grids);
- ``slices_batch3``: three same-size slices of that image in ONE infer call (batch 3), as the runtime sends them.

Metrics: ``max_abs_diff`` (max over cases) and ``min_cosine`` (min over every image of every case), gated by
``thresholds.image_encoder``; per-case numbers are in the details. A family that holds its image encoder in several
IRs (``ModelFamily.ir_layout``) is checked through them all, fed as its runtimes feed them.
"""
from __future__ import annotations

import math

import numpy as np

from ovexport.parts import part

from .base import CheckResult, cosine, gate, max_abs_diff
from .context import ValidationContext, random_pixels, synthetic_image

NAME = "image_encoder"
PART = "image_encoder"
IR = part(PART)


def _cases(ctx: ValidationContext) -> dict[str, np.ndarray]:
    """name -> float32 [N, 3, H, W] pixel values."""
    rng = ctx.rng_for(NAME)
    spec = ctx.family.validation_cases
    cases = {name: random_pixels(rng, 1, h, w) for name, (h, w) in spec.image_sizes.items()}
    if spec.sliced_image is not None:
        ref = ctx.reference
        msgs = [{"role": "user", "content": "What is in the image?"}]
        w, h = spec.sliced_image
        wide = ref.prepare(msgs, synthetic_image(rng, w, h))
        tall = ref.prepare(msgs, synthetic_image(rng, h, w))
        cases["wide_source"] = wide.pixel_values[0][None]
        cases["tall_source"] = tall.pixel_values[0][None]
        slices = wide.pixel_values[1:]
        if len(slices) >= 3 and len({s.shape for s in slices}) == 1:
            cases["slices_batch3"] = np.stack(slices[:3])
    if "slices_batch3" not in cases:  # the slicer does not cut this image in 3: still test a batch of 3
        cases["slices_batch3"] = random_pixels(rng, 3, *spec.slice_batch_fallback)
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in cases.items()}


def run(ctx: ValidationContext) -> CheckResult:
    thr = ctx.spec.thresholds.image_encoder
    cases = _cases(ctx)
    p = int(ctx.reference.config.patch_size)

    def compute() -> dict:
        with ctx.torch_part(IR.reference_part) as ref:
            return {name: ref.image_features(px) for name, px in cases.items()}

    ref_out = ctx.cached_reference(NAME, compute)

    ov_out: dict[str, np.ndarray] = {}
    with ctx.image_encoder() as encoder:
        for name, px in cases.items():
            h, w = px.shape[-2:]
            ov_out[name] = encoder.encode(px, (math.ceil(h / p), math.ceil(w / p)))

    details: dict[str, dict] = {}
    worst_diff, worst_cos = 0.0, 1.0
    for name, px in cases.items():
        r, t = ref_out[name], ov_out[name]
        d = max_abs_diff(r, t)
        cos_each = [cosine(r[i], t[i]) for i in range(len(r))] if r.shape == t.shape else [float("nan")]
        c = float(min(cos_each))
        h, w = px.shape[-2:]
        details[name] = {"pixels": list(px.shape), "grid": [math.ceil(h / p), math.ceil(w / p)],
                         "max_abs_diff": d, "cosine": c, "ref_abs_max": float(np.abs(r).max()),
                         "output": list(t.shape)}
        worst_diff = max(worst_diff, d) if not math.isnan(d) else float("nan")
        worst_cos = min(worst_cos, c) if not math.isnan(c) else float("nan")
    metrics = {"max_abs_diff": worst_diff, "min_cosine": worst_cos}
    gates = [gate("max_abs_diff", worst_diff, thr.max_abs_diff, "max"),
             gate("min_cosine", worst_cos, thr.min_cosine, "min")]
    worst_case = max(details, key=lambda k: details[k]["max_abs_diff"])
    return CheckResult.build(NAME, PART, metrics, gates, {"worst_case": worst_case, "cases": details})
