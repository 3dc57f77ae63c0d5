"""The synthetic test image: what the validators, the benchmarks and the runtime tests feed a model when any
photo-like picture will do."""
from __future__ import annotations

import numpy as np


def synthetic_image(rng: np.random.Generator, width: int, height: int):
    """A deterministic RGB test image: smooth colour gradients, a few rectangles and mild noise."""
    from PIL import Image

    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    img = np.empty((height, width, 3), np.float32)
    for c in range(3):
        fx, fy, ph = rng.uniform(0.5, 4.0), rng.uniform(0.5, 4.0), rng.uniform(0, 2 * np.pi)
        img[..., c] = 127.5 + 90 * np.sin(2 * np.pi * (fx * xx / width + fy * yy / height) + ph)
    for _ in range(4):
        x0, y0 = int(rng.integers(0, width)), int(rng.integers(0, height))
        x1, y1 = x0 + int(rng.integers(1, width // 3 + 2)), y0 + int(rng.integers(1, height // 3 + 2))
        img[y0:y1, x0:x1] = rng.uniform(0, 255, size=3)
    img += rng.normal(0, 8, size=img.shape)
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB")


def random_pixels(rng: np.random.Generator, n: int, height: int, width: int,
                  value_range: tuple[float, float] = (-1.0, 1.0)) -> np.ndarray:
    """float32 [n, 3, H, W] uniform in ``value_range`` (a model's normalised pixel range)."""
    lo, hi = value_range
    return rng.uniform(lo, hi, size=(n, 3, height, width)).astype(np.float32)
