#!/usr/bin/env python
"""A/B the stateful LLM of a bundle under several runtime variants, interleaved round by round so that a busy
machine slows every variant alike: prefill time for a T-token prompt and per-token decode time.

    python benchmarks/bench_llm_ab.py dist/minicpmv2-int4/1.0.0 --tokens 484 --steps 16 --rounds 3

Variants: ``slice`` (logits of the last position only, the runtime's default) vs ``noslice``, KV-cache
precisions (``kv-u8`` = the CPU plugin's default on recent CPUs, ``kv-f16``), dynamic int8 quantization of the
activations (``f32+dqN``) and CPU pinning; ``--variants`` picks them. Random input embeddings: the
speed of a model does not depend on its inputs.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np

VARIANTS = {
    "slice/kv-default": (True, {}),
    "noslice/kv-default": (False, {}),
    "slice/kv-f16": (True, {"KV_CACHE_PRECISION": "f16"}),
    "slice/kv-f32": (True, {"KV_CACHE_PRECISION": "f32"}),
    # dynamic int8 quantization of activations (the CPU plugin applies it to f32 inputs only)
    "slice/no-dyn-quant": (True, {"DYNAMIC_QUANTIZATION_GROUP_SIZE": "0"}),
    "slice/f32+dq32": (True, {"INFERENCE_PRECISION_HINT": "f32", "DYNAMIC_QUANTIZATION_GROUP_SIZE": "32"}),
    "slice/f32+dq64": (True, {"INFERENCE_PRECISION_HINT": "f32", "DYNAMIC_QUANTIZATION_GROUP_SIZE": "64"}),
    "slice/f32+dq128": (True, {"INFERENCE_PRECISION_HINT": "f32", "DYNAMIC_QUANTIZATION_GROUP_SIZE": "128"}),
    "slice/pinning": (True, {"ENABLE_CPU_PINNING": "YES"}),
}


def main() -> None:
    import openvino as ov

    from ovexport.bundle.layout import LANGUAGE_MODEL
    from ovexport.runtime.ov_models import CPU_DEFAULTS, slice_last_logits

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bundle")
    ap.add_argument("--tokens", type=int, default=484, help="prompt length (484 = a 3x2-sliced image + question)")
    ap.add_argument("--steps", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--variants", nargs="*", default=["slice/kv-default", "noslice/kv-default", "slice/kv-f16"])
    args = ap.parse_args()

    cfg = json.loads((Path(args.bundle) / "config.json").read_text())
    d = int(cfg["hidden_size"])
    core = ov.Core()
    compiled = {}
    for name in args.variants:
        sl, extra = VARIANTS[name]
        model = core.read_model(Path(args.bundle) / LANGUAGE_MODEL)
        if sl:
            assert slice_last_logits(model)
        t0 = time.perf_counter()
        c = core.compile_model(model, "CPU", {**CPU_DEFAULTS, **extra})
        compiled[name] = (c.create_infer_request(), time.perf_counter() - t0, str(c.get_property("KV_CACHE_PRECISION")))
        print(f"compiled {name} in {compiled[name][1]:.1f} s (KV {compiled[name][2]})", flush=True)

    rng = np.random.default_rng(0)
    t = args.tokens
    prompt = (rng.standard_normal((1, t, d)) * 0.02).astype(np.float32)
    step_emb = (rng.standard_normal((1, 1, d)) * 0.02).astype(np.float32)
    ones = np.ones((1, t + args.steps + 1), np.int64)
    res = {n: {"prefill_s": [], "decode_ms_per_token": []} for n in args.variants}
    for r in range(args.rounds):
        for name in args.variants:
            req = compiled[name][0]
            req.reset_state()
            t0 = time.perf_counter()
            req.infer({"inputs_embeds": prompt, "attention_mask": ones[:, :t], "position_ids": np.arange(t)[None],
                       "beam_idx": np.zeros(1, np.int32)}, share_inputs=True)
            t1 = time.perf_counter()
            for i in range(args.steps):
                req.infer({"inputs_embeds": step_emb, "attention_mask": ones[:, :t + i + 1],
                           "position_ids": np.array([[t + i]]), "beam_idx": np.zeros(1, np.int32)}, share_inputs=True)
            t2 = time.perf_counter()
            res[name]["prefill_s"].append(t1 - t0)
            res[name]["decode_ms_per_token"].append(1e3 * (t2 - t1) / args.steps)
            print(f"round {r + 1} {name}: prefill {t1 - t0:.2f} s, decode {1e3 * (t2 - t1) / args.steps:.0f} ms/token",
                  flush=True)
    summary = {n: {k: round(statistics.median(v), 3) for k, v in m.items()} | {"compile_s": round(compiled[n][1], 2)}
               for n, m in res.items()}
    print(json.dumps({"tokens": t, "steps": args.steps, "rounds": args.rounds, "medians": summary}, indent=1))


if __name__ == "__main__":
    main()
