"""What ``ovexport bench --baseline`` runs beside our pipeline, each in its own process (``engine.worker``): the
published notebook's way over the same IRs, openvino.genai's VLMPipeline on the same bundle, or another bundle
through our runtime (an A/B of two compression settings). Each server answers ``run(width, height, n)``."""
from __future__ import annotations

import time
from pathlib import Path

from .bench_inputs import QUESTION, synthetic_image
from .generation import GenerationConfig
from .pipeline import Conversation, Pipeline

# or the directory of another bundle: it runs through our runtime (an A/B of two bundles)
BASELINES = ("notebook", "genai")


def check_baseline(baseline: str | None) -> None:
    """An ``InputError`` when ``baseline`` is neither a known baseline nor a bundle directory."""
    if baseline is not None and baseline not in BASELINES and not Path(baseline).is_dir():
        from ovexport.errors import InputError
        raise InputError(f"unknown baseline {baseline!r}: neither {' nor '.join(BASELINES)} nor a bundle directory",
                         fix=f"use --baseline {BASELINES[0]}, or the directory of another bundle to compare with")


def baseline_server(baseline: str, bundle: Path, meta: str | None = None) -> tuple[type, Path, tuple[str, ...]]:
    """(the server class, the bundle it loads, its extra arguments) of ``baseline`` for our ``bundle``; ``meta``:
    where a baseline bundle's tokenizer and config are, when that directory holds IRs only."""
    from .genai_runtime import GenaiServer
    from .notebook_baseline import NotebookServer

    if baseline in BASELINES:
        return {"notebook": NotebookServer, "genai": GenaiServer}[baseline], bundle, ()
    return BundleServer, Path(baseline), (str(meta),) if meta is not None else ()


def answer_once(pipe: Pipeline, img, config: GenerationConfig):
    """One fresh one-question conversation about ``img``: (the result, image-encoder calls it made)."""
    calls = pipe.models.calls["image"]
    r = pipe.chat(QUESTION, config=config, conversation=Conversation(image=img))
    return r, pipe.models.calls["image"] - calls


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
        r, calls = answer_once(self.pipe, synthetic_image(width, height), config)
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
