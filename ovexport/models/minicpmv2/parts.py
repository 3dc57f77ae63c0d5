"""Build each part of MiniCPM-V-2 on the meta device and fill it from a checkpoint, part by part.

Loading one part at a time keeps peak memory at that part's size (the LLM is 4.9 GB in bf16, the
vision tower + resampler 0.9 GB), which is what lets the full-size export fit in 10 GB.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from .checkpoint import load_tensors
from .config import MiniCPMV2Config
from .llm import MiniCPMLM
from .model import ImageEncoder, MiniCPMV2, build_resampler
from .resampler import Resampler
from .vision import build_vision_tower, vision_width


class TextEmbeddings(nn.Module):
    """``llm.model.embed_tokens`` alone: ids -> UNSCALED embeddings (scale_emb is applied at run time)."""

    def __init__(self, config: MiniCPMV2Config):
        super().__init__()
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.embed_tokens(input_ids)


def _load(module_cls, prefix: str, ckpt: Path, config: MiniCPMV2Config | None, dtype: torch.dtype,
          mapped: bool = False):
    """``mapped``: tensors stored in ``dtype`` are read-only views of the checkpoint (``load_tensors``); the shards
    that gave them are the module's ``mapped_shards``."""
    config = config or MiniCPMV2Config.from_dir(ckpt)
    with torch.device("meta"):
        module = module_cls(config)
    shards = load_tensors(ckpt, module, prefix, dtype, mapped=mapped)
    if shards:
        module.mapped_shards = shards
    return module.eval()


def load_text_embeddings(ckpt: Path, config: MiniCPMV2Config | None = None, dtype=torch.float32,
                         mapped: bool = False) -> TextEmbeddings:
    return _load(TextEmbeddings, "llm.model.", ckpt, config, dtype, mapped)


def load_llm(ckpt: Path, config: MiniCPMV2Config | None = None, dtype=torch.float32, mapped: bool = False) -> MiniCPMLM:
    return _load(MiniCPMLM, "llm.", ckpt, config, dtype, mapped)


def load_image_encoder(ckpt: Path, config: MiniCPMV2Config | None = None, dtype=torch.float32, mapped: bool = False) -> ImageEncoder:
    return _load(ImageEncoder, "", ckpt, config, dtype, mapped)


def load_resampler(ckpt: Path, config: MiniCPMV2Config | None = None, dtype=torch.float32) -> Resampler:
    """The resampler alone (``resampler.*``): the vision tower is not read."""
    config = config or MiniCPMV2Config.from_dir(ckpt)
    with torch.device("meta"):
        tower = build_vision_tower(config)
        module = build_resampler(config, vision_width(tower))
    load_tensors(ckpt, module, "resampler.", dtype)
    return module.eval()


def load_model(ckpt: Path, config: MiniCPMV2Config | None = None, dtype=torch.float32) -> MiniCPMV2:
    return _load(MiniCPMV2, "", ckpt, config, dtype)
