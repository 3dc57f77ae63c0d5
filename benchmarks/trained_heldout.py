"""Held-out accuracy of the tiny trained model with the DEFAULT training settings (``TrainSettings()``; no
overrides: settings are chosen on the validation stream by ``trained_probe_full.py``, not here): for each seed, the
checkpoint as ``synthetic://tiny-trained?seed=N`` builds it, PyTorch greedy exact match on its 150 held-out
questions per kind, and the mean and range over seeds. Figures: docs/investigations/2026-12-05-trained-fixture-settings.md.

    OMP_NUM_THREADS=1 OVEXPORT_CACHE=/tmp/seeds-cache nice -n 10 python benchmarks/trained_heldout.py --seeds 0 1 2

The fp32 bundle of seed 0 on the same questions (the runtime, not PyTorch):

    OVEXPORT_CACHE=/tmp/seeds-cache ovexport run recipes/tiny-trained-minicpmv2-fp32.yaml --set output.root=/tmp/trd
    ovexport eval /tmp/trd/tiny-trained-minicpmv2-fp32/0.1.0 /tmp/trd-heldout   # heldout/ of the seed0 checkpoint
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import argparse

import torch

torch.set_num_threads(1)
from trained_scores import run  # noqa: E402  (benchmarks/, beside this script)

from ovexport.fixtures.trained_minicpmv2 import train as T  # noqa: E402
from ovexport.synthetic import vqa_task as task  # noqa: E402

ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
ap.add_argument("--out", type=Path, default=None, help="where the checkpoints are linked (default: a temp dir)")
a = ap.parse_args()
settings = T.TrainSettings()
run("defaults, held-out", a.seeds, settings, lambda seed: task.heldout_samples(seed, settings.heldout_questions), a.out)
