"""Candidate training settings of the tiny trained model, scored on the VALIDATION stream (never on the held-out
set): for each seed, the checkpoint as the product builds it (``write_trained_checkpoint``) with ``TrainSettings``
overrides given as JSON, then PyTorch greedy exact match on ``task.validation_samples(seed)`` (300 questions) per
kind and for sliced/unsliced images, the training CPU time (1 torch thread) and the mean and range over seeds.
Held-out figures of the chosen defaults: ``trained_heldout.py``. Figures:
docs/investigations/2026-12-05-trained-fixture-settings.md.

    OMP_NUM_THREADS=1 OVEXPORT_CACHE=/tmp/seeds-cache nice -n 10 python benchmarks/trained_probe_full.py '{}' --seeds 0 1
    ... python benchmarks/trained_probe_full.py '{"patch_lr_scale": 0.15}' --seeds 0 1
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import argparse
import json

import torch

torch.set_num_threads(1)
from trained_scores import run  # noqa: E402  (benchmarks/, beside this script)

from ovexport.fixtures.trained_minicpmv2 import train as T  # noqa: E402
from ovexport.synthetic import vqa_task as task  # noqa: E402

ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ap.add_argument("settings", nargs="?", default="{}", help="TrainSettings overrides as JSON ('{}': the defaults)")
ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
ap.add_argument("--questions", type=int, default=task.VALIDATION_QUESTIONS, help="validation questions a seed")
ap.add_argument("--out", type=Path, default=None, help="where the checkpoints are linked (default: a temp dir)")
a = ap.parse_args()
if a.questions > task.VALIDATION_QUESTIONS:
    sys.exit(f"at most {task.VALIDATION_QUESTIONS} validation questions: training skips only those")
run(a.settings, a.seeds, T.TrainSettings(**json.loads(a.settings)),
    lambda seed: task.validation_samples(seed, a.questions), a.out)
