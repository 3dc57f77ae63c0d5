"""Language model IR (stateful, KV cache inside) vs PyTorch, fed the same input embeddings.

1. prefill: a real prompt built by the reference (text + one synthetic image of the family's
   ``validation_cases.prompt_image`` size: scaled text embeddings with the image features merged in, at the
   positions the family's adapter gives); logits of every prompt position are compared;
2. decode: ``spec.decode_steps`` teacher-forced steps through the stateful cache; both sides get the
   reference's greedy tokens (as the reference's scaled embeddings), so the comparison stays aligned;
3. reset: ``reset_state()`` then the same prefill + decode again must reproduce the first run
   (``reset_max_abs_diff``, gated at 0: same inputs, same compiled model, same numbers);
4. beam reorder: prefill with batch 2 (two different sequences of the same length), then one decode step
   with ``beam_idx=[1, 0]`` and one with ``beam_idx=[1, 1]``, against PyTorch with its cache reordered the
   same way.

Metrics over every compared position (prefill, decode and beam): ``max_abs_diff`` of logits, ``min_cosine``
of the logit vectors, ``top1_agreement`` (argmax equal), ``max_kl`` (largest KL(ref || IR) of the
next-token distributions), gated by ``thresholds.llm``.
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ovexport.models import positions
from ovexport.parts import part
from ovexport.synthetic.images import synthetic_image

from .base import CheckResult, cosine, gate, kl_per_position, max_abs_diff, top1_agreement
from .context import ValidationContext

NAME = "llm"
PART = "llm"
IR = part(PART)
BEAM_LEN = 12                 # length of the two batch-2 sequences
BEAM_STEPS = ([1, 0], [1, 1])  # beam_idx of the decode steps after the batch-2 prefill
RESET_TOLERANCE = 0.0         # reset_state + identical inputs must give identical logits
QUESTION = "What is in the image?"


def _feed(model, req, inputs: Mapping[str, np.ndarray]) -> np.ndarray:
    """One infer call, inputs cast to the IR's element types; returns a copy of all logits [B, T, V]."""
    feed = {}
    for port in model.inputs:
        name = port.get_any_name()
        if name in inputs:
            feed[name] = np.ascontiguousarray(inputs[name], dtype=port.get_element_type().to_dtype())
    req.infer(feed)
    return req.get_tensor("logits").data.copy()


