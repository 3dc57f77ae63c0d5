"""Time to first token of a conversation's later turns: ovexport's runtime re-uses the KV cache of the turns before
(only the tokens the new prompt does not share are prefilled), against the same prompt prefilled whole (a fresh
one-shot chat over the same messages, its image features given so neither side encodes the image).

    python benchmarks/bench_multiturn.py dist/synthetic-full-minicpmv2-int4/0.1.0 --turns 3 --max-new-tokens 32

Prints one row per turn: prompt tokens, positions re-used, prefill seconds with and without the cache, their ratio.
"""
from __future__ import annotations

import argparse
import time

QUESTIONS = ("Describe this image in detail.", "What colours do you see?", "Is there any text in it?",
             "What is in the top left corner?", "Summarise the image in one sentence.")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bundle")
    ap.add_argument("--turns", type=int, default=3)
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--width", type=int, default=448)
    ap.add_argument("--height", type=int, default=448)
    a = ap.parse_args()

    from ovexport.runtime.bench_inputs import synthetic_image
    from ovexport.runtime.generation import GenerationConfig
    from ovexport.runtime.pipeline import Conversation, Pipeline
    from ovexport.util.machine import describe

    pipe = Pipeline.load(a.bundle)
    pipe.warmup()
    image = synthetic_image(a.width, a.height)
    cfg = GenerationConfig(max_new_tokens=a.max_new_tokens, min_new_tokens=a.max_new_tokens)
    conv = Conversation(image=image)
    print(f"{describe()}, {time.strftime('%Y-%m-%d')}, {a.width}x{a.height} image, {a.max_new_tokens} tokens a turn\n")
    print("| turn | prompt tokens | re-used | prefill, KV cache re-used | prefill, whole prompt | whole / re-used |")
    print("|---:|---:|---:|---:|---:|---:|")
    for turn, q in zip(range(1, a.turns + 1), QUESTIONS):
        r = pipe.chat(q, conversation=conv, config=cfg)
        # the same prompt, prefilled whole (no conversation: nothing re-used), image features not re-encoded
        prepared = pipe.adapter.prepare(conv.msgs[:-1], image)
        emb = pipe.prefill_embeddings(prepared, conv.features)
        t0 = time.perf_counter()
        pipe.decoder.prefill(emb, pipe.position_ids(prepared))
        whole = time.perf_counter() - t0
        conv_cached = r.timings["prefill_s"]
        print(f"| {turn} | {r.timings['prompt_tokens']} | {r.timings['reused_tokens']} | {conv_cached:.3f} s | "
              f"{whole:.3f} s | {whole / conv_cached:.2f} |", flush=True)
        # the cache now holds that prefill, not the conversation: answer the turn again (prefilled whole) so that the
        # next turn finds the conversation in the cache
        conv.pop_answer()
        pipe.chat(None, conversation=conv, config=cfg)


if __name__ == "__main__":
    main()
