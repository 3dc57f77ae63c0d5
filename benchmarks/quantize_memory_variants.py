#!/usr/bin/env python
"""Peak memory of ``nncf.quantize`` of the image encoder's vision IR (the int8-vision recipe's compress step) under
variants of how NNCF and OpenVINO run it, each in its own process: what the 11.4 GB of that step is made of and
what does (not) bring it down. docs/investigations/2026-12-05-export-memory.md, "The int8-vision recipe's compress".

Variants (each patches NNCF or OpenVINO in this process only; combine them with ``+``):

* ``base``: the compress step's own code (``compress_part``), as the recipe says;
* ``no-bias-correction``: the recipe's ``bias_correction: false`` (NNCF's ``disable_bias_correction``);
* ``no-runtime-cache``: every model compiled with ``CPU_RUNTIME_CACHE_CAPACITY=0`` (no per-shape cache);
* ``static``: the IR reshaped to the calibration pieces' most common shape and calibrated on those pieces only
  (shapes made dynamic again afterwards);
* ``not-inplace``: NNCF's ``inplace_statistics=False`` (reductions in numpy on the raw activations);
* ``trim``: ``malloc_trim`` before and after each statistics pass;
* ``trace`` (add to any): one line per NNCF engine (outputs, operations, RSS after compiling) and per inference.

The recipe must have been run up to ``convert_image_encoder`` (same ``--set``). Prints the phase table of
``memory_phases.py`` and the process's ``VmHWM``.

Usage:
  python benchmarks/quantize_memory_variants.py base --set output.root=/data/mem
  python benchmarks/quantize_memory_variants.py static+trace --set output.root=/data/mem
"""
from __future__ import annotations

import argparse
import ctypes
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))

from memory_phases import GB, PhaseSampler, nncf_phases, status, step_inputs  # noqa: E402

VARIANTS = ("base", "no-bias-correction", "no-runtime-cache", "static", "not-inplace", "trim", "trace")
IR = "openvino_vision_embeddings_model.xml"


def patch(variants: set[str]) -> list[str]:
    """Apply the variants' patches (this process only); the recipe overrides they need."""
    import nncf
    import openvino as ov

    overrides = []
    if "no-bias-correction" in variants:
        overrides.append("compression.image_encoder.bias_correction=false")
    if "no-runtime-cache" in variants:
        compile_model = ov.Core.compile_model

        def compile_without_cache(self, model, device_name=None, config=None):
            return compile_model(self, model, device_name, {**(config or {}), "CPU_RUNTIME_CACHE_CAPACITY": 0})
        ov.Core.compile_model = compile_without_cache
    if "not-inplace" in variants:
        import ovexport.exporter.compress as compress

        to_quantize = compress.to_nncf_quantize

        def not_inplace(kw):
            from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters

            out = to_quantize(kw)
            out.setdefault("advanced_parameters", AdvancedQuantizationParameters()).inplace_statistics = False
            return out
        compress.to_nncf_quantize = not_inplace
    if "static" in variants:
        quantize = nncf.quantize

        def static_quantize(model, dataset, **kw):
            items = list(dataset.get_inference_data())
            shapes = Counter(tuple(v.shape for v in item.values()) for item in items)
            shape = shapes.most_common(1)[0][0]
            same = [item for item in items if tuple(v.shape for v in item.values()) == shape]
            print(f"static: {len(same)} of {len(items)} pieces at {shape}", flush=True)
            model.reshape({k: ov.PartialShape(list(v.shape)) for k, v in same[0].items()})
            out = quantize(model, nncf.Dataset(same), **{**kw, "subset_size": len(same)})
            out.reshape({k: ov.PartialShape([-1] * v.ndim) for k, v in same[0].items()})
            return out
        nncf.quantize = static_quantize
    if "trim" in variants:
        from nncf.common.tensor_statistics import aggregator

        libc = ctypes.CDLL("libc.so.6")
        collect = aggregator.StatisticsAggregator.collect_statistics

        def trimmed(self, *a, **kw):
            libc.malloc_trim(0)
            try:
                return collect(self, *a, **kw)
            finally:
                libc.malloc_trim(0)
        aggregator.StatisticsAggregator.collect_statistics = trimmed
    if "trace" in variants:
        from nncf.openvino import engine

        init, infer = engine.OVNativeEngine.__init__, engine.OVNativeEngine.infer

        def traced_init(self, model, *a, **kw):
            before = status()["VmRSS"]
            init(self, model, *a, **kw)
            if len(model.get_ops()) > 50:      # the statistics models, not fast bias correction's one-layer ones
                print(f"engine: {len(model.outputs)} outputs, {len(model.get_ops())} operations; RSS "
                      f"{before / GB:.2f} -> {status()['VmRSS'] / GB:.2f} GB compiling", flush=True)
                self.traced = True

        def traced_infer(self, data):
            out = infer(self, data)
            if getattr(self, "traced", False):
                shape = tuple(next(iter(data.values())).shape) if isinstance(data, dict) else None
                print(f"  inference {shape}: RSS {status()['VmRSS'] / GB:.2f} GB, VmHWM "
                      f"{status()['VmHWM'] / GB:.2f} GB", flush=True)
            return out
        engine.OVNativeEngine.__init__, engine.OVNativeEngine.infer = traced_init, traced_infer
    return overrides


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("variant", help=f"one of {', '.join(VARIANTS)}, or several joined by +")
    ap.add_argument("--recipe", default="recipes/synthetic-full-minicpmv2-int4-int8vision.yaml")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    a = ap.parse_args()
    variants = set(a.variant.split("+"))
    unknown = variants - set(VARIANTS)
    if unknown:
        sys.exit(f"error: unknown variant {', '.join(sorted(unknown))}; fix: one of {', '.join(VARIANTS)}")

    from ovexport.recipe import load_recipe
    from ovexport.steps.compress import compress_part

    recipe = load_recipe(a.recipe, overrides=a.overrides + patch(variants))
    inputs = step_inputs(recipe, "compress")
    flags = sorted(set(open("/proc/cpuinfo").read().split()) & {"avx2", "avx512f", "avx512_bf16", "amx_tile"})
    print(f"{a.variant}: nncf.quantize of {IR}, {recipe.name}; flags {' '.join(flags)}, "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}", flush=True)
    started = time.time()
    with PhaseSampler() as sampler:
        sampler.mark("calibration data")
        with nncf_phases(sampler):
            compress_part(recipe, "image_encoder", recipe.compression.image_encoder, inputs, log=sampler.mark, ir=IR)
    sampler.print()
    print(f"{a.variant}: {time.time() - started:.0f} s, VmHWM {status()['VmHWM'] / GB:.2f} GB")


if __name__ == "__main__":
    main()