def _reference_outputs(ctx: ValidationContext) -> dict:
    """Everything PyTorch computes, as numpy; the PyTorch LLM and encoder are released afterwards."""
    import torch

    rng = ctx.rng_for(NAME)
    steps = int(ctx.spec.decode_steps)
    w, h = ctx.family.validation_cases.prompt_image
    with ctx.torch_part("image_encoder") as ref:   # the image's features first: one part alive at a time
        prepared = ref.prepare([{"role": "user", "content": QUESTION}], synthetic_image(rng, w, h))
        features = ref.image_features_of(prepared)
    with ctx.torch_part("llm") as ref:
        emb = ref.prefill_embeddings(prepared, features).float()
        llm = ref.llm
        t = emb.shape[1]
        pos_ids = ctx.adapter.position_ids(prepared)
        rows, start = positions.rows_of(pos_ids), positions.next_position(pos_ids)
        with torch.no_grad():
            logits, past = llm(emb, torch.ones(1, t, dtype=torch.int64), torch.as_tensor(positions.batched(pos_ids)))
            prefill_logits = logits[0].float().numpy()
            last = prefill_logits[-1]
            tokens, step_embs, step_logits = [], [], []
            for k in range(steps):
                tok = int(last.argmax())
                tokens.append(tok)
                e = llm.embed(torch.tensor([[tok]]))
                logits, past = llm(e, torch.ones(1, t + k + 1, dtype=torch.int64),
                                   torch.as_tensor(positions.step(start + k, 1, rows)), past)
                last = logits[0, -1].float().numpy()
                step_embs.append(e.float().numpy())
                step_logits.append(last)

            # beam reorder: two different sequences of BEAM_LEN, then reordered decode steps
            vocab = int(ref.config.vocab_size)
            ids_b = torch.as_tensor(rng.integers(3, vocab, size=(1, BEAM_LEN)), dtype=torch.int64)
            seq_a = emb[:, :BEAM_LEN]
            seq_b = llm.embed(ids_b).float()
            beam_in = torch.cat([seq_a, seq_b])
            L = BEAM_LEN
            beam_pos = positions.sequential(L, rows)
            logits, past = llm(beam_in, torch.ones(2, L, dtype=torch.int64),
                               torch.as_tensor(positions.batched(beam_pos, 2)))
            beam_prefill = logits.float().numpy()
            last = beam_prefill[:, -1]
            beam_embs, beam_logits = [], []
            for k, idx in enumerate(BEAM_STEPS):
                sel = torch.tensor(idx)
                past = [(kk.index_select(0, sel), vv.index_select(0, sel)) for kk, vv in past]
                toks = torch.tensor([[int(last[i].argmax())] for i in idx])
                e = llm.embed(toks).float()
                logits, past = llm(e, torch.ones(2, L + k + 1, dtype=torch.int64),
                                   torch.as_tensor(positions.step(L + k, 2, rows)), past)
                last = logits[:, -1].float().numpy()
                beam_embs.append(e.numpy())
                beam_logits.append(last)
        del past, logits
    return {"prefill_emb": emb.numpy(), "prefill_logits": prefill_logits, "tokens": tokens,
            "step_embs": step_embs, "step_logits": np.stack(step_logits) if step_logits else None,
            "beam_in": beam_in.numpy(), "beam_prefill": beam_prefill, "beam_embs": beam_embs,
            "beam_logits": np.stack(beam_logits), "prompt_len": int(t), "n_images": len(prepared.pixel_values),
            "position_ids": pos_ids}


def _run_sequence(model, req, r: dict) -> tuple[np.ndarray, np.ndarray]:
    """reset, prefill, teacher-forced decode; returns (prefill logits [T, V], step logits [k, V])."""
    t = r["prompt_len"]
    pos_ids = np.asarray(r["position_ids"])
    rows, start = positions.rows_of(pos_ids), positions.next_position(pos_ids)
    beam = np.zeros(1, np.int32)
    req.reset_state()
    pre = _feed(model, req, {"inputs_embeds": r["prefill_emb"], "attention_mask": np.ones((1, t), np.int64),
                             "position_ids": positions.batched(pos_ids), "beam_idx": beam})[0]
    steps = []
    for k, e in enumerate(r["step_embs"]):
        out = _feed(model, req, {"inputs_embeds": e, "attention_mask": np.ones((1, t + k + 1), np.int64),
                                 "position_ids": positions.step(start + k, 1, rows), "beam_idx": beam})
        steps.append(out[0, -1])
    return pre, (np.stack(steps) if steps else np.zeros((0, pre.shape[-1]), pre.dtype))


def _run_beam(model, req, r: dict) -> tuple[np.ndarray, np.ndarray]:
    L = BEAM_LEN
    rows = positions.rows_of(np.asarray(r["position_ids"]))
    req.reset_state()
    pre = _feed(model, req, {"inputs_embeds": r["beam_in"], "attention_mask": np.ones((2, L), np.int64),
                             "position_ids": positions.batched(positions.sequential(L, rows), 2),
                             "beam_idx": np.array([0, 1])})
    steps = []
    for k, (idx, e) in enumerate(zip(BEAM_STEPS, r["beam_embs"])):
        out = _feed(model, req, {"inputs_embeds": e, "attention_mask": np.ones((2, L + k + 1), np.int64),
                                 "position_ids": positions.step(L + k, 2, rows), "beam_idx": np.array(idx)})
        steps.append(out[:, -1])
    return pre, np.stack(steps)


