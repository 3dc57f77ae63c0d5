"""Model families, found from a checkpoint's ``config.json`` (like llama.cpp's conversion registry).

Generic code asks ``family_for(checkpoint)`` and never tests a model type itself.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ovexport.errors import CheckpointError


@dataclass(frozen=True)
class ModelFamily:
    name: str
    matches: Callable[[dict], bool]             # does this config.json belong to the family?
    part_specs: Callable[..., dict]             # (ckpt, weight_dtype, trace_image_size) -> {part: PartSpec}
    write_synthetic: Callable[..., Path]        # (out, size, seed, progress) -> out
    bundle_files: tuple[str, ...]               # checkpoint files copied into a bundle
    runtime: Callable[[Path], Any]              # bundle dir -> model runtime adapter (prompting, embeddings)
    reference: Callable[..., Any]               # (ckpt) -> PyTorch reference (validators, tests)
    synth_sources: tuple[str, ...] = ()         # files (relative to the ovexport package) a synthetic
                                                # checkpoint depends on: its fingerprint hashes them
    synthetic_sizes: tuple[str, ...] = ()       # what ``synthetic://<size>`` may name for this family
    publishing: Callable[[], Any] | None = None  # () -> module: bundle extras (tokenizer IRs, chat template,
                                                # preprocessor config), model-card facts, release resources


_FAMILIES: dict[str, ModelFamily] = {}
_LOADED = False


def register_family(family: ModelFamily) -> ModelFamily:
    _FAMILIES[family.name] = family
    return family


def _load_builtin() -> None:
    global _LOADED
    if not _LOADED:
        from ovexport.models.minicpmv2 import family  # noqa: F401  (registers itself)
        _LOADED = True


def families() -> dict[str, ModelFamily]:
    _load_builtin()
    return dict(_FAMILIES)


def synthetic_sizes() -> tuple[str, ...]:
    """Every ``synthetic://<size>`` some family can write, in registration order."""
    return tuple(dict.fromkeys(s for fam in families().values() for s in fam.synthetic_sizes))


def get_family(name: str) -> ModelFamily:
    _load_builtin()
    try:
        return _FAMILIES[name]
    except KeyError:
        raise CheckpointError(f"unknown model family {name!r}", fix=f"use one of {', '.join(sorted(_FAMILIES))}") from None


def family_for_config(config: dict, where: str = "config.json") -> ModelFamily:
    _load_builtin()
    for fam in _FAMILIES.values():
        if fam.matches(config):
            return fam
    kind = config.get("model_type", "?")
    raise CheckpointError(f"{where}: model_type {kind!r} with these keys is not a supported model",
                          fix=f"ovexport supports: {', '.join(sorted(_FAMILIES))}")


def family_for(ckpt: Path) -> ModelFamily:
    f = Path(ckpt) / "config.json"
    if not f.is_file():
        raise CheckpointError(f"{f} is missing", fix="point the recipe's source at a complete checkpoint directory")
    return family_for_config(json.loads(f.read_text()), where=str(f))
