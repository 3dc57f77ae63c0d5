"""Where openvino.genai's VLMPipeline gets its time to first token: the LLM prefill of one long text prompt, timed
in ovexport's runtime and in VLMPipeline with its prefix cache on (its default) and off, each repeated.

A VLMPipeline keeps the KV cache of earlier requests (prefix caching, on by default in its continuous-batching
backend): asking the same prompt again re-uses it. A benchmark that repeats one request therefore measures cache
hits on genai's side unless the cache is off; this script shows the size of that effect and the prefill speed
without it.

    python benchmarks/genai_prefill.py dist/synthetic-full-minicpmv2-int4/0.1.0 --repeats 3 --chunks 256 128

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


def ours_chunked(bundle: str, chunks: list[int], repeats: int) -> dict[int, list[float]]:
    """The same prefill fed to the stateful LLM in pieces of ``chunk`` tokens (what genai's scheduler does with
    long prompts), each piece one infer call on the growing KV cache."""
    import numpy as np

    from ovexport.runtime.pipeline import Pipeline

    pipe = Pipeline.load(bundle)
    prepared = pipe.adapter.prepare([{"role": "user", "content": QUESTION}])
    emb = np.ascontiguousarray(pipe.prefill_embeddings(prepared), dtype=np.float32)
    t = emb.shape[1]
    m = pipe.models

    def run(chunk: int) -> float:
        m.reset()
        t0 = time.perf_counter()
        for s in range(0, t, chunk):
            e = min(t, s + chunk)
            m.lm_step(np.ascontiguousarray(emb[:, s:e]), np.ones((1, e), np.int64),
                      np.arange(s, e, dtype=np.int64)[None], np.zeros(1, np.int32))
        return time.perf_counter() - t0

    run(t)   # the first inference prepares the weights
    return {chunk: [run(chunk) for _ in range(repeats)] for chunk in chunks}


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
    ap.add_argument("--chunks", type=int, nargs="*", default=[],
                    help="also time ovexport's prefill fed in pieces of these many tokens")
    a = ap.parse_args()
    from ovexport.util.machine import describe

    n, t_ours = ours(a.bundle, a.repeats)
    print("ovexport prefill s:", [round(t, 3) for t in t_ours], flush=True)
    if a.chunks:
        for chunk, times in ours_chunked(a.bundle, a.chunks, a.repeats).items():
            print(f"ovexport prefill in pieces of {chunk} tokens, s:", [round(t, 3) for t in times], flush=True)
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
