"""What a bundle's manifest.json says about it, before its file list and build record (``manifest.write_manifest``):
its name and version, the model family, the resolved recipe, the source and its digest, the tool versions, the
fingerprint of each step that made it, what compression did and the state of its validation. Nothing of the
machine that built it: ``reproducible.scrub`` takes its paths out."""
from __future__ import annotations

import platform
from typing import Any

from ovexport import __version__
from ovexport.engine.code_digest import versions
from ovexport.engine.lock import Lock

from .manifest import FORMAT, validation_passed, validation_summary
from .reproducible import scrub

# the packages whose versions a manifest records (besides ovexport and python)
PACKAGES = ("openvino", "nncf", "openvino_tokenizers", "torch", "transformers", "timm", "huggingface_hub",
            "safetensors", "sentencepiece")


def manifest_content(*, name: str, version: str, family: str, recipe: dict[str, Any], source: dict[str, Any],
                     lock: Lock, compression: dict, validation: dict | None, machine: list[str],
                     step: str = "package") -> dict[str, Any]:
    """The manifest of bundle ``name`` ``version`` of ``family``: ``recipe`` (``Recipe.resolved()``; its
    ``output.root``, where this machine keeps bundles, is left out), ``source`` (uri, kind, repo_id, revision), the
    work directory's ``lock`` (the checkpoint's digest, each step's fingerprint but the packaging ``step``'s own),
    ``compression`` (compression.json), ``validation`` (the bundle's validation.json, None: not validated); every
    path of ``machine`` (``reproducible.local_paths``) replaced by ``<local>``."""
    if "output" in recipe:
        recipe = {**recipe, "output": {k: v for k, v in recipe["output"].items() if k != "root"}}
    summary = validation_summary(validation)
    download = lock.get("download") or {}
    content = {
        "format": FORMAT,
        "name": name,
        "version": version,
        "model_family": family,
        "recipe": recipe,
        "source": {**source, "checkpoint_digest": download.get("output", {}).get("digest")},
        "packages": {"ovexport": __version__, **versions(*PACKAGES), "python": platform.python_version()},
        "steps": {s: entry.get("fingerprint") for s, entry in lock.steps.items() if s != step},
        "compression": compression,
        "validated": validation_passed({"validation": summary}),
        "validation": summary,
    }
    return scrub(content, machine)
