"""End to end through openvino.genai's ``VLMPipeline`` on a bundle (``ovexport validate BUNDLE --runtime genai``).

genai is run on the synthetic images of the family's end-to-end cases, greedy, and compared with the PyTorch
reference run on what genai feeds the model (``genai_prepare``: the family's, where genai's code prepares the image
or lays the prompt out otherwise than the model does, docs/genai.md): that is what genai computes, so
``token_agreement`` is gated by
``thresholds.end_to_end.min_token_agreement`` like our runtime's. How far genai's prompt takes the model from its
own is measured, not gated, per case under ``prompt_layout`` (the reference's tokens on genai's input against its
tokens on its own).
"""
from __future__ import annotations

from .base import CheckResult
from .context import ValidationContext
from .end_to_end import NAME as OWN, QUESTION, case_images, reference_tokens, score_case, summarise, token_agreement

NAME = "genai_end_to_end"
PART = "bundle"


def run(ctx: ValidationContext) -> CheckResult:
    from ovexport.runtime.genai_runtime import GenaiPipeline, genai_prepare
    from ovexport.util.memory import release_memory

    n_new = int(ctx.spec.generate_tokens)
    images = case_images(ctx)
    adapter = ctx.adapter
    own = reference_tokens(ctx, OWN, images)
    genai_ref = reference_tokens(ctx, NAME, images, lambda ref, msgs, img: genai_prepare(ctx.family, ref, msgs, img))
    eos = sorted(adapter.eos_ids)
    ctx.subtask("loading VLMPipeline")
    pipe = GenaiPipeline(ctx.ir_dir, ctx.device, ctx.ov_config)
    cases, layout = {}, {}
    try:
        for name, img in images.items():
            ctx.subtask(f"VLMPipeline on {name}")
            tokens = pipe.generate(QUESTION, img, max_new_tokens=n_new).token_ids
            if len(tokens) < n_new:   # genai stopped on EOS, which it does not stream
                tokens = tokens + eos[:1]
            cases[name] = score_case(ctx, name, img, genai_ref[name], tokens, None)
            agree, first, _ = token_agreement(own[name]["tokens"], genai_ref[name]["tokens"], adapter.eos_ids)
            layout[name] = {"same_prompt": bool(len(own[name]["ids"]) == len(genai_ref[name]["ids"])
                                                and (own[name]["ids"] == genai_ref[name]["ids"]).all()),
                            "prompt_tokens": [int(len(own[name]["ids"])), int(len(genai_ref[name]["ids"]))],
                            "token_agreement": agree, "first_divergence": first}
    finally:
        del pipe
        release_memory()
    return summarise(ctx, NAME, PART, cases, {"runtime": "openvino.genai VLMPipeline", "prompt_layout": layout})
