"""Session fixtures of the runtime tests (import them into a test module: ``from runtime_fixtures import *``).

- ``rt_bundle``: the tiny fp32 bundle, built once per session by the engine from
  ``recipes/tiny-minicpmv2-fp32.yaml`` into a temporary ``output.root`` (without the ``validate`` step: these
  tests check the runtime, not the export);
- ``rt_pipe``: ``Pipeline`` on it, precisions pinned to f32 (parity with PyTorch), no compiled-model cache;
- ``rt_reference``: the PyTorch reference on the bundle's source checkpoint (``recorded_checkpoint(bundle)``);
- ``rt_images``: deterministic synthetic images, 448x448 (not sliced) and 1344x896 (3x2 slices), as PNG paths.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from ovexport.bundle.reproducible import recorded_checkpoint

REPO = Path(__file__).resolve().parents[2]
FP32_RECIPE = REPO / "recipes" / "tiny-minicpmv2-fp32.yaml"
STEPS = "[download,convert_text_embeddings,convert_llm,make_stateful,convert_image_encoder,compress,package]"
F32 = {"INFERENCE_PRECISION_HINT": "f32", "KV_CACHE_PRECISION": "f32"}
F32_FLAGS = ["--ov-config", "INFERENCE_PRECISION_HINT=f32", "--ov-config", "KV_CACHE_PRECISION=f32"]

__all__ = ["rt_bundle", "rt_pipe", "rt_reference", "rt_images", "F32", "F32_FLAGS", "ovexport_cmd"]


# Fixture functions imported into several test modules are registered once per module by pytest, even with
# scope="session": the objects are cached here so that a session builds the bundle (and loads it) only once.
_CACHE: dict[str, object] = {}


def _once(key: str, make):
    if key not in _CACHE:
        _CACHE[key] = make()
    return _CACHE[key]


def ovexport_cmd(*args: str) -> list[str]:
    """argv running the CLI of this checkout in a subprocess."""
    return [sys.executable, "-m", "ovexport.cli", *args]


@pytest.fixture(scope="session")
def rt_bundle(tmp_path_factory) -> Path:
    def build() -> Path:
        import ovexport.steps  # noqa: F401  (registers the steps)
        from ovexport.engine import run_steps
        from ovexport.recipe.load import load_recipe

        root = tmp_path_factory.mktemp("rt-dist")
        recipe = load_recipe(FP32_RECIPE, [f"output.root={root}", f"steps={STEPS}"])
        bundle = Path(run_steps.run(recipe).artifacts["bundle"])
        assert (bundle / "manifest.json").is_file()
        return bundle

    return _once("bundle", build)


@pytest.fixture(scope="session")
def rt_pipe(rt_bundle):
    from ovexport.runtime.pipeline import Pipeline

    return _once("pipe", lambda: Pipeline.load(rt_bundle, ov_config=F32, cache_dir=False))


@pytest.fixture(scope="session")
def rt_reference(rt_bundle):
    from ovexport.models.minicpmv2.torch_reference import TorchReference

    def load():
        ckpt = recorded_checkpoint(rt_bundle)
        assert ckpt.is_dir(), ckpt
        return TorchReference(ckpt)

    return _once("reference", load)


@pytest.fixture(scope="session")
def rt_images(tmp_path_factory) -> dict[str, Path]:
    def make() -> dict[str, Path]:
        from ovexport.runtime.bench_inputs import synthetic_image

        d = tmp_path_factory.mktemp("rt-images")
        out = {}
        for name, (w, h) in {"448x448": (448, 448), "1344x896": (1344, 896)}.items():
            out[name] = d / f"{name}.png"
            synthetic_image(w, h, seed=1).save(out[name])
        return out

    return _once("images", make)


def subprocess_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    env["PYTHONUNBUFFERED"] = "1"
    return env
