"""What ``ovexport bench`` (and the baselines it is compared with, and the compute-floor cost) feeds a bundle: the
image sizes its model family names, the question and a deterministic synthetic image."""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np

QUESTION = "Describe this image in detail."


def bench_cases(family) -> dict[str, tuple[int, int]]:
    """name -> (width, height) of the images ``family`` is timed on: its ``bench_cases`` (an optional family
    attribute, e.g. one image the model takes whole and one it cuts into pieces), else the sizes of its end-to-end
    validation cases."""
    cases: Mapping[str, tuple[int, ...]] | None = getattr(family, "bench_cases", None)
    if cases is None:
        cases = family.validation_cases.end_to_end
    return {name: (int(size[0]), int(size[1])) for name, size in cases.items()}


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
        # (the bounds only matter for images under 63 pixels a side, which would have none to draw from)
        x0, y0 = int(rng.integers(0, max(1, width - 40))), int(rng.integers(0, max(1, height - 40)))
        x1, y1 = x0 + int(rng.integers(20, max(21, width // 3))), y0 + int(rng.integers(20, max(21, height // 3)))
        color = tuple(int(c) for c in rng.integers(0, 255, 3))
        (d.ellipse if rng.random() < 0.5 else d.rectangle)((x0, y0, x1, y1), fill=color)
    return img
