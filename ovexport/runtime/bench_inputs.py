"""What ``ovexport bench`` (and the baselines it is compared with, and the compute-floor cost) feeds a bundle: the
image sizes, the question and a deterministic synthetic image."""
from __future__ import annotations

import numpy as np

CASES = {"448x448": (448, 448), "1344x896": (1344, 896)}
QUESTION = "Describe this image in detail."


def synthetic_image(width: int, height: int, seed: int = 0):
    """A smooth colour gradient with shapes and a little noise: deterministic, compresses like a photo."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    rgb = np.stack([255 * x / width, 255 * y / height, 255 * (1 - x / width) * (y / height)], axis=-1)
    rgb += rng.normal(0, 8, rgb.shape)
    img = Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8))
    d = ImageDraw.Draw(img)
    for _ in range(12):
        x0, y0 = int(rng.integers(0, width - 40)), int(rng.integers(0, height - 40))
        x1, y1 = x0 + int(rng.integers(20, width // 3)), y0 + int(rng.integers(20, height // 3))
        color = tuple(int(c) for c in rng.integers(0, 255, 3))
        (d.ellipse if rng.random() < 0.5 else d.rectangle)((x0, y0, x1, y1), fill=color)
    return img
