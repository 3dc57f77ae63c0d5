"""``synthetic://tiny-trained?seed=N``: a tiny MiniCPM-V-2 trained on the generated task, written in the
openbmb layout, with its held-out question set in ``heldout/`` (``questions.jsonl`` + ``images/*.png``). Training
skips the held-out and the validation images (``task.reserved_keys``).

Training takes minutes, so the result is cached under ``$OVEXPORT_CACHE`` (default ``~/.cache/ovexport``),
keyed by everything that decides its bytes: the seed, the training settings, the sources of the trainer,
the task generator and the model code (the family's ``synth_sources``; the download step's fingerprint
hashes the import closure of the family's ``synthetic`` entry modules, which holds them), and the versions of
the libraries that compute it. A second request hard-links (or copies) the cached files. A cache entry is built in a temporary
directory renamed into place, under a file lock, so an interrupted build leaves nothing behind and two
concurrent requests train once.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path

import torch

from . import task
from .train import TrainSettings, evaluate, train, trained_config

HELDOUT_DIR = "heldout"
LIBRARIES = ("torch", "timm", "numpy", "pillow", "sentencepiece", "safetensors")


def cache_root() -> Path:
    return Path(os.environ.get("OVEXPORT_CACHE") or Path.home() / ".cache" / "ovexport")


def cache_key(seed: int, settings: TrainSettings = TrainSettings()) -> str:
    from ovexport.engine.code_digest import code_digest, versions

    from ..family import FAMILY
    blob = json.dumps({"seed": seed, "settings": asdict(settings), "code": code_digest(*FAMILY.synth_sources),
                       "libraries": versions(*LIBRARIES)}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def build_trained_checkpoint(out: Path, seed: int = 0, settings: TrainSettings = TrainSettings(),
                             progress: Callable[[int, int, float], None] | None = None) -> dict:
    """Train and write the checkpoint into ``out`` (created). Returns the training report."""
    from ovexport.models.minicpmv2.synth import write_checkpoint
    from ovexport.models.minicpmv2.synth_tokenizer import write_tokenizer
    from ovexport.models.minicpmv2.tokenizer import MiniCPMVTokenizer

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = trained_config(seed)
    write_tokenizer(out, vocab_size=cfg["vocab_size"], seed=seed, words=task.TASK_WORDS)
    tok = MiniCPMVTokenizer.from_dir(out)
    heldout = task.heldout_samples(seed, settings.heldout_questions)
    # neither a held-out nor a validation image is trained on
    model, report = train(cfg, tok, seed, task.reserved_keys(seed, settings.heldout_questions), settings, progress)
    report["heldout_accuracy_torch"] = round(evaluate(model, tok, heldout, settings.threads), 4)
    state = {k: v.detach() for k, v in model.state_dict().items()}
    write_checkpoint(out, cfg, lambda name, shape: state[name], torch.float32, seed=seed,
                     tokenizer_words=task.TASK_WORDS)
    task.write_heldout(heldout, out / HELDOUT_DIR)
    (out / HELDOUT_DIR / "training.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def _link_tree(src: Path, dst: Path) -> None:
    from ovexport.engine.code_digest import link_or_copy
    for f in sorted(src.rglob("*")):
        if f.is_file():
            link_or_copy(f, dst / f.relative_to(src))


def write_trained_checkpoint(out: Path, seed: int = 0, progress: Callable[[int, int], None] | None = None,
                             settings: TrainSettings = TrainSettings()) -> Path:
    """The cached trained checkpoint for ``seed`` linked into ``out`` (trained first when not cached).
    ``progress(step, steps)`` while training."""
    from ovexport.engine.atomic import atomic_dir

    entry = cache_root() / "synthetic" / f"minicpmv2-tiny-trained-seed{seed}-{cache_key(seed, settings)}"
    if not (entry / "config.json").is_file():
        with _file_lock(entry.parent / f".{entry.name}.lock"):
            if not (entry / "config.json").is_file():      # another process may have built it meanwhile
                with atomic_dir(entry) as tmp:
                    build_trained_checkpoint(tmp, seed, settings,
                                             None if progress is None else lambda s, n, _loss: progress(s, n))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    _link_tree(entry, out)
    return out
