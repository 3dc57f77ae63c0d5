"""What ``ovexport bench`` (and the baselines it is compared with, and the compute-floor cost) feeds a bundle: the
image sizes, the question and a deterministic synthetic image."""
from __future__ import annotations

import numpy as np

from ovexport.synthetic import images

CASES = {"448x448": (448, 448), "1344x896": (1344, 896)}
QUESTION = "Describe this image in detail."


def synthetic_image(width: int, height: int, seed: int = 0):
    """The synthetic test image (``ovexport.synthetic.images``) of ``width`` x ``height`` for ``seed``."""
    return images.synthetic_image(np.random.default_rng(seed), width, height)
