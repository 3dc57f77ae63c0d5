#!/usr/bin/env python
"""How fast can time to first token be on THIS machine? The arithmetic floor of ``ovexport bench``'s cases.

For each bench case (448x448; 1344x896 = source + 3x2 slices) it counts, from the bundle's IRs reshaped to
the case's real inputs (``ovexport.runtime.ir_macs``), the multiply-accumulates of the image-encoder calls and of
the language-model prefill, then divides by the matrix-product rates this machine reaches, measured in the
same run with OpenVINO on a SigLIP-MLP-shaped GEMM chain (M=1024, K=1152, N=4304):

- bf16: fp16 weights, OpenVINO's default compute on this CPU;
- int8: weights and activations quantized by ``nncf.quantize`` (int8 dot products).

Floors assume every product runs at that peak and everything else is free, so they are lower bounds:
"vision int8 + prefill bf16" is the best case for a bundle whose image encoder is int8_static and whose
int4 language model computes in bf16 (OpenVINO decompresses int4 weights to bf16 for prefill).

    python benchmarks/bench_compute_floor.py dist/synthetic-full-minicpmv2-int4/0.1.0 [--bench bench.json] [--json out.json]

``--bench`` takes ``ovexport bench --json`` output of the same bundle and adds the measured vision and
prefill times and the arithmetic rate they ran at.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ovexport.runtime.ir_macs import bench_case_costs  # noqa: E402

GEMM_SHAPE = (1024, 1152, 4304)     # M, K, N: one SigLIP fc1 at 448x448 (1024 patches)
GEMM_LAYERS = 8


def _gemm_chain(rng):
    import openvino as ov
    from openvino import opset13 as ops

    m, k, n = GEMM_SHAPE
    x = ops.parameter([1, m, k], np.float32, name="x")
    y = x
    for _ in range(GEMM_LAYERS):
        w1 = ops.constant((rng.standard_normal((n, k)) * 0.02).astype(np.float16))
        w2 = ops.constant((rng.standard_normal((k, n)) * 0.02).astype(np.float16))
        h = ops.gelu(ops.matmul(y, ops.convert(w1, "f32"), False, True), "tanh")
        y = ops.add(ops.matmul(h, ops.convert(w2, "f32"), False, True), y)
    return ov.Model([y], [x])


def gemm_rates(repeats: int = 5) -> dict[str, float]:
    """GFLOP/s of the GEMM chain, bf16 (default compute, fp16 weights) and int8 (nncf.quantize), best of n."""
    import nncf
    import openvino as ov

    rng = np.random.default_rng(0)
    m, k, n = GEMM_SHAPE
    flop = 2 * 2 * m * k * n * GEMM_LAYERS
    model = _gemm_chain(rng)
    x = rng.standard_normal((1, m, k)).astype(np.float32)
    calib = nncf.Dataset([{"x": rng.standard_normal((1, m, k)).astype(np.float32)} for _ in range(2)])
    variants = {"bf16": model,
                "int8": nncf.quantize(model, calib, model_type=nncf.ModelType.TRANSFORMER, subset_size=2)}
    core = ov.Core()
    out = {}
    for name, mdl in variants.items():
        req = core.compile_model(mdl, "CPU", {"PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": "1"}).create_infer_request()
        req.infer({0: x})
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            req.infer({0: x})
            best = min(best, time.perf_counter() - t0)
        out[name] = flop / best / 1e9
        print(f"  {name} GEMM {m}x{k}x{n}: {out[name]:.0f} GFLOP/s", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bundle", type=Path)
    ap.add_argument("--bench", type=Path, help="`ovexport bench --json` output of this bundle")
    ap.add_argument("--json", type=Path, help="write the figures here")
    args = ap.parse_args()

    print("arithmetic of each case (counted from the IRs):", flush=True)
    cases = bench_case_costs(args.bundle)
    for name, c in cases.items():
        print(f"  {name}: vision {c['vision_gflop']:.0f} GFLOP in {c['encoder_calls']}, prefill "
              f"{c['prefill_gflop']:.0f} GFLOP ({c['prompt_tokens']} tokens)", flush=True)
    print("matrix-product rates of this machine (OpenVINO, measured now):", flush=True)
    rates = gemm_rates()
    bench = json.loads(args.bench.read_text()) if args.bench else None

    from rich.console import Console
    from rich.table import Table

    table = Table(title="time-to-first-token floor (s): all products at the measured GEMM peak, nothing else")
    for col in ("case", "vision GFLOP", "prefill GFLOP", "floor, all bf16", "floor, vision int8 + prefill bf16",
                "floor, all int8"):
        table.add_column(col, justify="right")
    if bench:
        table.add_column("measured TTFT", justify="right")
        table.add_column("measured vision / prefill GFLOP/s", justify="right")
    for name, c in cases.items():
        v, p = c["vision_gflop"], c["prefill_gflop"]
        c["floor_s"] = {"all_bf16": round((v + p) / rates["bf16"], 3),
                        "vision_int8_prefill_bf16": round(v / rates["int8"] + p / rates["bf16"], 3),
                        "all_int8": round((v + p) / rates["int8"], 3)}
        row = [name, f"{v:.0f}", f"{p:.0f}", *(f"{x:.2f}" for x in c["floor_s"].values())]
        if bench:
            b = bench["cases"][name]
            c["measured"] = {"ttft_s": b["ttft_ms"] / 1e3, "vision_gflop_s": round(v / (b["vision_ms"] / 1e3), 1),
                             "prefill_gflop_s": round(p / (b["prefill_ms"] / 1e3), 1)}
            row += [f"{b['ttft_ms'] / 1e3:.2f}",
                    f"{c['measured']['vision_gflop_s']:.0f} / {c['measured']['prefill_gflop_s']:.0f}"]
        table.add_row(*row)
    Console(width=200).print(table)
    print(f"GEMM peaks: bf16 {rates['bf16']:.0f}, int8 {rates['int8']:.0f} GFLOP/s")
    if args.json:
        args.json.write_text(json.dumps({"bundle": str(args.bundle), "gemm_gflop_s": rates, "cases": cases},
                                        indent=2))


if __name__ == "__main__":
    main()
