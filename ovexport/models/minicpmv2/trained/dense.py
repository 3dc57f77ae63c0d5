"""Dense per-patch supervision of the vision tower: a training aid, not part of the checkpoint.

One label per image (the answers, ``ImageProbe``) taught the tiny vision tower little about shapes and words
(BENCHMARKS.md, "Tiny trained model"). Here every 14-pixel patch of an encoder image gets a target: what covers it
(``task.PARTS``: background, a shape, a letter), and a linear classifier on each patch feature of the tower's output
learns it beside the other losses.

Targets come from the scene's part map (``task.scene_parts``) taken through the same geometry as the pixels: the
whole-image (source) resize and, for sliced images, the refine resize cut into the same grid (``slicing``).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from ..slicing import best_grid, find_best_resize, get_refine_size
from . import task

__all__ = ["MIN_COVER", "DenseProbe", "patch_coverage", "patch_targets", "encoder_image_targets"]

# a patch is labelled with a part when at least this share of its pixels are that part's (else background)
MIN_COVER = 0.3


def patch_coverage(parts: np.ndarray, size: tuple[int, int], patch: int,
                   box: tuple[int, int, int, int] | None = None) -> np.ndarray:
    """[h*w, len(PARTS)] share of each patch covered by each part, for the part map ``parts`` resized to ``size``
    = (W, H) (area averaging) and cut to ``box`` (left, top, right, bottom; the whole resized map when None)."""
    W, H = size
    left, top, right, bottom = box or (0, 0, W, H)
    h, w = -(-(bottom - top) // patch), -(-(right - left) // patch)
    cover = np.zeros((h * w, len(task.PARTS)), dtype=np.float32)
    for p in np.unique(parts):
        if p == 0:
            continue
        m = Image.fromarray(((parts == p) * 255).astype(np.uint8), "L").resize((W, H), Image.Resampling.BOX)
        a = np.asarray(m, dtype=np.float32)[top:bottom, left:right] / 255.0
        a = np.pad(a, ((0, h * patch - a.shape[0]), (0, w * patch - a.shape[1])))   # dynamic_img_pad pads with 0
        cover[:, p] = a.reshape(h, patch, w, patch).mean(axis=(1, 3)).reshape(-1)
    cover[:, 0] = np.clip(1.0 - cover[:, 1:].sum(1), 0.0, 1.0)
    return cover


def patch_targets(cover: np.ndarray, min_cover: float = MIN_COVER) -> np.ndarray:
    """[h*w] int64: per patch the part that covers most of it when that is at least ``min_cover``, else 0."""
    best = cover[:, 1:].argmax(1) + 1
    return np.where(cover[np.arange(len(cover)), best] >= min_cover, best, 0).astype(np.int64)


def encoder_image_targets(scene_key: str, image_size: tuple[int, int], scale_resolution: int, patch: int,
                          max_slice_nums: int, min_cover: float = MIN_COVER,
                          labels: str = "letters") -> list[np.ndarray]:
    """Patch targets of every encoder image ``slicing.slice_image`` makes of the scene: the source, then the
    slices row-major (none when the image is not sliced). ``labels``: ``task.scene_parts``'s."""
    parts = task.scene_parts(scene_key, labels)
    grid = best_grid(image_size, max_slice_nums, scale_resolution)
    if grid is None:
        source = find_best_resize(image_size, scale_resolution, patch, allow_upscale=True)
        return [patch_targets(patch_coverage(parts, source, patch), min_cover)]
    source = find_best_resize(image_size, scale_resolution, patch)
    out = [patch_targets(patch_coverage(parts, source, patch), min_cover)]
    rw, rh = get_refine_size(image_size, grid, scale_resolution, patch, allow_upscale=True)
    cw, ch = int(rw / grid[0]), int(rh / grid[1])
    for top in range(0, rh, ch):
        for left in range(0, rw, cw):
            out.append(patch_targets(patch_coverage(parts, (rw, rh), patch, (left, top, left + cw, top + ch)),
                                     min_cover))
    return out


class DenseProbe(nn.Module):
    """A linear classifier of ``task.PARTS`` on each patch feature [N, h*w, width] of the vision tower."""

    def __init__(self, width: int):
        super().__init__()
        self.head = nn.Linear(width, len(task.PARTS))

    def loss(self, patch_features: list[torch.Tensor], targets: list[np.ndarray]) -> torch.Tensor:
        """Mean cross-entropy over the patches of every image (``patch_features[i]`` [h*w, width])."""
        x = torch.cat(patch_features)
        y = torch.from_numpy(np.concatenate(targets))
        return F.cross_entropy(self.head(x), y)
