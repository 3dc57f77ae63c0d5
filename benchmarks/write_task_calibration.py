"""Write a calibration folder (images + questions.jsonl) drawn from the trained tiny model's task, never from its
held-out set: what data-aware compression (nncf.quantize of the image encoder, AWQ, scale estimation) should be
calibrated on when the question is how a setting does on that task.

    python benchmarks/write_task_calibration.py OUT [--n 16] [--seed 0]

Then ``--set "calibration={source: OUT, num_samples: 16}"`` on a recipe or a compare.
"""
from __future__ import annotations

import argparse
import random
from pathlib import Path

from ovexport.synthetic import vqa_task as task


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0, help="the trained checkpoint's seed (its held-out set is left out)")
    args = ap.parse_args()
    heldout = {s.key for s in task.heldout_samples(args.seed)}
    rng = random.Random(f"ovexport-calibration-{args.seed}")
    samples = []
    while len(samples) < args.n:
        s = task.sample(rng, kind=task.KINDS[len(samples) % len(task.KINDS)], large=len(samples) % 2 == 1)
        if s.key not in heldout:
            samples.append(s)
    print(task.write_heldout(samples, args.out))


if __name__ == "__main__":
    main()
