"""Where openvino.genai's VLMPipeline gets its time to first token: the LLM prefill of one long text prompt, timed
in ovexport's runtime and in VLMPipeline with its prefix cache on (its default) and off, each repeated.

A VLMPipeline keeps the KV cache of earlier requests (prefix caching, on by default in its continuous-batching
backend): asking the same prompt again re-uses it. A benchmark that repeats one request therefore measures cache
hits on genai's side unless the cache is off; this script shows the size of that effect and the prefill speed
without it.

    python benchmarks/genai_prefill.py dist/synthetic-full-minicpmv2-int4/0.1.0 --repeats 3

Prints one line per timed call and a Markdown summary (medians of the calls after the first).
"""
from __future__ import annotations

import argparse
import statistics
import time

QUESTION = "Describe " + "the red apple and the blue sky, " * 60


def ours(bundle: str, repeats: int) -> tuple[int, list[float]]:
    from ovexport.runtime.pipeline import Pipeline

    pipe = Pipeline.load(bundle)
    prepared = pipe.adapter.prepare([{"role": "user", "content": QUESTION}])
    emb, positions = pipe.prefill_embeddings(prepared), pipe.position_ids(prepared)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        pipe.decoder.prefill(emb, positions)
        times.append(time.perf_counter() - t0)
    return len(prepared.input_ids), times


def genai(bundle: str, repeats: int, prefix_caching: bool) -> list[float]:
    """Wall time of ``generate`` with one new token (the prefill, then one token)."""
    import openvino_genai as og

    sc = og.SchedulerConfig()
    sc.enable_prefix_caching = prefix_caching
    pipe = og.VLMPipeline(bundle, "CPU", scheduler_config=sc, PERFORMANCE_HINT="LATENCY", NUM_STREAMS="1")
    cfg = og.GenerationConfig()
    cfg.max_new_tokens = 1
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        pipe.generate(QUESTION, generation_config=cfg)
        times.append(time.perf_counter() - t0)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bundle")
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    from ovexport.util.machine import describe

    n, t_ours = ours(a.bundle, a.repeats)
    print("ovexport prefill s:", [round(t, 3) for t in t_ours], flush=True)
    t_on = genai(a.bundle, a.repeats, True)
    print("VLMPipeline, prefix cache on, s:", [round(t, 3) for t in t_on], flush=True)
    t_off = genai(a.bundle, a.repeats, False)
    print("VLMPipeline, prefix cache off, s:", [round(t, 3) for t in t_off], flush=True)
    med = {k: statistics.median(v[1:] or v) for k, v in
           {"ours": t_ours, "genai_cache_on": t_on, "genai_cache_off": t_off}.items()}
    print(f"\n{n}-token text prompt, {describe()}, medians after the first call:\n")
    print("| runtime | first call | later calls (median) | ours / this |")
    print("|---|---:|---:|---:|")
    for name, times in (("ovexport (prefill)", t_ours), ("VLMPipeline, prefix cache on (default)", t_on),
                        ("VLMPipeline, prefix cache off", t_off)):
        m = statistics.median(times[1:] or times)
        print(f"| {name} | {times[0]:.2f} s | {m:.3f} s | {med['ours'] / m:.2f} |")


if __name__ == "__main__":
    main()