def _segment(ref: np.ndarray, test: np.ndarray) -> dict:
    ref = ref.reshape(-1, ref.shape[-1])
    test = test.reshape(-1, test.shape[-1])
    if ref.shape != test.shape:
        return {"positions": int(len(ref)), "max_abs_diff": float("inf"), "min_cosine": float("nan"),
                "top1_agreement": 0.0, "top1_matches": 0, "max_kl": float("nan"), "mean_kl": float("nan"),
                "ref_abs_max": float(np.abs(ref).max()) if ref.size else 0.0}
    kl = kl_per_position(ref, test)
    return {"positions": int(len(ref)), "max_abs_diff": max_abs_diff(ref, test),
            "min_cosine": min(cosine(a, b) for a, b in zip(ref, test)),
            "top1_agreement": top1_agreement(ref, test),
            "top1_matches": int((ref.argmax(-1) == test.argmax(-1)).sum()),
            "max_kl": float(kl.max()), "mean_kl": float(kl.mean()),
            "ref_abs_max": float(np.abs(ref).max())}


def run(ctx: ValidationContext) -> CheckResult:
    thr = ctx.spec.thresholds.llm
    r = ctx.cached_reference(NAME, lambda: _reference_outputs(ctx), decode_steps=int(ctx.spec.decode_steps))

    with ctx.compiled(IR.ir_file) as model:
        req = model.create_infer_request()
        pre1, steps1 = _run_sequence(model, req, r)
        pre2, steps2 = _run_sequence(model, req, r)          # after reset_state: must be identical
        beam_pre, beam_steps = _run_beam(model, req, r)
        del req

    segments = {
        "prefill": _segment(r["prefill_logits"], pre1),
        "decode": _segment(r["step_logits"], steps1) if len(steps1) else None,
        "beam_prefill": _segment(r["beam_prefill"], beam_pre),
        "beam_reorder": _segment(r["beam_logits"], beam_steps),
    }
    segments = {k: v for k, v in segments.items() if v is not None}
    reset_diff = max(max_abs_diff(pre1, pre2), max_abs_diff(steps1, steps2))

    all_ref = np.concatenate([x.reshape(-1, x.shape[-1]) for x in
                              (r["prefill_logits"], r["step_logits"], r["beam_prefill"], r["beam_logits"])
                              if x is not None])
    all_test = np.concatenate([x.reshape(-1, x.shape[-1]) for x in (pre1, steps1, beam_pre, beam_steps)])
    overall = _segment(all_ref, all_test)
    metrics = {
        "max_abs_diff": overall["max_abs_diff"],
        "min_cosine": overall["min_cosine"],
        "top1_agreement": overall["top1_agreement"],
        "max_kl": overall["max_kl"],
        "reset_max_abs_diff": reset_diff,
    }
    gates = [
        gate("max_abs_diff", metrics["max_abs_diff"], thr.max_abs_diff, "max"),
        gate("min_cosine", metrics["min_cosine"], thr.min_cosine, "min"),
        gate("top1_agreement", metrics["top1_agreement"], thr.min_top1_agreement, "min"),
        gate("max_kl", metrics["max_kl"], thr.max_kl, "max"),
        gate("reset_max_abs_diff", reset_diff, RESET_TOLERANCE, "max"),
    ]
    details = {
        "prompt_tokens": r["prompt_len"], "images": r["n_images"], "decode_steps": len(r["step_embs"]),
        "teacher_tokens": r["tokens"],
        "ir_top1_tokens": [int(pre1[-1].argmax())] + [int(x) for x in steps1[:-1].argmax(-1)] if len(steps1) else [],
        "beam_steps": [list(b) for b in BEAM_STEPS], "beam_len": BEAM_LEN,
        "positions": overall["positions"], "mean_kl": overall["mean_kl"], "ref_abs_max": overall["ref_abs_max"],
        "segments": segments,
    }
    return CheckResult.build(NAME, PART, metrics, gates, details)
