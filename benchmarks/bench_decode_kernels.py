#!/usr/bin/env python
"""How close to the memory-bandwidth limit can OpenVINO's CPU plugin decode on THIS machine?

Decoding one token multiplies one activation row by every weight matrix (M=1), so its speed limit is the
rate weights stream from RAM. This script measures, in one run:

- the read bandwidth ``ovexport bench`` divides by (every core summing its share of a 1 GiB buffer);
- for each weight storage format, the weight bytes per second OpenVINO's FullyConnected kernels reach at M=1
  on a chain of MiniCPM-MLP-shaped layers (2304 -> 5760 -> 2304, far larger than the caches), with the
  plugin's default precision (bf16 compute on AVX512-BF16) and with f32 compute + dynamic int8
  quantization of activations (``DYNAMIC_QUANTIZATION_GROUP_SIZE``), and with one and all threads.

Formats: ``i4_g64`` (INT4_SYM group 64, f16 scales: the int4 layers of the notebook's setting), ``u8``
(INT8_ASYM per channel: its backup layers and lm_head), ``i8`` (INT8_SYM), ``u4_g64`` (INT4_ASYM), ``i4_g128``,
``i4`` (per channel) and ``f16`` (uncompressed, for reference). The % column is the share of the measured
read bandwidth: the ceiling for decode on a bundle stored in that format, whatever the runtime around it.

    python benchmarks/bench_decode_kernels.py [--layers 16] [--formats i4_g64,u8,f16] [--json out.json]
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

HIDDEN, MLP = 2304, 5760
FORMATS = ("i4_g64", "u8", "i8", "u4_g64", "i4_g128", "i4", "f16")
CONFIGS = {
    "default": {},
    "f32+dyn-quant": {"INFERENCE_PRECISION_HINT": "f32", "DYNAMIC_QUANTIZATION_GROUP_SIZE": "32"},
    "default, 1 thread": {"INFERENCE_NUM_THREADS": "1"},
}


def _packed4(rng, n: int) -> np.ndarray:
    vals = rng.integers(0, 16, size=n + (n % 2), dtype=np.uint8)
    return (vals[0::2] | (vals[1::2] << 4)).astype(np.uint8)


def _weight(rng, fmt: str, out_f: int, in_f: int):
    """The decompression subgraph NNCF writes for ``fmt`` (f32 output) and the bytes it stores."""
    import openvino as ov
    from openvino import opset13 as ops

    if fmt == "f16":
        c = ops.constant((rng.standard_normal((out_f, in_f)) * 0.01).astype(np.float16))
        return ops.convert(c, "f32"), out_f * in_f * 2
    kind, _, gs = fmt.partition("_g")
    group = int(gs) if gs else in_f
    groups = in_f // group
    bits = 4 if kind in ("i4", "u4") else 8
    shape = [out_f, groups, group] if groups > 1 else [out_f, in_f]
    sshape = [out_f, groups, 1] if groups > 1 else [out_f, 1]
    etype = {"i4": ov.Type.i4, "u4": ov.Type.u4, "i8": ov.Type.i8, "u8": ov.Type.u8}[kind]
    t = ov.Tensor(etype, shape)
    if bits == 4:
        t.data[...] = _packed4(rng, out_f * in_f).reshape(t.data.shape)
    else:
        t.data[...] = rng.integers(0, 255, size=shape, dtype=np.uint8).view(t.data.dtype)
    w = ops.convert(ops.constant(t), "f16")
    nbytes = out_f * in_f * bits // 8
    if kind.startswith("u"):
        zp = ov.Tensor(etype, sshape)
        n_zp = int(np.prod(sshape))
        zp.data[...] = (_packed4(rng, n_zp)[: zp.data.size].reshape(zp.data.shape) if bits == 4 else 128)
        w = ops.subtract(w, ops.convert(ops.constant(zp), "f16"))
        nbytes += n_zp * bits // 8
    w = ops.multiply(w, ops.constant((rng.random(sshape) * 0.01).astype(np.float16)))
    nbytes += int(np.prod(sshape)) * 2
    if groups > 1:
        w = ops.reshape(w, ops.constant(np.array([out_f, in_f], np.int64)), False)
    return ops.convert(w, "f32"), nbytes


def chain(fmt: str, layers: int):
    import openvino as ov
    from openvino import opset13 as ops

    rng = np.random.default_rng(0)
    x = ops.parameter([-1, -1, HIDDEN], np.float32, name="x")
    y, total = x, 0
    for _ in range(layers):
        w1, b1 = _weight(rng, fmt, MLP, HIDDEN)
        w2, b2 = _weight(rng, fmt, HIDDEN, MLP)
        y = ops.add(ops.matmul(ops.matmul(y, w1, False, True), w2, False, True), y)
        total += b1 + b2
    return ov.Model([y], [x]), total


def kernel_rate(model, config: dict, runs: int = 15) -> float:
    """Median seconds of one M=1 infer call."""
    import openvino as ov

    req = ov.Core().compile_model(model, "CPU", {"PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": "1",
                                                 **config}).create_infer_request()
    x = np.random.default_rng(1).random((1, 1, HIDDEN), dtype=np.float32)
    for _ in range(3):
        req.infer({0: x})
    ts = []
    for _ in range(runs):
        t0 = time.perf_counter()
        req.infer({0: x})
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--layers", type=int, default=16, help="MLP pairs in the chain (16: 0.2-0.8 GB of weights)")
    ap.add_argument("--formats", default=",".join(FORMATS))
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    from rich.console import Console
    from rich.table import Table

    from ovexport.runtime.bench_bandwidth import memory_read_bandwidth

    bw = memory_read_bandwidth()
    print(f"read bandwidth (all cores summing a 1 GiB buffer, best of 5): {bw / 1e9:.1f} GB/s", flush=True)
    results: dict[str, dict] = {}
    for fmt in args.formats.split(","):
        if fmt not in FORMATS:
            raise SystemExit(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
        model, nbytes = chain(fmt, args.layers)
        results[fmt] = {"weight_bytes": nbytes}
        for name, cfg in CONFIGS.items():
            s = kernel_rate(model, cfg)
            results[fmt][name] = {"ms": round(1e3 * s, 2), "gb_s": round(nbytes / s / 1e9, 2),
                                  "pct_of_bandwidth": round(100 * nbytes / s / bw, 1)}
            print(f"  {fmt:8s} {name:18s} {nbytes / 1e6:6.0f} MB {1e3 * s:7.2f} ms {nbytes / s / 1e9:5.1f} GB/s "
                  f"({100 * nbytes / s / bw:.0f}% of read bandwidth)", flush=True)
        del model
    table = Table(title=f"M=1 FullyConnected, weight bytes/s as % of the read bandwidth ({bw / 1e9:.1f} GB/s)")
    table.add_column("format")
    for name in CONFIGS:
        table.add_column(name, justify="right")
    for fmt, r in results.items():
        table.add_row(fmt, *(f"{r[n]['gb_s']:.1f} GB/s ({r[n]['pct_of_bandwidth']:.0f}%)" for n in CONFIGS))
    Console().print(table)
    if args.json:
        args.json.write_text(json.dumps({"read_bandwidth_gb_s": round(bw / 1e9, 2), "layers": args.layers,
                                         "formats": results}, indent=2))


if __name__ == "__main__":
    main()
