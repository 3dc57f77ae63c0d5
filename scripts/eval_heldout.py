"""Exact-match accuracy of a bundle on a held-out question folder (questions.jsonl + images/), through the
real runtime (``Pipeline.stream``, greedy), overall, per question and per sliced/unsliced image.

    python scripts/eval_heldout.py dist/tiny-trained-minicpmv2-fp32/0.1.0 <checkpoint>/heldout
"""
from __future__ import annotations

import argparse
import collections
import json
import time
from pathlib import Path


def normalise(text: str) -> str:
    return " ".join(text.lower().split())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bundle", type=Path)
    ap.add_argument("heldout", type=Path)
    ap.add_argument("--max-new-tokens", type=int, default=8)
    args = ap.parse_args()

    from PIL import Image

    from ovexport.models.minicpmv2.slicing import best_grid
    from ovexport.runtime.generation import GenerationConfig
    from ovexport.runtime.pipeline import Pipeline

    cfg = json.loads((args.bundle / "config.json").read_text())
    records = [json.loads(x) for x in (args.heldout / "questions.jsonl").read_text().splitlines() if x.strip()]
    pipe = Pipeline.load(args.bundle)
    groups: dict[str, list[bool]] = collections.defaultdict(list)
    start = time.perf_counter()
    for r in records:
        path = args.heldout / r["image"]
        with Image.open(path) as im:
            sliced = best_grid(im.size, cfg["max_slice_nums"], cfg["scale_resolution"]) is not None
        text = "".join(pipe.stream(r["question"], image=path,
                                   config=GenerationConfig.greedy(max_new_tokens=args.max_new_tokens)))
        ok = normalise(text) == normalise(r["answer"])
        for g in ("all", r["question"], "sliced" if sliced else "unsliced"):
            groups[g].append(ok)
    took = time.perf_counter() - start
    for g, v in groups.items():
        print(f"{g:32s} {sum(v) / len(v):6.1%}  ({sum(v)}/{len(v)})")
    print(f"{len(records)} questions in {took:.1f} s")


if __name__ == "__main__":
    main()
