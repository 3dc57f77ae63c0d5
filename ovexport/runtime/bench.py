"""``ovexport bench``: vision-encode time, time to first token, decode speed and peak memory of a bundle.

Two synthetic images (bench_inputs.py, deterministic): 448x448 (one image, no slicing) and 1344x896 (a 3x2 grid:
source + 6 slices). Each run is a fresh one-question conversation, so the image is encoded every run;
greedy decoding of exactly ``max_new_tokens`` tokens (EOS masked until then) so runs are comparable.
Warm-up runs are not counted; figures are medians over the counted runs.
"""
from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ovexport.util.machine import cpu_info

from .bench_inputs import CASES, QUESTION, synthetic_image
from .generation import GenerationConfig
from .pipeline import Conversation, Pipeline


def peak_rss_mb() -> float:
    """High-water mark of this process's resident memory, MiB (``VmHWM``: of this address space only)."""
    from ovexport.engine.peak_rss import peak_rss_self

    return peak_rss_self() / 2**20


def memory_read_bandwidth(n_bytes: int = 1 << 30, repeats: int = 5) -> float:
    """Bytes/s this machine reads from RAM, measured now: every core sums its share of a buffer much
    larger than the caches (numpy releases the GIL in reductions); best of ``repeats``."""
    import os
    from concurrent.futures import ThreadPoolExecutor

    buf = np.ones(n_bytes // 4, dtype=np.float32)
    workers = os.cpu_count() or 1
    chunks = np.array_split(buf, workers)
    best = float("inf")
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for _ in range(repeats):
            t0 = time.perf_counter()
            list(pool.map(np.sum, chunks))
            best = min(best, time.perf_counter() - t0)
    return buf.nbytes / best


def decode_bound(pipe: Pipeline, bandwidth: float) -> dict:
    """Decode speed limit set by memory bandwidth: every generated token reads all LLM weights once.

    Bytes per token = the LLM IR's .bin (int4/int8 weights + scales + zero points; the KV cache and
    activations are left out, so the bound is slightly optimistic for long contexts).
    """
    from ovexport.bundle.layout import LANGUAGE_MODEL

    weights = (pipe.bundle / LANGUAGE_MODEL).with_suffix(".bin").stat().st_size
    return {"llm_weight_bytes": weights, "read_bandwidth_gb_s": round(bandwidth / 1e9, 2),
            "decode_limit_tokens_per_s": round(bandwidth / weights, 2)}


def _median(xs: list[float]) -> float:
    return float(statistics.median(xs)) if xs else 0.0


# or the directory of another bundle: it runs through our runtime (an A/B of two bundles)
BASELINES = ("notebook", "genai")
# figure -> (key in a case, "lower" or "higher" is better); ratios are ours / baseline for every figure
RATIO_FIGURES = {"vision": "vision_ms", "ttft": "ttft_ms", "decode_tokens_per_s": "decode_tokens_per_s"}


def _samples() -> dict[str, list[float]]:
    return {"vision_ms": [], "prefill_ms": [], "ttft_ms": [], "decode_tokens_per_s": []}


def _add(samples: dict[str, list[float]], t: dict) -> None:
    samples["vision_ms"].append(1e3 * t.get("vision_s", 0.0))
    samples["prefill_ms"].append(1e3 * t["prefill_s"])
    samples["ttft_ms"].append(1e3 * t["ttft_s"])
    samples["decode_tokens_per_s"].append(t.get("decode_tokens_per_s", 0.0))


def _summarise(samples: dict[str, list[float]], info: dict) -> dict:
    case = {k: round(_median(v), 3) for k, v in samples.items()}
    case.update(info)
    case["samples"] = {k: [round(x, 3) for x in v] for k, v in samples.items()}
    return case


def ratios(ours: dict, base: dict) -> dict:
    """ours / baseline of vision encode time, time to first token and decode tokens/s (None when 0)."""
    return {name: (round(ours[key] / base[key], 3) if base.get(key) else None) for name, key in RATIO_FIGURES.items()}


def run_bench(pipe: Pipeline, runs: int = 3, warmup: int = 1, max_new_tokens: int = 64,
              progress: Callable[[str], None] | None = None, baseline: str | None = None,
              baseline_meta: str | None = None) -> dict:
    """Median figures of ``runs`` runs per image after ``warmup``. ``baseline="notebook"`` also runs the
    published notebook's way over the same IRs (``notebook_baseline.py``), each of its runs right after one
    of ours (interleaved, so that a slow spell of a shared machine hits both), and reports ratios; a directory
    runs those IRs through our runtime instead (an A/B of two compression settings; ``baseline_meta``: where its
    tokenizer and config are, when that directory holds IRs only). The baseline runs in its own process
    (``engine.worker``): ``peak_rss_mb`` is our pipeline's alone, the baseline's is ``baseline.peak_rss_mb``."""
    if baseline is not None and baseline not in BASELINES and not Path(baseline).is_dir():
        from ovexport.errors import InputError
        raise InputError(f"unknown baseline {baseline!r}: neither {' nor '.join(BASELINES)} nor a bundle directory",
                         fix=f"use --baseline {BASELINES[0]}, or the directory of another bundle to compare with")
    config = GenerationConfig(max_new_tokens=max_new_tokens, min_new_tokens=max_new_tokens)
    out: dict = {
        "bundle": str(pipe.bundle), "device": pipe.models.device, "cpu": cpu_info(),
        "ov_config": {k: str(v) for k, v in pipe.models.config.items()},
        "load_s": round(pipe.load_s, 4), "runs": runs, "warmup": warmup, "max_new_tokens": max_new_tokens,
        "rss_after_load_mb": round(peak_rss_mb(), 1), "cases": {},
    }
    if baseline is None:
        _run_cases(pipe, out, None, runs, warmup, max_new_tokens, config, progress)
    else:
        from ovexport.engine.worker import Worker

        from .genai_runtime import GenaiServer
        from .notebook_baseline import NotebookServer
        if progress:
            progress(f"{baseline} baseline: loading the bundle in its own process")
        servers = {"notebook": NotebookServer, "genai": GenaiServer}
        server, bundle = ((servers[baseline], pipe.bundle) if baseline in BASELINES else (BundleServer, Path(baseline)))
        extra = (str(baseline_meta),) if baseline_meta is not None and server is BundleServer else ()
        with Worker(server, str(bundle), pipe.models.device, dict(pipe.models.config), *extra,
                    name=f"{baseline} baseline") as nb:
            out["baseline"] = {"name": baseline, "compile_s": round(nb.call("load_seconds"), 3), "cases": {},
                               "ratios": {}}
            _run_cases(pipe, out, nb, runs, warmup, max_new_tokens, config, progress)
            out["baseline"]["peak_rss_mb"] = round(nb.peak_rss_bytes / 2**20, 1)
    out["peak_rss_mb"] = round(peak_rss_mb(), 1)
    bound = decode_bound(pipe, memory_read_bandwidth())
    for case in out["cases"].values():
        case["decode_pct_of_bandwidth_limit"] = round(
            100 * case["decode_tokens_per_s"] / bound["decode_limit_tokens_per_s"], 1)
    out["bandwidth"] = bound
    return out


class BundleServer:
    """``bench --baseline BUNDLE``: another bundle through our runtime, in its own process (the same OpenVINO
    config), so two compression settings are timed side by side, run for run, on the same machine. ``meta``: the
    folder with the tokenizer and config when ``bundle`` holds IRs only (a compare variant's compress output)."""

    def __init__(self, bundle: str, device: str, config: dict, meta: str | None = None):
        if meta is None:
            self.pipe = Pipeline.load(bundle, device=device, ov_config=config)
        else:
            self.pipe = ir_pipeline(Path(bundle), Path(meta), device, config)

    def load_seconds(self) -> float:
        return self.pipe.load_s

    def run(self, width: int, height: int, max_new_tokens: int) -> dict:
        config = GenerationConfig(max_new_tokens=max_new_tokens, min_new_tokens=max_new_tokens)
        r, calls = _answer_once(self.pipe, synthetic_image(width, height), config)
        return {"tokens": list(r.token_ids), "timings": r.timings, "encoder_calls": calls}


def ir_pipeline(ir_dir: Path, meta_dir: Path, device: str, config: dict | None = None) -> Pipeline:
    """A pipeline over a folder of IRs whose tokenizer and config live elsewhere (a checkpoint)."""
    from ovexport.models.registry import family_for

    from .ov_models import BundleModels

    t0 = time.perf_counter()
    family = family_for(meta_dir)
    adapter = family.runtime(meta_dir)
    pipe = Pipeline(ir_dir, BundleModels(ir_dir, device, config, family=family, model_config=adapter.config), adapter)
    pipe.load_s = time.perf_counter() - t0
    return pipe


def _answer_once(pipe: Pipeline, img, config: GenerationConfig):
    """One fresh one-question conversation about ``img``: (the result, image-encoder calls it made)."""
    calls = pipe.models.calls["image"]
    r = pipe.chat(QUESTION, config=config, conversation=Conversation(image=img))
    return r, pipe.models.calls["image"] - calls


def _run_cases(pipe: Pipeline, out: dict, nb, runs: int, warmup: int, max_new_tokens: int, config: GenerationConfig,
               progress: Callable[[str], None] | None) -> None:
    """Every image case: our runs, each followed by one of the baseline's (``nb``, a worker) when there is one."""
    baseline = out.get("baseline", {}).get("name")
    for name, (w, h) in CASES.items():
        img = synthetic_image(w, h)
        samples, base_samples = _samples(), _samples()
        info: dict = {}
        base_info: dict = {}
        for i in range(warmup + runs):
            label = f"{name} {'warm-up' if i < warmup else 'run'} {i + 1}/{warmup + runs}"
            t0 = time.perf_counter()
            r, calls = _answer_once(pipe, img, config)
            wall = time.perf_counter() - t0
            if progress:
                progress(f"{label}: {wall:.2f} s")
            b = None
            if nb is not None:
                t0 = time.perf_counter()
                b = nb.call("run", w, h, max_new_tokens)
                if progress:
                    progress(f"{label}, {baseline} baseline: {time.perf_counter() - t0:.2f} s")
            if i < warmup:
                continue
            _add(samples, r.timings)
            info = {"encoder_calls": calls,
                    "prompt_tokens": int(r.timings["prompt_tokens"]), "new_tokens": int(r.timings["new_tokens"])}
            if b is not None:
                _add(base_samples, b["timings"])
                base_info = {"encoder_calls": b["encoder_calls"],
                             "prompt_tokens": b["timings"]["prompt_tokens"], "new_tokens": b["timings"]["new_tokens"],
                             # same IRs, same greedy search: a different answer would mean different work
                             "same_tokens": b["tokens"] == list(r.token_ids)}
        case = _summarise(samples, info)
        case["peak_rss_mb"] = round(peak_rss_mb(), 1)
        out["cases"][name] = case
        if nb is not None:
            out["baseline"]["cases"][name] = _summarise(base_samples, base_info)
            out["baseline"]["ratios"][name] = ratios(case, out["baseline"]["cases"][name])


def table(result: dict):
    from rich.table import Table

    t = Table(title=f"ovexport bench: {result['bundle']} on {result['device']} "
                    f"({result['runs']} runs after {result['warmup']} warm-up, {result['max_new_tokens']} new tokens, "
                    f"medians)")
    for col in ("image", "encoder calls", "prompt tokens", "vision encode ms", "prefill ms", "TTFT ms",
                "decode tok/s", "% of bandwidth limit", "peak RSS MB"):
        t.add_column(col, justify="right" if col != "image" else "left", no_wrap=col == "image")
    for name, c in result["cases"].items():
        t.add_row(name, str(c["encoder_calls"]), str(c["prompt_tokens"]), f"{c['vision_ms']:.1f}",
                  f"{c['prefill_ms']:.1f}", f"{c['ttft_ms']:.1f}", f"{c['decode_tokens_per_s']:.1f}",
                  f"{c['decode_pct_of_bandwidth_limit']:.0f}%", f"{c['peak_rss_mb']:.0f}")
    b = result["bandwidth"]
    cpu = result.get("cpu") or {}
    t.caption = (f"load {result['load_s']:.2f} s, RSS after load {result['rss_after_load_mb']:.0f} MB; "
                 f"ov_config {result['ov_config']}; memory read bandwidth {b['read_bandwidth_gb_s']} GB/s measured "
                 f"now / LLM weights {b['llm_weight_bytes'] / 1e9:.2f} GB per token = decode limit "
                 f"{b['decode_limit_tokens_per_s']} tok/s; CPU {cpu.get('model', '?')}, {cpu.get('cores', '?')} cores, "
                 f"flags {' '.join(cpu.get('flags') or []) or '-'}")
    return t


def baseline_table(result: dict):
    """The baseline's medians, and ours / baseline (vision and TTFT: below 1 is faster; decode: above 1)."""
    from rich.table import Table

    base = result["baseline"]
    what = {"notebook": "same IRs, the notebook's way", "genai": "same bundle, openvino.genai's VLMPipeline"}.get(
        base["name"], "another bundle through our runtime")
    t = Table(title=f"baseline: {base['name']} ({what}, same OpenVINO config, its own process, runs interleaved "
                    f"with ours)", caption=f"baseline process peak RSS: {base.get('peak_rss_mb', 0):.0f} MB")
    for col in ("image", "encoder calls", "vision encode ms", "prefill ms", "TTFT ms", "decode tok/s",
                "same tokens", "vision ours/base", "TTFT ours/base", "decode tok/s ours/base"):
        t.add_column(col, justify="right" if col != "image" else "left", no_wrap=col == "image")

    def r(x):
        return "-" if x is None else f"{x:.2f}x"

    for name, c in base["cases"].items():
        q = base["ratios"][name]
        t.add_row(name, str(c.get("encoder_calls", "-")), f"{c['vision_ms']:.1f}", f"{c['prefill_ms']:.1f}",
                  f"{c['ttft_ms']:.1f}", f"{c['decode_tokens_per_s']:.1f}", str(c.get("same_tokens", "-")),
                  r(q["vision"]), r(q["ttft"]), r(q["decode_tokens_per_s"]))
    return t
