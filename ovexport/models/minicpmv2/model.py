"""MiniCPM-V-2 in PyTorch: vision tower (``vpm``), resampler and LLM (``llm``), with the real state-dict names."""
from __future__ import annotations

import math

import torch
from torch import nn

from .config import MiniCPMV2Config
from .llm import MiniCPMLM
from .resampler import Resampler
from .vision import build_vision_tower, vision_features, vision_width


def build_resampler(config: MiniCPMV2Config, kv_dim: int) -> Resampler:
    return Resampler(config.hidden_size, config.resampler_heads, kv_dim=kv_dim, num_queries=config.query_num)


class ImageEncoder(nn.Module):
    """Vision tower + resampler: N same-size images -> [N, query_num, hidden]."""

    def __init__(self, config: MiniCPMV2Config):
        super().__init__()
        self.patch_size = config.patch_size
        self.vpm = build_vision_tower(config)
        self.resampler = build_resampler(config, vision_width(self.vpm))

    def forward(self, pixel_values: torch.Tensor, tgt_size: torch.Tensor) -> torch.Tensor:
        feats = vision_features(self.vpm, pixel_values)
        return self.resampler(feats, tgt_size[0], tgt_size[1])

    def encode(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """One image [3, H, W] (any size) -> [query_num, hidden]; the grid is (ceil(H/14), ceil(W/14))."""
        h, w = pixel_values.shape[-2:]
        tgt = torch.tensor([math.ceil(h / self.patch_size), math.ceil(w / self.patch_size)])
        dtype = self.vpm.pos_embed.dtype
        return self(pixel_values[None].to(dtype), tgt)[0]


class MiniCPMV2(nn.Module):
    def __init__(self, config: MiniCPMV2Config):
        super().__init__()
        self.config = config
        enc = ImageEncoder(config)
        self.vpm = enc.vpm
        self.resampler = enc.resampler
        self._encoder = [enc]            # not registered twice: the parameters live under vpm / resampler
        self.llm = MiniCPMLM(config)

    @property
    def image_encoder(self) -> ImageEncoder:
        return self._encoder[0]

    def merged_embeddings(self, input_ids: torch.Tensor, image_bounds, image_features: torch.Tensor | None):
        """Scaled text embeddings with image features written (unscaled) strictly between <image> and </image>.

        input_ids: [T]; image_bounds: [[start, end), ...] one per image; image_features: [n_images, Q, D].
        """
        emb = self.llm.embed(input_ids[None])[0]
        if image_features is not None and len(image_bounds):
            idx = torch.cat([torch.arange(int(s), int(e)) for s, e in image_bounds])
            emb = emb.clone()
            emb[idx] = image_features.reshape(-1, emb.shape[-1]).to(emb.dtype)
        return emb
