#!/usr/bin/env python
"""Measure the runtime's OpenVINO choices on a bundle, each variant in a fresh process:

- compile (load) time without a cache, with an empty CACHE_DIR (cold: compiles and writes the blob) and with a
  filled one (warm), and the size of the cache;
- KV_CACHE_PRECISION (plugin default = u8 on recent CPUs, f16, bf16, f32) and INFERENCE_PRECISION_HINT: decode
  tokens/s, TTFT and peak RSS through ``ovexport.runtime.bench_harness.run_bench``;
- the slice-before-lm_head graph edit (logits of the last position only) on and off: prefill time.

    python benchmarks/bench_ov_config.py dist/minicpmv2-int4/1.0.0 --runs 2 --json out.json

Writes nothing into the bundle (caches go to a temporary directory).
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

VARIANTS = {
    # name: (ov_config, slice_logits)
    "defaults": ({}, True),
    "no-slice": ({}, False),
    "kv-f16": ({"KV_CACHE_PRECISION": "f16"}, True),
    "kv-bf16": ({"KV_CACHE_PRECISION": "bf16"}, True),
    "kv-f32": ({"KV_CACHE_PRECISION": "f32"}, True),
    "f32": ({"INFERENCE_PRECISION_HINT": "f32", "KV_CACHE_PRECISION": "f32"}, True),
}


def child(args) -> None:
    """One measurement in this process: prints one JSON line."""
    import time

    from ovexport.runtime import pipeline as pl
    from ovexport.models.registry import family_for
    from ovexport.runtime.bench_harness import run_bench
    from ovexport.runtime.bench_inputs import bench_cases
    from ovexport.runtime.ov_models import BundleModels

    cfg, slice_logits = json.loads(args.child)
    cache = args.cache_dir or None
    orig = BundleModels.__init__

    def init(self, *a, **kw):
        kw["slice_logits"] = slice_logits
        orig(self, *a, **kw)

    BundleModels.__init__ = init
    t0 = time.perf_counter()
    pipe = pl.Pipeline.load(args.bundle, ov_config=cfg, cache_dir=Path(cache) if cache else False)
    load = time.perf_counter() - t0
    out = {"load_s": load, "compile_s": pipe.models.compile_s,
           "kv_cache_precision": str(pipe.models.get_property("KV_CACHE_PRECISION")),
           "inference_precision": str(pipe.models.get_property("INFERENCE_PRECISION_HINT"))}
    if args.runs:
        out["bench"] = run_bench(pipe, bench_cases(family_for(Path(args.bundle))), runs=args.runs,
                                 warmup=args.warmup, max_new_tokens=args.max_new_tokens)
    print(json.dumps(out))


def run_child(args, cfg, slice_logits, cache_dir: str | None, runs: int) -> dict:
    cmd = [sys.executable, __file__, args.bundle, "--child", json.dumps([cfg, slice_logits]), "--runs", str(runs),
           "--warmup", str(args.warmup), "--max-new-tokens", str(args.max_new_tokens)]
    if cache_dir:
        cmd += ["--cache-dir", cache_dir]
    p = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if p.returncode != 0:
        return {"error": p.stderr.strip().splitlines()[-1] if p.stderr.strip() else f"exit {p.returncode}"}
    return json.loads(p.stdout.strip().splitlines()[-1])


def du(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bundle")
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--variants", nargs="*", default=list(VARIANTS))
    ap.add_argument("--skip-cache", action="store_true", help="do not measure CACHE_DIR")
    ap.add_argument("--json", help="also write the results to this file")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--cache-dir", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args)

    results: dict = {"bundle": args.bundle, "variants": {}, "cache": {}}
    if not args.skip_cache:
        tmp = Path(tempfile.mkdtemp(prefix="ov_cache_"))
        try:
            results["cache"]["no_cache_compile_s"] = run_child(args, {}, True, None, 0).get("compile_s")
            results["cache"]["cold_compile_s"] = run_child(args, {}, True, str(tmp), 0).get("compile_s")
            results["cache"]["warm_compile_s"] = run_child(args, {}, True, str(tmp), 0).get("compile_s")
            results["cache"]["cache_bytes"] = du(tmp)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        print(json.dumps({"cache": results["cache"]}), flush=True)
    for name in args.variants:
        cfg, sl = VARIANTS[name]
        r = run_child(args, cfg, sl, None, args.runs)
        results["variants"][name] = r
        if "bench" in r:
            short = {c: {k: v for k, v in d.items() if k != "samples"} for c, d in r["bench"]["cases"].items()}
            print(json.dumps({name: {"kv": r["kv_cache_precision"], "prec": r["inference_precision"],
                                     "compile_s": round(r["compile_s"], 2), **short}}), flush=True)
        else:
            print(json.dumps({name: r}), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
