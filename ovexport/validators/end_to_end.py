"""End to end: the bundle runtime's path (the prompt and image pieces by the family's runtime adapter, every IR,
image features merged into the text embeddings, greedy generation on the stateful LLM) against the PyTorch
reference's greedy generation, on synthetic images of the sizes the family names
(``ModelFamily.validation_cases.end_to_end``: e.g. one image kept whole and two that the family's preprocessing
lays out in different grids).

Metrics: ``token_agreement`` (per case, positions where the tokens are equal / positions compared, up to
and including the first EOS of either side; the metric is the worst case) gated by
``thresholds.end_to_end.min_token_agreement``, and ``first_divergence`` (earliest position where the
two sides differ over all cases, -1 when none), measured only.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ovexport.synthetic.images import synthetic_image
from ovexport.util.memory import release_memory

from .base import CheckResult, gate
from .context import ValidationContext

NAME = "end_to_end"
PART = "bundle"
QUESTION = "Describe this image."


def token_agreement(ref: Sequence[int], test: Sequence[int], eos_ids) -> tuple[float, int, int]:
    """(share of equal positions, first divergent position or -1, positions compared).

    Positions are compared up to the shorter sequence, and up to (including) the first EOS of either side.
    """
    eos = set(int(e) for e in eos_ids)
    n = min(len(ref), len(test))
    for i in range(n):
        if int(ref[i]) in eos or int(test[i]) in eos:
            n = i + 1
            break
    else:
        if len(ref) != len(test):
            n += 1  # one side stopped without EOS where the other went on: that position differs
    if n == 0:
        return 1.0, -1, 0
    eq = [i < len(ref) and i < len(test) and int(ref[i]) == int(test[i]) for i in range(n)]
    first = next((i for i, e in enumerate(eq) if not e), -1)
    return float(np.mean(eq)), first, n


def reference_tokens(ctx: ValidationContext, check: str, images: dict, prepare=None) -> dict[str, dict]:
    """The PyTorch reference's greedy tokens for each image (its prompt ids, image layout and piece count too), through
    the reference cache. ``prepare(reference, msgs, image)``: the model's input as another runtime prepares it.

    In two phases, one reference part alive at a time: every image's features with the image encoder, then greedy
    generation with the LLM."""
    n_new = int(ctx.spec.generate_tokens)
    msgs = [{"role": "user", "content": QUESTION}]

    def compute() -> dict:
        flat: dict = {}
        with ctx.torch_part("image_encoder") as ref:
            prepared = {name: prepare(ref, msgs, img) if prepare is not None else ref.prepare(msgs, img)
                        for name, img in images.items()}
            features = {name: ref.image_features_of(p) for name, p in prepared.items()}
        with ctx.torch_part("llm") as ref:
            for name, p in prepared.items():
                ctx.subtask(f"PyTorch reference (llm): {name}, {len(p.input_ids)} prompt tokens, greedy")
                tokens, _ = ref.greedy(p, n_new, features=features[name])
                flat.update({f"{name}.ids": np.asarray(p.input_ids),
                             f"{name}.grid": list(p.layout) if p.layout else None,
                             f"{name}.images": len(p.pixel_values), f"{name}.tokens": [int(t) for t in tokens]})
        return flat

    flat = ctx.cached_reference(check, compute, generate_tokens=n_new)
    return {name: {k: flat[f"{name}.{k}"] for k in ("ids", "grid", "images", "tokens")} for name in images}


def case_images(ctx: ValidationContext) -> dict:
    rng = ctx.rng_for(NAME)
    return {name: synthetic_image(rng, w, h) for name, (w, h, _) in ctx.family.validation_cases.end_to_end.items()}


def score_case(ctx: ValidationContext, name: str, img, r: dict, tokens: Sequence[int], prompt_ids) -> dict:
    """One case's figures: the runtime's ``tokens`` (for a prompt of ``prompt_ids``) against the reference's."""
    eos_ids = set(ctx.adapter.eos_ids)
    agree, first, compared = token_agreement(r["tokens"], tokens, eos_ids)
    same_prompt = prompt_ids is None or bool(np.array_equal(r["ids"], prompt_ids))
    if not same_prompt:  # different prompts: the token comparison means nothing
        agree, first = 0.0, 0
    expected = ctx.family.validation_cases.end_to_end[name][2]
    return {"size": list(img.size), "grid": list(r["grid"]) if r["grid"] else None,
            "expected_grid": list(expected) if expected else None, "images": r["images"],
            "prompt_tokens": int(len(r["ids"])), "same_prompt": same_prompt,
            "ref_tokens": r["tokens"], "ir_tokens": [int(t) for t in tokens],
            "token_agreement": agree, "first_divergence": first, "compared": compared}


def summarise(ctx: ValidationContext, check: str, part: str, cases: dict[str, dict], extra: dict | None = None):
    thr = ctx.spec.thresholds.end_to_end
    agreement = min(c["token_agreement"] for c in cases.values())
    divergent = [c["first_divergence"] for c in cases.values() if c["first_divergence"] >= 0]
    first_div = min(divergent) if divergent else -1
    metrics = {"token_agreement": agreement, "first_divergence": first_div}
    details = {"generate_tokens": int(ctx.spec.generate_tokens),
               "mean_token_agreement": float(np.mean([c["token_agreement"] for c in cases.values()])),
               "cases": cases, **(extra or {})}
    gates = [gate("token_agreement", agreement, thr.min_token_agreement, "min")]
    return CheckResult.build(check, part, metrics, gates, details)


def run(ctx: ValidationContext) -> CheckResult:
    """The runtime's path in two phases, as the reference: the image encoder's IRs encode every case's pieces,
    then the text embeddings and the LLM generate from them (the whole bundle compiled at once held 9.4 GB of
    the full-size model in f32: docs/investigations/2026-12-05-export-memory.md)."""
    from ovexport.runtime.generation import greedy_decode
    from ovexport.runtime.ov_models import BundleModels
    from ovexport.runtime.pipeline import Pipeline
    from ovexport.runtime.prefill import encode_pieces

    n_new = int(ctx.spec.generate_tokens)
    msgs = [{"role": "user", "content": QUESTION}]
    images = case_images(ctx)
    ref_out = reference_tokens(ctx, NAME, images)

    adapter = ctx.adapter
    eos_ids = set(adapter.eos_ids)
    prepared = {name: adapter.prepare(msgs, img) for name, img in images.items()}
    with ctx.image_encoder() as encoder:
        features = {name: encode_pieces(adapter, p, encoder.encode) for name, p in prepared.items()}
    cases: dict[str, dict] = {}
    ctx.subtask("compiling the text embeddings and the LLM, generating")
    models = BundleModels(ctx.ir_dir, ctx.device, ctx.ov_config, family=ctx.family, model_config=adapter.config,
                          image_encoder=False)
    try:
        pipe = Pipeline(ctx.ir_dir, models, adapter)
        for name, img in images.items():
            prefill = pipe.prefill_embeddings(prepared[name], features[name])
            tokens = greedy_decode(models, prefill, pipe.embed_text, eos_ids, n_new,
                                   positions=pipe.position_ids(prepared[name]))
            cases[name] = score_case(ctx, name, img, ref_out[name], tokens, prepared[name].input_ids)
    finally:
        del models
        release_memory()
    return summarise(ctx, NAME, PART, cases)
