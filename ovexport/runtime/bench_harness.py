"""``ovexport bench``'s timing harness: vision-encode time, time to first token, decode speed and peak memory of a
bundle on the images its model family names (``bench_inputs.bench_cases``), optionally beside a baseline.

Each run is a fresh one-question conversation, so the image is encoded every run; greedy decoding of exactly
``max_new_tokens`` tokens (EOS masked until then) so runs are comparable. Warm-up runs are not counted; figures
are medians over the counted runs.
"""
from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from ovexport.util.machine import cpu_info

from .bench_bandwidth import decode_bound, memory_read_bandwidth
from .bench_baselines import answer_once, baseline_server, check_baseline
from .bench_inputs import synthetic_image
from .generation import GenerationConfig
from .pipeline import Pipeline

# figure -> its key in a case; ratios are ours / baseline for every figure
RATIO_FIGURES = {"vision": "vision_ms", "ttft": "ttft_ms", "decode_tokens_per_s": "decode_tokens_per_s"}


def peak_rss_mb() -> float:
    """High-water mark of this process's resident memory, MiB (``VmHWM``: of this address space only)."""
    from ovexport.engine.peak_rss import peak_rss_self

    return peak_rss_self() / 2**20


def _median(xs: list[float]) -> float:
    return float(statistics.median(xs)) if xs else 0.0


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


def run_bench(pipe: Pipeline, cases: Mapping[str, tuple[int, int]], runs: int = 3, warmup: int = 1,
              max_new_tokens: int = 64, progress: Callable[[str], None] | None = None, baseline: str | None = None,
              baseline_meta: str | None = None) -> dict:
    """Median figures of ``runs`` runs per image of ``cases`` (name -> (width, height): ``bench_cases(family)``)
    after ``warmup``. ``baseline="notebook"`` also runs the published notebook's way over the same IRs
    (``notebook_baseline.py``), each of its runs right after one of ours (interleaved, so that a slow spell of a
    shared machine hits both), and reports ratios; a directory runs those IRs through our runtime instead (an A/B
    of two compression settings; ``baseline_meta``: where its tokenizer and config are, when that directory holds
    IRs only). The baseline runs in its own process (``engine.worker``): ``peak_rss_mb`` is our pipeline's
    alone, the baseline's is ``baseline.peak_rss_mb``."""
    check_baseline(baseline)
    config = GenerationConfig(max_new_tokens=max_new_tokens, min_new_tokens=max_new_tokens)
    out: dict = {
        "bundle": str(pipe.bundle), "device": pipe.models.device, "cpu": cpu_info(),
        "ov_config": {k: str(v) for k, v in pipe.models.config.items()},
        "load_s": round(pipe.load_s, 4), "runs": runs, "warmup": warmup, "max_new_tokens": max_new_tokens,
        "rss_after_load_mb": round(peak_rss_mb(), 1), "cases": {},
    }
    if baseline is None:
        _run_cases(pipe, cases, out, None, runs, warmup, max_new_tokens, config, progress)
    else:
        from ovexport.engine.worker import Worker

        if progress:
            progress(f"{baseline} baseline: loading the bundle in its own process")
        server, bundle, extra = baseline_server(baseline, pipe.bundle, baseline_meta)
        with Worker(server, str(bundle), pipe.models.device, dict(pipe.models.config), *extra,
                    name=f"{baseline} baseline") as nb:
            out["baseline"] = {"name": baseline, "compile_s": round(nb.call("load_seconds"), 3), "cases": {},
                               "ratios": {}}
            _run_cases(pipe, cases, out, nb, runs, warmup, max_new_tokens, config, progress)
            out["baseline"]["peak_rss_mb"] = round(nb.peak_rss_bytes / 2**20, 1)
    out["peak_rss_mb"] = round(peak_rss_mb(), 1)
    bound = decode_bound(Path(pipe.bundle), memory_read_bandwidth())
    for case in out["cases"].values():
        case["decode_pct_of_bandwidth_limit"] = round(
            100 * case["decode_tokens_per_s"] / bound["decode_limit_tokens_per_s"], 1)
    out["bandwidth"] = bound
    return out


def _run_cases(pipe: Pipeline, cases: Mapping[str, tuple[int, int]], out: dict, nb, runs: int, warmup: int,
               max_new_tokens: int, config: GenerationConfig, progress: Callable[[str], None] | None) -> None:
    """Every image case: our runs, each followed by one of the baseline's (``nb``, a worker) when there is one."""
    baseline = out.get("baseline", {}).get("name")
    for name, (w, h) in cases.items():
        img = synthetic_image(w, h)
        samples, base_samples = _samples(), _samples()
        info: dict = {}
        base_info: dict = {}
        for i in range(warmup + runs):
            label = f"{name} {'warm-up' if i < warmup else 'run'} {i + 1}/{warmup + runs}"
            t0 = time.perf_counter()
            r, calls = answer_once(pipe, img, config)
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
