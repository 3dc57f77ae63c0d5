"""The SigLIP vision tower, built from timm by the checkpoint's ``vision_encoder`` name as the original does."""
from __future__ import annotations

import torch
from torch import nn

from .config import MiniCPMV2Config


def build_vision_tower(config: MiniCPMV2Config) -> nn.Module:
    """timm ViT with dynamic image size and padding, attention pool removed, last block dropped.

    A synthetic checkpoint may carry ``vision_config`` (timm keyword arguments such as ``embed_dim``,
    ``depth``) that shrinks the tower; the real checkpoint has none.
    """
    import timm

    model = timm.create_model(
        config.vision_encoder,
        pretrained=False,
        num_classes=0,
        dynamic_img_size=True,
        dynamic_img_pad=True,
        **config.vision_config,
    )
    if getattr(model, "attn_pool", None) is not None:
        model.attn_pool = nn.Identity()
    if config.drop_vision_last_layer:
        model.blocks = model.blocks[:-1]
    return model


def vision_width(tower: nn.Module) -> int:
    return int(tower.embed_dim)


def vision_features(tower: nn.Module, pixel_values: torch.Tensor) -> torch.Tensor:
    """[N, 3, H, W] -> [N, h*w, width] patch features (final norm applied, prefix tokens dropped)."""
    x = tower.forward_features(pixel_values)
    prefix = getattr(tower, "num_prefix_tokens", 0)
    return x[:, prefix:] if prefix else x
