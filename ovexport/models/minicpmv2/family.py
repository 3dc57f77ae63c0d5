"""Registers MiniCPM-V-2 with the model-family registry."""
from __future__ import annotations

from pathlib import Path

from ovexport.models.registry import ModelFamily, register_family

BUNDLE_FILES = ("config.json", "generation_config.json", "tokenizer.model", "tokenizer_config.json",
                "special_tokens_map.json")


def _matches(config: dict) -> bool:
    # V-2.5 / V-2.6 share model_type "minicpmv" but carry a "version" key and other vision towers
    return (config.get("model_type") == "minicpmv" and "version" not in config
            and str(config.get("vision_encoder", "")).startswith("vit_so400m_patch14_siglip"))


def _part_specs(ckpt: Path, weight_dtype: str = "fp16", trace_image_size: int = 448) -> dict:
    from ovexport.exporter.convert import torch_dtype

    from . import export
    from .config import MiniCPMV2Config

    config = MiniCPMV2Config.from_dir(ckpt)
    # the checkpoint is read in the export dtype directly: no fp32 copy of a bf16 checkpoint
    dtype = torch_dtype(weight_dtype)
    return {
        "text_embeddings": export.text_embeddings_spec(ckpt, config, dtype),
        "language_model": export.language_model_spec(ckpt, config, dtype),
        "image_encoder": export.image_encoder_spec(ckpt, config, dtype, trace_image_size),
    }


def _write_synthetic(out: Path, size: str = "tiny", seed: int = 0, progress=None) -> Path:
    if size == "tiny-trained":
        from .trained.build import write_trained_checkpoint
        return write_trained_checkpoint(out, seed=seed, progress=progress)
    from .synth import write_synthetic_checkpoint
    return write_synthetic_checkpoint(out, size=size, seed=seed, progress=progress)


def _runtime(bundle: Path):
    from .runtime_adapter import MiniCPMV2Adapter
    return MiniCPMV2Adapter(bundle)


def _publishing():
    from . import publishing
    return publishing


def _reference(ckpt: Path, **kw):
    from .reference import TorchReference
    return TorchReference(ckpt, **kw)


FAMILY = register_family(ModelFamily(
    name="minicpmv2", matches=_matches, part_specs=_part_specs, write_synthetic=_write_synthetic,
    bundle_files=BUNDLE_FILES, runtime=_runtime, reference=_reference, publishing=_publishing,
    # tiny: random weights, a few MB; tiny-trained: trained on a generated VQA task (trained/), cached;
    # full: the real shapes
    synthetic_sizes=("tiny", "tiny-trained", "full"),
    # what decides the bytes of a synthetic checkpoint: the writer, the tokenizer, the modules' shapes, and
    # for tiny-trained the trainer, the task and the prompt/slicing code the examples go through
    synth_sources=tuple(f"models/minicpmv2/{f}.py" for f in (
        "synth", "synth_tokenizer", "config", "model", "llm", "vision", "resampler", "prompt", "slicing",
        "tokenizer")) + ("models/minicpmv2/trained", "synthetic"),
))
